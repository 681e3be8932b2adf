//! One I/O thread's share of the nodes: their sockets on one datapath, their
//! deadlines in one timer heap, and the drive loop of `gossip_core` run for all
//! of them.
//!
//! Each turn of the loop: fire the deadlines that are due, drain every node
//! that received or fired (transmits into the datapath's send buffers, events
//! into counters, the next deadline into the heap), then one `poll` hands every
//! queued datagram to the kernel and waits for input or the earliest deadline.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use gossip_core::auth::OpenCache;
use gossip_core::{
    Config, Endpoint, Event, Identity, Instant, ItemId, Keyring, Node, PublishError, Stamp, Stats,
    MAX_TRACKED,
};

use crate::datapath::{sys, Datapath, DatapathKind};
use crate::metrics::{data_fields, Snapshot, ThreadMetrics, LATENESS_BUCKETS_US};
use crate::observe::{ObservedEvent, Observer};
use crate::timers::{Clock, Timers};
use crate::view::{state_index, PeerView, ViewWriter};

/// A deadline that fires this much after its time counts as late on the host
/// (a tenth of Redis's 100 ms tick; the core counts a whole tick late itself).
pub const HOST_LATE_US: u64 = 10_000;
/// Longest single wait: bounds how long a command or a shutdown request waits
/// for the thread's attention.
const MAX_WAIT: Duration = Duration::from_millis(50);
/// How often the thread publishes its metrics.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Peer entries scanned per publish to refresh the peer views (and so the
/// counts of peers by state); large hosts refresh over several publishes
/// instead of stalling the loop.
const PEER_SCAN_BUDGET: usize = 1 << 20;
const NO_NODE: u32 = u32::MAX;
/// Slots of a keyed host's [`OpenCache`]: room for the senders of a
/// 10,000-node cluster with few collisions. The table costs 256 KiB of
/// pointers; a slot's derived key (about 420 bytes) only once a sender's
/// datagram verified, so memory grows with the cluster's senders, not here.
const OPEN_CACHE_SLOTS: usize = 1 << 15;
/// Deadlines fired per turn before input is read again.
const MAX_TIMERS_PER_TURN: usize = 64;

/// Work sent to an I/O thread, run between two turns of its loop.
pub type Command = Box<dyn FnOnce(&mut Host) + Send>;

/// Where a node receives: a socket of its own, or a slot behind a socket it
/// shares with other nodes of the same host.
#[derive(Debug)]
pub enum NodeSocket {
    /// Its own bound UDP socket (the node's slot is 0).
    Own(UdpSocket),
    /// Slot `identity.slot` behind the host's shared socket number `k`
    /// (numbered in the order of [`Host::add_shared_socket`]).
    Shared(usize),
}

/// A node to start: its socket, identity, PRNG seed, and whom to meet.
#[derive(Debug)]
pub struct NodeSpec {
    /// Where it receives.
    pub socket: NodeSocket,
    /// Who it is (with its slot).
    pub identity: Identity,
    /// Seed of its PRNG.
    pub seed: u64,
    /// Endpoints to MEET at start.
    pub meet: Vec<Endpoint>,
    /// Its index in the whole runtime (for callers that address nodes globally).
    pub global: usize,
}

struct Hosted {
    node: Option<Node>,
    /// Datapath index of its socket (`usize::MAX` before the first start).
    socket: usize,
    /// Its shared socket's number, if it has no socket of its own.
    shared: Option<usize>,
    addr: SocketAddr,
    slot: u16,
    global: usize,
    dirty: bool,
    /// Incarnation of the node in (or last in) this slot.
    incarnation: u32,
    /// Paused: no ticks, input discarded (see [`Host::pause_node`]).
    paused: bool,
    /// Peers by state at the last scan (`PEER_STATES` order).
    peers: [u64; 4],
    /// Failure reports held and peer-table heap bytes at the last scan.
    reports: u64,
    table_bytes: u64,
}

