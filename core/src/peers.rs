//! The peer table: every other node this node knows, in dense indices.
//!
//! Hot fields are fixed-size and stored inline (72 bytes a peer). The id-to-index
//! map (`index.rs`) holds a 32-bit hash tag and a `u32` index a slot (8 bytes):
//! the id is read from the peer array, so no key is stored twice. Its hash is
//! keyed by a per-node secret, so probe sequences are deterministic for a seed
//! yet unguessable to a sender who picks node ids. Failure reports live in a
//! side table, since only suspects have any.

mod batch;
mod index;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

pub(crate) use batch::{DueScan, WARM_AHEAD};
use index::IdIndex;

use crate::ids::{Endpoint, Incarnation, NodeId};
use crate::rng::mix64;
use crate::time::Instant;

/// The `ping_sent` value for "no ping in flight".
pub(crate) const NO_PING: Instant = Instant::from_micros(u64::MAX);

/// A peer's health as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Known from gossip or a MEET but not yet heard answering: not pinged by the
    /// regular rules, not gossiped about, not a voter.
    Handshake,
    /// Answering, as far as we know.
    Alive,
    /// Possibly failing: our ping went unanswered for node_timeout (Redis PFAIL).
    Pfail,
    /// Failed: a quorum agreed, or a FAIL message said so (Redis FAIL).
    Fail,
}

impl PeerState {
    /// Lower-case name, as used in metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            PeerState::Handshake => "handshake",
            PeerState::Alive => "alive",
            PeerState::Pfail => "pfail",
            PeerState::Fail => "fail",
        }
    }
}

/// One remote node: the fixed-size hot fields the cron loop scans every tick.
///
/// `repr(C)` keeps the fields in this order: what a gossip entry about the
/// peer reads (id, PONG and ping times, incarnation, reports, state) shares
/// the record's first 32 bytes, so applying an entry mostly costs one cache
/// line, not the two or three a 72-byte record can span.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Peer {
    pub(crate) id: NodeId,
    /// Last PONG from it, possibly refreshed by healthy gossip (Redis does so).
    pub(crate) pong_received: Instant,
    /// When the oldest unanswered ping went out (for a handshake peer: when the
    /// handshake began); [`NO_PING`] when no ping is in flight. A sentinel rather
    /// than an `Option` keeps the peer at 72 bytes.
    pub(crate) ping_sent: Instant,
    pub(crate) incarnation: Incarnation,
    /// Live failure reports about it (cached count of the side table's entries).
    pub(crate) reports: u16,
    pub(crate) state: PeerState,
    /// In handshake because it sent us a MEET, so its address is unproven: we
    /// answer it but send it nothing of our own (DESIGN §4, no amplification).
    pub(crate) inbound: bool,
    pub(crate) endpoint: Endpoint,
    /// We completed our handshake with it and our first PING, which completes
    /// its side, is not answered yet: resent at the MEET's pace, not after
    /// ping_interval, so that the peer does not forget us first.
    pub(crate) confirming: bool,
    /// The (wrapping) number of the last gossip section it was picked for,
    /// so that a repeat pick is caught in O(1) (Redis scans the section:
    /// O(n²)). Kept here, in what was padding, rather than in an array of
    /// its own: the pick reads this record anyway, and the array cost a
    /// cache miss a pick.
    pub(crate) picked: u16,
    /// Last datagram of any kind from it.
    pub(crate) data_received: Instant,
    /// Last time a PING actually left for it (a resend keeps `ping_sent`).
    pub(crate) ping_transmitted: Instant,
}

impl Peer {
    pub(crate) fn new(
        id: NodeId,
        endpoint: Endpoint,
        incarnation: Incarnation,
        now: Instant,
    ) -> Self {
        Peer {
            id,
            ping_sent: now,
            pong_received: Instant::ZERO,
            data_received: Instant::ZERO,
            ping_transmitted: Instant::ZERO,
            endpoint,
            incarnation,
            state: PeerState::Handshake,
            reports: 0,
            inbound: false,
            confirming: false,
            picked: 0,
        }
    }

    /// Its id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Where it listens.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }
    /// Its incarnation as we know it.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }
    /// Its health as we see it.
    pub fn state(&self) -> PeerState {
        self.state
    }
    /// When our oldest unanswered ping to it went out, if one is in flight.
    pub fn ping_sent(&self) -> Option<Instant> {
        (self.ping_sent != NO_PING).then_some(self.ping_sent)
    }

