//! The observation channel: what a reader outside the I/O threads (the
//! loadgen, a test) sees of every hosted node without slowing the datapath.
//!
//! - **Events**: each I/O thread pushes every `gossip_core::Event` of its nodes,
//!   with the node's runtime-wide index and a timestamp from the runtime's one
//!   [`Clock`](crate::timers::Clock) (shared by all threads, so times from
//!   different threads compare), into its own bounded lock-free queue
//!   ([`EventQueue`]). The I/O thread never waits: when the queue is full the
//!   event is dropped and counted in [`EventQueue::dropped`] (and in the
//!   `gossip_observed_events_dropped_total` metric), never silently.
//! - **Per-node counters**: each thread publishes every running node's sent and
//!   received traffic by message type into a [`StatsBoard`] slot (a seqlock of
//!   relaxed atomics, one writer per slot) each time it publishes its metrics,
//!   with the time of publishing, so that a reader computes rates over exactly
//!   the interval between two publishes.
//!
//! Observation is off unless [`RuntimeConfig::observe`](crate::runtime::RuntimeConfig)
//! asks for it; then it costs one queue push per event and, every publish, one
//! store per counter per node.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use gossip_core::event::Traffic;
use gossip_core::wire::MessageType;
use gossip_core::{Event, Instant, Stats};

/// One event of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObservedEvent {
    /// The node's runtime-wide index.
    pub node: usize,
    /// When its I/O thread drained it (runtime clock, µs).
    pub at: Instant,
    /// What happened.
    pub event: Event,
}

/// One I/O thread's bounded event queue: the thread pushes, any reader pops.
#[derive(Debug)]
pub struct EventQueue {
    queue: ArrayQueue<ObservedEvent>,
    dropped: AtomicU64,
}

