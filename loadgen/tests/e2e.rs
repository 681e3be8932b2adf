//! End-to-end runs where the answer is known by construction, the report's
//! JSON round trip, rendering, and the binary's behaviour at its edges.

use std::path::PathBuf;
use std::process::Command;

use gossip_loadgen::report::Report;
use gossip_loadgen::runner::{self, Options};
use gossip_loadgen::scenario::Scenario;
use gossip_loadgen::sweep::{Axis, Target, Verdict};
use gossip_loadgen::world::{self, Control};

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gossip-loadgen-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
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
fn two_nodes_exchange_one_ping_and_one_pong_a_second_each() {
    // The random-sample ping (every 10 ticks = 1 s) draws 5 times from the two
    // known nodes, self included as in Redis, and pings the peer unless all 5
    // draws were self: probability 31/32 a second. So its PONG is almost never
    // older than node_timeout / 2 = 2.5 s and the silence rule (almost) never
    // fires: 31/32 PING sent and 31/32 PONG (answering the peer's PING) a
    // second, each with an empty section (N - 2 = 0 entries): 26 bytes.
    // Binomial spread over 100 rounds: sd sqrt(100 * 31/32 * 1/32) = 1.7 pings
    // per node, 0.035/s for PINGs and as much for PONGs; allow 3 sd of each.
    let r = run(
        "two",
        "steady",
        &[
            "cluster.nodes=2",
            "profile.node_timeout_ms=5000",
            "run.warmup_s=5",
            "run.duration_s=100",
        ],
    );
    let s = r.summary;
    let m = s.msgs_per_node_s.unwrap();
    let expected = 2.0 * 31.0 / 32.0;
    assert!((m.mean - expected).abs() <= 0.21, "{m:?}");
    let b = s.bytes_per_node_s.unwrap();
    assert!(
        (b.mean - 26.0 * m.mean).abs() < 1e-6,
        "every datagram is 26 bytes: {b:?}"
    );
    let w = s.wire_bytes_per_node_s.unwrap();
    assert!((w.mean - b.mean - 28.0 * m.mean).abs() < 1e-6, "{w:?}");
    assert_eq!(s.false_fails, Some(0));
}

#[test]
fn total_loss_leaves_a_join_unknown_to_everyone() {
    let r = run(
        "loss",
        "join",
        &["cluster.nodes=10", "run.warmup_s=5", "run.duration_s=20"],
    );
    let s = r.summary;
    assert_eq!(
        s.residue,
        Some(0.0),
        "without loss the join reaches everyone"
    );
    let r = run(
        "loss1",
        "join",
        &[
            "cluster.nodes=10",
            "run.warmup_s=5",
            "run.duration_s=20",
            "network.loss=1.0",
        ],
    );
    assert_eq!(r.summary.residue, Some(1.0));
}

#[test]
fn a_partition_keeps_a_join_on_its_side() {
    // 20 nodes split 10 | 10 (no side has the 11 votes of 21 for FAIL); a node
    // joins on node 0's side and can reach only that side: half the others.
    let r = run(
        "partition",
        "join",
        &[
            "cluster.nodes=20",
            "profile.node_timeout_ms=4000",
            "run.warmup_s=10",
            "run.duration_s=20",
            "timeline=[{at_s=1.0,action=\"partition\",fraction=0.5},{at_s=2.0,action=\"join\"}]",
        ],
    );
    let join = r.trials[0].items.iter().find(|i| i.kind == "join").unwrap();
    assert_eq!(join.live, 20);
    assert_eq!(join.reached, 10, "{join:?}");
    assert_eq!(
        r.summary.false_fails,
        Some(0),
        "a cut-off node is not falsely FAILed"
    );
    // Never healed: no recovery, and every pair across the cut (11 × 10, each
    // way) still disagrees at the end; within each side every node holds
    // every other alive.
    assert!(r.trials[0].recoveries.is_empty());
    assert_eq!(r.summary.recover_s, None);
    assert_eq!(r.summary.disagreeing_pairs, Some(2 * 11 * 10));
}

