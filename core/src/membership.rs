//! Membership gossip: the cron's ping rules, gossip sections, handshakes.
//! Semantics follow Redis 7 `cluster_legacy.c` (`clusterCron`, `clusterSendPing`,
//! `clusterProcessGossipSection`), adapted from TCP links to UDP datagrams.

use crate::event::Event;
use crate::ids::{Endpoint, Incarnation, NodeId};
use alloc::vec::Vec;

use crate::copies::Copies;
use crate::ids::Identity;
use crate::node::MeetError;
use crate::outbox::Outbox;
use crate::peers::PeerTable;
use crate::peers::{Peer, PeerState, NO_PING};
use crate::profile::Config;
use crate::profile::PongGossip;
use crate::rng::Rng;
use crate::time::{micros, millis_u32, Instant};
use crate::wire::{
    EntryFlags, GossipEntry, MessageType, Section, SectionWriter, ENTRY_LEN_V4, ENTRY_LEN_V6,
};
use core::time::Duration;

/// Membership and failure detection's own state; the peer table, the
/// generator and the outbox it works on come in a [`Cx`].
#[derive(Debug)]
pub(crate) struct Membership {
    /// Peers not in handshake (the voters, with self).
    pub(crate) members: usize,
    /// Ids of the peers in PFAIL, in the order they became so (appended to
    /// every section; a list, so that encoding costs O(PFAIL), not O(peers)).
    pub(crate) pfail: Vec<NodeId>,
    /// PFAIL peers a section's tail may carry: `pfail.len()` when the last
    /// cron began, with `Config::pfail_counted_at_cron` (else unbounded).
    pub(crate) pfail_wanted: usize,
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
            members: 0,
            pfail: Vec::new(),
            pfail_wanted: usize::MAX,
            meets: Vec::new(),
            sections: 0,
            epoch: 0,
        }
    }
}

impl Membership {
    /// One cron tick (Redis `clusterCron`, every 100 ms by default).
    pub(crate) fn cron(&mut self, cx: &mut Cx<'_>, now: Instant) {
        self.cron_meets(cx, now);
        if cx.outbox.stats.ticks % u64::from(cx.config.random_ping_every()) == 0 {
            for _ in 0..cx.config.random_ping_fanout() {
                self.ping_oldest_of_sample(cx, now);
            }
        }
        let rules = CronRules {
            node_timeout: cx.config.node_timeout(),
            ping_interval: cx.config.ping_interval(),
            handshake_timeout: cx.config.handshake_timeout(),
            retry: self.meet_retry(cx),
            suspicion: cx
                .config
                .partial_view()
                .then(|| cx.config.report_validity()),
        };
        let mut i = 0;
        let mut ahead = 0;
        while i < cx.peers.len() {
            // Most peers need nothing at a given tick. Each has a due time,
            // kept beside the table, before which no rule of `decide` can
            // fire for it, so the scan reads 8 bytes a peer rather than its
            // 72-byte record (the simulator's 1,000 tables of 1,000 peers are
            // 72 MB: streamed from memory ten times a second, issue 3).
            if cx.peers.due(i) > now {
                debug_assert!(
                    rules.decide(cx.peers.get(i), now) == Actions::default(),
                    "peer {i} due at {:?}, yet acted on at {now:?}",
                    cx.peers.due(i)
                );
                i += 1;
                continue;
            }
            // The records that are due are scattered: requested SCAN_AHEAD
            // peers ahead, their cache misses overlap.
            ahead = ahead.max(i);
            while ahead < (i + SCAN_AHEAD).min(cx.peers.len()) {
                if cx.peers.due(ahead) <= now {
                    cx.peers.prefetch_record(ahead);
                }
                ahead += 1;
            }
            if !self.cron_peer(cx, now, i, &rules) {
                continue; // forgotten: the last peer moved into slot i
            }
            let due = rules.next_due(cx.peers.get(i));
            cx.peers.set_due(i, due);
            i += 1;
        }
    }

