//! Copies counted inside each node (`Node::track`, `Node::copies`) are the
//! receptions the simulator's observer counts by decoding every delivered
//! datagram a second time: for the same node and item, equal at every moment
//! checked. The runs join a node, publish updates, crash a node until it is
//! FAILed, restart another (whose new life counts from zero, and whose old
//! life's last datagrams arrive stale), and pause a
//! third past node_timeout, on a network that loses, duplicates and reorders;
//! once under Redis's rules (every node holds every other) and once over
//! partial views (where datagrams from nodes not held, and sections from
//! nodes in handshake, are dropped unread and still counted).
#![cfg(feature = "sim")]

use std::collections::HashMap;
use std::time::Duration;

use gossip_core::sim::{
    replay_line, seeds_or_env, Fault, Latency, LinkRule, NetworkParams, NodeSet, ReplayGuard,
    Simulation,
};
use gossip_core::wire::key_id;
use gossip_core::{Config, Dissemination, Instant, ItemId, Profile, MAX_TRACKED};

const NODE_TIMEOUT: Duration = Duration::from_secs(1);

fn config(profile: Profile) -> Config {
    let builder = profile
        .builder()
        .node_timeout(NODE_TIMEOUT)
        // As in sim.rs: a 1 s handshake timeout would never resend a MEET.
        .handshake_timeout(Duration::from_secs(5))
        .dissemination(Dissemination::Both);
    match profile {
        // A view of 12 among 40: most nodes hold few of those that talk to them.
        Profile::Lean => builder.max_peers(12),
        _ => builder,
    }
    .build()
    .expect("valid with a 1 s node_timeout")
}

/// A LAN that loses, duplicates and reorders a little: duplicates are copies
/// too, and lost datagrams are none.
fn network() -> NetworkParams {
    NetworkParams {
        loss: 0.01,
        duplicate: 0.02,
        reorder: 0.02,
        reorder_delay: Duration::from_millis(5),
        ..NetworkParams::LAN
    }
}

/// The items tracked in the observer and in the nodes, and for each node
/// life that began tracking after the observer did (a node started or
/// restarted later), the observer's count when it began.
struct Copies {
    items: Vec<ItemId>,
    offsets: HashMap<(usize, ItemId), u32>,
    checks: u64,
    nonzero: HashMap<ItemId, u64>,
}

impl Copies {
    fn new() -> Self {
        Copies {
            items: Vec::new(),
            offsets: HashMap::new(),
            checks: 0,
            nonzero: HashMap::new(),
        }
    }

    /// Tracks `item` in the observer and in every running node, now.
    fn track(&mut self, sim: &mut Simulation, item: ItemId) {
        sim.track(item);
        for n in sim.up_nodes().collect::<Vec<_>>() {
            assert_eq!(sim.command(n, |node, _| node.track(item)), Some(true));
        }
        self.items.push(item);
    }

    /// Node `n` was just started or restarted: its new `Node` tracks every
    /// item from now, and counts from zero what the observer counts on from
    /// its count now.
    fn adopt(&mut self, sim: &mut Simulation, n: usize) {
        for &item in &self.items {
            assert_eq!(sim.command(n, |node, _| node.track(item)), Some(true));
            let seen = sim.observer().item(item).expect("tracked").at(n).count();
            self.offsets.insert((n, item), seen);
        }
    }

    /// Every running node's count of every item is the observer's.
    fn check(&mut self, sim: &Simulation, test: &str) {
        for n in sim.up_nodes() {
            let node = sim.node(n).expect("an up node has a Node");
            for &item in &self.items {
                let seen = sim.observer().item(item).expect("tracked").at(n).count();
                let offset = self.offsets.get(&(n, item)).copied().unwrap_or(0);
                let counted = node.copies(item);
                assert_eq!(
                    counted,
                    Some(seen - offset),
                    "node {n}, {item:?} at {:?}: the node counted {counted:?}, the \
                     observer {seen} (from {offset})\n{}replay: {}",
                    sim.now(),
                    sim.fault_log(),
                    replay_line(sim.seed(), test)
                );
                self.checks += 1;
                *self.nonzero.entry(item).or_default() += u64::from(seen > offset);
            }
        }
    }
}

