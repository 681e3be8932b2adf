//! `summary.md`: the figures as tables.

use std::fmt::Write;

use super::Report;
use crate::metrics::P50Max;

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
        let _ = writeln!(
            o,
            "| profile | {} (node_timeout {} ms, tick {} ms, fan-out {}, section {}/1000 min {}) |",
            p.name, p.node_timeout_ms, p.tick_ms, p.fanout, p.section_per_thousand, p.section_min
        );
        if p.disseminates() {
            let _ = writeln!(
                o,
                "| dissemination | {} (rumor {} {} k {}, fan-out {}, every {} ms; anti-entropy {} every {} ms) |",
                p.dissemination,
                p.rumor_mode,
                p.rumor_stop,
                p.rumor_k,
                p.rumor_fanout,
                p.rumor_period_ms,
                p.anti_entropy_mode,
                p.anti_entropy_period_ms
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
    let _ = writeln!(o, "| wall time | {:.1} s |\n", r.wall_s);
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
        let _ = writeln!(o, "| figure | mean | max over nodes |\n|---|---:|---:|");
        let _ = writeln!(o, "| datagrams | {:.2} | {:.2} |", m.mean, m.max);
        let _ = writeln!(o, "| payload bytes | {:.0} | {:.0} |", b.mean, b.max);
        let _ = writeln!(
            o,
            "| wire bytes (+28/datagram) | {:.0} | {:.0} |\n",
            w.mean, w.max
        );
        if let Some(types) = &s.overhead_by_type {
            let _ = writeln!(
                o,
                "| type | datagrams/node/s | bytes/node/s | bytes/datagram |\n|---|---:|---:|---:|"
            );
            for t in types {
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
        let row = |o: &mut String, name: &str, v: Option<f64>, digits: usize| {
            if let Some(v) = v {
                let _ = writeln!(o, "| {name} | {v:.digits$} |");
            }
        };
        row(&mut o, "residue", s.residue, 4);
        row(&mut o, "traffic m (msgs/node)", s.traffic, 2);
        row(&mut o, "t_ave (rounds)", s.t_ave, 2);
        row(&mut o, "t_last (rounds)", s.t_last, 2);
        row(&mut o, "rounds to all, mean", s.rounds_mean, 2);
        row(&mut o, "rounds to all, p99", s.rounds_p99, 0);
        if let Some(d) = s.redundancy {
            let _ = writeln!(o, "| redundancy (receptions/node reached) | {:.2} (p50 {:.0}, p99 {:.0}, max {:.0}) |", d.mean, d.p50, d.p99, d.max);
        }
        if let Some(l) = s.latency_ms {
            let f = |v: f64| clocked(v, 1, v, clock_ms);
            let _ = writeln!(
                o,
                "| latency ms p50 / p90 / p99 / p99.9 / max | {} / {} / {} / {} / {} |",
                f(l.p50),
                f(l.p90),
                f(l.p99),
                f(l.p999),
                f(l.max)
            );
        }
        if let Some(sp) = s.spread {
            let f = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.2} s"));
            let _ = writeln!(
                o,
                "| time to 50 % / 99 % / 100 % of live nodes | {} / {} / {} |",
                f(sp.t50_s),
                f(sp.t99_s),
                f(sp.t100_s)
            );
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
                let f = |v: f64| clocked(v, 1, v, clock_ms);
                format!("{} / {} / {}", f(l.p50), f(l.p99), f(l.max))
            });
            let t100 = k.t100_s.map_or("never".to_string(), |t| format!("{t:.2}"));
            let red = k.redundancy.map_or("not counted".to_string(), |d| {
                format!("{:.2}, {:.0}, {:.0}", d.mean, d.p99, d.max)
            });
            let traffic = k.traffic.map_or("—".to_string(), |m| format!("{m:.2}"));
            let _ = writeln!(
                o,
                "| {} | {} | {lat} | {t100} | {:.4} | {red} | {traffic} |",
                k.kind, k.items, k.residue
            );
        }
        o.push('\n');
    }
    if s.detect_first_pfail_s.is_some() || s.false_fails.is_some() {
        let _ = writeln!(o, "## Failure detection (s after the crash)\n");
        let _ = writeln!(o, "| figure | p50 | max | crashes |\n|---|---:|---:|---:|");
        let row = |o: &mut String, name: &str, v: Option<P50Max>| {
            if let Some(v) = v {
                let f = |x: f64| clocked(x, 2, x * 1e3, clock_ms);
                let _ = writeln!(o, "| {name} | {} | {} | {} |", f(v.p50), f(v.max), v.count);
            }
        };
        row(&mut o, "first PFAIL anywhere", s.detect_first_pfail_s);
        row(&mut o, "first FAIL anywhere", s.detect_first_fail_s);
        row(&mut o, "FAIL at every live node", s.detect_all_fail_s);
        if let Some(u) = s.undetected {
            let _ = writeln!(o, "| crashes not FAILed everywhere | {u} | | |");
        }
        if let Some(ff) = s.false_fails {
            let per = s
                .false_fails_per_node_hour
                .map_or(String::new(), |x| format!(" ({x:.3} per node-hour)"));
            let _ = writeln!(o, "| false FAILs | {ff}{per} | | |");
        }
        o.push('\n');
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
        let _ = writeln!(o, "| figure | p50 | max | events |\n|---|---:|---:|---:|");
        if let Some(v) = s.recover_s {
            let _ = writeln!(
                o,
                "| time to agreement | {:.2} | {:.2} | {} |",
                v.p50, v.max, v.count
            );
        }
        if let Some(u) = s.unrecovered {
            let _ = writeln!(o, "| events never at agreement by the end | {u} | | |");
        }
        if let Some(i) = s.recoveries_interrupted {
            let _ = writeln!(
                o,
                "| events interrupted by the next action (unmeasured) | {i} | | |"
            );
        }
        if let Some(p) = s.disagreeing_pairs {
            let _ = writeln!(o, "| node pairs disagreeing at the end | {p} | | |");
        }
        o.push('\n');
    }
    if let Some(cpu) = s.cpu_s_per_node_s {
        let _ = writeln!(o, "## Resources (real nodes, measured window)\n");
        let _ = writeln!(o, "| figure | value |\n|---|---:|");
        let _ = writeln!(o, "| CPU s per node-second (I/O threads) | {cpu:.5} |");
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

/// `v` with `digits` decimals, marked † when it (`ms` in milliseconds) is
/// smaller than the clock uncertainty `clock_ms` of a hosts-world run.
fn clocked(v: f64, digits: usize, ms: f64, clock_ms: Option<f64>) -> String {
    match clock_ms {
        Some(u) if ms < u => format!("{v:.digits$} †"),
        _ => format!("{v:.digits$}"),
    }
}
