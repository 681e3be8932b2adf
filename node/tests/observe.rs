//! The observation channel on real loopback nodes: events arrive with the
//! node index and one clock, overflow is counted, per-node counters are
//! published, and the lifecycle commands (start a held node, kill, restart,
//! pause, resume) show in the events. Every wait is bounded.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use gossip_core::wire::MessageType;
use gossip_core::{Config, Event, NodeId};
use gossip_node::datapath::DatapathChoice;
use gossip_node::observe::ObservedEvent;
use gossip_node::runtime::{Runtime, RuntimeConfig};

fn start(nodes: usize, held: usize, event_queue: usize, timeout_ms: u64) -> Runtime {
    Runtime::start(RuntimeConfig {
        // mmsg works everywhere; the channel sits above the datapath.
        datapath: DatapathChoice::Mmsg,
        threads: 2,
        node: Config::builder()
            .node_timeout(Duration::from_millis(timeout_ms))
            .build()
            .expect("valid config"),
        binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 0, nodes),
        held,
        event_queue,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// Drains events into `log` every 50 ms until `check(log)` holds or `within` passes.
fn collect_until(
    rt: &Runtime,
    log: &mut Vec<ObservedEvent>,
    within: Duration,
    mut check: impl FnMut(&[ObservedEvent]) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        rt.drain_events(usize::MAX, |e| log.push(e));
        if check(log) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn joined_pairs(log: &[ObservedEvent], ids: &[NodeId]) -> HashSet<(usize, usize)> {
    log.iter()
        .filter_map(|e| match e.event {
            Event::PeerJoined { id } => ids.iter().position(|&x| x == id).map(|x| (e.node, x)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_join_is_observed_with_the_node_index_and_one_clock() {
    let n = 6;
    let rt = start(n, 0, 4_096, 2_000);
    let ids = rt.ids().to_vec();
    let mut log = Vec::new();
    let all = collect_until(&rt, &mut log, Duration::from_secs(15), |log| {
        joined_pairs(log, &ids).len() == n * (n - 1)
    });
    assert!(
        all,
        "only {} of {} joins observed",
        joined_pairs(&log, &ids).len(),
        n * (n - 1)
    );
    let now = rt.clock().now();
    assert!(log.iter().all(|e| e.node < n && e.at <= now));
    assert_eq!(rt.events_dropped().iter().sum::<u64>(), 0);
    // Per-node counters: every node has sent PINGs and received PONGs.
    std::thread::sleep(Duration::from_millis(600));
    for i in 0..n {
        let c = rt.node_counters(i).expect("published");
        assert!(c.running);
        let upkeep = [MessageType::Ping, MessageType::Pong, MessageType::Meet];
        let sent: u64 = upkeep.iter().map(|&k| c.sent(k).datagrams).sum();
        let received: u64 = upkeep.iter().map(|&k| c.received(k).datagrams).sum();
        assert!(sent > 0 && received > 0, "node {i}: {c:?}");
        assert!(c.at <= rt.clock().now());
    }
    rt.shutdown().expect("clean shutdown");
}

#[test]
fn a_full_event_queue_drops_and_counts_instead_of_blocking() {
    let rt = start(8, 0, 4, 2_000);
    let deadline = Instant::now() + Duration::from_secs(15);
    // Nobody drains: 8 nodes meeting produce far more than 2 × 4 events.
    while rt.events_dropped().iter().sum::<u64>() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let dropped: u64 = rt.events_dropped().iter().sum();
    assert!(dropped > 0, "nothing dropped");
    // The nodes kept running (the datapath never waited on the reader).
    std::thread::sleep(Duration::from_millis(600));
    let members = rt.with_node(0, |node| node.members()).expect("node 0 runs");
    assert!(members >= 2, "node 0 knows {members} members");
    // And the loss shows in the metrics.
    let published = rt.metrics().total().events_dropped;
    assert!(published > 0 && published <= rt.events_dropped().iter().sum::<u64>());
    let mut kept = 0;
    rt.drain_events(usize::MAX, |_| kept += 1);
    assert!(
        (1..=8).contains(&kept),
        "{kept} events kept in two queues of 4"
    );
    rt.shutdown().expect("clean shutdown");
}

#[test]
fn held_nodes_join_later_and_a_restarted_node_returns_with_the_next_incarnation() {
    let n = 6;
    let rt = start(n, 1, 8_192, 1_000);
    let ids = rt.ids().to_vec();
    let late = n - 1;
    let mut log = Vec::new();
    assert!(
        rt.with_node(late, |_| ()).is_none(),
        "held node not running"
    );
    assert!(collect_until(
        &rt,
        &mut log,
        Duration::from_secs(10),
        |log| { joined_pairs(log, &ids).len() == (n - 1) * (n - 2) }
    ));
    rt.start_node(late, &[rt.endpoints()[0]])
        .expect("held node starts");
    assert!(
        collect_until(&rt, &mut log, Duration::from_secs(10), |log| {
            (0..late).all(|i| joined_pairs(log, &ids).contains(&(i, late)))
        }),
        "the late node was not seen joining everywhere"
    );
    // Kill node 3: FAILed everywhere; restart it: back with incarnation 1.
    assert!(rt.kill(3));
    let survivors: Vec<usize> = (0..n).filter(|&i| i != 3).collect();
    let failed = |log: &[ObservedEvent]| -> HashSet<usize> {
        log.iter()
            .filter(|e| matches!(e.event, Event::PeerFail { id, .. } if id == ids[3]))
            .map(|e| e.node)
            .collect()
    };
    assert!(
        collect_until(&rt, &mut log, Duration::from_secs(15), |log| {
            survivors.iter().all(|i| failed(log).contains(i))
        }),
        "FAIL of node 3 seen at {:?} only",
        failed(&log)
    );
    rt.restart(3, &[rt.endpoints()[0]]).expect("restarts");
    assert_eq!(rt.incarnation(3), Some(1));
    assert!(
        collect_until(&rt, &mut log, Duration::from_secs(15), |log| {
            survivors.iter().all(|&i| {
                log.iter().any(|e| {
                    e.node == i
                        && matches!(e.event, Event::PeerRestarted { id, incarnation: 1 } if id == ids[3])
                })
            })
        }),
        "restart not seen everywhere"
    );
    let c = rt.node_counters(3);
    assert!(c.is_some_and(|c| c.incarnation <= 1));
    rt.shutdown().expect("clean shutdown");
}

#[test]
fn a_paused_node_is_suspected_and_clears_when_resumed() {
    let n = 5;
    let rt = start(n, 0, 8_192, 1_000);
    let ids = rt.ids().to_vec();
    let mut log = Vec::new();
    assert!(collect_until(
        &rt,
        &mut log,
        Duration::from_secs(10),
        |log| { joined_pairs(log, &ids).len() == n * (n - 1) }
    ));
    assert!(rt.pause(2));
    assert!(!rt.pause(2), "already paused");
    let pfail_at = |log: &[ObservedEvent]| {
        log.iter()
            .filter(|e| matches!(e.event, Event::PeerPfail { id } if id == ids[2]))
            .count()
    };
    assert!(
        collect_until(&rt, &mut log, Duration::from_secs(10), |log| pfail_at(log)
            > 0),
        "nobody suspected the paused node"
    );
    assert!(rt.resume(2));
    let seen = log.len();
    assert!(
        collect_until(&rt, &mut log, Duration::from_secs(10), |log| {
            log[seen..]
                .iter()
                .any(|e| matches!(e.event, Event::PeerAlive { id, .. } if id == ids[2]))
        }),
        "the resumed node never became alive again"
    );
    rt.shutdown().expect("clean shutdown");
}