/// The run described in the file's doc, checked every 250 ms of virtual
/// time; returns the trace hash. With `count` false the nodes track
/// nothing (the observer still does).
fn run(seed: u64, profile: Profile, nodes: usize, count: bool, test: &str) -> u64 {
    let (joiner, victim, restarted, paused, publisher) = (nodes - 1, 7, 11, 5, 3);
    let mut sim = Simulation::builder(seed, nodes)
        .config(config(profile))
        .network(network())
        .track_joins(false)
        .build();
    for n in 0..joiner {
        sim.apply(Fault::Start {
            node: n,
            meet: (n != 0).then_some(0),
        });
    }
    println!("{}", sim.fault_log());
    sim.run_until(Instant::from_millis(8_000));
    let mut copies = Copies::new();
    let track = |copies: &mut Copies, sim: &mut Simulation, item| match count {
        true => copies.track(sim, item),
        false => sim.track(item),
    };
    for item in [
        ItemId::Join(sim.id(joiner)),
        ItemId::Join(sim.id(publisher)),
        ItemId::Fail(sim.id(victim)),
    ] {
        track(&mut copies, &mut sim, item);
    }
    let publish = |copies: &mut Copies, sim: &mut Simulation, n: usize, key: &[u8]| {
        let stamp = sim
            .command(n, |node, now| node.publish(now, key, b"value"))
            .expect("the publisher runs")
            .expect("dissemination is on");
        let item = ItemId::Update {
            origin: sim.id(n),
            key: key_id(key),
            version: stamp.version,
        };
        track(copies, sim, item);
    };
    publish(&mut copies, &mut sim, publisher, b"colour");
    let step = Duration::from_millis(250);
    for k in 1..=100u64 {
        let now = sim.now();
        match k {
            4 => {
                sim.apply(Fault::Start {
                    node: joiner,
                    meet: Some(0),
                });
                if count {
                    copies.adopt(&mut sim, joiner);
                }
            }
            8 => sim.apply(Fault::Crash(victim)),
            // The old life's last datagrams are slow: the new life's MEET
            // overtakes them, and they arrive stale.
            18 => sim.apply(Fault::AddLink(LinkRule {
                from: NodeSet::range(restarted..restarted + 1),
                to: NodeSet::range(0..nodes),
                latency: Some(Latency::Fixed(Duration::from_millis(400))),
                loss: None,
                blocked: false,
            })),
            20 => {
                sim.apply(Fault::ClearLinks);
                sim.apply(Fault::Restart {
                    node: restarted,
                    meet: 0,
                });
                if count {
                    copies.adopt(&mut sim, restarted);
                }
            }
            24 => sim.apply(Fault::Pause(paused)),
            // Past node_timeout: suspected, maybe FAILed, then back.
            32 => sim.apply(Fault::Resume(paused)),
            40 => publish(&mut copies, &mut sim, joiner, b"shape"),
            _ => {}
        }
        sim.run_until(now + step);
        if count {
            copies.check(&sim, test);
        }
    }
    if count {
        println!(
            "{} checks; nodes with copies at the end of a check, by item: {:?}",
            copies.checks, copies.nonzero
        );
        // Every item was received somewhere, or the run proved nothing.
        for item in &copies.items {
            assert!(
                copies.nonzero.get(item).is_some_and(|&n| n > 0),
                "{item:?} never counted\nreplay: {}",
                replay_line(seed, test)
            );
        }
        // The victim's FAIL reached every live node (FAIL messages and
        // flagged entries), so its count is no small sample.
        let fail = ItemId::Fail(sim.id(victim));
        let holding = sim
            .up_nodes()
            .filter(|&n| sim.node(n).and_then(|node| node.copies(fail)) > Some(0))
            .count();
        println!("{holding} running nodes counted copies of {fail:?}");
        assert!(holding > 0);
    }
    sim.trace_hash()
}

#[test]
fn every_node_counts_the_copies_the_observer_counts_under_redis_rules() {
    const TEST: &str = "every_node_counts_the_copies_the_observer_counts_under_redis_rules";
    for seed in seeds_or_env([0xc0e5_0001]) {
        let _replay = ReplayGuard::new(seed, TEST);
        run(seed, Profile::Redis, 40, true, TEST);
    }
}

#[test]
fn every_node_counts_the_copies_the_observer_counts_over_partial_views() {
    const TEST: &str = "every_node_counts_the_copies_the_observer_counts_over_partial_views";
    for seed in seeds_or_env([0xc0e5_0002]) {
        let _replay = ReplayGuard::new(seed, TEST);
        run(seed, Profile::Lean, 40, true, TEST);
    }
}

#[test]
fn counting_copies_changes_no_datagram_and_no_event() {
    const TEST: &str = "counting_copies_changes_no_datagram_and_no_event";
    for seed in seeds_or_env([0xc0e5_0003]) {
        let _replay = ReplayGuard::new(seed, TEST);
        let counted = run(seed, Profile::Redis, 30, true, TEST);
        let plain = run(seed, Profile::Redis, 30, false, TEST);
        assert_eq!(counted, plain, "replay: {}", replay_line(seed, TEST));
    }
}

#[test]
fn a_node_tracks_at_most_max_tracked_items() {
    let mut node = gossip_core::Node::new(
        gossip_core::Identity::new(gossip_core::NodeId(1)),
        Config::default(),
        1,
        Instant::ZERO,
    );
    for i in 0..MAX_TRACKED as u64 {
        assert!(node.track(ItemId::Join(gossip_core::NodeId(100 + i))));
    }
    assert!(
        node.track(ItemId::Join(gossip_core::NodeId(100))),
        "tracked"
    );
    assert!(!node.track(ItemId::Fail(gossip_core::NodeId(100))), "full");
    assert_eq!(node.copies(ItemId::Join(gossip_core::NodeId(100))), Some(0));
    assert!(node.untrack(ItemId::Join(gossip_core::NodeId(100))));
    assert_eq!(node.copies(ItemId::Join(gossip_core::NodeId(100))), None);
    assert!(
        node.track(ItemId::Fail(gossip_core::NodeId(100))),
        "room again"
    );
    node.untrack_all();
    assert_eq!(node.copies(ItemId::Fail(gossip_core::NodeId(100))), None);
}
