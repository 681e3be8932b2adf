//! The swim profile in the simulator: a cluster forms with every node holding
//! every other, a crash is dead at every node and nobody else is, and what a
//! node sends in the steady state is the probe traffic alone.
#![cfg(feature = "sim")]

use std::time::Duration;

use gossip_core::sim::{Fault, NetworkParams, Simulation};
use gossip_core::wire::MessageType;
use gossip_core::{Config, Event, Instant, PeerState, Profile};

fn swim() -> Config {
    Profile::Swim
        .builder()
        .build()
        .expect("the swim profile is valid")
}

fn formed(seed: u64, nodes: usize, config: Config) -> Simulation {
    let mut sim = Simulation::builder(seed, nodes)
        .config(config)
        .network(NetworkParams::LAN)
        .track_joins(false)
        .record_events(true)
        .build();
    sim.start_all_meeting(0);
    sim.run_until(Instant::from_millis(20_000));
    sim
}

/// Members node `i` holds in `state`.
fn count(sim: &Simulation, i: usize, state: PeerState) -> usize {
    sim.node(i)
        .unwrap()
        .peers()
        .iter()
        .filter(|p| p.state() == state)
        .count()
}

#[test]
fn a_swim_cluster_forms_with_every_node_holding_every_other() {
    let n = 64;
    let sim = formed(0x5_1111, n, swim());
    for i in 0..n {
        assert_eq!(count(&sim, i, PeerState::Alive), n - 1, "node {i}");
    }
    let suspicions = sim
        .events()
        .iter()
        .filter(|e| matches!(e.event, Event::PeerPfail { .. } | Event::PeerFail { .. }))
        .count();
    assert_eq!(suspicions, 0, "no live node suspected");
}

#[test]
fn the_steady_state_is_a_probe_and_an_ack_a_period() {
    let n = 64;
    let mut sim = formed(0x5_2222, n, swim());
    let sent = |sim: &Simulation| -> (u64, u64) {
        let mut d = 0;
        let mut b = 0;
        for i in 0..n {
            for kind in MessageType::ALL {
                let t = sim.node(i).unwrap().stats().sent(kind);
                d += t.datagrams;
                b += t.bytes;
            }
        }
        (d, b)
    };
    let (d0, b0) = sent(&sim);
    sim.run_for(Duration::from_secs(30));
    let (d1, b1) = sent(&sim);
    let per_node_s = |x: u64| x as f64 / n as f64 / 30.0;
    let (datagrams, bytes) = (per_node_s(d1 - d0), per_node_s(b1 - b0));
    println!("swim N={n}: {datagrams:.2} datagrams and {bytes:.1} bytes a node a second");
    // A PROBE and an ACK of 30 bytes each per 300 ms period, a SYNC every
    // 5 s: about 6.9 datagrams and 210 bytes.
    assert!((6.0..8.0).contains(&datagrams), "{datagrams}");
    assert!(bytes < 295.0, "{bytes} bytes a node a second");
}

#[test]
fn a_crash_is_dead_at_every_node_and_nobody_else_is() {
    let n = 64;
    let mut sim = formed(0x5_3333, n, swim());
    let crashed = 17;
    let id = sim.id(crashed);
    let at = sim.now();
    sim.apply(Fault::Crash(crashed));
    sim.run_for(Duration::from_secs(15));
    let mut last = Duration::ZERO;
    for i in sim.up_nodes() {
        let dead = sim
            .events()
            .iter()
            .find(|e| e.node == i && matches!(e.event, Event::PeerFail { id: x, .. } if x == id));
        let e = dead.unwrap_or_else(|| panic!("node {i} never had the crashed node dead"));
        last = last.max(e.at.saturating_duration_since(at));
    }
    println!(
        "swim N={n}: dead at every node {:.2} s after the crash",
        last.as_secs_f64()
    );
    let false_dead = sim
        .events()
        .iter()
        .filter(|e| matches!(e.event, Event::PeerFail { id: x, .. } if x != id))
        .count();
    assert_eq!(false_dead, 0);
    assert!(last < Duration::from_secs(5), "{last:?}");
}