impl EventQueue {
    /// A queue of `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        EventQueue {
            queue: ArrayQueue::new(capacity.max(1)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Offers an event (the I/O thread); a full queue drops it and counts it.
    pub fn push(&self, event: ObservedEvent) {
        if self.queue.push(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the oldest event, if any.
    pub fn pop(&self) -> Option<ObservedEvent> {
        self.queue.pop()
    }

    /// Events dropped because the queue was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Most events held at once.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }
}

/// What [`StatsBoard::read`] returns: one node's traffic as last published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCounters {
    /// When its thread published these (runtime clock).
    pub at: Instant,
    /// Whether the node was running then.
    pub running: bool,
    /// Its incarnation then (0 until its first restart).
    pub incarnation: u32,
    /// Sent, by type code (counts of the current incarnation only).
    pub sent: [Traffic; MessageType::COUNT],
    /// Received, by type code.
    pub received: [Traffic; MessageType::COUNT],
}

impl NodeCounters {
    /// Sent traffic of one type.
    pub fn sent(&self, kind: MessageType) -> Traffic {
        self.sent[usize::from(kind.code())]
    }

    /// Received traffic of one type.
    pub fn received(&self, kind: MessageType) -> Traffic {
        self.received[usize::from(kind.code())]
    }
}

/// Words of one slot: sequence, time, state, then 2 × 2 × COUNT counters.
const HEAD: usize = 3;
const SLOT: usize = HEAD + 4 * MessageType::COUNT;
/// A reader retries a slot this often while its writer is mid-publish.
const READ_TRIES: usize = 1_000;

/// Per-node traffic counters for readers, one slot per runtime-wide node
/// index. Each slot has one writer (the I/O thread hosting that node) and is
/// guarded by a sequence number (a seqlock): the writer makes it odd, stores,
/// makes it even; a reader retries while it is odd or changed under it. The
/// writer never waits.
#[derive(Debug)]
pub struct StatsBoard {
    words: Box<[AtomicU64]>,
}

impl StatsBoard {
    /// A board for `nodes` nodes, all never published.
    pub fn new(nodes: usize) -> Self {
        StatsBoard {
            words: (0..nodes * SLOT).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Nodes it has slots for.
    pub fn len(&self) -> usize {
        self.words.len() / SLOT
    }

    /// Whether it has no slot.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Publishes node `node`'s counters (its hosting I/O thread only).
    /// `stats` is `None` for a node that is not running (its counters are
    /// then zero). Out-of-range indices are ignored.
    pub fn publish(&self, node: usize, at: Instant, incarnation: u32, stats: Option<&Stats>) {
        let Some(w) = self.words.get(node * SLOT..(node + 1) * SLOT) else {
            return;
        };
        let seq = w[0].load(Ordering::Relaxed);
        w[0].store(seq.wrapping_add(1), Ordering::Relaxed);
        // The odd sequence must be visible before any data store.
        fence(Ordering::Release);
        w[1].store(at.as_micros(), Ordering::Relaxed);
        let running = u64::from(stats.is_some());
        w[2].store(running | u64::from(incarnation) << 1, Ordering::Relaxed);
        let zero = [Traffic::default(); MessageType::COUNT];
        let (sent, received) = stats.map_or((&zero, &zero), |s| (&s.sent, &s.received));
        for (i, t) in sent.iter().chain(received.iter()).enumerate() {
            w[HEAD + 2 * i].store(t.datagrams, Ordering::Relaxed);
            w[HEAD + 2 * i + 1].store(t.bytes, Ordering::Relaxed);
        }
        w[0].store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Node `node`'s counters as last published, consistent within the slot;
    /// `None` if never published, out of range, or (very unlikely) the
    /// writer kept it busy for every retry.
    pub fn read(&self, node: usize) -> Option<NodeCounters> {
        let w = self.words.get(node * SLOT..(node + 1) * SLOT)?;
        for _ in 0..READ_TRIES {
            let before = w[0].load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let at = Instant::from_micros(w[1].load(Ordering::Relaxed));
            let state = w[2].load(Ordering::Relaxed);
            let mut c = NodeCounters {
                at,
                running: state & 1 == 1,
                incarnation: (state >> 1) as u32,
                sent: [Traffic::default(); MessageType::COUNT],
                received: [Traffic::default(); MessageType::COUNT],
            };
            for (i, t) in c.sent.iter_mut().chain(c.received.iter_mut()).enumerate() {
                t.datagrams = w[HEAD + 2 * i].load(Ordering::Relaxed);
                t.bytes = w[HEAD + 2 * i + 1].load(Ordering::Relaxed);
            }
            // Every data load must complete before the sequence is checked again.
            fence(Ordering::Acquire);
            if w[0].load(Ordering::Relaxed) == before {
                return Some(c);
            }
        }
        None
    }
}

/// What a host needs to feed the channel: its queue and the shared board.
#[derive(Clone, Debug)]
pub struct Observer {
    /// This thread's event queue.
    pub events: std::sync::Arc<EventQueue>,
    /// The runtime-wide board.
    pub board: std::sync::Arc<StatsBoard>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_counts_what_it_drops() {
        let q = EventQueue::new(2);
        let e = ObservedEvent {
            node: 1,
            at: Instant::from_micros(5),
            event: Event::PeerJoined {
                id: gossip_core::NodeId(9),
            },
        };
        for _ in 0..5 {
            q.push(e);
        }
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.pop(), Some(e));
    }

    #[test]
    fn board_slots_read_back_what_was_published() {
        let b = StatsBoard::new(3);
        assert_eq!(b.read(1), None);
        let mut s = Stats::default();
        s.sent[usize::from(MessageType::Ping.code())] = Traffic {
            datagrams: 4,
            bytes: 400,
        };
        b.publish(1, Instant::from_micros(77), 2, Some(&s));
        let c = b.read(1).expect("published");
        assert_eq!(c.at, Instant::from_micros(77));
        assert!(c.running);
        assert_eq!(c.incarnation, 2);
        assert_eq!(c.sent(MessageType::Ping).bytes, 400);
        b.publish(1, Instant::from_micros(80), 2, None);
        let c = b.read(1).expect("published");
        assert!(!c.running);
        assert_eq!(c.sent(MessageType::Ping).datagrams, 0);
        assert_eq!(b.read(7), None);
    }
}
