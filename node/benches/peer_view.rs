//! Published peer views: which structure lets readers (metrics, observers,
//! the loadgen) read one node's peers while its I/O thread writes them?
//!
//! Every candidate holds the same record per peer (id, state, incarnation,
//! last PONG) and is written by one writer thread:
//!
//! - `mutex`: `Mutex<HashMap<id, record>>`, the baseline;
//! - `rwlock`: `RwLock<HashMap<id, record>>`;
//! - `arcswap`: an `ArcSwap`ped immutable snapshot (id index + record vector);
//!   the writer edits a private copy and publishes a new snapshot per batch;
//! - `papaya_map`: `papaya::HashMap<id, record>`, a record replaced per update;
//! - `papaya_slots` / `scc_slots`: an id-to-slot map (papaya, scc `HashIndex`)
//!   beside an array of slots whose fields are atomics behind a per-slot
//!   sequence counter; the writer stores in place, no publish step;
//! - `view`: `gossip_node::view::PeerView`, the structure the runtime uses.
//!
//! Cases, at 1,000 and 10,000 peers:
//! - `lookup` and `scan` (reader throughput) while the writer applies 10
//!   updates then publishes every millisecond (10,000 updates/s: a
//!   10,000-peer node refreshes a peer's last PONG every 7.5 s at the Redis
//!   profile's node_timeout/2, 1,333 updates/s, so this is 7.5 times that);
//! - `lookup_busy_writer`: lookups while the writer updates without pause;
//! - `write` (writer cost): one batch of 10 updates and its publish, while a
//!   reader thread scans the view without pause (then 20,000 batches timed
//!   one by one: p50, p99, p99.9 and max, and the reader's scans/s meanwhile,
//!   printed); `write_quiet`: no reader;
//! - `join`: n peers added to an empty view, a publish every 10 (a join
//!   storm: copy-on-publish designs pay O(n) per publish here).
//!
//! `cargo bench -p gossip-node --bench peer_view -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use gossip_core::rng::splitmix64;
use gossip_core::{Instant as CoreInstant, NodeId, PeerState};
use gossip_node::view::{IdHash, PeerRecord, PeerView, ViewWriter};

const SIZES: [usize; 2] = [1_000, 10_000];
/// Updates per writer batch (one publish each).
const BATCH: usize = 10;
/// Pause between writer batches in the paced cases.
const PACE: Duration = Duration::from_millis(1);
/// Batches timed one by one for the writer's tail latency.
const STALL_BATCHES: usize = 20_000;

/// One structure under test: a shared reader side and a writer's private side.
trait Candidate: Send + Sync + Sized + 'static {
    type Writer: Send + 'static;
    const NAME: &'static str;
    /// A view of `records`, with room for `capacity` peers.
    fn build(records: &[PeerRecord], capacity: usize) -> (Arc<Self>, Self::Writer);
    /// Writes a record, adding the peer if it is new.
    fn update(&self, w: &mut Self::Writer, record: PeerRecord);
    fn publish(&self, w: &mut Self::Writer);
    fn lookup(&self, id: NodeId) -> Option<PeerRecord>;
    /// Peers by state, as the metrics want them.
    fn scan(&self) -> [u64; 4];
}

fn count(counts: &mut [u64; 4], r: &PeerRecord) {
    counts[r.state as usize] += 1;
}

type Map<V> = HashMap<NodeId, V, IdHash>;

fn map_of<V>(records: &[PeerRecord], f: impl Fn(usize, &PeerRecord) -> V) -> Map<V> {
    let mut m = Map::with_capacity_and_hasher(records.len(), IdHash::random());
    for (i, r) in records.iter().enumerate() {
        m.insert(r.id, f(i, r));
    }
    m
}

struct MutexMap(Mutex<Map<PeerRecord>>);

