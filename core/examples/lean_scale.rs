//! The lean profile (Redis's rules over a partial view) at scale, in the
//! simulator: N nodes join through node 0, run, then a few crash. Prints the
//! views (size, in-degree: how many views hold a node), suspicion of live
//! nodes (false PFAIL/FAIL), how the crashed nodes' holders detected them,
//! and the message rate.
//!
//! ```text
//! cargo run --release -p gossip-core --features sim --example lean_scale [-- NODES VIEW QUORUM CRASHES SEED]
//! ```
//! Defaults: 10,000 nodes, view 32, quorum 2, 10 crashes, seed 0x5eed;
//! node_timeout 15 s, LAN network; crashes at 120 s, observed until 240 s.

use std::collections::HashMap;
use std::time::{Duration, Instant as WallClock};

use gossip_core::sim::{Fault, NetworkParams, Simulation};
use gossip_core::{Event, Instant, NodeId, PeerState, Profile, Quorum};

const CRASH_AT_S: u64 = 120;
const END_S: u64 = 240;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut next = |default: u64| {
        args.next()
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let nodes = next(10_000) as usize;
    let view = next(32) as usize;
    let quorum = next(2) as u32;
    let crashes = next(10) as usize;
    let seed = next(0x5eed);

    let config = Profile::Lean
        .builder()
        .max_peers(view)
        .quorum(Quorum::AtLeast(quorum))
        .build()
        .expect("a view of at least one peer and a quorum of at least one are valid");
    let mut sim = Simulation::builder(seed, nodes)
        .config(config)
        .network(NetworkParams::LAN)
        .track_joins(false)
        .record_events(true)
        .build();
    sim.start_all_meeting(0);
    let wall = WallClock::now();
    let mut sent_before = 0;
    for s in (10..=CRASH_AT_S).step_by(10) {
        sim.run_until(Instant::from_millis(s * 1_000));
        let sent = sim.network_stats().sent;
        println!(
            "virtual {s:>3} s  wall {:>6.1} s  datagrams/node/s {:>6.2}  {}",
            wall.elapsed().as_secs_f64(),
            (sent - sent_before) as f64 / nodes as f64 / 10.0,
            views(&sim)
        );
        sent_before = sent;
    }
    // Crash nodes spread over the join order (early joiners are held by
    // fewer views than late ones).
    let crashed: Vec<usize> = (1..=crashes).map(|k| k * (nodes - 1) / crashes).collect();
    let holders: HashMap<NodeId, Vec<usize>> = crashed
        .iter()
        .map(|&c| {
            let id = sim.id(c);
            let held = sim
                .up_nodes()
                .filter(|&i| sim.node(i).is_some_and(|n| n.peers().find(id).is_some()))
                .collect();
            (id, held)
        })
        .collect();
    let crash_at = Instant::from_millis(CRASH_AT_S * 1_000);
    for &c in &crashed {
        sim.apply(Fault::Crash(c));
    }
    sim.run_until(Instant::from_millis(END_S * 1_000));
    let sent = sim.network_stats().sent - sent_before;
    println!(
        "virtual {END_S} s  wall {:.1} s  datagrams/node/s {:.2}  {}",
        wall.elapsed().as_secs_f64(),
        sent as f64 / nodes as f64 / (END_S - CRASH_AT_S) as f64,
        views(&sim)
    );
    suspicion(&sim, &crashed, crash_at);
    detection(&sim, &crashed, &holders, crash_at);
}

