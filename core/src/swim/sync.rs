//! swim's anti-entropy (docs/design/swim.md §7): a digest of the membership
//! in buckets, and the STATE answers that carry the members of the buckets
//! that differ.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use crate::ids::{Endpoint, NodeId};
use crate::peers::{PeerState, PeerTable};
use crate::rng::mix64;
use crate::wire::{MAX_SYNC_LOG2, SYNC_BUCKET_LEN};

use super::records::Side;

/// Most STATE answers in progress; a SYNC beyond them waits for the next.
pub(crate) const MAX_JOBS: usize = 16;

/// Digest buckets, as log2, for `members` members in datagrams of
/// `max_datagram` bytes: about 16 members a bucket, as many buckets as fit.
pub(crate) fn buckets_log2(members: usize, max_datagram: usize) -> u8 {
    let fit = max_datagram.saturating_sub(crate::wire::HEADER_LEN + 1) / SYNC_BUCKET_LEN;
    let mut log2 = 0u8;
    while log2 < MAX_SYNC_LOG2 && (1usize << (log2 + 1)) <= fit && (16usize << log2) < members {
        log2 += 1;
    }
    log2
}

/// The bucket member `id` falls in.
pub(crate) fn bucket(id: NodeId, log2: u8) -> usize {
    match log2 {
        0 => 0,
        l => (mix64(id.0) >> (64 - u32::from(l))) as usize,
    }
}

/// What a member contributes to its bucket: its id, life, refutations and
/// health. Dead members and those in handshake are left out: a dead member
/// is kept only for `dead_retention` and nodes forget it at different
/// times, which must not keep two digests apart.
fn member_hash(id: NodeId, life: u32, refute: u32, state: PeerState) -> Option<u64> {
    let health = match state {
        PeerState::Alive => 0,
        PeerState::Pfail => 1,
        PeerState::Fail | PeerState::Handshake => return None,
    };
    Some(mix64(
        id.0 ^ mix64((u64::from(life) << 32) | u64::from(refute)) ^ health,
    ))
}

/// The digest of everything held, self included.
pub(crate) fn digest(
    peers: &PeerTable,
    side: &[Side],
    me: (NodeId, u32, u32),
    log2: u8,
) -> Vec<u64> {
    let mut out = vec![0u64; 1 << log2];
    if let Some(h) = member_hash(me.0, me.1, me.2, PeerState::Alive) {
        out[bucket(me.0, log2)] ^= h;
    }
    for (p, s) in peers.iter().zip(side) {
        if let Some(h) = member_hash(p.id, p.incarnation, s.refute, p.state) {
            out[bucket(p.id, log2)] ^= h;
        }
    }
    out
}

/// A STATE answer in progress: the buckets that differed, and where the
/// walk through the table stands (position `usize::MAX`: self, first).
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) to: Endpoint,
    pub(crate) log2: u8,
    /// Bit per bucket: it differed.
    pub(crate) differ: Vec<u64>,
    pub(crate) next: usize,
    pub(crate) self_done: bool,
    /// STATE datagrams it may still send.
    pub(crate) chunks: u32,
    /// An id for the outgoing descriptors that refer to it.
    pub(crate) id: u32,
}

impl Job {
    pub(crate) fn differs(&self, b: usize) -> bool {
        self.differ[b / 64] & (1 << (b % 64)) != 0
    }
}

/// The answers in progress.
#[derive(Clone, Debug, Default)]
pub(crate) struct Jobs {
    pub(crate) list: VecDeque<Job>,
    next_id: u32,
}

impl Jobs {
    /// Starts an answer to a SYNC whose buckets `theirs` differ from `ours`
    /// in at least one place; returns its id, or None when none differ or
    /// too many answers are in progress.
    pub(crate) fn start(
        &mut self,
        to: Endpoint,
        log2: u8,
        ours: &[u64],
        theirs: impl Fn(usize) -> u64,
        chunks: u32,
    ) -> Option<u32> {
        let mut differ = vec![0u64; ours.len().div_ceil(64)];
        let mut any = false;
        for (b, &h) in ours.iter().enumerate() {
            if h != theirs(b) {
                differ[b / 64] |= 1 << (b % 64);
                any = true;
            }
        }
        if !any || self.list.len() >= MAX_JOBS {
            return None;
        }
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.list.push_back(Job {
            to,
            log2,
            differ,
            next: 0,
            self_done: false,
            chunks,
            id: self.next_id,
        });
        Some(self.next_id)
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Job> {
        self.list.iter_mut().find(|j| j.id == id)
    }

    pub(crate) fn finish(&mut self, id: u32) {
        self.list.retain(|j| j.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_with_the_membership_and_fit_a_datagram() {
        assert_eq!(buckets_log2(3, 1400), 0);
        assert_eq!(buckets_log2(64, 1400), 2);
        assert_eq!(buckets_log2(256, 1400), 4);
        // 1,400 bytes hold 171 hashes: 128 buckets at most.
        assert_eq!(buckets_log2(5000, 1400), 7);
        assert_eq!(buckets_log2(1 << 20, 65_507), MAX_SYNC_LOG2);
        for log2 in 0..=MAX_SYNC_LOG2 {
            assert!(bucket(NodeId(u64::MAX), log2) < 1 << log2);
        }
    }
}