impl Candidate for MutexMap {
    type Writer = ();
    const NAME: &'static str = "mutex";
    fn build(records: &[PeerRecord], _: usize) -> (Arc<Self>, ()) {
        (
            Arc::new(MutexMap(Mutex::new(map_of(records, |_, r| *r)))),
            (),
        )
    }
    fn update(&self, _: &mut (), record: PeerRecord) {
        self.0.lock().unwrap().insert(record.id, record);
    }
    fn publish(&self, _: &mut ()) {}
    fn lookup(&self, id: NodeId) -> Option<PeerRecord> {
        self.0.lock().unwrap().get(&id).copied()
    }
    fn scan(&self) -> [u64; 4] {
        let mut c = [0; 4];
        self.0
            .lock()
            .unwrap()
            .values()
            .for_each(|r| count(&mut c, r));
        c
    }
}

struct RwLockMap(RwLock<Map<PeerRecord>>);

impl Candidate for RwLockMap {
    type Writer = ();
    const NAME: &'static str = "rwlock";
    fn build(records: &[PeerRecord], _: usize) -> (Arc<Self>, ()) {
        (
            Arc::new(RwLockMap(RwLock::new(map_of(records, |_, r| *r)))),
            (),
        )
    }
    fn update(&self, _: &mut (), record: PeerRecord) {
        self.0.write().unwrap().insert(record.id, record);
    }
    fn publish(&self, _: &mut ()) {}
    fn lookup(&self, id: NodeId) -> Option<PeerRecord> {
        self.0.read().unwrap().get(&id).copied()
    }
    fn scan(&self) -> [u64; 4] {
        let mut c = [0; 4];
        self.0
            .read()
            .unwrap()
            .values()
            .for_each(|r| count(&mut c, r));
        c
    }
}

#[derive(Clone)]
struct Snap {
    /// Shared between snapshots until membership changes.
    index: Arc<Map<u32>>,
    records: Vec<PeerRecord>,
}

struct ArcSwapSnap(ArcSwap<Snap>);

impl Candidate for ArcSwapSnap {
    type Writer = (Snap, bool);
    const NAME: &'static str = "arcswap";
    fn build(records: &[PeerRecord], _: usize) -> (Arc<Self>, (Snap, bool)) {
        let snap = Snap {
            index: Arc::new(map_of(records, |i, _| i as u32)),
            records: records.to_vec(),
        };
        (
            Arc::new(ArcSwapSnap(ArcSwap::from_pointee(snap.clone()))),
            (snap, false),
        )
    }
    fn update(&self, w: &mut (Snap, bool), record: PeerRecord) {
        match w.0.index.get(&record.id) {
            Some(&i) => w.0.records[i as usize] = record,
            None => {
                // Copies the index if the published snapshot shares it.
                let i = w.0.records.len() as u32;
                Arc::make_mut(&mut w.0.index).insert(record.id, i);
                w.0.records.push(record);
            }
        }
        w.1 = true;
    }
    fn publish(&self, w: &mut (Snap, bool)) {
        if std::mem::take(&mut w.1) {
            self.0.store(Arc::new(w.0.clone()));
        }
    }
    fn lookup(&self, id: NodeId) -> Option<PeerRecord> {
        let s = self.0.load();
        s.index.get(&id).map(|&i| s.records[i as usize])
    }
    fn scan(&self) -> [u64; 4] {
        let mut c = [0; 4];
        self.0.load().records.iter().for_each(|r| count(&mut c, r));
        c
    }
}

struct PapayaMap(papaya::HashMap<NodeId, PeerRecord, IdHash>);

impl Candidate for PapayaMap {
    type Writer = ();
    const NAME: &'static str = "papaya_map";
    fn build(records: &[PeerRecord], _: usize) -> (Arc<Self>, ()) {
        let m = papaya::HashMap::with_capacity_and_hasher(records.len(), IdHash::random());
        {
            let pinned = m.pin();
            for r in records {
                pinned.insert(r.id, *r);
            }
        }
        (Arc::new(PapayaMap(m)), ())
    }
    fn update(&self, _: &mut (), record: PeerRecord) {
        self.0.pin().insert(record.id, record);
    }
    fn publish(&self, _: &mut ()) {}
    fn lookup(&self, id: NodeId) -> Option<PeerRecord> {
        self.0.pin().get(&id).copied()
    }
    fn scan(&self) -> [u64; 4] {
        let mut c = [0; 4];
        self.0.pin().values().for_each(|r| count(&mut c, r));
        c
    }
}

