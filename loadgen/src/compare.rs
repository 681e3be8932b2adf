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
use crate::stats::Ci;

/// The sides of a comparison, in the order asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// One report per side.
    pub sides: Vec<Report>,
    /// Each side's name: its world, or `<world>-no-key` for the side
    /// without the cluster key (`compare --without-key`); empty in reports
    /// from before names (the worlds name the sides then).
    #[serde(default)]
    pub names: Vec<String>,
}

/// A figure compared: its label and its dotted path in the summary (as
/// `diff` flattens it: per-kind lists by kind), so that its interval comes
/// with it.
type Figure = (&'static str, &'static str);

/// The figures a comparison lines up, those present in some side shown.
const FIGURES: &[Figure] = &[
    ("messages / node / s", "msgs_per_node_s.mean"),
    ("PING / node / s", "overhead_by_type.ping.msgs_per_node_s"),
    ("PONG / node / s", "overhead_by_type.pong.msgs_per_node_s"),
    ("MEET / node / s", "overhead_by_type.meet.msgs_per_node_s"),
    ("messages / node / s, busiest node", "msgs_per_node_s.max"),
    ("payload bytes / node / s", "bytes_per_node_s.mean"),
    ("wire bytes / node / s", "wire_bytes_per_node_s.mean"),
    ("payload bytes / message", BYTES_PER_MESSAGE),
    (
        "first PFAIL after a crash, p50 s",
        "detect_first_pfail_s.p50",
    ),
    ("first FAIL after a crash, p50 s", "detect_first_fail_s.p50"),
    ("FAIL at every node, p50 s", "detect_all_fail_s.p50"),
    ("FAIL at every node, max s", "detect_all_fail_s.max"),
    ("crashes never FAILed everywhere", "undetected"),
    ("join known everywhere after, s", "by_kind.join.t100_s"),
    ("join copies / node reached", "by_kind.join.redundancy.mean"),
    ("FAIL spread to every node, s", "by_kind.fail.t100_s"),
    ("FAIL copies / node reached", "by_kind.fail.redundancy.mean"),
    ("false FAILs", "false_fails"),
    ("false PFAILs", "false_pfails"),
    (
        "agreement after a heal, resume or restart, p50 s",
        "recover_s.p50",
    ),
    (
        "agreement after a heal, resume or restart, max s",
        "recover_s.max",
    ),
    ("recoveries never at agreement", "unrecovered"),
    ("node pairs disagreeing at the end", "disagreeing_pairs"),
    ("CPU s / node-s", "cpu_s_per_node_s"),
];

/// Not a summary field: payload bytes ÷ messages, derived.
const BYTES_PER_MESSAGE: &str = "bytes_per_node_s.mean/msgs_per_node_s.mean";

/// A figure of a summary and its 95 % interval, if it has them.
fn figure(s: &Summary, path: &str) -> Option<(f64, Option<Ci>)> {
    let f = crate::diff::figures(s);
    if path == BYTES_PER_MESSAGE {
        let (b, m) = (
            f.get("bytes_per_node_s.mean")?.0,
            f.get("msgs_per_node_s.mean")?.0,
        );
        return Some((b / m, None));
    }
    f.get(path).copied()
}

fn by_type(s: &Summary, kind: &str) -> Option<f64> {
    s.overhead_by_type
        .as_ref()?
        .iter()
        .find(|t| t.kind == kind)
        .map(|t| t.msgs_per_node_s)
}

impl Comparison {
    /// Side `i`'s name: from [`Comparison::names`], else its world.
    pub fn side(&self, i: usize) -> &str {
        self.names
            .get(i)
            .map_or(self.sides[i].world.as_str(), String::as_str)
    }

    /// The side-by-side table as Markdown: a column per world, then the first
    /// world's figure divided by each other world's.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        if self.sides.is_empty() {
            return o;
        }
        let side = |i: usize| self.side(i);
        let name = |i: usize| match &self.sides[i].datapath {
            Some(d) => format!("{} ({d})", side(i)),
            None => side(i).to_owned(),
        };
        let _ = write!(o, "| figure |");
        for i in 0..self.sides.len() {
            let _ = write!(o, " {} |", name(i));
        }
        for i in 1..self.sides.len() {
            let _ = write!(o, " {} ÷ {} |", side(0), side(i));
        }
        let _ = write!(o, "\n|---|");
        for _ in 0..(2 * self.sides.len() - 1) {
            o.push_str("---:|");
        }
        o.push('\n');
        for (label, path) in FIGURES {
            let shown: Vec<Option<(f64, Option<Ci>)>> = self
                .sides
                .iter()
                .map(|r| figure(&r.summary, path))
                .collect();
            if shown.iter().all(Option::is_none) {
                continue;
            }
            let values: Vec<Option<f64>> = shown.iter().map(|v| v.map(|(x, _)| x)).collect();
            let _ = write!(o, "| {label} |");
            for v in &shown {
                let cell = v.map_or("–".into(), |(x, ci)| match ci {
                    Some(c) => format!("{} [{}, {}]", fmt(x), bound(c.lo), bound(c.hi)),
                    None => fmt(x),
                });
                let _ = write!(o, " {cell} |");
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
        for (i, r) in self.sides.iter().enumerate() {
            let _ = writeln!(
                o,
                "- {}: {} of {} trial(s){}, {:.0} s wall",
                name(i),
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
            .enumerate()
            .filter_map(|(i, r)| {
                let points = types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Some((i as f64, by_type(&r.summary, t)?)))
                    .collect::<Option<Vec<_>>>()?;
                Some(Series {
                    name: self.side(i).to_owned(),
                    points,
                    line: true,
                    ..Series::default()
                })
            })
            .collect();
        if !series.is_empty() {
            out.push((
                "Membership upkeep by message type, messages per node per second (0 PING, 1 PONG, 2 MEET), one line per side.".into(),
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
        for (i, r) in self.sides.iter().enumerate() {
            for (k, v, items) in charts::latency_by_kind(&r.trials) {
                if !v.is_empty() {
                    by_kind
                        .entry(k)
                        .or_default()
                        .push((self.side(i).to_owned(), v, items));
                }
            }
        }
        for (k, samples) in by_kind {
            out.push((
                format!("CDF of the {k} items' spread: time from injection to first reception at each live node, one curve per side."),
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

/// An interval's bound as a figure, `?` where the samples give none.
fn bound(b: Option<f64>) -> String {
    b.map_or("?".into(), fmt)
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
