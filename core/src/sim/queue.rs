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

/// The timeline: a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan 1990) over
/// the 128-bit key (time, lane | class | sequence).
///
/// A discrete-event simulation pops keys in increasing order and pushes keys
/// at or after the last one popped, which is what a radix heap needs: bucket
/// `b` holds the keys whose highest bit differing from the last popped key is
/// bit `b - 1`, so a push is O(1) and each entry moves down at most once per
/// bit. A key below the last popped one (same instant, lower lane: a zero
/// delay to a node already visited, a fault applied now) goes to a small
/// binary heap that is drained first. The pop order is exactly that of a
/// binary heap over the same keys.
///
/// The buckets are linked lists threaded through one arena of slots, and
/// emptied slots go to a free list: a refill relinks entries instead of
/// copying them, and the queue allocates only when it holds more entries than
/// ever before. (With a vector per bucket, a key crossing a high power of two
/// of time, every 2^k µs, lands in a bucket unused until then, which grows.)
#[derive(Debug)]
pub(crate) struct Queue {
    /// The last key moved to `head`: every key in the buckets is above it.
    last: (u64, u64),
    /// The entry whose key is `last` (bucket 0; keys are unique).
    head: Option<Entry>,
    /// First slot of buckets 1..=128, at index b - 1; NIL when empty.
    buckets: [u32; 128],
    /// Bit b - 1 set when bucket b holds entries.
    occupied: u128,
    /// Every bucket's entries, each with the slot of the next in its bucket
    /// (or in the free list).
    slots: Vec<Slot>,
    /// First free slot, or NIL.
    free: u32,
    early: BinaryHeap<Entry>,
    len: usize,
    seq: u64,
}

/// An entry in a bucket's list.
#[derive(Clone, Copy, Debug)]
struct Slot {
    e: Entry,
    next: u32,
}

const NIL: u32 = u32::MAX;

impl Default for Queue {
    fn default() -> Self {
        Queue {
            last: (0, 0),
            head: None,
            buckets: [NIL; 128],
            occupied: 0,
            slots: Vec::new(),
            free: NIL,
            early: BinaryHeap::new(),
            len: 0,
            seq: 0,
        }
    }
}

impl Queue {
    /// Schedules `payload` at `at` on `lane`. Sequence numbers wrap after 2^39
    /// pushes (a year of a 1,000-node cluster); ties are broken by them.
    pub(crate) fn push(&mut self, at: u64, lane: u32, class: u64, payload: u32) {
        let seq = self.seq & ((1 << SEQ_BITS) - 1);
        self.seq += 1;
        let key = u64::from(lane) << LANE_SHIFT | class << SEQ_BITS | seq;
        let e = Entry { at, key, payload };
        self.len += 1;
        // At or before the last key popped. "At" happens once: `last` starts
        // at (0, 0), which the first fault scheduled at time 0 also has.
        if (at, key) <= self.last {
            self.early.push(e);
            return;
        }
        let b = self.bucket(at, key);
        debug_assert!(b > 0, "keys are unique");
        let s = match self.free {
            NIL => {
                self.slots.push(Slot { e, next: NIL });
                (self.slots.len() - 1) as u32
            }
            s => {
                self.free = self.slots[s as usize].next;
                self.slots[s as usize].e = e;
                s
            }
        };
        self.link(b - 1, s);
    }

    /// Puts slot `s` at the front of the bucket at index `i`.
    fn link(&mut self, i: usize, s: u32) {
        self.slots[s as usize].next = self.buckets[i];
        self.buckets[i] = s;
        self.occupied |= 1 << i;
    }

    pub(crate) fn pop(&mut self) -> Option<Entry> {
        if let Some(e) = self.early.pop() {
            self.len -= 1;
            return Some(e);
        }
        if self.head.is_none() {
            self.refill();
        }
        let e = self.head.take()?;
        self.len -= 1;
        Some(e)
    }