    pub(crate) fn has_ping_in_flight(&self) -> bool {
        self.ping_sent != NO_PING
    }
    /// When we last had a PONG from it (or healthy gossip said it answered).
    pub fn pong_received(&self) -> Instant {
        self.pong_received
    }
    /// When we last had any datagram from it.
    pub fn data_received(&self) -> Instant {
        self.data_received
    }
    /// Number of live failure reports about it.
    pub fn failure_reports(&self) -> usize {
        usize::from(self.reports)
    }
    /// Whether it is a full member (not in handshake).
    pub fn is_member(&self) -> bool {
        self.state != PeerState::Handshake
    }
}

/// Why a peer could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableFull;

/// Every peer a node knows, by dense index, plus the failure reports about them.
#[derive(Clone, Debug)]
pub struct PeerTable {
    peers: Vec<Peer>,
    /// Per peer, the cron's due time (beside the records, so that the cron's
    /// scan reads 8 bytes a peer, not 72).
    due: Vec<Instant>,
    index: IdIndex,
    key: u64,
    /// (suspect, reporter) -> when reported. Ordered, so counting a suspect's
    /// reports is one range scan and iteration order never depends on a seed.
    reports: BTreeMap<(NodeId, NodeId), Instant>,
    max_peers: usize,
    max_reports: usize,
}

impl PeerTable {
    /// An empty table for at most `max_peers` peers; `key` keys the id hash.
    pub fn new(max_peers: usize, max_reports: usize, key: u64) -> Self {
        PeerTable {
            peers: Vec::new(),
            due: Vec::new(),
            index: IdIndex::default(),
            key,
            reports: BTreeMap::new(),
            max_peers,
            max_reports,
        }
    }

    /// Number of peers (self not included).
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The peer at `index`.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn get(&self, index: usize) -> &Peer {
        &self.peers[index]
    }

    /// Requests peer `index`'s record into the cache, up to its `picked`
    /// stamp (what picking it for a gossip entry reads), for a read soon after.
    fn warm(&self, index: usize) {
        let p = &self.peers[index];
        prefetch(&p.id);
        prefetch(&p.picked);
    }

    /// The peer at `index`, to change; the cron looks at it at its next tick
    /// (its due time is reset).
    pub(crate) fn get_mut(&mut self, index: usize) -> &mut Peer {
        self.due[index] = Instant::ZERO;
        &mut self.peers[index]
    }

    /// The peer at `index`, for a change that can only put off what the cron
    /// does about it (a later PONG or datagram time, an address, a section
    /// stamp): its due time stands.
    pub(crate) fn postpone_mut(&mut self, index: usize) -> &mut Peer {
        &mut self.peers[index]
    }

    /// Requests peer `index`'s whole record into the cache, if it exists.
    fn prefetch_record(&self, index: usize) {
        if let Some(p) = self.peers.get(index) {
            prefetch(&p.id);
            prefetch(&p.ping_transmitted);
        }
    }

    /// Before this the cron has nothing to do for peer `index` (see
    /// `membership::CronRules::next_due`).
    pub(crate) fn due(&self, index: usize) -> Instant {
        self.due[index]
    }

    pub(crate) fn set_due(&mut self, index: usize, at: Instant) {
        self.due[index] = at;
    }

    /// Clears every peer's section stamp (the section counter wrapped).
    pub(crate) fn clear_picked(&mut self) {
        self.peers.iter_mut().for_each(|p| p.picked = 0);
    }

    /// The index of the peer with this id.
    pub fn find(&self, id: NodeId) -> Option<usize> {
        let peers = &self.peers;
        self.index
            .find(hash_id(self.key, id), |i| peers[i as usize].id == id)
            .map(|i| i as usize)
    }

    /// Requests the index slot a lookup of `id` reads first into the cache.
    fn prefetch_slot(&self, id: NodeId) {
        self.index.prefetch(hash_id(self.key, id));
    }

    /// A hint for [`find_hinted`](Self::find_hinted): the peer whose index
    /// slot is the first tagged like `id` (itself, unless two ids share 32
    /// hash bits), with its record requested into the cache. Best after
    /// [`prefetch_slot`](Self::prefetch_slot): a lookup is two dependent
    /// cache misses (index slot, then peer record), and a caller that
    /// requests each well ahead of its use overlaps the misses of many ids.
    fn hint(&self, id: NodeId) -> Option<usize> {
        let i = self.index.first(hash_id(self.key, id))? as usize;
        if let Some(p) = self.peers.get(i) {
            prefetch(&p.id);
            prefetch(&p.state);
        }
        Some(i)
    }

    /// [`find`](Self::find), trusting `hint` when it names this id's peer.
    pub(crate) fn find_hinted(&self, id: NodeId, hint: Option<usize>) -> Option<usize> {
        match hint {
            Some(i) if self.peers.get(i).is_some_and(|p| p.id == id) => Some(i),
            _ => self.find(id),
        }
    }