#[test]
fn a_healed_partition_recovers_agreement_within_a_few_node_timeouts() {
    // 20 nodes split 10 | 10 for 4 node_timeouts: each side holds the other
    // PFAIL (no side has the votes for FAIL). After the heal, agreement (every
    // node holds every other alive) comes back once each suspicion is
    // answered: within a ping round and a node_timeout, never at the heal.
    let r = run(
        "heal",
        "partition",
        &[
            "cluster.nodes=20",
            "profile.node_timeout_ms=1000",
            "run.warmup_s=5",
            "run.duration_s=12",
            "run.trials=2",
            "timeline=[{at_s=1.0,action=\"partition\",fraction=0.5},{at_s=5.0,action=\"heal\"}]",
        ],
    );
    assert_eq!(r.trials.len(), 2);
    for t in &r.trials {
        assert_eq!(t.recoveries.len(), 1, "{:?}", t.recoveries);
        let rec = &t.recoveries[0];
        assert_eq!(
            (rec.after.as_str(), rec.node, rec.at_s),
            ("heal", None, 5.0)
        );
        assert!(!rec.interrupted);
        let s = rec.recover_s.expect("agreement came back");
        assert!(s > 0.0 && s < 3.0, "recover_s {s}");
        assert_eq!(t.disagreeing_pairs, Some(0));
        assert!(
            t.timeline
                .iter()
                .any(|m| m.what.starts_with("agreement restored after heal: ")
                    && (m.t_s - 5.0 - s).abs() < 1e-9),
            "{:?}",
            t.timeline
        );
    }
    let s = &r.summary;
    let rec = s.recover_s.expect("summarized");
    assert_eq!(rec.count, 2);
    assert!(
        rec.p50 > 0.0 && rec.p50 <= rec.max && rec.max < 3.0,
        "{rec:?}"
    );
    assert_eq!(s.unrecovered, Some(0));
    assert_eq!(s.recoveries_interrupted, Some(0));
    assert_eq!(s.disagreeing_pairs, Some(0));
    assert_eq!(s.false_fails, Some(0));
}

#[test]
fn fails_from_a_partitions_evidence_after_its_heal_are_not_counted_false() {
    // Lean views (quorum 2, a suspicion outliving report_validity becomes FAIL
    // alone) over 200 nodes, one quarter cut off for 1.5 node_timeouts: nodes
    // whose suspicion began during the cut FAIL the other side's nodes after
    // the heal, when they are reachable again (about 200 of them). Those FAILs are the partition's
    // evidence (within node_timeout + report_validity of the heal), counted
    // apart; the run's one crash, much later, is detected and nothing is false.
    let r = run(
        "heal-lean",
        "partition",
        &[
            "cluster.nodes=200",
            "profile.name=lean",
            "profile.node_timeout_ms=1000",
            "network.loss=0",
            "run.warmup_s=10",
            "run.duration_s=20",
            "timeline=[{at_s=1.0,action=\"partition\",fraction=0.25},{at_s=2.5,action=\"heal\"},{at_s=12.0,action=\"crash\"}]",
        ],
    );
    let s = &r.summary;
    assert_eq!(s.false_fails, Some(0), "{:?}", r.trials[0].timeline);
    assert!(
        s.partition_fails.is_some_and(|n| n > 0),
        "{:?}",
        s.partition_fails
    );
    assert_eq!(s.undetected, Some(0));
}

#[test]
fn a_resumed_node_is_held_alive_again_and_the_next_action_interrupts_a_recovery() {
    // Node 3 paused for 4 node_timeouts is FAIL everywhere; after its resume
    // every node holds it alive again, and it every other.
    let timeline = |then: &str| {
        format!(
            "timeline=[{{at_s=1.0,action=\"pause\",node=3}},{{at_s=5.0,action=\"resume\",node=3}}{then}]"
        )
    };
    let base = [
        "cluster.nodes=10",
        "profile.node_timeout_ms=1000",
        "run.warmup_s=5",
        "run.duration_s=10",
    ];
    let plain = timeline("");
    let mut o = base.to_vec();
    o.push(&plain);
    let r = run("resume", "steady", &o);
    let t = &r.trials[0];
    assert_eq!(t.recoveries.len(), 1);
    let rec = &t.recoveries[0];
    assert_eq!((rec.after.as_str(), rec.node), ("resume", Some(3)));
    let s = rec.recover_s.expect("agreement after the resume");
    assert!(s > 0.0 && s < 3.0, "recover_s {s}");
    assert_eq!(t.disagreeing_pairs, Some(0));
    assert!(t.timeline.iter().any(|m| m
        .what
        .starts_with("agreement restored after resume of node 3: ")));
    // A crash at the resume's own time comes before any node could answer:
    // the recovery is interrupted, not measured; the crashed node does not
    // count in the agreement at the end.
    let crash = timeline(",{at_s=5.0,action=\"crash\",node=5}");
    let mut o = base.to_vec();
    o.push(&crash);
    let r = run("resume-crash", "steady", &o);
    let rec = &r.trials[0].recoveries[0];
    assert!(rec.interrupted && rec.recover_s.is_none(), "{rec:?}");
    let s = &r.summary;
    assert_eq!(s.recover_s, None);
    assert_eq!(
        (s.recoveries_interrupted, s.unrecovered),
        (Some(1), Some(0))
    );
    assert_eq!(s.disagreeing_pairs, Some(0));
}

