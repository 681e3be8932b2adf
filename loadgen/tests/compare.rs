//! `compare` end to end: one scenario in our udp world and in a real Redis
//! Cluster (`redis-server`, Debian package `redis-server`; CI installs it),
//! side by side in one report; a keyed scenario beside itself without the
//! key; and the one-line refusals.

use std::path::PathBuf;
use std::process::Command;

use gossip_loadgen::report::Report;
use gossip_loadgen::world::redis::cluster::live_pids;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gossip-loadgen-compare-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gossip-loadgen"))
}

/// The `redis-server` processes running now (any, not only ours).
fn redis_servers() -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains("gossip-loadgen-redis") {
            out.push(pid);
        }
    }
    out
}

fn require_redis() {
    let found = Command::new("redis-server").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "redis-server is not installed: apt-get install redis-server (CI's .ci/run does)"
    );
}

#[test]
fn a_keyed_scenario_beside_itself_without_the_key_shows_the_keys_cost() {
    let dir = out_dir("keycost");
    let out = bin()
        .args(["compare", "--scenario", "key-rotation", "--nodes", "8"])
        .args(["--worlds", "udp", "--without-key"])
        .args(["--set", "profile.node_timeout_ms=1000"])
        .args(["--set", "run.warmup_s=2", "--set", "run.duration_s=5"])
        .args([
            "--set",
            "timeline=[{at_s=0.5,action=\"publish\",count=5,rate=5.0},{at_s=1.0,action=\"key-add\"},{at_s=2.0,action=\"key-switch\"},{at_s=3.0,action=\"key-retire\"}]",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let md = String::from_utf8_lossy(&out.stdout);
    for row in [
        "udp ÷ udp-no-key",
        "payload bytes / message",
        "CPU s / node-s",
    ] {
        assert!(md.contains(row), "{row} not in {md}");
    }
    let r = Report::read(&dir).unwrap();
    let c = r.compare.expect("a comparison");
    assert_eq!(c.names, ["udp", "udp-no-key"]);
    let (keyed, bare) = (&c.sides[0], &c.sides[1]);
    assert!(keyed.scenario.auth.key && !bare.scenario.auth.key);
    // The same timeline but the key steps.
    assert_eq!(keyed.scenario.timeline.len(), 4);
    assert_eq!(bare.scenario.timeline.len(), 1);
    // Every datagram carries the 33-byte trailer: a message's mean size shows it.
    let per_msg = |r: &Report| {
        r.summary.bytes_per_node_s.as_ref().unwrap().mean
            / r.summary.msgs_per_node_s.as_ref().unwrap().mean
    };
    let added = per_msg(keyed) - per_msg(bare);
    assert!((20.0..60.0).contains(&added), "{added} bytes a message");
    assert!(dir.join("udp-no-key").join("report.json").exists());
    // Without a key to drop: refused in one line.
    let out = bin()
        .args([
            "compare",
            "--scenario",
            "crash",
            "--worlds",
            "udp",
            "--without-key",
        ])
        .arg("--out")
        .arg(out_dir("keycost-none"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("runs without a cluster key"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn six_nodes_in_udp_and_in_redis_side_by_side() {
    require_redis();
    let dir = out_dir("crash6");
    let out = bin()
        .args(["compare", "--scenario", "crash", "--nodes", "6"])
        .args(["--worlds", "udp,redis"])
        .args(["--set", "profile.node_timeout_ms=1000"])
        .args(["--set", "run.warmup_s=3", "--set", "run.duration_s=8"])
        .args(["--set", "timeline=[{at_s=2.0,action=\"crash\"}]"])
        // Ports of their own: tests of the driver run at the same time.
        .args([
            "--set",
            "redis.port_first=23100",
            "--set",
            "redis.port_last=23199",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("udp ÷ redis"), "{md}");
    assert!(md.contains("PING / node / s"), "{md}");
    let r = Report::read(&dir).unwrap();
    assert!(!r.interrupted);
    let c = r.compare.expect("a comparison");
    assert_eq!(c.sides.len(), 2);
    assert_eq!(c.sides[0].world, "udp");
    assert_eq!(c.sides[1].world, "redis");
    assert!(
        c.sides[1]
            .datapath
            .as_deref()
            .is_some_and(|v| v.contains("redis")),
        "{:?}",
        c.sides[1].datapath
    );
    for side in &c.sides {
        let s = &side.summary;
        let w = &side.world;
        // Both sides measured the same things: upkeep, and the crash FAILed
        // at every other node, with no false FAIL.
        assert!(
            s.msgs_per_node_s.is_some_and(|m| m.mean > 0.0),
            "{w}: {s:?}"
        );
        assert!(
            s.bytes_per_node_s.is_some_and(|b| b.mean > 0.0),
            "{w}: {s:?}"
        );
        let d = s.detect_all_fail_s.expect("detection measured");
        assert_eq!(d.count, 1, "{w}");
        // PFAIL needs node_timeout of silence: never sooner.
        assert!(s.detect_first_pfail_s.unwrap().p50 >= 1.0, "{w}: {s:?}");
        assert_eq!(s.undetected, Some(0), "{w}");
        assert_eq!(s.false_fails, Some(0), "{w}");
        // No heal, resume or restart: no recovery; and at the end every
        // running node holds every other alive (the crashed one counts not).
        assert_eq!(s.recover_s, None, "{w}");
        assert_eq!(s.disagreeing_pairs, Some(0), "{w}");
        // Each world's own report is there, whole.
        let own = Report::read(&dir.join(w)).unwrap();
        assert_eq!(own.summary, side.summary);
    }
    // Copies are counted on our nodes, not in Redis.
    assert!(c.sides[1].summary.redundancy.is_none());
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("Upkeep by type") && html.contains("<svg"));
    // Every server this run started is gone.
    assert!(live_pids().is_empty());
    assert!(redis_servers().is_empty(), "{:?}", redis_servers());
}

/// A server that answers `--version` as Redis 7 does, then exits at start.
fn server_that_exits_at_start() -> String {
    let path = std::env::temp_dir().join(format!(
        "gossip-loadgen-compare-{}-exits",
        std::process::id()
    ));
    std::fs::write(
        &path,
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'Redis server v=7.0.15 sha=00000000:0 malloc=libc bits=64 build=0' && exit 0\necho 'fatal: cannot start' >&2\nexit 1\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn what_a_comparison_cannot_run_is_refused_in_one_line_and_leaves_nothing_running() {
    let exits = format!("redis.server={}", server_that_exits_at_start());
    for (args, says) in [
        (vec!["--worlds", "udp,nope"], "nope"),
        (vec!["--worlds", "udp"], "at least two"),
        // The demo publishes updates: Redis's bus carries none of ours.
        (
            vec!["--scenario", "demo", "--worlds", "udp,redis"],
            "publish",
        ),
        (
            vec![
                "--scenario",
                "steady",
                "--worlds",
                "sim,redis",
                "--set",
                "profile.random_ping_fanout=3",
            ],
            "profile.random_ping_fanout",
        ),
        (
            vec![
                "--scenario",
                "steady",
                "--worlds",
                "redis,sim",
                "--set",
                exits.as_str(),
                "--set",
                "redis.port_first=23200",
                "--set",
                "redis.port_last=23299",
            ],
            "exited at start",
        ),
    ] {
        let dir = out_dir("refused");
        let out = bin()
            .args(["compare", "--nodes", "3"])
            .args(&args)
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.trim().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("gossip-loadgen: ") && last.contains(says),
            "{args:?}: {err}"
        );
        assert_eq!(
            err.lines()
                .filter(|l| l.starts_with("gossip-loadgen: "))
                .count(),
            1,
            "{err}"
        );
    }
    assert!(redis_servers().is_empty(), "{:?}", redis_servers());
}

#[test]
fn a_sweep_takes_worlds_as_one_more_axis() {
    let dir = out_dir("sweep-worlds");
    let out = bin()
        .args(["sweep", "--scenario", "crash", "--nodes", "6"])
        .args(["--worlds", "sim,udp"])
        .args(["--sweep", "profile.node_timeout_ms=1000"])
        .args(["--set", "run.warmup_s=2", "--set", "run.duration_s=5"])
        .args(["--set", "timeline=[{at_s=1.0,action=\"crash\"}]"])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = Report::read(&dir).unwrap();
    let sw = r.sweep.expect("a sweep");
    let worlds: Vec<_> = sw
        .points
        .iter()
        .map(|p| (p.params["cluster.world"].clone(), p.summary.world.clone()))
        .collect();
    assert_eq!(worlds.len(), 2, "{worlds:?}");
    for (param, world) in &worlds {
        assert!(param.contains(world.as_str()), "{worlds:?}");
    }
    for p in &sw.points {
        assert_eq!(p.summary.undetected, Some(0), "{p:?}");
    }
}
