//! Copies counted by real nodes on loopback ([`Runtime::track`],
//! [`Runtime::copies`]): a join held back and started later, an update
//! published, a node killed until it is FAILed and then restarted. Every wait
//! is bounded.

use std::time::{Duration, Instant};

use gossip_core::wire::key_id;
use gossip_core::{Config, Dissemination, ItemId, NodeId, PeerState, MAX_TRACKED};
use gossip_node::datapath::DatapathChoice;
use gossip_node::runtime::{Runtime, RuntimeConfig};

const NODES: usize = 8;
/// As in loopback.rs: a crash is FAILed within seconds, two busy shared
/// cores produce no false suspicion.
const NODE_TIMEOUT: Duration = Duration::from_millis(1_500);
const WITHIN: Duration = Duration::from_secs(30);

/// Polls `check` every 100 ms until it holds or `within` passes.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether each of `nodes` sees `id` in `state`.
fn all_see(rt: &Runtime, nodes: &[usize], id: NodeId, state: PeerState) -> bool {
    nodes.iter().all(|&i| {
        rt.with_node(i, move |node| node.peers().by_id(id).map(|p| p.state())) == Some(Some(state))
    })
}

/// Whether each of `nodes` sees every other alive.
fn converged(rt: &Runtime, nodes: &[usize]) -> bool {
    nodes.iter().all(|&x| {
        let others: Vec<usize> = nodes.iter().copied().filter(|&i| i != x).collect();
        all_see(rt, &others, rt.ids()[x], PeerState::Alive)
    })
}

#[test]
fn real_nodes_count_copies_of_a_join_an_update_and_a_fail() {
    let rt = Runtime::start(RuntimeConfig {
        // mmsg works everywhere; counting sits above the datapath.
        datapath: DatapathChoice::Mmsg,
        threads: 2,
        node: Config::builder()
            .node_timeout(NODE_TIMEOUT)
            .dissemination(Dissemination::Both)
            .build()
            .expect("valid config"),
        binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 0, NODES),
        // The last node starts later: it must count what was tracked before.
        held: 1,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let ids = rt.ids().to_vec();
    let (joiner, victim, publisher) = (NODES - 1, 5, 2);
    let join = ItemId::Join(ids[joiner]);
    let fail = ItemId::Fail(ids[victim]);
    let hello = ItemId::Join(ids[0]);
    // A fresh key's first version is 1: tracked before it is published, so
    // that no copy goes uncounted.
    let update = ItemId::Update {
        origin: ids[publisher],
        key: key_id(b"colour"),
        version: 1,
    };
    for item in [join, fail, hello, update] {
        assert!(rt.track(item), "{item:?}");
    }
    assert!(rt.track(join), "tracking twice is tracking");
    let copies = rt.copies(join);
    assert_eq!(copies.len(), NODES);
    assert_eq!(copies[joiner], None, "not started");
    assert!(copies[..joiner].iter().all(Option::is_some), "{copies:?}");

    // The held node joins: every other node learns of it from its datagrams
    // and from gossip, and counts them.
    let first: Vec<usize> = (0..joiner).collect();
    assert!(
        eventually(WITHIN, || converged(&rt, &first)),
        "no convergence"
    );
    rt.start_node(joiner, &[rt.endpoints()[0]]).expect("starts");
    let all: Vec<usize> = (0..NODES).collect();
    assert!(
        eventually(WITHIN, || all_see(
            &rt,
            &first,
            ids[joiner],
            PeerState::Alive
        )),
        "the joiner is not known everywhere"
    );
    let copies = rt.copies(join);
    println!("copies of the join: {copies:?}");
    assert!(copies[..joiner].iter().all(|&c| c > Some(0)), "{copies:?}");
    assert!(copies[joiner].is_some(), "started later, it counts too");

    // An update spreads by rumors and anti-entropy: every other node
    // receives copies of it.
    let stamp = rt
        .publish(publisher, b"colour", b"blue")
        .expect("runs")
        .expect("dissemination is on");
    assert_eq!((stamp.version, stamp.origin), (1, ids[publisher]));
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != publisher).collect();
    assert!(
        eventually(WITHIN, || {
            let c = rt.copies(update);
            others.iter().all(|&i| c[i] > Some(0))
        }),
        "update copies: {:?}",
        rt.copies(update)
    );

    // A killed node is FAILed: FAIL messages and flagged gossip entries are
    // copies at every survivor; the dead node counts nothing.
    assert!(
        eventually(WITHIN, || converged(&rt, &all)),
        "no convergence"
    );
    // Long enough alive that a restart's fresh count is clearly lower.
    assert!(eventually(WITHIN, || rt.copies(hello)[victim] >= Some(30)));
    let before = rt.copies(hello)[victim].expect("the victim runs");
    assert!(rt.kill(victim));
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    assert!(
        eventually(NODE_TIMEOUT * 10, || all_see(
            &rt,
            &survivors,
            ids[victim],
            PeerState::Fail
        )),
        "the victim is not FAIL everywhere"
    );
    assert!(
        eventually(WITHIN, || {
            let c = rt.copies(fail);
            survivors.iter().all(|&i| c[i] > Some(0))
        }),
        "FAIL copies: {:?}",
        rt.copies(fail)
    );
    println!("copies of the FAIL: {:?}", rt.copies(fail));
    assert_eq!(rt.copies(fail)[victim], None, "killed");

    // Restarted, it is a new node: its counts start again from zero.
    rt.restart(victim, &[rt.endpoints()[0]]).expect("restarts");
    let after = rt.copies(hello)[victim].expect("restarted, it counts");
    println!("copies of node 0's join at node {victim}: {before} before the kill, {after} after the restart");
    assert!(after < before, "{after} after the restart, {before} before");

    // Untracked, nothing is counted any more; the capacity is a node's.
    assert!(rt.untrack(join));
    assert!(!rt.untrack(join), "once");
    assert!(rt.copies(join).iter().all(Option::is_none));
    let tracked = 3; // fail, hello, update
    for k in 0..(MAX_TRACKED - tracked) as u64 {
        assert!(rt.track(ItemId::Join(NodeId(k))), "item {k}");
    }
    assert!(!rt.track(join), "full");
    rt.shutdown().expect("clean shutdown");
}
