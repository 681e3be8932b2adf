//! `Node`'s calls about data: copies of tracked items (`copies.rs`) and
//! published updates (`dissemination/`).

use crate::copies::{Copies, ItemId};
use crate::dissemination::PublishError;
use crate::epidemic::data::{Stamp, Store};
use crate::epidemic::rumor::Rumors;
use crate::time::Instant;

use super::Node;

impl Node {
    // Copies of tracked items (`copies.rs`).

    /// Starts counting the copies of `item` this node receives from now on
    /// (see [`ItemId`] for what counts). Tracking an item already tracked
    /// changes nothing. Returns false, tracking nothing new, when
    /// [`MAX_TRACKED`](crate::MAX_TRACKED) items are tracked already.
    ///
    /// This is the one call that allocates (the first few times): counting
    /// never does.
    pub fn track(&mut self, item: ItemId) -> bool {
        self.copies.track(item)
    }

    /// Stops counting `item` and forgets its count. Returns whether it was
    /// tracked.
    pub fn untrack(&mut self, item: ItemId) -> bool {
        self.copies.untrack(item)
    }

    /// Stops counting every item.
    pub fn untrack_all(&mut self) {
        self.copies = Copies::default();
    }

    /// Copies of `item` received since [`track`](Node::track) began counting
    /// it (saturating); `None` when it is not tracked. Counts belong to this
    /// `Node`: a restarted node is a new one and starts again from zero.
    pub fn copies(&self, item: ItemId) -> Option<u32> {
        self.copies.get(item)
    }

    // Dissemination (`dissemination/`).

    /// Writes `value` under `key` with a version one above the highest this node
    /// has seen for it, and starts spreading it (as a hot rumor, and through
    /// anti-entropy, as configured). Returns the stamp: version and origin (us).
    ///
    /// # Errors
    /// [`PublishError::Disabled`] when dissemination is off;
    /// [`PublishError::Rejected`] when a store cap refuses it. Nothing changed.
    pub fn publish(
        &mut self,
        now: Instant,
        key: &[u8],
        value: &[u8],
    ) -> Result<Stamp, PublishError> {
        let _ = now; // rounds run from the cron; the write itself is timeless
        let (epidemic, mut cx) = self.dissemination();
        epidemic.publish(&mut cx, key, value)
    }

    /// The value and stamp this node holds for `key`.
    pub fn get(&self, key: &[u8]) -> Option<(&[u8], Stamp)> {
        self.epidemic.store().get(key)
    }

    /// Everything this node holds, in key order (see [`Store::iter`]).
    pub fn store(&self) -> &Store {
        self.epidemic.store()
    }

    /// The hot rumors this node is spreading, and their counters.
    pub fn rumors(&self) -> &Rumors {
        self.epidemic.rumors()
    }
}
