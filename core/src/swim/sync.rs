//! swim's anti-entropy (docs/design/swim.md §7): a digest of the membership
//! in buckets, and the STATE answers that carry the members of the buckets
//! that differ.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use core::time::Duration;

use crate::ids::{Endpoint, NodeId};
use crate::peers::{PeerState, PeerTable};
use crate::rng::mix64;
use crate::time::Instant;
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
/// health. Dead members and those in handshake add nothing (0): a dead
/// member is kept only for `dead_retention` and nodes forget it at different
/// times, which must not keep two digests apart.
pub(crate) fn member_hash(id: NodeId, life: u32, refute: u32, state: PeerState) -> u64 {
    let health = match state {
        PeerState::Alive => 0,
        PeerState::Pfail => 1,
        PeerState::Fail | PeerState::Handshake => return 0,
    };
    mix64(id.0 ^ mix64((u64::from(life) << 32) | u64::from(refute)) ^ health)
}

/// The digest of everything held, self included, computed afresh: O(members).
pub(crate) fn digest(
    peers: &PeerTable,
    side: &[Side],
    me: (NodeId, u32, u32),
    log2: u8,
) -> Vec<u64> {
    let mut out = vec![0u64; 1 << log2];
    out[bucket(me.0, log2)] ^= member_hash(me.0, me.1, me.2, PeerState::Alive);
    for (p, s) in peers.iter().zip(side) {
        out[bucket(p.id, log2)] ^= member_hash(p.id, p.incarnation, s.refute, p.state);
    }
    out
}

/// Buckets of the kept digest, as log2: a digest of fewer buckets is folded
/// from it. Enough for any datagram up to 8 KB ([`buckets_log2`]); a finer
/// one is computed afresh.
const KEPT_LOG2: u8 = 10;

/// The digest of the members held (self not included), kept up to date as
/// each member changes, so that a SYNC sent or answered costs a fold of
/// 1,024 buckets instead of a walk of the table: at 5,000 members the walk
/// (three hashes a member over 0.5 MB of records) was half of a forming
/// 5,000-node run's CPU (174 CPU-s in 100 s before, 88 after).
#[derive(Debug)]
pub(crate) struct Kept {
    buckets: Vec<u64>,
}

impl Default for Kept {
    fn default() -> Self {
        Kept {
            buckets: vec![0; 1 << KEPT_LOG2],
        }
    }
}

impl Kept {
    /// Member `id`'s part changes by `delta` (its old part XOR its new).
    pub(crate) fn toggle(&mut self, id: NodeId, delta: u64) {
        if delta != 0 {
            self.buckets[bucket(id, KEPT_LOG2)] ^= delta;
        }
    }

    /// The digest at `log2` buckets with ourselves (`me`) in it, or None
    /// when that is finer than kept.
    pub(crate) fn fold(&self, me: (NodeId, u32, u32), log2: u8) -> Option<Vec<u64>> {
        if log2 > KEPT_LOG2 {
            return None;
        }
        let mut out = vec![0u64; 1 << log2];
        let shift = KEPT_LOG2 - log2;
        for (b, &h) in self.buckets.iter().enumerate() {
            out[b >> shift] ^= h;
        }
        out[bucket(me.0, log2)] ^= member_hash(me.0, me.1, me.2, PeerState::Alive);
        Some(out)
    }
}

/// The buckets in which `theirs` differs from `ours`, a bit each; None when
/// none does.
pub(crate) fn differ(ours: &[u64], theirs: impl Fn(usize) -> u64) -> Option<Vec<u64>> {
    let mut differ = vec![0u64; ours.len().div_ceil(64)];
    let mut any = false;
    for (b, &h) in ours.iter().enumerate() {
        if h != theirs(b) {
            differ[b / 64] |= 1 << (b % 64);
            any = true;
        }
    }
    any.then_some(differ)
}

/// One exchange of digests this node began with `with`, in rounds: each a
/// SYNC, answered with STATE (what `with` holds in the buckets that differ,
/// from where its last answer to us stopped) and with its digest, which says
/// whether another round is wanted. Rounds follow a tick apart while
/// answers are mostly news (a joiner fetching), ten ticks apart otherwise;
/// there are enough of them for `with` to walk its whole table once.
/// Digests that still differ are not reason enough to go on: while nodes join
/// every few milliseconds they always do, and every node would sync every
/// tick (at 1,000 nodes: 45,000 STATE datagrams a second, each mostly
/// members the asker holds).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fetch {
    pub(crate) with: Endpoint,
    rounds_left: u32,
    rounds: u32,
    fast: bool,
    pub(crate) next: Option<Instant>,
    /// When its last SYNC went out.
    pub(crate) sent: Instant,
}

impl Fetch {
    /// An exchange with `with` whose SYNC went out; `members` held, answers
    /// of `chunks` datagrams.
    pub(crate) fn new(
        with: Endpoint,
        eager: bool,
        members: usize,
        chunks: u32,
        now: Instant,
    ) -> Self {
        // A STATE datagram holds about 50 members.
        let rounds = members / (chunks as usize * 50).max(1) + 1;
        Fetch {
            with,
            rounds_left: u32::try_from(rounds).unwrap_or(u32::MAX),
            rounds: 0,
            fast: eager,
            next: None,
            sent: now,
        }
    }

    /// The exchange's first answer has not come yet.
    pub(crate) fn first_round(&self) -> bool {
        self.rounds == 0
    }

    /// The last STATE brought `new` members of `records`.
    pub(crate) fn news(&mut self, new: usize, records: usize) {
        self.fast = new > 0 && new * 4 >= records;
    }

