//! 95 % confidence intervals for the summary's figures (issue 15), over the
//! unit that is independent: crashes, items, trials.
//!
//! Means: Student's t over the units. Quantiles: distribution-free order
//! statistics, the ranks from the binomial distribution of how many samples
//! fall below the true quantile (exact for independent samples, no resampling,
//! deterministic). Where a unit holds several correlated samples (an item's
//! latency at every node), the ranks come from the effective sample size:
//! the samples divided by the design effect measured at the estimate
//! (Woodruff's interval for clustered samples), so a thousand nodes that saw
//! one item count as about one sample, not a thousand. `statrs` supplies the
//! t and binomial distributions. `docs/report-schema.md` says which figure
//! uses which.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, StudentsT};

/// Two-sided level of every interval.
pub const LEVEL: f64 = 0.95;
const TAIL: f64 = (1.0 - LEVEL) / 2.0;

/// A 95 % confidence interval of one figure. A bound is `None` where the
/// samples cannot give it (one trial for a mean; fewer than 368 samples
/// for the top of a p99).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ci {
    /// Lower bound.
    pub lo: Option<f64>,
    /// Upper bound.
    pub hi: Option<f64>,
    /// Independent units it is over.
    pub n: usize,
    /// What the units are.
    pub of: Unit,
}

/// The independent unit an interval is over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Trials (a figure measured once per trial).
    #[default]
    Trials,
    /// Crashes on the timeline.
    Crashes,
    /// Disseminated items (each seen by many correlated nodes).
    Items,
    /// Heals, resumes and restarts.
    Events,
    /// Independent samples (tests).
    Samples,
}

impl Unit {
    /// The unit's name, plural.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Trials => "trials",
            Unit::Crashes => "crashes",
            Unit::Items => "items",
            Unit::Events => "events",
            Unit::Samples => "samples",
        }
    }
}

impl Ci {
    fn none(n: usize, of: Unit) -> Ci {
        Ci {
            lo: None,
            hi: None,
            n,
            of,
        }
    }

    /// Both bounds known.
    pub fn bounded(&self) -> bool {
        self.lo.is_some() && self.hi.is_some()
    }

    /// `[lo, hi]` with `digits` decimals, `?` for a bound the samples
    /// cannot give.
    pub fn show(&self, digits: usize) -> String {
        let f = |b: Option<f64>| b.map_or("?".to_string(), |v| format!("{v:.digits$}"));
        format!("[{}, {}]", f(self.lo), f(self.hi))
    }
}

/// A figure with its interval as text: `2.81 [2.70, 2.95]`; the bare figure
/// where no interval was recorded (reports from before intervals).
pub fn with_ci(v: f64, ci: Option<&Ci>, digits: usize) -> String {
    match ci {
        Some(c) => format!("{v:.digits$} {}", c.show(digits)),
        None => format!("{v:.digits$}"),
    }
}

/// The mean of `v` (one value per independent unit) and its t interval.
pub fn mean_ci(v: &[f64], of: Unit) -> Ci {
    let n = v.len();
    if n < 2 {
        return Ci::none(n, of);
    }
    let nf = n as f64;
    let mean = v.iter().sum::<f64>() / nf;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nf - 1.0);
    let t = StudentsT::new(0.0, 1.0, nf - 1.0).map_or(f64::NAN, |d| d.inverse_cdf(1.0 - TAIL));
    let half = t * (var / nf).sqrt();
    Ci {
        lo: Some(mean - half),
        hi: Some(mean + half),
        n,
        of,
    }
}

/// The interval of the q-quantile of independent samples `v` (one per unit).
pub fn quantile_ci(v: &[f64], q: f64, of: Unit) -> Ci {
    let groups: Vec<&[f64]> = v.chunks(1).collect();
    clustered_quantile_ci(&groups, q, of)
}

/// The interval of the q-quantile of every sample pooled, where each group
/// is one independent unit (an item) holding correlated samples (its nodes).
pub fn clustered_quantile_ci(groups: &[&[f64]], q: f64, of: Unit) -> Ci {
    clustered_quantiles_ci(groups, &[q], of)[0]
}

/// [`clustered_quantile_ci`] for several quantiles, sorting once.
pub fn clustered_quantiles_ci(groups: &[&[f64]], qs: &[f64], of: Unit) -> Vec<Ci> {
    let units = groups.iter().filter(|g| !g.is_empty()).count();
    let mut all: Vec<f64> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    // Independent samples need one for a bound far enough out (one sample
    // above a target bounds a p99 from below); correlated ones two units,
    // to see how much the units differ.
    let independent = units == all.len();
    if units == 0 || (!independent && units < 2) {
        return vec![Ci::none(units, of); qs.len()];
    }
    all.sort_by(f64::total_cmp);
    qs.iter()
        .map(|&q| pooled_quantile_ci(groups, &all, units, q, of))
        .collect()
}

