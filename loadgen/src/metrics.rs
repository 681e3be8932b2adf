//! One metrics pipeline for both worlds: trials in, the summary of DESIGN §3 out.

use anyhow::Result;
use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::observe::{Item, MeanMax, Trial, TypeRate};
use crate::stats::{self, Ci, Unit};

/// Percentiles of a latency distribution, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// 95 % intervals of p50, p90, p99, p99.9, over items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ci: Option<Ci>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90_ci: Option<Ci>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ci: Option<Ci>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_ci: Option<Ci>,
}

/// A distribution in brief.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// 95 % intervals of the mean, p50 and p99, over items (or trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ci: Option<Ci>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ci: Option<Ci>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ci: Option<Ci>,
}

/// Median, tail and worst over crashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct P50Max {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Samples it is over.
    pub count: usize,
    /// 95 % intervals of p50 and p99 (order statistics over the samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ci: Option<Ci>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ci: Option<Ci>,
}

/// Time until a share of the live nodes had an item, s (mean over items).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Half of the live nodes.
    pub t50_s: Option<f64>,
    /// 99 % of them.
    pub t99_s: Option<f64>,
    /// All of them.
    pub t100_s: Option<f64>,
    /// 95 % intervals of the three, over items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t50_s_ci: Option<Ci>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t99_s_ci: Option<Ci>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t100_s_ci: Option<Ci>,
}

/// The summary object (`--json` prints it). Key names are fixed by the loadgen
/// issue; a figure that does not apply to the scenario is absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Nodes at the start.
    pub nodes: usize,
    /// `sim` or `udp`.
    pub world: String,
    /// Trials finished.
    pub trials: usize,
    /// Ping overhead: membership datagrams per node per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgs_per_node_s: Option<MeanMax>,
    /// Ping overhead: UDP payload bytes per node per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_node_s: Option<MeanMax>,
    /// Ping overhead: wire bytes per node per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire_bytes_per_node_s: Option<MeanMax>,
    /// Ping overhead by message type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead_by_type: Option<Vec<TypeRate>>,
    /// Receptions per node reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<Dist>,
    /// Fraction of live nodes never reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub residue: Option<f64>,
    /// 95 % interval of `residue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residue_ci: Option<Ci>,
    /// Demers' traffic m: update-carrying messages per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<f64>,
    /// 95 % interval of `traffic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_ci: Option<Ci>,
    /// Demers' t_ave, rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_ave: Option<f64>,
    /// 95 % interval of `t_ave`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_ave_ci: Option<Ci>,
    /// Demers' t_last, rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_last: Option<f64>,
    /// 95 % interval of `t_last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_last_ci: Option<Ci>,
    /// Rounds until every node had it: mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds_mean: Option<f64>,
    /// 95 % interval of `rounds_mean`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds_mean_ci: Option<Ci>,
    /// Rounds until every node had it: 99th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds_p99: Option<f64>,
    /// 95 % interval of `rounds_p99`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds_p99_ci: Option<Ci>,
    /// Dissemination latency, injection to first reception per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Percentiles>,
    /// Time until 50 / 99 / 100 % of live nodes had an item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// Crash to the first PFAIL anywhere, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_first_pfail_s: Option<P50Max>,
    /// Crash to the first FAIL anywhere, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_first_fail_s: Option<P50Max>,
    /// Crash to FAIL at every live node, s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_all_fail_s: Option<P50Max>,
    /// Crashes never FAILed at every live node within the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undetected: Option<usize>,
    /// FAILs of nodes that were running and reachable (membership runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub false_fails: Option<u64>,
    /// The same per node-hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub false_fails_per_node_hour: Option<f64>,
    /// PFAILs of running, reachable nodes (membership runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_pfails: Option<u64>,
    /// FAILs of running, reachable nodes within node_timeout +
    /// report_validity after a heal (the partition's evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_fails: Option<u64>,

    /// A heal, resume or restart to agreement again, s, over the recoveries
    /// that got there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_s: Option<P50Max>,
    /// Recoveries not at agreement by the end of the run (not interrupted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrecovered: Option<usize>,
    /// Recoveries cut short by the next action before agreement: unmeasured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recoveries_interrupted: Option<usize>,
    /// Membership runs: pairs of running nodes that disagree at the end of
    /// the run, summed over trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disagreeing_pairs: Option<u64>,
    /// UDP world: I/O-thread CPU seconds per node-second (mean over trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s_per_node_s: Option<f64>,
    /// 95 % interval of `cpu_s_per_node_s`, over trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s_per_node_s_ci: Option<Ci>,
    /// UDP world: peak RSS of the process, bytes (max over trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// UDP world: datagrams lost on the host (sum over trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops: Option<u64>,
    /// UDP world: the kernel's UDP receive-buffer overflows, machine-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_rcvbuf_errors: Option<u64>,
    /// UDP world: observed events the observation channel dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_dropped: Option<u64>,
    /// UDP world: ticks more than one tick period late (sum over trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_ticks: Option<u64>,
    /// UDP world: late ticks ÷ ticks run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_tick_fraction: Option<f64>,
    /// Membership runs: the dissemination figures split by item kind
    /// (`join`, `fail`, `update`), in that order, kinds present only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_kind: Vec<KindSummary>,
}

