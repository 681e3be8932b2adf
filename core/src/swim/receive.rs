//! swim's receiving half: dispatch of its messages, ACKs of our probes and
//! of those we relay, joins and handshakes, SYNC answers, and the merge of
//! member records by SWIM's precedence.

use crate::event::Event;
use crate::ids::{Endpoint, NodeId};
use crate::peers::PeerState;
use crate::time::Instant;
use crate::wire::{Header, Health, Member, MessageType, SwimBody, SyncDigest};

use super::records::{self, Verdict};
use super::{queue, sync, Cx, Relay, Swim, Via, HANDSHAKE_SEQ_BIT, MAX_RELAYS, SYNC_ANSWER_SEQ};

impl Swim {
    /// One decoded datagram of ours (swim types; MEET, PING, PONG and FAIL
    /// are the redis machine's and are counted as another profile's).
    /// `known`: the sender's index in the peer table, if it is there.
    pub(crate) fn handle(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        from: Endpoint,
        known: Option<usize>,
        h: &Header,
        body: &SwimBody<'_>,
    ) {
        if let Some(i) = known {
            let p = cx.peers.get_mut(i);
            p.data_received = now;
            if h.incarnation < p.incarnation {
                cx.outbox.stats.drops.stale_incarnation += 1;
                return;
            }
        }
        // What the sender says about itself by sending: alive, in this life.
        if let Some(i) = known {
            self.heard_from(cx, now, i, h, from);
        }
        match *body {
            SwimBody::Probe { seq, updates } => {
                let member = known.is_some_and(|i| cx.peers.get(i).is_member());
                // Unknown senders get a bare ACK: no more bytes than they sent.
                queue(cx, from, MessageType::Ack, seq, NodeId(0), !member);
                if member {
                    self.apply_all(cx, now, h, from, updates.iter(), Via::Rumor);
                }
            }
            SwimBody::Ack { seq, updates } => {
                self.handle_ack(cx, now, known, from, h, seq);
                if known.is_some_and(|i| cx.peers.get(i).is_member()) {
                    self.apply_all(cx, now, h, from, updates.iter(), Via::Rumor);
                }
            }
            SwimBody::ProbeReq {
                seq,
                target,
                updates,
            } => {
                let Some(i) = known.filter(|&i| cx.peers.get(i).is_member()) else {
                    cx.outbox.stats.drops.unknown_sender += 1;
                    return;
                };
                let _ = i;
                self.apply_all(cx, now, h, from, updates.iter(), Via::Rumor);
                if self.relays.len() < MAX_RELAYS {
                    let ours = self.next_seq();
                    self.relays.push(Relay {
                        seq: ours,
                        requester: from,
                        their_seq: seq,
                        sent: now,
                        nacked: false,
                    });
                    let to = match cx.peers.find(target.id) {
                        Some(t) => cx.peers.get(t).endpoint,
                        None => target.endpoint,
                    };
                    queue(cx, to, MessageType::Probe, ours, NodeId(0), false);
                }
            }
            SwimBody::Nack { seq } => {
                if let Some(p) = self.probe.as_mut().filter(|p| p.seq == seq) {
                    p.nacks += 1;
                }
            }
            SwimBody::Sync(d) => self.handle_sync(cx, now, known, from, h, d),
            SwimBody::State(members) => {
                if known.is_some_and(|i| cx.peers.get(i).is_member()) {
                    let before = cx.peers.len();
                    self.apply_all(cx, now, h, from, members.iter(), Via::Sync);
                    self.fetch_more(from, cx.peers.len() - before, members.len());
                } else {
                    cx.outbox.stats.drops.unknown_sender += 1;
                }
            }
        }
    }

    /// A datagram from member `i`: it is alive in this life, at this address.
    fn heard_from(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize, h: &Header, from: Endpoint) {
        let p = cx.peers.get_mut(i);
        if p.endpoint != from {
            p.endpoint = from;
        }
        if h.incarnation > p.incarnation {
            let own = Self::sender_alive(h, from);
            self.apply(cx, now, &own, Via::Rumor, None);
        }
    }

