//! The swim profile's membership, one sub-machine of a [`crate::Node`]: SWIM
//! (Das, Gupta, Motivala 2002) with Lifeguard's refinements (Dadgar et al.
//! 2018), as docs/design/swim.md describes, with its own state ([`Swim`]) and
//! an explicit context per call ([`Cx`]), as `membership` has.
//!
//! - here: probes, indirect probes, suspicion and its timers, refutation,
//!   local health awareness, joins, the table kept in step;
//! - `receive.rs`: dispatch of its messages, ACKs, handshakes, SYNC answers,
//!   the merge of member records;
//! - `encode.rs`: its messages encoded, updates piggybacked, STATE chunks;
//! - `records.rs`: per-member state beyond the peer table, SWIM's precedence,
//!   the suspicion timeout, the broadcast queue;
//! - `sync.rs`: the digest anti-entropy;
//! - `order.rs`: the probe order, with O(1) removal.
//!
//! The peer table's states map alive → `Alive`, suspect → `Pfail`, dead →
//! `Fail`; a node whose address is not proven yet is in `Handshake`. Every
//! transition goes through `Failure::set_state`, so member counts, events and
//! the PFAIL list are those the other profiles keep.

mod encode;
mod order;
mod receive;
mod records;
mod sync;

use alloc::collections::{BinaryHeap, VecDeque};
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use crate::event::Event;
use crate::ids::{Endpoint, NodeId};
use crate::outbox::Outgoing;
use crate::peers::{Peer, PeerState};
use crate::time::Instant;
use crate::wire::{Header, Health, Member, MessageType};

pub(crate) use encode::Encoded;
use records::{Broadcasts, Side};
use sync::Jobs;

/// Most indirect probes being relayed for others at once.
const MAX_RELAYS: usize = 64;
/// Most joins (`meet`) waiting for an answer.
const MAX_JOINS: usize = 64;

/// swim's own state; the peer table, the outbox and the state bookkeeping
/// come in a [`Cx`].
#[derive(Debug)]
pub(crate) struct Swim {
    /// Per-member state, index for index with the peer table.
    side: Vec<Side>,
    /// Our own refutation count in this life.
    refute: u32,
    /// The probe order (shuffled), and the next position in it.
    order: Vec<NodeId>,
    cursor: usize,
    seq: u32,
    probe: Option<Probe>,
    next_probe: Instant,
    relays: Vec<Relay>,
    broadcasts: Broadcasts,
    /// Lifeguard's local health score, 0 to `awareness_max` - 1.
    awareness: u32,
    next_sync: Instant,
    /// The exchange of digests in progress, if any.
    fetch: Option<sync::Fetch>,
    jobs: Jobs,
    /// The digest of the table, kept as members change ([`Swim::rehash`]).
    kept: sync::Kept,
    joins: Vec<Join>,
    /// Members this node declared dead or learned dead, oldest first.
    dead: VecDeque<NodeId>,
    /// Suspicion timers: when each suspicion expires, set when it starts and
    /// at each confirmation (see [`Swim::arm`]).
    timers: BinaryHeap<Reverse<Timer>>,
}

/// A suspicion timer: member `id`, suspected `since` with `suspecters`
/// independent suspicions, expires `at`. A later confirmation or a new
/// suspicion makes it stale (its `since` or count no longer match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    id: NodeId,
    since: Instant,
    suspecters: u8,
}

/// What swim reads and writes of its node for one call: what the redis
/// membership machine borrows, the same parts.
pub(crate) use crate::membership::Cx;

/// The probe of this protocol period.
#[derive(Clone, Copy, Debug)]
struct Probe {
    target: NodeId,
    seq: u32,
    sent: Instant,
    /// Indirect probes went out, to this many members.
    asked: u32,
    nacks: u32,
}

/// An indirect probe we run for another member.
#[derive(Clone, Copy, Debug)]
struct Relay {
    /// Our PROBE's seq to the target.
    seq: u32,
    requester: Endpoint,
    /// The requester's seq, echoed in our ACK or NACK.
    their_seq: u32,
    sent: Instant,
    nacked: bool,
}

