//! Rumor mongering (Demers 1987 §1.4) over a node's datagrams: rounds, the
//! rumor block a PING, PONG or RUMOR carries (hot rumors, acks, a pull
//! request), and what a received block changes.

use super::{sender_tag, Cx, Epidemic, OUT_HOT, OUT_PULL};
use crate::epidemic::data::EntryRef;
use crate::epidemic::rumor::Trigger;
use crate::ids::Endpoint;
use crate::outbox::{Outgoing, Skip};
use crate::profile::Membership;
use crate::swim::log10_sends;
use crate::wire::{
    ack_id, Ack, Header, MembersWriter, MessageType, RumorBlock, RumorWriter, SectionWriter,
    ACK_LEN, BARE_LEN, ENTRY_LEN_V6, ENTRY_OVERHEAD, RUMOR_BLOCK_OVERHEAD,
};

impl Epidemic {
    /// Demers 1987, rumor mongering: each round, `fanout` random members.
    pub(super) fn rumor_round(&mut self, cx: &mut Cx<'_>, mark: usize) {
        if cx.config.membership() == Membership::Swim {
            // Under swim the hot rumors ride its PROBEs, ACKs and gossip
            // datagrams (`append_after_members`), no RUMOR rounds of their
            // own, and the stop rule's k scales with N as swim's retransmit
            // limit does, so that receptions per node stay near k.
            let k = u32::from(cx.config.rumor().stop.k) * log10_sends(cx.peers.len());
            self.rumors.set_stop_k(k);
            self.rumors.end_round();
            return;
        }
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

    /// Whether every hot rumor fits after the largest section this node sends.
    pub(super) fn hot_block_fits_a_ping(&self, cx: &Cx<'_>) -> bool {
        let e = self;
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
        let section = (BARE_LEN + wanted * ENTRY_LEN_V6).min(cx.payload);
        section + RUMOR_BLOCK_OVERHEAD + hot <= cx.payload
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
        let tag = sender_tag(from);
        for entry in block.entries().iter() {
            let knew = self.take_entry(cx, &entry, sender, Some(tag));
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

    pub(super) fn push_ack(&mut self, cx: &mut Cx<'_>, to: Endpoint, ack: Ack) {
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

    /// Bytes the rumor block of a swim datagram to `to` would fill (its acks
    /// for `to`, every hot rumor, the block's overhead), counted no further
    /// than `cap`: the fair split's claim (docs/design/swim.md §6).
    pub(crate) fn block_wants(&self, cx: &Cx<'_>, to: Endpoint, cap: usize) -> usize {
        if !cx.config.dissemination().rumors() {
            return 0;
        }
        let acks = self.acks.iter().filter(|(t, _)| *t == to).count();
        let mut want = acks * ACK_LEN;
        for h in self.rumors.hot() {
            if want >= cap {
                break;
            }
            if let Some((v, _)) = self.store.get(&h.key) {
                want += ENTRY_OVERHEAD + h.key.len() + v.len();
            }
        }
        match want {
            0 => 0,
            w => (w + RUMOR_BLOCK_OVERHEAD).min(cap),
        }
    }

    /// Finishes a swim PROBE, ACK, PROBE_REQ or gossip STATE with a rumor
    /// block of hot rumors (and acks for `out.to`) in the room its members
    /// left. Returns the length and whether a block went in.
    pub(crate) fn append_after_members(
        &mut self,
        cx: &mut Cx<'_>,
        out: &Outgoing,
        w: MembersWriter<'_>,
    ) -> (usize, bool) {
        let mut r = RumorWriter::after_members(w);
        let out = Outgoing {
            rumor: out.rumor | OUT_HOT,
            ..*out
        };
        self.write_block(cx, &out, &mut r);
        let carried = r.acks() + r.entries() > 0;
        if carried {
            cx.outbox.stats.data.rumor_blocks_piggybacked += 1;
        }
        // A piggybacked block always finishes (empty, it is left out).
        (r.finish().unwrap_or(0), carried)
    }

    /// Writes pending acks for `out.to`, the pull flag and hot rumors as asked.
    pub(super) fn write_block(&mut self, cx: &mut Cx<'_>, out: &Outgoing, r: &mut RumorWriter<'_>) {
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
            // Under swim a rumor is not sent back to the peer it came from
            // (an ACK would carry back what its PROBE brought): every send
            // of the few its limit allows goes to someone who may not know.
            let back = (cx.config.membership() == Membership::Swim).then(|| sender_tag(out.to));
            let mut visited = 0;
            while visited < n {
                let h = &hot[(start + visited) % n];
                if Some(h.from()) == back {
                    visited += 1;
                    continue;
                }
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
