//! The redis world's driver against real redis-server processes on
//! 127.0.0.1. Needs `redis-server` (Debian package `redis-server`) or
//! `valkey-server` on PATH: CI installs it, and these tests fail, never skip,
//! without it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use gossip_loadgen::world::redis::cluster::{Change, Cluster, NodeState, Options, Seen};

fn require_server() {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|d| d.join("redis-server").is_file() || d.join("valkey-server").is_file())
    });
    assert!(
        found,
        "redis-server is not installed: `apt-get install redis-server` (Debian package `redis-server`; \
         .ci/run installs it) or put valkey-server on PATH"
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gossip-redis-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Polls every 25 ms, collecting changes, until `done` holds or `bound`
/// passes; returns whether it held.
fn poll_until(
    c: &mut Cluster,
    log: &mut Vec<Change>,
    bound: Duration,
    done: impl Fn(&[Change]) -> bool,
) -> bool {
    let end = Instant::now() + bound;
    while Instant::now() < end {
        log.extend(c.poll().expect("poll"));
        if done(log) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn saw(log: &[Change], node: usize, about: usize, what: Seen) -> Option<Duration> {
    log.iter()
        .find(|c| c.node == node && c.about == about && c.what == what)
        .map(|c| c.at)
}

fn all_saw(log: &[Change], observers: &[usize], about: usize, what: Seen) -> bool {
    observers
        .iter()
        .all(|&n| saw(log, n, about, what).is_some())
}

/// Every observer saw `about` FAIL, none before its own PFAIL, and at least
/// one saw the PFAIL (a node may learn FAIL from a broadcast before its own
/// timeout fires, so not every node need pass through PFAIL).
fn check_failed(log: &[Change], observers: &[usize], about: usize) {
    let mut pfails = 0;
    for &n in observers {
        let fail = saw(log, n, about, Seen::Fail)
            .unwrap_or_else(|| panic!("node {n} never saw {about} FAIL: {log:?}"));
        if let Some(pfail) = saw(log, n, about, Seen::Pfail) {
            assert!(pfail <= fail, "node {n} saw {about} PFAIL after FAIL");
            pfails += 1;
        }
    }
    assert!(pfails > 0, "no node saw {about} PFAIL before FAIL: {log:?}");
    eprintln!(
        "{pfails} of {} observers saw node {about} PFAIL before FAIL",
        observers.len()
    );
}

#[test]
fn six_servers_see_kill_pause_restart_and_join() {
    require_server();
    let taken = TcpListener::bind("127.0.0.1:22100").ok();
    let o = Options {
        nodes: 6,
        capacity: 7,
        node_timeout_ms: 1000,
        ports: 22_100..22_200,
        dir: scratch("six"),
        ..Options::default()
    };
    let stop = AtomicBool::new(false);
    let mut c = Cluster::start(&o, &stop).expect("a 6-node cluster forms");
    eprintln!("{} formed in {:?}", c.version(), c.formed_in());
    if taken.is_some() {
        assert_ne!(c.port(0), 22_100, "a taken port is skipped");
    }
    let ids: Vec<String> = (0..6)
        .map(|n| c.id(n).expect("started").to_string())
        .collect();
    assert!(ids.iter().all(|id| id.len() == 40));
    assert_eq!(c.state(6), NodeState::Unstarted);
    let t = c.node_timeout();
    let mut log = Vec::new();

    // Counters grow.
    let before = c.counters_all().expect("counters");
    poll_until(&mut c, &mut log, Duration::from_millis(1500), |_| false);
    let after = c.counters_all().expect("counters");
    assert_eq!(c.bus_error(), None);
    for n in 0..6 {
        let (b, a) = (before[n].expect("running"), after[n].expect("running"));
        assert!(
            a.sent.ping > b.sent.ping && a.sent.total > b.sent.total,
            "node {n}: {b:?} → {a:?}"
        );
        let (bb, ab) = (b.bus.expect("bus bytes"), a.bus.expect("bus bytes"));
        assert!(ab.bytes_sent > bb.bytes_sent, "node {n}: {bb:?} → {ab:?}");
        assert!(ab.links >= 5, "node {n} holds links to its 5 peers: {ab:?}");
    }
    assert!(log.is_empty(), "a steady cluster changes nothing: {log:?}");

    // A SIGKILLed node: PFAIL then FAIL everywhere within a few node_timeouts.
    let pid5 = c.pid(5).expect("running");
    assert!(c.kill(5));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid5}")).exists(),
        "killed and reaped"
    );
    let others = [0, 1, 2, 3, 4];
    assert!(
        poll_until(&mut c, &mut log, 5 * t, |l| all_saw(
            l,
            &others,
            5,
            Seen::Fail
        )),
        "not every node saw node 5 FAIL: {log:?}"
    );
    check_failed(&log, &others, 5);

    // Restarted: the same id, alive again everywhere.
    log.clear();
    c.restart(5).expect("restart");
    assert_eq!(c.id(5), Some(ids[5].as_str()));
    assert!(
        poll_until(&mut c, &mut log, 10 * t, |l| all_saw(
            l,
            &others,
            5,
            Seen::Alive
        )),
        "not every node saw node 5 alive again: {log:?}"
    );
    // What it listed died with it: its new process's listing (from its
    // nodes.conf) is seen anew.
    for m in others {
        assert!(
            saw(&log, 5, m, Seen::Discovered).is_some(),
            "restarted node 5 did not list node {m} anew: {log:?}"
        );
    }
    let counters = c.counters_all().expect("counters");
    assert_eq!(counters[5].expect("running").life, 1, "its second process");
    assert_eq!(counters[0].expect("running").life, 0);

    // A paused node likewise, and alive again after resume.
    log.clear();
    assert!(c.pause(4));
    assert_eq!(c.state(4), NodeState::Paused);
    let others = [0, 1, 2, 3, 5];
    assert!(
        poll_until(&mut c, &mut log, 5 * t, |l| all_saw(
            l,
            &others,
            4,
            Seen::Fail
        )),
        "not every node saw paused node 4 FAIL: {log:?}"
    );
    check_failed(&log, &others, 4);
    assert!(c.resume(4));
    assert!(
        poll_until(&mut c, &mut log, 10 * t, |l| all_saw(
            l,
            &others,
            4,
            Seen::Alive
        )),
        "not every node saw node 4 alive after resume: {log:?}"
    );

    // A join is discovered by all.
    log.clear();
    c.join(6).expect("join");
    let all = [0, 1, 2, 3, 4, 5];
    assert!(
        poll_until(&mut c, &mut log, 10 * t, |l| all_saw(
            l,
            &all,
            6,
            Seen::Discovered
        )),
        "not every node discovered node 6: {log:?}"
    );

    // Shutdown leaves no process behind.
    let pids: Vec<u32> = (0..7).filter_map(|n| c.pid(n)).collect();
    assert_eq!(pids.len(), 7);
    c.shutdown().expect("shutdown");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} outlived shutdown"
        );
    }
    // Logs stay for a failed run's post-mortem; a passed one clears them.
    let _ = std::fs::remove_dir_all(&o.dir);
}