    /// The peer with this id.
    pub fn by_id(&self, id: NodeId) -> Option<&Peer> {
        self.find(id).map(|i| &self.peers[i])
    }

    /// All peers in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Peer> + '_ {
        self.peers.iter()
    }

    /// Adds a peer; returns its index.
    pub(crate) fn insert(&mut self, peer: Peer) -> Result<usize, TableFull> {
        if self.peers.len() >= self.max_peers {
            return Err(TableFull);
        }
        let i = self.peers.len();
        if i == self.peers.capacity() {
            // Grow by a sixteenth, not the default doubling: at 10,000 peers
            // doubling leaves up to half the array idle (40 bytes a peer with
            // the due time); a sixteenth at most 5. Inserts are joins, rare
            // enough for the extra copies.
            self.peers.reserve_exact((i / 16).max(16));
            self.due.reserve_exact((i / 16).max(16));
        }
        self.index.insert(hash_id(self.key, peer.id), i as u32);
        self.peers.push(peer);
        self.due.push(Instant::ZERO);
        Ok(i)
    }

    /// Removes the peer at `index`; the last peer takes its index.
    pub(crate) fn remove(&mut self, index: usize) -> Peer {
        let last = self.peers.len() - 1;
        let (id, key) = (self.peers[index].id, self.key);
        self.index.remove(hash_id(key, id), index as u32);
        if index != last {
            // The last peer moves into `index`: repoint its map entry.
            let moved = self.peers[last].id;
            self.index
                .repoint(hash_id(key, moved), last as u32, index as u32);
        }
        let gone = self.peers.swap_remove(index);
        self.due.swap_remove(index);
        let gone_id = gone.id;
        let mut orphaned = Vec::new();
        self.reports.retain(|&(s, r), _| {
            let keep = s != gone_id && r != gone_id;
            if !keep && s != gone_id {
                orphaned.push(s);
            }
            keep
        });
        for s in orphaned {
            if let Some(i) = self.find(s) {
                self.peers[i].reports = self.peers[i].reports.saturating_sub(1);
            }
        }
        gone
    }

    /// Records (or refreshes) `reporter`'s failure report about the peer at
    /// `index`; returns false when the report table is full (report dropped).
    pub(crate) fn add_report(&mut self, index: usize, reporter: NodeId, now: Instant) -> bool {
        let key = (self.peers[index].id, reporter);
        if let Some(at) = self.reports.get_mut(&key) {
            *at = now;
            return true;
        }
        if self.reports.len() >= self.max_reports {
            return false;
        }
        self.reports.insert(key, now);
        self.peers[index].reports = self.peers[index].reports.saturating_add(1);
        true
    }

    /// Withdraws `reporter`'s report about the peer at `index`, if any.
    pub(crate) fn remove_report(&mut self, index: usize, reporter: NodeId) {
        let key = (self.peers[index].id, reporter);
        if self.reports.remove(&key).is_some() {
            self.peers[index].reports = self.peers[index].reports.saturating_sub(1);
        }
    }

    /// Drops every report about the peer at `index`.
    pub(crate) fn clear_reports(&mut self, index: usize) {
        if self.peers[index].reports == 0 {
            return;
        }
        let id = self.peers[index].id;
        self.reports.retain(|&(s, _), _| s != id);
        self.peers[index].reports = 0;
    }

    /// Expires reports older than `validity` about the peer at `index` and returns
    /// how many remain (Redis `clusterNodeFailureReportsCount` does the same).
    pub(crate) fn live_reports(
        &mut self,
        index: usize,
        now: Instant,
        validity: core::time::Duration,
    ) -> usize {
        if self.peers[index].reports == 0 {
            return 0;
        }
        let id = self.peers[index].id;
        let lo = (id, NodeId(0));
        let hi = (id, NodeId(u64::MAX));
        let mut live = 0u16;
        let mut expired = false;
        for (_, &at) in self.reports.range(lo..=hi) {
            if now - at > validity {
                expired = true;
            } else {
                live += 1;
            }
        }
        if expired {
            self.reports
                .retain(|&(s, _), at| s != id || now - *at <= validity);
        }
        self.peers[index].reports = live;
        usize::from(live)
    }

    /// Total failure reports held.
    pub fn report_count(&self) -> usize {
        self.reports.len()
    }

    /// Bytes the table holds on the heap now (capacity, not just length): the
    /// peer array, the id map's slots, the cron's due times, and the reports.
    pub fn memory_bytes(&self) -> usize {
        let peers = self.peers.capacity() * core::mem::size_of::<Peer>();
        let index = self.index.memory_bytes() + self.due.capacity() * 8;
        // BTreeMap nodes hold up to 11 entries; count one node per 5 as a fair bound.
        let entry = core::mem::size_of::<((NodeId, NodeId), Instant)>();
        let reports = self.reports.len() * entry * 11 / 5;
        peers + index + reports
    }
}

