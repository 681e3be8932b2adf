//! Tests of the published peer views: records, refresh, torn reads, and a
//! runtime whose views follow the cluster.
use super::*;
use std::sync::atomic::AtomicBool;

fn record(id: u64, state: PeerState, pong: u64) -> PeerRecord {
    PeerRecord {
        id: NodeId(id),
        state,
        incarnation: 1,
        pong_received: Instant::from_micros(pong),
    }
}

#[test]
fn records_written_are_read_back_counted_and_forgotten() {
    let (mut w, view) = PeerView::new(Clock::new());
    assert!(view.is_empty());
    for id in 1..=200 {
        w.upsert(record(id, PeerState::Alive, id));
    }
    w.upsert(record(7, PeerState::Pfail, 70));
    w.upsert(record(8, PeerState::Fail, 80));
    assert_eq!(view.get(NodeId(7)), Some(record(7, PeerState::Pfail, 70)));
    assert_eq!(view.counts(), [0, 198, 1, 1]);
    assert_eq!(view.len(), 200);
    assert!(w.remove(NodeId(7)));
    assert!(!w.remove(NodeId(7)), "gone once");
    assert_eq!(view.get(NodeId(7)), None);
    assert_eq!(view.counts(), [0, 198, 0, 1]);
    // The freed slot is reused by the next peer; the old id stays unknown.
    w.upsert(record(1_000, PeerState::Handshake, 0));
    assert_eq!(view.get(NodeId(7)), None);
    assert_eq!(
        view.get(NodeId(1_000)).map(|r| r.state),
        Some(PeerState::Handshake)
    );
    let mut ids: Vec<u64> = view.records().iter().map(|r| r.id.0).collect();
    ids.sort_unstable();
    let mut want: Vec<u64> = (1..=200).filter(|&i| i != 7).chain([1_000]).collect();
    want.sort_unstable();
    assert_eq!(ids, want);
    w.clear();
    assert!(view.is_empty() && view.records().is_empty());
    assert_eq!(view.get(NodeId(8)), None);
    assert_eq!(view.refreshed_at(), None);
}

#[test]
fn slots_map_onto_chunks_without_gaps_or_overlaps() {
    let mut next = 0usize;
    for c in 0..CHUNKS {
        let (start, len) = chunk_span(c);
        assert_eq!(start, next, "chunk {c}");
        assert_eq!(locate(start as u32), (c, 0));
        if let Ok(last) = u32::try_from(start + len - 1) {
            assert_eq!(locate(last), (c, len - 1));
        }
        next = start + len;
    }
    assert!(next > u32::MAX as usize, "every u32 slot has a chunk");
}

#[test]
fn refresh_mirrors_the_table_and_drops_peers_whose_events_were_lost() {
    let (mut w, view) = PeerView::new(Clock::new());
    let table: Vec<PeerRecord> = (1..=50).map(|i| record(i, PeerState::Alive, i)).collect();
    w.refresh_from(table.iter().copied(), Instant::from_micros(5));
    assert_eq!(view.counts(), [0, 50, 0, 0]);
    assert_eq!(view.refreshed_at(), Some(Instant::from_micros(5)));
    let changes = view.changes();
    // Unchanged records are not rewritten.
    w.refresh_from(table.iter().copied(), Instant::from_micros(6));
    assert_eq!(view.changes(), changes);
    // The core swap-removes: peer 50 moves into 10's index; 20 goes PFAIL
    // and its PONG ages; a peer never announced by an event appears.
    let mut next = table.clone();
    next.swap_remove(9);
    next[19] = record(20, PeerState::Pfail, 2);
    next.push(record(99, PeerState::Handshake, 0));
    w.refresh_from(next.iter().copied(), Instant::from_micros(7));
    assert_eq!(view.get(NodeId(10)), None);
    assert_eq!(view.get(NodeId(20)), Some(record(20, PeerState::Pfail, 2)));
    assert_eq!(view.get(NodeId(50)), Some(record(50, PeerState::Alive, 50)));
    assert_eq!(view.counts(), [1, 48, 1, 0]);
    assert_eq!(w.len(), next.len());
    let mut seen: Vec<PeerRecord> = view.records();
    seen.sort_by_key(|r| r.id.0);
    next.sort_by_key(|r| r.id.0);
    assert_eq!(seen, next);
}

#[test]
fn pong_age_saturates() {
    let r = record(1, PeerState::Alive, 1_000);
    assert_eq!(
        r.pong_age(Instant::from_micros(3_500)),
        Duration::from_micros(2_500)
    );
    assert_eq!(r.pong_age(Instant::from_micros(10)), Duration::ZERO);
}

/// A record whose fields all derive from `k`, so a torn read (fields of
/// two stores) shows as a mismatch.
fn coherent(id: u64, k: u64) -> PeerRecord {
    PeerRecord {
        id: NodeId(id),
        state: PEER_STATES[(k % 4) as usize],
        incarnation: (k as u32).wrapping_mul(2_654_435_761),
        pong_received: Instant::from_micros(k),
    }
}

fn is_coherent(r: &PeerRecord) -> bool {
    *r == coherent(r.id.0, r.pong_received.as_micros())
}