/// The nodes of one I/O thread and the loop that drives them.
pub struct Host {
    dp: Box<dyn Datapath>,
    clock: Clock,
    config: Config,
    nodes: Vec<Hosted>,
    /// Datapath socket index to node index by slot (one entry for a socket
    /// of its own).
    by_socket: Vec<Vec<u32>>,
    /// Shared sockets: datapath index and address, by number.
    shared: Vec<(usize, SocketAddr)>,
    timers: Timers,
    dirty: Vec<u32>,
    metrics: Arc<ThreadMetrics>,
    /// Counters kept by the host itself (stats, peers and datapath are filled
    /// in at publish time).
    own: Snapshot,
    /// Counters of removed nodes, so totals never go backwards.
    retired: Stats,
    scan_cursor: usize,
    next_publish: Instant,
    /// Nodes waiting for their start time, in order.
    pending: VecDeque<(Instant, NodeSpec)>,
    /// Where events and per-node counters go for readers, if anyone reads.
    observer: Option<Observer>,
    /// Each node's published peer view (by node index, grown on demand).
    /// Made on a reader's first request: a view costs about 100 bytes a
    /// peer, as much as the node's own table, and most runs read none.
    views: Vec<Option<ViewWriter>>,
    /// How long past the earliest deadline the loop may sleep (see
    /// [`Host::set_timer_slack`]).
    timer_slack: Duration,
    /// Items every node counts copies of ([`Host::track`]), so that nodes
    /// started later count them too; at most [`MAX_TRACKED`].
    tracked: Vec<ItemId>,
    /// The cluster keyring every node authenticates with (`crate::keyfile`).
    keyring: Option<Arc<Keyring>>,
    /// The senders' derived keys, shared by every node here; made with the
    /// keyring.
    open_cache: Option<OpenCache>,
    /// Nodes started from now on require proven joins (`gossip_core::cookie`).
    join_cookies: bool,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("datapath", &self.dp.kind())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host with no nodes, on datapath `dp`, reading `clock`, publishing
    /// into `metrics`. Every node runs with `config`.
    pub fn new(
        dp: Box<dyn Datapath>,
        clock: Clock,
        config: Config,
        metrics: Arc<ThreadMetrics>,
    ) -> Self {
        Host {
            dp,
            clock,
            config,
            nodes: Vec::new(),
            by_socket: Vec::new(),
            shared: Vec::new(),
            timers: Timers::new(),
            dirty: Vec::new(),
            metrics,
            own: Snapshot::default(),
            retired: Stats::default(),
            scan_cursor: 0,
            next_publish: Instant::ZERO,
            pending: VecDeque::new(),
            observer: None,
            views: Vec::new(),
            timer_slack: Duration::ZERO,
            tracked: Vec::new(),
            keyring: None,
            open_cache: None,
            join_cookies: false,
        }
    }

    /// Nodes started from now on require proven joins, each with a secret
    /// of its own drawn from the OS (`Node::require_cookies`).
    pub fn set_join_cookies(&mut self, on: bool) {
        self.join_cookies = on;
    }

    /// Authenticates every node's datagrams with `keyring` from now on:
    /// running nodes switch at once (epoch and counter go on; a rotation
    /// step), nodes started later start with it. A host that had no keyring
    /// cannot gain one for running nodes (their peers would refuse them
    /// half-way): only nodes started later use it; returns how many running
    /// nodes switched.
    pub fn set_keyring(&mut self, keyring: Arc<Keyring>) -> usize {
        let had = self.keyring.replace(keyring.clone()).is_some();
        self.open_cache
            .get_or_insert_with(|| OpenCache::new(OPEN_CACHE_SLOTS));
        if !had {
            return 0;
        }
        self.nodes
            .iter_mut()
            .filter_map(|h| h.node.as_mut())
            .map(|n| usize::from(n.update_keyring(keyring.clone())))
            .sum()
    }

    /// Lets the loop sleep up to `slack` past the earliest deadline, so that
    /// the deadlines of many nodes fire together: fewer, fuller turns mean
    /// fewer system calls and, with offload, more datagrams per GSO send.
    /// Every deadline fires at most `slack` late (below [`HOST_LATE_US`]
    /// it is not counted late).
    pub fn set_timer_slack(&mut self, slack: Duration) {
        self.timer_slack = slack;
    }