#[test]
fn a_bogus_server_path_is_a_one_line_error() {
    let o = Options {
        server: Some("/nonexistent/redis-server".into()),
        dir: scratch("bogus"),
        ..Options::default()
    };
    let e = Cluster::start(&o, &AtomicBool::new(false)).expect_err("no such binary");
    let msg = format!("{e:#}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(
        msg.contains("/nonexistent/redis-server") && msg.contains("`redis-server`"),
        "{msg}"
    );
}

#[test]
fn a_server_that_exits_at_start_is_reported_with_its_log() {
    let dir = scratch("exits");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let fake = dir.join("fake-redis-server");
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Redis server v=7.0.15 sha=0'; exit 0; fi\n\
         echo 'FATAL: no good at all' >&2; exit 1\n",
    )
    .expect("write the fake server");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    // Another test thread's fork may still hold our write fd for a moment
    // (exec then fails with ETXTBSY): wait until the script runs.
    for _ in 0..100 {
        if std::process::Command::new(&fake)
            .arg("--version")
            .output()
            .is_ok()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = Options {
        server: Some(fake),
        nodes: 2,
        capacity: 2,
        ports: 22_300..22_400,
        dir,
        ..Options::default()
    };
    let e = Cluster::start(&o, &AtomicBool::new(false)).expect_err("it exits");
    let msg = format!("{e:#}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(
        msg.contains("exited at start") && msg.contains("no good at all"),
        "{msg}"
    );
}

