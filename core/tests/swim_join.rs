//! A node joining a formed swim cluster fetches the membership by digest
//! exchange (STATE answers), quickly and without passing what it fetched on as
//! rumors (docs/design/swim.md §7).
#![cfg(feature = "sim")]

use std::time::Duration;

use gossip_core::sim::{Fault, NetworkParams, Simulation};
use gossip_core::wire::MessageType;
use gossip_core::{Config, Instant, PeerState, Profile};

/// The swim profile with STATE answers cut at two datagrams (about 110
/// members), so that fetching 300 members takes several answers.
fn config() -> Config {
    let mut b = Profile::Swim.builder();
    b.set("sync_chunks", "2").expect("a valid setting");
    b.build().expect("the swim profile is valid")
}

#[test]
fn a_joiner_fetches_the_membership_in_a_few_answers_and_does_not_gossip_it_on() {
    let n = 300;
    let joiner = n;
    let mut sim = Simulation::builder(0x5_a1a1, n + 1)
        .config(config())
        .network(NetworkParams::LAN)
        .track_joins(false)
        .build();
    sim.apply(Fault::Start {
        node: 0,
        meet: None,
    });
    for i in 1..n {
        sim.apply(Fault::Start {
            node: i,
            meet: Some(0),
        });
    }
    let alive = |sim: &Simulation, i: usize| {
        sim.node(i).map_or(0, |node| {
            node.peers()
                .iter()
                .filter(|p| p.state() == PeerState::Alive)
                .count()
        })
    };
    let mut formed_at = None;
    while formed_at.is_none() && sim.now() < Instant::from_millis(60_000) {
        sim.run_for(Duration::from_millis(500));
        if (0..n).all(|i| alive(&sim, i) == n - 1) {
            formed_at = Some(sim.now());
        }
    }
    println!("formed at {formed_at:?}");
    let short: Vec<usize> = (0..n)
        .map(|i| n - 1 - alive(&sim, i))
        .filter(|&m| m > 0)
        .collect();
    assert!(
        short.is_empty(),
        "formed first; short of members: {short:?}"
    );

    let start = sim.now();
    sim.apply(Fault::Start {
        node: joiner,
        meet: Some(7),
    });
    // Each answer starts its walk through the table at a random place, and the
    // joiner asks again a tick later while answers bring it news: a few
    // answers bring all 300. (Walks from the table's head sent the same
    // first members every time, and the joiner stayed short of them until
    // rumors and periodic syncs filled the gaps.)
    let mut knew_all = None;
    while sim.now() < start + Duration::from_secs(3) {
        sim.run_for(Duration::from_millis(50));
        if knew_all.is_none() && alive(&sim, joiner) == n {
            knew_all = Some(sim.now() - start);
        }
    }
    let took = knew_all.expect("the joiner knows every member within 3 s");
    assert!(took <= Duration::from_millis(1_500), "took {took:?}");
    let stats = sim.node(joiner).unwrap().stats();
    let states = stats.received(MessageType::State).datagrams;
    // 300 members at about 55 a datagram: 6 datagrams if each were sent once.
    assert!(
        states <= 40,
        "{states} STATE datagrams to fetch 300 members"
    );
    // What it fetched is anti-entropy, not news: it does not send the 300
    // records on as rumors (that would be 300 × the retransmit limit, 12 at
    // this size: about 90 KB). It sends probes, syncs, its own record, and
    // the STATE halves of the push-pull exchanges.
    let sent: u64 = MessageType::ALL.iter().map(|&k| stats.sent(k).bytes).sum();
    println!("joiner: all {n} known after {took:?}; {states} STATE in; {sent} bytes out in 3 s");
    assert!(sent < 40_000, "{sent} bytes sent in 3 s");
}
