//! Published peer views: what readers (metrics, observers, the loadgen) see
//! of one node's peer table while its I/O thread changes it, with no lock
//! taken on either side.
//!
//! Each hosted node has a [`ViewWriter`], owned by its I/O thread, and any
//! number of [`PeerView`] handles for readers on other threads. A view holds
//! one [`PeerRecord`] per peer (id, state, incarnation, last PONG) in slots
//! whose fields are atomics behind a per-slot sequence counter (a seqlock
//! written in safe code: a read that raced a store sees an odd or changed
//! counter and retries, so no record is ever torn). An id-to-slot map
//! (scc's `HashIndex`: reads take no lock) finds a peer's slot.
//!
//! The I/O thread keeps the view current at a bounded cost, never O(peers)
//! per datagram:
//! - every peer event the core reports ([`ViewWriter::apply`]) rewrites that
//!   one peer's record from the peer table: O(1);
//! - a periodic [`ViewWriter::refresh`] (the host's peer scan, every metrics
//!   publish under its budget) rewrites the records that changed since (the
//!   last PONG moves with every answered ping) and drops peers whose events
//!   were lost: O(peers), with no store for an unchanged record.
//!
//! Chosen by `node/benches/peer_view.rs` (figures and reasons in
//! `reports/peer-view/README.md`) over `Mutex<HashMap>` and `RwLock<HashMap>`
//! (a reader holding the lock for a scan stalls the I/O thread), an
//! `ArcSwap`ped copy-on-publish snapshot (O(peers) per publish: 20 to 50
//! times the writer's cost at 10,000 peers, O(peers²) in a join storm), a
//! `papaya` map of records (an allocation per update) and the same slots
//! behind a `papaya` index (joins twice as dear as with scc's): readers
//! were equally fast with every candidate, so the writer's cost decided.
//!
//! ```
//! use gossip_node::core::{Instant, NodeId, PeerState};
//! use gossip_node::timers::Clock;
//! use gossip_node::view::{PeerRecord, PeerView};
//!
//! let (mut writer, view) = PeerView::new(Clock::new());
//! let reader = view.clone();
//! std::thread::spawn(move || {
//!     writer.upsert(PeerRecord {
//!         id: NodeId(7),
//!         state: PeerState::Pfail,
//!         incarnation: 1,
//!         pong_received: Instant::ZERO,
//!     });
//! })
//! .join()
//! .unwrap();
//! assert_eq!(reader.get(NodeId(7)).map(|r| r.state), Some(PeerState::Pfail));
//! assert_eq!(reader.count(PeerState::Pfail), 1);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gossip_core::rng::mix64;
use gossip_core::{Event, Incarnation, Instant, NodeId, Peer, PeerState, PeerTable};

use crate::metrics::PEER_STATES;
use crate::timers::Clock;

/// One peer as a view shows it: a copy, consistent in itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer.
    pub id: NodeId,
    /// Its health as the node sees it.
    pub state: PeerState,
    /// Its incarnation as the node knows it.
    pub incarnation: Incarnation,
    /// When the node last had a PONG from it (or healthy gossip said it
    /// answered), on the runtime's clock; `Instant::ZERO` if never.
    pub pong_received: Instant,
}

impl PeerRecord {
    /// The record of a peer-table entry.
    pub fn of(peer: &Peer) -> Self {
        PeerRecord {
            id: peer.id(),
            state: peer.state(),
            incarnation: peer.incarnation(),
            pong_received: peer.pong_received(),
        }
    }

    /// How long before `now` the last PONG came (zero if `now` is earlier).
    pub fn pong_age(&self, now: Instant) -> Duration {
        Duration::from_micros(
            now.as_micros()
                .saturating_sub(self.pong_received.as_micros()),
        )
    }
}