    /// The cron's rules for peer `i` (see `CronRules::decide`); false when
    /// it was forgotten.
    fn cron_peer(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize, rules: &CronRules) -> bool {
        let p = cx.peers.get(i);
        let act = rules.decide(p, now);
        let (id, to) = (p.id, p.endpoint);
        if act.forget {
            let handshake = p.state == PeerState::Handshake;
            self.forget(cx, i);
            cx.outbox.emit(match handshake {
                true => Event::HandshakeTimedOut { id },
                false => Event::PeerForgotten { id },
            });
            return false;
        }
        if act.meet {
            cx.peers.get_mut(i).ping_transmitted = now;
            cx.outbox.queue(to, MessageType::Meet, true);
        }
        if act.ping {
            self.ping(cx, now, i);
        }
        if act.pfail {
            self.set_state(cx, i, PeerState::Pfail);
            cx.outbox.emit(Event::PeerPfail { id });
        }
        if act.fail {
            self.declare_fail(cx, i);
        }
        true
    }

    /// Redis, every 10th tick: sample 5 random nodes (not self, not in handshake,
    /// no ping in flight) and ping the one whose last PONG is oldest.
    fn ping_oldest_of_sample(&mut self, cx: &mut Cx<'_>, now: Instant) {
        let n = cx.peers.len();
        if n == 0 {
            return;
        }
        let mut best: Option<(usize, Instant)> = None;
        for _ in 0..cx.config.random_ping_sample() {
            // Redis draws from all nodes, self included, and skips self.
            let i = cx.rng.index(n + 1);
            if i == n {
                continue;
            }
            let p = cx.peers.get(i);
            if p.state == PeerState::Handshake || p.has_ping_in_flight() {
                continue;
            }
            if best.is_none_or(|(_, pong)| p.pong_received < pong) {
                best = Some((i, p.pong_received));
            }
        }
        if let Some((i, _)) = best {
            self.ping(cx, now, i);
        }
    }

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