/// Dissemination figures of one item kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindSummary {
    /// `join`, `fail` or `update`.
    pub kind: String,
    /// Items of this kind over all trials.
    pub items: usize,
    /// Injection to first reception per node, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Percentiles>,
    /// Mean over items of the fraction of live nodes never reached.
    pub residue: f64,
    /// 95 % interval of `residue`, over items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residue_ci: Option<Ci>,
    /// Receptions per node reached (absent where copies are not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<Dist>,
    /// Demers' traffic m, mean over items (sim-world updates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<f64>,
    /// 95 % interval of `traffic`, over items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_ci: Option<Ci>,
    /// Time until every live node had it, s: mean over items that reached all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t100_s: Option<f64>,
    /// 95 % interval of `t100_s`, over items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t100_s_ci: Option<Ci>,
}

/// Histograms kept whole in the report (HDR V2, base64) next to their percentiles.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Dissemination latency, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<EncodedHistogram>,
}

/// An HDR histogram, serialized.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EncodedHistogram {
    /// Unit of the recorded values.
    pub unit: String,
    /// Values recorded.
    pub count: u64,
    /// HDR V2 serialization, base64.
    pub hdr_v2_base64: String,
}

/// Computes the summary and histograms of `trials`.
///
/// # Errors
/// Only if a histogram cannot be built or serialized (a bug).
pub fn summarize(world: &str, nodes: usize, trials: &[Trial]) -> Result<(Summary, Histograms)> {
    let mut s = Summary {
        nodes,
        world: world.into(),
        trials: trials.len(),
        ..Summary::default()
    };
    let mut h = Histograms::default();
    overhead(&mut s, trials);
    epidemic(&mut s, trials);
    dissemination(&mut s, &mut h, trials)?;
    detection(&mut s, trials);
    recovery(&mut s, trials);
    resources(&mut s, trials);
    Ok((s, h))
}

fn resources(s: &mut Summary, trials: &[Trial]) {
    let r: Vec<_> = trials.iter().filter_map(|t| t.resources).collect();
    if r.is_empty() {
        return;
    }
    let cpu: Vec<f64> = r.iter().map(|x| x.cpu_s_per_node_s).collect();
    s.cpu_s_per_node_s = Some(cpu.iter().sum::<f64>() / r.len() as f64);
    s.cpu_s_per_node_s_ci = Some(stats::mean_ci(&cpu, Unit::Trials));
    s.rss_bytes = r.iter().map(|x| x.rss_bytes).max();
    s.drops = Some(r.iter().map(|x| x.drops).sum());
    s.udp_rcvbuf_errors = r.iter().map(|x| x.udp_rcvbuf_errors).sum::<Option<u64>>();
    s.events_dropped = Some(r.iter().map(|x| x.events_dropped).sum());
    let late: u64 = r.iter().map(|x| x.late_ticks).sum();
    let ticks: u64 = r.iter().map(|x| x.ticks).sum();
    s.late_ticks = Some(late);
    s.late_tick_fraction = (ticks > 0).then(|| late as f64 / ticks as f64);
}

