//! A counting global allocator shows that the steady-state datagram path
//! allocates nothing: receiving a PING with a gossip section, encoding the PONG,
//! and the cron's ticks, once the cluster has converged and warmed up; and, with
//! dissemination on, pull rumor rounds and anti-entropy digests over a
//! converged store as well. Each again with every node counting the copies of
//! items ([`Node::track`]): counting allocates nothing either.
//!
//! Only allocations made on this test's thread inside a node call are counted, so
//! the test network's own bookkeeping (and other tests' threads) do not count.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use gossip_core::epidemic::rumor::RumorConfig;
use gossip_core::epidemic::Direction;
use gossip_core::wire::{self, Body, MessageType};
use gossip_core::{Config, Dissemination, Instant, ItemId, Node};
use support::{addr, index_of, Net};

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

/// One datagram on its way: (deliver at, to, from, bytes, length).
type InFlight = (Instant, usize, SocketAddr, [u8; 1400], usize);

/// What the hand-driven steady-state loop saw.
#[derive(Debug, Default)]
struct Tally {
    allocations: u64,
    datagrams: u64,
    pings_with_sections: u64,
    gossip_entries: u64,
    pongs_encoded: u64,
    ticks: u64,
    events: u64,
    /// Data datagrams (DIGEST, PUSH, PULL, RUMOR) and PINGs or PONGs with a
    /// rumor block.
    data_datagrams: u64,
    rumor_blocks: u64,
}

/// Drives `nodes` by hand for `run` with a fixed 1 ms latency through a queue
/// allocated up front, counting allocations inside node calls only.
fn steady_loop(nodes: &mut [Node], mut now: Instant, run: Duration) -> Tally {
    let latency = Duration::from_millis(1);
    let mut queue: VecDeque<InFlight> = VecDeque::with_capacity(4096);
    let mut buf = [0u8; 1400];
    let mut t = Tally::default();
    let end = now + run;
    while now < end {
        // 1. feed datagrams (a fixed latency keeps the FIFO in time order)
        while queue.front().is_some_and(|d| d.0 <= now) {
            let (_, to, from, bytes, len) = queue.pop_front().expect("peeked");
            let datagram = &bytes[..len];
            let msg = wire::decode(datagram).expect("nodes send well-formed datagrams");
            t.data_datagrams += u64::from(msg.header.kind.is_data());
            t.rumor_blocks += u64::from(msg.rumors.is_some());
            if let (MessageType::Ping, Body::Section(s)) = (msg.header.kind, msg.body) {
                if !s.is_empty() {
                    t.pings_with_sections += 1;
                    t.gossip_entries += s.len() as u64;
                }
            }
            let (r, n) = counted(|| nodes[to].handle_datagram(now, from, datagram));
            r.expect("decodes");
            t.allocations += n;
            t.datagrams += 1;
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            // 2. fire the deadline
            if node.poll_timeout().is_some_and(|d| d <= now) {
                let ((), n) = counted(|| node.handle_timeout(now));
                t.allocations += n;
                t.ticks += 1;
            }
            // 3. drain transmits
            loop {
                let (tx, n) = counted(|| node.poll_transmit(now, &mut buf));
                t.allocations += n;
                let Some(tx) = tx else { break };
                t.pongs_encoded += u64::from(tx.kind == MessageType::Pong);
                let to = index_of(tx.to).expect("nodes talk among themselves");
                assert!(queue.len() < queue.capacity(), "the queue would grow");
                queue.push_back((now + latency, to, addr(i), buf, tx.len));
            }
            // 4. drain events
            loop {
                let (e, n) = counted(|| node.poll_event());
                t.allocations += n;
                if e.is_none() {
                    break;
                }
                t.events += 1;
            }
        }
        // 5. next deadline or delivery
        let deadline = nodes.iter().filter_map(Node::poll_timeout).min();
        let delivery = queue.front().map(|d| d.0);
        now = match (deadline, delivery) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).expect("nodes always have a next tick"),
        };
    }
    t
}

