//! Epidemic dissemination inside a [`Node`] (DESIGN §2.2): the versioned store,
//! rumor mongering and anti-entropy, wired to datagrams.
//!
//! - **Rumor mongering** (Demers 1987 §1.4): every `rumor_period` a node contacts
//!   `fanout` random members. Push carries its hot rumors, pull asks for the
//!   peer's, push-pull does both. The rumor block rides a PING the cron queued
//!   to that peer in the same tick when it fits, else goes as a RUMOR of its
//!   own. A feedback rule asks for acks: the receiver answers each rumor with
//!   8 bytes saying whether it already knew it, in its PONG (if the rumors came
//!   in a PING) or in a RUMOR. A pull is answered the same way (PONG or RUMOR).
//! - **Anti-entropy** (Demers 1987 §1.3): every `anti_entropy_period` one
//!   exchange with one random member: up to `anti_entropy_chunks` DIGEST
//!   datagrams from where the last exchange stopped; the peer answers with PUSH
//!   (entries newer than the digest) and/or PULL (keys the digest holds newer),
//!   and a PULL is answered with PUSH. Only newer entries travel.
//!
//! Data answers are encoded when they are decided (the digest or request they
//! answer is gone by the time `poll_transmit` runs) into pooled buffers: a
//! bounded FIFO of whole datagrams, in step with their transmit descriptors.
//! Rumor blocks are written at encode time from the hot table and pending acks.
//! Randomness comes from a generator of the dissemination's own, seeded from
//! the node's seed, so that turning dissemination on leaves membership's
//! choices unchanged; with dissemination off nothing here runs or allocates.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::copies::Copies;
use crate::epidemic::data::{EntryRef, Rejected, Stamp, Store};
use crate::epidemic::rumor::{Rumors, Trigger};
use crate::event::Event;
use crate::ids::Identity;
use crate::ids::{Endpoint, NodeId};
use crate::outbox::{Outbox, Outgoing, Skip};
use crate::peers::PeerState;
use crate::peers::PeerTable;
use crate::profile::{Config, Dissemination};
use crate::rng::{mix64, Rng};
use crate::time::{micros, Instant};
use crate::wire::{
    ack_id, key_id, Ack, Body, Digest, DigestWriter, Header, Keys, MessageType, PullWriter,
    PushWriter, RumorBlock, RumorWriter, SectionWriter, BARE_LEN, ENTRY_LEN_V6, ENTRY_OVERHEAD,
    RUMOR_BLOCK_OVERHEAD,
};

/// Outgoing rumor bit: carry this node's hot rumors.
pub(crate) const OUT_HOT: u8 = 1;
/// Outgoing rumor bit: ask the receiver for its hot rumors.
pub(crate) const OUT_PULL: u8 = 2;

/// Why `publish` refused a write. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// `Config::dissemination` is off: the write would never spread.
    Disabled,
    /// A store cap refused it.
    Rejected(Rejected),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Disabled => f.write_str("dissemination is off"),
            PublishError::Rejected(r) => write!(f, "refused by the store: {r}"),
        }
    }
}

impl core::error::Error for PublishError {}

/// One node's dissemination state.
#[derive(Debug)]
pub(crate) struct Epidemic {
    store: Store,
    rumors: Rumors,
    rng: Rng,
    next_rumor: Instant,
    next_exchange: Instant,
    /// Where the next anti-entropy digest starts (empty: the first key).
    cursor: Vec<u8>,
    /// Where the next rumor block starts in the hot table.
    rotate: usize,
    /// Acks waiting for a message to their peer.
    acks: Vec<(Endpoint, Ack)>,
    /// Data datagrams encoded and waiting, in the order of their descriptors.
    datagrams: VecDeque<(Vec<u8>, usize)>,
    /// Spare datagram buffers.
    pool: Vec<Vec<u8>>,
    /// Scratch: this round's targets; ids of the rumors in the block written.
    targets: Vec<usize>,
    sent_ids: Vec<u64>,
}

impl Epidemic {
    pub(crate) fn new(config: &Config, seed: u64, now: Instant) -> Self {
        let mut rng = Rng::new(mix64(seed ^ 0xd155_e3a7_e000_0001));
        // A random phase, so that nodes started together do not all open
        // their exchanges in the same tick.
        let period = micros(config.anti_entropy_period()).max(1);
        let phase = rng.below(period);
        Epidemic {
            store: Store::new(config.store_limits()),
            rumors: Rumors::new(config.rumor()),
            rng,
            next_rumor: now,
            next_exchange: Instant::from_micros(now.as_micros() + phase),
            cursor: Vec::new(),
            rotate: 0,
            acks: Vec::new(),
            datagrams: VecDeque::new(),
            pool: Vec::new(),
            targets: Vec::new(),
            sent_ids: Vec::new(),
        }
    }