/// A `meet`: PROBEs to an address until a member there answers.
#[derive(Clone, Copy, Debug)]
struct Join {
    to: Endpoint,
    seq: u32,
    started: Instant,
    last_sent: Instant,
}

/// How a member record arrived. Rumors are passed on in turn (SWIM's
/// dissemination); a STATE answer is anti-entropy, a repair each node makes
/// for itself: failure news (suspect, dead) it brings is passed on in full, a
/// member new to us once, an alive refresh not at all. Passing on every member
/// a joiner fetches in full would gossip the whole membership from each
/// joiner: at 5,000 nodes, 5,000 records times the retransmit limit (16) from
/// every one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Rumor,
    Sync,
}

/// A handshake: a node that sent a SYNC from an address not proven yet gets
/// a PROBE with this seq; its ACK proves the address.
const HANDSHAKE_SEQ_BIT: u32 = 1 << 31;

impl Swim {
    pub(crate) fn new(now: Instant) -> Self {
        Swim {
            side: Vec::new(),
            refute: 0,
            order: Vec::new(),
            cursor: 0,
            seq: 0,
            probe: None,
            next_probe: now,
            relays: Vec::new(),
            broadcasts: Broadcasts::default(),
            awareness: 0,
            next_sync: now,
            fetch: None,
            jobs: Jobs::default(),
            kept: sync::Kept::default(),
            joins: Vec::new(),
            dead: VecDeque::new(),
            timers: BinaryHeap::new(),
        }
    }

    /// Our refutation count in this life.
    pub(crate) fn refutations(&self) -> u32 {
        self.refute
    }

    /// Lifeguard's local health score.
    pub(crate) fn awareness(&self) -> u32 {
        self.awareness
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = (self.seq + 1) & !HANDSHAKE_SEQ_BIT;
        self.seq
    }

    /// A period stretched by the local health score (Lifeguard).
    fn scaled(&self, d: Duration) -> Duration {
        d * (self.awareness + 1)
    }

    fn health_up(&mut self, cx: &Cx<'_>) {
        self.awareness = (self.awareness + 1).min(cx.config.awareness_max() - 1);
    }

    fn health_down(&mut self) {
        self.awareness = self.awareness.saturating_sub(1);
    }

    /// Times a membership update is sent on.
    fn retransmits(&self, cx: &Cx<'_>) -> u32 {
        cx.config.retransmit_mult() * log10_sends(cx.peers.len())
    }

    /// Asks the node at `to` to let us join: a PROBE, resent once a second
    /// until a member there answers (or `handshake_timeout` passes).
    pub(crate) fn meet(&mut self, cx: &mut Cx<'_>, now: Instant, to: Endpoint) -> bool {
        if self.joins.len() >= MAX_JOINS {
            return false;
        }
        let seq = self.next_seq();
        self.joins.push(Join {
            to,
            seq,
            started: now,
            last_sent: now,
        });
        queue(cx, to, MessageType::Probe, seq, NodeId(0), true);
        true
    }

    // ---------------------------------------------------------------------
    // The table, kept in step with `side`.

    fn add(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        m: &Member,
        state: PeerState,
        via: Via,
    ) -> Option<usize> {
        let mut peer = Peer::new(m.id, m.endpoint, m.life, now);
        peer.pong_received = now;
        peer.data_received = now;
        peer.ping_sent = crate::peers::NO_PING;
        let i = match cx.peers.insert(peer) {
            Ok(i) => i,
            Err(_) => {
                cx.outbox.stats.drops.peer_table_full += 1;
                return None;
            }
        };
        self.side.push(Side::new(m.refute));
        cx.outbox.emit(Event::PeerDiscovered {
            id: m.id,
            endpoint: m.endpoint,
        });
        if state != PeerState::Handshake {
            self.admit(cx, now, i, state, m.suspecter, via);
        }
        Some(i)
    }