#[test]
fn concurrent_readers_never_see_a_torn_or_misattributed_record() {
    const IDS: u64 = 64;
    // The writer goes on until the readers have read this much (or a
    // cap on writes is reached), so the two really overlap.
    const READS: u64 = 4_000_000;
    const MAX_WRITES: u64 = 200_000_000;
    let (mut w, view) = PeerView::new(Clock::new());
    for id in 1..=IDS {
        w.upsert(coherent(id, id));
    }
    let done = Arc::new(AtomicBool::new(false));
    let total_reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (view, done, total) = (view.clone(), done.clone(), total_reads.clone());
            std::thread::spawn(move || {
                let (mut reads, mut bad) = (0u64, Vec::new());
                let mut id = t;
                while !done.load(Ordering::Relaxed) {
                    id = id % IDS + 1;
                    if let Some(r) = view.get(NodeId(id)) {
                        if r.id != NodeId(id) || !is_coherent(&r) {
                            bad.push(r);
                        }
                        reads += 1;
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                    if id == 1 {
                        view.for_each(|r| {
                            if !is_coherent(r) {
                                bad.push(*r);
                            }
                        });
                    }
                }
                (reads, bad)
            })
        })
        .collect();
    // Rewrites, removals and re-insertions (slot reuse) of every id.
    let mut k = IDS;
    while total_reads.load(Ordering::Relaxed) < READS && k < MAX_WRITES {
        k += 1;
        let id = k % IDS + 1;
        if k % 7 == 0 {
            w.remove(NodeId(id));
        }
        w.upsert(coherent(id, k));
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        let (reads, bad) = r.join().expect("reader thread");
        assert!(
            bad.is_empty(),
            "torn records: {:?}",
            &bad[..bad.len().min(5)]
        );
        assert!(reads > 0);
    }
    assert_eq!(view.len(), IDS as usize);
    assert!(view.records().iter().all(is_coherent));
}

/// Polls `check` every 50 ms until it holds or `within` passes.
fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn runtime_views_follow_the_cluster_and_see_a_killed_node_fail() {
    use crate::datapath::DatapathChoice;
    use crate::runtime::{Runtime, RuntimeConfig};
    use gossip_core::Config;

    const NODES: usize = 6;
    let node_timeout = Duration::from_millis(1_500);
    let rt = Runtime::start(RuntimeConfig {
        datapath: DatapathChoice::Mmsg,
        threads: 2,
        node: Config::builder()
            .node_timeout(node_timeout)
            .build()
            .expect("valid config"),
        binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 0, NODES),
        rng_seed: 0x71e3,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let views: Vec<PeerView> = (0..NODES)
        .map(|i| rt.peer_view(i).expect("a started node has a view"))
        .collect();
    assert!(rt.peer_view(NODES).is_none());
    let ids = rt.ids().to_vec();
    // A reader that never stops reading while the I/O threads write: if
    // either side waited for the other, the cluster below would stall.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (views, ids, stop) = (views.clone(), ids.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut bad = Vec::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (i, v) in views.iter().enumerate() {
                    v.for_each(|r| {
                        if r.id == ids[i] || !ids.contains(&r.id) {
                            bad.push((i, *r));
                        }
                    });
                    for &id in &ids {
                        if let Some(r) = v.get(id) {
                            reads += 1;
                            if r.id != id {
                                bad.push((i, r));
                            }
                        }
                    }
                }
            }
            (reads, bad)
        })
    };
    let all_alive = |live: &[usize]| {
        live.iter()
            .all(|&i| views[i].counts() == [0, live.len() as u64 - 1, 0, 0])
    };
    let all: Vec<usize> = (0..NODES).collect();
    let ok = eventually(Duration::from_secs(30), || all_alive(&all));
    let counts: Vec<_> = views.iter().map(PeerView::counts).collect();
    assert!(ok, "views never showed full membership: {counts:?}");
    // The view agrees with the node's own table, record for record.
    let table = rt
        .with_node(0, |n| {
            n.peers().iter().map(PeerRecord::of).collect::<Vec<_>>()
        })
        .expect("node 0 runs");
    for r in &table {
        let seen = views[0].get(r.id).expect("every table peer is in the view");
        assert_eq!((seen.state, seen.incarnation), (r.state, r.incarnation));
        assert!(seen.pong_received <= r.pong_received);
    }

    let victim = NODES - 1;
    assert!(rt.kill(victim));
    assert!(views[victim].is_empty(), "a stopped node's view is empty");
    let survivors = &all[..victim];
    let state_of = |i: usize| views[i].get(ids[victim]).map(|r| r.state);
    // PFAIL first (node_timeout without an answer), then FAIL by quorum.
    assert!(
        eventually(node_timeout * 10, || survivors.iter().any(|&i| matches!(
            state_of(i),
            Some(PeerState::Pfail | PeerState::Fail)
        ))),
        "no view saw the victim PFAIL"
    );
    let ok = eventually(node_timeout * 10, || {
        survivors
            .iter()
            .all(|&i| state_of(i) == Some(PeerState::Fail))
    });
    let states: Vec<_> = survivors.iter().map(|&i| state_of(i)).collect();
    assert!(ok, "victim not FAIL in every view: {states:?}");
    for &i in survivors {
        assert_eq!(views[i].counts(), [0, victim as u64 - 1, 0, 1], "node {i}");
    }
    // The metrics' peers by state come from the views.
    let m = rt.metrics();
    let want = [0, (victim * (victim - 1)) as u64, 0, victim as u64];
    assert!(
        eventually(Duration::from_secs(5), || m.total().peers == want),
        "metrics peers {:?}, want {want:?}",
        m.total().peers
    );
    stop.store(true, Ordering::Relaxed);
    let (reads, bad) = reader.join().expect("reader thread");
    assert!(bad.is_empty(), "bad records: {bad:?}");
    assert!(reads > 0);
    rt.shutdown().expect("clean shutdown");
}