    /// Copies the oldest waiting data datagram into `buf`; `None` (the datagram
    /// dropped) when `buf` is too short.
    pub(crate) fn take_datagram(&mut self, buf: &mut [u8]) -> Option<usize> {
        let (data, len) = self.datagrams.pop_front()?;
        let out = buf.get_mut(..len).map(|b| b.copy_from_slice(&data[..len]));
        self.pool.push(data);
        out.map(|()| len)
    }
}

/// What the dissemination machine reads and writes of its node for one call:
/// the parameters, who we are, the peer table (read only: targets are drawn
/// from it, senders looked up), the PFAIL count (a section's tail), the
/// outbox and the copy counters.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) me: &'a Identity,
    pub(crate) peers: &'a PeerTable,
    pub(crate) pfail: usize,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) copies: &'a mut Copies,
}

impl Cx<'_> {
    fn header(&self, kind: MessageType, to: Endpoint) -> Header {
        crate::outbox::header(self.me, kind, to)
    }
}

impl Epidemic {
    /// `Node::publish`: writes `value` under `key` and starts spreading it.
    pub(crate) fn publish(
        &mut self,
        cx: &mut Cx<'_>,
        key: &[u8],
        value: &[u8],
    ) -> Result<Stamp, PublishError> {
        let mode = cx.config.dissemination();
        if mode == Dissemination::Off {
            return Err(PublishError::Disabled);
        }
        let stamp = self
            .store
            .publish(cx.me.id, key, value)
            .map_err(PublishError::Rejected)?;
        if mode.rumors() {
            self.rumors.start(key, stamp);
        }
        cx.outbox.stats.data.published += 1;
        Ok(stamp)
    }

    /// The store.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The hot rumors.
    pub(crate) fn rumors(&self) -> &Rumors {
        &self.rumors
    }

    /// The cron's dissemination part: a rumor round and an anti-entropy
    /// exchange when their periods have come. Messages the cron queued from
    /// `mark` on are this tick's, and may carry rumors.
    pub(crate) fn round(&mut self, cx: &mut Cx<'_>, now: Instant, mark: usize) {
        let mode = cx.config.dissemination();
        if mode == Dissemination::Off {
            return;
        }
        if mode.rumors() && now >= self.next_rumor {
            self.next_rumor = next(now, self.next_rumor, cx.config.rumor_period());
            self.rumor_round(cx, mark);
        }
        if mode.anti_entropy() && now >= self.next_exchange {
            let period = cx.config.anti_entropy_period();
            self.next_exchange = next(now, self.next_exchange, period);
            self.exchange(cx);
        }
    }

    /// Demers 1987, rumor mongering: each round, `fanout` random members.
    fn rumor_round(&mut self, cx: &mut Cx<'_>, mark: usize) {
        let cfg = cx.config.rumor();
        let push = cfg.direction.pushes() && !self.rumors.is_idle();
        let pull = cfg.direction.pulls();
        if push || pull {
            let flags = if push { OUT_HOT } else { 0 } | if pull { OUT_PULL } else { 0 };
            self.pick_targets(cx, cfg.fanout as usize);
            let fits = !push || self.hot_block_fits_a_ping(cx);
            for t in 0..self.targets.len() {
                let to = cx.peers.get(self.targets[t]).endpoint;
                let ping = cx
                    .outbox
                    .transmits
                    .range_mut(mark.min(cx.outbox.transmits.len())..)
                    .find(|o| o.kind == MessageType::Ping && o.to == to && !o.bare && o.rumor == 0);
                match ping {
                    Some(o) if fits => o.rumor = flags,
                    _ => {
                        cx.outbox.queue_outgoing(Outgoing {
                            rumor: flags,
                            ..Outgoing::new(to, MessageType::Rumor, false)
                        });
                    }
                }
            }
        }
        // Demers: a rumor hot for too long stops anyway (bounds feedback that
        // never comes back).
        self.rumors.end_round();
    }

