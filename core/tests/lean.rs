//! The lean profile: Redis's rules over a bounded partial view. Views fill
//! and stay within their bound, every node stays held by someone, no live node
//! is suspected, a crash is FAILed by every node that held it and then
//! forgotten, and what a node sends does not grow with the cluster.
#![cfg(feature = "sim")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use gossip_core::sim::{Capture, Fault, Latency, NetworkParams, Simulation};
use gossip_core::wire::{self, Body, MessageType};
use gossip_core::{Config, Endpoint, Event, Instant, NodeId, PeerState, Profile};

const NODE_TIMEOUT: Duration = Duration::from_secs(1);

fn lean(view: usize) -> Config {
    Profile::Lean
        .builder()
        .node_timeout(NODE_TIMEOUT)
        .max_peers(view)
        // As in sim.rs: a 1 s handshake timeout would never resend a MEET.
        .handshake_timeout(Duration::from_secs(5))
        .build()
        .expect("the lean profile with a 1 s node_timeout is valid")
}

fn joined(seed: u64, nodes: usize, view: usize) -> Simulation {
    let mut sim = Simulation::builder(seed, nodes)
        .config(lean(view))
        .network(NetworkParams::LAN)
        .track_joins(false)
        .record_events(true)
        .build();
    sim.start_all_meeting(0);
    sim.run_until(Instant::from_millis(30_000));
    sim
}

/// How many running nodes' views hold each running node as a member.
fn indegree(sim: &Simulation) -> HashMap<NodeId, usize> {
    let mut d: HashMap<NodeId, usize> = sim.up_nodes().map(|i| (sim.id(i), 0)).collect();
    for i in sim.up_nodes() {
        for p in sim
            .node(i)
            .unwrap()
            .peers()
            .iter()
            .filter(|p| p.is_member())
        {
            if let Some(n) = d.get_mut(&p.id()) {
                *n += 1;
            }
        }
    }
    d
}

#[test]
fn views_fill_within_their_bound_and_no_live_node_is_suspected() {
    let (nodes, view) = (400, 16);
    let mut sim = joined(0x1ea0, nodes, view);
    let settled = sim.now();
    sim.run_until(Instant::from_millis(60_000));
    for i in sim.up_nodes() {
        let n = sim.node(i).unwrap();
        assert!(
            n.peers().len() <= view,
            "node {i} holds {}",
            n.peers().len()
        );
        let alive = n
            .peers()
            .iter()
            .filter(|p| p.state() == PeerState::Alive)
            .count();
        assert_eq!(alive, view, "node {i}: a full view of live members");
        assert_eq!(n.stats().late_ticks, 0);
    }
    let d = indegree(&sim);
    let unheld: Vec<_> = d.iter().filter(|(_, &n)| n == 0).collect();
    assert!(unheld.is_empty(), "held by no view: {unheld:?}");
    let suspected: Vec<_> = sim
        .events()
        .iter()
        .filter(|e| e.at >= settled)
        .filter(|e| matches!(e.event, Event::PeerPfail { .. } | Event::PeerFail { .. }))
        .collect();
    assert!(suspected.is_empty(), "live nodes suspected: {suspected:?}");
}

#[test]
fn a_crash_is_failed_by_every_holder_then_forgotten_and_views_refill() {
    let (nodes, view) = (300, 16);
    let mut sim = joined(0x1ea1, nodes, view);
    let crashed = [17, 150, 299];
    let mut holders = HashMap::new();
    for &c in &crashed {
        let id = sim.id(c);
        let held: Vec<usize> = sim
            .up_nodes()
            .filter(|&i| sim.node(i).unwrap().peers().find(id).is_some())
            .collect();
        assert!(!held.is_empty(), "node {c} is held by someone");
        holders.insert(c, held);
        sim.apply(Fault::Crash(c));
    }
    let crash_at = sim.now();
    // PFAIL after node_timeout (plus up to a ping interval before the ping
    // goes), FAIL by quorum or after report_validity (2 node_timeout) more.
    sim.run_for(NODE_TIMEOUT * 5);
    for &c in &crashed {
        let id = sim.id(c);
        for &h in &holders[&c] {
            let failed = sim.events().iter().any(|e| {
                e.node == h
                    && e.at >= crash_at
                    && matches!(e.event, Event::PeerFail { id: x, .. } if x == id)
            });
            assert!(failed, "node {h} held {c} and never marked it FAIL");
        }
    }
    // Silent FAIL peers go after 2 report_validity (4 node_timeout), and the
    // room goes to live nodes.
    sim.run_for(NODE_TIMEOUT * 10);
    let dead: Vec<NodeId> = crashed.iter().map(|&c| sim.id(c)).collect();
    let mut full = 0;
    for i in sim.up_nodes() {
        let peers = sim.node(i).unwrap().peers();
        for p in peers.iter() {
            assert!(!dead.contains(&p.id()), "node {i} still holds {:?}", p.id());
            assert_eq!(p.state(), PeerState::Alive, "node {i}: {p:?}");
        }
        full += usize::from(peers.len() == view);
    }
    // Room refills from gossip only, at the pace entries about unknown nodes
    // arrive: most views are full again, none is left near empty.
    assert!(
        full * 10 >= (nodes - crashed.len()) * 9,
        "{full} full views"
    );
    for i in sim.up_nodes() {
        assert!(sim.node(i).unwrap().peers().len() >= view - 3);
    }
}