/// One record behind a sequence counter: odd while the writer is storing.
/// All fields are atomics, so a racing read is a stale or retried read,
/// never undefined behaviour.
#[derive(Default)]
struct SeqSlot {
    seq: AtomicU64,
    id: AtomicU64,
    word: AtomicU64,
    pong: AtomicU64,
}

impl SeqSlot {
    fn store(&self, r: &PeerRecord) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s + 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        self.id.store(r.id.0, Ordering::Relaxed);
        self.word.store(
            u64::from(r.incarnation) << 8 | r.state as u64,
            Ordering::Relaxed,
        );
        self.pong
            .store(r.pong_received.as_micros(), Ordering::Relaxed);
        self.seq.store(s + 2, Ordering::Release);
    }

    fn load(&self) -> PeerRecord {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            let id = self.id.load(Ordering::Relaxed);
            let word = self.word.load(Ordering::Relaxed);
            let pong = self.pong.load(Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::Acquire);
            if s1 & 1 == 0 && self.seq.load(Ordering::Relaxed) == s1 {
                return PeerRecord {
                    id: NodeId(id),
                    state: STATES[(word & 3) as usize],
                    incarnation: (word >> 8) as u32,
                    pong_received: CoreInstant::from_micros(pong),
                };
            }
            std::hint::spin_loop();
        }
    }
}

const STATES: [PeerState; 4] = [
    PeerState::Handshake,
    PeerState::Alive,
    PeerState::Pfail,
    PeerState::Fail,
];

fn seq_slots(records: &[PeerRecord], capacity: usize) -> Box<[SeqSlot]> {
    let slots: Box<[SeqSlot]> = (0..capacity.max(records.len()))
        .map(|_| SeqSlot::default())
        .collect();
    for (s, r) in slots.iter().zip(records) {
        s.store(r);
    }
    slots
}

struct PapayaSlots {
    index: papaya::HashMap<NodeId, u32, IdHash>,
    slots: Box<[SeqSlot]>,
}

impl Candidate for PapayaSlots {
    /// The writer's own id-to-slot map: it never reads the shared one.
    type Writer = Map<u32>;
    const NAME: &'static str = "papaya_slots";
    fn build(records: &[PeerRecord], capacity: usize) -> (Arc<Self>, Map<u32>) {
        let index = papaya::HashMap::with_capacity_and_hasher(records.len(), IdHash::random());
        {
            let pinned = index.pin();
            for (i, r) in records.iter().enumerate() {
                pinned.insert(r.id, i as u32);
            }
        }
        let slots = seq_slots(records, capacity);
        (
            Arc::new(PapayaSlots { index, slots }),
            map_of(records, |i, _| i as u32),
        )
    }
    fn update(&self, w: &mut Map<u32>, record: PeerRecord) {
        match w.get(&record.id) {
            Some(&i) => self.slots[i as usize].store(&record),
            None => {
                let i = w.len() as u32;
                self.slots[i as usize].store(&record);
                self.index.pin().insert(record.id, i);
                w.insert(record.id, i);
            }
        }
    }
    fn publish(&self, _: &mut Map<u32>) {}
    fn lookup(&self, id: NodeId) -> Option<PeerRecord> {
        let i = *self.index.pin().get(&id)?;
        Some(self.slots[i as usize].load()).filter(|r| r.id == id)
    }
    fn scan(&self) -> [u64; 4] {
        let mut c = [0; 4];
        self.slots.iter().for_each(|s| count(&mut c, &s.load()));
        c
    }
}

struct SccSlots {
    index: scc::HashIndex<NodeId, u32, IdHash>,
    slots: Box<[SeqSlot]>,
}