    /// Up to `want` distinct random members (not FAIL, not in handshake) into
    /// `epidemic.targets`, by rejection sampling with a bounded number of draws.
    fn pick_targets(&mut self, cx: &mut Cx<'_>, want: usize) {
        let e = &mut *self;
        e.targets.clear();
        let n = cx.peers.len();
        if n == 0 {
            return;
        }
        for _ in 0..3 * want + 3 {
            if e.targets.len() == want {
                break;
            }
            let i = e.rng.index(n);
            let p = cx.peers.get(i);
            if p.is_member() && p.state != PeerState::Fail && !e.targets.contains(&i) {
                e.targets.push(i);
            }
        }
    }

    /// Whether every hot rumor fits after the largest section this node sends.
    fn hot_block_fits_a_ping(&self, cx: &Cx<'_>) -> bool {
        let e = &*self;
        let hot: usize = e
            .rumors
            .hot()
            .iter()
            .filter_map(|h| {
                e.store
                    .get(&h.key)
                    .map(|(v, _)| ENTRY_OVERHEAD + h.key.len() + v.len())
            })
            .sum();
        let wanted = cx.config.section().wanted(cx.peers.len() + 1) + cx.pfail;
        let section = (BARE_LEN + wanted * ENTRY_LEN_V6).min(cx.config.max_datagram());
        section + RUMOR_BLOCK_OVERHEAD + hot <= cx.config.max_datagram()
    }

    /// Demers 1987, anti-entropy: one exchange with one random member, opened
    /// with digests of the next key ranges of the store.
    fn exchange(&mut self, cx: &mut Cx<'_>) {
        self.pick_targets(cx, 1);
        let Some(&i) = self.targets.first() else {
            return;
        };
        let to = cx.peers.get(i).endpoint;
        let header = cx.header(MessageType::Digest, to);
        let direction = cx.config.anti_entropy_direction();
        cx.outbox.stats.data.exchanges += 1;
        let mut made = 0;
        let size = cx.config.max_datagram();
        let cap = cx.config.data_queue();
        let e = &mut *self;
        for _ in 0..cx.config.anti_entropy_chunks() {
            if e.datagrams.len() >= cap {
                cx.outbox.stats.data.data_queue_full += 1;
                break;
            }
            let mut buf = e.pool.pop().unwrap_or_else(|| vec![0; size]);
            buf.resize(size, 0);
            let Some((len, end)) = write_digest(&e.store, &mut buf, &header, direction, &e.cursor)
            else {
                e.pool.push(buf);
                break;
            };
            e.datagrams.push_back((buf, len));
            made += 1;
            match end {
                Some(end) => {
                    // `end` borrows the store; the cursor is a buffer of its own.
                    e.cursor.clear();
                    e.cursor.extend_from_slice(end);
                }
                None => {
                    e.cursor.clear();
                    break;
                }
            }
        }
        cx.outbox.stats.data.digests_sent += made as u64;
        self.queue_data(cx, to, MessageType::Digest, made);
    }

    /// Queues `made` data datagrams of `kind` just encoded for `to`; those the
    /// transmit queue refuses are dropped from the datagram FIFO's tail.
    fn queue_data(&mut self, cx: &mut Cx<'_>, to: Endpoint, kind: MessageType, made: usize) {
        for k in 0..made {
            if !cx.outbox.queue_outgoing(Outgoing::new(to, kind, false)) {
                for _ in k..made {
                    if let Some((buf, _)) = self.datagrams.pop_back() {
                        self.pool.push(buf);
                    }
                }
                return;
            }
        }
    }

    /// A data message from member `i` at `from`.
    pub(crate) fn handle_data(
        &mut self,
        cx: &mut Cx<'_>,
        i: usize,
        from: Endpoint,
        body: Body<'_>,
    ) {
        if !cx.peers.get(i).is_member() {
            cx.outbox.stats.data.from_non_member += 1;
            cx.copies.count_unread(body, None);
            return;
        }
        if cx.config.dissemination() == Dissemination::Off {
            cx.outbox.stats.data.disabled += 1;
            cx.copies.count_unread(body, None);
            return;
        }
        match body {
            Body::Digest(d) => self.answer_digest(cx, from, d),
            Body::Push(entries) => {
                let sender = cx.peers.get(i).id;
                for e in entries.iter() {
                    self.take_entry(cx, &e, sender, false);
                }
            }
            Body::Pull(keys) => self.answer_pull(cx, from, keys),
            Body::Rumor(block) => {
                let rumor = self.handle_rumor_block(cx, i, from, block);
                self.queue_rumor_reply(cx, from, rumor);
            }
            Body::Section(_) | Body::Fail { .. } => {}
        }
    }