    fn handle_ack(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        known: Option<usize>,
        from: Endpoint,
        h: &Header,
        seq: u32,
    ) {
        // Our probe (direct, or relayed back to us).
        if let Some(p) = self.probe.filter(|p| p.seq == seq) {
            self.probe = None;
            if p.asked == 0 {
                self.health_down();
            }
            if let Some(i) = cx.peers.find(p.target) {
                cx.peers.get_mut(i).pong_received = now;
                cx.peers.get_mut(i).ping_sent = crate::peers::NO_PING;
            }
            return;
        }
        // An indirect probe we ran for someone: pass the ACK on.
        if let Some(k) = self.relays.iter().position(|r| r.seq == seq) {
            let r = self.relays.swap_remove(k);
            queue(
                cx,
                r.requester,
                MessageType::Ack,
                r.their_seq,
                NodeId(0),
                true,
            );
            return;
        }
        // A join answered: the node there is a member, and ours to sync with.
        if let Some(k) = self.joins.iter().position(|j| j.seq == seq && j.to == from) {
            self.joins.swap_remove(k);
            if known.is_none() {
                let m = Self::sender_alive(h, from);
                self.add(cx, now, &m, PeerState::Alive, Via::Rumor);
            }
            self.start_fetch(cx, now, from, true);
            return;
        }
        // A handshake: the ACK to our challenge proves the address.
        if seq & HANDSHAKE_SEQ_BIT != 0 {
            if let Some(i) = known.filter(|&i| cx.peers.get(i).state == PeerState::Handshake) {
                if self.side[i].since.as_micros() as u32 == seq {
                    self.admit(cx, now, i, PeerState::Alive, NodeId(0), Via::Rumor);
                    // The SYNC that opened the handshake gets its answer
                    // now: our digest, so that it pushes what we lack and
                    // goes on fetching what it lacks (a joiner, in rounds).
                    answer_sync(cx, from);
                }
            }
        }
    }

    fn handle_sync(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        known: Option<usize>,
        from: Endpoint,
        h: &Header,
        d: SyncDigest<'_>,
    ) {
        let member = known.filter(|&i| cx.peers.get(i).is_member());
        let Some(_) = member else {
            // An address not proven: challenge it with a PROBE (30 bytes,
            // no more than the SYNC's 33 or more) and hold it in handshake.
            let i = match known {
                Some(i) => i,
                None => {
                    let m = Self::sender_alive(h, from);
                    match self.add(cx, now, &m, PeerState::Handshake, Via::Rumor) {
                        Some(i) => i,
                        None => return,
                    }
                }
            };
            let seq = (cx.rng.next_u64() as u32) | HANDSHAKE_SEQ_BIT;
            // The challenge rides in `since`, unused while in handshake.
            self.side[i].since = Instant::from_micros(u64::from(seq));
            cx.peers.get_mut(i).inbound = true;
            queue(cx, from, MessageType::Probe, seq, NodeId(0), true);
            return;
        };
        let answer = d.answer();
        // An answer to the SYNC of our exchange: its digest says whether
        // we still differ. We push what it lacks in the exchange's first
        // round only (after that it has had it), and ask again while rounds
        // are left.
        let ours = self.digest(cx, d.log2());
        let fetch = self.fetch.as_mut().filter(|f| answer && f.with == from);
        let push = fetch.as_ref().is_none_or(|f| f.first_round());
        let differ = sync::differ(&ours, |b| d.bucket(b));
        let Some(differ) = differ else {
            if let Some(f) = fetch {
                f.done();
            }
            return;
        };
        if d.check() {
            // A check (one bucket) that differs: our full digest, so that
            // the exchange goes on bucket by bucket, not with our whole table.
            answer_sync(cx, from);
            return;
        }
        if let Some(f) = fetch {
            f.answered(cx, now);
        }
        if push {
            let newest = cx.peers.len().saturating_sub(1);
            if let Some(job) =
                self.jobs
                    .start(from, d.log2(), differ, cx.config.sync_chunks(), newest, now)
            {
                queue(cx, from, MessageType::State, job, NodeId(0), false);
            }
        }
        if !answer {
            // Push-pull: our digest back, so that it sends what we lack.
            answer_sync(cx, from);
        }
    }