impl Candidate for SccSlots {
    type Writer = Map<u32>;
    const NAME: &'static str = "scc_slots";
    fn build(records: &[PeerRecord], capacity: usize) -> (Arc<Self>, Map<u32>) {
        let index = scc::HashIndex::with_capacity_and_hasher(records.len(), IdHash::random());
        for (i, r) in records.iter().enumerate() {
            let _ = index.insert_sync(r.id, i as u32);
        }
        let slots = seq_slots(records, capacity);
        (
            Arc::new(SccSlots { index, slots }),
            map_of(records, |i, _| i as u32),
        )
    }
    fn update(&self, w: &mut Map<u32>, record: PeerRecord) {
        match w.get(&record.id) {
            Some(&i) => self.slots[i as usize].store(&record),
            None => {
                let i = w.len() as u32;
                self.slots[i as usize].store(&record);
                let _ = self.index.insert_sync(record.id, i);
                w.insert(record.id, i);
            }
        }
    }
    fn publish(&self, _: &mut Map<u32>) {}
    fn lookup(&self, id: NodeId) -> Option<PeerRecord> {
        let i = self.index.peek_with(&id, |_, &i| i)?;
        Some(self.slots[i as usize].load()).filter(|r| r.id == id)
    }
    fn scan(&self) -> [u64; 4] {
        let mut c = [0; 4];
        self.slots.iter().for_each(|s| count(&mut c, &s.load()));
        c
    }
}

/// The runtime's structure, through its public API.
struct View(PeerView);

impl Candidate for View {
    type Writer = ViewWriter;
    const NAME: &'static str = "view";
    fn build(records: &[PeerRecord], _: usize) -> (Arc<Self>, ViewWriter) {
        let (mut writer, view) = PeerView::new(gossip_node::timers::Clock::new());
        for r in records {
            writer.upsert(*r);
        }
        let view = Arc::new(View(view));
        (view, writer)
    }
    fn update(&self, w: &mut ViewWriter, record: PeerRecord) {
        w.upsert(record);
    }
    fn publish(&self, _: &mut ViewWriter) {}
    fn lookup(&self, id: NodeId) -> Option<PeerRecord> {
        self.0.get(id)
    }
    fn scan(&self) -> [u64; 4] {
        let mut c = [0; 4];
        self.0.for_each(|r| count(&mut c, r));
        c
    }
}

fn records(n: usize) -> Vec<PeerRecord> {
    let mut seed = 0x5eed_0000 + n as u64;
    (0..n)
        .map(|i| PeerRecord {
            id: NodeId(splitmix64(&mut seed)),
            state: STATES[1 + i % 3],
            incarnation: 1,
            pong_received: CoreInstant::from_micros(i as u64),
        })
        .collect()
}

/// The writer's next update: a fresher PONG, now and then a state change.
fn next_update(ids: &[NodeId], k: &mut u64) -> PeerRecord {
    *k += 1;
    let i = (splitmix64(&mut k.clone()) % ids.len() as u64) as usize;
    PeerRecord {
        id: ids[i],
        state: STATES[1 + (*k % 97 == 0) as usize],
        incarnation: 1 + (*k >> 20) as u32,
        pong_received: CoreInstant::from_micros(*k),
    }
}

/// A writer thread: batches of `BATCH` updates and a publish, paced or not.
/// Returns the stop flag and the thread, which yields its updates/s.
fn spawn_writer<C: Candidate>(
    view: Arc<C>,
    mut w: C::Writer,
    ids: Arc<Vec<NodeId>>,
    pace: Option<Duration>,
) -> (Arc<AtomicBool>, thread::JoinHandle<f64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = thread::spawn(move || {
        let start = Instant::now();
        let mut k = 0u64;
        while !flag.load(Ordering::Relaxed) {
            for _ in 0..BATCH {
                view.update(&mut w, next_update(&ids, &mut k));
            }
            view.publish(&mut w);
            if let Some(p) = pace {
                thread::sleep(p);
            }
        }
        k as f64 / start.elapsed().as_secs_f64()
    });
    (stop, handle)
}