/// View sizes and in-degrees over the running nodes.
fn views(sim: &Simulation) -> String {
    let mut indegree: HashMap<NodeId, u32> = sim.up_nodes().map(|i| (sim.id(i), 0)).collect();
    let (mut members, mut up) = (0, 0);
    for i in sim.up_nodes() {
        let Some(n) = sim.node(i) else { continue };
        up += 1;
        members += n.members();
        for p in n.peers().iter().filter(|p| p.is_member()) {
            if let Some(d) = indegree.get_mut(&p.id()) {
                *d += 1;
            }
        }
    }
    let mut d: Vec<u32> = indegree.into_values().collect();
    d.sort_unstable();
    let q = |f: f64| d[((d.len() - 1) as f64 * f) as usize];
    format!(
        "members/node {:.1}  in-degree min {} p1 {} median {} max {}  held by none {}",
        members as f64 / up.max(1) as f64,
        q(0.0),
        q(0.01),
        q(0.5),
        q(1.0),
        d.iter().filter(|&&x| x == 0).count()
    )
}

/// PFAIL and FAIL of nodes that never crashed, after the join settled.
fn suspicion(sim: &Simulation, crashed: &[usize], crash_at: Instant) {
    let settled = Instant::from_millis(60_000);
    let dead: Vec<NodeId> = crashed.iter().map(|&c| sim.id(c)).collect();
    let (mut pfail, mut fail, mut join_pfail) = (0, 0, 0);
    for e in sim.events() {
        let id = match e.event {
            Event::PeerPfail { id } => id,
            Event::PeerFail { id, .. } => id,
            _ => continue,
        };
        if dead.contains(&id) && e.at >= crash_at {
            continue;
        }
        match (e.at >= settled, e.event) {
            (false, _) => join_pfail += 1,
            (true, Event::PeerPfail { .. }) => pfail += 1,
            (true, _) => fail += 1,
        }
    }
    println!(
        "live nodes suspected after 60 s: PFAIL {pfail}, FAIL {fail} (during the join: {join_pfail})"
    );
}

/// For each crashed node: of the nodes that held it at the crash, how many
/// marked it FAIL, and when.
fn detection(
    sim: &Simulation,
    crashed: &[usize],
    holders: &HashMap<NodeId, Vec<usize>>,
    crash_at: Instant,
) {
    let mut all = (0usize, 0usize, 0usize);
    let mut times = Vec::new();
    for &c in crashed {
        let id = sim.id(c);
        let held = &holders[&id];
        let mut first_fail: HashMap<usize, Instant> = HashMap::new();
        let mut pfail_only = 0;
        for e in sim.events().iter().filter(|e| e.at >= crash_at) {
            match e.event {
                Event::PeerFail { id: x, .. } if x == id => {
                    first_fail.entry(e.node).or_insert(e.at);
                }
                _ => {}
            }
        }
        let failed = held.iter().filter(|h| first_fail.contains_key(h)).count();
        for &h in held {
            let state = sim
                .node(h)
                .and_then(|n| n.peers().by_id(id))
                .map(|p| p.state());
            if state == Some(PeerState::Pfail) {
                pfail_only += 1;
            }
        }
        let last = held
            .iter()
            .filter_map(|h| first_fail.get(h))
            .max()
            .map(|&t| (t - crash_at).as_secs_f64());
        times.extend(
            held.iter()
                .filter_map(|h| first_fail.get(h))
                .map(|&t| t - crash_at),
        );
        println!(
            "crashed node {c:>5}: held by {:>3}, FAIL at {failed:>3}, still PFAIL at {pfail_only:>3}, last FAIL {}",
            held.len(),
            last.map_or("-".into(), |s| format!("{s:.1} s"))
        );
        all.0 += held.len();
        all.1 += failed;
        all.2 += pfail_only;
    }
    times.sort_unstable();
    let q = |f: f64| {
        times
            .get(((times.len().max(1) - 1) as f64 * f) as usize)
            .map_or(f64::NAN, |d: &Duration| d.as_secs_f64())
    };
    println!(
        "holders {}: FAIL {} ({:.1} %), still PFAIL {}; FAIL after the crash p50 {:.1} s p99 {:.1} s",
        all.0,
        all.1,
        100.0 * all.1 as f64 / all.0.max(1) as f64,
        all.2,
        q(0.5),
        q(0.99)
    );
}