#[test]
fn a_port_range_too_small_is_refused_before_anything_starts() {
    require_server();
    let o = Options {
        nodes: 3,
        capacity: 4,
        ports: 22_400..22_403,
        dir: scratch("ports"),
        ..Options::default()
    };
    let e = Cluster::start(&o, &AtomicBool::new(false)).expect_err("3 ports for 4 nodes");
    let msg = format!("{e:#}");
    assert!(
        !msg.contains('\n') && msg.contains("port range 22400..22403"),
        "{msg}"
    );
}

/// Whether `pid` has exited: gone, or a zombie nobody has reaped yet (a
/// container's init may not reap).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Runs this test binary's `child` test in a new process with `REDIS_CHILD`
/// set to `mode`; returns it and the server pids it printed.
fn spawn_child(mode: &str) -> (std::process::Child, Vec<u32>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_starts_a_cluster",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REDIS_CHILD", mode)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the child test");
    let out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let pids = out
        .lines()
        .take(200)
        .map_while(Result::ok)
        .find_map(|l| {
            // The harness prints "test child_starts_a_cluster ... " first.
            l.split_once("PIDS ")
                .map(|(_, p)| p.split(' ').map(|x| x.parse().expect("a pid")).collect())
        })
        .unwrap_or_else(|| panic!("the child printed no pids: {:?}", child.wait()));
    (child, pids)
}

#[test]
fn servers_die_with_the_process_that_started_them() {
    require_server();
    let (mut child, pids) = spawn_child("wait");
    assert_eq!(pids.len(), 2);
    assert!(
        pids.iter().all(|&p| !is_dead(p)),
        "servers run while their owner does"
    );
    // SIGKILL: no destructor, no handler runs; PR_SET_PDEATHSIG must act.
    child.kill().expect("kill the child");
    child.wait().expect("reap the child");
    let end = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|&p| is_dead(p)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        pids.iter().all(|&p| is_dead(p)),
        "servers {pids:?} outlived the process that started them"
    );
}

#[test]
fn kill_all_then_exit_leaves_no_server() {
    require_server();
    let (mut child, pids) = spawn_child("kill_all");
    let status = child.wait().expect("reap the child");
    // The child checks that kill_all alone killed them (before its exit).
    assert_eq!(status.code(), Some(130), "the child's own check failed");
    assert!(pids.iter().all(|&p| is_dead(p)));
}

/// Not a test by itself: the child process of the two tests above.
#[test]
#[ignore = "run as a child process by other tests"]
fn child_starts_a_cluster() {
    let Ok(mode) = std::env::var("REDIS_CHILD") else {
        return;
    };
    let ports = if mode == "wait" {
        22_500..22_600
    } else {
        22_600..22_700
    };
    let o = Options {
        nodes: 2,
        capacity: 2,
        node_timeout_ms: 1000,
        ports,
        dir: scratch(&mode),
        ..Options::default()
    };
    let c = Cluster::start(&o, &AtomicBool::new(false)).expect("a 2-node cluster forms");
    let pids: Vec<u32> = (0..2).filter_map(|n| c.pid(n)).collect();
    println!("PIDS {} {}", pids[0], pids[1]);
    if mode == "kill_all" {
        // What a second Ctrl-C does: kill_all, then exit without destructors.
        gossip_loadgen::world::redis::cluster::kill_all();
        std::thread::sleep(Duration::from_millis(200));
        let code = if pids.iter().all(|&p| is_dead(p)) {
            130
        } else {
            1
        };
        std::process::exit(code);
    }
    std::thread::sleep(Duration::from_secs(60));
}