    /// `with` answered and we still differ: another round, if any are left.
    /// Rounds that are mostly news (a joiner fetching, whose own table says
    /// little of how many rounds it needs) do not count against them.
    pub(crate) fn answered(&mut self, cx: &super::Cx<'_>, now: Instant) {
        self.rounds += 1;
        if self.rounds >= MAX_ROUNDS || (!self.fast && self.rounds_left == 0) {
            self.next = None;
            return;
        }
        if !self.fast {
            self.rounds_left -= 1;
        }
        let wait = match self.fast {
            true => cx.config.tick(),
            false => cx.config.tick() * 10,
        };
        self.next = Some(now + wait);
    }

    /// We hold the same as `with`.
    pub(crate) fn done(&mut self) {
        self.rounds_left = 0;
        self.next = None;
    }

    pub(crate) fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|at| now >= at)
    }

    /// A round is waiting to go or to be answered (for at most
    /// [`JOB_LIFETIME`]: an answer lost is not waited for).
    pub(crate) fn busy(&self, now: Instant) -> bool {
        self.next.is_some() || now.saturating_duration_since(self.sent) < JOB_LIFETIME
    }
}

/// A STATE answer in progress: the buckets that differed, and where the
/// walk through the table stands. The walk goes from the newest member
/// backwards (the table is in the order members were learned), wrapping: a
/// node that lacks members mostly lacks the latest joins, and the members of a
/// differing bucket lie all over the table, so an answer cut at `chunks`
/// datagrams carries part of most buckets. A node that asks again within
/// [`JOB_LIFETIME`] (a joiner fetching) is answered from where the last
/// answer stopped: from the newest each time, it would get the same members
/// again and again (its buckets still differ).
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) to: Endpoint,
    pub(crate) log2: u8,
    /// Bit per bucket: it differed.
    pub(crate) differ: Vec<u64>,
    /// Where the walk began (walking back), and how many members it has passed.
    pub(crate) start: usize,
    pub(crate) walked: usize,
    pub(crate) self_done: bool,
    /// STATE datagrams it may still send.
    pub(crate) chunks: u32,
    /// An id for the outgoing descriptors that refer to it.
    pub(crate) id: u32,
    /// When it began: a job whose next datagram never got encoded (its
    /// descriptor refused by a full transmit queue, a buffer too small) is
    /// dropped after [`JOB_LIFETIME`] rather than holding a place forever
    /// (16 such, and a node would never answer a SYNC again).
    pub(crate) began: Instant,
}

/// Most rounds of one exchange: 5,000 members at 8 datagrams of 50 a round
/// take 13.
const MAX_ROUNDS: u32 = 256;

/// How long an answer may take; its datagrams go out at the next poll.
const JOB_LIFETIME: Duration = Duration::from_secs(1);

impl Job {
    pub(crate) fn differs(&self, b: usize) -> bool {
        self.differ[b / 64] & (1 << (b % 64)) != 0
    }

    /// The table position the walk stands at, in a table of `len` (> 0)
    /// members: `walked` back from `start`, wrapping.
    pub(crate) fn position(&self, len: usize) -> usize {
        (self.start % len + len - self.walked % len) % len
    }
}

/// The answers in progress.
#[derive(Clone, Debug, Default)]
pub(crate) struct Jobs {
    pub(crate) list: VecDeque<Job>,
    next_id: u32,
    /// Where the last answers to recent askers stopped, and when: at most
    /// [`MAX_JOBS`], oldest first.
    resume: VecDeque<(Endpoint, usize, Instant)>,
}

impl Jobs {
    /// Starts an answer to a SYNC whose digest differs from ours in the
    /// buckets `differ` (from [`differ`]); returns its id, or None when too
    /// many answers are in progress.
    ///
    /// The answer walks the table back from where the last one to `to`
    /// stopped, if that was within [`JOB_LIFETIME`], else from the newest
    /// member (`newest`), and ends when it has passed every member or sent
    /// `chunks` datagrams. Every member of a differing bucket goes, though
    /// the asker lacks only some: the digest cannot say which.
    pub(crate) fn start(
        &mut self,
        to: Endpoint,
        log2: u8,
        differ: Vec<u64>,
        chunks: u32,
        newest: usize,
        now: Instant,
    ) -> Option<u32> {
        self.list
            .retain(|j| now.saturating_duration_since(j.began) < JOB_LIFETIME);
        if self.list.len() >= MAX_JOBS {
            return None;
        }
        let start = match self.resume.iter().position(|&(e, _, _)| e == to) {
            Some(k) => match self.resume.remove(k) {
                Some((_, at, when)) if now.saturating_duration_since(when) < JOB_LIFETIME => at,
                _ => newest,
            },
            None => newest,
        };
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.list.push_back(Job {
            to,
            log2,
            differ,
            start,
            walked: 0,
            self_done: false,
            chunks,
            id: self.next_id,
            began: now,
        });
        Some(self.next_id)
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut Job> {
        self.list.iter_mut().find(|j| j.id == id)
    }

    /// Answer `id` is done; `len` members are in the table. (Its datagrams
    /// go out within a poll, so the time it began stands for the time it
    /// stopped.)
    pub(crate) fn finish(&mut self, id: u32, len: usize) {
        let Some(k) = self.list.iter().position(|j| j.id == id) else {
            return;
        };
        let Some(j) = self.list.remove(k) else {
            return;
        };
        if self.resume.len() >= MAX_JOBS {
            self.resume.pop_front();
        }
        self.resume
            .push_back((j.to, j.position(len.max(1)), j.began));
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
