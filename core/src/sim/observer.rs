//! The observer: for every tracked item at every node, the first reception
//! (time, round, sender) and the number of receptions; for every node, the
//! datagrams and bytes it sent and received by message type.
//!
//! Everything lives in flat arrays indexed by node index and is sized when an
//! item is tracked, so observing a datagram allocates nothing: 16 bytes per
//! node per item (node-major, so one receiver's counts are adjacent), and
//! 2 × [`MessageType::COUNT`] counters per node.
//!
//! A [`crate::Node`] counts the same receptions of the items it tracks itself
//! ([`crate::Node::copies`]), where it handles them; `core/tests/copies.rs`
//! checks that the two agree.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use crate::copies::ItemId;
use crate::event::{Event, Traffic};
use crate::ids::NodeId;
use crate::time::{micros, Instant};
use crate::wire::{self, Body, MessageType};

/// One node's record for one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reception {
    first_us: u64,
    count: u32,
    from: u32,
}

const NEVER: u64 = u64::MAX;
const NOBODY: u32 = u32::MAX;
const UNTRACKED: u32 = u32::MAX;

impl Reception {
    /// When the node first had the item.
    pub fn first(&self) -> Option<Instant> {
        (self.first_us != NEVER).then_some(Instant::from_micros(self.first_us))
    }

    /// Receptions counted (see [`ItemId`] for what counts).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The node whose datagram gave it the item, if a datagram did (not a
    /// local action such as its own timer or its origin).
    pub fn from(&self) -> Option<usize> {
        (self.from != NOBODY).then_some(self.from as usize)
    }
}

/// What is known of an item apart from its per-node records.
#[derive(Clone, Copy, Debug)]
struct ItemMeta {
    item: ItemId,
    origin: Option<usize>,
    injected_at: Instant,
}

/// Per-node records of every item, node-major: node `n`'s records of all
/// items are adjacent (`n * cap + k`), so that the many counts one datagram
/// updates at its receiver share a few pages and cache lines. The capacity
/// doubles (and the matrix is re-laid) when items outgrow it.
#[derive(Clone, Debug, Default)]
struct Matrix {
    nodes: usize,
    cap: usize,
    count: Vec<u32>,
    first_us: Vec<u64>,
    from: Vec<u32>,
}

impl Matrix {
    fn grow(&mut self, items: usize) {
        if items <= self.cap {
            return;
        }
        let cap = items.max(self.cap * 2).max(4);
        let relayout = |old: &[u32], fill: u32| {
            let mut v = alloc::vec![fill; self.nodes * cap];
            for n in 0..self.nodes {
                v[n * cap..n * cap + self.cap]
                    .copy_from_slice(&old[n * self.cap..(n + 1) * self.cap]);
            }
            v
        };
        let count = relayout(&self.count, 0);
        let from = relayout(&self.from, NOBODY);
        let mut first_us = alloc::vec![NEVER; self.nodes * cap];
        for n in 0..self.nodes {
            first_us[n * cap..n * cap + self.cap]
                .copy_from_slice(&self.first_us[n * self.cap..(n + 1) * self.cap]);
        }
        *self = Matrix {
            nodes: self.nodes,
            cap,
            count,
            first_us,
            from,
        };
    }

    fn at(&self, n: usize, k: usize) -> Reception {
        let i = n * self.cap + k;
        Reception {
            first_us: self.first_us[i],
            count: self.count[i],
            from: self.from[i],
        }
    }

    fn first(&mut self, n: usize, k: usize, now: Instant, from: Option<usize>) {
        let i = n * self.cap + k;
        if self.first_us[i] == NEVER {
            self.first_us[i] = now.as_micros();
            self.from[i] = from.map_or(NOBODY, |f| f as u32);
        }
    }
}

/// One tracked item: where and when it started, and each node's [`Reception`].
#[derive(Clone, Copy, Debug)]
pub struct ItemTrace<'a> {
    meta: &'a ItemMeta,
    k: usize,
    obs: &'a Observer,
}

