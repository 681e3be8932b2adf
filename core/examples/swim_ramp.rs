//! The swim profile forming in the simulator: N nodes started over a ramp,
//! each meeting node 0 (as `gossip-node --ramp` starts them); every second,
//! how many (node, member) pairs are known alive, how many nodes still lack
//! members, and the STATE datagrams sent so far (anti-entropy answers and
//! gossip rounds).
//!
//! ```text
//! cargo run --release -p gossip-core --features sim --example swim_ramp [-- NODES RAMP_MS SECONDS SEED]
//! ```

use gossip_core::sim::{Fault, NetworkParams, Simulation};
use gossip_core::wire::MessageType;
use gossip_core::{Instant, PeerState, Profile};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut next = |default: u64| {
        args.next()
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let n = next(1_000) as usize;
    let ramp_ms = next(10_000);
    let seconds = next(40);
    let seed = next(7);
    let config = Profile::Swim
        .builder()
        .build()
        .expect("the swim profile is valid");
    let mut sim = Simulation::builder(seed, n)
        .config(config)
        .network(NetworkParams::LAN)
        .track_joins(false)
        .build();
    for i in 0..n {
        let at = Instant::from_millis(ramp_ms * i as u64 / n as u64);
        let meet = (i > 0).then_some(0);
        sim.schedule(at, Fault::Start { node: i, meet });
    }
    let alive = |sim: &Simulation, i: usize| {
        sim.node(i).map_or(0, |node| {
            node.peers()
                .iter()
                .filter(|p| p.state() == PeerState::Alive)
                .count()
        })
    };
    let all = n * (n - 1);
    for s in 1..=seconds {
        sim.run_until(Instant::from_millis(s * 1_000));
        let known: usize = (0..n).map(|i| alive(&sim, i)).sum();
        let short = (0..n).filter(|&i| alive(&sim, i) < n - 1).count();
        let states: u64 = (0..n)
            .filter_map(|i| sim.node(i))
            .map(|node| node.stats().sent(MessageType::State).datagrams)
            .sum();
        println!("{s:>4} s  alive pairs {known:>10} of {all}  nodes short {short:>6}  STATE sent {states:>9}");
        if known == all && s * 1_000 > ramp_ms {
            println!(
                "every node holds every other {} s after the last start",
                s - ramp_ms / 1_000
            );
            break;
        }
    }
}
