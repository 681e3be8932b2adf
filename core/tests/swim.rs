//! The swim profile in the simulator: a cluster forms with every node holding
//! every other, a crash is dead at every node and nobody else is, and what a
//! node sends in the steady state is the probe traffic alone.
#![cfg(feature = "sim")]

use std::collections::HashSet;
use std::time::Duration;

use gossip_core::sim::{Capture, Fault, Latency, LinkRule, NetworkParams, NodeSet, Simulation};
use gossip_core::wire::{
    self, Body, MessageType, SwimBody, HEADER_LEN, MEMBERS_COUNT_LEN, MEMBER_LEN_V4,
    RUMOR_BLOCK_OVERHEAD, SEQ_LEN, SUSPECTER_LEN,
};
use gossip_core::{Config, Dissemination, Event, Instant, NodeId, PeerState, Profile};

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
    // The suspicion timeout's floor is 2 × log10 64 × 0.3 s = 1.08 s, its
    // ceiling 4.3 s: only confirmations from other members bring it down
    // (Lifeguard), and a dead record then spreads in a few gossip rounds.
    assert!(last < Duration::from_millis(2_500), "{last:?}");
}

/// PFAIL (suspect) and FAIL (dead) events about node `x` at other nodes.
fn about(sim: &Simulation, x: usize) -> (usize, usize) {
    let id = sim.id(x);
    let suspect = sim
        .events()
        .iter()
        .filter(|e| matches!(e.event, Event::PeerPfail { id: i } if i == id))
        .count();
    let dead = sim
        .events()
        .iter()
        .filter(|e| matches!(e.event, Event::PeerFail { id: i, .. } if i == id))
        .count();
    (suspect, dead)
}

#[test]
fn a_paused_node_refutes_its_suspicion_and_stays_alive_everywhere() {
    // Paused until a node suspects it (when a probe of it first fails: at
    // most 2 s), resumed 50 ms later, well before that suspicion's floor
    // (2 × log10 32 × 0.3 s = 0.9 s after it) plus its spread. It
    // hears it is suspected and refutes; without refutation the suspicion
    // would stand and every node would declare it dead.
    let n = 32;
    let mut sim = formed(0x5_4444, n, swim());
    let x = 9;
    sim.apply(Fault::Pause(x));
    let paused = sim.now();
    while about(&sim, x).0 == 0 && sim.now() - paused < Duration::from_secs(2) {
        sim.run_for(Duration::from_millis(10));
    }
    sim.run_for(Duration::from_millis(50));
    sim.apply(Fault::Resume(x));
    sim.run_for(Duration::from_secs(10));
    let (suspect, dead) = about(&sim, x);
    assert!(
        suspect > 0,
        "the pause went unnoticed: the test shows nothing"
    );
    assert_eq!(dead, 0, "{suspect} suspicions ended in death");
    let (refutations, _) = sim.node(x).unwrap().swim_health();
    assert!(refutations > 0);
    for i in (0..n).filter(|&i| i != x) {
        let p = sim.node(i).unwrap().peers().by_id(sim.id(x)).unwrap();
        assert_eq!(p.state(), PeerState::Alive, "node {i}");
    }
}

#[test]
fn indirect_probes_keep_a_node_behind_one_broken_link_unsuspected() {
    // Node 3 cannot reach node 7 (one direction): its direct probes of 7
    // fail, and only members probing 7 for it keep 7 unsuspected.
    let run = |indirect: u32| {
        let config = Profile::Swim
            .builder()
            .indirect_probes(indirect)
            .build()
            .unwrap();
        let mut sim = formed(0x5_5555, 16, config);
        sim.apply(Fault::AddLink(LinkRule {
            from: NodeSet::from_iter([3]),
            to: NodeSet::from_iter([7]),
            latency: None,
            loss: None,
            blocked: true,
        }));
        sim.run_for(Duration::from_secs(60));
        about(&sim, 7)
    };
    assert_eq!(run(3), (0, 0), "suspected with indirect probes");
    let (suspect, _) = run(0);
    assert!(
        suspect > 0,
        "without indirect probes node 3 suspects node 7"
    );
}