    /// Resends or expires outstanding `meet`s.
    fn cron_meets(&mut self, cx: &mut Cx<'_>, now: Instant) {
        let retry = self.meet_retry(cx);
        let timeout = cx.config.handshake_timeout();
        let mut m = 0;
        while m < self.meets.len() {
            let meet = self.meets[m];
            if meet.answered {
                // Answered, yet nobody has pinged us for a handshake timeout:
                // the node may have dropped its half of the handshake (our
                // PINGs lost), leaving us sure we joined and it unaware of us,
                // for good. Redis's TCP handshake cannot end so; here the meet
                // starts over.
                //
                // A full partial view answers a MEET it cannot admit (every
                // slot a handshake, in a burst of joins), and a node it does
                // not hold learns nothing from it: there the meet starts over
                // after a retry period, doubling each time up to the timeout.
                let wait = match cx.config.partial_view() {
                    true => (retry * (1u32 << meet.restarts.min(16))).min(timeout),
                    false => timeout,
                };
                if now - meet.started > wait {
                    self.meets[m] = PendingMeet {
                        started: now,
                        last_sent: now,
                        answered: false,
                        restarts: meet.restarts.saturating_add(1),
                        ..meet
                    };
                    cx.outbox.queue(meet.endpoint, MessageType::Meet, true);
                }
                m += 1;
                continue;
            }
            if now - meet.started > timeout {
                self.meets.swap_remove(m);
                cx.outbox.emit(Event::MeetTimedOut {
                    endpoint: meet.endpoint,
                });
                continue;
            }
            if now - meet.last_sent >= retry {
                self.meets[m].last_sent = now;
                cx.outbox.queue(meet.endpoint, MessageType::Meet, true);
            }
            m += 1;
        }
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
        match p.state {
            PeerState::Handshake => {}
            PeerState::Pfail => {
                self.members -= 1;
                self.pfail.retain(|&x| x != p.id);
            }
            PeerState::Alive | PeerState::Fail => self.members -= 1,
        }
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
            self.set_state(cx, i, PeerState::Alive);
        }
        cx.outbox.emit(Event::PeerRestarted { id, incarnation });
    }

    /// Redis `clusterProcessGossipSection`, for a section from member `from`.
    pub(crate) fn handle_section(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        from: usize,
        section: Section<'_>,
    ) {
        if !cx.peers.get(from).is_member() {
            cx.copies
                .count_unread(crate::wire::Body::Section(section), None);
            return;
        }
        let reporter = cx.peers.get(from).id;
        let validity = cx.config.report_validity();
        let counting = cx.copies.counts_entries();
        let pong_gossip = cx.config.pong_gossip();
        // A peer table is cold when a datagram arrives (1,000 peers are 90 KB,
        // and the sim runs 1,000 tables), and each entry's lookup costs two
        // dependent cache misses: the index slot is requested 2 LOOKAHEAD
        // entries ahead, the peer record LOOKAHEAD ahead, so the misses of
        // different entries overlap.
        let (mut far, mut near) = (section.ids(), section.ids());
        far.by_ref()
            .take(2 * LOOKAHEAD)
            .for_each(|id| cx.peers.prefetch_slot(id));
        let mut hints = [None; LOOKAHEAD];
        for (h, id) in hints.iter_mut().zip(near.by_ref()) {
            *h = cx.peers.hint(id);
        }
        for (k, e) in section.into_iter().enumerate() {
            let hint = hints[k % LOOKAHEAD];
            hints[k % LOOKAHEAD] = near.next().and_then(|id| cx.peers.hint(id));
            if let Some(id) = far.next() {
                cx.peers.prefetch_slot(id);
            }
            if counting {
                cx.copies.count_entry(e.id, e.flags.fail);
            }
            if e.id == cx.me.id {
                continue;
            }
            let Some(i) = cx.peers.find_hinted(e.id, hint) else {
                // Redis: an unknown node in a known sender's gossip starts a
                // handshake. A partial view's rare free room goes to nodes
                // not suspected of failing.
                if cx.config.partial_view() && e.flags.is_failure_report() {
                    continue;
                }
                if self
                    .discover(cx, now, e.id, e.endpoint, e.incarnation, false)
                    .is_some()
                {
                    cx.outbox.queue(e.endpoint, MessageType::Meet, true);
                }
                continue;
            };
            if !cx.peers.get(i).is_member() {
                continue;
            }
            // An entry about an older life of a restarted node says nothing about
            // this one: neither a failure report nor a PONG time. (Redis has no
            // incarnations; there the restarted node's PONG clears FAIL and stale
            // reports age out. Ignoring them keeps them from blocking the PONG
            // refresh below or counting towards a FAIL of the new life.)
            if e.incarnation < cx.peers.get(i).incarnation {
                continue;
            }
            if e.flags.is_failure_report() {
                if cx.peers.add_report(i, reporter, now) {
                    self.fail_if_quorum(cx, now, i);
                } else {
                    cx.outbox.stats.drops.report_table_full += 1;
                }
                continue;
            }
            cx.peers.remove_report(i, reporter);
            // Redis: if we see the node healthy, have no ping in flight to it and
            // hold no failure reports about it, adopt a newer PONG time from
            // gossip. This is what sets Redis's real per-peer ping interval.
            if cx.config.gossip_refreshes_pong()
                && !cx.peers.get(i).has_ping_in_flight()
                && cx.peers.live_reports(i, now, validity) == 0
            {
                let Some(pong) = gossiped_pong(now, e.pong_age_ms, pong_gossip, self.epoch) else {
                    continue;
                };
                // Only ever later: the cron's due time for it stands.
                let p = cx.peers.postpone_mut(i);
                if pong > p.pong_received {
                    p.pong_received = pong;
                }
            }
        }
    }

    /// Redis `clusterSendPing`'s gossip: about a tenth of the known nodes picked
    /// at random (at most 3 × wanted tries), skipping self, PFAIL and handshake
    /// nodes; then every PFAIL node.
    ///
    /// When the datagram (or the byte budget) cannot hold it all, the section
    /// shrinks, and the random picks give way first: Redis appends the PFAIL
    /// nodes "so that failure reports are faster to propagate", and a section
    /// filled by random picks alone would carry no failure report at all, so no
    /// node would ever reach FAIL (with 1,400 bytes, from ~470 nodes up).
    pub(crate) fn write_section(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        w: &mut SectionWriter<'_>,
    ) {
        let pong_gossip = cx.config.pong_gossip();
        let known = cx.peers.len() + 1;
        let policy = cx.config.section();
        let wanted = policy.wanted(known);
        let budget = policy.byte_budget.unwrap_or(usize::MAX).min(w.remaining());
        let reserved = self
            .pfail
            .iter()
            .take(self.pfail_wanted)
            .filter_map(|&id| cx.peers.by_id(id))
            .map(entry_len)
            .sum::<usize>()
            .min(budget);
        let mut used = 0;
        let mut picks = 0;
        self.sections = self.sections.wrapping_add(1);
        if self.sections == 0 {
            // The stamp wrapped: old stamps could now look current.
            cx.peers.clear_picked();
            self.sections = 1;
        }
        let mut fresh = known.saturating_sub(2);
        let mut tries = wanted * 3;
        // Each pick lands on a random, cold peer record. A copy of the
        // generator draws the same picks LOOKAHEAD ahead of the loop and
        // requests their records, so the misses overlap; the loop's own
        // draws, and so the section, are those it always made.
        let mut ahead = cx.rng.clone();
        let mut unwarmed = tries;
        let first = LOOKAHEAD.min(unwarmed);
        self.warm_picks(cx, &mut ahead, known, first);
        unwarmed -= first;
        while fresh > 0 && picks < wanted && tries > 0 {
            // One more each draw: the window stays LOOKAHEAD picks ahead.
            if unwarmed > 0 {
                self.warm_picks(cx, &mut ahead, known, 1);
                unwarmed -= 1;
            }
            tries -= 1;
            // Redis draws from all nodes, self included, and skips self.
            let pick = cx.rng.index(known);
            if pick == cx.peers.len() {
                continue;
            }
            let p = cx.peers.get(pick);
            match p.state {
                PeerState::Pfail => continue,
                PeerState::Handshake => {
                    fresh -= 1;
                    continue;
                }
                PeerState::Alive | PeerState::Fail => {}
            }
            if p.picked == self.sections {
                continue;
            }
            let e = entry(p, now, pong_gossip, self.epoch);
            if used + e.encoded_len() + reserved > budget || !w.push(&e) {
                break;
            }
            used += e.encoded_len();
            cx.peers.postpone_mut(pick).picked = self.sections;
            picks += 1;
            fresh -= 1;
        }
        // Redis counts the PFAIL nodes wanted at the cron's start; the list is
        // oldest first, so a peer suspected since is left out until the next.
        let n = self.pfail.len().min(self.pfail_wanted);
        if n == 0 {
            return;
        }
        // From a random start, so that when not all PFAIL nodes fit, each
        // still gets its turn.
        let first = cx.rng.index(n);
        for k in 0..n {
            let Some(p) = cx.peers.by_id(self.pfail[(first + k) % n]) else {
                continue;
            };
            let e = entry(p, now, pong_gossip, self.epoch);
            if used + e.encoded_len() > budget || !w.push(&e) {
                return;
            }
            used += e.encoded_len();
        }
    }

    /// Draws `n` picks from `ahead` as `write_section` does and requests the
    /// peer records they land on into the cache.
    fn warm_picks(&self, cx: &Cx<'_>, ahead: &mut crate::rng::Rng, known: usize, n: usize) {
        for _ in 0..n {
            let pick = ahead.index(known);
            if pick < cx.peers.len() {
                cx.peers.warm(pick);
            }
        }
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
            PeerState::Pfail | PeerState::Fail => self.set_state(cx, i, PeerState::Alive),
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
        self.set_state(cx, i, PeerState::Alive);
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

/// How many lookups and picks are prepared ahead: enough to overlap a dozen
/// cache misses or more, few enough that the lines are still cached when
/// they are read.
const LOOKAHEAD: usize = 16;

/// How far ahead of its scan the cron requests the records it will read.
const SCAN_AHEAD: usize = 64;

/// The cron's per-peer timers, read from the config once a tick.
#[derive(Clone, Copy)]
struct CronRules {
    node_timeout: Duration,
    ping_interval: Duration,
    handshake_timeout: Duration,
    retry: Duration,
    /// Set in a partial view only (`None`: Redis's rules). How long a PFAIL
    /// peer may stay silent before it is declared FAIL without a quorum
    /// (`report_validity`): the other nodes that hold it may not be among
    /// those we hear from, so a quorum can be out of reach. A FAIL peer
    /// silent twice as long is forgotten to make room (`forget_after`). And
    /// an unanswered PING is resent every `retry` rather than every
    /// ping_interval: over UDP a lost datagram is the likely reason for no
    /// PONG, and a view's few holders are a node's only witnesses, so each
    /// must try more than twice before it suspects.
    suspicion: Option<Duration>,
}

/// What the cron does about one peer at one tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Actions {
    /// Drop it: a handshake that timed out, or a FAIL peer of a partial view
    /// silent too long (nothing else then).
    forget: bool,
    /// Resend the handshake's MEET.
    meet: bool,
    /// Send a PING (a first one, or a resend).
    ping: bool,
    /// Mark it PFAIL.
    pfail: bool,
    /// Mark it FAIL: a partial view's suspicion outlived its timeout.
    fail: bool,
}

