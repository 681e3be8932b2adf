//! `Simulation`: real [`Node`]s on a virtual clock, joined by a [`Network`].

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::capture::{Capture, Sent};
use super::fault::{Fault, FaultLog, Timing};
use super::network::{Fate, NetStats, Network, NetworkParams};
use super::observer::Observer;
use super::queue::{Packets, Queue, DELIVER, FAULT_LANE, TIMER};
use super::trace::TraceHash;
use super::{NodeStatus, BASE_IP, PORT};
use crate::copies::ItemId;
use crate::event::Event;
use crate::ids::{Endpoint, Incarnation, NodeId};
use crate::node::Node;
use crate::profile::Config;
use crate::rng::mix64;
use crate::time::Instant;

pub(super) const NO_TIMER: u64 = u64::MAX;
// Domain separators: each consumer of the seed gets its own stream.
pub(super) const SEED_IDS: u64 = 0x1d5_0000_0000_0001;
pub(super) const SEED_NET: u64 = 0x4e7_0000_0000_0002;
pub(super) const SEED_DRAW: u64 = 0xd4a_0000_0000_0003;
pub(super) const SEED_NODE: u64 = 0x40d_0000_0000_0004;
pub(super) const SEED_EPOCH: u64 = 0xe90_0000_0000_0005;

/// An event a node reported, with when, where, and whose datagram caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// When.
    pub at: Instant,
    /// The node that reported it.
    pub node: usize,
    /// The sender of the datagram being handled, or `None` for a local cause
    /// (its own timer, a command).
    pub from: Option<usize>,
    /// The event.
    pub event: Event,
}

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) node: Option<Node>,
    pub(super) status: NodeStatus,
    pub(super) incarnation: Incarnation,
    /// Time of this node's live timer entry, or NO_TIMER.
    pub(super) timer_at: u64,
    /// Datagrams waiting while paused, and their bytes.
    pub(super) held: VecDeque<u32>,
    pub(super) held_bytes: usize,
    pub(super) ever_started: bool,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            node: None,
            status: NodeStatus::Down,
            incarnation: 0,
            timer_at: NO_TIMER,
            held: VecDeque::new(),
            held_bytes: 0,
            ever_started: false,
        }
    }
}

/// A seeded discrete-event network of real [`Node`]s.
///
/// Node `i` listens on `127.0.0.1 + i`, port 7000 (so 127.0.0.1:7000,
/// 127.0.0.2:7000, ...), and has an id drawn from the seed that it keeps across
/// restarts. The clock jumps from one scheduled thing to the next: a datagram's
/// delivery, a node's deadline, or a [`Fault`]. Same seed, same run, byte for
/// byte: see [`Simulation::trace_hash`].
#[derive(Debug)]
pub struct Simulation {
    pub(super) now: Instant,
    pub(super) seed: u64,
    pub(super) id_key: u64,
    /// Lockstep round in µs; 0 in the timers model.
    pub(super) round_us: u64,
    pub(super) config: Config,
    pub(super) slots: Vec<Slot>,
    pub(super) queue: Queue,
    pub(super) packets: Packets,
    pub(super) faults: Vec<Fault>,
    pub(super) log: FaultLog,
    pub(super) network: Network,
    pub(super) observer: Observer,
    pub(super) trace: TraceHash,
    pub(super) receive_buffer: usize,
    pub(super) track_joins: bool,
    pub(super) events: Option<Vec<LoggedEvent>>,
    pub(super) capture: Capture,
    pub(super) sent: Vec<Sent>,
    /// Meet again on `MeetTimedOut`.
    pub(super) remeet: bool,
    pub(super) processed: u64,
    /// Datagrams on the timeline or in a paused node's receive buffer.
    pub(super) in_flight: u64,
    pub(super) last_lane: Option<u32>,
}

impl Simulation {
    /// The virtual clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of nodes (started or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The protocol parameters every node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The timing model.
    pub fn timing(&self) -> Timing {
        self.log.timing
    }

    /// Node `i`'s id (the same in every incarnation).
    pub fn id(&self, i: usize) -> NodeId {
        NodeId(mix64(i as u64 ^ self.id_key))
    }