fn overhead(s: &mut Summary, trials: &[Trial]) {
    let o: Vec<_> = trials.iter().filter_map(|t| t.overhead.as_ref()).collect();
    if o.is_empty() {
        return;
    }
    // Nodes of one trial share its network and timeline: the trial is the unit.
    let agg = |f: fn(&crate::observe::Overhead) -> MeanMax| {
        let means: Vec<f64> = o.iter().map(|x| f(x).mean).collect();
        MeanMax {
            mean: means.iter().sum::<f64>() / o.len() as f64,
            max: o.iter().map(|x| f(x).max).fold(0.0, f64::max),
            mean_ci: Some(stats::mean_ci(&means, Unit::Trials)),
        }
    };
    s.msgs_per_node_s = Some(agg(|x| x.msgs_per_node_s));
    s.bytes_per_node_s = Some(agg(|x| x.bytes_per_node_s));
    s.wire_bytes_per_node_s = Some(agg(|x| x.wire_bytes_per_node_s));
    let mut by_type: Vec<TypeRate> = o[0].by_type.clone();
    for (i, t) in by_type.iter_mut().enumerate() {
        let n = o.len() as f64;
        t.msgs_per_node_s = o.iter().map(|x| x.by_type[i].msgs_per_node_s).sum::<f64>() / n;
        t.bytes_per_node_s = o
            .iter()
            .map(|x| x.by_type[i].bytes_per_node_s)
            .sum::<Option<f64>>()
            .map(|b| b / n);
        t.bytes_per_msg = t.bytes_per_node_s.map(|b| match t.msgs_per_node_s > 0.0 {
            true => b / t.msgs_per_node_s,
            false => 0.0,
        });
    }
    s.overhead_by_type = Some(by_type);
}

fn epidemic(s: &mut Summary, trials: &[Trial]) {
    let e: Vec<_> = trials.iter().filter_map(|t| t.epidemic).collect();
    if e.is_empty() {
        return;
    }
    let mean = |f: &dyn Fn(&crate::observe::EpidemicTrial) -> f64| {
        let v: Vec<f64> = e.iter().map(f).collect();
        (
            Some(v.iter().sum::<f64>() / e.len() as f64),
            Some(stats::mean_ci(&v, Unit::Trials)),
        )
    };
    (s.residue, s.residue_ci) = mean(&|x| x.residue);
    (s.traffic, s.traffic_ci) = mean(&|x| x.traffic);
    (s.t_ave, s.t_ave_ci) = mean(&|x| x.t_ave);
    (s.t_last, s.t_last_ci) = mean(&|x| f64::from(x.t_last));
    let mut rounds: Vec<f64> = e
        .iter()
        .filter_map(|x| x.rounds_to_all.map(f64::from))
        .collect();
    if !rounds.is_empty() {
        s.rounds_mean = Some(rounds.iter().sum::<f64>() / rounds.len() as f64);
        s.rounds_mean_ci = Some(stats::mean_ci(&rounds, Unit::Trials));
        s.rounds_p99_ci = Some(stats::quantile_ci(&rounds, 0.99, Unit::Trials));
        s.rounds_p99 = Some(quantile(&mut rounds, 0.99));
    }
    let red: Vec<f64> = e.iter().map(|x| x.redundancy).collect();
    let groups: Vec<&[f64]> = red.chunks(1).collect();
    s.redundancy = Some(dist(&groups, Unit::Trials));
}

