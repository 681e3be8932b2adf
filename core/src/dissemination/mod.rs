//! Epidemic dissemination inside a [`crate::Node`] (DESIGN §2.2), one
//! sub-machine with its own state ([`Epidemic`]) and, for each call, an
//! explicit context ([`Cx`]): the versioned store, rumor mongering
//! (`rumors.rs`) and anti-entropy (`anti_entropy.rs`), wired to datagrams.
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

mod anti_entropy;
mod rumors;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

use crate::copies::Copies;
use crate::epidemic::data::{EntryRef, Rejected, Stamp, Store};
use crate::epidemic::rumor::Rumors;
use crate::event::Event;
use crate::ids::{Endpoint, Identity, NodeId};
use crate::outbox::Outbox;
use crate::peers::{PeerState, PeerTable};
use crate::profile::{Config, Dissemination};
use crate::rng::{mix64, Rng};
use crate::time::{micros, Instant};
use crate::wire::{key_id, Ack, Body, Header, MessageType};

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
    /// Most bytes of a message: `max_datagram` less a cluster key's trailer.
    pub(crate) payload: usize,
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
                    self.take_entry(cx, &e, sender, None);
                }
            }
            Body::Pull(keys) => self.answer_pull(cx, from, keys),
            Body::Rumor(block) => {
                let rumor = self.handle_rumor_block(cx, i, from, block);
                self.queue_rumor_reply(cx, from, rumor);
            }
            Body::Section(_) | Body::Fail { .. } | Body::Swim(_) => {}
        }
    }

    /// Merges one received entry; returns whether this node already knew it
    /// (held it or something newer, or could not store it).
    /// `hot_from`: make it a hot rumor when news, received from the peer
    /// of this [`sender_tag`].
    fn take_entry(
        &mut self,
        cx: &mut Cx<'_>,
        e: &EntryRef<'_>,
        from: NodeId,
        hot_from: Option<u64>,
    ) -> bool {
        cx.copies
            .count_update(e.stamp.origin, e.key, e.stamp.version);
        cx.outbox.stats.data.entries_received += 1;
        match self.store.merge(e.key, e.value, e.stamp) {
            Ok(m) if m.is_news() => {
                cx.outbox.stats.data.updates_received += 1;
                if let Some(tag) = hot_from {
                    self.rumors.start_from(e.key, e.stamp, tag);
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
}

/// A sender's tag for [`Rumors::start_from`]: its address folded (never
/// 0). A collision only spares one peer one copy.
pub(crate) fn sender_tag(e: Endpoint) -> u64 {
    let ip = e.ip_octets();
    let (hi, lo) = ip.split_at(8);
    let fold = |b: &[u8]| b.iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
    mix64(fold(hi) ^ fold(lo).rotate_left(17) ^ u64::from(e.port()) << 48) | 1
}

/// The next time a periodic round runs: one period on, or one period from now
/// if the schedule fell behind by more than a period.
fn next(now: Instant, at: Instant, period: core::time::Duration) -> Instant {
    match now - at > period {
        true => now + period,
        false => at + period,
    }
}