/// A reader's handle on one node's view: cheap to clone, `Send + Sync`, and
/// never blocks nor is blocked by the I/O thread.
///
/// Each record read is consistent in itself; a scan is not a snapshot of the
/// whole table (a peer may change state while the scan passes it), and the
/// per-state counts may be one update apart from the records.
#[derive(Clone)]
pub struct PeerView {
    shared: Arc<Shared>,
}

impl fmt::Debug for PeerView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerView")
            .field("peers", &self.len())
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl PeerView {
    /// An empty view: the writer for the I/O thread and a reader handle.
    /// `clock` is the runtime's, so that readers can age last PONGs.
    pub fn new(clock: Clock) -> (ViewWriter, PeerView) {
        let hash = IdHash::random();
        let shared = Arc::new(Shared {
            clock,
            index: scc::HashIndex::with_hasher(hash.clone()),
            chunks: std::array::from_fn(|_| OnceLock::new()),
            high_water: AtomicU32::new(0),
            counts: Default::default(),
            refreshed_at: AtomicU64::new(NEVER),
            changes: AtomicU64::new(0),
        });
        let writer = ViewWriter {
            shared: shared.clone(),
            slots: HashMap::with_hasher(hash),
            free: Vec::new(),
            seen: Vec::new(),
            epoch: 0,
            by_table_index: Vec::new(),
            counts: [0; 4],
        };
        (writer, PeerView { shared })
    }

    /// The record of peer `id`, if the node knows it.
    pub fn get(&self, id: NodeId) -> Option<PeerRecord> {
        let s = &*self.shared;
        let slot = s.index.peek_with(&id, |_, &slot| slot)?;
        // The slot may have been freed and reused since the index was read:
        // the id in the record says whether it is still this peer's.
        s.slot(slot)?.load().filter(|r| r.id == id)
    }

    /// Calls `f` with every peer's record, in slot order.
    pub fn for_each(&self, mut f: impl FnMut(&PeerRecord)) {
        let s = &*self.shared;
        let high = s.high_water.load(Ordering::Acquire);
        for c in 0..CHUNKS {
            let (start, len) = chunk_span(c);
            if start >= high as usize {
                break;
            }
            let Some(chunk) = s.chunks[c].get() else {
                break;
            };
            let used = len.min(high as usize - start);
            for slot in &chunk[..used] {
                if let Some(r) = slot.load() {
                    f(&r);
                }
            }
        }
    }

    /// Every peer's record (a scan into a vector).
    pub fn records(&self) -> Vec<PeerRecord> {
        let mut out = Vec::with_capacity(self.len());
        self.for_each(|r| out.push(*r));
        out
    }

    /// Peers by state, in [`PEER_STATES`] order.
    pub fn counts(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.shared.counts[i].load(Ordering::Relaxed))
    }

    /// Peers in `state`.
    pub fn count(&self, state: PeerState) -> usize {
        self.shared.counts[state_index(state)].load(Ordering::Relaxed) as usize
    }

    /// Peers known.
    pub fn len(&self) -> usize {
        self.counts().iter().sum::<u64>() as usize
    }

    /// Whether the node knows no peer (or is not running).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Now, on the clock the records' times are on.
    pub fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    /// When the last full refresh finished: last PONG times are at most this
    /// old (states are current: every state change is applied as it happens).
    pub fn refreshed_at(&self) -> Option<Instant> {
        let at = self.shared.refreshed_at.load(Ordering::Relaxed);
        (at != NEVER).then(|| Instant::from_micros(at))
    }

    /// Records written so far: a reader that sees it unchanged knows nothing
    /// changed in between.
    pub fn changes(&self) -> u64 {
        self.shared.changes.load(Ordering::Acquire)
    }
}

/// The I/O thread's side of a view: the only writer. Not `Clone`.
pub struct ViewWriter {
    shared: Arc<Shared>,
    /// The writer's own id-to-slot map: it never reads the shared one.
    slots: HashMap<NodeId, u32, IdHash>,
    free: Vec<u32>,
    /// Refresh epoch in which each slot was last seen in the peer table.
    seen: Vec<u64>,
    epoch: u64,
    /// Slot of the peer at each peer-table index at the last refresh, a hint
    /// (checked against the id) that spares a hash lookup per peer.
    by_table_index: Vec<u32>,
    counts: [u64; 4],
}