    /// Peer `i` becomes a member (alive or suspect): counted, probed, told on.
    fn admit(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        i: usize,
        state: PeerState,
        suspecter: NodeId,
        via: Via,
    ) {
        cx.set_state(i, PeerState::Alive);
        let id = cx.peers.get(i).id;
        cx.outbox.emit(Event::PeerJoined { id });
        self.order_insert(cx, i);
        if state == PeerState::Pfail {
            self.suspect(cx, now, i, suspecter);
        }
        match via {
            Via::Rumor => self.broadcasts.push(id),
            // Sent on once: enough to keep the join's rumor spreading where
            // this node was told by anti-entropy before the rumor came (a
            // node that already holds a record does not pass its rumor on).
            // (Counted as sent all but once, whatever the limit grows to as
            // the table fills, and so sent after every other news.)
            Via::Sync => self.broadcasts.push_spent(id, u32::MAX - 1),
        }
        self.rehash(cx, i);
    }

    fn forget(&mut self, cx: &mut Cx<'_>, i: usize) {
        self.order_remove(cx, i);
        let p = cx.peers.remove(i);
        let side = self.side.swap_remove(i);
        self.kept.toggle(p.id, side.hash);
        cx.failure.forgotten(&p);
        self.broadcasts.remove(p.id);
        self.dead.retain(|&x| x != p.id);
        cx.outbox.emit(Event::PeerForgotten { id: p.id });
    }

    /// Our record of member `i`, as sent.
    fn record(&self, cx: &Cx<'_>, i: usize) -> Member {
        let p = cx.peers.get(i);
        Member {
            id: p.id,
            life: p.incarnation,
            refute: self.side[i].refute,
            health: match p.state {
                PeerState::Pfail => Health::Suspect,
                PeerState::Fail => Health::Dead,
                PeerState::Alive | PeerState::Handshake => Health::Alive,
            },
            endpoint: p.endpoint,
            // The latest independent suspicion, so that each one spreads.
            suspecter: self.side[i].latest_suspecter(),
        }
    }

    /// What a datagram says of its sender by being sent: alive, in the life
    /// its header names, at the address it came from.
    fn sender_alive(h: &Header, from: Endpoint) -> Member {
        Member {
            id: h.sender,
            life: h.incarnation,
            refute: 0,
            health: Health::Alive,
            endpoint: from,
            suspecter: NodeId(0),
        }
    }

    /// Our own record: alive, with an unspecified address, which a receiver
    /// replaces with where the datagram came from (we cannot know how others
    /// reach us; they can).
    fn own_record(&self, cx: &Cx<'_>) -> Member {
        Member {
            id: cx.me.id,
            life: cx.me.incarnation,
            refute: self.refute,
            health: Health::Alive,
            endpoint: Endpoint::new(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                cx.me.slot,
            ),
            suspecter: NodeId(0),
        }
    }

    // ---------------------------------------------------------------------
    // Failure detection.

    fn suspect(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize, by: NodeId) {
        cx.set_state(i, PeerState::Pfail);
        self.side[i].suspect(now, by);
        self.arm(cx, i);
        let id = cx.peers.get(i).id;
        cx.outbox.emit(Event::PeerPfail { id });
        self.broadcasts.push(id);
        self.rehash(cx, i);
    }

    fn declare_dead(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize, by_us: bool) {
        cx.set_state(i, PeerState::Fail);
        self.side[i].since = now;
        let id = cx.peers.get(i).id;
        self.dead.push_back(id);
        self.order_remove(cx, i);
        cx.outbox.emit(Event::PeerFail {
            id,
            by_quorum: by_us,
        });
        self.broadcasts.push(id);
        self.rehash(cx, i);
    }

    /// Member `i`'s part of the kept digest brought up to date: called
    /// after every change to its life, refutations or state.
    fn rehash(&mut self, cx: &Cx<'_>, i: usize) {
        let p = cx.peers.get(i);
        let h = sync::member_hash(p.id, p.incarnation, self.side[i].refute, p.state);
        let old = core::mem::replace(&mut self.side[i].hash, h);
        self.kept.toggle(p.id, old ^ h);
    }

