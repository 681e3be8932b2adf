//! What a swim node knows of each member beyond the peer table's record, and
//! the rules that merge a received member record into it (SWIM §4.2 with
//! lives: docs/design/swim.md §3).

use alloc::vec::Vec;

use crate::ids::NodeId;
use crate::time::Instant;
use crate::wire::Health;

/// Most independent suspicions remembered per suspect (Lifeguard counts
/// confirmations up to its k; beyond that the timeout is at its minimum).
pub(crate) const MAX_SUSPECTERS: usize = 8;

/// [`Side::pos`] of a member not in the probe order.
pub(crate) const NOT_IN_ORDER: u32 = u32::MAX;

/// Per-member state the peer table does not hold, kept parallel to it
/// (index for index: inserted at the end, swap-removed).
#[derive(Clone, Debug)]
pub(crate) struct Side {
    /// Suspicions refuted in the member's current life.
    pub(crate) refute: u32,
    /// Its place in the probe order (`Swim::order`), or [`NOT_IN_ORDER`]
    /// (dead, or in handshake): removal in O(1).
    pub(crate) pos: u32,
    /// While suspect: since when; while dead: since when (forgotten after
    /// `dead_retention`); in handshake: the seq of our PROBE. One field, as
    /// a member is one of these at a time.
    pub(crate) since: Instant,
    /// While suspect: who suspected it (self included), at most
    /// [`MAX_SUSPECTERS`]. A list that is empty until a suspicion, not an
    /// array of eight, as a 5,000-member table would carry 5,000 of them
    /// (0.3 MB a node) for the few members ever suspected.
    pub(crate) suspecters: Vec<NodeId>,
    /// What the member adds to the kept digest now (`sync::Kept`), so that a
    /// change takes its old part out.
    pub(crate) hash: u64,
}

impl Side {
    pub(crate) fn new(refute: u32) -> Self {
        Side {
            refute,
            pos: NOT_IN_ORDER,
            since: Instant::ZERO,
            suspecters: Vec::new(),
            hash: 0,
        }
    }

    /// Starts a suspicion at `now` by `by`.
    pub(crate) fn suspect(&mut self, now: Instant, by: NodeId) {
        self.since = now;
        self.suspecters.clear();
        self.confirm(by);
    }

    /// The suspicion added last (none: `NodeId(0)`).
    pub(crate) fn latest_suspecter(&self) -> NodeId {
        self.suspecters.last().copied().unwrap_or(NodeId(0))
    }

    /// Adds an independent suspicion; returns whether it was new.
    pub(crate) fn confirm(&mut self, by: NodeId) -> bool {
        if self.suspecters.contains(&by) || self.suspecters.len() == MAX_SUSPECTERS {
            return false;
        }
        self.suspecters.push(by);
        true
    }
}

/// How a received record compares with what we hold about the same member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Older or equal news: nothing to do.
    Stale,
    /// A new life (the member restarted).
    Restart,
    /// Same life, newer refutation count: adopt the record's health.
    Newer,
    /// Same life and count, worse health (alive → suspect → dead): adopt it.
    Worse,
    /// Same life, count and health suspect: another suspicion of it.
    Confirms,
}

/// SWIM's precedence over `(life, refute, health)`.
pub(crate) fn compare(held: (u32, u32, Health), got: (u32, u32, Health)) -> Verdict {
    let (hl, hr, hh) = held;
    let (gl, gr, gh) = got;
    match (gl.cmp(&hl), gr.cmp(&hr)) {
        (core::cmp::Ordering::Greater, _) => Verdict::Restart,
        (core::cmp::Ordering::Less, _) => Verdict::Stale,
        (_, core::cmp::Ordering::Greater) => Verdict::Newer,
        (_, core::cmp::Ordering::Less) => Verdict::Stale,
        _ if gh > hh => Verdict::Worse,
        _ if gh == Health::Suspect && hh == Health::Suspect => Verdict::Confirms,
        _ => Verdict::Stale,
    }
}

/// The suspicion timeout after `confirmations` independent suspicions
/// (Lifeguard §IV-B): from `max` down to `min` as
/// `max - (max - min) × ln(c + 1) / ln(k + 1)`, `k` the confirmations
/// expected; in microseconds.
pub(crate) fn suspicion_timeout(min_us: u64, max_us: u64, confirmations: u32, k: u32) -> u64 {
    if k == 0 || max_us <= min_us {
        return min_us;
    }
    let frac = ln(f64::from(confirmations) + 1.0) / ln(f64::from(k) + 1.0);
    let t = max_us as f64 - (max_us - min_us) as f64 * frac;
    (t as u64).max(min_us)
}

/// log10(max(n, 1)), at least 1, as SWIM's scaling factors use it.
pub(crate) fn log10_at_least_one(n: usize) -> f64 {
    (ln(n.max(1) as f64) / core::f64::consts::LN_10).max(1.0)
}

/// Natural log for positive finite `x` (no_std has none): `x = m × 2^e`
/// with m in [1, 2), ln m by the atanh series (error below 1e-7 there).
pub(crate) fn ln(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 0.0;
    }
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let mut term = z;
    let mut sum = 0.0;
    for k in 0..12 {
        sum += term / f64::from(2 * k + 1);
        term *= z2;
    }
    e as f64 * core::f64::consts::LN_2 + 2.0 * sum
}

/// The members waiting to be told on, with how often each was sent
/// (memberlist's `TransmitLimitedQueue`, by id: the record is read from the
/// table when sent, so newer news about a member replaces older).
#[derive(Clone, Debug, Default)]
pub(crate) struct Broadcasts {
    /// (member, times sent), in no particular order.
    items: Vec<(NodeId, u32)>,
}

impl Broadcasts {
    /// Most members waiting; beyond it the most-sent is dropped.
    pub(crate) const CAP: usize = 4096;

