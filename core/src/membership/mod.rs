//! Membership gossip and failure detection, one sub-machine of a [`crate::Node`]:
//! its own state ([`Membership`]) and, for each call, an explicit context
//! ([`Cx`]) with what it borrows of the node. Semantics follow Redis 7
//! `cluster_legacy.c` (`clusterCron`, `clusterSendPing`,
//! `clusterProcessGossipSection`), adapted from TCP links to UDP datagrams.
//!
//! - here: handshakes and `meet`, PONG receipt, admission into the table
//!   (`discover`, a partial view's `make_room`), forgetting, restarts;
//! - `cron.rs`: the cron's per-peer rules and their due times;
//! - `section.rs`: gossip sections, chosen at encode time and applied on receipt;
//! - `crate::failure`: PFAIL and FAIL bookkeeping, reports, quorum, FAIL messages.

mod cron;
mod section;

use alloc::vec::Vec;

use crate::copies::Copies;
use crate::event::Event;
use crate::failure::{self, Failure};
use crate::ids::{Endpoint, Identity, Incarnation, NodeId};
use crate::outbox::Outbox;
use crate::peers::{Peer, PeerState, PeerTable, NO_PING};
use crate::profile::Config;
use crate::rng::Rng;
use crate::time::Instant;
use crate::wire::MessageType;

/// Why a `meet` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MeetError {
    /// `Config::max_pending_meets` meets are already waiting for an answer.
    TooManyPending,
}

impl core::fmt::Display for MeetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("too many meets waiting for an answer")
    }
}

impl core::error::Error for MeetError {}

/// Membership's own state; the peer table, the generator, the outbox and
/// failure detection it works with come in a [`Cx`].
#[derive(Debug)]
pub(crate) struct Membership {
    /// Outstanding `meet` commands.
    pub(crate) meets: Vec<PendingMeet>,
    /// Sections built so far (wrapping), the stamp in `Peer::picked`.
    pub(crate) sections: u16,
    /// Where `Instant` zero lies on the wall clock the cluster shares, in µs
    /// since that clock's epoch (`Node::set_epoch`).
    pub(crate) epoch: u64,
}

/// What membership reads and writes of its node for one call.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) me: &'a Identity,
    pub(crate) rng: &'a mut Rng,
    pub(crate) peers: &'a mut PeerTable,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) copies: &'a mut Copies,
    pub(crate) failure: &'a mut Failure,
}

impl Cx<'_> {
    /// Failure detection and its context, reborrowed from this one.
    pub(crate) fn failure(&mut self) -> (&mut Failure, failure::Cx<'_>) {
        let cx = failure::Cx {
            config: self.config,
            peers: &mut *self.peers,
            outbox: &mut *self.outbox,
            copies: &mut *self.copies,
        };
        (&mut *self.failure, cx)
    }

    /// [`Failure::set_state`].
    pub(crate) fn set_state(&mut self, i: usize, to: PeerState) {
        let (f, mut cx) = self.failure();
        f.set_state(&mut cx, i, to);
    }

    /// [`Failure::declare_fail`].
    pub(crate) fn declare_fail(&mut self, i: usize) {
        let (f, mut cx) = self.failure();
        f.declare_fail(&mut cx, i);
    }

    /// [`Failure::fail_if_quorum`].
    pub(crate) fn fail_if_quorum(&mut self, now: Instant, i: usize) {
        let (f, mut cx) = self.failure();
        f.fail_if_quorum(&mut cx, now, i);
    }
}

/// An outstanding `meet`: until the node at `endpoint` answers, and then until
/// the cluster shows it holds us as a member (some node PINGs or MEETs us).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingMeet {
    pub(crate) endpoint: Endpoint,
    /// When the MEET (or, once answered, the wait for a PING) began.
    pub(crate) started: Instant,
    pub(crate) last_sent: Instant,
    /// The node answered with a PONG; we wait to be pinged.
    pub(crate) answered: bool,
    /// Times the meet started over after an answer (see `cron_meets`).
    pub(crate) restarts: u8,
}

impl Membership {
    pub(crate) fn new() -> Self {
        Membership {
            meets: Vec::new(),
            sections: 0,
            epoch: 0,
        }
    }
}

impl Membership {
    /// Sends a PING to peer `i`, starting its in-flight timer if none runs.
    pub(crate) fn ping(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize) {
        let p = cx.peers.get_mut(i);
        if !p.has_ping_in_flight() {
            p.ping_sent = now;
        }
        p.ping_transmitted = now;
        let to = p.endpoint;
        cx.outbox.queue(to, MessageType::Ping, false);
    }

    /// How long a MEET waits before it is resent: a random-ping period (1 s in
    /// Redis's profile), but at most a third of the handshake timeout, so that
    /// a short timeout still leaves room for two resends.
    pub(crate) fn meet_retry(&self, cx: &Cx<'_>) -> core::time::Duration {
        let period = cx.config.tick() * cx.config.random_ping_every();
        period
            .min(cx.config.handshake_timeout() / 3)
            .max(cx.config.tick())
    }