    /// Our digest at `log2` buckets: folded from the kept one, or computed
    /// afresh when finer than kept. Debug builds check the kept one against
    /// the table.
    fn digest(&self, cx: &Cx<'_>, log2: u8) -> Vec<u64> {
        let me = (cx.me.id, cx.me.incarnation, self.refute);
        let fresh = || sync::digest(cx.peers, &self.side, me, log2);
        match self.kept.fold(me, log2) {
            Some(d) => {
                debug_assert_eq!(d, fresh(), "the kept digest is out of step");
                d
            }
            None => fresh(),
        }
    }

    /// The suspicion timeout for member `i` now.
    fn suspicion_timeout(&self, cx: &Cx<'_>, i: usize) -> Duration {
        let c = cx.config;
        let n = cx.failure.members();
        let min = c.probe_interval().as_secs_f64()
            * f64::from(c.suspicion_mult())
            * records::log10_at_least_one(n);
        let min_us = (min * 1e6) as u64;
        let max_us = min_us * u64::from(c.suspicion_max_mult());
        let k = c.suspicion_mult().saturating_sub(2).max(1);
        let confirmations = (self.side[i].suspecters.len() as u32).saturating_sub(1);
        Duration::from_micros(records::suspicion_timeout(min_us, max_us, confirmations, k))
    }

    /// The protocol period: probes, indirect probes, suspicions, gossip,
    /// anti-entropy, joins. Runs at every tick. `user_updates`: user
    /// updates are waiting to be spread (they ride the gossip too).
    pub(crate) fn tick(&mut self, cx: &mut Cx<'_>, now: Instant, late: bool, user_updates: bool) {
        if late && cx.config.awareness_max() > 1 {
            // Lifeguard: a node that misses its own deadlines is the slow
            // one. Its probe's time ran out while it could not listen (an
            // ACK may have come and gone): probe again before judging.
            self.health_up(cx);
            if let Some(p) = self.probe.as_mut() {
                p.sent = now;
                p.asked = 0;
                p.nacks = 0;
                let (target, seq) = (p.target, p.seq);
                if let Some(i) = cx.peers.find(target) {
                    let to = cx.peers.get(i).endpoint;
                    queue(cx, to, MessageType::Probe, seq, NodeId(0), false);
                }
            }
        }
        self.check_probe(cx, now);
        if self.probe.is_none() && now >= self.next_probe {
            self.start_probe(cx, now);
        }
        self.check_suspects(cx, now);
        self.check_relays(cx, now);
        self.forget_dead(cx, now);
        self.gossip(cx, user_updates);
        self.sync_round(cx, now);
        self.rejoin(cx, now);
    }

    fn start_probe(&mut self, cx: &mut Cx<'_>, now: Instant) {
        self.next_probe = now + self.scaled(cx.config.probe_interval());
        if self.order.is_empty() {
            return;
        }
        if self.cursor >= self.order.len() {
            // A pass is over: a new order (Fisher-Yates).
            for k in (1..self.order.len()).rev() {
                let j = cx.rng.index(k + 1);
                self.order.swap(k, j);
            }
            for k in 0..self.order.len() {
                self.set_pos(cx, k);
            }
            self.cursor = 0;
        }
        let target = self.order[self.cursor];
        self.cursor += 1;
        let Some(i) = cx.peers.find(target) else {
            return;
        };
        let seq = self.next_seq();
        self.probe = Some(Probe {
            target,
            seq,
            sent: now,
            asked: 0,
            nacks: 0,
        });
        let to = cx.peers.get(i).endpoint;
        cx.peers.get_mut(i).ping_sent = now;
        queue(cx, to, MessageType::Probe, seq, NodeId(0), false);
    }