    /// Queues news about `id` (again from zero sends if it was waiting).
    pub(crate) fn push(&mut self, id: NodeId) {
        self.push_spent(id, 0);
    }

    /// Queues news about `id` as if already sent `spent` times; news waiting
    /// keeps the fewer sends it has.
    pub(crate) fn push_spent(&mut self, id: NodeId, spent: u32) {
        if let Some(item) = self.items.iter_mut().find(|(x, _)| *x == id) {
            item.1 = item.1.min(spent);
            return;
        }
        if self.items.len() >= Self::CAP {
            if let Some(worst) = (0..self.items.len()).max_by_key(|&i| self.items[i].1) {
                self.items.swap_remove(worst);
            }
        }
        self.items.push((id, spent));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Puts the `first` least-sent in front, least-sent first, so that a
    /// datagram takes the freshest news: O(waiting) per datagram, not a
    /// sort of the whole queue (thousands while a large cluster forms).
    pub(crate) fn least_sent_first(&mut self, first: usize) {
        let first = first.min(self.items.len());
        if first == 0 {
            return;
        }
        if first < self.items.len() {
            self.items
                .select_nth_unstable_by_key(first - 1, |&(_, n)| n);
        }
        self.items[..first].sort_unstable_by_key(|&(_, n)| n);
    }

    /// The waiting member at position `i` (after
    /// [`Broadcasts::least_sent_first`]).
    pub(crate) fn get(&self, i: usize) -> Option<NodeId> {
        self.items.get(i).map(|&(id, _)| id)
    }

    /// The member at position `i` was sent once more; it leaves the queue
    /// once sent `limit` times. Call for positions in decreasing order.
    pub(crate) fn sent(&mut self, i: usize, limit: u32) {
        let item = &mut self.items[i];
        item.1 += 1;
        if item.1 >= limit {
            self.items.swap_remove(i);
        }
    }

    /// Forgets news about `id` (the member was forgotten).
    pub(crate) fn remove(&mut self, id: NodeId) {
        self.items.retain(|(x, _)| *x != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_life_then_refutations_then_health() {
        use Health::*;
        assert_eq!(compare((1, 0, Alive), (2, 0, Alive)), Verdict::Restart);
        assert_eq!(compare((2, 5, Dead), (1, 9, Alive)), Verdict::Stale);
        assert_eq!(compare((1, 0, Dead), (1, 1, Alive)), Verdict::Newer);
        assert_eq!(compare((1, 1, Alive), (1, 0, Dead)), Verdict::Stale);
        assert_eq!(compare((1, 1, Alive), (1, 1, Suspect)), Verdict::Worse);
        assert_eq!(compare((1, 1, Suspect), (1, 1, Dead)), Verdict::Worse);
        assert_eq!(compare((1, 1, Suspect), (1, 1, Suspect)), Verdict::Confirms);
        assert_eq!(compare((1, 1, Dead), (1, 1, Suspect)), Verdict::Stale);
        assert_eq!(compare((1, 1, Alive), (1, 1, Alive)), Verdict::Stale);
    }

    #[test]
    fn the_suspicion_timeout_shrinks_with_confirmations_to_its_minimum() {
        let (min, max) = (1_000_000, 4_000_000);
        assert_eq!(suspicion_timeout(min, max, 0, 3), max);
        let one = suspicion_timeout(min, max, 1, 3);
        let two = suspicion_timeout(min, max, 2, 3);
        assert!(max > one && one > two && two > min, "{one} {two}");
        assert_eq!(suspicion_timeout(min, max, 3, 3), min);
        assert_eq!(suspicion_timeout(min, max, 7, 3), min);
    }

    #[test]
    fn ln_and_log10_are_close_enough() {
        for (x, want) in [
            (1.0, 0.0),
            (2.0, core::f64::consts::LN_2),
            (10.0, core::f64::consts::LN_10),
            (5000.0, 8.517_193),
        ] {
            assert!((ln(x) - want).abs() < 1e-5, "ln {x} = {}", ln(x));
        }
        assert!((log10_at_least_one(64) - 1.806_18).abs() < 1e-4);
        assert_eq!(log10_at_least_one(3), 1.0);
    }

    #[test]
    fn broadcasts_go_least_sent_first_and_leave_after_their_limit() {
        let mut b = Broadcasts::default();
        b.push(NodeId(1));
        b.push(NodeId(2));
        b.least_sent_first(usize::MAX);
        b.sent(1, 2);
        b.sent(0, 2);
        b.push(NodeId(3));
        b.least_sent_first(usize::MAX);
        assert_eq!(b.get(0), Some(NodeId(3)));
        for i in (0..b.len()).rev() {
            b.sent(i, 2);
        }
        // 1 and 2 were sent twice: gone; 3 once.
        assert_eq!(b.len(), 1);
        b.push(NodeId(3)); // news again: from zero
        b.remove(NodeId(3));
        assert!(b.is_empty());
    }

    #[test]
    fn a_member_record_stays_small_until_suspected() {
        // Kept for every member at every node: 5,000 × 5,000 of them at the
        // issue's scale. (With the suspecters inline it was 88 bytes.)
        assert!(
            core::mem::size_of::<Side>() <= 48,
            "{}",
            core::mem::size_of::<Side>()
        );
        let mut s = Side::new(0);
        s.suspect(Instant::ZERO, NodeId(5));
        assert!(s.confirm(NodeId(6)));
        assert!(!s.confirm(NodeId(6)), "the same suspicion twice");
        assert_eq!(s.latest_suspecter(), NodeId(6));
        for k in 7..20 {
            s.confirm(NodeId(k));
        }
        assert_eq!(s.suspecters.len(), MAX_SUSPECTERS);
    }
}