impl CronRules {
    /// Redis `clusterCron`'s rules for peer `p` at `now`. Each fires once
    /// `now` minus one of the peer's times passes a timer, which is what
    /// lets `next_due` say when the next can.
    fn decide(&self, p: &Peer, now: Instant) -> Actions {
        let mut act = Actions::default();
        if p.state == PeerState::Handshake {
            // Redis: a handshake older than max(node_timeout, 1 s) is dropped.
            // One the peer began (its MEET) lives while the peer keeps
            // talking, since only the peer can complete it: we send nothing.
            act.forget = now - self.handshake_began(p) > self.handshake_timeout;
            // UDP loses datagrams, so the handshake's MEET is resent (Redis's
            // TCP link would retransmit), never to an unproven address that
            // MET us. The gap doubles each time (retry, 2 retry, 4 retry ...
            // after the start), so that a node gossip keeps naming but that
            // does not answer costs a few MEETs, not one a second.
            act.meet = !act.forget && !p.inbound && now - p.ping_transmitted >= self.meet_gap(p);
            return act;
        }
        if p.state == PeerState::Fail
            && self
                .forget_after()
                .is_some_and(|d| now - p.pong_received.max(p.data_received) > d)
        {
            act.forget = true;
            return act;
        }
        if !p.has_ping_in_flight() {
            // Redis: no ping in flight and the last PONG older than
            // node_timeout / 2: ping now, so nobody is left unpinged too long.
            act.ping = now - p.pong_received > self.ping_interval;
            return act;
        }
        // A ping is in flight. Redis frees a TCP link silent for
        // node_timeout / 2 and reconnects, which sends a fresh PING while
        // keeping ping_sent. Over UDP the same rule is a resend. The PING
        // that ends a handshake stands in for the TCP handshake Redis's
        // link would retransmit, and is resent as often as a MEET.
        act.ping = now - p.ping_transmitted >= self.resend(p);
        // Redis: waiting for the PONG longer than node_timeout, with no
        // datagram at all for as long either, sets PFAIL. (A resend keeps
        // ping_sent, so it does not change this.)
        let node_delay = (now - p.ping_sent).min(now - p.data_received);
        act.pfail = node_delay > self.node_timeout && p.state == PeerState::Alive;
        act.fail = p.state == PeerState::Pfail && self.suspicion.is_some_and(|d| node_delay > d);
        act
    }