#[test]
fn anti_entropy_brings_back_what_a_partitioned_node_missed() {
    // Node 5 is cut off while four nodes join; by the heal, the joins' news
    // has been sent on its limited number of times. Only the digest exchange
    // tells node 5 of them (with it switched off, a day apart, it never
    // learns them).
    let run = |sync: Duration| {
        let config = Profile::Swim
            .builder()
            .sync_interval(sync)
            .dead_retention(Duration::from_secs(300))
            .build()
            .unwrap();
        let n = 24;
        let mut sim = Simulation::builder(0x5_6666, n + 4)
            .config(config)
            .network(NetworkParams::LAN)
            .track_joins(false)
            .record_events(true)
            .build();
        for i in 0..n {
            sim.apply(Fault::Start {
                node: i,
                meet: (i > 0).then_some(0),
            });
        }
        sim.run_until(Instant::from_millis(20_000));
        sim.apply(Fault::Partition(vec![NodeSet::from_iter([5])]));
        for j in n..n + 4 {
            sim.apply(Fault::Start {
                node: j,
                meet: Some(0),
            });
        }
        sim.run_for(Duration::from_secs(30));
        sim.apply(Fault::Heal);
        sim.run_for(Duration::from_secs(30));
        let node5 = sim.node(5).unwrap();
        (n..n + 4)
            .filter(|&j| {
                node5
                    .peers()
                    .by_id(sim.id(j))
                    .is_some_and(|p| p.state() == PeerState::Alive)
            })
            .count()
    };
    assert_eq!(run(Duration::from_secs(5)), 4);
    assert_eq!(run(Duration::from_secs(86_400)), 0, "gossip alone told it");
}

#[test]
fn local_health_awareness_keeps_a_slow_node_from_suspecting_others() {
    // Node 1 is slow ten times for 2 s: what reaches it waits 0.6 s before
    // it reads it (an overloaded host). Its probes' ACKs then come after its
    // probe timeout, and without Lifeguard's local health awareness it
    // suspects the healthy nodes it probes; with it, the missed ACKs and
    // NACKs stretch its own timeouts first.
    let run = |awareness_max: u32| {
        let mut false_suspicions = 0;
        for seed in 0..3u64 {
            let config = Profile::Swim
                .builder()
                .awareness_max(awareness_max)
                .build()
                .unwrap();
            let n = 32;
            let mut sim = formed(0x5_7777 + seed, n, config);
            let start = sim.events().len();
            for _ in 0..10 {
                sim.apply(Fault::AddLink(LinkRule {
                    from: NodeSet::range(0..n),
                    to: NodeSet::from_iter([1]),
                    latency: Some(Latency::Fixed(Duration::from_millis(600))),
                    loss: None,
                    blocked: false,
                }));
                sim.run_for(Duration::from_secs(2));
                sim.apply(Fault::ClearLinks);
                sim.run_for(Duration::from_secs(3));
            }
            sim.run_for(Duration::from_secs(5));
            let slow = sim.id(1);
            false_suspicions += sim.events()[start..]
                .iter()
                .filter(|e| matches!(e.event, Event::PeerPfail { id } if id != slow))
                .count();
        }
        false_suspicions
    };
    let (off, on) = (run(1), run(8));
    println!("false suspicions of healthy nodes: {off} without awareness, {on} with");
    assert!(
        off > 0,
        "the slowness caused nothing: the test shows nothing"
    );
    assert!(on * 10 <= off, "{on} with awareness, {off} without");
}

// ---------------------------------------------------------------------------
// User updates riding swim's datagrams (design §6).

/// The swim profile with user updates spread as `mode` says.
fn swim_with(mode: Dissemination) -> gossip_core::ConfigBuilder {
    let mut b = Profile::Swim.builder();
    b.set("dissemination", mode.name()).unwrap();
    b
}

