//! Sweeps: a grid of runs over scenario fields, a Pareto front of cost against
//! what it buys, and the cheapest setting that meets the user's targets.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use crate::metrics::Summary;
use crate::stats::{self, Ci};

/// One axis: a scenario field and the values it takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Axis {
    /// Dotted scenario field, e.g. `profile.node_timeout_ms`.
    pub key: String,
    /// Values, as given.
    pub values: Vec<String>,
}

impl Axis {
    /// Parses `key=v1,v2,...`.
    ///
    /// # Errors
    /// A malformed axis, in one line.
    pub fn parse(s: &str) -> Result<Axis> {
        let (key, vals) = s.split_once('=').ok_or_else(|| {
            anyhow!("--sweep {s:?}: expected key=v1,v2,..., e.g. profile.random_ping_fanout=1,2,3")
        })?;
        let values: Vec<String> = vals
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if key.trim().is_empty() || values.is_empty() {
            bail!("--sweep {s:?}: needs a key and at least one value");
        }
        Ok(Axis {
            key: key.trim().into(),
            values,
        })
    }
}

/// A target: a summary figure (dotted path) and its upper bound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Dotted path into the summary, e.g. `detect_all_fail_s.p99`.
    pub path: String,
    /// The figure must be at most this.
    pub max: f64,
}

impl Target {
    /// Parses `path=value` or `path<=value`.
    ///
    /// # Errors
    /// A malformed target, in one line.
    pub fn parse(s: &str) -> Result<Target> {
        let (path, v) = s
            .split_once("<=")
            .or_else(|| s.split_once('='))
            .ok_or_else(|| {
                anyhow!("--target {s:?}: expected figure=max, e.g. detect_all_fail_s.p99=3")
            })?;
        let max = v
            .trim()
            .parse()
            .map_err(|_| anyhow!("--target {s:?}: {v:?} is not a number"))?;
        Ok(Target {
            path: path.trim().into(),
            max,
        })
    }

    /// The figure in `summary`, if it has it.
    pub fn value(&self, summary: &Summary) -> Option<f64> {
        lookup(summary, &self.path)?.as_f64()
    }

    /// The figure's 95 % interval (`<path>_ci`), if it has one.
    pub fn ci(&self, summary: &Summary) -> Option<Ci> {
        serde_json::from_value(lookup(summary, &format!("{}_ci", self.path))?).ok()
    }

    /// Whether `summary` meets the target at 95 %: met when the interval's
    /// upper bound is within it, missed when its lower bound is beyond it,
    /// otherwise undecided. A figure without an interval (a count, a max,
    /// a report from before intervals) is compared as it is.
    pub fn verdict(&self, summary: &Summary) -> Verdict {
        let Some(v) = self.value(summary) else {
            return Verdict::Missed;
        };
        let Some(ci) = self.ci(summary) else {
            return if v <= self.max {
                Verdict::Met
            } else {
                Verdict::Missed
            };
        };
        match (ci.lo, ci.hi) {
            (_, Some(hi)) if hi <= self.max => Verdict::Met,
            (Some(lo), _) if lo > self.max => Verdict::Missed,
            _ => Verdict::Undecided {
                more_trials: self.more_trials(v, &ci, summary.trials),
            },
        }
    }

    /// About how many more trials would decide an undecided target: the
    /// units its interval is over must grow until the bound on the open
    /// side exists and, as intervals narrow with the square root of the
    /// units, clears the target. `None` where nothing would (the figure
    /// sits on the target, or no unit was measured).
    fn more_trials(&self, v: f64, ci: &Ci, trials: usize) -> Option<usize> {
        if ci.n == 0 || trials == 0 {
            return None;
        }
        let per_trial = ci.n as f64 / trials as f64;
        let q = self.quantile();
        let need_units = if v <= self.max {
            match ci.hi {
                None => q.map_or(2, stats::samples_for_upper) as f64,
                Some(hi) if self.max > v => ci.n as f64 * ((hi - v) / (self.max - v)).powi(2),
                Some(_) => return None,
            }
        } else {
            match ci.lo {
                // The lower bound of a quantile needs few samples; of a mean, two.
                None => (ci.n + 1).max(2) as f64,
                Some(lo) => ci.n as f64 * ((v - lo) / (v - self.max)).powi(2),
            }
        };
        let trials_needed = (need_units / per_trial).ceil().min(1e6) as usize;
        Some(trials_needed.saturating_sub(trials).max(1))
    }

    /// The quantile the target's figure is (`p99` is 0.99), if it is one.
    fn quantile(&self) -> Option<f64> {
        let last = self.path.rsplit('.').next()?;
        let digits = last.strip_prefix('p')?;
        let x: f64 = digits.parse().ok()?;
        Some(x / 10f64.powi(digits.len() as i32))
    }
}