impl fmt::Debug for ViewWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewWriter")
            .field("peers", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl ViewWriter {
    /// A reader handle on this view.
    pub fn view(&self) -> PeerView {
        PeerView {
            shared: self.shared.clone(),
        }
    }

    /// Writes one peer's record (adding the peer if new). O(1); allocates
    /// only when the view grows past its largest size so far.
    pub fn upsert(&mut self, record: PeerRecord) {
        self.upsert_slot(record);
    }

    /// Forgets peer `id`. Returns whether it was there.
    pub fn remove(&mut self, id: NodeId) -> bool {
        let Some(slot) = self.slots.remove(&id) else {
            return false;
        };
        let s = &*self.shared;
        // Index first: a reader that still finds the slot sees it vacant or
        // reused by another id, and answers "not known" either way.
        s.index.remove_sync(&id);
        let cell = s.slot(slot).expect("a mapped slot is allocated");
        if let Some(old) = cell.load_own() {
            count(s, &mut self.counts, old.state, -1);
        }
        cell.store(None);
        bump(&s.changes);
        self.free.push(slot);
        true
    }

    /// Applies one event of the node whose table is `peers`: the peer it
    /// names is rewritten from the table (or forgotten if it left). O(1).
    pub fn apply(&mut self, peers: &PeerTable, event: &Event) {
        let id = match *event {
            Event::PeerDiscovered { id, .. }
            | Event::PeerJoined { id }
            | Event::PeerPfail { id }
            | Event::PeerFail { id, .. }
            | Event::PeerAlive { id, .. }
            | Event::PeerRestarted { id, .. }
            | Event::HandshakeTimedOut { id }
            | Event::PeerForgotten { id } => id,
            _ => return,
        };
        match peers.by_id(id) {
            Some(p) => self.upsert(PeerRecord::of(p)),
            None => {
                self.remove(id);
            }
        }
    }

    /// Brings the whole view in line with `peers`: rewrites the records that
    /// differ (fresher last PONGs, changes whose events were dropped) and
    /// forgets peers the table no longer has. O(peers); stamps
    /// [`PeerView::refreshed_at`] with `now`.
    pub fn refresh(&mut self, peers: &PeerTable, now: Instant) {
        self.refresh_from(peers.iter().map(PeerRecord::of), now);
    }

    /// [`refresh`](ViewWriter::refresh) from the records of a whole table,
    /// in a stable order (the view remembers each position's slot).
    pub fn refresh_from(&mut self, records: impl IntoIterator<Item = PeerRecord>, now: Instant) {
        self.epoch += 1;
        let epoch = self.epoch;
        let mut n = 0;
        for record in records {
            let hint = self.by_table_index.get(n).copied().unwrap_or(u32::MAX);
            let slot = match self.shared.slot(hint) {
                Some(cell) if cell.id_own() == Some(record.id) => {
                    rewrite(&self.shared, &mut self.counts, cell, record);
                    hint
                }
                _ => self.upsert_slot(record),
            };
            match self.by_table_index.get_mut(n) {
                Some(h) => *h = slot,
                None => self.by_table_index.push(slot),
            }
            self.seen[slot as usize] = epoch;
            n += 1;
        }
        self.by_table_index.truncate(n);
        if self.slots.len() > n {
            let gone: Vec<NodeId> = self
                .slots
                .iter()
                .filter(|&(_, &slot)| self.seen[slot as usize] != epoch)
                .map(|(&id, _)| id)
                .collect();
            for id in gone {
                self.remove(id);
            }
        }
        self.shared
            .refreshed_at
            .store(now.as_micros(), Ordering::Relaxed);
    }

    /// Forgets every peer (the node stopped).
    pub fn clear(&mut self) {
        let ids: Vec<NodeId> = self.slots.keys().copied().collect();
        for id in ids {
            self.remove(id);
        }
        self.by_table_index.clear();
        self.shared.refreshed_at.store(NEVER, Ordering::Relaxed);
    }

    /// Peers in the view.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Peers by state, in [`PEER_STATES`] order.
    pub fn counts(&self) -> [u64; 4] {
        self.counts
    }

    fn upsert_slot(&mut self, record: PeerRecord) -> u32 {
        if let Some(&slot) = self.slots.get(&record.id) {
            let cell = self.shared.slot(slot).expect("a mapped slot is allocated");
            rewrite(&self.shared, &mut self.counts, cell, record);
            return slot;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => self.grow(),
        };
        let s = &*self.shared;
        // Record first, index second: a reader that finds the id in the
        // index finds its record.
        s.slot(slot)
            .expect("a free or new slot is allocated")
            .store(Some(&record));
        bump(&s.changes);
        // The writer removed any earlier entry for this id, so this inserts.
        let _ = s.index.insert_sync(record.id, slot);
        self.slots.insert(record.id, slot);
        count(s, &mut self.counts, record.state, 1);
        slot
    }

    /// A new slot at the high-water mark, allocating its chunk if needed.
    fn grow(&mut self) -> u32 {
        let s = &*self.shared;
        let slot = s.high_water.load(Ordering::Relaxed);
        let (c, _) = locate(slot);
        s.chunks[c].get_or_init(|| {
            let (_, len) = chunk_span(c);
            (0..len).map(|_| Slot::default()).collect()
        });
        // The slot is vacant until stored, so readers may scan it at once.
        s.high_water.store(slot + 1, Ordering::Release);
        self.seen.push(0);
        slot
    }
}

/// Rewrites an occupied slot with `record` unless it already holds it.
fn rewrite(shared: &Shared, counts: &mut [u64; 4], cell: &Slot, record: PeerRecord) {
    let old = cell.load_own();
    if old == Some(record) {
        // Unchanged: no store, so readers' cached lines stay valid.
        return;
    }
    if let Some(old) = old {
        count(shared, counts, old.state, -1);
    }
    count(shared, counts, record.state, 1);
    cell.store(Some(&record));
    bump(&shared.changes);
}

/// Adds one to a counter only the writer stores (no read-modify-write).
fn bump(counter: &AtomicU64) {
    let n = counter.load(Ordering::Relaxed);
    counter.store(n + 1, Ordering::Release);
}

/// Moves one peer into or out of `state`'s count, published at once.
fn count(shared: &Shared, counts: &mut [u64; 4], state: PeerState, delta: i64) {
    let i = state_index(state);
    counts[i] = counts[i].wrapping_add_signed(delta);
    shared.counts[i].store(counts[i], Ordering::Relaxed);
}

/// The `BuildHasher` of view maps: SplitMix64's finaliser over the id xored
/// with a random key, so that probe sequences cannot be chosen by whoever
/// picks node ids, at a fraction of SipHash's cost.
#[derive(Clone, Debug)]
pub struct IdHash {
    key: u64,
}

impl IdHash {
    /// A hasher with a key drawn from the OS (through `RandomState`).
    pub fn random() -> Self {
        IdHash {
            key: RandomState::new().hash_one(0x5eed_u64),
        }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.key }
    }
}

