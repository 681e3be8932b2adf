//! Epidemic dissemination of versioned data (Demers et al. 1987, "Epidemic
//! algorithms for replicated database maintenance", PODC): the sans-io building
//! blocks that a [`crate::Node`] wires to its datagrams.
//!
//! - [`data`]: the versioned store. `(key, value, version)`; a higher version wins,
//!   ties go to the higher origin id; merge is idempotent and commutative; digests
//!   and "what is newer than this digest" queries; every table is capped.
//! - [`anti_entropy`]: push, pull and push-pull exchanges with one random peer per
//!   round (SI: susceptible, infective). Digests go first, so only newer entries
//!   travel; large state is split into chunks under a byte budget.
//! - [`rumor`]: rumor mongering (SIR: susceptible, infective, removed). New updates
//!   are hot rumors sent each round to `fanout` random peers until a stop rule
//!   (feedback or blind, counter or coin) removes them.
//! - [`population`]: the epidemic-only model for theory at scale: N abstract nodes,
//!   uniform random peers, lockstep rounds, one update; it measures residue,
//!   traffic, t_ave, t_last and redundancy exactly as DESIGN.md §3 defines them.
//!
//! Everything here is a plain state machine: no I/O, no clock, no OS randomness
//! (every random choice comes from a caller-given [`crate::rng::Rng`]), and no
//! iteration over a hash map (the store is a `BTreeMap`, so digests come out in
//! key order and every run replays).
//!
//! # Example: two stores converge by one push-pull exchange
//!
//! ```
//! use gossip_core::epidemic::anti_entropy::{AntiEntropy, Message};
//! use gossip_core::epidemic::data::{Store, StoreLimits};
//! use gossip_core::epidemic::Direction;
//! use gossip_core::NodeId;
//!
//! let limits = StoreLimits::default();
//! let mut a = Store::new(limits);
//! let mut b = Store::new(limits);
//! a.publish(NodeId(1), b"colour", b"blue").unwrap();
//! b.publish(NodeId(2), b"shape", b"round").unwrap();
//!
//! let mut ae = AntiEntropy::new(Direction::PushPull, 1_200).unwrap();
//! // a opens the round with a digest; b answers; a answers b's request.
//! let mut to_b = ae.open(&a);
//! while !to_b.is_empty() {
//!     let mut to_a = Vec::new();
//!     for m in to_b.drain(..) {
//!         to_a.extend(ae.handle(&mut b, m).unwrap());
//!     }
//!     for m in to_a {
//!         to_b.extend(ae.handle(&mut a, m).unwrap());
//!     }
//! }
//! assert_eq!(a.get(b"shape").unwrap().0, b"round");
//! assert_eq!(b.get(b"colour").unwrap().0, b"blue");
//! ```

pub mod anti_entropy;
pub mod data;
pub mod population;
pub mod rumor;

/// Which way updates travel in one exchange between a node and the random peer
/// it contacted (Demers 1987, §1.3): the same three words name anti-entropy
/// exchanges and rumor-mongering variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The caller sends what it has that the peer lacks.
    Push,
    /// The caller asks; the peer sends what it has that the caller lacks.
    Pull,
    /// Both: each side ends with the newer of the two.
    PushPull,
}

impl Direction {
    /// Lower-case name, as used in reports and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Push => "push",
            Direction::Pull => "pull",
            Direction::PushPull => "push-pull",
        }
    }

    /// Parses [`Direction::name`]'s output.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "push" => Some(Direction::Push),
            "pull" => Some(Direction::Pull),
            "push-pull" | "pushpull" => Some(Direction::PushPull),
            _ => None,
        }
    }

    /// Whether the caller's updates travel to the peer.
    pub fn pushes(self) -> bool {
        matches!(self, Direction::Push | Direction::PushPull)
    }

    /// Whether the peer's updates travel to the caller.
    pub fn pulls(self) -> bool {
        matches!(self, Direction::Pull | Direction::PushPull)
    }
}

/// A uniform random peer index in `0..n` other than `me` (`n >= 2`).
///
/// One draw, no rejection: draw from the `n - 1` others and skip over `me`.
#[inline]
pub(crate) fn other_than(rng: &mut crate::rng::Rng, n: u32, me: u32) -> u32 {
    debug_assert!(n >= 2 && me < n);
    let j = rng.below(u64::from(n - 1)) as u32;
    if j >= me {
        j + 1
    } else {
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn direction_names_round_trip() {
        for d in [Direction::Push, Direction::Pull, Direction::PushPull] {
            assert_eq!(Direction::from_name(d.name()), Some(d));
        }
        assert_eq!(Direction::from_name("sideways"), None);
        assert!(Direction::PushPull.pushes() && Direction::PushPull.pulls());
        assert!(!Direction::Pull.pushes() && !Direction::Push.pulls());
    }

    #[test]
    fn other_than_never_picks_me_and_covers_everyone_else() {
        let mut rng = Rng::new(3);
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            seen[other_than(&mut rng, 5, 2) as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        for (i, &c) in seen.iter().enumerate() {
            if i != 2 {
                // 1,250 expected each; 5 standard deviations is about 153.
                assert!((1_097..=1_403).contains(&c), "peer {i} picked {c} times");
            }
        }
    }
}