fn dissemination(s: &mut Summary, h: &mut Histograms, trials: &[Trial]) -> Result<()> {
    let items: Vec<_> = trials.iter().flat_map(|t| &t.items).collect();
    if items.is_empty() {
        return Ok(());
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    for i in &items {
        for &us in &i.latencies_us {
            hist.saturating_record(us.max(1));
        }
    }
    if !hist.is_empty() {
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
        let ci = latency_ci(&items);
        s.latency_ms = Some(Percentiles {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: hist.max() as f64 / 1e3,
            p50_ci: Some(ci[0]),
            p90_ci: Some(ci[1]),
            p99_ci: Some(ci[2]),
            p999_ci: Some(ci[3]),
        });
        let mut buf = Vec::new();
        V2Serializer::new().serialize(&hist, &mut buf)?;
        h.latency_us = Some(EncodedHistogram {
            unit: "us".into(),
            count: hist.len(),
            hdr_v2_base64: base64::engine::general_purpose::STANDARD.encode(buf),
        });
    }
    let residues: Vec<f64> = items.iter().map(|i| i.residue()).collect();
    (s.residue, s.residue_ci) = mean_with_ci(residues);
    s.redundancy = redundancy(&items);
    let mean_of = |q: f64| {
        let v: Vec<f64> = items.iter().filter_map(|i| i.time_to_fraction(q)).collect();
        mean_with_ci(v)
    };
    let ((t50_s, t50_s_ci), (t99_s, t99_s_ci), (t100_s, t100_s_ci)) =
        (mean_of(0.5), mean_of(0.99), mean_of(1.0));
    s.spread = Some(Spread {
        t50_s,
        t99_s,
        t100_s,
        t50_s_ci,
        t99_s_ci,
        t100_s_ci,
    });
    for kind in ["join", "fail", "update"] {
        let of: Vec<&Item> = items.iter().copied().filter(|i| i.kind == kind).collect();
        if !of.is_empty() {
            s.by_kind.push(kind_summary(kind, &of));
        }
    }
    if s.traffic.is_none() {
        if let Some(k) = s.by_kind.iter().find(|k| k.kind == "update") {
            (s.traffic, s.traffic_ci) = (k.traffic, k.traffic_ci);
        }
    }
    Ok(())
}

/// The mean of one value per item (or trial) and its interval; `None` if empty.
fn mean_with_ci(v: Vec<f64>) -> (Option<f64>, Option<Ci>) {
    if v.is_empty() {
        return (None, None);
    }
    let ci = stats::mean_ci(&v, Unit::Items);
    (Some(v.iter().sum::<f64>() / v.len() as f64), Some(ci))
}

/// Intervals of the latency p50, p90, p99, p99.9 (ms): an item's latencies
/// at its nodes are correlated, so the item is the unit.
fn latency_ci(items: &[&Item]) -> Vec<Ci> {
    let ms: Vec<Vec<f64>> = items
        .iter()
        .map(|i| i.latencies_us.iter().map(|&us| us as f64 / 1e3).collect())
        .collect();
    let groups: Vec<&[f64]> = ms.iter().map(Vec::as_slice).collect();
    stats::clustered_quantiles_ci(&groups, &[0.5, 0.9, 0.99, 0.999], Unit::Items)
}

/// Copies per node reached: percentiles over (item, node) pairs, the mean
/// over items of each item's mean; intervals over items.
fn redundancy(items: &[&Item]) -> Option<Dist> {
    let per_item: Vec<Vec<f64>> = items
        .iter()
        .map(|i| i.receptions.iter().map(|&r| f64::from(r)).collect())
        .collect();
    let groups: Vec<&[f64]> = per_item.iter().map(Vec::as_slice).collect();
    if groups.iter().all(|g| g.is_empty()) {
        return None;
    }
    let mut d = dist(&groups, Unit::Items);
    let means: Vec<f64> = items.iter().filter_map(|i| i.redundancy()).collect();
    d.mean = means.iter().sum::<f64>() / means.len().max(1) as f64;
    d.mean_ci = Some(stats::mean_ci(&means, Unit::Items));
    Some(d)
}

fn kind_summary(kind: &str, items: &[&Item]) -> KindSummary {
    let mut lat: Vec<f64> = items
        .iter()
        .flat_map(|i| i.latencies_us.iter().map(|&us| us as f64 / 1e3))
        .collect();
    let latency_ms = (!lat.is_empty()).then(|| {
        let ci = latency_ci(items);
        Percentiles {
            p50: quantile(&mut lat, 0.5),
            p90: quantile(&mut lat, 0.9),
            p99: quantile(&mut lat, 0.99),
            p999: quantile(&mut lat, 0.999),
            max: lat.iter().copied().fold(0.0, f64::max),
            p50_ci: Some(ci[0]),
            p90_ci: Some(ci[1]),
            p99_ci: Some(ci[2]),
            p999_ci: Some(ci[3]),
        }
    });
    let (residue, residue_ci) = mean_with_ci(items.iter().map(|i| i.residue()).collect());
    let (traffic, traffic_ci) = mean_with_ci(items.iter().filter_map(|i| i.traffic).collect());
    let (t100_s, t100_s_ci) = mean_with_ci(
        items
            .iter()
            .filter_map(|i| i.time_to_fraction(1.0))
            .collect(),
    );
    KindSummary {
        kind: kind.into(),
        items: items.len(),
        latency_ms,
        residue: residue.unwrap_or(0.0),
        residue_ci,
        redundancy: redundancy(items),
        traffic,
        traffic_ci,
        t100_s,
        t100_s_ci,
    }
}

fn detection(s: &mut Summary, trials: &[Trial]) {
    let membership = trials.iter().any(|t| t.epidemic.is_none());
    if !membership {
        return;
    }
    let ff: u64 = trials.iter().map(|t| t.false_fails).sum();
    let hours: f64 = trials.iter().map(|t| t.node_hours).sum();
    s.false_fails = Some(ff);
    s.false_pfails = Some(trials.iter().map(|t| t.false_pfails).sum());
    s.partition_fails = Some(trials.iter().map(|t| t.partition_fails).sum());

    s.false_fails_per_node_hour = (hours > 0.0).then(|| ff as f64 / hours);
    let d: Vec<_> = trials.iter().flat_map(|t| &t.detections).collect();
    if d.is_empty() {
        return;
    }
    let pm = |f: fn(&crate::observe::Detection) -> Option<f64>| {
        p50_max(d.iter().filter_map(|x| f(x)).collect(), Unit::Crashes)
    };
    s.detect_first_pfail_s = pm(|x| x.first_pfail_s);
    s.detect_first_fail_s = pm(|x| x.first_fail_s);
    s.detect_all_fail_s = pm(|x| x.all_fail_s);
    s.undetected = Some(d.iter().filter(|x| x.all_fail_s.is_none()).count());
}

fn recovery(s: &mut Summary, trials: &[Trial]) {
    s.disagreeing_pairs = trials.iter().map(|t| t.disagreeing_pairs).sum();
    let r: Vec<_> = trials.iter().flat_map(|t| &t.recoveries).collect();
    if r.is_empty() {
        return;
    }
    s.recover_s = p50_max(r.iter().filter_map(|x| x.recover_s).collect(), Unit::Events);
    s.unrecovered = Some(
        r.iter()
            .filter(|x| x.recover_s.is_none() && !x.interrupted)
            .count(),
    );
    s.recoveries_interrupted = Some(r.iter().filter(|x| x.interrupted).count());
}

/// Median, tail and worst of `v`, one sample per `of`; None if empty.
fn p50_max(mut v: Vec<f64>, of: Unit) -> Option<P50Max> {
    (!v.is_empty()).then(|| P50Max {
        p50_ci: Some(stats::quantile_ci(&v, 0.5, of)),
        p99_ci: Some(stats::quantile_ci(&v, 0.99, of)),
        p50: quantile(&mut v, 0.5),
        p99: quantile(&mut v, 0.99),
        max: v.iter().copied().fold(0.0, f64::max),
        count: v.len(),
    })
}

/// The q-quantile (nearest rank) of `v`; sorts it.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Mean, percentiles and their intervals of every sample in `groups`, each
/// group one independent unit `of`.
fn dist(groups: &[&[f64]], of: Unit) -> Dist {
    let mut v: Vec<f64> = groups.concat();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let ci = stats::clustered_quantiles_ci(groups, &[0.5, 0.99], of);
    let means: Vec<f64> = groups
        .iter()
        .filter(|g| !g.is_empty())
        .map(|g| g.iter().sum::<f64>() / g.len() as f64)
        .collect();
    Dist {
        mean,
        p50: quantile(&mut v, 0.5),
        p99: quantile(&mut v, 0.99),
        max: v.iter().copied().fold(0.0, f64::max),
        mean_ci: Some(stats::mean_ci(&means, of)),
        p50_ci: Some(ci[0]),
        p99_ci: Some(ci[1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Detection;

    #[test]
    fn nearest_rank_quantiles() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(quantile(&mut v, 0.5), 3.0);
        assert_eq!(quantile(&mut v, 0.99), 5.0);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
    }

    #[test]
    fn an_item_reaching_half_the_nodes_has_residue_one_half() {
        let item = Item {
            kind: "join".into(),
            live: 4,
            reached: 2,
            latencies_us: vec![1_000, 3_000],
            receptions: vec![1, 3],
            ..Item::default()
        };
        let t = Trial {
            items: vec![item],
            detections: vec![Detection {
                all_fail_s: None,
                ..Detection::default()
            }],
            ..Trial::default()
        };
        let (s, h) = summarize("sim", 4, &[t]).unwrap();
        assert_eq!(s.residue, Some(0.5));
        assert_eq!(s.redundancy.unwrap().mean, 2.0);
        assert_eq!(s.undetected, Some(1));
        let l = s.latency_ms.unwrap();
        assert!(
            (l.p50 - 1.0).abs() < 0.01 && (l.max - 3.0).abs() < 0.01,
            "{l:?}"
        );
        assert_eq!(h.latency_us.unwrap().count, 2);
        assert_eq!(s.spread.unwrap().t50_s, Some(0.003));
    }

    #[test]
    fn intervals_are_over_crashes_items_and_trials_not_nodes() {
        use crate::observe::{MeanMax, Overhead};
        let trial = |k: u64| Trial {
            // Two items each seen by 50 nodes: two units, not 100 samples.
            items: (0..2)
                .map(|i| Item {
                    kind: "join".into(),
                    live: 50,
                    reached: 50,
                    latencies_us: (0..50).map(|n| 1_000 * (k + i + 1) + n).collect(),
                    receptions: vec![1; 50],
                    ..Item::default()
                })
                .collect(),
            detections: (0..3)
                .map(|c| Detection {
                    all_fail_s: Some(2.0 + f64::from(c) * 0.1 + k as f64 * 0.01),
                    ..Detection::default()
                })
                .collect(),
            overhead: Some(Overhead {
                msgs_per_node_s: MeanMax {
                    mean: 10.0 + k as f64,
                    max: 12.0,
                    mean_ci: None,
                },
                ..Overhead::default()
            }),
            ..Trial::default()
        };
        let trials: Vec<Trial> = (0..4).map(trial).collect();
        let (s, _) = summarize("sim", 50, &trials).unwrap();
        let d = s.detect_all_fail_s.unwrap().p50_ci.unwrap();
        assert_eq!((d.n, d.of), (12, Unit::Crashes));
        assert!(d.bounded(), "{d:?}");
        let l = s.latency_ms.unwrap().p50_ci.unwrap();
        assert_eq!((l.n, l.of), (8, Unit::Items));
        let m = s.msgs_per_node_s.unwrap().mean_ci.unwrap();
        assert_eq!((m.n, m.of), (4, Unit::Trials));
        // 10, 11, 12, 13: mean 11.5, s 1.29, t(3) 3.18: ± 2.05.
        assert!((m.hi.unwrap() - 13.554).abs() < 0.01, "{m:?}");
        let sp = s.spread.unwrap().t100_s_ci.unwrap();
        assert_eq!((sp.n, sp.of), (8, Unit::Items));
    }
}
