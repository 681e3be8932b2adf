//! Copies of tracked items: how many times a node received each of a few items
//! it was asked to watch, so that a driver can measure redundancy (receptions
//! ÷ nodes reached, DESIGN §3) from real nodes without decoding a datagram a
//! second time.
//!
//! A node counts where it already handles what it received: the sender of a
//! datagram, each gossip entry as the section is applied, a FAIL message, and
//! each data entry as the store takes or refuses it. The few datagrams it drops
//! before reading their bodies (an unknown or stale sender, a wrong slot, a
//! section from a node in handshake) are counted on that cold path, so that the
//! counts are those of the simulator's `Observer` (feature `sim`) for the same
//! node and item, exactly (`core/tests/copies.rs` proves it).
//!
//! With nothing tracked each of those places costs one test of a word that is
//! zero, never taken (a section's entries, one test of a register each); with
//! items tracked, a gossip entry costs one more multiplication and mask test,
//! and only an entry whose id passes that filter looks at the (at most
//! [`MAX_TRACKED`]) items. Nothing allocates but [`crate::Node::track`].

use alloc::vec::Vec;

use crate::ids::NodeId;
use crate::wire::{self, Body, Health, RumorBlock, SwimBody};

/// Most items one node tracks at a time: enough for a scenario's joins, crashes
/// and updates under watch, few enough that a scan of them is short.
pub const MAX_TRACKED: usize = 64;

/// Something disseminated, whose spread and copies are measured (DESIGN §3).
///
/// The simulator's `Observer` (feature `sim`) records each node's first
/// reception and its receptions of every item it tracks; a [`crate::Node`] counts its
/// own receptions ("copies") of the items it tracks ([`crate::Node::track`]). Both
/// count the same things, listed with each variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ItemId {
    /// "Node X exists". A node has it from its `PeerDiscovered` event about X;
    /// a reception is a datagram from X or a gossip entry about X.
    Join(NodeId),
    /// "Node X is FAIL". A node has it from its first `PeerFail` event about X;
    /// a reception is a FAIL message about X or a gossip entry flagging X FAIL.
    Fail(NodeId),
    /// A published update `(key, version)` from `origin` (the key as
    /// [`crate::wire::key_id`]). A node has it from its `UpdateReceived` event;
    /// a reception is each of its entries a datagram carries: in a PUSH, a
    /// RUMOR, or the rumor block of a PING or PONG.
    Update {
        /// The node that published it.
        origin: NodeId,
        /// The key.
        key: u64,
        /// The version.
        version: u64,
    },
}

/// One node's tracked items and their counts.
///
/// `joins` and `fails` are one-word filters over the node ids of the `Join`
/// and `Fail` items (a bit per id hash, see [`bit`]): zero when none is
/// tracked, so that the receive path's test is one load and one branch, and
/// when some are, most ids are turned away without a scan.
#[derive(Clone, Debug, Default)]
pub(crate) struct Copies {
    items: Vec<(ItemId, u32)>,
    joins: u64,
    fails: u64,
    /// `Update` items tracked: data entries are hashed only when some are.
    updates: u32,
}

impl Copies {
    /// Counts a datagram's sender for `Join` items (before anything else is
    /// read: even a datagram dropped next is a copy).
    #[inline]
    pub(crate) fn count_sender(&mut self, id: NodeId) {
        if self.joins != 0 {
            self.bump_id(id, false);
        }
    }

    /// Whether gossip entries are counted (some `Join` or `Fail` item is
    /// tracked): tested once a section, so that an entry costs a test of a
    /// register, not of the node's memory.
    #[inline]
    pub(crate) fn counts_entries(&self) -> bool {
        self.joins | self.fails != 0
    }

    /// Counts one gossip entry about `id` (flagging it FAIL when `fail`);
    /// for callers that found [`counts_entries`](Copies::counts_entries) true.
    pub(crate) fn count_entry(&mut self, id: NodeId, fail: bool) {
        self.bump_id(id, fail);
    }

    /// Counts a FAIL message about `id`.
    #[inline]
    pub(crate) fn count_fail(&mut self, id: NodeId) {
        if self.fails != 0 {
            self.bump_fail(id);
        }
    }

    /// Counts one data entry received (before the store takes or refuses it).
    #[inline]
    pub(crate) fn count_update(&mut self, origin: NodeId, key: &[u8], version: u64) {
        if self.updates != 0 {
            self.bump_update(origin, key, version);
        }
    }