    fn check_probe(&mut self, cx: &mut Cx<'_>, now: Instant) {
        let Some(mut probe) = self.probe else {
            return;
        };
        let Some(i) = cx.peers.find(probe.target) else {
            self.probe = None;
            return;
        };
        let elapsed = now.saturating_duration_since(probe.sent);
        if probe.asked == 0 && elapsed >= self.scaled(cx.config.probe_timeout()) {
            // SWIM's indirect probe: k random members probe it for us.
            let k = cx.config.indirect_probes() as usize;
            let mut asked = 0;
            for _ in 0..4 * k {
                if asked == k || self.order.len() < 2 {
                    break;
                }
                let via = self.order[cx.rng.index(self.order.len())];
                let Some(j) = cx.peers.find(via) else {
                    continue;
                };
                if via == probe.target || cx.peers.get(j).state != PeerState::Alive {
                    continue;
                }
                let to = cx.peers.get(j).endpoint;
                queue(
                    cx,
                    to,
                    MessageType::ProbeReq,
                    probe.seq,
                    probe.target,
                    false,
                );
                asked += 1;
            }
            probe.asked = asked.max(1) as u32;
            self.probe = Some(probe);
        }
        if elapsed >= self.scaled(cx.config.probe_interval()) {
            self.probe = None;
            // Lifeguard (memberlist's `awarenessDelta`): each NACK an
            // indirect probe should have brought and did not says the
            // silence may be ours.
            for _ in probe.nacks..probe.asked {
                self.health_up(cx);
            }
            let me = cx.me.id;
            match cx.peers.get(i).state {
                PeerState::Alive => self.suspect(cx, now, i, me),
                // Suspected already: our own failed probe is an independent
                // confirmation (Lifeguard), news to pass on.
                PeerState::Pfail if self.side[i].confirm(me) => {
                    self.arm(cx, i);
                    self.broadcasts.push(probe.target);
                }
                _ => {}
            }
        }
    }

    /// Sets member `i`'s suspicion timer from its suspicion's start and its
    /// independent suspicions now (as memberlist does, with N now).
    fn arm(&mut self, cx: &Cx<'_>, i: usize) {
        let s = &self.side[i];
        self.timers.push(Reverse(Timer {
            at: s.since + self.suspicion_timeout(cx, i),
            id: cx.peers.get(i).id,
            since: s.since,
            suspecters: s.suspecters.len() as u8,
        }));
    }

    /// Suspects whose timer expired are dead. O(expired timers) a tick: a
    /// scan of every suspect every tick cost a third of 5,000 nodes' CPU
    /// while a third of them were suspects.
    fn check_suspects(&mut self, cx: &mut Cx<'_>, now: Instant) {
        while let Some(&Reverse(t)) = self.timers.peek() {
            if t.at > now {
                break;
            }
            self.timers.pop();
            let Some(i) = cx.peers.find(t.id) else {
                continue;
            };
            let s = &self.side[i];
            if cx.peers.get(i).state != PeerState::Pfail
                || s.since != t.since
                || s.suspecters.len() != usize::from(t.suspecters)
            {
                continue; // refuted, dead, or confirmed since: a later timer holds
            }
            // The timeout grows with N: a membership that grew since waits longer.
            let due = t.since + self.suspicion_timeout(cx, i);
            if now >= due {
                self.declare_dead(cx, now, i, true);
            } else {
                self.timers.push(Reverse(Timer { at: due, ..t }));
            }
        }
    }

    fn check_relays(&mut self, cx: &mut Cx<'_>, now: Instant) {
        let timeout = cx.config.probe_timeout();
        let period = cx.config.probe_interval();
        let mut k = 0;
        while k < self.relays.len() {
            let r = &mut self.relays[k];
            let age = now.saturating_duration_since(r.sent);
            if !r.nacked && age >= timeout * 4 / 5 {
                // Lifeguard's NACK: we are here, the target is not answering.
                r.nacked = true;
                let (to, seq) = (r.requester, r.their_seq);
                queue(cx, to, MessageType::Nack, seq, NodeId(0), true);
            }
            if age >= period {
                self.relays.swap_remove(k);
            } else {
                k += 1;
            }
        }
    }

    fn forget_dead(&mut self, cx: &mut Cx<'_>, now: Instant) {
        let keep = cx.config.dead_retention();
        while let Some(&id) = self.dead.front() {
            let Some(i) = cx.peers.find(id) else {
                self.dead.pop_front();
                continue;
            };
            if now.saturating_duration_since(self.side[i].since) < keep {
                break;
            }
            self.forget(cx, i);
        }
    }