/// A value at a dotted path in the summary.
fn lookup(summary: &Summary, path: &str) -> Option<serde_json::Value> {
    let mut v = serde_json::to_value(summary).ok()?;
    for k in path.split('.') {
        v = v.get(k)?.clone();
    }
    Some(v)
}

/// Whether a point meets the targets, at 95 %.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "decision")]
pub enum Verdict {
    /// Every target met (its bound on the bad side within it).
    Met,
    /// Some target missed (its bound on the good side beyond it).
    Missed,
    /// The samples cannot tell yet.
    Undecided {
        /// About how many more trials would tell, if anything would.
        more_trials: Option<usize>,
    },
}

impl Verdict {
    /// All targets together: missed if any is, else undecided if any is
    /// (needing the most trials of them), else met.
    fn all(vs: impl Iterator<Item = Verdict>) -> Verdict {
        let mut out = Verdict::Met;
        for v in vs {
            out = match (out, v) {
                (Verdict::Missed, _) | (_, Verdict::Missed) => Verdict::Missed,
                (Verdict::Undecided { more_trials: a }, Verdict::Undecided { more_trials: b }) => {
                    Verdict::Undecided {
                        more_trials: a.zip(b).map(|(a, b)| a.max(b)),
                    }
                }
                (u @ Verdict::Undecided { .. }, Verdict::Met) | (Verdict::Met, u) => u,
            };
        }
        out
    }

