//! Loopback integration: real nodes on real UDP sockets on 127.0.0.1, on both
//! datapaths. Every wait is bounded; a uring test skips loudly where io_uring
//! is refused.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use gossip_core::wire::MAGIC;
use gossip_core::{Config, PeerState};
use gossip_node::datapath::{probe_uring, DatapathChoice, DatapathKind, ProbeError};
use gossip_node::runtime::{Runtime, RuntimeConfig};

const NODES: usize = 16;
/// Short enough that a crash is FAILed within seconds, long enough that two
/// busy shared cores do not produce false suspicions.
const NODE_TIMEOUT: Duration = Duration::from_millis(1_500);
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);

fn uring_available(test: &str) -> bool {
    match probe_uring() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("!!!!! SKIPPED {test}: io_uring is refused here ({e}); only the mmsg variant ran !!!!!");
            false
        }
    }
}

/// Two I/O threads, node_timeout [`NODE_TIMEOUT`], `binds` sockets.
fn config(datapath: DatapathChoice, seed: u64, binds: usize) -> RuntimeConfig {
    RuntimeConfig {
        datapath,
        threads: 2,
        node: Config::builder()
            .node_timeout(NODE_TIMEOUT)
            .build()
            .expect("valid config"),
        // Port 0: the kernel picks free ports, so parallel tests never collide.
        binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 0, binds),
        rng_seed: seed,
        ..RuntimeConfig::default()
    }
}

/// [`NODES`] nodes, a socket each.
fn start(datapath: DatapathChoice, seed: u64) -> Runtime {
    let runtime = Runtime::start(config(datapath, seed, NODES)).expect("runtime starts");
    let expected = match datapath {
        DatapathChoice::Uring => DatapathKind::Uring,
        _ => DatapathKind::Mmsg,
    };
    assert_eq!(runtime.datapath(), expected);
    runtime
}

/// The same nodes behind two shared sockets (8 slots each), one per I/O
/// thread, with or without UDP GSO/GRO.
fn start_shared(datapath: DatapathChoice, offload: bool, seed: u64) -> Runtime {
    let config = RuntimeConfig {
        slots: NODES / 2,
        offload,
        ..config(datapath, seed, 2)
    };
    let runtime = Runtime::start(config).expect("runtime starts");
    let endpoints = runtime.endpoints();
    assert_eq!(endpoints.len(), NODES);
    assert_eq!(endpoints[9].addr(), endpoints[15].addr(), "one socket");
    assert_eq!(endpoints[9].slot(), 1);
    runtime
}

/// Polls `check` every 100 ms until it holds or `within` passes.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Peers of node `i` by state: [handshake, alive, pfail, fail].
fn census(rt: &Runtime, i: usize) -> Option<[usize; 4]> {
    rt.with_node(i, |node| {
        let mut c = [0; 4];
        for p in node.peers().iter() {
            c[match p.state() {
                PeerState::Handshake => 0,
                PeerState::Alive => 1,
                PeerState::Pfail => 2,
                PeerState::Fail => 3,
            }] += 1;
        }
        c
    })
}

fn all_see_everyone_alive(rt: &Runtime, nodes: &[usize]) -> bool {
    nodes
        .iter()
        .all(|&i| census(rt, i) == Some([0, nodes.len() - 1, 0, 0]))
}

fn converges(rt: Runtime) {
    converges_and_keeps(&rt);
    // I/O threads publish their metrics every 250 ms, and 16 nodes can
    // converge sooner than that: wait for a publication that counted traffic.
    let counted = eventually(Duration::from_secs(2), || {
        let d = rt.metrics().total().datapath;
        d.datagrams_in > 0 && d.datagrams_out > 0
    });
    let m = rt.metrics().total();
    assert_eq!(m.nodes, NODES as u64);
    assert!(
        counted,
        "the datapath counted no datagram: {:?}",
        m.datapath
    );
    rt.shutdown().expect("clean shutdown");
}

/// Every node sees every other alive within [`CONVERGE_WITHIN`], with no
/// decode error on the way.
fn converges_and_keeps(rt: &Runtime) {
    let all: Vec<usize> = (0..NODES).collect();
    let ok = eventually(CONVERGE_WITHIN, || all_see_everyone_alive(rt, &all));
    let views: Vec<_> = all.iter().map(|&i| census(rt, i)).collect();
    assert!(
        ok,
        "no full membership within {CONVERGE_WITHIN:?}: {views:?}"
    );
    assert_eq!(rt.metrics().total().stats.decode_errors_total(), 0);
}

