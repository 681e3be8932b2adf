//! Sweeps: a grid of runs over scenario fields, a Pareto front of cost against
//! what it buys, and the cheapest setting that meets the user's targets.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use crate::metrics::Summary;

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
            anyhow!("--sweep {s:?}: expected key=v1,v2,..., e.g. profile.fanout=1,2,3")
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
        let mut v = serde_json::to_value(summary).ok()?;
        for k in self.path.split('.') {
            v = v.get(k)?.clone();
        }
        v.as_f64()
    }
}

/// One grid point's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Axis key to value.
    pub params: BTreeMap<String, String>,
    /// Its summary.
    pub summary: Summary,
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
    /// Index of the cheapest point meeting every target, if any.
    pub recommended: Option<usize>,
    /// The recommendation in words.
    pub statement: String,
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
        let meets = |p: &Point| {
            self.targets
                .iter()
                .all(|t| t.value(&p.summary).is_some_and(|v| v <= t.max))
        };
        self.recommended = self
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| meets(p) && p.cost().is_some())
            .min_by(|a, b| {
                a.1.cost()
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.1.cost().unwrap_or(f64::MAX))
            })
            .map(|(i, _)| i);
        let targets = self
            .targets
            .iter()
            .map(|t| format!("{} <= {}", t.path, t.max))
            .collect::<Vec<_>>()
            .join(", ");
        self.statement = match (self.recommended, self.targets.is_empty()) {
            (Some(i), true) => format!(
                "No targets given; the cheapest setting is {} at {:.0} wire bytes/node/s.",
                self.points[i].label(),
                self.points[i].cost().unwrap_or(0.0)
            ),
            (Some(i), false) => format!(
                "Cheapest setting meeting {targets}: {} at {:.0} wire bytes/node/s.",
                self.points[i].label(),
                self.points[i].cost().unwrap_or(0.0)
            ),
            (None, _) => format!("No setting in this sweep meets {targets}."),
        };
    }
}

/// The sweep as Markdown tables.
pub fn markdown(sw: &SweepResult) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Sweep\n");
    let _ = writeln!(o, "{}\n", sw.statement);
    let _ = writeln!(
        o,
        "| setting | wire B/node/s | msgs/node/s | detect all FAIL p50 / max s | latency p99 ms | redundancy | false FAILs | pareto | meets targets |\n|---|---:|---:|---:|---:|---:|---:|:-:|:-:|"
    );
    for (i, p) in sw.points.iter().enumerate() {
        let s = &p.summary;
        let f = |v: Option<f64>, d: usize| v.map_or("–".to_string(), |v| format!("{v:.d$}"));
        let meets = sw
            .targets
            .iter()
            .all(|t| t.value(s).is_some_and(|v| v <= t.max));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.label(),
            f(s.wire_bytes_per_node_s.map(|w| w.mean), 0),
            f(s.msgs_per_node_s.map(|m| m.mean), 2),
            s.detect_all_fail_s
                .map_or("–".into(), |d| format!("{:.2} / {:.2}", d.p50, d.max)),
            f(s.latency_ms.map(|l| l.p99), 1),
            f(s.redundancy.map(|r| r.mean), 2),
            s.false_fails.map_or("–".into(), |x| x.to_string()),
            if sw.pareto.contains(&i) { "●" } else { "" },
            if sw.targets.is_empty() {
                "–"
            } else if meets {
                "yes"
            } else {
                "no"
            },
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
            params: BTreeMap::from([("profile.fanout".into(), format!("{cost}"))]),
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
}