/// What a node sends a second, over 20 s after the join.
fn datagrams_per_node_second(config: Config, nodes: usize) -> f64 {
    let mut sim = Simulation::builder(7, nodes)
        .config(config)
        .network(NetworkParams::LAN)
        .track_joins(false)
        .build();
    sim.start_all_meeting(0);
    sim.run_until(Instant::from_millis(40_000));
    let before = sim.network_stats().sent;
    sim.run_until(Instant::from_millis(60_000));
    (sim.network_stats().sent - before) as f64 / nodes as f64 / 20.0
}

#[test]
fn what_a_lean_node_sends_does_not_grow_with_the_cluster_as_redis_does() {
    let redis = Config::builder()
        .node_timeout(NODE_TIMEOUT)
        .handshake_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let lean_small = datagrams_per_node_second(lean(16), 50);
    let lean_large = datagrams_per_node_second(lean(16), 200);
    let redis_small = datagrams_per_node_second(redis.clone(), 50);
    let redis_large = datagrams_per_node_second(redis, 200);
    eprintln!("datagrams a node a second at 50 and 200 nodes: lean {lean_small:.1}, {lean_large:.1}; redis {redis_small:.1}, {redis_large:.1}");
    // Redis pings every node each node_timeout / 2: four times the nodes,
    // about four times the datagrams per node. Lean pings its 16.
    assert!(
        redis_large > 3.0 * redis_small,
        "redis {redis_small:.1} -> {redis_large:.1}"
    );
    assert!(
        lean_large < 1.25 * lean_small,
        "lean {lean_small:.1} -> {lean_large:.1}"
    );
    assert!(lean_large * 5.0 < redis_large);
}

/// A full view makes room for a node that MEETs it, never by dropping one
/// still in handshake (it would learn nothing); a full view of handshakes
/// refuses and counts.
#[test]
fn a_full_view_admits_a_meet_by_forgetting_a_member_not_a_handshake() {
    let view = 3;
    let mut sim = small(6, lean(view), 11, Capture::Off);
    sim.apply(Fault::Start {
        node: 0,
        meet: None,
    });
    for i in 1..=view {
        sim.apply(Fault::Start {
            node: i,
            meet: Some(0),
        });
    }
    sim.run_for(Duration::from_millis(500));
    assert_eq!(sim.node(0).unwrap().members(), view + 1);
    sim.apply(Fault::Start {
        node: 4,
        meet: Some(0),
    });
    sim.run_for(Duration::from_millis(500));
    let n0 = sim.node(0).unwrap();
    assert_eq!(n0.peers().len(), view);
    assert!(n0.peers().find(sim.id(4)).is_some(), "node 4 admitted");
    let forgotten = sim
        .events()
        .iter()
        .filter(|s| s.node == 0 && matches!(s.event, Event::PeerForgotten { .. }))
        .count();
    assert_eq!(forgotten, 1);

    // Three MEETs from nodes that never complete their handshake fill the
    // view with handshakes (members make room for the first ones); the next
    // is refused and counted.
    let mut sim = small(2, lean(view), 12, Capture::Off);
    sim.apply(Fault::Start {
        node: 0,
        meet: None,
    });
    for k in 0..view as u8 + 1 {
        let meet = wire::Header {
            sender: NodeId(1_000 + u64::from(k)),
            ..header_to(&sim, 0, MessageType::Meet)
        };
        let mut buf = [0u8; 64];
        let len = wire::SectionWriter::new(&mut buf, &meet).unwrap().finish();
        let from = SocketAddr::from(([127, 0, 1, k], 7000));
        assert_eq!(sim.inject(0, from, &buf[..len]), Some(Ok(())));
    }
    let n0 = sim.node(0).unwrap();
    assert_eq!(n0.peers().len(), view);
    assert!(n0.peers().iter().all(|p| p.state() == PeerState::Handshake));
    assert_eq!(n0.stats().drops.peer_table_full, 1);
}

