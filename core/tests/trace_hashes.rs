//! Behaviour pinned to the byte: the simulator's trace hash (every delivered
//! datagram's bytes and every event, in order) for fixed seeds in each
//! profile, timing model and dissemination mode, asserted against the values
//! the code gave before issue 12's restructuring. A refactor that changes one
//! byte sent, one event or one timer changes a hash here.
//!
//! When a change is meant to alter behaviour, rerun with `--nocapture` and
//! replace the table with what it prints, saying why in the commit.
#![cfg(feature = "sim")]

use std::time::Duration;

use gossip_core::epidemic::rumor::{RumorConfig, StopRule};
use gossip_core::epidemic::Direction;
use gossip_core::sim::{Fault, FaultSpace, NodeSet, Simulation, Timing};
use gossip_core::{Config, CronSchedule, Dissemination, Instant, Profile};

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// One workload: a profile's config, a cluster size and a timing model.
#[derive(Clone, Copy, Debug)]
enum Case {
    /// Redis profile, membership only, timers, drawn network faults.
    RedisMembership,
    /// Redis profile, rumors (push-pull, feedback+coin) and anti-entropy.
    RedisBoth,
    /// Lean profile (partial view of 32 in a 48-node cluster), pull rumors
    /// and push anti-entropy.
    LeanBoth,
    /// Lean profile in lockstep rounds of one tick, anti-entropy only.
    LeanLockstep,
}

const CASES: [Case; 4] = [
    Case::RedisMembership,
    Case::RedisBoth,
    Case::LeanBoth,
    Case::LeanLockstep,
];

fn config(case: Case) -> Config {
    let secs = Duration::from_secs;
    let b = match case {
        Case::RedisMembership | Case::RedisBoth => Profile::Redis.builder(),
        Case::LeanBoth | Case::LeanLockstep => Profile::Lean.builder(),
    }
    .node_timeout(secs(1))
    .handshake_timeout(secs(5));
    let b = match case {
        Case::RedisMembership => b,
        Case::RedisBoth => b.dissemination(Dissemination::Both).rumor(RumorConfig {
            direction: Direction::PushPull,
            fanout: 2,
            stop: StopRule::feedback_coin(3),
            ..RumorConfig::default()
        }),
        Case::LeanBoth => b
            .dissemination(Dissemination::Both)
            .anti_entropy_direction(Direction::Push)
            .anti_entropy_period(Duration::from_millis(700))
            .rumor(RumorConfig {
                direction: Direction::Pull,
                stop: StopRule::blind_counter(4),
                ..RumorConfig::default()
            }),
        Case::LeanLockstep => b
            .dissemination(Dissemination::AntiEntropy)
            .anti_entropy_chunks(2)
            .cron(CronSchedule::Grid),
    };
    b.build().expect("a valid test config")
}

/// Runs one case for one seed: joins, faults, publishes; returns the trace
/// hash and the number of simulator events.
fn run(case: Case, seed: u64) -> (u64, u64) {
    let nodes = match case {
        Case::RedisMembership | Case::RedisBoth => 16,
        Case::LeanBoth | Case::LeanLockstep => 48,
    };
    let mut b = Simulation::builder(seed, nodes)
        .config(config(case))
        .track_joins(true)
        .draw_network(&FaultSpace::default());
    b = match case {
        Case::LeanLockstep => b.lockstep(),
        Case::RedisBoth => b.timing(Timing::Lockstep {
            round: Duration::from_millis(50),
        }),
        _ => b,
    };
    let mut sim = b.build();
    sim.start_all_meeting(0);
    sim.schedule(at(3_000), Fault::Crash(5));
    sim.schedule(at(4_000), Fault::Partition(vec![NodeSet::range(0..3)]));
    sim.schedule(at(5_500), Fault::Heal);
    sim.schedule(at(6_000), Fault::Restart { node: 5, meet: 1 });
    sim.schedule(at(6_500), Fault::Pause(2));
    sim.schedule(at(8_000), Fault::Resume(2));
    sim.schedule(at(8_500), Fault::Crash(7));
    let disseminates = !matches!(case, Case::RedisMembership);
    let mut published = 0;
    for (step, t) in [2_500u64, 4_500, 7_000, 9_000].into_iter().enumerate() {
        sim.run_until(at(t));
        if disseminates {
            for (k, node) in [(b"colour".as_slice(), 1), (b"shape", 3), (b"colour", 9)] {
                let value = format!("v{step}-{node}");
                let ok = sim.command(node, |n, now| n.publish(now, k, value.as_bytes()).is_ok());
                published += usize::from(ok == Some(true));
            }
        }
    }
    sim.run_until(at(12_000));
    assert_eq!(
        disseminates,
        published > 0,
        "{case:?}: published {published}"
    );
    (sim.trace_hash(), sim.events_processed())
}

/// (case, seed, trace hash, simulator events) as the code before issue 12's
/// restructuring gave them.
const EXPECTED: &[(&str, u64, u64, u64)] = &[
    ("RedisMembership", 1, 0xaeaf10690408b7d3, 9913),
    ("RedisMembership", 2, 0x3ab7513ebdecfddf, 10699),
    ("RedisMembership", 3, 0x590e7186acd3566a, 10215),
    ("RedisMembership", 4, 0x04c8acbe0510cb21, 10422),
    ("RedisMembership", 5, 0xe89f43e3381df04a, 9912),
    ("RedisBoth", 1, 0x81cc754a2eb041fd, 10087),
    ("RedisBoth", 2, 0xcf40ee18ed1b4a94, 11033),
    ("RedisBoth", 3, 0xd11d6823c8af0699, 10148),
    ("RedisBoth", 4, 0x45b8dcc7d234cbe2, 10895),
    ("RedisBoth", 5, 0x40ecb5f9ad32e251, 10126),
    ("LeanBoth", 1, 0xc9bc924c8a087cd9, 66295),
    ("LeanBoth", 2, 0x98124106935b6b60, 75752),
    ("LeanBoth", 3, 0x2a980b976b30c9ef, 65328),
    ("LeanBoth", 4, 0x23c16f55f21f45b3, 71787),
    ("LeanBoth", 5, 0x51dad7fb49be2b17, 69055),
    ("LeanLockstep", 1, 0x4d9a3779225ec6cd, 42375),
    ("LeanLockstep", 2, 0x840b997a626fc0f1, 45949),
    ("LeanLockstep", 3, 0x05276e206ab7285b, 42442),
    ("LeanLockstep", 4, 0x0b918605b5f9c6c3, 43710),
    ("LeanLockstep", 5, 0x9b589213e9f9d8b4, 43903),
];

#[test]
fn trace_hashes_are_those_of_the_code_before_the_restructuring() {
    let mut got = Vec::new();
    for case in CASES {
        for seed in 1..=5u64 {
            let (hash, events) = run(case, seed);
            let name = format!("{case:?}");
            println!("    (\"{name}\", {seed}, {hash:#018x}, {events}),");
            got.push((name, seed, hash, events));
        }
    }
    let expected: Vec<_> = EXPECTED
        .iter()
        .map(|&(c, s, h, e)| (c.to_string(), s, h, e))
        .collect();
    assert_eq!(got, expected, "a trace changed: behaviour is not the same");
}