impl ItemTrace<'_> {
    /// The item.
    pub fn item(&self) -> ItemId {
        self.meta.item
    }

    /// The node it started at, if any (the joining node; none for a FAIL).
    pub fn origin(&self) -> Option<usize> {
        self.meta.origin
    }

    /// When it started: the join's start, the crash, or the first FAIL seen.
    pub fn injected_at(&self) -> Instant {
        self.meta.injected_at
    }

    /// Node `n`'s record.
    ///
    /// # Panics
    /// If `n` is not a node index.
    pub fn at(&self, n: usize) -> Reception {
        assert!(n < self.obs.nodes, "node {n} out of range");
        self.obs.matrix.at(n, self.k)
    }

    /// Every node's record, by index.
    pub fn receptions(&self) -> impl ExactSizeIterator<Item = Reception> + '_ {
        (0..self.obs.nodes).map(|n| self.obs.matrix.at(n, self.k))
    }

    /// The round in which node `n` first had it: first reception time ÷ round
    /// length (the tick in the timers model; the round in lockstep, where this
    /// is the round's index).
    pub fn first_round(&self, n: usize) -> Option<u64> {
        self.at(n)
            .first()
            .map(|t| t.as_micros() / self.obs.round_us)
    }

    /// Nodes that have it.
    pub fn reached(&self) -> usize {
        self.receptions().filter(|r| r.first_us != NEVER).count()
    }

    /// Whether every node of `nodes` has it.
    pub fn reached_all(&self, mut nodes: impl Iterator<Item = usize>) -> bool {
        nodes.all(|n| self.at(n).first_us != NEVER)
    }

    /// Receptions at all nodes.
    pub fn receptions_total(&self) -> u64 {
        self.receptions().map(|r| u64::from(r.count)).sum()
    }

    /// The latest first reception, if any node has it.
    pub fn last_first_reception(&self) -> Option<Instant> {
        self.receptions().filter_map(|r| r.first()).max()
    }
}

/// Datagrams and bytes one node sent and received, by message type code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeTraffic {
    /// Sent, by type code (the node's own count, kept across restarts).
    pub sent: [Traffic; MessageType::COUNT],
    /// Handed to the node, by type code.
    pub received: [Traffic; MessageType::COUNT],
}

/// Measures every tracked item at every node and every datagram's type and size.
#[derive(Clone, Debug)]
pub struct Observer {
    nodes: usize,
    round_us: u64,
    items: Vec<ItemMeta>,
    matrix: Matrix,
    by_id: BTreeMap<ItemId, u32>,
    /// Item index of `Join(node i)` by node index, or UNTRACKED.
    join_slot: Vec<u32>,
    /// Item index of `Fail(node i)` by node index, or UNTRACKED.
    fail_slot: Vec<u32>,
    traffic: Vec<NodeTraffic>,
    /// FAIL items still created on first sight (false FAILs of live nodes).
    auto_fail_budget: usize,
    /// Update items tracked: data entries are decoded only when some are.
    updates: usize,
}

impl Observer {
    pub(crate) fn new(nodes: usize, round: Duration, auto_fail_budget: usize) -> Self {
        Observer {
            nodes,
            round_us: micros(round).max(1),
            items: Vec::new(),
            matrix: Matrix {
                nodes,
                ..Matrix::default()
            },
            by_id: BTreeMap::new(),
            join_slot: alloc::vec![UNTRACKED; nodes],
            fail_slot: alloc::vec![UNTRACKED; nodes],
            traffic: alloc::vec![NodeTraffic::default(); nodes],
            auto_fail_budget,
            updates: 0,
        }
    }

    /// Number of tracked items.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// Every tracked item, in the order tracking began.
    pub fn items(&self) -> impl ExactSizeIterator<Item = ItemTrace<'_>> + '_ {
        self.items
            .iter()
            .enumerate()
            .map(|(k, meta)| ItemTrace { meta, k, obs: self })
    }