fn killed_node_is_failed(rt: Runtime) {
    let all: Vec<usize> = (0..NODES).collect();
    assert!(
        eventually(CONVERGE_WITHIN, || all_see_everyone_alive(&rt, &all)),
        "no convergence"
    );
    let victim = 5;
    let victim_id = rt.ids()[victim];
    assert!(rt.kill(victim));
    assert!(!rt.kill(victim), "a node dies once");
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let failed_everywhere = || {
        survivors.iter().all(|&i| {
            rt.with_node(i, move |node| {
                node.peers().by_id(victim_id).map(|p| p.state())
            }) == Some(Some(PeerState::Fail))
        })
    };
    // PFAIL after node_timeout, then FAIL once a majority's reports arrive.
    let ok = eventually(NODE_TIMEOUT * 10, failed_everywhere);
    let views: Vec<_> = survivors.iter().map(|&i| census(&rt, i)).collect();
    assert!(ok, "victim not FAIL everywhere: {views:?}");
    // Nobody else was suspected along the way.
    for &i in &survivors {
        assert_eq!(census(&rt, i), Some([0, NODES - 2, 0, 1]), "node {i}");
    }
    let m = rt.metrics();
    assert!(eventually(Duration::from_secs(2), || m.total().events[3]
        >= survivors.len() as u64));
    // Restarted in its place (its socket, or its slot), it is alive again
    // everywhere: the new incarnation clears the FAIL.
    rt.restart(victim, &[rt.endpoints()[0]]).expect("restarts");
    assert!(
        eventually(CONVERGE_WITHIN, || all_see_everyone_alive(&rt, &all)),
        "the restarted node is not back everywhere"
    );
    rt.shutdown().expect("clean shutdown");
}

/// Datagrams that are not ours or are broken, each refused by a different check.
fn garbage() -> Vec<Vec<u8>> {
    let magic = MAGIC.to_be_bytes();
    let mut bad_version = vec![0u8; 24];
    bad_version[..2].copy_from_slice(&magic);
    bad_version[2] = 99;
    let mut noise = vec![0u8; 300];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    vec![
        vec![],
        vec![0xff; 3],
        noise,
        bad_version,
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ]
}