    /// When a handshake with `p` began, for its timeout.
    fn handshake_began(&self, p: &Peer) -> Instant {
        match p.inbound {
            true => p.ping_sent.max(p.data_received),
            false => p.ping_sent,
        }
    }

    /// In a partial view, how long a FAIL peer may stay silent before it is
    /// forgotten to make room: 2 × `report_validity`.
    fn forget_after(&self) -> Option<Duration> {
        self.suspicion.map(|d| d * 2)
    }

    /// How long after the last MEET to `p` (in handshake) the next one goes.
    fn meet_gap(&self, p: &Peer) -> Duration {
        self.retry.max(p.ping_transmitted - p.ping_sent)
    }

    /// How long after the last PING to `p` (ping in flight) it is resent.
    fn resend(&self, p: &Peer) -> Duration {
        match p.confirming || self.suspicion.is_some() {
            true => self.retry.min(self.ping_interval),
            false => self.ping_interval,
        }
    }

    /// The earliest instant at which a rule of `decide` can fire for `p` if
    /// `p` does not change: one threshold a rule. It may be early (the peer
    /// is then looked at for nothing), never late. A change that could bring
    /// it forward resets it (`PeerTable::get_mut`).
    fn next_due(&self, p: &Peer) -> Instant {
        let forget = match (p.state, self.forget_after()) {
            (PeerState::Fail, Some(d)) => past(p.pong_received.max(p.data_received), d),
            _ => Instant::from_micros(u64::MAX),
        };
        let due = match p.state {
            PeerState::Handshake => {
                let expiry = past(self.handshake_began(p), self.handshake_timeout);
                match p.inbound {
                    true => expiry,
                    false => expiry.min(reached(p.ping_transmitted, self.meet_gap(p))),
                }
            }
            _ if !p.has_ping_in_flight() => past(p.pong_received, self.ping_interval),
            state => {
                let resend = reached(p.ping_transmitted, self.resend(p));
                match state {
                    PeerState::Alive => {
                        resend.min(past(p.ping_sent.max(p.data_received), self.node_timeout))
                    }
                    PeerState::Pfail => match self.suspicion {
                        Some(d) => resend.min(past(p.ping_sent.max(p.data_received), d)),
                        None => resend,
                    },
                    _ => resend,
                }
            }
        };
        due.min(forget)
    }
}