    /// One item's trace.
    pub fn item(&self, item: ItemId) -> Option<ItemTrace<'_>> {
        let k = *self.by_id.get(&item)? as usize;
        Some(ItemTrace {
            meta: &self.items[k],
            k,
            obs: self,
        })
    }

    /// Node `n`'s traffic.
    ///
    /// # Panics
    /// If `n` is not a node index.
    pub fn traffic(&self, n: usize) -> &NodeTraffic {
        &self.traffic[n]
    }

    /// Every node's traffic, by index.
    pub fn all_traffic(&self) -> &[NodeTraffic] {
        &self.traffic
    }

    /// Total datagrams and bytes sent of one type, over all nodes.
    pub fn sent_total(&self, kind: MessageType) -> Traffic {
        let k = usize::from(kind.code());
        self.traffic.iter().fold(Traffic::default(), |mut t, n| {
            t.datagrams += n.sent[k].datagrams;
            t.bytes += n.sent[k].bytes;
            t
        })
    }

    /// Starts tracking `item` (from `origin`, at `at`); does nothing if tracked.
    /// `node_index` is the index of the node a join or FAIL item is about, for
    /// the per-datagram fast paths. Allocates one 16-byte record per node.
    pub(crate) fn track(
        &mut self,
        item: ItemId,
        origin: Option<usize>,
        at: Instant,
        node_index: Option<usize>,
    ) {
        if self.by_id.contains_key(&item) {
            return;
        }
        let k = self.items.len() as u32;
        self.matrix.grow(self.items.len() + 1);
        if let Some(o) = origin.filter(|&o| o < self.nodes) {
            self.matrix.first(o, k as usize, at, None);
        }
        self.items.push(ItemMeta {
            item,
            origin,
            injected_at: at,
        });
        self.by_id.insert(item, k);
        if matches!(item, ItemId::Update { .. }) {
            self.updates += 1;
        }
        match (item, node_index) {
            (ItemId::Join(_), Some(x)) if x < self.nodes => self.join_slot[x] = k,
            (ItemId::Fail(_), Some(x)) if x < self.nodes => self.fail_slot[x] = k,
            _ => {}
        }
    }

    /// Tracks `Fail(id)` of node `x` from `at`, unless tracked already or the
    /// budget of automatic FAIL items is spent.
    pub(crate) fn track_fail(&mut self, id: NodeId, x: usize, at: Instant) {
        if self.by_id.contains_key(&ItemId::Fail(id)) || self.auto_fail_budget == 0 {
            return;
        }
        self.auto_fail_budget -= 1;
        self.track(ItemId::Fail(id), None, at, Some(x));
    }

    /// Records one reception of `item` at node `n` from node `from` at `now`;
    /// with `first`, it is also the first time `n` has it (if not had before).
    /// For drivers of item kinds the simulator does not decode itself.
    pub fn record(
        &mut self,
        item: ItemId,
        n: usize,
        from: Option<usize>,
        now: Instant,
        first: bool,
    ) {
        let Some(&k) = self.by_id.get(&item) else {
            return;
        };
        self.count(k, n);
        if first {
            self.matrix.first(n, k as usize, now, from);
        }
    }

    /// Whether any item needs gossip sections decoded.
    fn decodes_bodies(&self) -> bool {
        !self.items.is_empty()
    }

    pub(crate) fn on_send(&mut self, n: usize, kind: MessageType, len: usize) {
        self.traffic[n].sent[usize::from(kind.code())].add(len);
    }

    /// A datagram handed to node `n` by node `from` (`None`: an address no
    /// simulated node owns). `index` maps an id to a node index (the
    /// simulator's ids are a bijection of indices).
    pub(crate) fn on_datagram(
        &mut self,
        n: usize,
        from: Option<usize>,
        bytes: &[u8],
        index: impl Fn(NodeId) -> Option<usize>,
    ) {
        let Ok((header, _)) = wire::decode_header(bytes) else {
            return;
        };
        self.traffic[n].received[usize::from(header.kind.code())].add(bytes.len());
        if !self.decodes_bodies() {
            return;
        }
        if let Some(from) = from {
            let k = self.join_slot[from];
            if k != UNTRACKED {
                self.count(k, n);
            }
        }
        let Ok(msg) = wire::decode(bytes) else {
            return;
        };
        if self.updates > 0 {
            let entries = match msg.body {
                Body::Push(entries) => Some(entries),
                Body::Rumor(block) => Some(block.entries()),
                _ => None,
            };
            let piggybacked = msg.rumors.map(|b| b.entries());
            for e in entries
                .iter()
                .chain(piggybacked.iter())
                .flat_map(|e| e.iter())
            {
                let item = ItemId::Update {
                    origin: e.stamp.origin,
                    key: wire::key_id(e.key),
                    version: e.stamp.version,
                };
                if let Some(&k) = self.by_id.get(&item) {
                    self.count(k, n);
                }
            }
        }
        if let Body::Section(section) = msg.body {
            // Each entry bumps a count in node n's row of the matrix, cold by
            // now: the counts of a batch of entries are requested first, so
            // that their cache misses overlap.
            let mut entries = section.into_iter();
            loop {
                let mut batch = [(UNTRACKED, UNTRACKED); 16];
                let mut m = 0;
                for (b, e) in batch.iter_mut().zip(&mut entries) {
                    m += 1;
                    let Some(x) = index(e.id) else { continue };
                    let fail = match e.flags.fail {
                        true => self.fail_slot[x],
                        false => UNTRACKED,
                    };
                    *b = (self.join_slot[x], fail);
                    if b.0 != UNTRACKED {
                        crate::peers::prefetch(
                            &self.matrix.count[n * self.matrix.cap + b.0 as usize],
                        );
                    }
                }
                if m == 0 {
                    break;
                }
                for &(join, fail) in &batch[..m] {
                    for k in [join, fail] {
                        if k != UNTRACKED {
                            self.count(k, n);
                        }
                    }
                }
            }
        } else if let Body::Fail { id, .. } = msg.body {
            if let Some(x) = index(id) {
                let k = self.fail_slot[x];
                if k != UNTRACKED {
                    self.count(k, n);
                }
            }
        }
    }

    /// An event at node `n`, caused by a datagram from `from` (or by a local
    /// action when `None`).
    pub(crate) fn on_event(
        &mut self,
        now: Instant,
        n: usize,
        from: Option<usize>,
        event: &Event,
        index: impl Fn(NodeId) -> Option<usize>,
    ) {
        let (id, slots_are_fail) = match *event {
            Event::PeerDiscovered { id, .. } => (id, false),
            Event::PeerFail { id, .. } => (id, true),
            Event::UpdateReceived {
                origin,
                key,
                version,
                from: sender,
            } => {
                // Published updates: the first reception (copies are counted
                // from the datagrams, in `on_datagram`).
                let item = ItemId::Update {
                    origin,
                    key,
                    version,
                };
                if let Some(&k) = self.by_id.get(&item) {
                    let from = index(sender).or(from);
                    self.matrix.first(n, k as usize, now, from);
                }
                return;
            }
            _ => return,
        };
        let Some(x) = index(id) else { return };
        let mut k = match slots_are_fail {
            true => self.fail_slot[x],
            false => self.join_slot[x],
        };
        if k == UNTRACKED && slots_are_fail {
            // A FAIL of a node nobody crashed (a partition, a pause, loss):
            // a false positive, measured like any other FAIL.
            self.track_fail(id, x, now);
            k = self.fail_slot[x];
        }
        if k == UNTRACKED {
            return;
        }
        self.matrix.first(n, k as usize, now, from);
    }

    fn count(&mut self, k: u32, n: usize) {
        let c = &mut self.matrix.count[n * self.matrix.cap + k as usize];
        *c = c.saturating_add(1);
    }
}
