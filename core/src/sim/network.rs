//! The simulated network: latency models, loss, duplication, reordering,
//! partitions and per-link rules, all drawn from one seeded [`Rng`].

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::time::Duration;

use super::math::{exp, ln, normal_quantile};
use crate::rng::Rng;
use crate::time::micros;

/// A set of nodes by index (a bitset: 12.5 KB at 100,000 nodes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeSet {
    words: Vec<u64>,
}

impl NodeSet {
    /// The empty set.
    pub fn new() -> Self {
        NodeSet::default()
    }

    /// Every index in `r`.
    pub fn range(r: Range<usize>) -> Self {
        r.collect()
    }

    /// Adds node `i`.
    pub fn insert(&mut self, i: usize) {
        let w = i / 64;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (i % 64);
    }

    /// Whether node `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Number of nodes in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The indices in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut bits = w;
            core::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

impl FromIterator<usize> for NodeSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut s = NodeSet::new();
        for i in iter {
            s.insert(i);
        }
        s
    }
}

impl fmt::Display for NodeSet {
    /// Runs of consecutive indices as ranges: `{0..5, 7, 9..12}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let mut first = true;
        let mut run: Option<(usize, usize)> = None;
        let mut emit = |f: &mut fmt::Formatter<'_>, (a, b): (usize, usize)| -> fmt::Result {
            if !core::mem::take(&mut first) {
                f.write_str(", ")?;
            }
            match b == a + 1 {
                true => write!(f, "{a}"),
                false => write!(f, "{a}..{b}"),
            }
        };
        for i in self.iter() {
            run = match run {
                Some((a, b)) if b == i => Some((a, i + 1)),
                Some(r) => {
                    emit(f, r)?;
                    Some((i, i + 1))
                }
                None => Some((i, i + 1)),
            };
        }
        if let Some(r) = run {
            emit(f, r)?;
        }
        f.write_str("}")
    }
}

/// One-way delay of a datagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Uniform in `[min, max]`.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// Log-normal with the given median and shape (sigma of the underlying
    /// normal; 0.5 gives p99 ≈ 3.2 × median), capped at `max`. Real network
    /// delays look like this: a body near the median and a long right tail.
    LogNormal {
        /// The median delay.
        median: Duration,
        /// Shape: the standard deviation of ln(delay).
        sigma: f64,
        /// Cap on a single delay.
        max: Duration,
    },
    /// Pareto with scale `min` and tail index `shape` (smaller is heavier; 1.5
    /// has a finite mean but no variance), capped at `max`.
    Pareto {
        /// The smallest delay (the scale).
        min: Duration,
        /// Tail index alpha.
        shape: f64,
        /// Cap on a single delay.
        max: Duration,
    },
}

impl Latency {
    /// Zero delay.
    pub const ZERO: Latency = Latency::Fixed(Duration::ZERO);

    /// Draws one delay, in microseconds.
    pub fn sample_us(&self, rng: &mut Rng) -> u64 {
        match *self {
            Latency::Fixed(d) => micros(d),
            Latency::Uniform { min, max } => {
                let (lo, hi) = (micros(min), micros(max));
                match hi > lo {
                    true => lo + rng.below(hi - lo + 1),
                    false => lo,
                }
            }
            Latency::LogNormal { median, sigma, max } => {
                let z = normal_quantile(open_unit(rng));
                let d = micros(median) as f64 * exp(sigma * z);
                clamp_us(d, micros(max))
            }
            Latency::Pareto { min, shape, max } => {
                // Inverse transform: min × U^(−1/alpha), U in (0, 1).
                let u = open_unit(rng);
                let d = micros(min) as f64 * exp(-ln(u) / shape.max(1e-3));
                clamp_us(d, micros(max))
            }
        }
    }

    /// The largest delay it can give.
    pub fn max(&self) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { max, .. }
            | Latency::LogNormal { max, .. }
            | Latency::Pareto { max, .. } => max,
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Latency::Fixed(d) => write!(f, "fixed({d:?})"),
            Latency::Uniform { min, max } => write!(f, "uniform({min:?}..={max:?})"),
            Latency::LogNormal { median, sigma, max } => {
                write!(
                    f,
                    "lognormal(median={median:?}, sigma={sigma:.2}, max={max:?})"
                )
            }
            Latency::Pareto { min, shape, max } => {
                write!(f, "pareto(min={min:?}, shape={shape:.2}, max={max:?})")
            }
        }
    }
}

fn clamp_us(d: f64, max: u64) -> u64 {
    if d.is_finite() && d < max as f64 {
        d.max(0.0) as u64
    } else {
        max
    }
}

/// A uniform draw in the open interval (0, 1): never 0, never 1.
fn open_unit(rng: &mut Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// What the network does to every datagram, unless a [`LinkRule`] says otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetworkParams {
    /// One-way delay.
    pub latency: Latency,
    /// Probability a datagram is lost, 0 to 1.
    pub loss: f64,
    /// Probability a datagram is delivered twice (the copy has its own delay).
    pub duplicate: f64,
    /// Probability a datagram is held back by an extra delay, uniform in
    /// `0..=reorder_delay`, so that later datagrams overtake it. Random latency
    /// reorders too; this forces it even with a fixed latency.
    pub reorder: f64,
    /// Largest extra delay of a held-back datagram.
    pub reorder_delay: Duration,
}

