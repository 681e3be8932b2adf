//! `summary.md`: the figures as tables.

use std::fmt::Write;

use super::Report;
use crate::metrics::P50Max;
use crate::stats::{with_ci, Ci};

/// Renders the report's figures as Markdown.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let s = &r.summary;
    let _ = writeln!(o, "# {} — {}\n", r.scenario.name, r.run_id);
    if !r.scenario.description.is_empty() {
        let _ = writeln!(o, "{}\n", r.scenario.description);
    }
    let _ = writeln!(o, "| run | |\n|---|---|");
    let _ = writeln!(
        o,
        "| world | {}{} |",
        r.world,
        r.datapath
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    let _ = writeln!(o, "| nodes | {} |", s.nodes);
    let _ = writeln!(
        o,
        "| trials | {} of {}{} |",
        r.trials_done,
        r.trials_requested,
        if r.interrupted { " (interrupted)" } else { "" }
    );
    if let Some(why) = &r.interruption {
        let _ = writeln!(o, "| broke off | {} |", why.replace('|', "/"));
    }
    let _ = writeln!(o, "| seed | {} |", r.seed);
    if let Some(h) = r.trials.iter().find_map(|t| t.hosts.as_ref()) {
        for (i, a) in h.agents.iter().enumerate() {
            let _ = writeln!(
                o,
                "| host {i} | {} ({}, {}): nodes {}; clock {:+.3} ms ± {:.3} ms |",
                a.addr, a.host, a.bind_ip, a.nodes, a.offset_ms, a.uncertainty_ms
            );
        }
        if !h.faults.is_empty() {
            let _ = writeln!(o, "| faults applied | {} |", h.faults.join("; "));
        }
    }
    let p = &r.scenario.profile;
    if r.scenario.epidemic.is_none() {
        // Every parameter, by its flat name, whatever the report recorded.
        let flat: std::collections::BTreeMap<String, String> = p
            .config()
            .map(|c| c.flat().into_iter().collect())
            .unwrap_or_default();
        let g = |n: &str| flat.get(n).map_or("?", String::as_str);
        if g("membership") == "swim" {
            let _ = writeln!(
                o,
                "| profile | {} (swim: probe every {} ms, timeout {} ms, {} indirect; suspicion {}-{} × log10 N periods; updates sent {} × log10 N times, to {} members every {} ms; digest every {} ms; awareness up to {}×) |",
                p.name,
                g("probe_interval_ms"),
                g("probe_timeout_ms"),
                g("indirect_probes"),
                g("suspicion_mult"),
                flat.get("suspicion_mult")
                    .zip(flat.get("suspicion_max_mult"))
                    .and_then(|(a, b)| Some(a.parse::<u64>().ok()? * b.parse::<u64>().ok()?))
                    .map_or("?".into(), |m| m.to_string()),
                g("retransmit_mult"),
                g("gossip_nodes"),
                g("tick_ms"),
                g("sync_interval_ms"),
                g("awareness_max")
            );
        } else {
            let _ = writeln!(
                o,
                "| profile | {} (node_timeout {} ms, tick {} ms, fan-out {}, section {}/1000 min {}) |",
                p.name,
                g("node_timeout_ms"),
                g("tick_ms"),
                g("random_ping_fanout"),
                g("section_per_thousand"),
                g("section_min")
            );
        }
        if p.disseminates() && g("membership") == "swim" {
            // No RUMOR rounds under swim: updates ride its datagrams, so the
            // rumor fan-out and period are not used.
            let _ = writeln!(
                o,
                "| dissemination | {} (updates ride swim's datagrams, each sent {} × ceil(log10(N + 1)) times ({}); anti-entropy {} every {} ms) |",
                g("dissemination"),
                g("rumor_stop_k"),
                g("rumor_stop"),
                g("anti_entropy_direction"),
                g("anti_entropy_period_ms")
            );
        } else if p.disseminates() {
            let _ = writeln!(
                o,
                "| dissemination | {} (rumor {} {} k {}, fan-out {}, every {} ms; anti-entropy {} every {} ms) |",
                g("dissemination"),
                g("rumor_direction"),
                g("rumor_stop"),
                g("rumor_stop_k"),
                g("rumor_fanout"),
                g("rumor_period_ms"),
                g("anti_entropy_direction"),
                g("anti_entropy_period_ms")
            );
        }
    }
    if let Some(e) = &r.scenario.epidemic {
        let _ = writeln!(
            o,
            "| epidemic | {} {} (stop {}, k {}, fan-out {}) |",
            e.protocol, e.mode, e.stop, e.k, e.fanout
        );
    }
    let _ = writeln!(o, "| commit | {} |", r.commit);
    let _ = writeln!(o, "| machine | {} |", r.machine.line());
    let _ = writeln!(o, "| command | `{}` |", r.command.join(" "));
    if let Some(h) = &r.host {
        let _ = writeln!(o, "| host while it ran | {} |", h.line());
    }
    let _ = writeln!(o, "| wall time | {:.1} s |\n", r.wall_s);
    if let Some(h) = r.host.as_ref().filter(|h| h.busy) {
        let _ = writeln!(
            o,
            "**Busy host**: {}. Times and rates here may be moved by it; rerun on a quiet host before trusting a difference.\n",
            h.why.join("; ")
        );
    }
    if r.compare.is_none() {
        let _ = writeln!(
            o,
            "Figures in brackets: the 95 % confidence interval, over the independent unit named (trials, items, crashes, events); `?`: a bound these samples cannot give (one trial, or too few samples for a tail percentile). See `docs/report-schema.md`.\n"
        );
    }
    if let Some(c) = &r.compare {
        let _ = writeln!(o, "## Side by side\n");
        o.push_str(&c.markdown());
        let _ = writeln!(
            o,
            "\nEach world's whole report: the directory named after it, beside this one."
        );
        return o;
    }

    if let (Some(m), Some(b), Some(w)) = (
        s.msgs_per_node_s,
        s.bytes_per_node_s,
        s.wire_bytes_per_node_s,
    ) {
        let _ = writeln!(o, "## Ping overhead (steady state, per node per second)\n");
        let _ = writeln!(
            o,
            "| figure | mean [95 % CI over trials] | max over nodes |\n|---|---:|---:|"
        );
        let mean = |x: crate::observe::MeanMax, d: usize| with_ci(x.mean, x.mean_ci.as_ref(), d);
        let _ = writeln!(o, "| datagrams | {} | {:.2} |", mean(m, 2), m.max);
        let _ = writeln!(o, "| payload bytes | {} | {:.0} |", mean(b, 0), b.max);
        let _ = writeln!(
            o,
            "| wire bytes (+28/datagram) | {} | {:.0} |\n",
            mean(w, 0),
            w.max
        );
        if let Some(types) = &s.overhead_by_type {
            let _ = writeln!(
                o,
                "| type | datagrams/node/s | bytes/node/s | bytes/datagram |\n|---|---:|---:|---:|"
            );
            // The other protocol's types, never sent, are left out.
            let sent = |t: &&crate::observe::TypeRate| {
                t.msgs_per_node_s > 0.0 || ["ping", "pong", "meet"].contains(&t.kind.as_str())
            };
            for t in types.iter().filter(sent) {
                let or_dash = |v: Option<f64>, digits: usize| {
                    v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
                };
                let _ = writeln!(
                    o,
                    "| {} | {:.3} | {} | {} |",
                    t.kind,
                    t.msgs_per_node_s,
                    or_dash(t.bytes_per_node_s, 1),
                    or_dash(t.bytes_per_msg, 0)
                );
            }
            o.push('\n');
        }
    }
    // Cross-host latencies are only as good as the clocks they are read on.
    let clock_ms = r
        .trials
        .iter()
        .filter_map(|t| t.hosts.as_ref())
        .map(|h| h.clock_uncertainty_ms)
        .fold(None, |m: Option<f64>, u| Some(m.map_or(u, |m| m.max(u))));
    if let Some(u) = clock_ms {
        let _ = writeln!(
            o,
            "Clocks: agents' offsets known to ± {u:.3} ms; a latency marked † is smaller than that and not resolved.\n"
        );
    }
    if s.traffic.is_some() || s.latency_ms.is_some() || s.redundancy.is_some() {
        let _ = writeln!(o, "## Dissemination\n");
        let _ = writeln!(o, "| figure | value |\n|---|---:|");
        let row = |o: &mut String, name: &str, v: Option<f64>, ci: Option<Ci>, digits: usize| {
            if let Some(v) = v {
                let _ = writeln!(o, "| {name} | {} |", with_ci(v, ci.as_ref(), digits));
            }
        };
        row(&mut o, "residue", s.residue, s.residue_ci, 4);
        row(&mut o, "traffic m (msgs/node)", s.traffic, s.traffic_ci, 2);
        row(&mut o, "t_ave (rounds)", s.t_ave, s.t_ave_ci, 2);
        row(&mut o, "t_last (rounds)", s.t_last, s.t_last_ci, 2);
        row(
            &mut o,
            "rounds to all, mean",
            s.rounds_mean,
            s.rounds_mean_ci,
            2,
        );
        row(
            &mut o,
            "rounds to all, p99",
            s.rounds_p99,
            s.rounds_p99_ci,
            0,
        );
        if let Some(d) = s.redundancy {
            row(
                &mut o,
                "redundancy (receptions/node reached), mean",
                Some(d.mean),
                d.mean_ci,
                2,
            );
            row(&mut o, "redundancy p50", Some(d.p50), d.p50_ci, 0);
            row(&mut o, "redundancy p99", Some(d.p99), d.p99_ci, 0);
            row(&mut o, "redundancy max", Some(d.max), None, 0);
        }
        if let Some(l) = s.latency_ms {
            let f = |v: f64, ci: Option<Ci>| ci_cell(v, ci, 1, v, clock_ms);
            let _ = writeln!(o, "| latency p50 ms | {} |", f(l.p50, l.p50_ci));
            let _ = writeln!(o, "| latency p90 ms | {} |", f(l.p90, l.p90_ci));
            let _ = writeln!(o, "| latency p99 ms | {} |", f(l.p99, l.p99_ci));
            let _ = writeln!(o, "| latency p99.9 ms | {} |", f(l.p999, l.p999_ci));
            let _ = writeln!(o, "| latency max ms | {} |", f(l.max, None));
        }
        if let Some(sp) = s.spread {
            let mut f = |name: &str, v: Option<f64>, ci: Option<Ci>| match v {
                Some(v) => row(&mut o, name, Some(v), ci, 2),
                None => {
                    let _ = writeln!(o, "| {name} | never |");
                }
            };
            f("time to 50 % of live nodes, s", sp.t50_s, sp.t50_s_ci);
            f("time to 99 % of live nodes, s", sp.t99_s, sp.t99_s_ci);
            f("time to 100 % of live nodes, s", sp.t100_s, sp.t100_s_ci);
        }
        o.push('\n');
    }
    if !s.by_kind.is_empty() {
        let _ = writeln!(o, "### By item kind\n");
        let _ = writeln!(
            o,
            "| kind | items | latency ms p50 / p99 / max | time to all (s) | residue | redundancy (mean, p99, max) | traffic m |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for k in &s.by_kind {
            let lat = k.latency_ms.map_or("none reached".to_string(), |l| {
                let f = |v: f64, ci: Option<Ci>| ci_cell(v, ci, 1, v, clock_ms);
                format!(
                    "{} / {} / {}",
                    f(l.p50, l.p50_ci),
                    f(l.p99, l.p99_ci),
                    f(l.max, None)
                )
            });
            let t100 = k
                .t100_s
                .map_or("never".to_string(), |t| with_ci(t, k.t100_s_ci.as_ref(), 2));
            let red = k.redundancy.map_or("not counted".to_string(), |d| {
                format!(
                    "{}, {:.0}, {:.0}",
                    with_ci(d.mean, d.mean_ci.as_ref(), 2),
                    d.p99,
                    d.max
                )
            });
            let traffic = k
                .traffic
                .map_or("—".to_string(), |m| with_ci(m, k.traffic_ci.as_ref(), 2));
            let _ = writeln!(
                o,
                "| {} | {} | {lat} | {t100} | {} | {red} | {traffic} |",
                k.kind,
                k.items,
                with_ci(k.residue, k.residue_ci.as_ref(), 4)
            );
        }
        o.push('\n');
    }
    if s.detect_first_pfail_s.is_some() || s.false_fails.is_some() {
        let _ = writeln!(o, "## Failure detection (s after the crash)\n");
        let _ = writeln!(
            o,
            "| figure | p50 | p99 | max | crashes |\n|---|---:|---:|---:|---:|"
        );
        let row = |o: &mut String, name: &str, v: Option<P50Max>| {
            if let Some(v) = v {
                let f = |x: f64, ci: Option<Ci>| ci_cell(x, ci, 2, x * 1e3, clock_ms);
                let _ = writeln!(
                    o,
                    "| {name} | {} | {} | {} | {} |",
                    f(v.p50, v.p50_ci),
                    f(v.p99, v.p99_ci),
                    f(v.max, None),
                    v.count
                );
            }
        };
        row(&mut o, "first PFAIL anywhere", s.detect_first_pfail_s);
        row(&mut o, "first FAIL anywhere", s.detect_first_fail_s);
        row(&mut o, "FAIL at every live node", s.detect_all_fail_s);
        if let Some(u) = s.undetected {
            let _ = writeln!(o, "| crashes not FAILed everywhere | {u} | | | |");
        }
        if let Some(ff) = s.false_fails {
            let per = s
                .false_fails_per_node_hour
                .map_or(String::new(), |x| format!(" ({x:.3} per node-hour)"));
            let _ = writeln!(o, "| false FAILs | {ff}{per} | | | |");
        }
        if let Some(pf) = s.false_pfails {
            let _ = writeln!(
                o,
                "| false PFAILs (suspected while up and reachable) | {pf} | | | |"
            );
        }
        if let Some(pf) = s.partition_fails.filter(|&n| n > 0) {
            let _ = writeln!(
                o,
                "| FAILs after a heal from the partition's evidence (not false) | {pf} | | | |"
            );
        }
        o.push('\n');
        false_suspicions(&mut o, r);
    }
    if s.recover_s.is_some()
        || s.unrecovered.is_some()
        || s.disagreeing_pairs.is_some_and(|p| p > 0)
    {
        let _ = writeln!(
            o,
            "## Recovery (s from a heal, resume or restart until agreement)\n"
        );
        let _ = writeln!(
            o,
            "Agreement: every running node holds every other running node alive (partial views: no running node holds a running node PFAIL or FAIL).\n"
        );
        let _ = writeln!(
            o,
            "| figure | p50 | p99 | max | events |\n|---|---:|---:|---:|---:|"
        );
        if let Some(v) = s.recover_s {
            let _ = writeln!(
                o,
                "| time to agreement | {} | {} | {:.2} | {} |",
                with_ci(v.p50, v.p50_ci.as_ref(), 2),
                with_ci(v.p99, v.p99_ci.as_ref(), 2),
                v.max,
                v.count
            );
        }
        if let Some(u) = s.unrecovered {
            let _ = writeln!(o, "| events never at agreement by the end | {u} | | | |");
        }
        if let Some(i) = s.recoveries_interrupted {
            let _ = writeln!(
                o,
                "| events interrupted by the next action (unmeasured) | {i} | | | |"
            );
        }
        if let Some(p) = s.disagreeing_pairs {
            let _ = writeln!(o, "| node pairs disagreeing at the end | {p} | | | |");
        }
        o.push('\n');
    }
    if let Some(cpu) = s.cpu_s_per_node_s {
        let _ = writeln!(o, "## Resources (real nodes, measured window)\n");
        let _ = writeln!(o, "| figure | value |\n|---|---:|");
        let _ = writeln!(
            o,
            "| CPU s per node-second (I/O threads) | {} |",
            with_ci(cpu, s.cpu_s_per_node_s_ci.as_ref(), 5)
        );
        if let Some(rss) = s.rss_bytes {
            let _ = writeln!(
                o,
                "| peak RSS (process) | {:.1} MiB |",
                rss as f64 / 1_048_576.0
            );
        }
        if let Some(d) = s.drops {
            let _ = writeln!(o, "| datagrams dropped on the host | {d} |");
        }
        if let Some(d) = s.udp_rcvbuf_errors {
            let _ = writeln!(
                o,
                "| UDP receive-buffer overflows (kernel, machine-wide) | {d} |"
            );
        }
        if let Some(d) = s.events_dropped {
            let _ = writeln!(o, "| observed events dropped | {d} |");
        }
        if let Some(l) = s.late_ticks {
            let f = s
                .late_tick_fraction
                .map_or(String::new(), |f| format!(" ({:.3} %)", f * 100.0));
            let _ = writeln!(o, "| late ticks (> 1 tick late) | {l}{f} |");
        }
        o.push('\n');
    }
    if let Some(sw) = &r.sweep {
        o.push_str(&crate::sweep::markdown(sw));
    }
    o
}