/// Every garbage datagram is counted once: as a decode error by the node it
/// reached, or (shared sockets) as naming no node's slot.
fn garbage_is_counted_and_dropped(rt: Runtime) {
    let all: Vec<usize> = (0..NODES).collect();
    assert!(
        eventually(CONVERGE_WITHIN, || all_see_everyone_alive(&rt, &all)),
        "no convergence"
    );
    let metrics = rt.metrics();
    let dropped = || {
        let m = metrics.total();
        m.stats.decode_errors_total() + m.unknown_slot
    };
    let before = dropped();
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("bind attacker");
    let mut targets: Vec<SocketAddr> = rt.addrs().iter().step_by(3).copied().collect();
    targets.dedup();
    let mut sent = 0u64;
    for round in 0..20 {
        for &to in &targets {
            for g in garbage() {
                attacker.send_to(&g, to).expect("send garbage");
                sent += 1;
            }
        }
        if round % 5 == 4 {
            // Pace the burst so that no socket buffer overflows.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let counted = eventually(Duration::from_secs(5), || dropped() - before == sent);
    let total = dropped() - before;
    assert!(
        counted,
        "sent {sent} garbage datagrams, {total} counted as dropped"
    );
    // Nothing was answered: the attacker's socket stays empty.
    attacker
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        attacker.recv_from(&mut [0u8; 2048]).is_err(),
        "garbage was answered"
    );
    // And the cluster stays whole.
    assert!(
        eventually(Duration::from_secs(5), || all_see_everyone_alive(&rt, &all)),
        "cluster degraded"
    );
    rt.shutdown().expect("clean shutdown");
}

#[test]
fn sixteen_nodes_converge_to_full_membership_on_mmsg() {
    converges(start(DatapathChoice::Mmsg, 1));
}

#[test]
fn sixteen_nodes_converge_to_full_membership_on_uring() {
    if uring_available("sixteen_nodes_converge_to_full_membership_on_uring") {
        converges(start(DatapathChoice::Uring, 2));
    }
}

#[test]
fn a_killed_node_is_failed_everywhere_on_mmsg() {
    killed_node_is_failed(start(DatapathChoice::Mmsg, 3));
}

#[test]
fn a_killed_node_is_failed_everywhere_on_uring() {
    if uring_available("a_killed_node_is_failed_everywhere_on_uring") {
        killed_node_is_failed(start(DatapathChoice::Uring, 4));
    }
}

#[test]
fn garbage_datagrams_are_counted_and_dropped_on_mmsg() {
    garbage_is_counted_and_dropped(start(DatapathChoice::Mmsg, 5));
}

#[test]
fn garbage_datagrams_are_counted_and_dropped_on_uring() {
    if uring_available("garbage_datagrams_are_counted_and_dropped_on_uring") {
        garbage_is_counted_and_dropped(start(DatapathChoice::Uring, 6));
    }
}

#[test]
fn sixteen_nodes_behind_two_shared_sockets_converge_with_gso_gro() {
    let rt = start_shared(DatapathChoice::Auto, true, 7);
    assert_eq!(
        rt.datapath(),
        DatapathKind::Mmsg,
        "auto with offload chooses mmsg"
    );
    converges_coalesced(rt);
}

/// Converges with datagrams sent as GSO runs and received as GRO aggregates.
fn converges_coalesced(rt: Runtime) {
    converges_and_keeps(&rt);
    // Metrics are published every 250 ms: wait for one that counted them.
    let coalesced = eventually(Duration::from_secs(2), || {
        let c = rt.metrics().total().datapath;
        c.gso_sends > 0 && c.gro_receives > 0
    });
    let c = rt.metrics().total().datapath;
    assert!(coalesced, "datagrams travelled coalesced: {c:?}");
    rt.shutdown().expect("clean shutdown");
}

#[test]
fn a_killed_node_behind_a_shared_socket_is_failed_everywhere_then_restarts() {
    killed_node_is_failed(start_shared(DatapathChoice::Mmsg, true, 8));
}

#[test]
fn a_killed_node_behind_a_shared_socket_is_failed_everywhere_on_uring() {
    if uring_available("a_killed_node_behind_a_shared_socket_is_failed_everywhere_on_uring") {
        killed_node_is_failed(start_shared(DatapathChoice::Uring, true, 9));
    }
}

#[test]
fn a_killed_node_behind_a_shared_socket_without_offload_is_failed_everywhere_on_uring() {
    if uring_available(
        "a_killed_node_behind_a_shared_socket_without_offload_is_failed_everywhere_on_uring",
    ) {
        killed_node_is_failed(start_shared(DatapathChoice::Uring, false, 13));
    }
}

#[test]
fn garbage_on_shared_sockets_is_counted_and_dropped() {
    garbage_is_counted_and_dropped(start_shared(DatapathChoice::Mmsg, true, 10));
}

#[test]
fn sixteen_nodes_behind_two_shared_sockets_converge_with_gso_gro_on_uring() {
    if !uring_available("sixteen_nodes_behind_two_shared_sockets_converge_with_gso_gro_on_uring") {
        return;
    }
    let rt = start_shared(DatapathChoice::Uring, true, 11);
    assert_eq!(rt.datapath(), DatapathKind::Uring);
    converges_coalesced(rt);
}

#[test]
fn garbage_on_shared_sockets_with_offload_is_counted_and_dropped_on_uring() {
    if uring_available("garbage_on_shared_sockets_with_offload_is_counted_and_dropped_on_uring") {
        garbage_is_counted_and_dropped(start_shared(DatapathChoice::Uring, true, 12));
    }
}

#[test]
fn auto_falls_back_to_mmsg_and_says_so_when_the_probe_fails() {
    let config = RuntimeConfig {
        datapath: DatapathChoice::Auto,
        threads: 1,
        binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 0, 2),
        ..RuntimeConfig::default()
    };
    let rt = Runtime::start_with_probe(config, || Err(ProbeError::Forced)).expect("starts on mmsg");
    assert_eq!(rt.datapath(), DatapathKind::Mmsg);
    let notice = rt.fallback_notice().expect("the fallback is logged");
    assert!(
        notice.contains("io_uring unavailable") && notice.contains("mmsg"),
        "{notice}"
    );
    assert!(rt
        .metrics()
        .render()
        .contains("gossip_datapath_info{datapath=\"mmsg\"} 1"));
    rt.shutdown().unwrap();
}

#[test]
fn nodes_started_over_a_ramp_join_as_they_start() {
    let n = 6;
    let config = RuntimeConfig {
        datapath: DatapathChoice::Mmsg,
        threads: 2,
        node: Config::builder()
            .node_timeout(NODE_TIMEOUT)
            .build()
            .expect("valid config"),
        binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 0, n),
        ramp: Duration::from_secs(2),
        ..RuntimeConfig::default()
    };
    let rt = Runtime::start(config).expect("runtime starts");
    // The last node starts 5/6 of the ramp in; right away it is not running.
    assert!(
        rt.with_node(n - 1, |_| ()).is_none(),
        "the last node started early"
    );
    assert!(
        rt.with_node(0, |_| ()).is_some(),
        "the first node starts at once"
    );
    let all: Vec<usize> = (0..n).collect();
    assert!(
        eventually(CONVERGE_WITHIN, || all_see_everyone_alive(&rt, &all)),
        "no convergence"
    );
    assert_eq!(rt.metrics().total().nodes_failed, 0);
    rt.shutdown().unwrap();
}