#[test]
fn a_run_without_a_heal_resume_or_restart_has_no_recoveries() {
    // A join and a crash disturb membership but open no recovery; the crashed
    // node is not running, so its FAIL everywhere is no disagreement.
    let r = run(
        "no-recovery",
        "steady",
        &[
            "cluster.nodes=10",
            "profile.node_timeout_ms=1000",
            "run.warmup_s=3",
            "run.duration_s=8",
            "timeline=[{at_s=1.0,action=\"join\"},{at_s=2.0,action=\"crash\",node=4}]",
        ],
    );
    assert!(r.trials[0].recoveries.is_empty());
    let s = &r.summary;
    assert_eq!(
        (s.recover_s, s.unrecovered, s.recoveries_interrupted),
        (None, None, None)
    );
    assert_eq!(s.disagreeing_pairs, Some(0));
    let md = r.markdown();
    assert!(!md.contains("## Recovery"), "{md}");
}

#[test]
fn a_crash_is_detected_within_the_bounds_the_rules_imply() {
    let r = run(
        "crash",
        "crash",
        &[
            "cluster.nodes=30",
            "profile.node_timeout_ms=2000",
            "run.warmup_s=10",
            "run.duration_s=15",
        ],
    );
    let s = r.summary;
    let pfail = s.detect_first_pfail_s.unwrap();
    // PFAIL needs a ping unanswered for node_timeout: never sooner; and every
    // peer is pinged at least every node_timeout / 2 + a random-ping period.
    assert!(
        pfail.p50 >= 2.0 && pfail.p50 <= 2.0 + 1.0 + 1.0 + 0.2,
        "{pfail:?}"
    );
    let all = s.detect_all_fail_s.unwrap();
    assert!(all.max >= s.detect_first_fail_s.unwrap().max);
    assert_eq!(s.undetected, Some(0));
    assert_eq!(s.false_fails, Some(0));
}

#[test]
fn the_report_round_trips_through_json_and_renders() {
    let r = run(
        "json",
        "demo",
        &[
            "cluster.world=sim",
            "cluster.nodes=40",
            "run.warmup_s=8",
            "run.duration_s=20",
        ],
    );
    let dir = std::env::temp_dir().join(format!("gossip-loadgen-test-{}-json", std::process::id()));
    let back = Report::read(&dir).unwrap();
    assert_eq!(back, r);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(
        html.matches("<svg").count() >= 2,
        "latency CDF and timeline charts"
    );
    assert!(html.contains("Dissemination latency") && html.contains("Timeline"));
    assert!(!html.contains("src=\"http"), "self-contained");
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("## Ping overhead") && md.contains("## Failure detection"));
}

#[test]
fn rumor_runs_report_demers_figures() {
    let r = run(
        "rumor",
        "rumor",
        &["cluster.nodes=1000", "run.trials=40", "epidemic.k=2"],
    );
    let s = r.summary;
    // Demers 1987 Table 1, k = 2: s = 0.037, m = 3.30, t_ave 12.1, t_last 16.9;
    // a loose check here, the tight one lives in core/tests/validation.rs.
    let (res, m) = (s.residue.unwrap(), s.traffic.unwrap());
    assert!(res > 0.01 && res < 0.08, "residue {res}");
    assert!(m > 2.8 && m < 3.8, "traffic {m}");
    assert!(s.t_ave.is_some() && s.t_last.is_some());
    assert_eq!(r.trials_done, 40);
}