    /// A STATE from `from` brought `new` members in `records`: the pace of
    /// the exchange's next round.
    fn fetch_more(&mut self, from: Endpoint, new: usize, records: usize) {
        if let Some(f) = self.fetch.as_mut().filter(|f| f.with == from) {
            f.news(new, records);
        }
    }

    fn apply_all(
        &mut self,
        cx: &mut Cx<'_>,
        now: Instant,
        h: &Header,
        from: Endpoint,
        records: impl Iterator<Item = Member> + Clone,
        via: Via,
    ) {
        // The records' lookups, pipelined by the table (`peers/batch.rs`): a
        // STATE answer's 40 records would otherwise be 80 cache misses in a
        // row at 5,000 members.
        let mut lookups = cx.peers.lookups(records.clone().map(|m| m.id));
        for mut m in records {
            let hint = lookups.next_hint(cx.peers);
            cx.copies.count_entry(m.id, m.health == Health::Dead);
            if m.endpoint.ip().is_unspecified() {
                if m.id != h.sender {
                    continue; // an address only its sender can give
                }
                m.endpoint = from;
            }
            self.apply(cx, now, &m, via, hint);
        }
    }

    /// Merges one member record (SWIM's rules, with lives); `hint` from the
    /// pipelined lookups.
    fn apply(&mut self, cx: &mut Cx<'_>, now: Instant, m: &Member, via: Via, hint: Option<usize>) {
        if m.id == cx.me.id {
            self.about_me(cx, m);
            return;
        }
        let Some(i) = cx.peers.find_hinted(m.id, hint) else {
            if m.health != Health::Dead {
                let state = match m.health {
                    Health::Suspect => PeerState::Pfail,
                    _ => PeerState::Alive,
                };
                self.add(cx, now, m, state, via);
            }
            return;
        };
        let held = self.record(cx, i);
        if cx.peers.get(i).state == PeerState::Handshake {
            return; // proven by its own ACK, not by hearsay
        }
        match records::compare(
            (held.life, held.refute, held.health),
            (m.life, m.refute, m.health),
        ) {
            Verdict::Stale => {}
            Verdict::Confirms => {
                // Lifeguard counts independent suspicions: by whom each was
                // raised, not who forwarded it.
                if self.side[i].confirm(m.suspecter) {
                    self.arm(cx, i);
                    // Lifeguard: a confirmation is news to pass on.
                    self.broadcasts.push(m.id);
                }
            }
            Verdict::Restart | Verdict::Newer | Verdict::Worse => {
                let restart = m.life > held.life;
                if restart {
                    let p = cx.peers.get_mut(i);
                    p.incarnation = m.life;
                    p.endpoint = m.endpoint;
                    cx.outbox.emit(Event::PeerRestarted {
                        id: m.id,
                        incarnation: m.life,
                    });
                }
                self.side[i].refute = m.refute;
                match m.health {
                    Health::Alive => {
                        if held.health == Health::Dead {
                            self.dead.retain(|&x| x != m.id);
                            self.order_insert(cx, i);
                        }
                        cx.set_state(i, PeerState::Alive);
                        if via == Via::Rumor {
                            self.broadcasts.push(m.id);
                        }
                    }
                    Health::Suspect => {
                        if held.health == Health::Dead {
                            self.dead.retain(|&x| x != m.id);
                            self.order_insert(cx, i);
                        }
                        self.suspect(cx, now, i, m.suspecter);
                    }
                    Health::Dead if held.health != Health::Dead => {
                        self.declare_dead(cx, now, i, false)
                    }
                    Health::Dead => self.broadcasts.push(m.id),
                }
                self.rehash(cx, i);
            }
        }
    }

    /// A record about ourselves: refute a suspicion or a death in this life.
    fn about_me(&mut self, cx: &mut Cx<'_>, m: &Member) {
        if m.life != cx.me.incarnation || m.health == Health::Alive || m.refute < self.refute {
            return;
        }
        self.refute = m.refute + 1;
        // Lifeguard: being suspected is a sign we are the slow one.
        self.health_up(cx);
        self.broadcasts.push(cx.me.id);
    }
}

/// Our digest to `to`, as the answer to its SYNC.
fn answer_sync(cx: &mut Cx<'_>, to: Endpoint) {
    queue(cx, to, MessageType::Sync, SYNC_ANSWER_SEQ, NodeId(0), false);
}