    /// Counts what a datagram the node drops unread carries: its gossip
    /// entries, a FAIL's subject, its data entries (its sender was counted).
    #[inline]
    pub(crate) fn count_unread(&mut self, body: Body<'_>, rumors: Option<RumorBlock<'_>>) {
        if !self.is_empty() {
            self.bump_unread(body, rumors);
        }
    }

    /// Counts the entries of a rumor block the node does not take.
    #[inline]
    pub(crate) fn count_unread_rumors(&mut self, block: RumorBlock<'_>) {
        if self.updates != 0 {
            self.bump_unread(Body::Rumor(block), None);
        }
    }

    /// Counts the sender of a datagram that does not decode, if its header
    /// does (the observer reads the header alone first).
    #[cold]
    pub(crate) fn count_undecoded(&mut self, bytes: &[u8]) {
        if self.joins != 0 {
            if let Ok((h, _)) = wire::decode_header(bytes) {
                self.bump_id(h.sender, false);
            }
        }
    }
}

impl Copies {
    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn track(&mut self, item: ItemId) -> bool {
        if self.items.iter().any(|&(i, _)| i == item) {
            return true;
        }
        if self.items.len() >= MAX_TRACKED {
            return false;
        }
        self.items.push((item, 0));
        self.refilter();
        true
    }

    pub(crate) fn untrack(&mut self, item: ItemId) -> bool {
        let Some(k) = self.items.iter().position(|&(i, _)| i == item) else {
            return false;
        };
        self.items.swap_remove(k);
        self.refilter();
        true
    }

    pub(crate) fn get(&self, item: ItemId) -> Option<u32> {
        self.items
            .iter()
            .find_map(|&(i, n)| (i == item).then_some(n))
    }

    fn refilter(&mut self) {
        (self.joins, self.fails, self.updates) = (0, 0, 0);
        for &(item, _) in &self.items {
            match item {
                ItemId::Join(id) => self.joins |= bit(id),
                ItemId::Fail(id) => self.fails |= bit(id),
                ItemId::Update { .. } => self.updates += 1,
            }
        }
    }

    #[cold]
    fn bump_id(&mut self, id: NodeId, fail: bool) {
        let b = bit(id);
        if self.joins & b != 0 {
            self.bump(ItemId::Join(id));
        }
        if fail && self.fails & b != 0 {
            self.bump(ItemId::Fail(id));
        }
    }

    #[cold]
    fn bump_fail(&mut self, id: NodeId) {
        if self.fails & bit(id) != 0 {
            self.bump(ItemId::Fail(id));
        }
    }

    #[cold]
    fn bump_update(&mut self, origin: NodeId, key: &[u8], version: u64) {
        self.bump(ItemId::Update {
            origin,
            key: wire::key_id(key),
            version,
        });
    }

    #[cold]
    fn bump_unread(&mut self, body: Body<'_>, rumors: Option<RumorBlock<'_>>) {
        match body {
            Body::Section(section) => {
                if self.joins | self.fails != 0 {
                    for e in section {
                        self.bump_id(e.id, e.flags.fail);
                    }
                }
            }
            Body::Fail { id, .. } => self.bump_fail(id),
            Body::Push(entries) => {
                if self.updates != 0 {
                    for e in entries.iter() {
                        self.bump_update(e.stamp.origin, e.key, e.stamp.version);
                    }
                }
            }
            Body::Rumor(block) => self.bump_unread(Body::Push(block.entries()), None),
            Body::Swim(swim) => {
                if self.joins | self.fails != 0 {
                    let members = match swim {
                        SwimBody::Probe { updates, .. }
                        | SwimBody::Ack { updates, .. }
                        | SwimBody::ProbeReq { updates, .. } => Some(updates),
                        SwimBody::State(members) => Some(members),
                        SwimBody::Nack { .. } | SwimBody::Sync(_) => None,
                    };
                    for m in members.iter().flat_map(|m| m.iter()) {
                        self.bump_id(m.id, m.health == Health::Dead);
                    }
                }
            }
            Body::Digest(_) | Body::Pull(_) => {}
        }
        if let Some(block) = rumors {
            self.bump_unread(Body::Push(block.entries()), None);
        }
    }

    /// One more copy of `item`, if tracked.
    fn bump(&mut self, item: ItemId) {
        if let Some((_, n)) = self.items.iter_mut().find(|(i, _)| *i == item) {
            *n = n.saturating_add(1);
        }
    }
}