/// The first `now` with `now - t > d`: `Instant` subtraction saturates and
/// counts whole microseconds, so `now - t` must reach `micros(d) + 1`.
fn past(t: Instant, d: Duration) -> Instant {
    Instant::from_micros(t.as_micros().saturating_add(micros(d)).saturating_add(1))
}

/// A lower bound of the first `now` with `now - t >= d` (exact for whole
/// microseconds). A zero `d` is reached at once, even before `t`.
fn reached(t: Instant, d: Duration) -> Instant {
    match d.is_zero() {
        true => Instant::ZERO,
        false => Instant::from_micros(t.as_micros().saturating_add(micros(d))),
    }
}

/// Bytes of the gossip entry describing `p`.
fn entry_len(p: &Peer) -> usize {
    match p.endpoint.ipv4() {
        Some(_) => ENTRY_LEN_V4,
        None => ENTRY_LEN_V6,
    }
}

/// One second of the wall clock, in µs.
const SECOND_US: u64 = 1_000_000;

/// The gossip entry describing `p` now; `epoch` places `Instant` zero on the
/// shared wall clock (`Node::set_epoch`).
fn entry(p: &Peer, now: Instant, pong_gossip: PongGossip, epoch: u64) -> GossipEntry {
    let pong_age_ms = match pong_gossip {
        // The age of the wall-clock second the PONG time falls in, to the
        // millisecond below: see `PongGossip::WallSecond`.
        PongGossip::WallSecond => {
            let wall = p.pong_received.as_micros().saturating_add(epoch);
            let now_wall = now.as_micros().saturating_add(epoch);
            let age_us = now_wall.saturating_sub(wall - wall % SECOND_US);
            u32::try_from(age_us / 1_000).unwrap_or(u32::MAX)
        }
        // Whole seconds, rounded up: see `PongGossip::AgeSeconds`.
        PongGossip::AgeSeconds => {
            let ms = u64::from(millis_u32(now - p.pong_received));
            u32::try_from(ms.div_ceil(1_000) * 1_000).unwrap_or(u32::MAX)
        }
        PongGossip::FirstHand => millis_u32(now - p.pong_received.min(p.data_received)),
    };
    GossipEntry {
        id: p.id,
        incarnation: p.incarnation,
        flags: EntryFlags {
            pfail: p.state == PeerState::Pfail,
            fail: p.state == PeerState::Fail,
        },
        ping_age_ms: match p.has_ping_in_flight() {
            true => millis_u32(now - p.ping_sent).min(crate::wire::NO_PING - 1),
            false => crate::wire::NO_PING,
        },
        pong_age_ms,
        endpoint: p.endpoint,
    }
}