/// Asks the CPU to bring `x`'s cache line in soon. A hint: it never faults
/// and changes no result (a no-op off x86_64). Plain loads in its place
/// (`black_box`) measured 10-15% slower on sim_speed: a load that misses
/// holds the reorder window, a prefetch retires at once.
///
/// The crate's one `unsafe`: the intrinsic is `unsafe` to call, and no safe
/// prefetch exists in `core`.
#[allow(unsafe_code)]
#[inline(always)]
pub(crate) fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only needs SSE, part of the x86_64 baseline; a
    // prefetch reads nothing the program sees and cannot fault.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            (x as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Hashes a node id with the table's secret key: deterministic for a seed, but a
/// sender who chooses ids cannot aim them at one bucket without knowing the key.
fn hash_id(key: u64, id: NodeId) -> u64 {
    mix64(id.0 ^ key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn ep(port: u16) -> Endpoint {
        Endpoint::from(core::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn removal_keeps_indices_dense_and_the_map_right() {
        let mut t = PeerTable::new(10, 100, 1);
        for i in 0..5 {
            t.insert(Peer::new(NodeId(i), ep(i as u16), 0, Instant::ZERO))
                .unwrap();
        }
        t.remove(1);
        assert_eq!(t.len(), 4);
        for (i, p) in t.iter().enumerate() {
            assert_eq!(t.find(p.id), Some(i));
        }
        assert_eq!(t.find(NodeId(1)), None);
    }

    #[test]
    fn a_full_table_refuses_new_peers() {
        let mut t = PeerTable::new(2, 10, 1);
        t.insert(Peer::new(NodeId(1), ep(1), 0, Instant::ZERO))
            .unwrap();
        t.insert(Peer::new(NodeId(2), ep(2), 0, Instant::ZERO))
            .unwrap();
        assert_eq!(
            t.insert(Peer::new(NodeId(3), ep(3), 0, Instant::ZERO)),
            Err(TableFull)
        );
    }

    #[test]
    fn failure_reports_expire_and_are_counted_once_per_reporter() {
        let mut t = PeerTable::new(10, 100, 1);
        let i = t
            .insert(Peer::new(NodeId(9), ep(9), 0, Instant::ZERO))
            .unwrap();
        let v = Duration::from_secs(2);
        assert!(t.add_report(i, NodeId(1), Instant::from_millis(0)));
        assert!(t.add_report(i, NodeId(1), Instant::from_millis(500)));
        assert!(t.add_report(i, NodeId(2), Instant::from_millis(1000)));
        assert_eq!(t.live_reports(i, Instant::from_millis(1000), v), 2);
        assert_eq!(t.live_reports(i, Instant::from_millis(2600), v), 1);
        assert_eq!(t.live_reports(i, Instant::from_millis(3100), v), 0);
        assert_eq!(t.report_count(), 0);
    }

    #[test]
    fn what_an_entry_reads_leads_the_peer_record() {
        use core::mem::offset_of;
        for end in [
            offset_of!(Peer, pong_received) + 8,
            offset_of!(Peer, ping_sent) + 8,
            offset_of!(Peer, incarnation) + 4,
            offset_of!(Peer, reports) + 2,
            offset_of!(Peer, state) + 1,
        ] {
            assert!(end <= 32, "{end}");
        }
        // `warm` loads `id` and `picked`, the ends of what picking a peer
        // for an entry reads.
        assert_eq!(offset_of!(Peer, id), 0);
        assert!(offset_of!(Peer, endpoint) < offset_of!(Peer, picked));
    }

    #[test]
    fn hinted_lookups_agree_with_plain_ones() {
        let mut t = PeerTable::new(1000, 10, 7);
        for i in 0..600u64 {
            t.insert(Peer::new(NodeId(i * 3), ep(i as u16), 0, Instant::ZERO))
                .unwrap();
        }
        for id in (0..2_000u64).map(|i| NodeId(i * 7)) {
            t.prefetch_slot(id);
            let hint = t.hint(id);
            assert_eq!(t.find_hinted(id, hint), t.find(id), "{id:?}");
            assert!(t.find(id).is_none() || hint == t.find(id));
            assert_eq!(t.find_hinted(id, Some(0)), t.find(id));
            assert_eq!(t.find_hinted(id, Some(usize::MAX)), t.find(id));
        }
    }

    #[test]
    fn hot_peer_fields_fit_in_72_bytes() {
        assert!(
            core::mem::size_of::<Peer>() <= 72,
            "{}",
            core::mem::size_of::<Peer>()
        );
    }
}
