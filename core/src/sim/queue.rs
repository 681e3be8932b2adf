//! The event queue and the pool of in-flight datagrams.

use alloc::boxed::Box;
use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// Lane of the timeline's own changes (faults); node `i` has lane `i + 1`.
pub(crate) const FAULT_LANE: u32 = 0;
pub(crate) const DELIVER: u64 = 0;
pub(crate) const TIMER: u64 = 1;
const SEQ_BITS: u32 = 39;
const LANE_SHIFT: u32 = SEQ_BITS + 1;
/// Most nodes a simulation holds (lanes are 24 bits).
pub(crate) const MAX_NODES: usize = (1 << 24) - 2;

/// One scheduled thing. Ordered by (time, lane, class, sequence): at one
/// instant faults come first, then each node in index order, and within a
/// node its datagrams (in the order sent) before its timer, so that a wakeup
/// feeds every datagram of the instant and then fires the deadline, exactly
/// as the drive loop does. The sequence number makes every tie deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) at: u64,
    /// lane (24 bits) | class (1 bit) | sequence (39 bits).
    key: u64,
    /// Packet index (deliveries) or fault index (faults).
    pub(crate) payload: u32,
}

impl Entry {
    pub(crate) fn lane(&self) -> u32 {
        (self.key >> LANE_SHIFT) as u32
    }

    pub(crate) fn class(&self) -> u64 {
        (self.key >> SEQ_BITS) & 1
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (other.at, other.key).cmp(&(self.at, self.key))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The timeline: a binary heap of entries plus the sequence counter.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl Queue {
    pub(crate) fn push(&mut self, at: u64, lane: u32, class: u64, payload: u32) {
        let seq = self.seq & ((1 << SEQ_BITS) - 1);
        self.seq += 1;
        let key = u64::from(lane) << LANE_SHIFT | class << SEQ_BITS | seq;
        self.heap.push(Entry { at, key, payload });
    }

    pub(crate) fn pop(&mut self) -> Option<Entry> {
        self.heap.pop()
    }

    pub(crate) fn peek(&self) -> Option<&Entry> {
        self.heap.peek()
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

/// A datagram in flight: who sent it and its bytes.
#[derive(Debug)]
struct Packet {
    from: u32,
    len: u32,
    buf: Box<[u8]>,
}

/// In-flight datagrams in reusable buffers: a node encodes straight into one,
/// and it returns to the free list when delivered or dropped. In steady state
/// nothing is allocated.
#[derive(Debug, Default)]
pub(crate) struct Packets {
    slots: Vec<Packet>,
    free: Vec<u32>,
    size: usize,
}

impl Packets {
    pub(crate) fn new(size: usize) -> Self {
        Packets {
            slots: Vec::new(),
            free: Vec::new(),
            size,
        }
    }

    /// A free buffer's index.
    pub(crate) fn alloc(&mut self) -> u32 {
        if let Some(i) = self.free.pop() {
            return i;
        }
        self.slots.push(Packet {
            from: 0,
            len: 0,
            buf: alloc::vec![0; self.size].into_boxed_slice(),
        });
        (self.slots.len() - 1) as u32
    }

    /// The whole buffer, to encode into.
    pub(crate) fn buf_mut(&mut self, i: u32) -> &mut [u8] {
        &mut self.slots[i as usize].buf
    }

    pub(crate) fn set(&mut self, i: u32, from: usize, len: usize) {
        let p = &mut self.slots[i as usize];
        p.from = from as u32;
        p.len = len as u32;
    }

    /// A copy of packet `i` in a new buffer (a duplicate).
    pub(crate) fn duplicate(&mut self, i: u32) -> u32 {
        let j = self.alloc();
        let (from, len) = (
            self.slots[i as usize].from,
            self.slots[i as usize].len as usize,
        );
        let (a, b) = match i < j {
            true => {
                let (lo, hi) = self.slots.split_at_mut(j as usize);
                (&lo[i as usize], &mut hi[0])
            }
            false => {
                let (lo, hi) = self.slots.split_at_mut(i as usize);
                (&hi[0], &mut lo[j as usize])
            }
        };
        b.buf[..len].copy_from_slice(&a.buf[..len]);
        b.from = from;
        b.len = len as u32;
        j
    }

    pub(crate) fn from(&self, i: u32) -> usize {
        self.slots[i as usize].from as usize
    }

    pub(crate) fn bytes(&self, i: u32) -> &[u8] {
        let p = &self.slots[i as usize];
        &p.buf[..p.len as usize]
    }

    pub(crate) fn release(&mut self, i: u32) {
        self.free.push(i);
    }

    /// Buffers allocated so far (in flight plus free).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_by_time_then_lane_then_class_then_order() {
        let mut q = Queue::default();
        q.push(5, 2, TIMER, 0);
        q.push(5, 2, DELIVER, 1);
        q.push(5, 1, TIMER, 2);
        q.push(3, 9, TIMER, 3);
        q.push(5, 2, DELIVER, 4);
        q.push(5, FAULT_LANE, DELIVER, 5);
        let order: Vec<u32> = core::iter::from_fn(|| q.pop().map(|e| e.payload)).collect();
        assert_eq!(order, [3, 5, 2, 1, 4, 0]);
    }

    #[test]
    fn duplicates_copy_bytes_and_buffers_are_reused() {
        let mut p = Packets::new(16);
        let a = p.alloc();
        p.buf_mut(a)[..3].copy_from_slice(b"abc");
        p.set(a, 7, 3);
        let b = p.duplicate(a);
        assert_eq!(p.bytes(b), b"abc");
        assert_eq!(p.from(b), 7);
        p.release(a);
        p.release(b);
        p.alloc();
        p.alloc();
        assert_eq!(p.capacity(), 2);
    }
}