    /// In words, for the sweep table.
    pub fn show(&self) -> String {
        match self {
            Verdict::Met => "yes".into(),
            Verdict::Missed => "no".into(),
            Verdict::Undecided {
                more_trials: Some(n),
            } => format!("undecided: need about {n} more trial{}", plural(*n)),
            Verdict::Undecided { more_trials: None } => {
                "undecided: the figure sits on the target".into()
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One grid point's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Axis key to value.
    pub params: BTreeMap<String, String>,
    /// Its summary.
    pub summary: Summary,
    /// Whether it meets the targets at 95 % (absent without targets, and
    /// in reports from before intervals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

impl Point {
    /// Cost: wire bytes per node per second (mean), else traffic per node.
    pub fn cost(&self) -> Option<f64> {
        self.summary
            .wire_bytes_per_node_s
            .map(|w| w.mean)
            .or(self.summary.traffic)
    }

    /// What the cost buys, lower is better: detection time to FAIL everywhere
    /// (p50), else dissemination latency (p99), else rounds.
    pub fn benefit(&self) -> Option<(String, f64)> {
        let s = &self.summary;
        s.detect_all_fail_s
            .map(|d| ("detect_all_fail_s.p50".to_string(), d.p50))
            .or_else(|| s.latency_ms.map(|l| ("latency_ms.p99".to_string(), l.p99)))
            .or_else(|| s.t_last.map(|t| ("t_last".to_string(), t)))
    }

    /// Short label: `key=value` pairs.
    pub fn label(&self) -> String {
        self.params
            .iter()
            .map(|(k, v)| format!("{}={v}", short(k)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Everything a sweep found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// The grid.
    pub axes: Vec<Axis>,
    /// Finished points, in grid order.
    pub points: Vec<Point>,
    /// The user's targets.
    pub targets: Vec<Target>,
    /// Indices of the points on the Pareto front of cost against benefit.
    pub pareto: Vec<usize>,
    /// Index of the cheapest point meeting every target at 95 %, if any.
    pub recommended: Option<usize>,
    /// Indices of the points the samples cannot decide yet, cheaper than
    /// the recommended one (all of them without one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undecided: Vec<usize>,
    /// The recommendation in words.
    pub statement: String,
    /// `--trials auto`: how adding trials went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoTrials>,
}

/// How `--trials auto` went.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoTrials {
    /// The time budget, s.
    pub budget_s: f64,
    /// Rounds of added trials after the first.
    pub rounds: usize,
    /// Why it stopped: `decided`, `budget` (the next round would not fit),
    /// `nothing more would decide`, or `interrupted`.
    pub ended: String,
}

/// Every grid point: one override list per point, in row-major order.
pub fn grid(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let mut out = vec![Vec::new()];
    for a in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                a.values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((a.key.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out
}

impl SweepResult {
    /// Recomputes the Pareto front and the recommendation from the points.
    pub fn analyse(&mut self) {
        let scored: Vec<(usize, f64, f64)> = self
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.cost()?, p.benefit()?.1)))
            .collect();
        self.pareto = scored
            .iter()
            .filter(|&&(i, c, b)| {
                !scored
                    .iter()
                    .any(|&(j, c2, b2)| j != i && c2 <= c && b2 <= b && (c2 < c || b2 < b))
            })
            .map(|&(i, _, _)| i)
            .collect();
        for p in &mut self.points {
            p.verdict = (!self.targets.is_empty())
                .then(|| Verdict::all(self.targets.iter().map(|t| t.verdict(&p.summary))));
        }
        let cost = |i: usize| self.points[i].cost().unwrap_or(f64::MAX);
        // Without targets every point qualifies (verdict None).
        self.recommended = (0..self.points.len())
            .filter(|&i| {
                let p = &self.points[i];
                p.verdict.is_none_or(|v| v == Verdict::Met) && p.cost().is_some()
            })
            .min_by(|&a, &b| cost(a).total_cmp(&cost(b)));
        let mut undecided: Vec<usize> = (0..self.points.len())
            .filter(|&i| matches!(self.points[i].verdict, Some(Verdict::Undecided { .. })))
            .filter(|&i| self.recommended.is_none_or(|r| cost(i) < cost(r)))
            .collect();
        undecided.sort_by(|&a, &b| cost(a).total_cmp(&cost(b)));
        self.undecided = undecided;
        self.statement = self.statement();
    }

    /// The recommendation in words, with how sure it is.
    fn statement(&self) -> String {
        let targets = self
            .targets
            .iter()
            .map(|t| format!("{} <= {}", t.path, t.max))
            .collect::<Vec<_>>()
            .join(", ");
        let open = self
            .undecided
            .iter()
            .map(|&i| {
                let p = &self.points[i];
                let why = p.verdict.map(|v| v.show()).unwrap_or_default();
                format!("{} ({why})", p.label())
            })
            .collect::<Vec<_>>()
            .join("; ");
        let at = |i: usize| {
            format!(
                "{} at {:.0} wire bytes/node/s",
                self.points[i].label(),
                self.points[i].cost().unwrap_or(0.0)
            )
        };
        let said = match (self.recommended, self.targets.is_empty()) {
            (Some(i), true) => format!("No targets given; the cheapest setting is {}.", at(i)),
            (Some(i), false) if self.undecided.is_empty() => format!(
                "Cheapest setting meeting {targets}: {}. Sure at 95 %: each target's bound on the bad side is within it, and every cheaper setting misses a target with 95 % confidence.",
                at(i)
            ),
            (Some(i), false) => format!(
                "Cheapest setting shown to meet {targets} at 95 %: {}. Not sure it is the cheapest: cheaper settings are still undecided: {open}.",
                at(i)
            ),
            (None, _) if !self.undecided.is_empty() => format!(
                "No setting is shown to meet {targets} at 95 %; too few samples to decide: {open}. Nothing is recommended."
            ),
            (None, _) => format!("No setting in this sweep meets {targets}."),
        };
        match &self.auto {
            Some(a) if !a.ended.is_empty() => format!(
                "{said} (--trials auto: {} round(s) of added trials in a {:.0} s budget; ended: {}.)",
                a.rounds, a.budget_s, a.ended
            ),
            _ => said,
        }
    }
}

/// The sweep as Markdown tables.
pub fn markdown(sw: &SweepResult) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Sweep\n");
    let _ = writeln!(o, "{}\n", sw.statement);
    let _ = writeln!(
        o,
        "| setting | trials | wire B/node/s | detect all FAIL p50 [95 % CI] | p99 [95 % CI] | max s | latency p99 ms | redundancy | false FAILs | false PFAILs | pareto | meets targets (95 %) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|"
    );
    for (i, p) in sw.points.iter().enumerate() {
        let s = &p.summary;
        let f = |v: Option<f64>, d: usize| v.map_or("–".to_string(), |v| format!("{v:.d$}"));
        let meets = match (sw.targets.is_empty(), p.verdict) {
            (true, _) => "–".to_string(),
            (false, Some(v)) => v.show(),
            // A report from before verdicts: the figures as they are.
            (false, None) => Verdict::all(sw.targets.iter().map(|t| t.verdict(s))).show(),
        };
        let d = s.detect_all_fail_s;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {meets} |",
            p.label(),
            s.trials,
            f(s.wire_bytes_per_node_s.map(|w| w.mean), 0),
            d.map_or("–".into(), |d| stats::with_ci(
                d.p50,
                d.p50_ci.as_ref(),
                2
            )),
            d.map_or("–".into(), |d| stats::with_ci(
                d.p99,
                d.p99_ci.as_ref(),
                2
            )),
            f(d.map(|d| d.max), 2),
            f(s.latency_ms.map(|l| l.p99), 1),
            f(s.redundancy.map(|r| r.mean), 2),
            s.false_fails.map_or("–".into(), |x| x.to_string()),
            s.false_pfails.map_or("–".into(), |x| x.to_string()),
            if sw.pareto.contains(&i) { "●" } else { "" },
        );
    }
    o.push('\n');
    o
}

/// The last part of a dotted key.
pub fn short(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::P50Max;
    use crate::observe::MeanMax;

    fn point(cost: f64, detect: f64) -> Point {
        Point {
            params: BTreeMap::from([("profile.random_ping_fanout".into(), format!("{cost}"))]),
            summary: Summary {
                wire_bytes_per_node_s: Some(MeanMax {
                    mean: cost,
                    max: cost,
                    mean_ci: None,
                }),
                detect_all_fail_s: Some(P50Max {
                    p50: detect,
                    p99: detect,
                    max: detect,
                    count: 1,
                    ..P50Max::default()
                }),
                ..Summary::default()
            },
            verdict: None,
        }
    }

    #[test]
    fn the_grid_is_the_cartesian_product() {
        let axes = vec![
            Axis::parse("a=1,2").unwrap(),
            Axis::parse("b=x,y,z").unwrap(),
        ];
        let g = grid(&axes);
        assert_eq!(g.len(), 6);
        assert_eq!(
            g[5],
            vec![("a".into(), "2".into()), ("b".into(), "z".into())]
        );
    }

    #[test]
    fn the_cheapest_point_meeting_the_targets_is_recommended() {
        let mut sw = SweepResult {
            points: vec![
                point(100.0, 9.0),
                point(200.0, 4.0),
                point(300.0, 2.0),
                point(400.0, 3.0),
            ],
            targets: vec![Target::parse("detect_all_fail_s.p99=5").unwrap()],
            ..SweepResult::default()
        };
        sw.analyse();
        assert_eq!(sw.recommended, Some(1));
        assert_eq!(sw.pareto, vec![0, 1, 2]); // 400 costs more and detects slower than 300
        sw.targets = vec![Target::parse("detect_all_fail_s.p99<=1").unwrap()];
        sw.analyse();
        assert_eq!(sw.recommended, None);
        assert!(sw.statement.starts_with("No setting"), "{}", sw.statement);
    }

    /// A point whose detections are `samples` crashes, one per trial.
    fn sampled(cost: f64, samples: &[f64]) -> Point {
        let mut t: Vec<f64> = samples.to_vec();
        let mut p = point(cost, 0.0);
        let d = p.summary.detect_all_fail_s.as_mut().unwrap();
        d.p50_ci = Some(stats::quantile_ci(&t, 0.5, stats::Unit::Crashes));
        d.p99_ci = Some(stats::quantile_ci(&t, 0.99, stats::Unit::Crashes));
        d.p50 = crate::metrics::quantile(&mut t, 0.5);
        d.p99 = crate::metrics::quantile(&mut t, 0.99);
        d.count = t.len();
        p.summary.trials = t.len();
        p
    }

    #[test]
    fn too_few_samples_leave_a_target_undecided_with_the_trials_it_needs() {
        let mut sw = SweepResult {
            points: vec![
                sampled(100.0, &[2.0]),      // one crash: p99 unbounded above
                sampled(200.0, &[9.0]),      // one crash above: p99 >= 9 at 99 %
                sampled(300.0, &[1.0; 400]), // 400 crashes at 1 s: met
            ],
            targets: vec![Target::parse("detect_all_fail_s.p99=5").unwrap()],
            ..SweepResult::default()
        };
        sw.analyse();
        let v: Vec<_> = sw.points.iter().map(|p| p.verdict.unwrap()).collect();
        assert_eq!(
            v,
            vec![
                Verdict::Undecided {
                    more_trials: Some(367)
                },
                Verdict::Missed,
                Verdict::Met
            ]
        );
        assert_eq!(sw.recommended, Some(2));
        assert_eq!(sw.undecided, vec![0]);
        assert!(sw.statement.contains("Not sure"), "{}", sw.statement);
        assert!(
            sw.statement.contains("need about 367 more trials"),
            "{}",
            sw.statement
        );
        // The p50 of one crash cannot be bounded either; of 20 it can.
        sw.targets = vec![Target::parse("detect_all_fail_s.p50=5").unwrap()];
        sw.points.truncate(1);
        sw.points.push(sampled(50.0, &[2.0; 20]));
        sw.analyse();
        assert_eq!(sw.points[1].verdict, Some(Verdict::Met));
        assert_eq!(sw.recommended, Some(1));
        assert!(sw.statement.contains("Sure at 95 %"), "{}", sw.statement);
    }
}