    /// Adds a node in handshake, unless it is known or the table is full.
    /// Returns its index when it was added.
    ///
    /// `asked` is true for a node that MEETs us or answers our `meet`: in a
    /// partial view a full table makes room for it (see `make_room`), while
    /// gossip about unknown nodes only fills free room, so that views keep
    /// changing at the pace of joins, not of every section.
    pub(crate) fn discover(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        id: NodeId,
        endpoint: Endpoint,
        incarnation: Incarnation,
        asked: bool,
    ) -> Option<usize> {
        if id == cx.me.id || cx.peers.find(id).is_some() {
            return None;
        }
        let partial = cx.config.partial_view();
        if partial && asked && cx.peers.len() >= cx.config.max_peers() && !self.make_room(cx) {
            cx.outbox.stats.drops.peer_table_full += 1;
            return None;
        }
        let mut peer = Peer::new(id, endpoint, incarnation, now);
        peer.ping_transmitted = now;
        match cx.peers.insert(peer) {
            Ok(i) => {
                cx.outbox.emit(Event::PeerDiscovered { id, endpoint });
                Some(i)
            }
            // A full partial view is its normal state, not a loss.
            Err(_) if partial => None,
            Err(_) => {
                cx.outbox.stats.drops.peer_table_full += 1;
                None
            }
        }
    }

    /// Forgets a random peer of a full partial view to make room; false when
    /// eight draws found none that may go. A peer in handshake stays: it is
    /// a node that just joined through us, and it learns of others only from
    /// the sections we send once its handshake completes (until then we
    /// answer with empty ones, and once dropped it would get no more section
    /// than its PINGs' bytes: none, while it knows only us). A PFAIL peer
    /// stays too: its detection is under way.
    fn make_room(&mut self, cx: &mut Cx<'_>) -> bool {
        let n = cx.peers.len();
        for _ in 0..8.min(n * 2) {
            let i = cx.rng.index(n);
            if matches!(cx.peers.get(i).state, PeerState::Alive | PeerState::Fail) {
                let id = cx.peers.get(i).id;
                self.forget(cx, i);
                cx.outbox.emit(Event::PeerForgotten { id });
                return true;
            }
        }
        false
    }

    /// Removes peer `i`, keeping the counters right.
    pub(crate) fn forget(&mut self, cx: &mut Cx<'_>, i: usize) {
        let p = cx.peers.remove(i);
        cx.failure.forgotten(&p);
    }

    /// Peer `i` spoke with a higher incarnation: it restarted. Its old life's
    /// ping, failure state and reports no longer apply.
    pub(crate) fn restart_peer(&mut self, cx: &mut Cx<'_>, i: usize, incarnation: Incarnation) {
        let p = cx.peers.get_mut(i);
        p.incarnation = incarnation;
        if p.state == PeerState::Handshake {
            // Not a member yet: no old life to forget, and `ping_sent` holds the
            // handshake's start (clearing it would keep the handshake forever).
            return;
        }
        p.ping_sent = NO_PING;
        p.confirming = false;
        let id = p.id;
        cx.peers.clear_reports(i);
        if matches!(cx.peers.get(i).state, PeerState::Pfail | PeerState::Fail) {
            cx.set_state(i, PeerState::Alive);
        }
        cx.outbox.emit(Event::PeerRestarted { id, incarnation });
    }

    /// A PONG from peer `i`: it is alive. Redis: pong_received = now,
    /// ping_sent = 0, and PFAIL or FAIL cleared (no slots, so no FAIL undo delay).
    pub(crate) fn handle_pong(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize) {
        let p = cx.peers.get_mut(i);
        p.pong_received = now;
        p.ping_sent = NO_PING;
        p.confirming = false;
        match p.state {
            PeerState::Handshake => {
                self.complete_handshake(cx, now, i);
                // The peer answered our MEET; it holds us in handshake until we
                // speak again, and sends nothing of its own to our unproven
                // address. Our PING completes its side (see `handle_unknown`);
                // until its PONG comes back it is resent like a MEET.
                self.ping(cx, now, i);
                cx.peers.get_mut(i).confirming = true;
            }
            PeerState::Pfail | PeerState::Fail => cx.set_state(i, PeerState::Alive),
            PeerState::Alive => {}
        }
    }

    /// Peer `i` in handshake has answered: it becomes a full member, alive now.
    pub(crate) fn complete_handshake(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize) {
        let p = cx.peers.get_mut(i);
        p.pong_received = now;
        p.ping_sent = NO_PING;
        p.inbound = false;
        let id = p.id;
        cx.set_state(i, PeerState::Alive);
        cx.outbox.emit(Event::PeerJoined { id });
    }

    /// A PONG from peer `i` at `from` answers a `meet` waiting there, even when
    /// we had already learned that node from gossip (else the meet would be
    /// resent and finally reported as timed out although the node joined). The
    /// meet then waits to be confirmed by a PING; see `cron_meets`.
    pub(crate) fn answer_meet(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize, from: Endpoint) {
        let Some(m) = self
            .meets
            .iter_mut()
            .find(|m| m.endpoint == from && !m.answered)
        else {
            return;
        };
        m.answered = true;
        m.started = now;
        // A peer we already held (the meet was repeated) gets the PING that
        // completes its side of the handshake, in case it dropped it.
        if !cx.peers.get(i).has_ping_in_flight() {
            self.ping(cx, now, i);
            cx.peers.get_mut(i).confirming = true;
        }
    }

    pub(crate) fn meet(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        to: Endpoint,
    ) -> Result<(), MeetError> {
        let fresh = PendingMeet {
            endpoint: to,
            started: now,
            last_sent: now,
            answered: false,
            restarts: 0,
        };
        if let Some(m) = self.meets.iter_mut().find(|m| m.endpoint == to) {
            *m = fresh;
        } else if self.meets.len() >= cx.config.max_pending_meets() {
            return Err(MeetError::TooManyPending);
        } else {
            self.meets.push(fresh);
        }
        cx.outbox.queue(to, MessageType::Meet, true);
        Ok(())
    }
}
