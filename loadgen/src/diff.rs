//! `diff A B`: two reports compared figure by figure: the change, its 95 %
//! interval, and whether it is beyond noise (issue 15). Every summary
//! figure is better lower (times, rates, bytes, residue, copies), so a
//! figure that rose beyond noise regressed.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::report::Report;
use crate::stats::{Ci, LEVEL};

/// A figure and its interval.
type Figure = (f64, Option<Ci>);

/// One figure of both reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Dotted path into the summary (`by_kind.join.t100_s`).
    pub path: String,
    /// In A.
    pub a: f64,
    /// In B.
    pub b: f64,
    /// Interval of B − A, where both figures have a bounded interval.
    pub interval: Option<(f64, f64)>,
    /// What can be said.
    pub verdict: Said,
}

/// What a change is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Said {
    /// B is higher (worse) beyond noise.
    Higher,
    /// B is lower (better) beyond noise.
    Lower,
    /// The interval of the change holds zero.
    WithinNoise,
    /// A bound is missing on one side: too few samples to tell.
    TooFew,
    /// The figure has no interval (a count, a max, an older report).
    NoInterval,
}

impl Said {
    fn show(self) -> &'static str {
        match self {
            Said::Higher => "higher, beyond noise",
            Said::Lower => "lower, beyond noise",
            Said::WithinNoise => "within noise",
            Said::TooFew => "too few samples to tell",
            Said::NoInterval => "no interval",
        }
    }
}

/// Every figure both summaries have, in path order. Each interval is
/// widened so that all of them together hold at 95 % (Bonferroni over the
/// figures with intervals): two runs of the same code then say "no change
/// beyond noise" 95 % of the time, however many figures they share.
pub fn diff(a: &Report, b: &Report) -> Vec<Change> {
    let (fa, fb) = (figures(&a.summary), figures(&b.summary));
    let both: Vec<(&String, &Figure, &Figure)> = fa
        .iter()
        .filter_map(|(k, x)| fb.get(k).map(|y| (k, x, y)))
        .collect();
    let tested = both
        .iter()
        .filter(|(_, x, y)| x.1.is_some() && y.1.is_some())
        .count()
        .max(1);
    let widen = widening(tested);
    both.into_iter()
        .map(|(path, &(a, ca), &(b, cb))| {
            let (interval, verdict) = match (ca, cb) {
                (Some(ca), Some(cb)) => change_interval(a, &ca, b, &cb, widen),
                _ => (None, Said::NoInterval),
            };
            Change {
                path: path.clone(),
                a,
                b,
                interval,
                verdict,
            }
        })
        .collect()
}

/// The interval of B − A from each side's interval, half-widths widened by
/// `widen` and added in quadrature on the side each bounds (independent
/// runs; exact for normal estimates, close for order statistics).
fn change_interval(a: f64, ca: &Ci, b: f64, cb: &Ci, widen: f64) -> (Option<(f64, f64)>, Said) {
    let d = b - a;
    if d == 0.0 {
        return (Some((0.0, 0.0)), Said::WithinNoise);
    }
    let (Some(la), Some(ha), Some(lb), Some(hb)) = (ca.lo, ca.hi, cb.lo, cb.hi) else {
        // One side's missing bound may not matter: B above A needs only
        // B's lower and A's upper bound.
        let (b_side, a_side) = if d > 0.0 {
            (cb.lo, ca.hi)
        } else {
            (cb.hi, ca.lo)
        };
        return match (b_side, a_side) {
            (Some(bs), Some(as_)) => {
                let half = widen * ((b - bs).powi(2) + (as_ - a).powi(2)).sqrt();
                let beyond = half < d.abs();
                (None, if beyond { direction(d) } else { Said::TooFew })
            }
            _ => (None, Said::TooFew),
        };
    };
    let lo = d - widen * ((b - lb).powi(2) + (ha - a).powi(2)).sqrt();
    let hi = d + widen * ((hb - b).powi(2) + (a - la).powi(2)).sqrt();
    let said = if lo > 0.0 || hi < 0.0 {
        direction(d)
    } else {
        Said::WithinNoise
    };
    (Some((lo, hi)), said)
}

fn direction(d: f64) -> Said {
    if d > 0.0 {
        Said::Higher
    } else {
        Said::Lower
    }
}

/// How much wider an interval must be for `m` of them to hold together.
fn widening(m: usize) -> f64 {
    let Ok(z) = Normal::new(0.0, 1.0) else {
        return 1.0;
    };
    let tail = (1.0 - LEVEL) / 2.0;
    z.inverse_cdf(1.0 - tail / m as f64) / z.inverse_cdf(1.0 - tail)
}

/// Every numeric figure of a summary with its interval, by dotted path;
/// lists of per-kind figures by their kind. Counts of what a figure is
/// over (`nodes`, `trials`, `count`, `items`) are not figures.
pub fn figures(summary: &crate::metrics::Summary) -> BTreeMap<String, Figure> {
    let mut out = BTreeMap::new();
    if let Ok(v) = serde_json::to_value(summary) {
        walk("", &v, &mut out);
    }
    out
}

fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Figure>) {
    let Value::Object(map) = v else {
        return;
    };
    for (k, x) in map {
        if k.ends_with("_ci") || ["nodes", "trials", "count", "items"].contains(&k.as_str()) {
            continue;
        }
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match x {
            Value::Number(n) => {
                let ci = map
                    .get(&format!("{k}_ci"))
                    .and_then(|c| serde_json::from_value(c.clone()).ok());
                if let Some(f) = n.as_f64() {
                    out.insert(path, (f, ci));
                }
            }
            Value::Object(_) => walk(&path, x, out),
            Value::Array(items) => {
                for item in items {
                    if let Some(kind) = item.get("kind").and_then(Value::as_str) {
                        walk(&format!("{path}.{kind}"), item, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The comparison as Markdown, ending in the verdict line.
pub fn markdown(a: &Report, b: &Report, changes: &[Change]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# diff\n");
    for (name, r) in [("A", a), ("B", b)] {
        let busy = r
            .host
            .as_ref()
            .filter(|h| h.busy)
            .map_or(String::new(), |h| {
                format!("; busy host: {}", h.why.join("; "))
            });
        let _ = writeln!(
            o,
            "- {name}: {} ({}, commit {}, {} trial(s){busy})",
            r.run_id, r.world, r.commit, r.trials_done
        );
    }
    let _ = writeln!(
        o,
        "\nIntervals of the change hold at 95 % for all the figures together.\n"
    );
    let _ = writeln!(
        o,
        "| figure | A | B | B − A | interval | |\n|---|---:|---:|---:|---:|---|"
    );
    let g = crate::compare::fmt;
    for c in changes {
        let rel = if c.a != 0.0 {
            format!(" ({:+.1} %)", (c.b - c.a) / c.a.abs() * 100.0)
        } else {
            String::new()
        };
        let iv = c
            .interval
            .map_or("–".into(), |(l, h)| format!("[{}, {}]", g(l), g(h)));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {}{rel} | {iv} | {} |",
            c.path,
            g(c.a),
            g(c.b),
            g(c.b - c.a),
            c.verdict.show()
        );
    }
    let moved: Vec<String> = changes
        .iter()
        .filter(|c| matches!(c.verdict, Said::Higher | Said::Lower))
        .map(|c| {
            format!(
                "{} {}",
                c.path,
                c.verdict.show().split(',').next().unwrap_or("")
            )
        })
        .collect();
    let few = changes.iter().filter(|c| c.verdict == Said::TooFew).count();
    let untold = match few {
        0 => String::new(),
        n => format!(" {n} figure(s) had too few samples to tell: more trials would."),
    };
    let compared = changes.iter().any(|c| c.verdict != Said::NoInterval);
    let said = match (compared, moved.is_empty()) {
        // Reports from before intervals: nothing can be told from noise.
        (false, _) => "Noise cannot be told: no figure has an interval in both reports (reports from before intervals have none).".to_string(),
        (true, true) => "No change beyond noise.".to_string(),
        (true, false) => format!("Changed beyond noise: {}.", moved.join(", ")),
    };
    let _ = writeln!(o, "\n{said}{untold}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Unit;

    fn ci(lo: f64, hi: f64) -> Ci {
        Ci {
            lo: Some(lo),
            hi: Some(hi),
            n: 10,
            of: Unit::Crashes,
        }
    }

    #[test]
    fn a_change_is_beyond_noise_only_when_its_interval_leaves_zero() {
        let (iv, s) = change_interval(3.0, &ci(2.9, 3.1), 2.0, &ci(1.9, 2.1), 1.0);
        assert_eq!(s, Said::Lower);
        let (l, h) = iv.unwrap();
        assert!(
            (l + 1.1414).abs() < 1e-3 && (h + 0.8586).abs() < 1e-3,
            "{l} {h}"
        );
        let (_, s) = change_interval(3.0, &ci(2.5, 3.5), 3.2, &ci(2.7, 3.7), 1.0);
        assert_eq!(s, Said::WithinNoise);
        // B far above A needs only B's lower and A's upper bound.
        let open = Ci {
            hi: None,
            ..ci(9.0, 0.0)
        };
        let (_, s) = change_interval(3.0, &ci(2.9, 3.1), 9.5, &open, 1.0);
        assert_eq!(s, Said::Higher);
        let none = Ci::default();
        assert_eq!(change_interval(3.0, &none, 9.5, &none, 1.0).1, Said::TooFew);
    }

    #[test]
    fn many_figures_widen_each_interval() {
        assert!((widening(1) - 1.0).abs() < 1e-9);
        let w = widening(30);
        assert!(w > 1.5 && w < 1.7, "{w}");
    }
}