impl NetworkParams {
    /// A perfect network: zero delay, nothing lost, duplicated or reordered.
    pub const IDEAL: NetworkParams = NetworkParams {
        latency: Latency::ZERO,
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: Duration::ZERO,
    };

    /// A data-centre LAN: log-normal latency with a 250 µs median, nothing lost.
    pub const LAN: NetworkParams = NetworkParams {
        latency: Latency::LogNormal {
            median: Duration::from_micros(250),
            sigma: 0.5,
            max: Duration::from_millis(20),
        },
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: Duration::ZERO,
    };

    /// Draws parameters from `space` with `rng`: each probability uniform in
    /// `[0, max]`, and one of the four latency shapes with drawn parameters.
    pub fn draw(rng: &mut Rng, space: &FaultSpace) -> Self {
        let median_us = micros(space.max_median_latency).max(1);
        let cap = space.max_latency.max(space.max_median_latency);
        let latency = match rng.below(4) {
            0 => Latency::Fixed(Duration::from_micros(rng.below(median_us + 1))),
            1 => {
                let a = rng.below(median_us + 1);
                let b = rng.below(2 * median_us + 1);
                Latency::Uniform {
                    min: Duration::from_micros(a.min(b)),
                    max: Duration::from_micros(a.max(b)),
                }
            }
            2 => Latency::LogNormal {
                median: Duration::from_micros(1 + rng.below(median_us)),
                sigma: 0.2 + 0.8 * rng.unit_f64(),
                max: cap,
            },
            _ => Latency::Pareto {
                min: Duration::from_micros(1 + rng.below(median_us)),
                shape: 1.1 + 1.9 * rng.unit_f64(),
                max: cap,
            },
        };
        NetworkParams {
            latency,
            loss: space.max_loss * rng.unit_f64(),
            duplicate: space.max_duplicate * rng.unit_f64(),
            reorder: space.max_reorder * rng.unit_f64(),
            reorder_delay: Duration::from_micros(rng.below(micros(cap) + 1)),
        }
    }
}

impl Default for NetworkParams {
    fn default() -> Self {
        NetworkParams::IDEAL
    }
}

impl fmt::Display for NetworkParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "latency={} loss={:.4} duplicate={:.4} reorder={:.4} reorder_delay={:?}",
            self.latency, self.loss, self.duplicate, self.reorder, self.reorder_delay
        )
    }
}

/// Bounds for [`NetworkParams::draw`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultSpace {
    /// Largest loss probability drawn.
    pub max_loss: f64,
    /// Largest duplication probability drawn.
    pub max_duplicate: f64,
    /// Largest reorder probability drawn.
    pub max_reorder: f64,
    /// Largest median (or fixed) latency drawn.
    pub max_median_latency: Duration,
    /// Cap on any single delay (tails included).
    pub max_latency: Duration,
}

impl Default for FaultSpace {
    /// Up to 10 % loss, 5 % duplication, 10 % reordering, 5 ms median, 200 ms cap.
    fn default() -> Self {
        FaultSpace {
            max_loss: 0.10,
            max_duplicate: 0.05,
            max_reorder: 0.10,
            max_median_latency: Duration::from_millis(5),
            max_latency: Duration::from_millis(200),
        }
    }
}

/// An override for datagrams from a node in `from` to a node in `to`; the first
/// matching rule wins. With `blocked`, the link is cut one way (an asymmetric
/// partition).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkRule {
    /// Senders it applies to.
    pub from: NodeSet,
    /// Receivers it applies to.
    pub to: NodeSet,
    /// Delay on this link instead of the default.
    pub latency: Option<Latency>,
    /// Loss on this link instead of the default.
    pub loss: Option<f64>,
    /// Whether every datagram on this link is dropped.
    pub blocked: bool,
}

impl fmt::Display for LinkRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)?;
        if let Some(l) = self.latency {
            write!(f, " latency={l}")?;
        }
        if let Some(p) = self.loss {
            write!(f, " loss={p:.4}")?;
        }
        if self.blocked {
            f.write_str(" blocked")?;
        }
        Ok(())
    }
}

/// What the network did with the datagrams handed to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams nodes sent.
    pub sent: u64,
    /// Datagrams handed to a running node (duplicates included).
    pub delivered: u64,
    /// Lost to random loss.
    pub lost: u64,
    /// Dropped by a partition or a blocked link.
    pub partitioned: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Datagrams held back by the reorder delay.
    pub reordered: u64,
    /// Arrived at a node that was down (crashed or not started), or waited in
    /// a paused node's receive buffer when it crashed.
    pub to_down: u64,
    /// Arrived at a paused node whose receive buffer was full.
    pub overflowed: u64,
    /// Addressed to an endpoint no simulated node owns.
    pub no_route: u64,
}

