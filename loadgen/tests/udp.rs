//! Small runs of the udp world: real gossip-node nodes on loopback, measured
//! through the observation channel. Each run is a few seconds of wall clock;
//! every assertion is about behaviour, none about speed.

use std::path::PathBuf;
use std::process::Command;

use gossip_loadgen::observe::{Item, Trial};
use gossip_loadgen::report::Report;
use gossip_loadgen::runner::{self, Options};
use gossip_loadgen::scenario::Scenario;
use gossip_loadgen::world::Control;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gossip-loadgen-udp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Trial `t`'s item of `kind` (the first).
fn item<'a>(t: &'a Trial, kind: &str) -> &'a Item {
    t.items
        .iter()
        .find(|i| i.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} item"))
}

fn run(name: &str, scenario: &str, overrides: &[&str]) -> Report {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    let s = Scenario::load(scenario, &o).unwrap();
    let control = Control::new(1, "test");
    let opts = Options {
        threads: 2,
        out: Some(out_dir(name)),
        force: false,
        command: vec!["test".into(), name.into()],
    };
    runner::run(&s, &opts, &control).unwrap().0
}

#[test]
fn a_crash_among_twelve_udp_nodes_is_failed_everywhere_and_the_report_names_the_datapath() {
    let r = run(
        "crash12",
        "crash",
        &[
            "cluster.world=udp",
            "cluster.nodes=12",
            "cluster.datapath=mmsg",
            "profile.node_timeout_ms=1500",
            "run.warmup_s=3",
            "run.duration_s=8",
            "timeline=[{at_s=2.0,action=\"crash\"}]",
        ],
    );
    assert_eq!(r.world, "udp");
    assert_eq!(r.datapath.as_deref(), Some("mmsg"));
    assert_eq!(r.trials_done, 1);
    let s = &r.summary;
    let d = s.detect_all_fail_s.expect("detection measured");
    assert_eq!(d.count, 1, "the crash was FAILed at every live node");
    assert_eq!(s.undetected, Some(0));
    let first = s.detect_first_pfail_s.expect("PFAIL seen").p50;
    // PFAIL needs a ping unanswered for node_timeout: never sooner.
    assert!(first >= 1.5, "first PFAIL after {first} s");
    assert!(s.detect_first_fail_s.unwrap().p50 >= first);
    assert_eq!(s.false_fails, Some(0));
    // The FAIL item reached every node still running.
    let t = &r.trials[0];
    let fail = item(t, "fail");
    assert_eq!(fail.live, 11);
    assert_eq!(fail.reached, 11);
    // Steady overhead before the crash: positive, and the split by type sums.
    let m = s.msgs_per_node_s.unwrap();
    let b = s.bytes_per_node_s.unwrap();
    assert!(
        m.mean > 0.0 && m.max >= m.mean && b.mean > 0.0,
        "{m:?} {b:?}"
    );
    let types = s.overhead_by_type.as_ref().unwrap();
    let msgs: f64 = types.iter().map(|t| t.msgs_per_node_s).sum();
    let bytes: f64 = types.iter().map(|t| t.bytes_per_node_s.unwrap()).sum();
    assert!(
        (msgs - m.mean).abs() < 1e-6 * m.mean.max(1.0),
        "{msgs} vs {m:?}"
    );
    assert!(
        (bytes - b.mean).abs() < 1e-6 * b.mean.max(1.0),
        "{bytes} vs {b:?}"
    );
    let w = s.wire_bytes_per_node_s.unwrap();
    assert!((w.mean - b.mean - 28.0 * m.mean).abs() < 1e-6 * w.mean);
    // Resources are reported, and no observed event was lost.
    assert!(s.cpu_s_per_node_s.unwrap() > 0.0);
    assert!(s.rss_bytes.unwrap() > 0);
    assert_eq!(s.events_dropped, Some(0));
    assert!(s.late_ticks.is_some());
    // The JSON on disk carries the datapath and reads back equal.
    let dir =
        std::env::temp_dir().join(format!("gossip-loadgen-udp-{}-crash12", std::process::id()));
    let back = Report::read(&dir).expect("report.json reads back");
    assert_eq!(back.datapath.as_deref(), Some("mmsg"));
    assert_eq!(back.summary, r.summary);
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        md.contains("udp (mmsg)") && md.contains("## Resources"),
        "{md}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.contains("<svg"));
}