    /// Feeds the observation channel from now on: every event of every node
    /// into `observer.events`, every node's counters into `observer.board`
    /// at each publish.
    pub fn set_observer(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    /// Takes a bound socket that several nodes will share, each in its own
    /// slot (`NodeSocket::Shared`); datagrams reaching it go to the node
    /// named by the header's `dst_slot`. Returns the shared socket's number.
    ///
    /// # Errors
    /// When the datapath refuses the socket.
    pub fn add_shared_socket(&mut self, socket: UdpSocket) -> io::Result<usize> {
        let addr = socket.local_addr()?;
        let index = self.dp.register(socket)?;
        if index >= self.by_socket.len() {
            self.by_socket.resize(index + 1, Vec::new());
        }
        self.by_socket[index].clear();
        self.shared.push((index, addr));
        Ok(self.shared.len() - 1)
    }

    /// Starts a node at `at` (now if it has passed). Nodes start in the order
    /// given, so host indices follow it; a node not started yet has no index
    /// in [`node`](Host::node) until it starts.
    ///
    /// # Errors
    /// When the datapath refuses the socket of a node started at once (a
    /// later start that fails is counted as a dropped node instead).
    pub fn add_node_at(&mut self, spec: NodeSpec, at: Instant) -> io::Result<()> {
        if self.pending.is_empty() && at <= self.clock.now() {
            return self.add_node(spec).map(drop);
        }
        self.pending.push_back((at, spec));
        Ok(())
    }

    /// Nodes waiting for their start time.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Starts a node on its socket; returns its index on this host.
    ///
    /// # Errors
    /// When the datapath refuses the socket.
    pub fn add_node(&mut self, spec: NodeSpec) -> io::Result<usize> {
        let index = self.nodes.len();
        let addr = self.spec_addr(&spec)?;
        self.nodes.push(Hosted {
            node: None,
            socket: usize::MAX,
            shared: None,
            addr,
            slot: spec.identity.slot,
            global: spec.global,
            dirty: false,
            incarnation: spec.identity.incarnation,
            paused: false,
            peers: [0; 4],
            reports: 0,
            table_bytes: 0,
        });
        if let Err(e) = self.revive(index, spec) {
            self.nodes.pop();
            return Err(e);
        }
        Ok(index)
    }

    /// Starts `spec` in slot `index`, whose node was removed (a restart: same
    /// slot, so callers' indices stay valid). Its counters start from zero.
    ///
    /// # Errors
    /// When the slot is out of range or still running, or the datapath
    /// refuses the socket.
    pub fn revive(&mut self, index: usize, spec: NodeSpec) -> io::Result<()> {
        if self.nodes.get(index).is_none_or(|h| h.node.is_some()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("host slot {index} is not a stopped node"),
            ));
        }
        let addr = self.spec_addr(&spec)?;
        let slot = spec.identity.slot;
        let (socket, shared) = match spec.socket {
            NodeSocket::Own(socket) => {
                if slot != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a node with a socket of its own has slot 0",
                    ));
                }
                let socket = self.dp.register(socket)?;
                if socket >= self.by_socket.len() {
                    self.by_socket.resize(socket + 1, Vec::new());
                }
                self.by_socket[socket] = vec![NO_NODE];
                (socket, None)
            }
            NodeSocket::Shared(k) => {
                let socket = self.shared[k].0;
                let slots = &mut self.by_socket[socket];
                if slots.get(usize::from(slot)).is_some_and(|&n| n != NO_NODE) {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("slot {slot} of {addr} is taken"),
                    ));
                }
                (socket, Some(k))
            }
        };
        let slots = &mut self.by_socket[socket];
        if slots.len() <= usize::from(slot) {
            slots.resize(usize::from(slot) + 1, NO_NODE);
        }
        slots[usize::from(slot)] = index as u32;
        let me = Endpoint::new(addr, slot);
        let now = self.clock.now();
        let mut node = Node::new(spec.identity, self.config.clone(), spec.seed, now);
        node.set_epoch(self.clock.epoch());
        if let Some(k) = &self.keyring {
            node.set_keyring(k.clone(), crate::keyfile::next_epoch());
        }
        if self.join_cookies {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| io::Error::other(e.to_string()))?;
            node.require_cookies(secret);
        }
        for &item in &self.tracked {
            // The host holds no more than a node can track.
            node.track(item);
        }
        for to in spec.meet {
            if to != me {
                // Only TooManyPending can fail; the rest are dropped, as the
                // core bounds its meets.
                let _ = node.meet(now, to);
            }
        }
        let h = &mut self.nodes[index];
        h.node = Some(node);
        h.socket = socket;
        h.shared = shared;
        h.addr = addr;
        h.slot = slot;
        h.global = spec.global;
        h.incarnation = spec.identity.incarnation;
        h.paused = false;
        self.mark_dirty(index as u32);
        Ok(())
    }

    /// Reserves a stopped slot for `spec`'s node without starting it (the
    /// socket in `spec` is not used: the caller keeps its own handle and
    /// starts the node later with [`revive`](Host::revive)). Returns the slot.
    pub fn reserve(&mut self, spec: &NodeSpec) -> usize {
        let addr = self
            .spec_addr(spec)
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        self.nodes.push(Hosted {
            node: None,
            socket: usize::MAX,
            shared: None,
            addr,
            slot: spec.identity.slot,
            global: spec.global,
            dirty: false,
            incarnation: spec.identity.incarnation,
            paused: false,
            peers: [0; 4],
            reports: 0,
            table_bytes: 0,
        });
        self.nodes.len() - 1
    }

    /// Pauses node `index`, as a stopped process would be: its deadlines do
    /// not fire and datagrams that reach it are discarded (as by a full
    /// receive buffer) until [`resume_node`](Host::resume_node). Returns
    /// whether it was running and not paused.
    pub fn pause_node(&mut self, index: usize) -> bool {
        match self.nodes.get_mut(index) {
            Some(h) if h.node.is_some() && !h.paused => {
                h.paused = true;
                self.timers.schedule(index as u32, None);
                true
            }
            _ => false,
        }
    }

    /// Resumes a paused node: its overdue deadline fires at once. Returns
    /// whether it was paused.
    pub fn resume_node(&mut self, index: usize) -> bool {
        match self.nodes.get_mut(index) {
            Some(h) if h.node.is_some() && h.paused => {
                h.paused = false;
                self.mark_dirty(index as u32);
                true
            }
            _ => false,
        }
    }

    /// Whether node `index` is paused.
    pub fn is_paused(&self, index: usize) -> bool {
        self.nodes.get(index).is_some_and(|h| h.paused)
    }

    /// Stops node `index`: its socket is closed and it is forgotten (its
    /// counters stay in the totals). Returns whether it was running.
    pub fn remove_node(&mut self, index: usize) -> bool {
        let Some(h) = self.nodes.get_mut(index) else {
            return false;
        };
        let Some(node) = h.node.take() else {
            return false;
        };
        add_stats(&mut self.retired, node.stats());
        h.paused = false;
        h.peers = [0; 4];
        h.reports = 0;
        h.table_bytes = 0;
        if h.shared.is_none() {
            let _ = self.dp.deregister(h.socket);
        }
        if let Some(n) = self
            .by_socket
            .get_mut(h.socket)
            .and_then(|slots| slots.get_mut(usize::from(h.slot)))
        {
            *n = NO_NODE;
        }
        self.timers.schedule(index as u32, None);
        if let Some(o) = &self.observer {
            let h = &self.nodes[index];
            o.board
                .publish(h.global, self.clock.now(), h.incarnation, None);
        }
        if let Some(view) = self.views.get_mut(index).and_then(Option::as_mut) {
            view.clear();
        }
        true
    }

    /// The node at `index`, if running.
    pub fn node(&self, index: usize) -> Option<&Node> {
        self.nodes.get(index).and_then(|h| h.node.as_ref())
    }

    /// Node `index` publishes `value` under `key` ([`Node::publish`]): its
    /// rumor rounds and exchanges carry it from its next tick. `None` when the
    /// node is not running (a paused node publishes: its data waits for it).
    pub fn publish_update(
        &mut self,
        index: usize,
        key: &[u8],
        value: &[u8],
    ) -> Option<Result<Stamp, PublishError>> {
        let now = self.clock.now();
        let node = self.nodes.get_mut(index)?.node.as_mut()?;
        let r = node.publish(now, key, value);
        self.mark_dirty(index as u32);
        Some(r)
    }

    /// Every node of this host counts the copies of `item` it receives
    /// ([`Node::track`]) from now on, and so does every node started here
    /// later (a restart counts from zero). Returns false, tracking nothing
    /// new, when [`MAX_TRACKED`] items are tracked already.
    pub fn track(&mut self, item: ItemId) -> bool {
        if !self.tracked.contains(&item) {
            if self.tracked.len() >= MAX_TRACKED {
                return false;
            }
            self.tracked.push(item);
        }
        for node in self.nodes.iter_mut().filter_map(|h| h.node.as_mut()) {
            node.track(item);
        }
        true
    }

    /// No node of this host counts `item` any more. Returns whether it was
    /// tracked.
    pub fn untrack(&mut self, item: ItemId) -> bool {
        let Some(k) = self.tracked.iter().position(|&i| i == item) else {
            return false;
        };
        self.tracked.swap_remove(k);
        for node in self.nodes.iter_mut().filter_map(|h| h.node.as_mut()) {
            node.untrack(item);
        }
        true
    }

    /// Copies of `item` each running (or paused) node has counted, as
    /// (runtime-wide index, copies); nodes not counting it are left out.
    pub fn copies(&self, item: ItemId) -> Vec<(usize, u32)> {
        self.nodes
            .iter()
            .filter_map(|h| Some((h.global, h.node.as_ref()?.copies(item)?)))
            .collect()
    }

    /// A reader's handle on node `index`'s peer view (lock-free, kept current
    /// by this thread; empty while the node is stopped). `None` past the
    /// nodes hosted.
    pub fn peer_view(&mut self, index: usize) -> Option<PeerView> {
        let h = self.nodes.get(index)?;
        if self.views.len() <= index {
            self.views.resize_with(index + 1, || None);
        }
        let clock = self.clock;
        let view = self.views[index].get_or_insert_with(|| {
            let mut view = PeerView::new(clock).0;
            if let Some(node) = &h.node {
                view.refresh(node.peers(), clock.now());
            }
            view
        });
        Some(view.view())
    }

    /// Address of node `index`'s socket.
    pub fn addr(&self, index: usize) -> Option<SocketAddr> {
        self.nodes.get(index).map(|h| h.addr)
    }

    /// Endpoint of node `index`: its socket's address and its slot.
    pub fn endpoint(&self, index: usize) -> Option<Endpoint> {
        self.nodes.get(index).map(|h| Endpoint::new(h.addr, h.slot))
    }

    /// The address `spec`'s node will receive on.
    fn spec_addr(&self, spec: &NodeSpec) -> io::Result<SocketAddr> {
        match &spec.socket {
            NodeSocket::Own(socket) => socket.local_addr(),
            NodeSocket::Shared(k) => self.shared.get(*k).map(|s| s.1).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no shared socket {k}"))
            }),
        }
    }

    /// Runtime-wide index of node `index`.
    pub fn global(&self, index: usize) -> Option<usize> {
        self.nodes.get(index).map(|h| h.global)
    }

    /// Nodes hosted (running or removed).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was ever added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The datapath in use.
    pub fn datapath(&self) -> DatapathKind {
        self.dp.kind()
    }

    /// Runs the loop until `stop` is set, running `commands` between turns.
    ///
    /// # Errors
    /// When the datapath fails (not for per-datagram errors, which are counted).
    pub fn run(&mut self, stop: &AtomicBool, commands: &Receiver<Command>) -> io::Result<()> {
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            while let Ok(command) = commands.try_recv() {
                command(self);
            }
            if let Err(e) = self.turn() {
                break Err(e);
            }
        };
        self.publish();
        result
    }

    /// One turn of the loop: fire, drain, publish if due, then poll.
    ///
    /// # Errors
    /// When the datapath fails.
    pub fn turn(&mut self) -> io::Result<()> {
        let now = self.clock.now();
        self.own.loop_iterations += 1;
        while self.pending.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, spec)) = self.pending.pop_front() {
                if self.add_node(spec).is_err() {
                    self.own.nodes_failed += 1;
                }
            }
        }
        // A bounded number of deadlines per turn: under overload, firing every
        // due tick before reading any input lets socket buffers overflow while
        // the ticks resend pings whose answers sit unread. The rest stay due,
        // so the next turn's wait is zero.
        let mut fired = 0;
        while fired < MAX_TIMERS_PER_TURN {
            let Some((index, at)) = self.timers.pop_due(now) else {
                break;
            };
            fired += 1;
            self.count_lateness(now.as_micros().saturating_sub(at.as_micros()));
            let h = &mut self.nodes[index as usize];
            if h.paused {
                continue;
            }
            if let Some(node) = h.node.as_mut() {
                node.handle_timeout(now);
                self.mark_dirty(index);
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        for &index in &dirty {
            self.nodes[index as usize].dirty = false;
        }
        for &index in &dirty {
            self.drain(index, now);
        }
        let mut spare = dirty;
        spare.clear();
        if self.dirty.is_empty() {
            // Keep the allocation for the next turn.
            self.dirty = spare;
        }
        if now >= self.next_publish {
            self.publish();
            self.next_publish = now + PUBLISH_EVERY;
        }
        // Nodes still dirty (out of send buffers) want another turn at once.
        let next = match (self.timers.earliest(), self.pending.front()) {
            (Some(t), Some((p, _))) => Some(t.min(*p)),
            (t, p) => t.or(p.map(|(p, _)| *p)),
        };
        let timeout = match (self.dirty.is_empty(), next) {
            (false, _) => Duration::ZERO,
            (true, Some(at)) if at <= now => Duration::ZERO,
            (true, Some(at)) => ((at - now) + self.timer_slack).min(MAX_WAIT),
            (true, None) => MAX_WAIT,
        };
        let (nodes, by_socket, dirty, clock) = (
            &mut self.nodes,
            &self.by_socket,
            &mut self.dirty,
            self.clock,
        );
        let unknown_slot = &mut self.own.unknown_slot;
        let mut open_cache = self.open_cache.as_mut();
        let mut now_in = None;
        self.dp.poll(Some(timeout), &mut |socket, from, bytes| {
            let Some(slots) = by_socket.get(socket) else {
                return;
            };
            let index = match slots.as_slice() {
                // A socket of its own: the core checks dst_slot itself.
                [NO_NODE] => return,
                [only] => *only,
                // A shared socket: the header's dst_slot names the node.
                _ => gossip_core::wire::peek_dst_slot(bytes)
                    .and_then(|slot| slots.get(usize::from(slot)))
                    .copied()
                    .unwrap_or(NO_NODE),
            };
            let Some(h) = nodes.get_mut(index as usize) else {
                *unknown_slot += 1;
                return;
            };
            let Some(node) = h.node.as_mut() else {
                return;
            };
            if h.paused {
                return;
            }
            // One clock read per batch: the datagrams of one poll arrived together.
            let now = *now_in.get_or_insert_with(|| clock.now());
            // A decode error is counted in the node's stats; nothing else to do.
            let _ = match open_cache.as_deref_mut() {
                Some(c) => node.handle_datagram_cached(now, from, bytes, c),
                None => node.handle_datagram(now, from, bytes),
            };
            if !h.dirty {
                h.dirty = true;
                dirty.push(index);
            }
        })
    }

    fn mark_dirty(&mut self, index: u32) {
        let h = &mut self.nodes[index as usize];
        if !h.dirty {
            h.dirty = true;
            self.dirty.push(index);
        }
    }

    /// The drive loop's steps 3 to 5 for one node: transmits, events, deadline.
    fn drain(&mut self, index: u32, now: Instant) {
        let h = &mut self.nodes[index as usize];
        let Some(node) = h.node.as_mut() else {
            return;
        };
        if h.paused {
            return;
        }
        let mut stalled = false;
        loop {
            let Some(buf) = self.dp.send_buffer() else {
                // Every send buffer is with the kernel: the datagrams stay in the
                // node's queue and go out next turn.
                stalled = true;
                break;
            };
            let Some(tx) = node.poll_transmit(now, buf) else {
                break;
            };
            self.dp.queue_send(h.socket, tx.to.addr(), tx.len);
        }
        let mut view = self.views.get_mut(index as usize).and_then(Option::as_mut);
        while let Some(event) = node.poll_event() {
            self.own.events[event_index(&event)] += 1;
            if let Some(o) = &self.observer {
                o.events.push(ObservedEvent {
                    node: h.global,
                    at: now,
                    event,
                });
            }
            if let Some(view) = view.as_mut() {
                view.apply(node.peers(), &event);
            }
        }
        self.timers.schedule(index, node.poll_timeout());
        if stalled {
            h.dirty = true;
            self.dirty.push(index);
        }
    }

    fn count_lateness(&mut self, late_us: u64) {
        self.own.timers_fired += 1;
        self.own.lateness_sum_us += late_us;
        if late_us > HOST_LATE_US {
            self.own.timers_late += 1;
        }
        let bucket = LATENESS_BUCKETS_US
            .iter()
            .position(|&le| late_us <= le)
            .unwrap_or(LATENESS_BUCKETS_US.len());
        self.own.lateness_buckets[bucket] += 1;
    }

    /// Sums the nodes' counters, refreshes part of the peer census, and
    /// publishes the lot to the metrics atomics.
    fn publish(&mut self) {
        let mut snap = self.own.clone();
        snap.stats = self.retired.clone();
        let mut running = 0;
        let at = self.clock.now();
        for h in &self.nodes {
            if let Some(node) = &h.node {
                add_stats(&mut snap.stats, node.stats());
                running += 1;
            }
            if let Some(o) = &self.observer {
                o.board.publish(
                    h.global,
                    at,
                    h.incarnation,
                    h.node.as_ref().map(Node::stats),
                );
            }
        }
        snap.events_dropped = self.observer.as_ref().map_or(0, |o| o.events.dropped());
        snap.nodes = running;
        self.scan_peers();
        snap.peers = [0; 4];
        snap.failure_reports = 0;
        snap.peer_table_bytes = 0;
        for h in &self.nodes {
            for (total, n) in snap.peers.iter_mut().zip(h.peers) {
                *total += n;
            }
            snap.failure_reports += h.reports;
            snap.peer_table_bytes += h.table_bytes;
        }
        snap.datapath = *self.dp.counters();
        snap.cpu_us = sys::thread_cpu_time().as_micros() as u64;
        self.metrics.publish(&snap);
    }

    /// Refreshes the peer views (and so the counts of peers by state) of as
    /// many nodes as the budget allows, continuing where the last scan stopped.
    fn scan_peers(&mut self) {
        let n = self.nodes.len();
        let now = self.clock.now();
        let mut budget = PEER_SCAN_BUDGET;
        for _ in 0..n {
            let i = self.scan_cursor % n;
            self.scan_cursor = (i + 1) % n;
            let h = &mut self.nodes[i];
            let Some(node) = &h.node else {
                continue;
            };
            h.peers = match self.views.get_mut(i).and_then(Option::as_mut) {
                Some(view) => {
                    view.refresh(node.peers(), now);
                    view.counts()
                }
                None => {
                    let mut counts = [0; 4];
                    for p in node.peers().iter() {
                        counts[state_index(p.state())] += 1;
                    }
                    counts
                }
            };
            h.reports = node.peers().report_count() as u64;
            h.table_bytes = node.peers().memory_bytes() as u64;
            budget = budget.saturating_sub(node.peers().len().max(1));
            if budget == 0 {
                break;
            }
        }
    }
}

