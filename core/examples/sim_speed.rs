//! Simulator speed: 1,000 Redis-faithful nodes (`Config::builder()` defaults,
//! node_timeout 15 s) for 60 virtual seconds in the timers model, joining
//! through one MEET each at time zero. Prints wall time and simulator events
//! per second. Target (issue 3): under 30 s of wall time in release mode.
//!
//! ```text
//! cargo run --release -p gossip-core --features sim --example sim_speed [-- NODES SECONDS SEED]
//! ```
//! Set `SIM_TRACK_JOINS=0` to run without the per-item observer (traffic
//! counters stay on).

use std::time::{Duration, Instant as WallClock};

use gossip_core::sim::{ItemId, NetworkParams, Simulation};
use gossip_core::wire::MessageType;
use gossip_core::{Config, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args
        .next()
        .map_or(1_000, |a| a.parse().expect("NODES is a number"));
    let seconds: u64 = args
        .next()
        .map_or(60, |a| a.parse().expect("SECONDS is a number"));
    let seed: u64 = args.next().map_or(0x5eed, |a| {
        let a = a.trim_start_matches("0x");
        u64::from_str_radix(a, 16).expect("SEED is hex")
    });
    let track_joins = std::env::var("SIM_TRACK_JOINS").map_or(true, |v| v != "0");

    let config = Config::builder()
        .build()
        .expect("the Redis profile is valid"); // invariant: tested in profile.rs
    let mut sim = Simulation::builder(seed, nodes)
        .config(config)
        .network(NetworkParams::LAN)
        .track_joins(track_joins)
        .build();
    sim.start_all_meeting(0);
    print!("{}", sim.fault_log());

    let wall = WallClock::now();
    let mut last = wall;
    for s in 1..=seconds {
        sim.run_until(Instant::from_millis(s * 1_000));
        if s % 10 == 0 || s == seconds {
            let now = WallClock::now();
            let members: usize = sim
                .up_nodes()
                .map(|i| sim.node(i).map_or(0, |n| n.members()))
                .sum();
            println!(
                "virtual {s:>3} s  wall {:>6.2} s (+{:.2})  events {:>11}  mean members {:.1}",
                wall.elapsed().as_secs_f64(),
                (now - last).as_secs_f64(),
                sim.events_processed(),
                members as f64 / nodes as f64
            );
            last = now;
        }
    }
    let elapsed = wall.elapsed();
    report(&sim, nodes, seconds, elapsed, track_joins);
}

fn report(sim: &Simulation, nodes: usize, seconds: u64, elapsed: Duration, track_joins: bool) {
    let events = sim.events_processed();
    let net = sim.network_stats();
    println!(
        "nodes {nodes}, virtual {seconds} s, observer items {}",
        sim.observer().item_count()
    );
    println!(
        "wall {:.2} s  simulator events {events} ({:.0}/s)  datagrams delivered {} ({:.0}/s)",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        net.delivered,
        net.delivered as f64 / elapsed.as_secs_f64()
    );
    for kind in MessageType::ALL {
        let t = sim.observer().sent_total(kind);
        println!(
            "  {:<5} {:>10} datagrams {:>13} bytes  {:>8.1} per node per second",
            kind.name(),
            t.datagrams,
            t.bytes,
            t.datagrams as f64 / nodes as f64 / seconds as f64
        );
    }
    if track_joins {
        let last = (0..nodes)
            .filter_map(|i| sim.observer().item(ItemId::Join(sim.id(i))))
            .map(|it| (it.reached(), it.last_first_reception()))
            .fold((usize::MAX, Instant::ZERO), |(r, t), (ri, ti)| {
                (r.min(ri), t.max(ti.unwrap_or(t)))
            });
        println!(
            "joins: every join reached at least {} nodes; the last first reception at {:?}",
            last.0, last.1
        );
    }
    println!(
        "datagram buffers: {} ({:.1} MB) at the high water",
        sim.packet_buffers(),
        sim.packet_buffer_bytes() as f64 / 1e6
    );
    println!("trace hash {:#018x}", sim.trace_hash());
}
