//! What the interpreter computes from its readings: ping overhead from two
//! readings of the nodes' upkeep counters, and the audience of an item.

use crate::observe::{MeanMax, Overhead, TypeRate};
use crate::world::{Upkeep, UPKEEP};

/// The nodes an item about node `about` should reach, of those running at
/// the end (`up`), never `about` itself: all of them, or, when each node holds
/// a partial view (`Config::partial_view`), only the `holders` (sorted): the
/// nodes that held it at its crash (a FAIL) or at the end (a join). The
/// others have no reason to learn of it.
pub(super) fn audience(
    up: impl Iterator<Item = usize>,
    holders: Option<&[usize]>,
    about: usize,
) -> Vec<usize> {
    up.filter(|&n| n != about && holders.is_none_or(|h| h.binary_search(&n).is_ok()))
        .collect()
}

/// Ping overhead between two readings of the nodes' upkeep counters: each
/// node's rate over the interval between its two readings; nodes not running
/// (or restarted) at either reading are left out.
pub(super) fn measure_overhead(
    before: &[Option<Upkeep>],
    after: &[Option<Upkeep>],
) -> Option<Overhead> {
    let pairs: Vec<(&Upkeep, &Upkeep)> = before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) if a.life == b.life && a.at > b.at => Some((b, a)),
            _ => None,
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let window_s = pairs
        .iter()
        .map(|(b, a)| (a.at - b.at).as_secs_f64())
        .sum::<f64>()
        / pairs.len() as f64;
    let mut msgs = Vec::new();
    let mut bytes = Vec::new();
    let mut wire = Vec::new();
    let mut by_kind = [(0f64, Some(0f64)); UPKEEP.len()];
    for (b, a) in &pairs {
        let secs = (a.at - b.at).as_secs_f64();
        let mut m = 0;
        for (k, kind) in by_kind.iter_mut().enumerate() {
            let dm = a.msgs[k].saturating_sub(b.msgs[k]);
            m += dm;
            kind.0 += dm as f64 / secs;
            kind.1 = match (kind.1, a.bytes, b.bytes) {
                (Some(sum), Some(x), Some(y)) => {
                    Some(sum + x[k].saturating_sub(y[k]) as f64 / secs)
                }
                _ => None,
            };
        }
        msgs.push(m as f64 / secs);
        bytes.push(a.bytes_total.saturating_sub(b.bytes_total) as f64 / secs);
        wire.push(a.wire_bytes.saturating_sub(b.wire_bytes) as f64 / secs);
    }
    let n = pairs.len() as f64;
    let by_type = UPKEEP
        .iter()
        .zip(by_kind)
        .map(|(kind, (m, b))| TypeRate {
            kind: (*kind).into(),
            msgs_per_node_s: m / n,
            bytes_per_node_s: b.map(|b| b / n),
            bytes_per_msg: b.map(|b| if m > 0.0 { b / m } else { 0.0 }),
        })
        .collect();
    Some(Overhead {
        window_s,
        nodes: pairs.len(),
        msgs_per_node_s: mean_max(&msgs),
        bytes_per_node_s: mean_max(&bytes),
        wire_bytes_per_node_s: mean_max(&wire),
        by_type,
    })
}

fn mean_max(xs: &[f64]) -> MeanMax {
    MeanMax {
        mean: xs.iter().sum::<f64>() / xs.len().max(1) as f64,
        max: xs.iter().copied().fold(0.0, f64::max),
        mean_ci: None,
    }
}