/// `UpdateReceived` events, as (node, origin, key id).
fn updates(sim: &Simulation) -> HashSet<(usize, NodeId, u64)> {
    sim.events()
        .iter()
        .filter_map(|e| match e.event {
            Event::UpdateReceived { origin, key, .. } => Some((e.node, origin, key)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_user_update_rides_probes_and_gossip_to_every_node_in_few_receptions() {
    // Rumors only (no anti-entropy behind them): what reaches everybody
    // reached it in swim's PROBEs, ACKs and gossip STATEs, never a RUMOR.
    let n = 64;
    let config = swim_with(Dissemination::Rumor).build().unwrap();
    let mut sim = formed(0x5_8888, n, config);
    sim.set_capture(Capture::Headers);
    let mut keys = Vec::new();
    for u in 0..20u32 {
        let key = format!("k{u}");
        let origin = (u as usize * 7) % n;
        sim.command(origin, |node, now| node.publish(now, key.as_bytes(), b"v"))
            .unwrap()
            .unwrap();
        keys.push(key);
        sim.run_for(Duration::from_millis(100));
    }
    sim.run_for(Duration::from_secs(5));
    let got = updates(&sim);
    let reached = got.len();
    let pairs = keys.len() * (n - 1);
    let entries: u64 = (0..n)
        .map(|i| sim.node(i).unwrap().stats().data.entries_received)
        .sum();
    let per_node = entries as f64 / pairs as f64;
    println!("swim N={n}: {reached} of {pairs} (node, update) pairs by rumor, {per_node:.2} receptions a node an update");
    let rumors = sim
        .sent()
        .iter()
        .filter(|s| s.kind == MessageType::Rumor)
        .count();
    assert_eq!(rumors, 0, "no RUMOR datagrams under swim");
    // Each update is sent on 1 × ceil(log10 65) = 2 times by each holder.
    assert!(per_node <= 2.2, "{per_node} receptions a node an update");
    // Push with 2 sends a holder leaves e^-2 = 14 % behind (Demers),
    // 19 % here at this seed; anti-entropy (off here) takes the rest.
    assert!(reached * 3 >= pairs * 2, "{reached} of {pairs}");
}

#[test]
fn a_datagram_is_split_evenly_when_both_kinds_of_update_overfill_it() {
    // 16 nodes crash at once and node 0 suspects them all; with
    // retransmit_mult 50 each suspicion is news to send on 100 times. Then
    // node 0 publishes 300 updates of 64 bytes each on the wire, each to send
    // on twice: at 400-byte datagrams both queues hold many datagrams'
    // worth. Every PROBE, ACK, PROBE_REQ or gossip STATE it sends meanwhile
    // gives each side its half, to within one record. (With the split off,
    // membership takes 233 of 370 bytes at once.) A restart's members would
    // not do: learned from a STATE answer, each is sent on once only.
    let n = 48;
    let x = 0;
    let mut b = swim_with(Dissemination::Rumor);
    b.set("max_datagram", "400").unwrap();
    b.set("store_limits_max_key_len", "32").unwrap();
    b.set("store_limits_max_value_len", "100").unwrap();
    b.set("retransmit_mult", "50").unwrap();
    let mut sim = formed(0x5_9999, n, b.build().unwrap());
    let crashed = sim.now();
    for k in n - 16..n {
        sim.apply(Fault::Crash(k));
    }
    // Until it suspects all 16: with retransmit_mult 50 each suspicion is
    // news to send on 50 × 2 times, so the membership side overfills for
    // long after.
    let suspected = |sim: &Simulation| {
        sim.events()
            .iter()
            .filter(|e| {
                e.node == x && e.at >= crashed && matches!(e.event, Event::PeerPfail { .. })
            })
            .count()
    };
    while suspected(&sim) < 16 && sim.now() - crashed < Duration::from_secs(5) {
        sim.run_for(Duration::from_millis(10));
    }
    assert_eq!(suspected(&sim), 16, "node 0 suspected every crashed node");
    sim.set_capture(Capture::Bytes);
    for u in 0..300u32 {
        let key = format!("u{u:03}");
        sim.command(x, |node, now| node.publish(now, key.as_bytes(), &[7; 40]))
            .unwrap()
            .unwrap();
    }
    let full = sim.now();
    sim.run_for(Duration::from_secs(2));
    let mut checked = 0;
    for s in sim.sent().iter().filter(|s| s.from == x && s.at >= full) {
        let msg = wire::decode(&s.bytes).expect("our own datagram decodes");
        let (Body::Swim(body), Some(_)) = (msg.body, msg.rumors) else {
            continue;
        };
        let (fixed, members) = match body {
            SwimBody::Probe { updates, .. } | SwimBody::Ack { updates, .. } => (SEQ_LEN, updates),
            SwimBody::ProbeReq {
                target, updates, ..
            } => (SEQ_LEN + target.encoded_len(), updates),
            SwimBody::State(updates) => (0, updates),
            _ => continue,
        };
        let fixed = HEADER_LEN + fixed + MEMBERS_COUNT_LEN;
        let free = 400 - fixed;
        let m: usize = members.iter().map(|m| m.encoded_len()).sum();
        let r = s.len - fixed - m;
        assert!(
            m <= free.div_ceil(2) && m + MEMBER_LEN_V4 + SUSPECTER_LEN > free / 2,
            "{:?} (datagram {checked} since): members {m} of {free} bytes",
            s.kind
        );
        assert!(
            r + 64 + RUMOR_BLOCK_OVERHEAD > free / 2,
            "{:?}: user updates {r} of {free}",
            s.kind
        );
        checked += 1;
        if checked == 10 {
            break;
        }
    }
    assert_eq!(checked, 10, "too few datagrams carried both");
}

/// Kills every third of 48 nodes at once and, with `burst`, publishes
/// 1,000 updates from the survivors at that moment. Returns when every
/// survivor had every killed node dead, when it had every update (`None`
/// without a burst), and the (survivor, update) pairs never received.
fn mass_failure(burst: usize) -> (Duration, Option<Duration>, usize) {
    let n = 48;
    let config = swim_with(Dissemination::Both).build().unwrap();
    let mut sim = formed(0x5_aaaa, n, config);
    let killed: Vec<usize> = (0..n).filter(|i| i % 3 == 2).collect();
    let survivors: Vec<usize> = (0..n).filter(|i| i % 3 != 2).collect();
    let at = sim.now();
    for &k in &killed {
        sim.apply(Fault::Crash(k));
    }
    let mut published = Vec::new();
    for u in 0..burst {
        let origin = survivors[u * 7 % survivors.len()];
        let key = format!("burst-{u}");
        sim.command(origin, |node, now| {
            node.publish(now, key.as_bytes(), &[1; 24])
        })
        .unwrap()
        .unwrap();
        published.push((sim.id(origin), wire::key_id(key.as_bytes())));
    }
    let dead_everywhere = |sim: &Simulation| {
        survivors.iter().all(|&i| {
            let node = sim.node(i).unwrap();
            killed.iter().all(|&k| {
                node.peers()
                    .by_id(sim.id(k))
                    .is_none_or(|p| p.state() == PeerState::Fail)
            })
        })
    };
    let everything = |sim: &Simulation| {
        survivors
            .iter()
            .all(|&i| sim.node(i).unwrap().store().len() == published.len())
    };
    // Checked every 50 ms (a tick), not after every step.
    let (mut dead_at, mut done_at) = (None, None);
    while sim.now() < at + Duration::from_secs(40) && (dead_at.is_none() || done_at.is_none()) {
        sim.run_for(Duration::from_millis(50));
        if dead_at.is_none() && dead_everywhere(&sim) {
            dead_at = Some(sim.now());
        }
        if done_at.is_none() && everything(&sim) {
            done_at = Some(sim.now());
        }
    }
    let got = updates(&sim);
    let missing = survivors
        .iter()
        .flat_map(|&i| published.iter().map(move |&(o, k)| (i, o, k)))
        .filter(|&(i, o, k)| o != sim.id(i) && !got.contains(&(i, o, k)))
        .count();
    let since = |t: Instant| t.saturating_duration_since(at);
    let dead = dead_at.expect("a survivor still holds a killed node alive");
    (
        since(dead),
        done_at.filter(|_| burst > 0).map(since),
        missing,
    )
}

#[test]
fn a_burst_of_1000_updates_during_a_mass_failure_reaches_every_survivor_and_delays_no_fail() {
    // Design §6: 1,000 user updates published in one burst while a third
    // of the nodes are killed at once. Every survivor gets every update a
    // survivor published, and has every killed node dead about as soon as
    // without the burst: neither kind of update starves the other.
    let (alone, _, _) = mass_failure(0);
    let (dead, done, missing) = mass_failure(1000);
    let done = done.expect("a survivor misses an update");
    println!(
        "swim N=48, 16 killed: dead everywhere after {:.2} s ({:.2} s with no burst), 1,000 updates everywhere after {:.2} s",
        dead.as_secs_f64(),
        alone.as_secs_f64(),
        done.as_secs_f64()
    );
    assert_eq!(missing, 0, "(survivor, update) pairs never received");
    assert!(
        dead <= alone + Duration::from_secs(1),
        "{dead:?} against {alone:?}"
    );
}