fn pooled_quantile_ci(groups: &[&[f64]], all: &[f64], units: usize, q: f64, of: Unit) -> Ci {
    let total = all.len();
    let effective = if units == total {
        // Independent samples: the ranks are exact.
        total
    } else {
        let estimate = nearest_rank(all, q);
        let below = |g: &[f64]| g.iter().filter(|&&x| x <= estimate).count() as f64;
        let f = all.iter().filter(|&&x| x <= estimate).count() as f64 / total as f64;
        let n = total as f64;
        let u = units as f64;
        let var = u / (u - 1.0)
            * groups
                .iter()
                .map(|g| (below(g) - f * g.len() as f64).powi(2))
                .sum::<f64>()
            / (n * n);
        let binomial = f * (1.0 - f) / n;
        let deff = if binomial > 0.0 {
            (var / binomial).max(1.0)
        } else {
            1.0
        };
        ((n / deff).floor() as usize).clamp(1, total)
    };
    let (lo, hi) = ranks(effective, q);
    let at = |rank: usize| nearest_rank(all, rank as f64 / effective as f64);
    Ci {
        lo: lo.map(at),
        hi: hi.map(at),
        n: units,
        of,
    }
}

/// Order-statistic ranks (1-based) `(l, u)` of the q-quantile's interval
/// from `n` independent samples: P(X(l) > ξq) and P(X(u) < ξq) are each at
/// most 2.5 %. `None` where no rank is far enough out.
fn ranks(n: usize, q: f64) -> (Option<usize>, Option<usize>) {
    let Ok(b) = Binomial::new(q.clamp(0.0, 1.0), n as u64) else {
        return (None, None);
    };
    // X(l) > ξq iff fewer than l samples are below ξq: P(B <= l-1) <= TAIL.
    // The largest such l; cdf is monotone, so a binary search.
    let lo = {
        let (mut a, mut z) = (0u64, n as u64); // candidate l-1 in [a, z)
        if b.cdf(0) > TAIL {
            None
        } else {
            while z - a > 1 {
                let m = (a + z) / 2;
                if b.cdf(m) <= TAIL {
                    a = m;
                } else {
                    z = m;
                }
            }
            Some(a as usize + 1)
        }
    };
    // X(u) < ξq iff at least u samples are below: P(B >= u) <= TAIL. The smallest u.
    let hi = {
        let above = |u: u64| 1.0 - b.cdf(u - 1);
        if above(n as u64) > TAIL {
            None
        } else {
            let (mut a, mut z) = (1u64, n as u64); // answer in (a, z]
            if above(1) <= TAIL {
                z = 1;
            }
            while z - a > 1 {
                let m = (a + z) / 2;
                if above(m) <= TAIL {
                    z = m;
                } else {
                    a = m;
                }
            }
            Some(z as usize)
        }
    };
    (lo, hi)
}

/// Fewest independent samples whose q-quantile interval has an upper bound.
pub fn samples_for_upper(q: f64) -> usize {
    if q <= 0.0 {
        return 1;
    }
    if q >= 1.0 {
        return usize::MAX;
    }
    // P(B >= n) = q^n <= TAIL.
    (TAIL.ln() / q.ln()).ceil().max(1.0) as usize
}

/// The q-quantile (nearest rank) of sorted `v`.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unit_has_no_interval() {
        let c = mean_ci(&[2.0], Unit::Trials);
        assert_eq!((c.lo, c.hi, c.n), (None, None, 1));
        let c = quantile_ci(&[2.0], 0.5, Unit::Crashes);
        assert_eq!((c.lo, c.hi), (None, None));
        assert_eq!(c.show(1), "[?, ?]");
    }

    #[test]
    fn a_p99_needs_368_samples_for_its_upper_bound() {
        assert_eq!(samples_for_upper(0.99), 368);
        let v: Vec<f64> = (0..367).map(f64::from).collect();
        assert_eq!(quantile_ci(&v, 0.99, Unit::Samples).hi, None);
        let v: Vec<f64> = (0..368).map(f64::from).collect();
        assert_eq!(quantile_ci(&v, 0.99, Unit::Samples).hi, Some(367.0));
        // The median of 10 samples: the textbook ranks 2 and 9.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let c = quantile_ci(&v, 0.5, Unit::Samples);
        assert_eq!((c.lo, c.hi), (Some(2.0), Some(9.0)));
    }

    #[test]
    fn correlated_samples_count_as_their_units() {
        // 10 items, each seen identically by 100 nodes: about 10 samples'
        // worth, so the interval is about that of 10 samples ([2, 9]), not
        // the [5, 6] of 1000 independent ones.
        let items: Vec<Vec<f64>> = (1..=10).map(|i| vec![f64::from(i); 100]).collect();
        let groups: Vec<&[f64]> = items.iter().map(Vec::as_slice).collect();
        let c = clustered_quantile_ci(&groups, 0.5, Unit::Items);
        assert_eq!(c.n, 10);
        assert!(c.lo <= Some(3.0) && c.hi >= Some(8.0), "{c:?}");
        let pooled: Vec<f64> = items.concat();
        let naive = quantile_ci(&pooled, 0.5, Unit::Samples);
        assert!(naive.lo >= Some(5.0) && naive.hi <= Some(6.0), "{naive:?}");
    }
}