    /// While updates wait (membership's or users'), a STATE of them to
    /// `gossip_nodes` random members.
    fn gossip(&mut self, cx: &mut Cx<'_>, user_updates: bool) {
        if (self.broadcasts.is_empty() && !user_updates) || self.order.is_empty() {
            return;
        }
        for _ in 0..cx.config.gossip_nodes().min(self.order.len() as u32) {
            let id = self.order[cx.rng.index(self.order.len())];
            if let Some(j) = cx.peers.find(id) {
                let to = cx.peers.get(j).endpoint;
                queue(cx, to, MessageType::State, 0, NodeId(0), false);
            }
        }
    }

    fn sync_round(&mut self, cx: &mut Cx<'_>, now: Instant) {
        if let Some(f) = self.fetch.as_mut().filter(|f| f.due(now)) {
            f.next = None;
            f.sent = now;
            let to = f.with;
            queue(cx, to, MessageType::Sync, 0, NodeId(0), false);
        }
        if now < self.next_sync || self.order.is_empty() {
            return;
        }
        if self.fetch.is_some_and(|f| f.busy(now)) {
            return; // the next period, after this exchange
        }
        self.next_sync = now + cx.config.sync_interval();
        let id = self.order[cx.rng.index(self.order.len())];
        if let Some(j) = cx.peers.find(id) {
            let to = cx.peers.get(j).endpoint;
            self.start_fetch(cx, now, to, false);
        }
    }

    /// Starts an exchange of digests with `with`: periodic, or a
    /// joiner's first (`eager`: its next rounds follow a tick apart).
    fn start_fetch(&mut self, cx: &mut Cx<'_>, now: Instant, with: Endpoint, eager: bool) {
        // A joiner asks for everything at once; a periodic exchange checks first.
        let seq = if eager { 0 } else { SYNC_CHECK_SEQ };
        queue(cx, with, MessageType::Sync, seq, NodeId(0), false);
        let (members, chunks) = (cx.peers.len(), cx.config.sync_chunks());
        self.fetch = Some(sync::Fetch::new(with, eager, members, chunks, now));
        self.next_sync = now + cx.config.sync_interval();
    }

    fn rejoin(&mut self, cx: &mut Cx<'_>, now: Instant) {
        let retry = cx.config.handshake_timeout() / 3;
        let limit = cx.config.handshake_timeout();
        let mut k = 0;
        while k < self.joins.len() {
            let j = &mut self.joins[k];
            if now.saturating_duration_since(j.started) >= limit {
                let to = j.to;
                self.joins.swap_remove(k);
                cx.outbox.emit(Event::MeetTimedOut { endpoint: to });
                continue;
            }
            if now.saturating_duration_since(j.last_sent) >= retry.min(Duration::from_secs(1)) {
                j.last_sent = now;
                let (to, seq) = (j.to, j.seq);
                queue(cx, to, MessageType::Probe, seq, NodeId(0), true);
            }
            k += 1;
        }
    }
}

/// memberlist's ceil(log10(N + 1)), N the members with self (`peers` + 1),
/// by integer digits: what a retransmit multiplier is multiplied by, for
/// membership updates and (`dissemination/`) user updates alike.
pub(crate) fn log10_sends(peers: usize) -> u32 {
    let n = peers + 2;
    let (mut digits, mut power) = (1, 10);
    while power < n {
        digits += 1;
        power = power.saturating_mul(10);
    }
    digits
}

/// The descriptor's seq for a SYNC that answers one (push-pull's second
/// half: the receiver sends STATE only, never another SYNC).
const SYNC_ANSWER_SEQ: u32 = 1;

/// The descriptor's seq for the SYNC that opens a periodic exchange: a check
/// of one bucket (a hash of the whole membership, 8 bytes), answered with
/// the full digest only where the memberships differ. At 5,000 members the
/// full digest is 1,049 bytes, and a periodic SYNC of it every 5 s was more
/// than half of a quiet node's bytes.
const SYNC_CHECK_SEQ: u32 = 2;

fn queue(cx: &mut Cx<'_>, to: Endpoint, kind: MessageType, seq: u32, about: NodeId, bare: bool) {
    cx.outbox.queue_outgoing(Outgoing {
        about,
        about_incarnation: seq,
        ..Outgoing::new(to, kind, bare)
    });
}
