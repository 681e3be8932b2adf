//! The network model: link rules, duplication, reordering, loss and a paused
//! node's receive buffer, with every datagram accounted for.

use std::time::Duration;

use gossip_core::sim::{
    seeds_or_env, Fault, ItemId, Latency, LinkRule, NetworkParams, NodeSet, ReplayGuard, Simulation,
};
use gossip_core::Instant;

use super::{at, config, ensure, run_checked, run_until_converged};

/// Every datagram sent (and every duplicate) was lost, cut, delivered,
/// refused, or is still on its way.
fn assert_accounted(sim: &Simulation) {
    let n = sim.network_stats();
    let out = n.lost
        + n.partitioned
        + n.no_route
        + n.delivered
        + n.to_down
        + n.overflowed
        + sim.in_flight();
    assert_eq!(
        n.sent + n.duplicated,
        out,
        "{n:?}, in flight {}",
        sim.in_flight()
    );
}

#[test]
fn a_link_rule_sets_the_latency_of_one_direction() {
    const TEST: &str = "network::a_link_rule_sets_the_latency_of_one_direction";
    let seed = seeds_or_env([1])[0];
    let _replay = ReplayGuard::new(seed, TEST);
    let mut sim = Simulation::builder(seed, 2)
        .config(config())
        .network(NetworkParams {
            latency: Latency::Fixed(Duration::from_millis(1)),
            ..NetworkParams::IDEAL
        })
        .track_joins(true)
        .build();
    sim.apply(Fault::AddLink(LinkRule {
        from: NodeSet::range(0..1),
        to: NodeSet::range(1..2),
        latency: Some(Latency::Fixed(Duration::from_millis(50))),
        loss: None,
        blocked: false,
    }));
    sim.apply(Fault::Start {
        node: 0,
        meet: None,
    });
    sim.apply(Fault::Start {
        node: 1,
        meet: Some(0),
    });
    sim.run_until(at(1.0));
    // Node 1's MEET takes the default 1 ms; node 0's PONG takes the link's 50 ms.
    let join_of_1 = sim
        .observer()
        .item(ItemId::Join(sim.id(1)))
        .expect("tracked");
    let join_of_0 = sim
        .observer()
        .item(ItemId::Join(sim.id(0)))
        .expect("tracked");
    assert_eq!(join_of_1.at(0).first(), Some(Instant::from_millis(1)));
    assert_eq!(join_of_0.at(1).first(), Some(Instant::from_millis(51)));
    assert_eq!(join_of_0.at(1).from(), Some(0));
    assert_accounted(&sim);
}

#[test]
fn duplicated_reordered_and_lost_datagrams_are_counted_and_harmless() {
    const TEST: &str = "network::duplicated_reordered_and_lost_datagrams_are_counted_and_harmless";
    let seed = seeds_or_env([0xd0b1e])[0];
    let _replay = ReplayGuard::new(seed, TEST);
    let mut sim = Simulation::builder(seed, 8)
        .config(config())
        .network(NetworkParams {
            latency: Latency::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(3),
            },
            loss: 0.05,
            duplicate: 0.2,
            reorder: 0.2,
            reorder_delay: Duration::from_millis(50),
        })
        .build();
    sim.start_all_meeting(0);
    println!("{}", sim.fault_log());
    let done = run_until_converged(&mut sim, at(20.0), TEST);
    ensure(
        &sim,
        TEST,
        done.is_some(),
        format_args!("{:?}", sim.check_converged()),
    );
    let until = sim.now() + Duration::from_secs(5);
    run_checked(&mut sim, until, TEST);
    let n = *sim.network_stats();
    // A fifth of the datagrams not lost were copied; a fifth of all delay draws
    // (copies included) were held back. Each is a binomial share: within five
    // standard errors, sqrt(p (1 - p) / trials), of 0.2.
    let kept = n.sent - n.lost;
    for (what, count, trials) in [
        ("duplicated", n.duplicated, kept),
        ("reordered", n.reordered, kept + n.duplicated),
    ] {
        let share = count as f64 / trials as f64;
        let se = (0.2 * 0.8 / trials as f64).sqrt();
        assert!(
            (share - 0.2).abs() < 5.0 * se,
            "{what}: {share:.3} of {trials} (se {se:.4})"
        );
    }
    assert!(n.lost > 0);
    assert_accounted(&sim);
}

#[test]
fn a_paused_node_buffers_what_fits_its_receive_buffer_and_drops_the_rest() {
    const TEST: &str =
        "network::a_paused_node_buffers_what_fits_its_receive_buffer_and_drops_the_rest";
    let seed = seeds_or_env([0xb0ff])[0];
    let _replay = ReplayGuard::new(seed, TEST);
    let mut sim = Simulation::builder(seed, 6)
        .config(config())
        .network(NetworkParams::LAN)
        .receive_buffer(300)
        .record_events(true)
        .build();
    sim.start_all_meeting(0);
    let done = run_until_converged(&mut sim, at(20.0), TEST);
    ensure(
        &sim,
        TEST,
        done.is_some(),
        format_args!("{:?}", sim.check_converged()),
    );
    let pause = sim.now();
    sim.schedule(pause, Fault::Pause(2));
    sim.schedule(pause + Duration::from_secs(3), Fault::Resume(2));
    run_checked(&mut sim, pause + Duration::from_millis(2_999), TEST);
    // 300 bytes hold a few datagrams; the rest were dropped, as a full socket does.
    let held = sim.in_flight();
    assert!(held > 0, "something waits in the buffer");
    assert!(
        sim.network_stats().overflowed > 0,
        "{:?}",
        sim.network_stats()
    );
    assert_accounted(&sim);
    // On resume it reads them (at the resume instant), then its cron catches up.
    let resume = pause + Duration::from_secs(3);
    run_checked(&mut sim, resume, TEST);
    let late = sim.node(2).expect("running").stats().late_ticks;
    assert_eq!(late, 1, "one late tick after the pause, not a burst");
    let back = run_until_converged(&mut sim, resume + Duration::from_secs(3), TEST);
    ensure(
        &sim,
        TEST,
        back.is_some(),
        format_args!("{:?}", sim.check_converged()),
    );
    assert_accounted(&sim);
}
