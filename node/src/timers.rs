//! Deadlines of the nodes of one I/O thread, and the clock they are read on.
//!
//! A binary heap of `(deadline, node)` with lazy deletion: rescheduling pushes a
//! new entry and leaves the old one to be skipped when it surfaces (the current
//! deadline per node is kept beside the heap). A core node's deadline only moves
//! when its tick fires, so the heap holds about one entry per node and each tick
//! costs one pop and one push, O(log n): 60 to 120 ns at 10,000 nodes on the
//! 2-core reference machine (the `timers` figure of `datapath-bench`), so
//! 10,000 nodes ticking 10 times a second spend about 1 % of one core on their
//! deadlines, far below the ticks themselves. A hashed wheel would make this
//! O(1) but rounds deadlines to its slot width; not worth it at that cost.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use gossip_core::Instant;

/// The process's monotonic clock as `gossip_core::Instant` (µs since the
/// clock's origin). Copies share the origin, so all threads agree on `now`.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: std::time::Instant,
    /// The UNIX time at the origin: where nodes place their `Instant` zero
    /// on the wall clock they gossip PONG seconds on (`Node::set_epoch`).
    epoch: std::time::Duration,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        let origin = std::time::Instant::now();
        // A clock set before 1970 reads as the epoch: PONG seconds then line
        // up with this process's nodes only, as before.
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Clock { origin, epoch }
    }

    /// The UNIX time at the clock's origin.
    pub fn epoch(&self) -> std::time::Duration {
        self.epoch
    }

    /// Now, in the core's units.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Deadlines keyed by node index (dense, `u32`).
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(u64, u32)>>,
    /// Current deadline per node, in µs; `u64::MAX` when none.
    current: Vec<u64>,
    live: usize,
}

const NONE: u64 = u64::MAX;

impl Timers {
    /// No deadlines.
    pub fn new() -> Self {
        Timers::default()
    }

    /// Sets node `node`'s deadline (replacing any earlier one), or clears it.
    pub fn schedule(&mut self, node: u32, at: Option<Instant>) {
        let i = node as usize;
        if i >= self.current.len() {
            self.current.resize(i + 1, NONE);
        }
        let at = at.map_or(NONE, Instant::as_micros);
        let was = self.current[i];
        if was == at {
            return;
        }
        self.current[i] = at;
        match (was == NONE, at == NONE) {
            (true, false) => self.live += 1,
            (false, true) => self.live -= 1,
            _ => {}
        }
        if at != NONE {
            self.heap.push(Reverse((at, node)));
        }
        // Stale entries pile up only if deadlines move without firing; rebuild
        // when they outnumber the live ones so memory stays O(nodes).
        if self.heap.len() > 2 * self.live + 64 {
            self.compact();
        }
    }

    /// The node's current deadline.
    pub fn deadline(&self, node: u32) -> Option<Instant> {
        self.current
            .get(node as usize)
            .filter(|&&at| at != NONE)
            .map(|&at| Instant::from_micros(at))
    }

    /// Removes and returns a node whose deadline is at or before `now`, with
    /// that deadline. The node has no deadline afterwards until rescheduled.
    pub fn pop_due(&mut self, now: Instant) -> Option<(u32, Instant)> {
        let now = now.as_micros();
        while let Some(&Reverse((at, node))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if self.current[node as usize] == at {
                self.current[node as usize] = NONE;
                self.live -= 1;
                return Some((node, Instant::from_micros(at)));
            }
        }
        None
    }

    /// The earliest deadline.
    pub fn earliest(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, node))) = self.heap.peek() {
            if self.current[node as usize] == at {
                return Some(Instant::from_micros(at));
            }
            self.heap.pop();
        }
        None
    }

    /// Deadlines set.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no deadline is set.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn compact(&mut self) {
        let current = &self.current;
        self.heap
            .retain(|&Reverse((at, node))| current[node as usize] == at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> Instant {
        Instant::from_micros(us)
    }

    #[test]
    fn due_nodes_come_out_in_deadline_order_and_rescheduling_replaces() {
        let mut timers = Timers::new();
        timers.schedule(0, Some(t(30)));
        timers.schedule(1, Some(t(10)));
        timers.schedule(2, Some(t(20)));
        timers.schedule(2, Some(t(40))); // moves node 2 after node 0
        assert_eq!(timers.earliest(), Some(t(10)));
        assert_eq!(timers.pop_due(t(35)), Some((1, t(10))));
        assert_eq!(timers.pop_due(t(35)), Some((0, t(30))));
        assert_eq!(timers.pop_due(t(35)), None);
        assert_eq!(timers.earliest(), Some(t(40)));
        assert_eq!(timers.len(), 1);
        timers.schedule(2, None);
        assert!(timers.is_empty());
        assert_eq!(timers.pop_due(t(1_000)), None);
    }

    #[test]
    fn stale_entries_are_compacted_away() {
        let mut timers = Timers::new();
        for round in 0..1_000u64 {
            for node in 0..10 {
                timers.schedule(node, Some(t(round * 100 + u64::from(node))));
            }
        }
        assert!(timers.heap.len() <= 2 * 10 + 64 + 1);
        assert_eq!(timers.len(), 10);
        assert_eq!(timers.pop_due(t(u64::MAX - 1)).map(|(n, _)| n), Some(0));
    }
}
