//! A counting global allocator shows that the steady-state datagram path
//! allocates nothing: receiving a PING with a gossip section, encoding the PONG,
//! and the cron's ticks, once the cluster has converged and warmed up; and, with
//! dissemination on, pull rumor rounds and anti-entropy digests over a
//! converged store as well. Each again with every node counting the copies of
//! items ([`Node::track`]): counting allocates nothing either.
//!
//! The nodes run in `core::sim`, whose own per-datagram path (timeline,
//! packet pool, observer, trace hash) allocates nothing in steady state either:
//! every allocation on this test's thread during the counted run is counted,
//! the simulator's included, so a zero is the nodes' zero (other tests'
//! threads do not count).
#![cfg(feature = "sim")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use gossip_core::epidemic::rumor::RumorConfig;
use gossip_core::epidemic::Direction;
use gossip_core::sim::{Latency, NetworkParams, Simulation};
use gossip_core::wire::{self, MessageType};
use gossip_core::{Config, Dissemination, Endpoint, Identity, Instant, ItemId, Node, NodeId};

struct Counting;

thread_local! {
    // `const` and no destructor: safe to touch from inside the allocator.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot is gone while the thread shuts down; nothing to count then.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments, so the
// `GlobalAlloc` contract holds exactly as for `System`; counting touches only a
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns what it returned and how many allocations it made.
fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (r, ALLOCATIONS.with(Cell::get) - before)
}

/// What a steady-state run did, from the simulator's counters and the nodes'.
#[derive(Debug, Default)]
struct Tally {
    allocations: u64,
    datagrams: u64,
    pings: u64,
    ping_bytes: u64,
    pongs: u64,
    ticks: u64,
    events: u64,
    /// Data datagrams (DIGEST, PUSH, PULL, RUMOR).
    data_datagrams: u64,
    /// Rumor blocks that rode a PING or PONG.
    rumor_blocks: u64,
}

/// What the counters say now; `allocations` is left at zero.
fn tally(sim: &Simulation) -> Tally {
    let nodes = || (0..sim.len()).filter_map(|i| sim.node(i));
    let obs = sim.observer();
    let pings = obs.sent_total(MessageType::Ping);
    Tally {
        allocations: 0,
        datagrams: sim.network_stats().delivered,
        pings: pings.datagrams,
        ping_bytes: pings.bytes,
        pongs: obs.sent_total(MessageType::Pong).datagrams,
        ticks: nodes().map(|n| n.stats().ticks).sum(),
        events: sim.events().len() as u64,
        data_datagrams: MessageType::ALL
            .into_iter()
            .filter(|k| k.is_data())
            .map(|k| obs.sent_total(k).datagrams)
            .sum(),
        rumor_blocks: nodes()
            .map(|n| n.stats().data.rumor_blocks_piggybacked)
            .sum(),
    }
}

impl Tally {
    /// Gossip entries the PINGs carried. With dissemination off a PING is a
    /// header, a 2-byte entry count and fixed-size IPv4 entries (every node is
    /// on 127.0.0.0/8), so its length counts its entries.
    fn gossip_entries(&self) -> u64 {
        let entries = self.ping_bytes - (wire::HEADER_LEN as u64 + 2) * self.pings;
        assert_eq!(entries % wire::ENTRY_LEN_V4 as u64, 0, "{self:?}");
        entries / wire::ENTRY_LEN_V4 as u64
    }
}

/// Runs `sim` for `run` and returns what it did, with every allocation made on
/// this thread meanwhile: the nodes' and the simulator's own.
fn steady_run(sim: &mut Simulation, run: Duration) -> Tally {
    let before = tally(sim);
    let ((), allocations) = counted(|| sim.run_for(run));
    let after = tally(sim);
    Tally {
        allocations,
        datagrams: after.datagrams - before.datagrams,
        pings: after.pings - before.pings,
        ping_bytes: after.ping_bytes - before.ping_bytes,
        pongs: after.pongs - before.pongs,
        ticks: after.ticks - before.ticks,
        events: after.events - before.events,
        data_datagrams: after.data_datagrams - before.data_datagrams,
        rumor_blocks: after.rumor_blocks - before.rumor_blocks,
    }
}