    /// Answers a DIGEST: PUSH what we hold newer (pull), PULL what it holds
    /// newer (push).
    fn answer_digest(&mut self, cx: &mut Cx<'_>, from: Endpoint, d: Digest<'_>) {
        let direction = d.direction();
        if direction.pulls() {
            let header = cx.header(MessageType::Push, from);
            let mut items = d.iter().peekable();
            let newer = self.store.range(d.start(), d.end()).filter(|e| {
                // Merge-join: skip the digest's keys below this one.
                while items.next_if(|i| i.key < e.key).is_some() {}
                match items.peek() {
                    Some(i) if i.key == e.key => e.stamp > i.stamp,
                    _ => true,
                }
            });
            let (made, sent, full) = pack_push(
                &mut self.datagrams,
                &mut self.pool,
                cx.config.max_datagram(),
                cx.config.data_queue(),
                &header,
                newer,
            );
            cx.outbox.stats.data.entries_sent += sent;
            cx.outbox.stats.data.data_queue_full += full;
            self.queue_data(cx, from, MessageType::Push, made);
        }
        if direction.pushes() {
            let header = cx.header(MessageType::Pull, from);
            let store = &self.store;
            let wanted = d
                .iter()
                .filter(|i| store.stamp(i.key).is_none_or(|mine| i.stamp > mine))
                .map(|i| i.key);
            let (made, keys, full) = pack_pull(
                &mut self.datagrams,
                &mut self.pool,
                cx.config.max_datagram(),
                cx.config.data_queue(),
                &header,
                wanted,
            );
            cx.outbox.stats.data.keys_requested += keys;
            cx.outbox.stats.data.data_queue_full += full;
            self.queue_data(cx, from, MessageType::Pull, made);
        }
    }

    /// Answers a PULL with PUSH of the keys we hold.
    fn answer_pull(&mut self, cx: &mut Cx<'_>, from: Endpoint, keys: Keys<'_>) {
        let header = cx.header(MessageType::Push, from);
        let store = &self.store;
        let found = keys.iter().filter_map(|k| {
            store.get(k).map(|(value, stamp)| EntryRef {
                key: k,
                value,
                stamp,
            })
        });
        let (made, sent, full) = pack_push(
            &mut self.datagrams,
            &mut self.pool,
            cx.config.max_datagram(),
            cx.config.data_queue(),
            &header,
            found,
        );
        cx.outbox.stats.data.entries_sent += sent;
        cx.outbox.stats.data.data_queue_full += full;
        self.queue_data(cx, from, MessageType::Push, made);
    }

    /// Merges one received entry; returns whether this node already knew it
    /// (held it or something newer, or could not store it).
    fn take_entry(
        &mut self,
        cx: &mut Cx<'_>,
        e: &EntryRef<'_>,
        from: NodeId,
        make_hot: bool,
    ) -> bool {
        cx.copies
            .count_update(e.stamp.origin, e.key, e.stamp.version);
        cx.outbox.stats.data.entries_received += 1;
        match self.store.merge(e.key, e.value, e.stamp) {
            Ok(m) if m.is_news() => {
                cx.outbox.stats.data.updates_received += 1;
                if make_hot {
                    self.rumors.start(e.key, e.stamp);
                }
                cx.outbox.emit(Event::UpdateReceived {
                    origin: e.stamp.origin,
                    key: key_id(e.key),
                    version: e.stamp.version,
                    from,
                });
                false
            }
            Ok(_) => {
                cx.outbox.stats.data.entries_known += 1;
                true
            }
            Err(_) => {
                cx.outbox.stats.data.entries_rejected += 1;
                true
            }
        }
    }

