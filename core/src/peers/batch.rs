//! The peer table's batched access: lookups and scans that request their
//! cache lines ahead of use, so that the misses of many peers overlap. The
//! protocol's rules call these and never prefetch themselves; nothing here
//! changes a result (a hint is checked before it is trusted).
//!
//! A peer table is cold when a datagram arrives (1,000 peers are 90 KB, and
//! the simulator runs 1,000 tables), and a lookup is two dependent cache
//! misses (index slot, then peer record); the cron's scan and a section's
//! random picks each land on scattered records.

use super::PeerTable;
use crate::ids::NodeId;
use crate::rng::Rng;
use crate::time::Instant;

/// How many lookups and picks are prepared ahead: enough to overlap a dozen
/// cache misses or more, few enough that the lines are still cached when
/// they are read.
const LOOKAHEAD: usize = 16;

/// How many random picks a caller warms ahead of its draws
/// ([`PeerTable::warm_draws`]).
pub(crate) const WARM_AHEAD: usize = LOOKAHEAD;

/// How far ahead of its scan the cron requests the records it will read.
const SCAN_AHEAD: usize = 64;

/// Lookups of a known sequence of ids (a gossip section's), pipelined: the
/// index slot of an id is requested 2 × [`LOOKAHEAD`] ids before its lookup,
/// its record [`LOOKAHEAD`] before. Call [`next_hint`](Self::next_hint) once
/// per id, in order, and pass the hint to [`PeerTable::find_hinted`]; the
/// table may change in between (a hint is checked when used).
#[derive(Debug)]
pub(crate) struct Lookups<I> {
    far: I,
    near: I,
    hints: [Option<usize>; LOOKAHEAD],
    k: usize,
}

impl PeerTable {
    /// Starts pipelined lookups of `ids` (see [`Lookups`]).
    #[inline]
    pub(crate) fn lookups<I: Iterator<Item = NodeId> + Clone>(&self, ids: I) -> Lookups<I> {
        let (mut far, mut near) = (ids.clone(), ids);
        far.by_ref()
            .take(2 * LOOKAHEAD)
            .for_each(|id| self.prefetch_slot(id));
        let mut hints = [None; LOOKAHEAD];
        for (h, id) in hints.iter_mut().zip(near.by_ref()) {
            *h = self.hint(id);
        }
        Lookups {
            far,
            near,
            hints,
            k: 0,
        }
    }

    /// Requests the records that the next `n` draws of `ahead.index(known)`
    /// land on (a draw of `len()` or more is no peer): a caller that draws
    /// the same picks from a clone of its generator warms them before use.
    #[inline]
    pub(crate) fn warm_draws(&self, ahead: &mut Rng, known: usize, n: usize) {
        for _ in 0..n {
            let pick = ahead.index(known);
            if pick < self.len() {
                self.warm(pick);
            }
        }
    }
}

impl<I: Iterator<Item = NodeId>> Lookups<I> {
    /// The hint for the next id of the sequence, and the next ids' lines
    /// requested.
    #[inline]
    pub(crate) fn next_hint(&mut self, table: &PeerTable) -> Option<usize> {
        let slot = self.k % LOOKAHEAD;
        self.k += 1;
        let hint = self.hints[slot];
        self.hints[slot] = self.near.next().and_then(|id| table.hint(id));
        if let Some(id) = self.far.next() {
            table.prefetch_slot(id);
        }
        hint
    }
}

/// The cron's scan over the peers whose due time has come
/// ([`PeerTable::due`]), reading 8 bytes a peer that is not due and
/// requesting the records of those due [`SCAN_AHEAD`] peers ahead.
#[derive(Debug, Default)]
pub(crate) struct DueScan {
    i: usize,
    ahead: usize,
}

impl DueScan {
    /// The next peer due at `now`, from the scan's position on. In debug
    /// builds `skipped` sees each peer passed over, with its index and due
    /// time (to check that nothing was due).
    /// After acting on the peer, call [`kept`](Self::kept) if it is still
    /// in the table; if it was removed, the last peer moved into its slot
    /// and the scan looks at that slot again.
    #[inline]
    pub(crate) fn next(
        &mut self,
        table: &PeerTable,
        now: Instant,
        skipped: impl Fn(usize, &super::Peer, Instant),
    ) -> Option<usize> {
        while self.i < table.len() {
            let i = self.i;
            if table.due(i) > now {
                if cfg!(debug_assertions) {
                    skipped(i, table.get(i), table.due(i));
                }
                self.i += 1;
                continue;
            }
            self.ahead = self.ahead.max(i);
            while self.ahead < (i + SCAN_AHEAD).min(table.len()) {
                if table.due(self.ahead) <= now {
                    table.prefetch_record(self.ahead);
                }
                self.ahead += 1;
            }
            return Some(i);
        }
        None
    }

    /// The peer [`next`](Self::next) returned is still in the table: move on.
    #[inline]
    pub(crate) fn kept(&mut self) {
        self.i += 1;
    }
}