    /// The node index of an id, if a simulated node has it.
    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        let i = super::unmix64(id.0) ^ self.id_key;
        (i < self.slots.len() as u64).then_some(i as usize)
    }

    /// Node `i`'s endpoint.
    pub fn endpoint(&self, i: usize) -> Endpoint {
        Endpoint::from(addr_of(i))
    }

    /// The node index of an endpoint, if a simulated node has it.
    pub fn index_of_endpoint(&self, ep: Endpoint) -> Option<usize> {
        if ep.port() != PORT || ep.slot() != 0 {
            return None;
        }
        let ip = u32::from(ep.ipv4()?);
        let i = ip.checked_sub(BASE_IP)? as usize;
        (i < self.slots.len()).then_some(i)
    }

    /// Node `i`, while it runs or is paused.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.slots[i].node.as_ref()
    }

    /// Whether node `i` is running, paused or down.
    pub fn status(&self, i: usize) -> NodeStatus {
        self.slots[i].status
    }

    /// Whether node `i` is running (not paused, not down).
    pub fn is_up(&self, i: usize) -> bool {
        self.slots[i].status == NodeStatus::Up
    }

    /// Node `i`'s current (or last) incarnation.
    pub fn incarnation(&self, i: usize) -> Incarnation {
        self.slots[i].incarnation
    }

    /// Indices of running nodes.
    pub fn up_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&i| self.is_up(i))
    }

    /// The observer's measurements.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// The observer, to record receptions of items the simulator does not decode.
    pub fn observer_mut(&mut self) -> &mut Observer {
        &mut self.observer
    }

    /// Starts tracking an item now. A join or FAIL item's origin is its node.
    pub fn track(&mut self, item: ItemId) {
        let (origin, x) = match item {
            ItemId::Join(id) => (self.index_of(id), self.index_of(id)),
            ItemId::Fail(id) => (None, self.index_of(id)),
            ItemId::Update { origin, .. } => (self.index_of(origin), None),
        };
        self.observer.track(item, origin, self.now, x);
    }

    /// What the network did so far.
    pub fn network_stats(&self) -> &NetStats {
        &self.network.stats
    }

    /// The network's current parameters.
    pub fn network_params(&self) -> &NetworkParams {
        &self.network.params
    }

    /// Whether datagrams from `a` reach `b` (no partition, no blocked link).
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.network.connected(a, b)
    }

    /// The trace hash so far: every delivered datagram and every event.
    pub fn trace_hash(&self) -> u64 {
        self.trace.value()
    }

    /// The seed, the drawn parameters and the schedule.
    pub fn fault_log(&self) -> &FaultLog {
        &self.log
    }

    /// Every node event so far, if recording was asked for.
    pub fn events(&self) -> &[LoggedEvent] {
        self.events.as_deref().unwrap_or(&[])
    }

    /// Simulator events processed: deliveries, timer firings and faults
    /// (stale timer entries included).
    pub fn events_processed(&self) -> u64 {
        self.processed
    }

    /// Datagrams sent but not yet handed to a node or dropped: on their way, or
    /// waiting in a paused node's receive buffer. With [`NetStats`], every
    /// datagram is accounted for: `sent + duplicated = lost + partitioned +
    /// no_route + delivered + to_down + overflowed + in_flight`.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Entries waiting on the timeline.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Datagram buffers allocated (in flight plus free): the pool's high water.
    pub fn packet_buffers(&self) -> usize {
        self.packets.capacity()
    }

    /// Bytes of the datagram buffers allocated.
    pub fn packet_buffer_bytes(&self) -> usize {
        self.packets.capacity_bytes()
    }

    /// The node the last [`step`](Self::step) woke, if it woke one (not a fault).
    pub fn last_woken(&self) -> Option<usize> {
        self.last_lane
            .filter(|&l| l != FAULT_LANE)
            .map(|l| l as usize - 1)
    }

    /// Schedules `fault` at `at` (in lockstep, at the first round instant at
    /// or after it). A time in the past means now.
    pub fn schedule(&mut self, at: Instant, fault: Fault) {
        let at = self.quantize(at.max(self.now));
        self.log.schedule.push((at, fault.clone()));
        self.faults.push(fault);
        self.queue.push(
            at.as_micros(),
            FAULT_LANE,
            DELIVER,
            (self.faults.len() - 1) as u32,
        );
    }

    /// Schedules `fault` `after` from now.
    pub fn schedule_in(&mut self, after: Duration, fault: Fault) {
        self.schedule(self.now + after, fault);
    }

    /// Starts every node now: node `seed_node` alone, every other node meeting it
    /// (each sends one MEET, resent until answered): [`Fault::StartAll`].
    pub fn start_all_meeting(&mut self, seed_node: usize) {
        self.apply(Fault::StartAll { meet: seed_node });
    }

    /// Runs `f` on running node `i` now (a command: `publish`, `meet`, ...),
    /// then drains what it queued into the network, the observer and the trace.
    /// Returns `f`'s result, or `None` when the node is not running. Commands
    /// are not in the fault log: a test that uses them logs them itself.
    pub fn command<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> R) -> Option<R> {
        self.now = self.quantize(self.now);
        if self.slots[i].status != NodeStatus::Up {
            return None;
        }
        let now = self.now;
        let r = f(self.slots[i].node.as_mut()?, now);
        self.drain_events(i, None);
        self.run_node(i, false);
        Some(r)
    }

    /// Applies `fault` now (it is logged like a scheduled one). In lockstep,
    /// "now" is the current round's instant: the clock first moves to it.
    pub fn apply(&mut self, fault: Fault) {
        self.now = self.quantize(self.now);
        self.log.schedule.push((self.now, fault.clone()));
        self.apply_fault(&fault);
    }

    /// Processes the next instant of one lane: a fault, or one node's wakeup
    /// (every datagram for it at that instant, then its deadline). Returns
    /// false when nothing is left to do.
    pub fn step(&mut self) -> bool {
        let Some(first) = self.queue.pop() else {
            return false;
        };
        // The next entry's datagram record is cold (hundreds of thousands
        // are in flight in a join storm): requested now, it arrives while
        // this one is handled.
        if let Some(next) = self.queue.peek() {
            if next.lane() != FAULT_LANE && next.class() == DELIVER {
                self.packets.prefetch(next.payload);
            }
        }
        debug_assert!(first.at >= self.now.as_micros(), "time runs forward");
        self.now = Instant::from_micros(first.at);
        self.processed += 1;
        let lane = first.lane();
        self.last_lane = Some(lane);
        if lane == FAULT_LANE {
            let fault = self.faults[first.payload as usize].clone();
            self.apply_fault(&fault);
            return true;
        }
        // One wakeup of node n runs the drive loop once:
        // 1. feed every datagram for it at this instant (take -> deliver),
        // 2.-5. fire the deadline, drain transmits, drain events, and ask for
        //    the next deadline (run_node).
        let n = lane as usize - 1;
        let mut wake = self.take(n, first);
        while let Some(e) = self.queue.peek() {
            if e.at != first.at || e.lane() != lane {
                break;
            }
            let e = *e;
            self.queue.pop();
            self.processed += 1;
            wake |= self.take(n, e);
        }
        if wake {
            self.run_node(n, true);
        }
        true
    }

    /// Runs until the clock reaches `until` (everything scheduled at or before
    /// it is done) and leaves the clock there.
    pub fn run_until(&mut self, until: Instant) {
        while self.queue.peek().is_some_and(|e| e.at <= until.as_micros()) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `until`, calling `check` after every step; stops at the first
    /// error and returns it (the clock stays at the failing step).
    ///
    /// # Errors
    /// The first error `check` returns.
    pub fn run_until_with<E>(
        &mut self,
        until: Instant,
        mut check: impl FnMut(&Simulation) -> Result<(), E>,
    ) -> Result<(), E> {
        while self.queue.peek().is_some_and(|e| e.at <= until.as_micros()) {
            self.step();
            check(self)?;
        }
        self.now = self.now.max(until);
        Ok(())
    }

    /// Takes one popped entry for node `n`; returns whether the node must run.
    fn take(&mut self, n: usize, e: super::queue::Entry) -> bool {
        if e.class() == TIMER {
            let slot = &mut self.slots[n];
            if slot.timer_at != e.at {
                return false; // stale: the deadline moved, or the node restarted
            }
            slot.timer_at = NO_TIMER;
            return slot.status == NodeStatus::Up;
        }
        let p = e.payload;
        let slot = &mut self.slots[n];
        match slot.status {
            NodeStatus::Down => {
                self.in_flight -= 1;
                self.network.stats.to_down += 1;
                self.packets.release(p);
                false
            }
            NodeStatus::Paused => {
                let len = self.packets.bytes(p).len();
                if slot.held_bytes + len <= self.receive_buffer {
                    slot.held_bytes += len;
                    slot.held.push_back(p);
                } else {
                    self.in_flight -= 1;
                    self.network.stats.overflowed += 1;
                    self.packets.release(p);
                }
                false
            }
            NodeStatus::Up => {
                self.in_flight -= 1;
                self.deliver(n, p);
                true
            }
        }
    }

    /// Step 1 of the drive loop: feed one datagram to running node `n`.
    fn deliver(&mut self, n: usize, p: u32) {
        let from = self.packets.from(p);
        self.network.stats.delivered += 1;
        let now = self.now;
        let bytes = self.packets.bytes(p);
        self.trace
            .datagram(now.as_micros(), from as u32, n as u32, bytes);
        let (id_key, len) = (self.id_key, self.slots.len());
        self.observer
            .on_datagram(n, Some(from), bytes, |id| index_with(id_key, len, id));
        let node = self.slots[n]
            .node
            .as_mut()
            .expect("a node that is up has a Node"); // invariant: status Up <=> Some
                                                     // A decode error is counted in the node's stats; the simulator never
                                                     // corrupts bytes, so the invariant checks flag any.
        let _ = node.handle_datagram(now, addr_of(from), bytes);
        self.packets.release(p);
        self.drain_events(n, Some(from));
    }

    /// Steps 2 to 5 of the drive loop for node `n`: fire the deadline (when
    /// `fire` allows), drain transmits, drain events, schedule the next deadline.
    pub(super) fn run_node(&mut self, n: usize, fire: bool) {
        let now = self.now;
        let slot = &mut self.slots[n];
        if slot.status != NodeStatus::Up {
            return;
        }
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        // 2. fire the deadline
        if fire && node.poll_timeout().is_some_and(|at| at <= now) {
            node.handle_timeout(now);
            self.drain_events(n, None);
        }
        // 3. drain transmits (into the network)
        self.drain_transmits(n);
        // 4. drain events (into the observer, the trace and the log)
        self.drain_events(n, None);
        // 5. ask for the next deadline (one timer entry on the timeline)
        self.schedule_timer(n);
    }

    fn drain_transmits(&mut self, n: usize) {
        let now = self.now;
        loop {
            let node = self.slots[n]
                .node
                .as_mut()
                .expect("drain_transmits runs on a running node"); // invariant: checked by run_node
            let p = self.packets.open();
            let Some(tx) = node.poll_transmit(now, self.packets.buf_mut(p)) else {
                self.packets.release(p);
                return;
            };
            self.observer.on_send(n, tx.kind, tx.len);
            let to = self.index_of_endpoint(tx.to);
            if self.capture != Capture::Off {
                self.capture_sent(n, to, tx.kind, p, tx.len);
            }
            let fate = match to {
                Some(to) => self.network.route(n, to),
                None => {
                    self.network.stats.no_route += 1;
                    Fate::Drop
                }
            };
            match (fate, to) {
                (Fate::Deliver(d1, d2), Some(to)) => {
                    let p = self.packets.seal(p, n, tx.len);
                    if let Some(d2) = d2 {
                        let q = self.packets.duplicate(p);
                        self.push_delivery(to, d2, q);
                    }
                    self.push_delivery(to, d1, p);
                }
                _ => self.packets.release(p),
            }
        }
    }

    fn push_delivery(&mut self, to: usize, delay_us: u64, p: u32) {
        self.in_flight += 1;
        let now = self.now.as_micros();
        let at = match self.round_us {
            0 => now.saturating_add(delay_us),
            // Lockstep: never within the round it was sent in.
            _ => self.quantize_us(now.saturating_add(delay_us.max(1))),
        };
        self.queue.push(at, to as u32 + 1, DELIVER, p);
    }

    pub(super) fn drain_events(&mut self, n: usize, from: Option<usize>) {
        let now = self.now;
        let (id_key, len) = (self.id_key, self.slots.len());
        loop {
            let Some(node) = self.slots[n].node.as_mut() else {
                return;
            };
            let Some(event) = node.poll_event() else {
                return;
            };
            self.trace.event(now.as_micros(), n as u32, &event);
            self.observer
                .on_event(now, n, from, &event, |id| index_with(id_key, len, id));
            if let Some(log) = self.events.as_mut() {
                log.push(LoggedEvent {
                    at: now,
                    node: n,
                    from,
                    event,
                });
            }
            if let (true, Event::MeetTimedOut { endpoint }) = (self.remeet, event) {
                // The cron reports it (run_node drains its events before its
                // transmits), so the new MEET leaves in this same wakeup. The
                // timed-out meet left room: a refusal cannot happen.
                if let Some(node) = self.slots[n].node.as_mut() {
                    let _ = node.meet(now, endpoint);
                }
            }
        }
    }

    /// Step 5: one timer entry per node, at its deadline (its round, in lockstep).
    pub(super) fn schedule_timer(&mut self, n: usize) {
        let Some(deadline) = self.slots[n].node.as_ref().and_then(Node::poll_timeout) else {
            return;
        };
        let at = self
            .quantize_us(deadline.as_micros())
            .max(self.now.as_micros());
        if self.slots[n].timer_at != at {
            self.slots[n].timer_at = at;
            self.queue.push(at, n as u32 + 1, TIMER, 0);
        }
    }

    pub(super) fn quantize(&self, t: Instant) -> Instant {
        Instant::from_micros(self.quantize_us(t.as_micros()))
    }

    /// Lockstep: the first round instant `(k + 1) × round − 1` at or after `t`.
    pub(super) fn quantize_us(&self, t: u64) -> u64 {
        match self.round_us {
            0 => t,
            r => (t.saturating_add(1)).div_ceil(r).saturating_mul(r) - 1,
        }
    }
}

/// Node `i`'s socket address: 127.0.0.1 + i, port 7000.
pub(crate) fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(BASE_IP + i as u32)), PORT)
}

pub(super) fn index_with(id_key: u64, len: usize, id: NodeId) -> Option<usize> {
    let i = super::unmix64(id.0) ^ id_key;
    (i < len as u64).then_some(i as usize)
}
