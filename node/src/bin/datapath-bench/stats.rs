//! The bench's statistics and its record of the machine: mean, spread and
//! Student's t interval of repeated measurements, and how busy the rest of
//! the machine was meanwhile.

use serde_json::{json, Value};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean, sample standard deviation and 95 % t-interval of repeated
/// measurements (the interval is the mean's: reps are independent draws).
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Summary {
    /// `None` for no values; one value has no spread (an interval of zero width
    /// would claim a precision never measured, so it is infinite).
    pub fn of(xs: &[f64]) -> Option<Summary> {
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n == 1 {
            return Some(Summary {
                n,
                mean,
                sd: f64::NAN,
                lo: f64::NEG_INFINITY,
                hi: f64::INFINITY,
            });
        }
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        // Invariant: n >= 2, so the degrees of freedom are positive.
        let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
            .map(|d| d.inverse_cdf(0.975))
            .unwrap_or(f64::INFINITY);
        let half = t * sd / (n as f64).sqrt();
        Some(Summary {
            n,
            mean,
            sd,
            lo: mean - half,
            hi: mean + half,
        })
    }

    /// Half the interval's width relative to the mean, in percent.
    pub fn half_width_pct(&self) -> f64 {
        (self.hi - self.lo) / 2.0 / self.mean.abs().max(f64::MIN_POSITIVE) * 100.0
    }

    pub fn json(&self) -> Value {
        let num = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
        json!({ "n": self.n, "mean": num(self.mean), "sd": num(self.sd), "ci95": [num(self.lo), num(self.hi)] })
    }
}

/// CPU time the whole machine spent busy so far (all CPUs, /proc/stat's
/// first line without idle and iowait), seconds; `None` where unreadable.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    // USER_HZ is 100 on every Linux architecture the node builds for.
    Some((total - idle) as f64 / 100.0)
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_the_t_interval_of_the_mean() {
        let s = Summary::of(&[10.0, 12.0, 14.0]).unwrap();
        assert!((s.mean - 12.0).abs() < 1e-12);
        assert!((s.sd - 2.0).abs() < 1e-12);
        // t(0.975, 2) = 4.303; half width 4.303 * 2 / sqrt(3) = 4.968.
        assert!((s.hi - 16.968).abs() < 1e-3, "{s:?}");
        assert!((s.lo - 7.032).abs() < 1e-3, "{s:?}");
        let one = Summary::of(&[5.0]).unwrap();
        assert!(one.lo.is_infinite() && one.hi.is_infinite());
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn the_machine_is_readable() {
        assert!(machine_busy_seconds().is_some_and(|b| b > 0.0));
        assert!(loadavg().is_some());
    }
}