    pub(crate) fn peek(&mut self) -> Option<&Entry> {
        if !self.early.is_empty() {
            return self.early.peek();
        }
        if self.head.is_none() {
            self.refill();
        }
        self.head.as_ref()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Slots in the arena: the most entries the buckets ever held at once.
    #[cfg(test)]
    fn arena(&self) -> usize {
        self.slots.len()
    }

    /// Which bucket a key belongs in, relative to `last`.
    fn bucket(&self, at: u64, key: u64) -> usize {
        let x = at ^ self.last.0;
        if x != 0 {
            return 128 - x.leading_zeros() as usize;
        }
        let y = key ^ self.last.1;
        64 - y.leading_zeros() as usize
    }

    /// Moves the smallest key of the lowest non-empty bucket to `head` and
    /// spreads the rest of that bucket over lower buckets.
    fn refill(&mut self) {
        if self.occupied == 0 {
            return;
        }
        let b = self.occupied.trailing_zeros() as usize;
        self.occupied &= !(1 << b);
        let first = core::mem::replace(&mut self.buckets[b], NIL);
        debug_assert_ne!(first, NIL, "an occupied bucket holds entries"); // invariant: the bitmap
        let mut min = (u64::MAX, u64::MAX);
        let mut s = first;
        while s != NIL {
            let slot = &self.slots[s as usize];
            min = min.min((slot.e.at, slot.e.key));
            s = slot.next;
        }
        self.last = min;
        let mut s = first;
        while s != NIL {
            let Slot { e, next } = self.slots[s as usize];
            match self.bucket(e.at, e.key) {
                0 => {
                    self.head = Some(e);
                    self.slots[s as usize].next = self.free;
                    self.free = s;
                }
                nb => self.link(nb - 1, s),
            }
            s = next;
        }
    }
}

/// A datagram in flight: who sent it and its bytes.
#[derive(Debug)]
struct Packet {
    from: u32,
    len: u32,
    class: u8,
    buf: Box<[u8]>,
}

/// Buffer sizes: 64 B, 96 B, 128 B, 192 B, ... (two classes an octave, so a
/// 1,400-byte datagram takes 1,536 bytes, not 2,048), up to 64 KiB.
const MIN_SHIFT: u32 = 6;
const CLASSES: usize = 21;

/// Bytes of class `c`.
const fn class_size(c: usize) -> usize {
    let base = 1usize << (MIN_SHIFT as usize + c / 2);
    match c % 2 {
        0 => base,
        _ => base + base / 2,
    }
}

/// In-flight datagrams in reusable buffers of a few sizes. A node
/// encodes into a buffer of the largest size; a datagram that would fit a
/// smaller class is copied into one and the large buffer reused at once, so a
/// burst of bare 26-byte MEETs costs 64 bytes each, not a whole MTU, and a full
/// datagram is never copied. Buffers return to their class's free list when
/// delivered or dropped; in steady state nothing is allocated.
#[derive(Debug)]
pub(crate) struct Packets {
    slots: Vec<Packet>,
    free: [Vec<u32>; CLASSES],
    max: usize,
}

impl Packets {
    /// Pool for datagrams of at most `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Packets {
            slots: Vec::new(),
            free: Default::default(),
            max,
        }
    }

    /// A buffer of the largest size, to encode the next datagram into.
    pub(crate) fn open(&mut self) -> u32 {
        self.alloc(self.max)
    }

    /// Buffer `i`'s bytes (all of them), to encode into.
    pub(crate) fn buf_mut(&mut self, i: u32) -> &mut [u8] {
        &mut self.slots[i as usize].buf
    }

    /// Seals buffer `i` (from [`open`](Self::open)) as a datagram of `len`
    /// bytes from `from`; returns the index it ended up in.
    pub(crate) fn seal(&mut self, i: u32, from: usize, len: usize) -> u32 {
        let class = class_of(len);
        let i = match class < usize::from(self.slots[i as usize].class) {
            true => {
                let j = self.alloc(len);
                let (src, dst) = two(&mut self.slots, i, j);
                dst.buf[..len].copy_from_slice(&src.buf[..len]);
                self.release(i);
                j
            }
            false => i,
        };
        let p = &mut self.slots[i as usize];
        p.from = from as u32;
        p.len = len as u32;
        i
    }

    /// A copy of packet `i` in another buffer (a duplicate).
    pub(crate) fn duplicate(&mut self, i: u32) -> u32 {
        let (from, len) = (
            self.slots[i as usize].from,
            self.slots[i as usize].len as usize,
        );
        let j = self.alloc(len);
        let (src, dst) = two(&mut self.slots, i, j);
        dst.buf[..len].copy_from_slice(&src.buf[..len]);
        dst.from = from;
        dst.len = len as u32;
        j
    }

    /// Requests packet `i`'s record (sender, length, buffer) into the cache.
    pub(crate) fn prefetch(&self, i: u32) {
        if let Some(p) = self.slots.get(i as usize) {
            crate::peers::prefetch(p);
        }
    }

    pub(crate) fn from(&self, i: u32) -> usize {
        self.slots[i as usize].from as usize
    }

    pub(crate) fn bytes(&self, i: u32) -> &[u8] {
        let p = &self.slots[i as usize];
        &p.buf[..p.len as usize]
    }

    pub(crate) fn release(&mut self, i: u32) {
        let class = usize::from(self.slots[i as usize].class);
        self.free[class].push(i);
    }

    /// Buffers allocated so far (in flight plus free).
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of buffers allocated so far.
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.slots.iter().map(|p| p.buf.len()).sum()
    }

    fn alloc(&mut self, len: usize) -> u32 {
        let class = class_of(len);
        if let Some(i) = self.free[class].pop() {
            return i;
        }
        let size = class_size(class).max(len);
        self.slots.push(Packet {
            from: 0,
            len: 0,
            class: class as u8,
            buf: alloc::vec![0; size].into_boxed_slice(),
        });
        (self.slots.len() - 1) as u32
    }
}

