//! swim's sending half: its messages encoded from their descriptors, with
//! waiting updates piggybacked and STATE answers written chunk by chunk.

use crate::ids::NodeId;
use crate::outbox::{Outgoing, Skip};
use crate::peers::PeerState;
use crate::wire::{
    encode_nack, encode_sync, encode_sync_check, Header, Health, Member, MembersWriter,
    MessageType, MEMBER_LEN_V4,
};

use super::{queue, sync, Cx, Swim, SYNC_ANSWER_SEQ, SYNC_CHECK_SEQ};

/// A swim message as encoded: whole, or a PROBE, ACK, PROBE_REQ or gossip
/// STATE whose members are written, open for a rumor block of user updates
/// (the node finishes it: `dissemination/` owns that block).
pub(crate) enum Encoded<'b> {
    Done(usize),
    Members(MembersWriter<'b>),
}

impl Swim {
    /// Encodes a queued swim message. `rumor_want`: the bytes the rumor block
    /// of user updates would fill (0: none); the fair split (design §6)
    /// keeps up to half the free room for it.
    pub(crate) fn encode<'b>(
        &mut self,
        cx: &mut Cx<'_>,
        out: &Outgoing,
        buf: &'b mut [u8],
        header: &Header,
        rumor_want: usize,
    ) -> Result<Encoded<'b>, Skip> {
        let seq = out.about_incarnation;
        let done = |r: Result<usize, Skip>| r.map(Encoded::Done);
        match out.kind {
            MessageType::Nack => done(encode_nack(buf, header, seq).map_err(|_| Skip::TooSmall)),
            MessageType::Sync => {
                let members = cx.failure.members();
                if seq == SYNC_CHECK_SEQ {
                    let hash = self.digest(cx, 0)[0];
                    return done(encode_sync_check(buf, header, hash).map_err(|_| Skip::TooSmall));
                }
                let log2 = sync::buckets_log2(members, buf.len());
                let hashes = self.digest(cx, log2);
                done(
                    encode_sync(buf, header, &hashes, seq == SYNC_ANSWER_SEQ)
                        .map_err(|_| Skip::TooSmall),
                )
            }
            MessageType::State if seq != 0 => done(self.encode_job(cx, seq, buf, header)),
            _ => {
                let target = match out.kind {
                    MessageType::ProbeReq => match cx.peers.find(out.about) {
                        Some(i) => Some(self.record(cx, i)),
                        None => return Err(Skip::Nothing),
                    },
                    _ => None,
                };
                let mut w = MembersWriter::new(buf, header, seq, target.as_ref())
                    .map_err(|_| Skip::TooSmall)?;
                if out.bare {
                    return Ok(Encoded::Done(w.finish()));
                }
                // The fair split: membership may take all the room the
                // user updates do not want, and at least half of it.
                let free = w.remaining();
                let keep = rumor_want.min(free / 2);
                self.piggyback(cx, &mut w, keep);
                Ok(Encoded::Members(w))
            }
        }
    }

    /// Waiting updates into `w`, least-sent first, as many as fit in all
    /// but `keep` bytes of its room.
    fn piggyback(&mut self, cx: &Cx<'_>, w: &mut MembersWriter<'_>, keep: usize) {
        if self.broadcasts.is_empty() {
            return;
        }
        let limit = self.retransmits(cx);
        let room = |w: &MembersWriter<'_>| w.remaining().saturating_sub(keep);
        // No more can fit than the smallest records would.
        self.broadcasts
            .least_sent_first(room(w) / MEMBER_LEN_V4 + 1);
        // The first `k` went out (a member forgotten meanwhile counts as
        // sent: its news is moot); no list of them, so nothing allocates.
        let mut k = 0;
        while let Some(id) = self.broadcasts.get(k) {
            let m = match id == cx.me.id {
                true => Some(self.own_record(cx)),
                false => cx.peers.find(id).map(|i| self.record(cx, i)),
            };
            if m.is_some_and(|m| m.encoded_len() > room(w) || !w.push(&m)) {
                break;
            }
            k += 1;
        }
        for i in (0..k).rev() {
            self.broadcasts.sent(i, limit);
        }
    }

    fn encode_job(
        &mut self,
        cx: &mut Cx<'_>,
        id: u32,
        buf: &mut [u8],
        header: &Header,
    ) -> Result<usize, Skip> {
        let own = self.own_record(cx);
        let Some(job) = self.jobs.get_mut(id) else {
            return Err(Skip::Nothing);
        };
        let mut w = MembersWriter::new(buf, header, 0, None).map_err(|_| Skip::TooSmall)?;
        if !job.self_done {
            if job.differs(sync::bucket(own.id, job.log2)) && !w.push(&own) {
                return Err(Skip::TooSmall);
            }
            job.self_done = true;
        }
        let mut full = false;
        let len = cx.peers.len();
        while job.walked < len {
            let at = job.position(len);
            let p = cx.peers.get(at);
            let listed = matches!(p.state, PeerState::Alive | PeerState::Pfail);
            if listed && job.differs(sync::bucket(p.id, job.log2)) {
                let m = Member {
                    id: p.id,
                    life: p.incarnation,
                    refute: self.side[at].refute,
                    health: if p.state == PeerState::Pfail {
                        Health::Suspect
                    } else {
                        Health::Alive
                    },
                    endpoint: p.endpoint,
                    suspecter: self.side[at].latest_suspecter(),
                };
                if !w.push(&m) {
                    full = true;
                    break;
                }
            }
            job.walked += 1;
        }
        job.chunks = job.chunks.saturating_sub(1);
        let (to, more) = (job.to, full && job.chunks > 0);
        if more {
            queue(cx, to, MessageType::State, id, NodeId(0), false);
        } else {
            self.jobs.finish(id, len);
        }
        if w.count() == 0 {
            return Err(Skip::Nothing);
        }
        Ok(w.finish())
    }
}