#[test]
fn a_sweep_recommends_the_cheapest_setting_meeting_its_target() {
    let s = Scenario::load(
        "crash",
        &[
            "cluster.nodes=20".into(),
            "run.warmup_s=8".into(),
            "run.duration_s=20".into(),
        ],
    )
    .unwrap();
    let axes = vec![Axis::parse("profile.node_timeout_ms=1000,3000").unwrap()];
    let targets = vec![Target::parse("detect_all_fail_s.p99=2.5").unwrap()];
    let control = Control::new(world::units_per_trial(&s) * 2, "sweep");
    let opts = Options {
        threads: 2,
        out: Some(out_dir("sweep")),
        force: false,
        command: vec!["test".into()],
    };
    let o = vec![
        "cluster.nodes=20".into(),
        "run.warmup_s=8".into(),
        "run.duration_s=20".into(),
    ];
    let (r, html) = runner::sweep(&s, &o, &axes, &targets, &opts, &control, "crash", None).unwrap();
    let sw = r.sweep.unwrap();
    assert_eq!(sw.points.len(), 2);
    // node_timeout 1 s detects in ~1-2 s and pings more; 3 s cannot meet
    // 2.5 s, which one crash above it shows. One crash cannot show that
    // 1 s meets a p99, so nothing is recommended: 367 more trials would.
    let cheap = &sw.points[1];
    let fast = &sw.points[0];
    assert!(cheap.cost().unwrap() < fast.cost().unwrap());
    assert_eq!(cheap.verdict, Some(Verdict::Missed), "{}", sw.statement);
    assert_eq!(
        fast.verdict,
        Some(Verdict::Undecided {
            more_trials: Some(367)
        })
    );
    assert_eq!(sw.recommended, None, "{}", sw.statement);
    assert!(sw.statement.contains("too few samples"), "{}", sw.statement);
    assert!(std::fs::read_to_string(html).unwrap().contains("Pareto"));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gossip-loadgen"))
}

#[test]
fn bad_input_gets_a_one_line_error_and_a_nonzero_exit() {
    for args in [
        vec!["run", "--scenario", "nope"],
        vec!["run", "--set", "cluster.nodez=3"],
        vec!["run", "--nodes", "1"],
        vec!["run", "--scenario", "rumor", "--stop", "sometimes"],
        vec!["sweep", "--sweep", "profile.random_ping_fanout"],
    ] {
        let out = bin().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("gossip-loadgen: ") || err.starts_with("error:"),
            "{err}"
        );
    }
}

#[test]
fn json_mode_prints_only_the_summary_on_stdout() {
    let dir = out_dir("cli");
    let out = bin()
        .args([
            "run",
            "--scenario",
            "rumor",
            "--world",
            "sim",
            "--nodes",
            "200",
            "--trials",
            "5",
            "--stop",
            "blind-coin",
            "--k",
            "3",
            "--json",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "nodes",
        "world",
        "trials",
        "residue",
        "traffic",
        "t_ave",
        "t_last",
        "redundancy",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["trials"], 5);
    assert!(dir.join("report.html").exists());
}

#[test]
fn a_burst_of_rumors_reaches_every_node_within_the_rounds_push_needs() {
    // 40 nodes, rumor mongering alone (push-pull, fan-out 2, feedback +
    // counter k = 4), a round every tick (100 ms). Push alone with fan-out f
    // reaches all N in about log_(1+f) N + ln(N) / f rounds (Pittel 1987;
    // Karp et al. 2000): 3.4 + 1.8 = 5.2 rounds at N = 40; pulls only speed
    // the end game and close the residue push leaves (push alone, k = 4,
    // misses a node or two of 39 now and then). The bound allows three times
    // that plus the round the update waits for: 17 rounds, 1.7 s, and 0.5 ms
    // of network. Push-pull with a feedback counter still stops now and then
    // before the last node (Demers et al. 1987): over seeds 1-10, 0 to 3 of
    // the 780 node-updates were missed, never two nodes of one update. (This
    // seed missed none until the Redis profile's cron was re-armed after each
    // run, issue 18; that moved every round and missed 3.) So at most one
    // node an update, and at most 1 % of all.
    let r = run(
        "burst",
        "steady",
        &[
            "cluster.nodes=40",
            "profile.node_timeout_ms=3000",
            "profile.dissemination=rumor",
            "profile.rumor_direction=push-pull",
            "profile.rumor_fanout=2",
            "profile.rumor_stop_k=4",
            "run.warmup_s=8",
            "run.duration_s=6",
            "timeline=[{at_s=1.0,action=\"publish\",count=20,rate=20.0}]",
        ],
    );
    let t = &r.trials[0];
    let updates: Vec<_> = t.items.iter().filter(|i| i.kind == "update").collect();
    assert_eq!(updates.len(), 20);
    for u in &updates {
        assert_eq!(u.live, 39, "every node but the origin");
        assert!(u.reached >= 38, "{u:?}");
        let worst = *u.latencies_us.iter().max().unwrap();
        assert!(worst <= 1_700_500, "{worst} us: beyond 17 rounds");
        // One copy at least per node reached; every copy is a datagram.
        assert_eq!(u.receptions.len(), u.reached);
        assert!(u.receptions.iter().all(|&c| c >= 1));
        let copies: u32 = u.receptions.iter().sum();
        let m = u.traffic.unwrap();
        assert!(
            m * 40.0 >= f64::from(copies) - 1e-9,
            "traffic {m} counts every copy"
        );
    }
    let k = r
        .summary
        .by_kind
        .iter()
        .find(|k| k.kind == "update")
        .unwrap();
    assert_eq!(k.items, 20);
    assert!(k.residue <= 0.01, "residue {}", k.residue);
    assert!(k.redundancy.unwrap().mean >= 1.0);
    assert!(r.summary.traffic.unwrap() >= 39.0 / 40.0);
}

#[test]
fn publish_without_dissemination_and_a_bad_dissemination_field_are_refused_in_one_line() {
    let e = Scenario::load(
        "steady",
        &["timeline=[{at_s=1.0,action=\"publish\"}]".to_string()],
    )
    .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("profile.dissemination") && !msg.contains('\n'),
        "{msg}"
    );
    for (set, field) in [
        ("profile.dissemination=gossip", "profile.dissemination"),
        (
            "profile.rumor_direction=sideways",
            "profile.rumor_direction",
        ),
        ("profile.rumor_stop=never", "profile.rumor_stop"),
        ("profile.rumor_stop_k=0", "profile.rumor_stop_k"),
        ("profile.rumor_fanout=0", "profile.rumor_fanout"),
        ("profile.rumor_period_ms=0", "profile.rumor_period_ms"),
    ] {
        let e = Scenario::load("steady", &[set.to_string()]).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains(field) && !msg.contains('\n'), "{set}: {msg}");
    }
}

