//! Gossip sections (Redis `clusterSendPing`'s gossip and
//! `clusterProcessGossipSection`): which peers a MEET, PING or PONG describes,
//! chosen when it is encoded, and what a received section changes.

use super::{Cx, Membership};
use crate::peers::{Peer, PeerState, WARM_AHEAD};
use crate::profile::PongGossip;
use crate::time::{millis_u32, Instant};
use crate::wire::{
    EntryFlags, GossipEntry, MessageType, Section, SectionWriter, ENTRY_LEN_V4, ENTRY_LEN_V6,
};

impl Membership {
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
        // The entries' lookups, pipelined by the table (`peers/batch.rs`).
        let mut lookups = cx.peers.lookups(section.ids());
        for e in section {
            let hint = lookups.next_hint(cx.peers);
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
                    cx.fail_if_quorum(now, i);
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
        let reserved = cx
            .failure
            .pfail()
            .iter()
            .take(cx.failure.pfail_wanted())
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
        // generator draws the same picks WARM_AHEAD ahead of the loop and
        // the table requests their records, so the misses overlap; the
        // loop's own draws, and so the section, are those it always made.
        let mut ahead = cx.rng.clone();
        let mut unwarmed = tries;
        let first = WARM_AHEAD.min(unwarmed);
        cx.peers.warm_draws(&mut ahead, known, first);
        unwarmed -= first;
        while fresh > 0 && picks < wanted && tries > 0 {
            // One more each draw: the window stays WARM_AHEAD picks ahead.
            if unwarmed > 0 {
                cx.peers.warm_draws(&mut ahead, known, 1);
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
        let n = cx.failure.pfail().len().min(cx.failure.pfail_wanted());
        if n == 0 {
            return;
        }
        // From a random start, so that when not all PFAIL nodes fit, each
        // still gets its turn.
        let first = cx.rng.index(n);
        for k in 0..n {
            let Some(p) = cx.peers.by_id(cx.failure.pfail()[(first + k) % n]) else {
                continue;
            };
            let e = entry(p, now, pong_gossip, self.epoch);
            if used + e.encoded_len() > budget || !w.push(&e) {
                return;
            }
            used += e.encoded_len();
        }
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
    use crate::ids::{Endpoint, NodeId};

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
}