    /// A rumor block from peer `i` at `from` (in a PING, PONG or RUMOR): applies
    /// its acks, takes its rumors (acking them if asked). Returns the `OUT_*`
    /// bits of the answer (hot rumors, for a pull).
    pub(crate) fn handle_rumor_block(
        &mut self,
        cx: &mut Cx<'_>,
        i: usize,
        from: Endpoint,
        block: RumorBlock<'_>,
    ) -> u8 {
        if !cx.peers.get(i).is_member() {
            cx.outbox.stats.data.from_non_member += 1;
            cx.copies.count_unread_rumors(block);
            return 0;
        }
        if !cx.config.dissemination().rumors() {
            cx.outbox.stats.data.disabled += 1;
            cx.copies.count_unread_rumors(block);
            return 0;
        }
        let cfg = cx.config.rumor();
        let e = &mut *self;
        for ack in block.acks() {
            cx.outbox.stats.data.acks_received += 1;
            if cfg.stop.trigger == Trigger::Feedback {
                e.rumors.record_ack(ack.id, ack.knew, &mut e.rng);
            }
        }
        let sender = cx.peers.get(i).id;
        for entry in block.entries().iter() {
            let knew = self.take_entry(cx, &entry, sender, true);
            if block.wants_ack() {
                self.push_ack(cx, from, Ack::new(ack_id(entry.key, entry.stamp), knew));
            }
        }
        match block.pull() && cfg.direction.pulls() && !self.rumors.is_idle() {
            true => OUT_HOT,
            false => 0,
        }
    }

    /// Queues a RUMOR to `from` when there is something to answer with.
    pub(crate) fn queue_rumor_reply(&mut self, cx: &mut Cx<'_>, to: Endpoint, rumor: u8) {
        if rumor != 0 || self.acks.iter().any(|(t, _)| *t == to) {
            cx.outbox.queue_outgoing(Outgoing {
                rumor,
                ..Outgoing::new(to, MessageType::Rumor, false)
            });
        }
    }

    fn push_ack(&mut self, cx: &mut Cx<'_>, to: Endpoint, ack: Ack) {
        if self.acks.len() >= 4 * cx.config.data_queue() {
            cx.outbox.stats.data.ack_queue_full += 1;
            return;
        }
        self.acks.push((to, ack));
    }

    /// Encodes a standalone RUMOR.
    pub(crate) fn encode_rumor(
        &mut self,
        cx: &mut Cx<'_>,
        out: &Outgoing,
        buf: &mut [u8],
        header: &Header,
    ) -> Result<usize, Skip> {
        if !cx.config.dissemination().rumors() {
            return Err(Skip::Nothing);
        }
        let mut r = RumorWriter::standalone(buf, header).map_err(|_| Skip::TooSmall)?;
        self.write_block(cx, out, &mut r);
        r.finish().ok_or(Skip::Nothing)
    }

    /// Finishes a PING or PONG with a rumor block, if it has anything to carry.
    pub(crate) fn append_rumor_block(
        &mut self,
        cx: &mut Cx<'_>,
        out: &Outgoing,
        w: SectionWriter<'_>,
    ) -> usize {
        let mut r = RumorWriter::after_section(w);
        self.write_block(cx, out, &mut r);
        if r.acks() + r.entries() > 0 || out.rumor & OUT_PULL != 0 {
            cx.outbox.stats.data.rumor_blocks_piggybacked += 1;
        }
        // A piggybacked block always finishes (empty, it is left out).
        r.finish().unwrap_or(0)
    }

    /// Writes pending acks for `out.to`, the pull flag and hot rumors as asked.
    fn write_block(&mut self, cx: &mut Cx<'_>, out: &Outgoing, r: &mut RumorWriter<'_>) {
        let e = &mut *self;
        let mut acks = 0;
        e.acks.retain(|(to, ack)| {
            let sent = *to == out.to && r.push_ack(*ack);
            acks += u64::from(sent);
            !sent
        });
        cx.outbox.stats.data.acks_sent += acks;
        r.set_pull(out.rumor & OUT_PULL != 0);
        if out.rumor & OUT_HOT != 0 {
            let feedback = cx.config.rumor().stop.trigger == Trigger::Feedback;
            r.set_ack_wanted(feedback);
            let hot = e.rumors.hot();
            let n = hot.len();
            e.sent_ids.clear();
            let start = if n == 0 { 0 } else { e.rotate % n };
            let mut visited = 0;
            while visited < n {
                let h = &hot[(start + visited) % n];
                if let Some((value, stamp)) = e.store.get(&h.key).filter(|(_, s)| *s == h.stamp) {
                    let entry = EntryRef {
                        key: &h.key,
                        value,
                        stamp,
                    };
                    if !r.push_entry(&entry) {
                        break;
                    }
                    e.sent_ids.push(h.id());
                }
                visited += 1;
            }
            e.rotate = start + visited;
            cx.outbox.stats.data.rumors_sent += e.sent_ids.len() as u64;
            if !feedback {
                // Blind rules count the send itself.
                e.rumors.record_sends(&e.sent_ids, &mut e.rng);
            }
        }
        // Acks that did not fit go in a RUMOR of their own.
        if self.acks.iter().any(|(t, _)| *t == out.to) {
            cx.outbox
                .queue_outgoing(Outgoing::new(out.to, MessageType::Rumor, false));
        }
    }
}

