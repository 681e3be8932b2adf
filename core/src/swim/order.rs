//! The probe order: the members alive or suspect, shuffled (SWIM's
//! round-robin over a random permutation), each member's place kept in its
//! [`Side::pos`](super::records::Side) so that a death removes it in O(1)
//! (a third of 5,000 members dying at once made each removal's walk of the
//! order a tenth of the CPU).

use super::records::NOT_IN_ORDER;
use super::{Cx, Swim};

impl Swim {
    /// Puts member `i` at a random place in the order, so that a newcomer is
    /// probed within one pass and nobody probes newcomers first. The member
    /// that held that place moves to the end.
    pub(super) fn order_insert(&mut self, cx: &mut Cx<'_>, i: usize) {
        let at = cx.rng.index(self.order.len() + 1);
        self.order.push(cx.peers.get(i).id);
        let last = self.order.len() - 1;
        if at != last {
            self.order.swap(at, last);
            self.set_pos(cx, last);
        }
        self.side[i].pos = at as u32;
    }

    /// Takes member `i` out of the order (if it is there): the last member
    /// takes its place.
    pub(super) fn order_remove(&mut self, cx: &Cx<'_>, i: usize) {
        let p = core::mem::replace(&mut self.side[i].pos, NOT_IN_ORDER);
        if p == NOT_IN_ORDER {
            return;
        }
        let p = p as usize;
        debug_assert_eq!(self.order.get(p), Some(&cx.peers.get(i).id));
        self.order.swap_remove(p);
        if p < self.order.len() {
            self.set_pos(cx, p);
        }
        self.cursor = self.cursor.min(self.order.len());
    }

    /// Records that the member at place `k` of the order is there.
    pub(super) fn set_pos(&mut self, cx: &Cx<'_>, k: usize) {
        if let Some(j) = cx.peers.find(self.order[k]) {
            self.side[j].pos = k as u32;
        }
    }
}