/// The PONG time an entry of age `age_ms`, received `now`, offers for adoption:
/// under `PongGossip::WallSecond` the wall-clock second nearest `now - age`
/// (the sender's second, the transit and the age's lost microseconds
/// rounded away); `None` when that lies before `Instant` zero.
fn gossiped_pong(
    now: Instant,
    age_ms: u32,
    pong_gossip: PongGossip,
    epoch: u64,
) -> Option<Instant> {
    let age = u64::from(age_ms) * 1_000;
    match pong_gossip {
        PongGossip::WallSecond => {
            let t = now.as_micros().saturating_add(epoch).checked_sub(age)?;
            let second = (t + SECOND_US / 2) / SECOND_US * SECOND_US;
            second.checked_sub(epoch).map(Instant::from_micros)
        }
        PongGossip::AgeSeconds | PongGossip::FirstHand => {
            Some(Instant::from_micros(now.as_micros().saturating_sub(age)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random_peer(rng: &mut Rng) -> Peer {
        let ep = Endpoint::from(core::net::SocketAddr::from(([127, 0, 0, 1], 7000)));
        let time = |rng: &mut Rng| Instant::from_micros(rng.below(40_000_000));
        let mut p = Peer::new(NodeId(1), ep, 0, time(rng));
        p.state = [
            PeerState::Handshake,
            PeerState::Alive,
            PeerState::Pfail,
            PeerState::Fail,
        ][rng.index(4)];
        p.pong_received = time(rng);
        p.data_received = time(rng);
        p.ping_transmitted = time(rng);
        if rng.one_in(3) {
            p.ping_sent = NO_PING;
        }
        p.inbound = rng.one_in(2);
        p.confirming = rng.one_in(2);
        p
    }

    #[test]
    fn a_wall_second_entry_names_the_second_of_the_pong_and_the_receiver_adopts_that_second() {
        let ep = Endpoint::from(core::net::SocketAddr::from(([127, 0, 0, 1], 7000)));
        let us = |s: f64| (s * 1e6).round() as u64;
        // The sender's clock started at UNIX time 1,700,000,000.3 s; the
        // receiver's 5.4 s later. Both read the same wall clock.
        let (sender, receiver) = (us(1_700_000_000.3), us(1_700_000_005.7));
        let at = |epoch: u64, wall: f64| Instant::from_micros(us(wall) - epoch);
        let mut p = Peer::new(NodeId(1), ep, 0, Instant::ZERO);
        p.pong_received = at(sender, 1_700_000_010.75);
        let now = at(sender, 1_700_000_011.2);
        // Redis clusterSetGossipEntry: pong_received / 1000, the second .010.
        let e = entry(&p, now, PongGossip::WallSecond, sender);
        assert_eq!(e.pong_age_ms, 1_200);
        // Received 3 ms later: the receiver adopts the second itself, not the
        // second plus the transit (clusterProcessGossipSection).
        let second = at(receiver, 1_700_000_010.0);
        let later = at(receiver, 1_700_000_011.203);
        let got = gossiped_pong(later, e.pong_age_ms, PongGossip::WallSecond, receiver);
        assert_eq!(got, Some(second));
        // Passed on, the adopted time stays on its second: no creep per hop.
        p.pong_received = second;
        let e = entry(&p, later, PongGossip::WallSecond, receiver);
        let third = us(1_700_000_008.0);
        let got = gossiped_pong(
            at(third, 1_700_000_011.25),
            e.pong_age_ms,
            PongGossip::WallSecond,
            third,
        );
        assert_eq!(got, Some(at(third, 1_700_000_010.0)));
        // A second before the receiver's origin is not adopted.
        assert_eq!(
            gossiped_pong(Instant::from_millis(500), 2_000, PongGossip::WallSecond, 0),
            None
        );
        // The rule without a shared clock (lean): the age rounded up to whole
        // seconds, so an adopted time is at least a second old.
        p.pong_received = at(sender, 1_700_000_010.75);
        let e = entry(&p, now, PongGossip::AgeSeconds, sender);
        assert_eq!(e.pong_age_ms, 1_000);
        let got = gossiped_pong(now, e.pong_age_ms, PongGossip::AgeSeconds, sender);
        assert_eq!(got, Some(at(sender, 1_700_000_010.2)));
    }

    #[test]
    fn no_cron_rule_fires_before_a_peers_due_time_and_one_fires_at_it() {
        let mut rng = Rng::new(5);
        let ms = Duration::from_millis;
        for (k, rules) in [
            (ms(15_000), ms(7_500), ms(15_000), ms(1_000)),
            (ms(1_000), ms(500), ms(1_000), ms(100)),
            // Not whole microseconds: the due time may come early, never late.
            (
                Duration::from_nanos(2_000_000_500),
                Duration::from_nanos(999_999_999),
                ms(3_000),
                Duration::from_nanos(300_000_001),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            // Redis's timers, then with a partial view's suspicion and forget.
            for partial in [false, true] {
                let rules = CronRules {
                    node_timeout: rules.0,
                    ping_interval: rules.1,
                    handshake_timeout: rules.2,
                    retry: rules.3,
                    suspicion: partial.then_some(rules.0 * 2),
                };
                for _ in 0..20_000 {
                    let p = random_peer(&mut rng);
                    let due = rules.next_due(&p).as_micros();
                    let before = [
                        due.saturating_sub(1),
                        due.saturating_sub(1 + rng.below(10_000_000)),
                    ];
                    for now in before.into_iter().filter(|&t| t < due) {
                        let now = Instant::from_micros(now);
                        assert_eq!(
                            rules.decide(&p, now),
                            Actions::default(),
                            "{p:?} at {now:?}"
                        );
                    }
                    if k < 2 && due < u64::MAX / 2 {
                        let act = rules.decide(&p, Instant::from_micros(due));
                        assert_ne!(act, Actions::default(), "{p:?} due {due} µs");
                    }
                }
            }
        }
    }
}