#[test]
fn a_join_and_a_restart_reach_every_udp_node() {
    let r = run(
        "join12",
        "demo",
        &[
            "cluster.nodes=10",
            "cluster.datapath=mmsg",
            "profile.node_timeout_ms=1500",
            "run.warmup_s=3",
            "run.duration_s=9",
            "timeline=[{at_s=1.0,action=\"join\"},{at_s=2.0,action=\"crash\"},{at_s=7.0,action=\"restart\"}]",
        ],
    );
    let t = &r.trials[0];
    let join = item(t, "join");
    // 10 nodes at the start, then the joiner: every other node learns of it.
    assert_eq!(join.about, Some(10));
    assert_eq!(join.reached, join.live, "{join:?}");
    assert_eq!(join.live, 10, "the restarted node runs again at the end");
    assert!(t.timeline.iter().any(|m| m.what.contains("restarts")));
    assert_eq!(r.summary.undetected, Some(0));
    // The restarted node, knowing nobody, and the others, holding it FAIL,
    // agree again within the 2 s left (about 0.05 s here).
    assert_eq!(t.recoveries.len(), 1, "{:?}", t.recoveries);
    assert_eq!(t.recoveries[0].after, "restart");
    assert!(
        t.recoveries[0].recover_s.is_some_and(|s| s > 0.0),
        "{:?}",
        t.recoveries
    );
    // Copies are counted by the nodes themselves: every node that learned
    // of the joiner got at least one copy (a datagram from it or a gossip
    // entry about it).
    assert_eq!(join.receptions.len(), join.reached, "{join:?}");
    assert!(join.receptions.iter().all(|&c| c >= 1), "{join:?}");
    assert!(r.summary.redundancy.is_some_and(|d| d.mean >= 1.0));
}