/// `nodes` nodes, none started, on a 1 ms network with no loss, events kept.
fn small(nodes: usize, config: Config, seed: u64, capture: Capture) -> Simulation {
    Simulation::builder(seed, nodes)
        .config(config)
        .network(NetworkParams {
            latency: Latency::Fixed(Duration::from_millis(1)),
            ..NetworkParams::IDEAL
        })
        .record_events(true)
        .capture(capture)
        .build()
}

/// A header from an outside node to node `to` of `sim`.
fn header_to(sim: &Simulation, to: usize, kind: MessageType) -> wire::Header {
    let me = sim.node(to).expect("node runs").identity();
    wire::Header {
        kind,
        flags: 0,
        sender: NodeId(999),
        incarnation: 0,
        src_slot: 0,
        dst_slot: me.slot,
    }
}

/// A node a partial view does not hold still learns from its PONGs, in no
/// more bytes than its PING; the Redis profile answers with an empty section.
#[test]
fn a_ping_from_a_node_not_held_is_answered_with_a_section_no_longer_than_it() {
    let redis = Config::builder()
        .node_timeout(NODE_TIMEOUT)
        .build()
        .unwrap();
    for (config, sections) in [(lean(8), true), (redis, false)] {
        let mut sim = small(12, config, 13, Capture::Bytes);
        sim.start_all_meeting(0);
        sim.run_for(Duration::from_secs(3));
        // A PING from an outsider carrying three entries, as a member's would.
        let mut buf = [0u8; 1_400];
        let ping = header_to(&sim, 0, MessageType::Ping);
        let mut w = wire::SectionWriter::new(&mut buf, &ping).unwrap();
        let entry = wire::GossipEntry {
            id: NodeId(77),
            incarnation: 0,
            flags: wire::EntryFlags::default(),
            ping_age_ms: wire::NO_PING,
            pong_age_ms: 0,
            endpoint: Endpoint::from(SocketAddr::from(([127, 0, 1, 77], 7000))),
        };
        for _ in 0..3 {
            assert!(w.push(&entry));
        }
        let len = w.finish();
        sim.clear_sent();
        let outsider = SocketAddr::from(([127, 0, 1, 200], 7000));
        assert_eq!(sim.inject(0, outsider, &buf[..len]), Some(Ok(())));
        let pong = sim
            .sent()
            .iter()
            .find(|s| s.from == 0 && s.kind == MessageType::Pong)
            .expect("a PONG");
        assert!(pong.len <= len, "{} bytes for a {len}-byte PING", pong.len);
        let Body::Section(section) = wire::decode(&pong.bytes).unwrap().body else {
            panic!("a PONG carries a section");
        };
        assert_eq!(section.into_iter().count() > 0, sections);
    }
}

/// Under 5 % loss, a view's few holders must not take lost datagrams for a
/// crash: an unanswered PING is resent every retry period (1 s) rather than
/// every ping_interval, so a PFAIL needs many losses in a row, and a FAIL
/// (by a second report or the suspicion timeout) more still.
#[test]
fn five_percent_loss_makes_no_false_fail_in_lean_views() {
    let config = Profile::Lean
        .builder()
        .node_timeout(Duration::from_secs(5))
        .max_peers(16)
        .build()
        .unwrap();
    let mut sim = Simulation::builder(0x1ea5, 300)
        .config(config)
        .network(NetworkParams {
            loss: 0.05,
            ..NetworkParams::LAN
        })
        .track_joins(false)
        .record_events(true)
        .build();
    sim.start_all_meeting(0);
    sim.run_until(Instant::from_millis(300_000));
    let fails: Vec<_> = sim
        .events()
        .iter()
        .filter(|e| matches!(e.event, Event::PeerFail { .. }))
        .collect();
    assert!(
        fails.is_empty(),
        "{} false FAILs: {:?}",
        fails.len(),
        fails.first()
    );
    assert!(sim.network_stats().lost > 0);
}