/// The lean profile on real sockets: 48 nodes with views of 8 behind two
/// shared sockets with GSO/GRO. Views fill with live members; a killed node
/// is FAILed by every node that held it (and by no other: only holders can
/// say so), and nobody else is suspected.
#[test]
fn lean_views_fill_and_a_killed_node_is_failed_by_its_holders() {
    const LEAN_NODES: usize = 48;
    const VIEW: usize = 8;
    let config = RuntimeConfig {
        slots: LEAN_NODES / 2,
        offload: true,
        node: gossip_core::Profile::Lean
            .builder()
            .node_timeout(NODE_TIMEOUT)
            .max_peers(VIEW)
            .build()
            .expect("valid config"),
        ..config(DatapathChoice::Mmsg, 21, 2)
    };
    let rt = Runtime::start(config).expect("runtime starts");
    let all: Vec<usize> = (0..LEAN_NODES).collect();
    let full = |nodes: &[usize]| {
        nodes
            .iter()
            .all(|&i| census(&rt, i) == Some([0, VIEW, 0, 0]))
    };
    let ok = eventually(CONVERGE_WITHIN, || full(&all));
    let views: Vec<_> = all.iter().map(|&i| census(&rt, i)).collect();
    assert!(ok, "views not full of live members: {views:?}");

    let victim = 5;
    let victim_id = rt.ids()[victim];
    let holders: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| rt.with_node(i, move |n| n.peers().find(victim_id).is_some()) == Some(true))
        .collect();
    assert!(!holders.is_empty(), "someone holds node {victim}");
    assert_eq!(
        rt.holders(victim_id),
        holders,
        "one scan a thread finds the same"
    );
    let m = rt.metrics();
    let before = m.total().events;
    assert!(rt.kill(victim));
    // PFAIL after node_timeout, FAIL by a report or after report_validity
    // more (a holder need not hear from another).
    let failed = || m.total().events[3] - before[3] >= holders.len() as u64;
    assert!(
        eventually(NODE_TIMEOUT * 10, failed),
        "FAIL events {} for {} holders",
        m.total().events[3] - before[3],
        holders.len()
    );
    for &i in &holders {
        let state = rt.with_node(i, move |n| n.peers().by_id(victim_id).map(|p| p.state()));
        // FAIL, or already forgotten after 2 report_validity of silence.
        assert!(
            matches!(state, Some(Some(PeerState::Fail) | None)),
            "holder {i}: {state:?}"
        );
    }
    let after = m.total().events;
    assert_eq!(
        after[3] - before[3],
        holders.len() as u64,
        "FAIL only by holders"
    );
    assert!(
        after[2] - before[2] <= holders.len() as u64,
        "PFAIL only of the victim"
    );
    rt.shutdown().expect("clean shutdown");
}

/// `kill_all` stops each named node once, on both I/O threads, in one call;
/// `track_all` tracks what fits and says which did not.
#[test]
fn kill_all_stops_each_named_node_once_and_track_all_reports_the_cap() {
    let rt = Runtime::start(config(DatapathChoice::Mmsg, 31, NODES)).expect("runtime starts");
    // Nodes on both threads (placement alternates or splits; either way a
    // spread of indexes covers both).
    let victims = [1, 2, NODES - 2, NODES - 1];
    assert_eq!(rt.kill_all(&victims), victims.len());
    assert_eq!(rt.kill_all(&victims), 0, "a node dies once");
    for &v in &victims {
        assert!(!rt.kill(v), "node {v} is already down");
    }
    assert!(rt.kill(0), "the others run on");
    let cap = gossip_core::MAX_TRACKED;
    let items: Vec<_> = (0..cap as u64 + 3)
        .map(|k| gossip_core::ItemId::Join(gossip_core::NodeId(k + 1)))
        .collect();
    let tracked = rt.track_all(&items);
    assert_eq!(tracked.iter().filter(|&&t| t).count(), cap);
    assert!(tracked[..cap].iter().all(|&t| t) && !tracked[cap..].iter().any(|&t| t));
    rt.shutdown().expect("clean shutdown");
}