#[test]
fn loopback_cannot_shape_traffic_so_such_actions_are_refused_in_one_line() {
    let exe = env!("CARGO_BIN_EXE_gossip-loadgen");
    for (set, name) in [
        (
            "timeline=[{at_s=1.0,action=\"partition\",fraction=0.5}]",
            "partition",
        ),
        ("timeline=[{at_s=1.0,action=\"loss\",value=0.1}]", "loss"),
        ("network.loss=0.01", "network.loss"),
    ] {
        let out = Command::new(exe)
            .args([
                "run",
                "--scenario",
                "crash",
                "--world",
                "udp",
                "--nodes",
                "4",
            ])
            .args(["--set", set, "--out"])
            .arg(out_dir("refused"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{set} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(name) && err.contains("udp"), "{err}");
    }
}

#[test]
fn updates_published_among_twelve_udp_nodes_reach_every_node() {
    // Rumors (push, fan-out 2) with push-pull anti-entropy every 500 ms behind:
    // whatever the rumors leave, the exchanges finish within seconds among 12
    // nodes, and the window leaves 5 s after the last update.
    let r = run(
        "publish12",
        "steady",
        &[
            "cluster.world=udp",
            "cluster.nodes=12",
            "cluster.datapath=mmsg",
            "profile.node_timeout_ms=1500",
            "profile.dissemination=both",
            "profile.rumor_fanout=2",
            "profile.anti_entropy_period_ms=500",
            "run.warmup_s=3",
            "run.duration_s=7",
            "timeline=[{at_s=1.0,action=\"publish\",count=5,rate=10.0},{at_s=1.2,action=\"publish\",node=3}]",
        ],
    );
    let t = &r.trials[0];
    let updates: Vec<_> = t.items.iter().filter(|i| i.kind == "update").collect();
    assert_eq!(updates.len(), 6, "{:?}", t.timeline);
    for u in &updates {
        // Every node but the origin, all running at the end.
        assert_eq!(u.live, 11, "{u:?}");
        assert_eq!(u.reached, 11, "{u:?}");
        // Each node that took it as news received at least the copy that
        // brought it; Demers' traffic m is at least one message a node.
        assert_eq!(u.receptions.len(), u.reached, "{u:?}");
        assert!(u.receptions.iter().all(|&c| c >= 1), "{u:?}");
        assert!(u.traffic.is_some_and(|m| m >= 11.0 / 12.0), "{u:?}");
    }
    let k = r
        .summary
        .by_kind
        .iter()
        .find(|k| k.kind == "update")
        .expect("update row");
    assert_eq!(k.items, 6);
    assert_eq!(k.residue, 0.0);
    assert!(k.redundancy.is_some_and(|d| d.mean >= 1.0), "{k:?}");
}

/// 12 nodes and one join behind sockets of 5 slots (3 sockets, the last two
/// slots never started) with GSO/GRO on `datapath`: the join is known and the
/// crash FAILed everywhere.
fn shared_sockets_with_offload(datapath: &str, runs_on: &str) {
    let dp = format!("cluster.datapath={datapath}");
    let r = run(
        &format!("shared12-{datapath}"),
        "crash",
        &[
            "cluster.world=udp",
            "cluster.nodes=12",
            "cluster.slots=5",
            "cluster.offload=true",
            &dp,
            "profile.node_timeout_ms=1500",
            "run.warmup_s=3",
            "run.duration_s=8",
            "timeline=[{at_s=1.0,action=\"join\"},{at_s=2.0,action=\"crash\"}]",
        ],
    );
    let s = &r.summary;
    assert_eq!(s.detect_all_fail_s.expect("detection measured").count, 1);
    assert_eq!(s.undetected, Some(0));
    assert_eq!(s.false_fails, Some(0));
    let t = &r.trials[0];
    let join = item(t, "join");
    assert!(join.live >= 10, "{join:?}");
    assert_eq!(join.reached, join.live, "the joiner is known everywhere");
    let fail = item(t, "fail");
    assert_eq!(fail.reached, fail.live, "the FAIL reached every live node");
    assert_eq!(r.datapath.as_deref(), Some(runs_on));
}

#[test]
fn nodes_behind_shared_sockets_with_offload_join_detect_a_crash_and_report_it() {
    // `auto` keeps offload on mmsg (io_uring measured no faster with GSO/GRO).
    shared_sockets_with_offload("auto", "mmsg");
}

#[test]
fn offload_runs_on_the_uring_datapath_too() {
    if let Err(e) = gossip_node::datapath::probe_uring() {
        println!("skipped: io_uring is refused here: {e}");
        return;
    }
    shared_sockets_with_offload("uring", "uring");
}

/// The lean profile on real sockets: 40 nodes with views of 8 behind shared
/// sockets. A crash concerns the nodes that held the crashed node, and each
/// of them FAILs it; a join, the nodes that hold the joiner at the end.
#[test]
fn lean_views_on_udp_measure_a_crash_and_a_join_at_the_nodes_that_hold_them() {
    let r = run(
        "lean40",
        "crash",
        &[
            "cluster.world=udp",
            "cluster.nodes=40",
            "cluster.slots=20",
            "cluster.offload=true",
            "profile.name=\"lean\"",
            "profile.max_peers=8",
            "profile.node_timeout_ms=1500",
            "run.warmup_s=8",
            "run.duration_s=12",
            "timeline=[{at_s=1.0,action=\"join\"},{at_s=2.0,action=\"crash\",node=5}]",
        ],
    );
    let s = &r.summary;
    assert_eq!(s.detect_all_fail_s.expect("detection measured").count, 1);
    assert_eq!(s.undetected, Some(0));
    assert_eq!(s.false_fails, Some(0));
    let t = &r.trials[0];
    let fail = item(t, "fail");
    assert!((1..39).contains(&fail.live), "the holders: {fail:?}");
    assert_eq!(fail.reached, fail.live, "every holder FAILed it");
    let join = item(t, "join");
    assert!((1..40).contains(&join.live), "{join:?}");
    assert_eq!(
        join.reached, join.live,
        "every holder learned of the joiner"
    );
}

#[test]
fn a_resumed_udp_node_is_held_alive_again_by_every_node() {
    // Node 3 paused for 3 node_timeouts discards what arrives (a full receive
    // buffer): every node holds it PFAIL or FAIL. After its resume every node
    // holds it alive again, and it every other: one recovery, measured, and
    // no pair disagreeing at the end.
    let r = run(
        "resume10",
        "steady",
        &[
            "cluster.world=udp",
            "cluster.nodes=10",
            "cluster.datapath=mmsg",
            "profile.node_timeout_ms=1000",
            "run.warmup_s=2",
            "run.duration_s=7",
            "timeline=[{at_s=1.0,action=\"pause\",node=3},{at_s=4.0,action=\"resume\",node=3}]",
        ],
    );
    let t = &r.trials[0];
    assert_eq!(t.recoveries.len(), 1, "{:?}", t.recoveries);
    let rec = &t.recoveries[0];
    assert_eq!((rec.after.as_str(), rec.node), ("resume", Some(3)));
    let s = rec.recover_s.expect("agreement after the resume");
    // Others answer its PINGs and it theirs within a few ping rounds (about
    // 0.5 s here), well inside the 3 s left.
    assert!(s > 0.0 && s < 3.0, "recover_s {s}");
    assert_eq!(t.disagreeing_pairs, Some(0));
    assert_eq!(r.summary.events_dropped, Some(0));
}

#[test]
fn a_key_rotated_among_twelve_keyed_udp_nodes_loses_no_update_and_suspects_no_one() {
    // The key-rotation scenario, shortened: updates flow while every node
    // accepts key 2, sends with it, retires key 1.
    let r = run(
        "keyrot12",
        "key-rotation",
        &[
            "cluster.nodes=12",
            "cluster.datapath=mmsg",
            "profile.node_timeout_ms=1500",
            "profile.anti_entropy_period_ms=500",
            "run.warmup_s=3",
            "run.duration_s=9",
            "timeline=[{at_s=0.5,action=\"publish\",count=12,rate=2.0},{at_s=1.5,action=\"key-add\"},{at_s=3.0,action=\"key-switch\"},{at_s=4.5,action=\"key-retire\"}]",
        ],
    );
    let t = &r.trials[0];
    let marks = format!("{:?}", t.timeline);
    for step in [
        "every node accepts key 2 (12 running)",
        "every node sends with key 2 (12 running)",
        "every node retires key(s) [1] (12 running)",
    ] {
        assert!(marks.contains(step), "{step} not in {marks}");
    }
    let updates: Vec<_> = t.items.iter().filter(|i| i.kind == "update").collect();
    assert_eq!(updates.len(), 12);
    for u in &updates {
        assert_eq!(u.reached, 11, "an update was lost: {u:?}");
    }
    assert_eq!(r.summary.false_fails, Some(0));
    assert_eq!(r.summary.false_pfails, Some(0));
    assert!(r.scenario.auth.key);
}