/// The next time a periodic round runs: one period on, or one period from now
/// if the schedule fell behind by more than a period.
fn next(now: Instant, at: Instant, period: core::time::Duration) -> Instant {
    match now - at > period {
        true => now + period,
        false => at + period,
    }
}

/// A digest of the keys from `start` on, as many as fit `buf`; returns its
/// length and its end (the next digest's start), `None` at the last key.
fn write_digest<'s>(
    store: &'s Store,
    buf: &mut [u8],
    header: &Header,
    direction: crate::epidemic::Direction,
    start: &[u8],
) -> Option<(usize, Option<&'s [u8]>)> {
    let mut w = DigestWriter::new(buf, header, direction, start).ok()?;
    let mut entries = store.range(start, None).peekable();
    let mut end = None;
    while let Some(e) = entries.next() {
        // Taking `e` may make the next key this digest's end: leave room for it.
        let end_room = entries.peek().map_or(0, |next| next.key.len());
        if !w.push(e.key, e.stamp, end_room) {
            if w.count() == 0 {
                // Config validation makes one item fit; refuse rather than stall.
                return None;
            }
            end = Some(e.key);
            break;
        }
    }
    let len = w.finish(end).ok()?;
    Some((len, end))
}

/// Packs entries into PUSH datagrams; returns (datagrams, entries, drops).
fn pack_push<'s>(
    datagrams: &mut VecDeque<(Vec<u8>, usize)>,
    pool: &mut Vec<Vec<u8>>,
    size: usize,
    cap: usize,
    header: &Header,
    entries: impl Iterator<Item = EntryRef<'s>>,
) -> (usize, u64, u64) {
    pack(
        datagrams,
        pool,
        size,
        cap,
        entries.peekable(),
        |buf, entries| {
            let mut w = PushWriter::new(buf, header).ok()?;
            while let Some(e) = entries.peek() {
                // An entry too large for any datagram is skipped, never sent.
                if w.push(e) || w.count() == 0 {
                    entries.next();
                } else {
                    break;
                }
            }
            Some((w.count() as u64, w.finish()))
        },
    )
}

/// Packs keys into PULL datagrams; returns (datagrams, keys, drops).
fn pack_pull<'k>(
    datagrams: &mut VecDeque<(Vec<u8>, usize)>,
    pool: &mut Vec<Vec<u8>>,
    size: usize,
    cap: usize,
    header: &Header,
    keys: impl Iterator<Item = &'k [u8]>,
) -> (usize, u64, u64) {
    pack(datagrams, pool, size, cap, keys.peekable(), |buf, keys| {
        let mut w = PullWriter::new(buf, header).ok()?;
        while let Some(k) = keys.peek() {
            // A key too long for any datagram is skipped, never sent.
            if w.push(k) || w.count() == 0 {
                keys.next();
            } else {
                break;
            }
        }
        Some((w.count() as u64, w.finish()))
    })
}

/// Fills datagrams of `size` bytes from `items` with `fill` (which writes one
/// datagram and returns its item count and length) until the items run out or
/// `cap` datagrams are queued; returns (datagrams made, items sent, 1 if the
/// queue was full).
fn pack<I: Iterator>(
    datagrams: &mut VecDeque<(Vec<u8>, usize)>,
    pool: &mut Vec<Vec<u8>>,
    size: usize,
    cap: usize,
    mut items: core::iter::Peekable<I>,
    mut fill: impl FnMut(&mut [u8], &mut core::iter::Peekable<I>) -> Option<(u64, usize)>,
) -> (usize, u64, u64) {
    let (mut made, mut sent) = (0, 0);
    while items.peek().is_some() {
        if datagrams.len() >= cap {
            return (made, sent, 1);
        }
        let mut buf = pool.pop().unwrap_or_default();
        buf.resize(size, 0);
        let Some((n, len)) = fill(&mut buf, &mut items) else {
            return (made, sent, 0);
        };
        if n == 0 {
            pool.push(buf);
            continue;
        }
        sent += n;
        datagrams.push_back((buf, len));
        made += 1;
    }
    (made, sent, 0)
}
