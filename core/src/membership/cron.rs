//! The cron (Redis `clusterCron`): random-sample pings, the per-peer rules
//! (ping, resend, PFAIL, a partial view's suspicion timeout and forgetting,
//! handshake expiry and MEET resends), each peer's next due time, and the
//! outstanding `meet`s.

use core::time::Duration;

use super::{Cx, Membership, PendingMeet};
use crate::event::Event;
use crate::peers::{DueScan, Peer, PeerState};
use crate::time::{micros, Instant};
use crate::wire::MessageType;

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
        // Most peers need nothing at a given tick. Each has a due time, kept
        // beside the table, before which no rule of `decide` can fire for
        // it, so the scan reads 8 bytes a peer rather than its 72-byte
        // record (the simulator's 1,000 tables of 1,000 peers are 72 MB:
        // streamed from memory ten times a second, issue 3).
        let mut scan = DueScan::default();
        let not_due = |i: usize, p: &Peer, due: Instant| {
            debug_assert!(
                rules.decide(p, now) == Actions::default(),
                "peer {i} due at {due:?}, yet acted on at {now:?}"
            );
        };
        while let Some(i) = scan.next(cx.peers, now, not_due) {
            if !self.cron_peer(cx, now, i, &rules) {
                continue; // forgotten: the last peer moved into slot i
            }
            let due = rules.next_due(cx.peers.get(i));
            cx.peers.set_due(i, due);
            scan.kept();
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
            cx.set_state(i, PeerState::Pfail);
            cx.outbox.emit(Event::PeerPfail { id });
        }
        if act.fail {
            cx.declare_fail(i);
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
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Endpoint, NodeId};
    use crate::peers::NO_PING;
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