/// Seven nodes with `config` joined through node 0, converged, and warmed up
/// for 4 node_timeouts: every queue and scratch buffer, the nodes' and the
/// simulator's, has reached its working size. Fixed 1 ms latency, no loss.
fn converged(config: &Config, seed: u64) -> Simulation {
    let mut sim = Simulation::builder(seed, 7)
        .config(config.clone())
        .network(NetworkParams {
            latency: Latency::Fixed(Duration::from_millis(1)),
            ..NetworkParams::IDEAL
        })
        .record_events(true)
        .build();
    sim.start_all_meeting(0);
    sim.run_until_holds(Instant::from_millis(60_000), |s| {
        s.check_converged().is_ok()
    })
    .expect("converges");
    sim
}

#[test]
fn the_counting_allocator_counts() {
    let (v, n) = counted(|| vec![0u8; 100]);
    assert_eq!((v.len(), n), (100, 1));
    // A fresh node's queues are empty; its first meet makes them grow.
    let mut node = Node::new(
        Identity::new(NodeId(1)),
        Config::default(),
        1,
        Instant::ZERO,
    );
    let to = Endpoint::from(SocketAddr::from(([127, 0, 0, 2], 7000)));
    let (r, n) = counted(|| node.meet(Instant::ZERO, to));
    assert!(r.is_ok() && n > 0, "{r:?}, {n} allocations");
}

#[test]
fn the_steady_state_datagram_path_allocates_nothing() {
    membership_steady_state(false);
}

#[test]
fn the_steady_state_datagram_path_allocates_nothing_while_counting_copies() {
    membership_steady_state(true);
}

/// Seven converged nodes exchange PINGs and PONGs for 600 s; with `copies`,
/// every node counts the copies of items about every node.
fn membership_steady_state(copies: bool) {
    // Seven nodes, so sections carry 3 entries (wanted = max(3, 7/10), at most
    // N - 2 = 5); the Redis profile with its 15 s node_timeout.
    let config = Config::default();
    let mut sim = converged(&config, 0xa110c);
    sim.run_for(config.node_timeout() * 4);
    if copies {
        track_everywhere(&mut sim, &[]);
    }
    // A second warm-up after the tracking grew the nodes' tables, then the count.
    steady_run(&mut sim, Duration::from_secs(60));
    let t = steady_run(&mut sim, Duration::from_secs(600));
    println!("steady state, 7 nodes, 600 s, copies counted {copies}: {t:?}");
    if copies {
        assert_counted(&sim);
    }
    assert_eq!(t.events, 0, "membership changed during the run");
    assert!(t.pings > 1_000, "{t:?}");
    // Three entries wanted; nine random tries among 7 nodes (self included)
    // sometimes find only two.
    assert!(t.gossip_entries() * 10 > 29 * t.pings, "{t:?}");
    assert!(t.pongs > 1_000, "{t:?}");
    // A cron period is at most 101 ms: a 100 ms tick re-armed after each run
    // plus up to 1 ms (`CronSchedule::AfterRun`), 5,940 ticks in 600 s.
    assert!(t.ticks > 7 * 5_940 - 100, "{t:?}");
    assert_eq!(
        t.allocations, 0,
        "{} allocations over {} datagrams and {} ticks",
        t.allocations, t.datagrams, t.ticks
    );
}

#[test]
fn the_steady_state_path_allocates_nothing_with_dissemination_on() {
    dissemination_steady_state(false);
}

#[test]
fn the_steady_state_path_allocates_nothing_with_dissemination_on_while_counting_copies() {
    dissemination_steady_state(true);
}