/// The hasher [`IdHash`] builds.
#[derive(Debug)]
pub struct IdHasher {
    state: u64,
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.state
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.state = mix64(self.state ^ n);
    }
}

/// `refreshed_at` before any refresh.
const NEVER: u64 = u64::MAX;
/// Chunks of slots: chunk c holds 64 << c slots, so 27 chunks cover every
/// `u32` slot and a view of n peers allocates under 2n slots.
const CHUNKS: usize = 27;
const FIRST_CHUNK_BITS: u32 = 6;
/// Present bit in a slot's `word` (state in bits 0-1, incarnation in 32-63).
const PRESENT: u64 = 1 << 2;

struct Shared {
    clock: Clock,
    index: scc::HashIndex<NodeId, u32, IdHash>,
    chunks: [OnceLock<Box<[Slot]>>; CHUNKS],
    /// Slots ever used; those below it are allocated.
    high_water: AtomicU32,
    counts: [AtomicU64; 4],
    refreshed_at: AtomicU64,
    changes: AtomicU64,
}

impl Shared {
    fn slot(&self, slot: u32) -> Option<&Slot> {
        if slot >= self.high_water.load(Ordering::Acquire) {
            return None;
        }
        let (c, offset) = locate(slot);
        self.chunks[c].get().map(|chunk| &chunk[offset])
    }
}