#[test]
fn the_counting_allocator_counts() {
    let (v, n) = counted(|| vec![0u8; 100]);
    assert_eq!((v.len(), n), (100, 1));
    // A fresh node's queues are empty; its first meet makes them grow.
    let mut node = Node::new(
        gossip_core::Identity::new(support::id(0)),
        Config::default(),
        1,
        Instant::ZERO,
    );
    let (r, n) = counted(|| node.meet(Instant::ZERO, support::endpoint(1)));
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
    let mut net = Net::new(7, config.clone(), 0xa110c);
    net.join_through(0);
    net.run_until_true(Instant::from_millis(60_000), Net::is_full_mesh)
        .expect("converges");
    // Warm up: every queue and scratch buffer reaches its working size.
    net.run_for(config.node_timeout() * 4);
    let now = net.now;
    let mut nodes: Vec<Node> = std::mem::take(&mut net.members)
        .into_iter()
        .map(|m| m.node)
        .collect();
    if copies {
        track_everywhere(&mut nodes, &[]);
    }
    // A second warm-up under the hand-driven loop's own timing, then the count.
    steady_loop(&mut nodes, now, Duration::from_secs(60));
    let now = now + Duration::from_secs(60);
    let t = steady_loop(&mut nodes, now, Duration::from_secs(600));
    println!("steady state, 7 nodes, 600 s, copies counted {copies}: {t:?}");
    if copies {
        assert_counted(&nodes);
    }
    assert_eq!(t.events, 0, "membership changed during the run");
    assert!(t.pings_with_sections > 1_000, "{t:?}");
    // Three entries wanted; nine random tries among 7 nodes (self included)
    // sometimes find only two.
    assert!(t.gossip_entries * 10 > 29 * t.pings_with_sections, "{t:?}");
    assert!(t.pongs_encoded > 1_000, "{t:?}");
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
    let mut net = Net::new(7, config.clone(), 0xa110d);
    net.join_through(0);
    net.run_until_true(Instant::from_millis(60_000), Net::is_full_mesh)
        .expect("converges");
    for i in 0..50 {
        let now = net.now;
        let key = format!("key-{i:03}");
        net.members[i % 7]
            .node
            .publish(now, key.as_bytes(), &[i as u8; 32])
            .unwrap();
    }
    net.run_for(config.node_timeout() * 4);
    for m in &net.members {
        assert_eq!(m.node.store().len(), 50, "not converged");
        assert!(m.node.rumors().is_idle(), "rumors still hot");
    }
    let now = net.now;
    let mut nodes: Vec<Node> = std::mem::take(&mut net.members)
        .into_iter()
        .map(|m| m.node)
        .collect();
    let updates: Vec<ItemId> = nodes[0]
        .store()
        .iter()
        .map(|e| ItemId::Update {
            origin: e.stamp.origin,
            key: wire::key_id(e.key),
            version: e.stamp.version,
        })
        .collect();
    if copies {
        track_everywhere(&mut nodes, &updates);
    }
    steady_loop(&mut nodes, now, Duration::from_secs(60));
    let now = now + Duration::from_secs(60);
    let t = steady_loop(&mut nodes, now, Duration::from_secs(300));
    println!("steady state with dissemination, 7 nodes, 300 s, copies counted {copies}: {t:?}");
    if copies {
        assert_counted(&nodes);
        // Converged stores exchange digests, never entries: a PUSH of one
        // node 0 holds, from node 1, is a copy the store refuses.
        let e = nodes[0].store().iter().next().expect("50 entries");
        let item = updates[0];
        let header = wire::Header {
            kind: MessageType::Push,
            flags: 0,
            src_slot: 0,
            dst_slot: 0,
            sender: nodes[1].id(),
            incarnation: 0,
        };
        let mut buf = [0u8; 1400];
        let mut w = wire::PushWriter::new(&mut buf, &header).expect("fits");
        assert!(w.push(&e));
        let len = w.finish();
        let before = nodes[0].copies(item).expect("tracked");
        let now = now + Duration::from_secs(300);
        let (r, n) = counted(|| nodes[0].handle_datagram(now, addr(1), &buf[..len]));
        r.expect("decodes");
        assert_eq!(n, 0, "allocations counting an update's copy");
        assert_eq!(nodes[0].copies(item), Some(before + 1));
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
fn track_everywhere(nodes: &mut [Node], updates: &[ItemId]) {
    let ids: Vec<_> = nodes.iter().map(Node::id).collect();
    for node in nodes.iter_mut() {
        for &id in &ids {
            assert!(node.track(ItemId::Join(id)) && node.track(ItemId::Fail(id)));
        }
        for &item in updates {
            assert!(node.track(item));
        }
    }
}

/// Every node counted copies of every other node's join (from its datagrams
/// and gossip); no FAIL was seen.
fn assert_counted(nodes: &[Node]) {
    for (i, node) in nodes.iter().enumerate() {
        for other in nodes.iter().filter(|n| n.id() != node.id()) {
            let joins = node.copies(ItemId::Join(other.id()));
            assert!(joins > Some(100), "node {i}: {joins:?}");
            assert_eq!(node.copies(ItemId::Fail(other.id())), Some(0));
        }
    }
}