/// Index into `EVENT_KINDS`.
fn event_index(e: &Event) -> usize {
    match e {
        Event::PeerDiscovered { .. } => 0,
        Event::PeerJoined { .. } => 1,
        Event::PeerPfail { .. } => 2,
        Event::PeerFail { .. } => 3,
        Event::PeerAlive { .. } => 4,
        Event::PeerRestarted { .. } => 5,
        Event::HandshakeTimedOut { .. } => 6,
        Event::MeetTimedOut { .. } => 7,
        Event::UpdateReceived { .. } => 8,
        Event::PeerForgotten { .. } => 9,
        _ => 10,
    }
}

/// `into += from`, counter by counter.
pub fn add_stats(into: &mut Stats, from: &Stats) {
    for (a, b) in into
        .sent
        .iter_mut()
        .zip(&from.sent)
        .chain(into.received.iter_mut().zip(&from.received))
    {
        a.datagrams += b.datagrams;
        a.bytes += b.bytes;
    }
    for (a, b) in into.decode_errors.iter_mut().zip(&from.decode_errors) {
        *a += b;
    }
    let (a, b) = (&mut into.drops, &from.drops);
    a.unknown_sender += b.unknown_sender;
    a.stale_incarnation += b.stale_incarnation;
    a.own_id += b.own_id;
    a.wrong_slot += b.wrong_slot;
    a.other_profile += b.other_profile;
    a.peer_table_full += b.peer_table_full;
    a.report_table_full += b.report_table_full;
    a.transmit_queue_full += b.transmit_queue_full;
    a.transmit_buffer_too_small += b.transmit_buffer_too_small;
    a.event_queue_full += b.event_queue_full;
    let (a, b) = (&mut into.auth, &from.auth);
    a.no_key += b.no_key;
    a.unauthenticated += b.unauthenticated;
    a.unknown_key += b.unknown_key;
    a.retired_key += b.retired_key;
    a.bad_tag += b.bad_tag;
    a.replay += b.replay;
    a.cookie += b.cookie;
    into.ticks += from.ticks;
    into.late_ticks += from.late_ticks;
    let mut theirs = from.data;
    for ((_, a), (_, b)) in data_fields(&mut into.data)
        .into_iter()
        .zip(data_fields(&mut theirs))
    {
        *a += *b;
    }
}