/// First slot and length of chunk `c`.
fn chunk_span(c: usize) -> (usize, usize) {
    let first = 1usize << FIRST_CHUNK_BITS;
    ((first << c) - first, first << c)
}

/// Chunk and offset of `slot`.
fn locate(slot: u32) -> (usize, usize) {
    let j = u64::from(slot) + (1 << FIRST_CHUNK_BITS);
    let c = (63 - j.leading_zeros() - FIRST_CHUNK_BITS) as usize;
    (c, (j - (1u64 << (c as u32 + FIRST_CHUNK_BITS))) as usize)
}

/// One record behind a sequence counter, odd while the writer stores. Every
/// field is an atomic, so a read racing a store is retried, never undefined
/// behaviour (Boehm 2012, "Can seqlocks get along with programming language
/// memory models?": relaxed data, a release fence after the odd store, an
/// acquire fence before the second read of the counter).
#[derive(Default)]
struct Slot {
    seq: AtomicU64,
    id: AtomicU64,
    /// State (bits 0-1), present (bit 2), incarnation (bits 32-63).
    word: AtomicU64,
    pong: AtomicU64,
}

impl Slot {
    /// Stores a record, or vacates the slot (writer only).
    fn store(&self, record: Option<&PeerRecord>) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        match record {
            Some(r) => {
                self.id.store(r.id.0, Ordering::Relaxed);
                self.word.store(
                    u64::from(r.incarnation) << 32 | PRESENT | state_index(r.state) as u64,
                    Ordering::Relaxed,
                );
                self.pong
                    .store(r.pong_received.as_micros(), Ordering::Relaxed);
            }
            None => self.word.store(0, Ordering::Relaxed),
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy, or `None` for a vacant slot (any thread).
    fn load(&self) -> Option<PeerRecord> {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            let id = self.id.load(Ordering::Relaxed);
            let word = self.word.load(Ordering::Relaxed);
            let pong = self.pong.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if s1 & 1 == 0 && self.seq.load(Ordering::Relaxed) == s1 {
                return decode(id, word, pong);
            }
            std::hint::spin_loop();
        }
    }

    /// The writer's read of its own slot: no store can race it.
    fn load_own(&self) -> Option<PeerRecord> {
        decode(
            self.id.load(Ordering::Relaxed),
            self.word.load(Ordering::Relaxed),
            self.pong.load(Ordering::Relaxed),
        )
    }

    fn id_own(&self) -> Option<NodeId> {
        (self.word.load(Ordering::Relaxed) & PRESENT != 0)
            .then(|| NodeId(self.id.load(Ordering::Relaxed)))
    }
}

fn decode(id: u64, word: u64, pong: u64) -> Option<PeerRecord> {
    (word & PRESENT != 0).then(|| PeerRecord {
        id: NodeId(id),
        state: PEER_STATES[(word & 3) as usize],
        incarnation: (word >> 32) as Incarnation,
        pong_received: Instant::from_micros(pong),
    })
}

/// Index of `state` in [`PEER_STATES`].
pub fn state_index(state: PeerState) -> usize {
    match state {
        PeerState::Handshake => 0,
        PeerState::Alive => 1,
        PeerState::Pfail => 2,
        PeerState::Fail => 3,
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