/// Seven converged nodes holding the same 50 entries pull rumors and
/// exchange digests for 300 s; with `copies`, every node counts the copies
/// of items about every node and of every entry, and a PUSH of an entry it
/// holds is one more copy, counted without allocating.
fn dissemination_steady_state(copies: bool) {
    // Rumor mongering push-pull (so every round sends pull requests, standalone
    // or on PINGs) with anti-entropy every second behind it, over a store of 50
    // entries every node holds: steady state means nothing new, yet digests,
    // pulls and their answers keep flowing.
    let config = Config::builder()
        .dissemination(Dissemination::Both)
        .rumor(RumorConfig {
            direction: Direction::PushPull,
            ..RumorConfig::default()
        })
        .build()
        .unwrap();
    let mut sim = converged(&config, 0xa110d);
    for i in 0..50 {
        let key = format!("key-{i:03}");
        sim.command(i % 7, |node, now| {
            node.publish(now, key.as_bytes(), &[i as u8; 32])
        })
        .expect("node runs")
        .unwrap();
    }
    sim.run_for(config.node_timeout() * 4);
    for i in 0..sim.len() {
        let node = sim.node(i).expect("node runs");
        assert_eq!(node.store().len(), 50, "not converged");
        assert!(node.rumors().is_idle(), "rumors still hot");
    }
    let updates: Vec<ItemId> = sim
        .node(0)
        .expect("node runs")
        .store()
        .iter()
        .map(|e| ItemId::Update {
            origin: e.stamp.origin,
            key: wire::key_id(e.key),
            version: e.stamp.version,
        })
        .collect();
    if copies {
        track_everywhere(&mut sim, &updates);
    }
    steady_run(&mut sim, Duration::from_secs(60));
    let t = steady_run(&mut sim, Duration::from_secs(300));
    println!("steady state with dissemination, 7 nodes, 300 s, copies counted {copies}: {t:?}");
    if copies {
        assert_counted(&sim);
        // Converged stores exchange digests, never entries: a PUSH of one
        // node 0 holds, from node 1, is a copy the store refuses.
        let item = updates[0];
        let header = wire::Header {
            kind: MessageType::Push,
            flags: 0,
            src_slot: 0,
            dst_slot: 0,
            sender: sim.id(1),
            incarnation: 0,
        };
        let mut buf = [0u8; 1400];
        let mut w = wire::PushWriter::new(&mut buf, &header).expect("fits");
        let node0 = sim.node(0).expect("node runs");
        assert!(w.push(&node0.store().iter().next().expect("50 entries")));
        let len = w.finish();
        let before = node0.copies(item).expect("tracked");
        let from = sim.endpoint(1).addr();
        let (r, n) = counted(|| sim.inject(0, from, &buf[..len]));
        assert_eq!(r, Some(Ok(())));
        assert_eq!(n, 0, "allocations counting an update's copy");
        assert_eq!(sim.node(0).unwrap().copies(item), Some(before + 1));
    }
    assert_eq!(t.events, 0, "something changed during the run");
    // 7 nodes pull once a round (10 a second) and exchange once a second.
    assert!(t.data_datagrams > 7 * 300 * 5, "{t:?}");
    assert!(t.rumor_blocks > 0, "{t:?}");
    assert_eq!(
        t.allocations, 0,
        "{} allocations over {} datagrams and {} ticks",
        t.allocations, t.datagrams, t.ticks
    );
}

/// Every node tracks the join and FAIL of every node, and `updates`.
fn track_everywhere(sim: &mut Simulation, updates: &[ItemId]) {
    let ids: Vec<_> = (0..sim.len()).map(|i| sim.id(i)).collect();
    for i in 0..sim.len() {
        sim.command(i, |node, _| {
            for &id in &ids {
                assert!(node.track(ItemId::Join(id)) && node.track(ItemId::Fail(id)));
            }
            for &item in updates {
                assert!(node.track(item));
            }
        })
        .expect("node runs");
    }
}

/// Every node counted copies of every other node's join (from its datagrams
/// and gossip); no FAIL was seen.
fn assert_counted(sim: &Simulation) {
    for i in 0..sim.len() {
        let node = sim.node(i).expect("node runs");
        for other in (0..sim.len()).filter(|&j| j != i).map(|j| sim.id(j)) {
            let joins = node.copies(ItemId::Join(other));
            assert!(joins > Some(100), "node {i}: {joins:?}");
            assert_eq!(node.copies(ItemId::Fail(other)), Some(0));
        }
    }
}