/// The fate of one datagram.
pub(crate) enum Fate {
    Drop,
    /// Delivered after these delays (µs); the second one is a duplicate.
    Deliver(u64, Option<u64>),
}

/// The network's live state: parameters, partitions, rules and its own Rng.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    pub(crate) params: NetworkParams,
    pub(crate) rules: Vec<LinkRule>,
    /// Partition side of each node; datagrams cross no side boundary.
    side: Vec<u16>,
    partitioned: bool,
    rng: Rng,
    pub(crate) stats: NetStats,
}

impl Network {
    pub(crate) fn new(params: NetworkParams, nodes: usize, rng: Rng) -> Self {
        Network {
            params,
            rules: Vec::new(),
            side: alloc::vec![0; nodes],
            partitioned: false,
            rng,
            stats: NetStats::default(),
        }
    }

    /// Splits the cluster: each set is one side, the nodes in none form one more.
    pub(crate) fn partition(&mut self, sides: &[NodeSet]) {
        self.side.fill(0);
        for (k, set) in sides.iter().enumerate() {
            for i in set.iter() {
                if let Some(s) = self.side.get_mut(i) {
                    *s = (k + 1) as u16;
                }
            }
        }
        self.partitioned = true;
    }

    pub(crate) fn heal(&mut self) {
        self.side.fill(0);
        self.partitioned = false;
    }

    /// Whether `a` and `b` can talk (partitions and blocked rules only).
    pub(crate) fn connected(&self, a: usize, b: usize) -> bool {
        if self.partitioned && self.side[a] != self.side[b] {
            return false;
        }
        !self
            .rules
            .iter()
            .find(|r| r.from.contains(a) && r.to.contains(b))
            .is_some_and(|r| r.blocked)
    }

    /// Decides what happens to one datagram from `a` to `b`.
    pub(crate) fn route(&mut self, a: usize, b: usize) -> Fate {
        self.stats.sent += 1;
        if self.partitioned && self.side[a] != self.side[b] {
            self.stats.partitioned += 1;
            return Fate::Drop;
        }
        let (mut latency, mut loss) = (self.params.latency, self.params.loss);
        if !self.rules.is_empty() {
            if let Some(r) = self
                .rules
                .iter()
                .find(|r| r.from.contains(a) && r.to.contains(b))
            {
                if r.blocked {
                    self.stats.partitioned += 1;
                    return Fate::Drop;
                }
                latency = r.latency.unwrap_or(latency);
                loss = r.loss.unwrap_or(loss);
            }
        }
        if loss > 0.0 && self.rng.unit_f64() < loss {
            self.stats.lost += 1;
            return Fate::Drop;
        }
        let first = self.delay(&latency);
        let second =
            match self.params.duplicate > 0.0 && self.rng.unit_f64() < self.params.duplicate {
                true => {
                    self.stats.duplicated += 1;
                    Some(self.delay(&latency))
                }
                false => None,
            };
        Fate::Deliver(first, second)
    }

    fn delay(&mut self, latency: &Latency) -> u64 {
        let mut d = latency.sample_us(&mut self.rng);
        if self.params.reorder > 0.0 && self.rng.unit_f64() < self.params.reorder {
            self.stats.reordered += 1;
            d += self.rng.below(micros(self.params.reorder_delay) + 1);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn node_sets_print_as_runs() {
        let s: NodeSet = [0, 1, 2, 3, 4, 7, 9, 10, 11].into_iter().collect();
        assert_eq!(s.to_string(), "{0..5, 7, 9..12}");
        assert_eq!(s.len(), 9);
        assert!(s.contains(7) && !s.contains(8) && !s.contains(1000));
        assert_eq!(NodeSet::new().to_string(), "{}");
    }

    #[test]
    fn latency_samples_stay_within_their_bounds() {
        let mut rng = Rng::new(3);
        let shapes = [
            Latency::Fixed(Duration::from_millis(2)),
            Latency::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(3),
            },
            Latency::LogNormal {
                median: Duration::from_millis(1),
                sigma: 1.0,
                max: Duration::from_millis(50),
            },
            Latency::Pareto {
                min: Duration::from_millis(1),
                shape: 1.2,
                max: Duration::from_millis(50),
            },
        ];
        for l in shapes {
            let mut below_median = 0;
            for _ in 0..2_000 {
                let d = l.sample_us(&mut rng);
                assert!(d <= micros(l.max()), "{l}: {d}");
                below_median += usize::from(d < 1_000);
            }
            if let Latency::LogNormal { .. } = l {
                // Half the draws fall below the median (±5 standard errors).
                assert!((800..1200).contains(&below_median), "{below_median}");
            }
        }
    }

    #[test]
    fn a_partition_cuts_only_across_sides() {
        let mut n = Network::new(NetworkParams::IDEAL, 6, Rng::new(1));
        n.partition(&[NodeSet::range(0..2)]);
        assert!(n.connected(0, 1) && n.connected(2, 5));
        assert!(!n.connected(1, 2));
        assert!(matches!(n.route(1, 2), Fate::Drop));
        n.heal();
        assert!(matches!(n.route(1, 2), Fate::Deliver(0, None)));
    }
}