/// By hand: `REDIS_NODES=48 cargo test -p gossip-loadgen --release --test
/// redis_cluster -- --ignored --nocapture` prints the time to form, poll
/// round durations and the steady message and byte rates per node
/// (node_timeout 2000 ms, a 30 s window while polling every 25 ms).
#[test]
#[ignore = "a measurement, run by hand"]
fn measure_formation_poll_rounds_and_steady_rates() {
    require_server();
    let nodes: usize = std::env::var("REDIS_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let window = Duration::from_secs(
        std::env::var("REDIS_WINDOW_S")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let o = Options {
        nodes,
        capacity: nodes,
        node_timeout_ms: 2000,
        ports: 21_000..22_000,
        dir: scratch("measure"),
        form_timeout: Duration::from_secs(180),
        ..Options::default()
    };
    let mut c = Cluster::start(&o, &AtomicBool::new(false)).expect("the cluster forms");
    println!(
        "{}: {nodes} nodes formed in {:?}",
        c.version(),
        c.formed_in()
    );
    // Let formation's gossip settle before measuring (REDIS_SETTLE_S, 5 s).
    let settle = std::env::var("REDIS_SETTLE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    std::thread::sleep(Duration::from_secs(settle));

    let mut rounds = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let changes = c.poll().expect("poll");
        rounds.push(t.elapsed());
        assert!(changes.is_empty(), "{changes:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
    let slow: Vec<(usize, u128)> = rounds
        .iter()
        .enumerate()
        .filter(|(_, d)| d.as_millis() >= 50)
        .map(|(i, d)| (i, d.as_millis()))
        .collect();
    println!("rounds ≥ 50 ms (index, ms): {slow:?}");
    rounds.sort();
    println!(
        "poll round at {nodes} nodes: median {:?}, p99 {:?}, max {:?}",
        rounds[rounds.len() / 2],
        rounds[rounds.len() * 99 / 100],
        rounds[rounds.len() - 1]
    );
    for what in ["first (scans every server's fds)", "again"] {
        let t = Instant::now();
        c.counters_all().expect("counters");
        println!("counters_all at {nodes} nodes, {what}: {:?}", t.elapsed());
    }
    // REDIS_POLL=0: the window without our CLUSTER NODES load.
    let poll = std::env::var("REDIS_POLL").map_or(true, |v| v != "0");

    let cpu_before = cpu_ticks(&c, nodes);
    let before = c.counters_all().expect("counters");
    let end = Instant::now() + window;
    while Instant::now() < end {
        if poll {
            c.poll().expect("poll");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let after = c.counters_all().expect("counters");
    let cpu = (cpu_ticks(&c, nodes) - cpu_before) as f64 / 100.0 / window.as_secs_f64();
    println!(
        "servers' CPU during the window: {cpu:.2} cores in all ({:.1} ms/s per server)",
        cpu * 1000.0 / nodes as f64
    );
    let (mut sent, mut ping, mut pong, mut bytes, mut segs, mut data_segs) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let mut max_sent: f64 = 0.0;
    for n in 0..nodes {
        let (b, a) = (before[n].expect("running"), after[n].expect("running"));
        let secs = (a.at - b.at).as_secs_f64();
        let s = (a.sent.total - b.sent.total) as f64 / secs;
        sent += s;
        max_sent = max_sent.max(s);
        ping += (a.sent.ping - b.sent.ping) as f64 / secs;
        pong += (a.sent.pong - b.sent.pong) as f64 / secs;
        let (bb, ab) = (b.bus.expect("bus bytes"), a.bus.expect("bus bytes"));
        bytes += (ab.bytes_sent - bb.bytes_sent) as f64 / secs;
        segs += (ab.segments_sent - bb.segments_sent) as f64 / secs;
        data_segs += (ab.data_segments_sent - bb.data_segments_sent) as f64 / secs;
    }
    let n = nodes as f64;
    println!(
        "steady {window:?} at {nodes} nodes (polling: {poll}), node_timeout 2000 ms, per node: {:.1} msgs sent/s (max {max_sent:.1}), \
         {:.1} PING/s, {:.1} PONG/s, {:.0} bus bytes sent/s ({:.0} bytes/msg), {:.1} segments/s \
         ({:.1} with data), ≈{:.0} wire bytes/s (≈{:.0} without pure ACKs)",
        sent / n,
        ping / n,
        pong / n,
        bytes / n,
        bytes / sent,
        segs / n,
        data_segs / n,
        (bytes + 52.0 * segs) / n,
        (bytes + 52.0 * data_segs) / n
    );
    c.shutdown().expect("shutdown");
}

/// User + system clock ticks (USER_HZ, 100 on Linux) of servers `0..nodes`.
fn cpu_ticks(c: &Cluster, nodes: usize) -> u64 {
    (0..nodes)
        .filter_map(|n| c.pid(n))
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // utime and stime are fields 14 and 15 of the line, the 12th and
            // 13th after the ")" that ends the command name.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
        })
        .sum()
}

#[test]
fn a_cluster_can_move_between_threads() {
    // A world may be built on one thread and handed to another; its
    // servers' PR_SET_PDEATHSIG still follows the thread that spawned them.
    fn is_send<T: Send>() {}
    is_send::<Cluster>();
}