/// The filter bit of a node id: its top six bits after a multiplicative hash
/// (ids are random in practice, but nothing relies on it).
fn bit(id: NodeId) -> u64 {
    1 << (id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_is_bounded_and_forgets_on_untrack() {
        let mut c = Copies::default();
        for i in 0..MAX_TRACKED as u64 {
            assert!(c.track(ItemId::Join(NodeId(i))));
        }
        assert!(c.track(ItemId::Join(NodeId(0))), "already tracked");
        assert!(!c.track(ItemId::Fail(NodeId(0))), "full");
        c.bump_id(NodeId(3), true);
        assert_eq!(c.get(ItemId::Join(NodeId(3))), Some(1));
        assert_eq!(c.get(ItemId::Fail(NodeId(3))), None);
        assert!(c.untrack(ItemId::Join(NodeId(3))));
        assert!(!c.untrack(ItemId::Join(NodeId(3))));
        assert_eq!(c.get(ItemId::Join(NodeId(3))), None);
        assert!(c.track(ItemId::Fail(NodeId(3))));
        c.bump_id(NodeId(3), false);
        assert_eq!(c.get(ItemId::Fail(NodeId(3))), Some(0), "not flagged FAIL");
        c.bump_fail(NodeId(3));
        assert_eq!(c.get(ItemId::Fail(NodeId(3))), Some(1));
    }

    /// Every way a datagram can go through `handle_datagram` (read, dropped
    /// unread for each reason, broken) counts in the node what the
    /// simulator's observer counts for it.
    #[cfg(feature = "sim")]
    #[test]
    fn every_path_through_handle_datagram_counts_what_the_observer_counts() {
        use crate::epidemic::data::{EntryRef, Stamp};
        use crate::ids::{Endpoint, Incarnation};
        use crate::peers::PeerState;
        use crate::profile::{Config, Dissemination};
        use crate::sim::Observer;
        use crate::time::Instant;
        use crate::wire::{
            encode_fail, EntryFlags, GossipEntry, Header, MessageType, PushWriter, RumorWriter,
            SectionWriter,
        };
        use crate::{Identity, Node};

        // Node indices: 0 receives; 1 is a member (incarnation 2), 2 in
        // handshake, 3 unknown; 4 is what the gossip is about; 5 publishes.
        let ids: [NodeId; 6] = core::array::from_fn(|i| NodeId(0x1000 + i as u64));
        let index = |id: NodeId| ids.iter().position(|&x| x == id);
        let ep = |i: usize| {
            Endpoint::from(core::net::SocketAddr::from((
                [127, 0, 0, 1 + i as u8],
                7000,
            )))
        };
        let now = Instant::from_millis(1_000);
        let (key, value) = (&b"colour"[..], &b"blue"[..]);
        let stamp = Stamp::new(3, ids[5]);
        let items = [
            ItemId::Join(ids[4]),
            ItemId::Fail(ids[4]),
            ItemId::Join(ids[0]),
            ItemId::Join(ids[1]),
            ItemId::Join(ids[2]),
            ItemId::Join(ids[3]),
            ItemId::Update {
                origin: ids[5],
                key: wire::key_id(key),
                version: 3,
            },
        ];
        let header = |kind, from: usize, incarnation: Incarnation, dst_slot| Header {
            kind,
            flags: 0,
            src_slot: 0,
            dst_slot,
            sender: ids[from],
            incarnation,
        };
        let entry = EntryRef { key, value, stamp };
        // A section about 4 (flagged FAIL) and 0, then a rumor block (none
        // on a MEET). Node 3 goes unnamed, so that it stays unknown.
        let ping = |kind, from, incarnation, dst_slot| {
            let mut buf = [0u8; 1400];
            let mut w =
                SectionWriter::new(&mut buf, &header(kind, from, incarnation, dst_slot)).unwrap();
            for (x, fail) in [(4, true), (0, false)] {
                w.push(&GossipEntry {
                    id: ids[x],
                    incarnation: 0,
                    flags: EntryFlags { pfail: false, fail },
                    ping_age_ms: crate::wire::NO_PING,
                    pong_age_ms: 0,
                    endpoint: ep(x),
                });
            }
            let len = match kind {
                MessageType::Meet => w.finish(),
                _ => {
                    let mut r = RumorWriter::after_section(w);
                    assert!(r.push_entry(&entry));
                    r.finish().unwrap()
                }
            };
            buf[..len].to_vec()
        };
        let push = |from| {
            let mut buf = [0u8; 1400];
            let mut w = PushWriter::new(&mut buf, &header(MessageType::Push, from, 0, 0)).unwrap();
            assert!(w.push(&entry));
            let len = w.finish();
            buf[..len].to_vec()
        };
        let rumor = |from, incarnation| {
            let mut buf = [0u8; 1400];
            let mut r = RumorWriter::standalone(
                &mut buf,
                &header(MessageType::Rumor, from, incarnation, 0),
            )
            .unwrap();
            assert!(r.push_entry(&entry));
            let len = r.finish().unwrap();
            buf[..len].to_vec()
        };
        let fail = |from, incarnation| {
            let mut buf = [0u8; 1400];
            let len = encode_fail(
                &mut buf,
                &header(MessageType::Fail, from, incarnation, 0),
                ids[4],
                0,
            )
            .unwrap();
            buf[..len].to_vec()
        };
        let mut broken = ping(MessageType::Ping, 4, 0, 0);
        broken[crate::wire::HEADER_LEN + 1] += 1; // one more entry than it holds
        let datagrams: [(&str, Vec<u8>); 17] = [
            ("PING from a member", ping(MessageType::Ping, 1, 2, 0)),
            ("PONG from a member", ping(MessageType::Pong, 1, 2, 0)),
            ("PUSH from a member", push(1)),
            ("RUMOR from a member", rumor(1, 2)),
            ("FAIL from a member", fail(1, 2)),
            ("PING from a stale life", ping(MessageType::Ping, 1, 1, 0)),
            ("RUMOR from a stale life", rumor(1, 1)),
            (
                "MEET from a node in handshake",
                ping(MessageType::Meet, 2, 0, 0),
            ),
            ("PUSH from a node in handshake", push(2)),
            ("RUMOR from a node in handshake", rumor(2, 0)),
            ("FAIL from a node in handshake", fail(2, 0)),
            (
                "PING from an unknown node",
                ping(MessageType::Ping, 3, 0, 0),
            ),
            ("FAIL from an unknown node", fail(3, 0)),
            ("PUSH from an unknown node", push(3)),
            ("PING with our own id", ping(MessageType::Ping, 0, 0, 0)),
            ("PING to another slot", ping(MessageType::Ping, 1, 2, 9)),
            ("a PING that does not decode", broken),
        ];
        for dissemination in [Dissemination::Both, Dissemination::Off] {
            let config = Config::builder()
                .dissemination(dissemination)
                .build()
                .unwrap();
            let mut node = Node::new(Identity::new(ids[0]), config, 7, Instant::ZERO);
            let (m, mut cx) = node.membership();
            let member = m.discover(&mut cx, now, ids[1], ep(1), 2, false).unwrap();
            cx.set_state(member, PeerState::Alive);
            m.discover(&mut cx, now, ids[2], ep(2), 0, false).unwrap();
            let mut observer = Observer::new(ids.len(), core::time::Duration::from_millis(100), 0);
            for item in items {
                assert!(node.track(item));
                let x = match item {
                    ItemId::Join(id) | ItemId::Fail(id) => index(id),
                    ItemId::Update { .. } => None,
                };
                observer.track(item, None, now, x);
            }
            for (what, bytes) in &datagrams {
                let from = index(crate::wire::decode_header(bytes).unwrap().0.sender).unwrap();
                observer.on_datagram(0, Some(from), bytes, index);
                let _ = node.handle_datagram(now, ep(from).addr(), bytes);
                for item in items {
                    let seen = observer.item(item).unwrap().at(0).count();
                    assert_eq!(
                        node.copies(item),
                        Some(seen),
                        "{item:?} after {what}, {dissemination:?}"
                    );
                }
                // Each datagram takes the path it is named after.
                assert_eq!(node.peers().get(member).state, PeerState::Alive, "{what}");
                assert_eq!(
                    node.peers().by_id(ids[2]).map(|p| p.state),
                    Some(PeerState::Handshake),
                    "{what}"
                );
                assert!(node.peers().by_id(ids[3]).is_none(), "{what}");
            }
            let counts: Vec<_> = items.iter().map(|&i| node.copies(i).unwrap()).collect();
            assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
        }
    }

    #[test]
    fn an_id_sharing_a_filter_bit_is_not_counted() {
        let mut c = Copies::default();
        let x = NodeId(7);
        let other = (0..)
            .map(NodeId)
            .find(|&y| y != x && bit(y) == bit(x))
            .expect("64 bits: some id shares it");
        c.track(ItemId::Join(x));
        c.bump_id(other, false);
        assert_eq!(c.get(ItemId::Join(x)), Some(0));
        c.bump_id(x, false);
        assert_eq!(c.get(ItemId::Join(x)), Some(1));
    }
}