fn bench_candidate<C: Candidate>(c: &mut Criterion) {
    for n in SIZES {
        let recs = records(n);
        let ids: Arc<Vec<NodeId>> = Arc::new(recs.iter().map(|r| r.id).collect());
        for (case, pace) in [("lookup", Some(PACE)), ("lookup_busy_writer", None)] {
            let (view, w) = C::build(&recs, n);
            let (stop, writer) = spawn_writer(view.clone(), w, ids.clone(), pace);
            let mut g = c.benchmark_group(format!("peer_view/{case}"));
            g.bench_with_input(BenchmarkId::new(C::NAME, n), &n, |b, _| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 7919) % ids.len();
                    black_box(view.lookup(black_box(ids[i])))
                });
            });
            g.finish();
            stop.store(true, Ordering::Relaxed);
            let rate = writer.join().unwrap_or(0.0);
            println!("  {case} {} {n}: writer {rate:.0} updates/s", C::NAME);
        }
        {
            let (view, w) = C::build(&recs, n);
            let (stop, writer) = spawn_writer(view.clone(), w, ids.clone(), Some(PACE));
            let mut g = c.benchmark_group("peer_view/scan");
            g.bench_with_input(BenchmarkId::new(C::NAME, n), &n, |b, _| {
                b.iter(|| black_box(view.scan()));
            });
            g.finish();
            stop.store(true, Ordering::Relaxed);
            let _ = writer.join();
        }
        for (case, reader) in [("write", true), ("write_quiet", false)] {
            let (view, mut w) = C::build(&recs, n);
            let stop = Arc::new(AtomicBool::new(false));
            let scans = Arc::new(AtomicU64::new(0));
            let reader = reader.then(|| {
                let (view, stop, scans) = (view.clone(), stop.clone(), scans.clone());
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        black_box(view.scan());
                        scans.fetch_add(1, Ordering::Relaxed);
                    }
                })
            });
            let mut g = c.benchmark_group(format!("peer_view/{case}"));
            g.bench_with_input(BenchmarkId::new(C::NAME, n), &n, |b, _| {
                let mut k = 0u64;
                b.iter(|| {
                    for _ in 0..BATCH {
                        view.update(&mut w, next_update(&ids, &mut k));
                    }
                    view.publish(&mut w);
                });
            });
            g.finish();
            if reader.is_some() {
                // How long the writer can be held up, not just its mean: a
                // lock makes the I/O thread wait for a reader's whole scan.
                let mut k = 1u64 << 40;
                let (scans_before, t0) = (scans.load(Ordering::Relaxed), Instant::now());
                let mut batches: Vec<u32> = (0..STALL_BATCHES)
                    .map(|_| {
                        let t = Instant::now();
                        for _ in 0..BATCH {
                            view.update(&mut w, next_update(&ids, &mut k));
                        }
                        view.publish(&mut w);
                        t.elapsed().as_nanos() as u32
                    })
                    .collect();
                let scan_rate = (scans.load(Ordering::Relaxed) - scans_before) as f64
                    / t0.elapsed().as_secs_f64();
                batches.sort_unstable();
                let at = |q: f64| batches[((batches.len() - 1) as f64 * q) as usize] as f64 / 1e3;
                println!(
                    "  write {} {n}: batch µs p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.1}; reader {scan_rate:.0} scans/s",
                    C::NAME,
                    at(0.5),
                    at(0.99),
                    at(0.999),
                    at(1.0)
                );
            }
            stop.store(true, Ordering::Relaxed);
            if let Some(r) = reader {
                let _ = r.join();
            }
        }
        // A join storm: n peers discovered from nothing, a publish per batch.
        let mut g = c.benchmark_group("peer_view/join");
        g.sample_size(10);
        g.bench_with_input(BenchmarkId::new(C::NAME, n), &n, |b, _| {
            b.iter_batched(
                || C::build(&[], n),
                |(view, mut w)| {
                    for chunk in recs.chunks(BATCH) {
                        for r in chunk {
                            view.update(&mut w, *r);
                        }
                        view.publish(&mut w);
                    }
                    (view, w)
                },
                BatchSize::PerIteration,
            );
        });
        g.finish();
    }
}

fn peer_view(c: &mut Criterion) {
    bench_candidate::<MutexMap>(c);
    bench_candidate::<RwLockMap>(c);
    bench_candidate::<ArcSwapSnap>(c);
    bench_candidate::<PapayaMap>(c);
    bench_candidate::<PapayaSlots>(c);
    bench_candidate::<SccSlots>(c);
    bench_candidate::<View>(c);
}

criterion_group!(benches, peer_view);
criterion_main!(benches);