/// The smallest class whose buffers hold `len` bytes.
fn class_of(len: usize) -> usize {
    let shift = len
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
        .max(MIN_SHIFT);
    let mut c = 2 * (shift - MIN_SHIFT) as usize;
    // The half-step below 2^shift, 1.5 × 2^(shift - 1), may already hold it.
    if c > 0 && len <= class_size(c - 1) {
        c -= 1;
    }
    c.min(CLASSES - 1)
}

/// Packets `i` and `j` (distinct), the first shared and the second mutable.
fn two(slots: &mut [Packet], i: u32, j: u32) -> (&Packet, &mut Packet) {
    let (i, j) = (i as usize, j as usize);
    debug_assert_ne!(i, j);
    if i < j {
        let (lo, hi) = slots.split_at_mut(j);
        (&lo[i], &mut hi[0])
    } else {
        let (lo, hi) = slots.split_at_mut(i);
        (&hi[0], &mut lo[j])
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
    fn a_fault_at_time_zero_first_of_all_comes_out_first() {
        // Its key, (0, 0), is the one `last` starts with: it used to index
        // bucket -1 (a panic in release builds).
        let mut q = Queue::default();
        q.push(0, FAULT_LANE, DELIVER, 7);
        q.push(0, 3, TIMER, 8);
        q.push(0, FAULT_LANE, DELIVER, 9);
        let order: Vec<u32> = core::iter::from_fn(|| q.pop().map(|e| e.payload)).collect();
        assert_eq!(order, [7, 9, 8]);
    }

    #[test]
    fn the_radix_queue_pops_in_the_order_of_a_binary_heap() {
        use crate::rng::Rng;
        let mut rng = Rng::new(11);
        let mut q = Queue::default();
        let mut reference = BinaryHeap::new();
        let mut seq = 0u64;
        let mut now = 0u64;
        for round in 0..20_000u32 {
            // Pushes at or after now, some at now on a lower lane (early keys).
            for _ in 0..rng.below(3) {
                let at = now + [0, 1, 250, 100_000][rng.index(4)] + rng.below(3);
                let lane = rng.below(50) as u32;
                let class = rng.below(2);
                q.push(at, lane, class, round);
                let key = u64::from(lane) << LANE_SHIFT | class << SEQ_BITS | seq;
                seq += 1;
                reference.push(Entry {
                    at,
                    key,
                    payload: round,
                });
            }
            if rng.below(2) == 0 {
                let (a, b) = (q.pop(), reference.pop());
                assert_eq!(a, b);
                if let Some(e) = a {
                    now = e.at;
                }
            }
            assert_eq!(q.len(), reference.len());
            assert_eq!(q.peek().copied(), reference.peek().copied());
        }
        while let Some(b) = reference.pop() {
            assert_eq!(q.pop(), Some(b));
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn the_arena_never_outgrows_the_most_entries_held_at_once() {
        // Twelve timers re-armed 50-150 ms ahead (the cron of twelve nodes)
        // for 2^33 µs (2.4 hours): time crosses 2^k µs for every k up to 33,
        // each time filling a bucket never used before; then bursts of 500
        // datagrams (a join) on top, all at one instant and spread out.
        use crate::rng::Rng;
        let mut rng = Rng::new(5);
        let mut q = Queue::default();
        for lane in 0..12 {
            q.push(rng.below(100_000), lane, TIMER, 0);
        }
        let mut most = q.len();
        while let Some(e) = q.pop() {
            if e.at >= 1 << 33 {
                break;
            }
            if e.class() == DELIVER {
                continue;
            }
            q.push(e.at + 50_000 + rng.below(100_000), e.lane(), TIMER, 0);
            if rng.below(100_000) == 0 {
                for k in 0..500 {
                    q.push(e.at + [0, rng.below(1 << 20)][k % 2], 20, DELIVER, 0);
                }
            }
            most = most.max(q.len());
            assert!(q.arena() <= most, "{} slots for {most} entries", q.arena());
        }
        assert_eq!(q.arena(), most);
        assert!(most > 500, "{most}");
    }

    #[test]
    fn every_length_gets_the_smallest_class_that_holds_it() {
        assert_eq!(class_size(0), 64);
        assert_eq!(class_size(1), 96);
        assert_eq!(class_size(CLASSES - 1), 65_536);
        for len in 1..=65_536 {
            let c = class_of(len);
            assert!(class_size(c) >= len, "{len} in {c}");
            assert!(c == 0 || class_size(c - 1) < len, "{len} fits {}", c - 1);
        }
    }

    #[test]
    fn duplicates_copy_bytes_and_buffers_are_reused_by_size() {
        let mut p = Packets::new(1400);
        let encode = |p: &mut Packets, bytes: &[u8]| {
            let i = p.open();
            p.buf_mut(i)[..bytes.len()].copy_from_slice(bytes);
            p.seal(i, 7, bytes.len())
        };
        let a = encode(&mut p, b"abc");
        let b = p.duplicate(a);
        assert_eq!(p.bytes(b), b"abc");
        assert_eq!(p.from(b), 7);
        let c = encode(&mut p, &[9; 1400]);
        assert_eq!(p.bytes(c), &[9; 1400][..]);
        // One 1.5 KiB buffer (reused for both encodes) and two 64-byte ones.
        assert_eq!(p.capacity_bytes(), 1536 + 64 + 64);
        for i in [a, b, c] {
            p.release(i);
        }
        encode(&mut p, &[1; 60]);
        encode(&mut p, &[2; 1]);
        encode(&mut p, &[3; 1400]);
        assert_eq!(p.capacity(), 3, "same classes again: no new buffers");
    }
}
