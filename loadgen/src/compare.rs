//! `compare`: one scenario in several worlds back to back, one report with
//! the figures side by side, the first world's divided by each other's
//! (ours ÷ theirs with `--worlds udp,redis`), and the charts overlaid.
//!
//! Each world's own report is written whole into `<dir>/<world>/`; the
//! comparison (`<dir>/report.json`) keeps every side's report too, so that
//! `gossip-loadgen report DIR` renders it again. The comparison is rewritten
//! after each world finishes: an interruption or a failing world loses none
//! that finished.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::metrics::Summary;
use crate::report::charts::{self, Series};
use crate::report::Report;

/// The sides of a comparison, in the order asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// One report per world.
    pub sides: Vec<Report>,
}

/// A figure compared: its label and how to read it from a summary.
type Figure = (&'static str, fn(&Summary) -> Option<f64>);

/// The figures a comparison lines up, those present in some side shown.
const FIGURES: &[Figure] = &[
    ("messages / node / s", |s| s.msgs_per_node_s.map(|m| m.mean)),
    ("PING / node / s", |s| by_type(s, "ping")),
    ("PONG / node / s", |s| by_type(s, "pong")),
    ("MEET / node / s", |s| by_type(s, "meet")),
    ("messages / node / s, busiest node", |s| {
        s.msgs_per_node_s.map(|m| m.max)
    }),
    ("payload bytes / node / s", |s| {
        s.bytes_per_node_s.map(|m| m.mean)
    }),
    ("wire bytes / node / s", |s| {
        s.wire_bytes_per_node_s.map(|m| m.mean)
    }),
    ("payload bytes / message", |s| {
        Some(s.bytes_per_node_s?.mean / s.msgs_per_node_s?.mean)
    }),
    ("first PFAIL after a crash, p50 s", |s| {
        s.detect_first_pfail_s.map(|d| d.p50)
    }),
    ("first FAIL after a crash, p50 s", |s| {
        s.detect_first_fail_s.map(|d| d.p50)
    }),
    ("FAIL at every node, p50 s", |s| {
        s.detect_all_fail_s.map(|d| d.p50)
    }),
    ("FAIL at every node, max s", |s| {
        s.detect_all_fail_s.map(|d| d.max)
    }),
    ("crashes never FAILed everywhere", |s| {
        s.undetected.map(|u| u as f64)
    }),
    ("join known everywhere after, s", |s| {
        kind(s, "join", |k| k.t100_s)
    }),
    ("join copies / node reached", |s| {
        kind(s, "join", |k| k.redundancy.map(|r| r.mean))
    }),
    ("FAIL spread to every node, s", |s| {
        kind(s, "fail", |k| k.t100_s)
    }),
    ("FAIL copies / node reached", |s| {
        kind(s, "fail", |k| k.redundancy.map(|r| r.mean))
    }),
    ("false FAILs", |s| s.false_fails.map(|f| f as f64)),
    ("agreement after a heal, resume or restart, p50 s", |s| {
        s.recover_s.map(|r| r.p50)
    }),
    ("agreement after a heal, resume or restart, max s", |s| {
        s.recover_s.map(|r| r.max)
    }),
    ("recoveries never at agreement", |s| {
        s.unrecovered.map(|u| u as f64)
    }),
    ("node pairs disagreeing at the end", |s| {
        s.disagreeing_pairs.map(|p| p as f64)
    }),
    ("CPU s / node-s", |s| s.cpu_s_per_node_s),
];

fn by_type(s: &Summary, kind: &str) -> Option<f64> {
    s.overhead_by_type
        .as_ref()?
        .iter()
        .find(|t| t.kind == kind)
        .map(|t| t.msgs_per_node_s)
}

fn kind(
    s: &Summary,
    name: &str,
    f: impl Fn(&crate::metrics::KindSummary) -> Option<f64>,
) -> Option<f64> {
    s.by_kind.iter().find(|k| k.kind == name).and_then(f)
}

impl Comparison {
    /// The side-by-side table as Markdown: a column per world, then the first
    /// world's figure divided by each other world's.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let Some(first) = self.sides.first() else {
            return o;
        };
        let name = |r: &Report| match &r.datapath {
            Some(d) => format!("{} ({d})", r.world),
            None => r.world.clone(),
        };
        let _ = write!(o, "| figure |");
        for r in &self.sides {
            let _ = write!(o, " {} |", name(r));
        }
        for r in &self.sides[1..] {
            let _ = write!(o, " {} ÷ {} |", first.world, r.world);
        }
        let _ = write!(o, "\n|---|");
        for _ in 0..(2 * self.sides.len() - 1) {
            o.push_str("---:|");
        }
        o.push('\n');
        for (label, f) in FIGURES {
            let values: Vec<Option<f64>> = self.sides.iter().map(|r| f(&r.summary)).collect();
            if values.iter().all(Option::is_none) {
                continue;
            }
            let _ = write!(o, "| {label} |");
            for v in &values {
                let _ = write!(o, " {} |", v.map_or("–".into(), fmt));
            }
            for v in &values[1..] {
                let ratio = match (values[0], v) {
                    (Some(a), Some(b)) if *b != 0.0 => format!("{:.2}", a / b),
                    _ => "–".into(),
                };
                let _ = write!(o, " {ratio} |");
            }
            o.push('\n');
        }
        o.push('\n');
        for r in &self.sides {
            let _ = writeln!(
                o,
                "- {}: {} of {} trial(s){}, {:.0} s wall",
                name(r),
                r.trials_done,
                r.trials_requested,
                if r.interrupted { ", interrupted" } else { "" },
                r.wall_s
            );
        }
        o
    }

    /// The charts, overlaid: upkeep by message type, and the CDFs of each
    /// item kind's spread, one colour per world.
    ///
    /// # Errors
    /// A chart that cannot be drawn.
    pub fn figures(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let types = ["ping", "pong", "meet"];
        let series: Vec<Series> = self
            .sides
            .iter()
            .filter_map(|r| {
                let points = types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Some((i as f64, by_type(&r.summary, t)?)))
                    .collect::<Option<Vec<_>>>()?;
                Some(Series {
                    name: r.world.clone(),
                    points,
                    line: true,
                    ..Series::default()
                })
            })
            .collect();
        if !series.is_empty() {
            out.push((
                "Membership upkeep by message type, messages per node per second (0 PING, 1 PONG, 2 MEET), one line per world.".into(),
                charts::lines(
                    "Upkeep by type",
                    "message type (0 PING, 1 PONG, 2 MEET)",
                    "messages / node / s",
                    &series,
                    true,
                )?,
            ));
        }
        let mut by_kind: BTreeMap<String, Vec<charts::CdfSamples>> = BTreeMap::new();
        for r in &self.sides {
            for (k, v, items) in charts::latency_by_kind(&r.trials) {
                if !v.is_empty() {
                    by_kind
                        .entry(k)
                        .or_default()
                        .push((r.world.clone(), v, items));
                }
            }
        }
        for (k, samples) in by_kind {
            out.push((
                format!("CDF of the {k} items' spread: time from injection to first reception at each live node, one curve per world."),
                charts::cdf(
                    &format!("{k}: spread"),
                    "ms after injection (log scale)",
                    &samples,
                )?,
            ));
        }
        Ok(out)
    }
}

/// A figure to about three significant digits (whole numbers from 100 up).
pub(crate) fn fmt(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || v.abs() >= 100.0 {
        return format!("{v:.0}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::fmt;

    #[test]
    fn figures_keep_three_significant_digits() {
        assert_eq!(fmt(86.14), "86.1");
        assert_eq!(fmt(2.5731), "2.57");
        assert_eq!(fmt(0.000412), "0.000412");
        assert_eq!(fmt(12_221.4), "12221");
        assert_eq!(fmt(0.0), "0");
    }
}