/// With the lean profile's partial views, a crash concerns the nodes that
/// held the crashed node: the FAIL item's audience is them, every one of them
/// gets it, and the report says so rather than a residue of nine tenths.
#[test]
fn a_crash_in_lean_views_is_measured_at_the_nodes_that_held_it() {
    let r = run(
        "lean",
        "crash",
        &[
            "cluster.nodes=200",
            "profile.name=\"lean\"",
            "profile.max_peers=12",
            "profile.node_timeout_ms=2000",
            "run.warmup_s=30",
            "run.duration_s=20",
        ],
    );
    let s = &r.summary;
    assert_eq!(s.undetected, Some(0));
    assert_eq!(s.false_fails, Some(0));
    let all = s.detect_all_fail_s.unwrap();
    // PFAIL after node_timeout plus up to a ping interval; FAIL by a report,
    // or after report_validity (2 node_timeout) more.
    assert!(all.max <= 2.0 + 1.0 + 4.0 + 1.0, "{all:?}");
    let fail = r.trials[0].items.iter().find(|i| i.kind == "fail").unwrap();
    assert!(
        (2..60).contains(&fail.live),
        "held by a view's worth of nodes, not all 199: {fail:?}"
    );
    assert_eq!(fail.reached, fail.live);
}

#[test]
fn runs_started_together_each_keep_their_whole_report_in_a_directory_of_their_own() {
    // Scripts start runs faster than one a second: the same scenario and seed,
    // all at once, from one working directory.
    let cwd = out_dir("together");
    std::fs::create_dir_all(&cwd).unwrap();
    let runs = 9;
    let children: Vec<_> = (0..runs)
        .map(|_| {
            bin()
                .current_dir(&cwd)
                .args([
                    "run",
                    "--scenario",
                    "steady",
                    "--world",
                    "sim",
                    "--nodes",
                    "5",
                ])
                .args([
                    "--set",
                    "run.warmup_s=1",
                    "--set",
                    "run.duration_s=2",
                    "--seed",
                    "7",
                ])
                .arg("--json")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dirs: Vec<_> = std::fs::read_dir(cwd.join("reports/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), runs, "{dirs:?}");
    let mut ids = std::collections::BTreeSet::new();
    for d in &dirs {
        let r = Report::read(d).unwrap_or_else(|e| panic!("{}: {e:#}", d.display()));
        assert_eq!(r.trials_done, 1);
        assert_eq!(d.file_name().unwrap().to_string_lossy(), r.run_id);
        assert!(d.join("summary.md").exists() && d.join("report.html").exists());
        ids.insert(r.run_id);
    }
    assert_eq!(ids.len(), runs);
}

#[test]
fn out_onto_an_existing_report_is_refused_unless_forced() {
    let dir = out_dir("existing");
    let run = |extra: &[&str]| {
        bin()
            .args([
                "run",
                "--scenario",
                "steady",
                "--nodes",
                "4",
                "--world",
                "sim",
            ])
            .args([
                "--set",
                "run.warmup_s=1",
                "--set",
                "run.duration_s=1",
                "--out",
            ])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(run(&[]).status.success());
    let again = run(&[]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--force") && err.contains("holds a report"),
        "{err}"
    );
    assert!(run(&["--force"]).status.success());
    Report::read(&dir).unwrap();
}