/// When each trial's false suspicions came: a storm in one trial shows where
/// on its timeline it began and how wide it spread.
fn false_suspicions(o: &mut String, r: &Report) {
    for t in &r.trials {
        let Some(f) = &t.false_pfail_times else {
            continue;
        };
        let (busiest, most) = f
            .per_second
            .iter()
            .enumerate()
            .max_by_key(|&(_, n)| *n)
            .map_or((0, 0), |(s, n)| (s, *n));
        let _ = writeln!(
            o,
            "False suspicions in trial {}: {} from {:.1} s to {:.1} s after the warm-up \
             (the trial began at {:.0} s), {} nodes suspected by {}; the most in one second: \
             {most} at {:.0} s.\n",
            t.index,
            t.false_pfails,
            f.first_s,
            f.last_s,
            f.start_s,
            f.suspected,
            f.suspecters,
            f.start_s + busiest as f64,
        );
    }
}

/// `v` with `digits` decimals and its interval, marked † when it (`ms` in
/// milliseconds) is smaller than the clock uncertainty `clock_ms` of a
/// hosts-world run.
fn ci_cell(v: f64, ci: Option<Ci>, digits: usize, ms: f64, clock_ms: Option<f64>) -> String {
    let shown = with_ci(v, ci.as_ref(), digits);
    match clock_ms {
        Some(u) if ms < u => format!("{shown} †"),
        _ => shown,
    }
}
