//! The seed sweep: random clusters, random faults, invariants at every step,
//! convergence after repair. 190 seeds here, more in the other tests.

use std::time::Duration;

use gossip_core::rng::Rng;
use gossip_core::sim::{
    seeds_or_env, Failure, Fault, FaultSpace, LinkRule, NodeSet, ReplayGuard, Simulation, Timing,
    Violation,
};

use super::{at, config};

/// Draws a cluster of 4 to 12 nodes, network faults, and one to five faults in
/// a chaos window (3 s to 13 s): crash then restart, pause then resume,
/// partition then heal, a loss burst, a one-way link cut. At 13 s everything is
/// repaired; at 25 s every running node must see every other alive.
fn chaos_run(seed: u64, timing: Timing, test: &str) {
    let mut rng = Rng::new(seed);
    let n = 4 + rng.index(9);
    let mut sim = Simulation::builder(seed, n)
        .config(config())
        .timing(timing)
        .draw_network(&FaultSpace::default())
        .build();
    sim.start_all_meeting(0);
    let (chaos_start, chaos_end) = (3.0, 13.0);
    let window = |rng: &mut Rng| {
        let a = chaos_start + (chaos_end - chaos_start) * rng.unit_f64();
        let b = a + (chaos_end - a) * rng.unit_f64();
        (at(a), at(b))
    };
    let mut restarted = Vec::new();
    for _ in 0..1 + rng.index(5) {
        let (t1, t2) = window(&mut rng);
        match rng.below(5) {
            0 => {
                // Node 0 never crashes: it is everyone's way back in.
                let x = 1 + rng.index(n - 1);
                sim.schedule(t1, Fault::Crash(x));
                sim.schedule(t2, Fault::Restart { node: x, meet: 0 });
                restarted.push(x);
            }
            1 => {
                let x = rng.index(n);
                sim.schedule(t1, Fault::Pause(x));
                sim.schedule(t2, Fault::Resume(x));
            }
            2 => {
                let side: NodeSet = (0..n).filter(|_| rng.below(2) == 0).collect();
                sim.schedule(t1, Fault::Partition(vec![side]));
                sim.schedule(t2, Fault::Heal);
            }
            3 => sim.schedule(t1, Fault::SetLoss(0.3 * rng.unit_f64())),
            _ => {
                let (x, y) = (rng.index(n), rng.index(n));
                sim.schedule(
                    t1,
                    Fault::AddLink(LinkRule {
                        from: NodeSet::range(x..x + 1),
                        to: NodeSet::range(y..y + 1),
                        latency: None,
                        loss: None,
                        blocked: true,
                    }),
                );
            }
        }
    }
    // Repair everything: the network, paused nodes, and restarted nodes whose
    // MEET may have died in the chaos (an operator would meet them again).
    let repair = at(chaos_end);
    for fault in [Fault::Heal, Fault::ClearLinks, Fault::SetLoss(0.0)] {
        sim.schedule(repair, fault);
    }
    for x in 0..n {
        sim.schedule(repair, Fault::Resume(x));
    }
    for &x in &restarted {
        sim.schedule(repair, Fault::Meet { node: x, target: 0 });
    }
    print!("{}", sim.fault_log());
    if let Err(f) = sim.run_checked(at(chaos_end + 12.0), test) {
        panic!("{f}");
    }
    if let Err(v) = sim.check_converged() {
        panic!("{}", Failure::new(&sim, test, v));
    }
    let net = *sim.network_stats();
    let accounted = net.lost
        + net.partitioned
        + net.no_route
        + net.delivered
        + net.to_down
        + net.overflowed
        + sim.in_flight();
    if net.sent + net.duplicated != accounted {
        let v = Violation {
            at: sim.now(),
            node: None,
            what: format!(
                "datagrams unaccounted for: {net:?}, in flight {}",
                sim.in_flight()
            ),
        };
        panic!("{}", Failure::new(&sim, test, v));
    }
    println!(
        "  ok: {} simulator events, {} datagrams sent, {} lost, {} partitioned, trace hash {:#018x}",
        sim.events_processed(),
        net.sent,
        net.lost,
        net.partitioned,
        sim.trace_hash()
    );
}

#[test]
fn seed_sweep_keeps_invariants_and_converges_after_repair_with_timers() {
    const TEST: &str = "sweep::seed_sweep_keeps_invariants_and_converges_after_repair_with_timers";
    for seed in seeds_or_env(0x5eed_0000..0x5eed_0000 + 170) {
        let _replay = ReplayGuard::new(seed, TEST);
        chaos_run(seed, Timing::Timers, TEST);
    }
}

#[test]
fn seed_sweep_keeps_invariants_and_converges_after_repair_in_lockstep() {
    const TEST: &str = "sweep::seed_sweep_keeps_invariants_and_converges_after_repair_in_lockstep";
    for seed in seeds_or_env(0x10c5_0000..0x10c5_0000 + 20) {
        let _replay = ReplayGuard::new(seed, TEST);
        chaos_run(
            seed,
            Timing::Lockstep {
                round: Duration::from_millis(100),
            },
            TEST,
        );
    }
}
