//! The runtime: binds every node's socket, spreads the nodes over I/O threads
//! (one per core by default, optionally pinned), and lets callers reach into a
//! thread between two turns of its loop: lifecycle commands, publishing, and
//! reads such as the copies of tracked items each node counted.

mod config;

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long an action that changes a node (kill, pause, resume, publish,
/// track) waits for its I/O thread. The command runs at the thread's next
/// turn whatever the caller does, so giving up early would report a kill
/// that happens anyway as refused; an overloaded thread's turn can take
/// seconds (1,000 Redis-profile nodes after a partition heals). A thread that
/// is gone drops the command and the wait ends at once.
const ACTION_WAIT: Duration = Duration::from_secs(30);

use gossip_core::rng::splitmix64;
use gossip_core::{Endpoint, Identity, ItemId, Keyring, Node, NodeId, PublishError, Stamp};

use crate::datapath::{self, sys, DatapathChoice, DatapathKind, DatapathOptions};
use crate::host::{Command, Host, NodeSocket, NodeSpec};
use crate::metrics::{MetricsSource, ThreadMetrics};
use crate::observe::{EventQueue, NodeCounters, ObservedEvent, Observer, StatsBoard};
use crate::timers::Clock;
use crate::view::PeerView;

pub use config::{bind, NodeError, RuntimeConfig};

/// Largest buffer asked for a shared socket (before the kernel's cap).
const SHARED_BUFFER_MAX: usize = 64 << 20;

struct IoThread {
    commands: Sender<Command>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

/// Running nodes on their I/O threads. Dropping it stops them.
pub struct Runtime {
    threads: Vec<IoThread>,
    /// Node (global index) to (thread, index on that host).
    placement: Vec<(usize, usize)>,
    addrs: Vec<SocketAddr>,
    endpoints: Vec<Endpoint>,
    ids: Vec<NodeId>,
    stop: Arc<AtomicBool>,
    metrics: Vec<Arc<ThreadMetrics>>,
    kind: DatapathKind,
    fallback: Option<String>,
    clock: Clock,
    socket_buffer_bytes: usize,
    /// PRNG seed of each node's first incarnation.
    seeds: Vec<u64>,
    /// Per node: its socket while bound but never started, and its current
    /// (or last) incarnation. Locked only by callers, never by I/O threads.
    lives: Mutex<Vec<Life>>,
    /// Per I/O thread: its event queue (empty without observation).
    events: Vec<Arc<EventQueue>>,
    board: Option<Arc<StatsBoard>>,
}

#[derive(Debug)]
struct Life {
    parked: Option<UdpSocket>,
    /// Shared-socket mode: its socket's number on its thread's host.
    shared: Option<usize>,
    incarnation: u32,
    started: bool,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("datapath", &self.kind)
            .field("threads", &self.threads.len())
            .field("nodes", &self.addrs.len())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Binds every socket, chooses the datapath (logging the fallback once),
    /// and starts the I/O threads.
    ///
    /// # Errors
    /// A [`NodeError`] naming the address, datapath or thread that failed.
    pub fn start(config: RuntimeConfig) -> Result<Runtime, NodeError> {
        Self::start_with_probe(config, datapath::probe_uring)
    }

    /// [`start`](Runtime::start) with the io_uring probe supplied, so that the
    /// fallback can be exercised where io_uring works.
    ///
    /// # Errors
    /// As `start`.
    pub fn start_with_probe(
        config: RuntimeConfig,
        probe: impl FnOnce() -> Result<(), datapath::ProbeError>,
    ) -> Result<Runtime, NodeError> {
        if config.binds.is_empty() {
            return Err(NodeError::Config("no nodes to run".into()));
        }
        if config.held > 0 && !config.ramp.is_zero() {
            // Host slots follow start order; a ramp would start reserved
            // slots before earlier nodes and break the placement.
            return Err(NodeError::Config(
                "held nodes need ramp = 0 (start them with Runtime::start_node instead)".into(),
            ));
        }
        let slots = config.slots.max(1);
        if slots > usize::from(u16::MAX) + 1 {
            return Err(NodeError::Config(format!(
                "{slots} slots per socket: at most 65,536 (the slot is 16 bits)"
            )));
        }
        let shared = slots > 1;
        // Both datapaths carry offload, but `auto` with offload stays on
        // mmsg without probing: io_uring measured no cheaper there on Linux
        // 6.18 (datapath-bench node-uring-gso / node-mmsg-gso 0.99-1.02 with
        // intervals spanning 1; the 10,000-node lean run 1.03x mmsg's CPU,
        // both 2026-12-06, reports/datapath/), and mmsg is the path every
        // offload run so far has used. Without offload `auto` is io_uring
        // where it works.
        let (kind, fallback) = match (config.offload, config.datapath) {
            (true, DatapathChoice::Auto) => (DatapathKind::Mmsg, None),
            (_, choice) => datapath::resolve(choice, probe),
        };
        if let Some(line) = &fallback {
            eprintln!("gossip-node: {line}");
        }
        // A shared socket carries the traffic of all its nodes: its buffers
        // grow with them (the kernel caps them at net.core.[rw]mem_max).
        let buffer = config
            .socket_buffer_bytes
            .saturating_mul(slots)
            .min(SHARED_BUFFER_MAX.max(config.socket_buffer_bytes));
        let mut sockets = Vec::with_capacity(config.binds.len());
        let mut addrs = Vec::with_capacity(config.binds.len() * slots);
        let mut endpoints = Vec::with_capacity(config.binds.len() * slots);
        for &addr in &config.binds {
            let socket = bind(addr, buffer).map_err(|source| NodeError::Bind { addr, source })?;
            let local = socket
                .local_addr()
                .map_err(|source| NodeError::Bind { addr, source })?;
            for slot in 0..slots {
                addrs.push(local);
                endpoints.push(Endpoint::new(local, slot as u16));
            }
            sockets.push(socket);
        }
        let n = endpoints.len();
        if config.held >= n {
            return Err(NodeError::Config(
                "held: at least node 0 must start with the runtime".into(),
            ));
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let threads = if config.threads == 0 {
            cores
        } else {
            config.threads
        }
        .clamp(1, sockets.len());
        let mut state = config.rng_seed;
        let mut specs: Vec<NodeSpec> = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut seeds = Vec::with_capacity(n);
        let first_held = n - config.held;
        let sockets_per_thread = sockets.len().div_ceil(threads);
        // Own sockets go with their node's spec; shared ones with the thread.
        let mut own = sockets.into_iter();
        let mut shared_sockets: Vec<UdpSocket> = Vec::new();
        for (i, &endpoint) in endpoints.iter().enumerate() {
            let id = NodeId(splitmix64(&mut state));
            ids.push(id);
            let seed = splitmix64(&mut state);
            seeds.push(seed);
            let meet = match (config.join.is_empty(), i) {
                (false, _) => config.join.clone(),
                (true, 0) => Vec::new(),
                (true, _) => vec![endpoints[0]],
            };
            let socket = if shared {
                if endpoint.slot() == 0 {
                    shared_sockets.extend(own.next());
                }
                // The socket's number on its thread's host.
                NodeSocket::Shared((i / slots) % sockets_per_thread)
            } else {
                match own.next() {
                    Some(socket) => NodeSocket::Own(socket),
                    None => unreachable!("one socket per node when slots = 1"),
                }
            };
            specs.push(NodeSpec {
                socket,
                identity: Identity {
                    id,
                    incarnation: 0,
                    slot: endpoint.slot(),
                },
                seed,
                meet,
                global: i,
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Clock::new();
        let board = (config.event_queue > 0).then(|| Arc::new(StatsBoard::new(n)));
        let per_thread = sockets_per_thread * slots;
        let mut placement = Vec::with_capacity(n);
        let mut runtime = Runtime {
            threads: Vec::new(),
            placement: Vec::new(),
            addrs,
            endpoints,
            ids,
            stop: stop.clone(),
            metrics: Vec::new(),
            kind,
            fallback,
            clock,
            socket_buffer_bytes: config.socket_buffer_bytes,
            seeds,
            lives: Mutex::new(Vec::with_capacity(n)),
            events: Vec::new(),
            board: board.clone(),
        };
        let mut lives = Vec::with_capacity(n);
        let mut specs = specs.into_iter();
        let mut shared_sockets = shared_sockets.into_iter();
        for t in 0..threads {
            let chunk: Vec<NodeSpec> = specs.by_ref().take(per_thread).collect();
            if chunk.is_empty() {
                break;
            }
            let thread_sockets: Vec<UdpSocket> = shared_sockets
                .by_ref()
                .take(if shared { sockets_per_thread } else { 0 })
                .collect();
            for local in 0..chunk.len() {
                placement.push((t, local));
            }
            // Held nodes keep their sockets here until started; their host
            // slot is reserved now so that placement never changes.
            let mut chunk = chunk;
            let mut reserved = Vec::new();
            for spec in &mut chunk {
                let held = spec.global >= first_held;
                reserved.push(held);
                let shared = match spec.socket {
                    NodeSocket::Shared(k) => Some(k),
                    NodeSocket::Own(_) => None,
                };
                lives.push(Life {
                    parked: None,
                    shared,
                    incarnation: 0,
                    started: !held,
                });
                if let (true, NodeSocket::Own(socket)) = (held, &spec.socket) {
                    let parked = socket.try_clone().map_err(|source| NodeError::Bind {
                        addr: runtime.addrs[spec.global],
                        source,
                    })?;
                    lives[spec.global].parked = Some(parked);
                }
            }
            let observer = board.as_ref().map(|board| Observer {
                events: Arc::new(EventQueue::new(config.event_queue)),
                board: board.clone(),
            });
            if let Some(o) = &observer {
                runtime.events.push(o.events.clone());
            }
            let metrics = Arc::new(ThreadMetrics::default());
            runtime.metrics.push(metrics.clone());
            let options = DatapathOptions {
                max_datagram: config.node.max_datagram(),
                max_sockets: chunk.len() + 16,
                // Four receive buffers a socket (at least the default 4,096, at
                // most 16,384 = 24 MiB): a join storm at 200 nodes a thread ran
                // a 4,096-buffer ring dry ~2,000 times in its first seconds.
                recv_buffers: (chunk.len() * 4).clamp(4_096, 16_384),
                offload: config.offload,
                ..DatapathOptions::default()
            };
            let pin = config.pin.then_some(t % cores);
            let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), NodeError>>(1);
            let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
            let stop = stop.clone();
            let node_config = config.node.clone();
            let (ramp, start, timer_slack) = (config.ramp, clock.now(), config.timer_slack);
            let (keyring, join_cookies) = (config.keyring.clone(), config.join_cookies);
            let handle = std::thread::Builder::new()
                .name(format!("gossip-io-{t}"))
                .spawn(move || -> io::Result<()> {
                    if let Some(cpu) = pin {
                        if let Err(e) = sys::pin_current_thread(cpu) {
                            eprintln!("gossip-node: cannot pin I/O thread {t} to CPU {cpu}: {e}");
                        }
                    }
                    // The ring is created here: with SINGLE_ISSUER it belongs to
                    // the thread that creates it.
                    let dp = match datapath::create(kind, options) {
                        Ok(dp) => dp,
                        Err(source) => {
                            let _ = ready_tx.send(Err(NodeError::Datapath { kind, source }));
                            return Ok(());
                        }
                    };
                    let mut host = Host::new(dp, clock, node_config, metrics);
                    host.set_timer_slack(timer_slack);
                    if let Some(k) = keyring {
                        host.set_keyring(k);
                    }
                    host.set_join_cookies(join_cookies);
                    if let Some(o) = observer {
                        host.set_observer(o);
                    }
                    for socket in thread_sockets {
                        if let Err(source) = host.add_shared_socket(socket) {
                            let _ = ready_tx.send(Err(NodeError::Datapath { kind, source }));
                            return Ok(());
                        }
                    }
                    for (spec, held) in chunk.into_iter().zip(reserved) {
                        if held {
                            // The runtime kept a clone of an own socket; this
                            // one closes, the slot stays stopped until started.
                            host.reserve(&spec);
                            continue;
                        }
                        let offset = ramp.mul_f64(spec.global as f64 / n as f64);
                        if let Err(source) = host.add_node_at(spec, start + offset) {
                            let _ = ready_tx.send(Err(NodeError::Datapath { kind, source }));
                            return Ok(());
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    host.run(&stop, &cmd_rx)
                })
                .map_err(NodeError::Thread)?;
            runtime.threads.push(IoThread {
                commands: cmd_tx,
                handle: Some(handle),
            });
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(NodeError::Thread(io::Error::other(
                        "I/O thread died while starting",
                    )))
                }
            }
        }
        runtime.placement = placement;
        runtime.lives = Mutex::new(lives);
        Ok(runtime)
    }

    /// The datapath in use.
    pub fn datapath(&self) -> DatapathKind {
        self.kind
    }

    /// The line logged when `auto` fell back to mmsg, if it did.
    pub fn fallback_notice(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Every node's socket address, by global index (nodes sharing a
    /// socket share it).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Every node's endpoint (socket address and slot), by global index:
    /// what other nodes MEET.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Every node's id, by global index.
    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// I/O threads running.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// What the metrics endpoint reads.
    pub fn metrics(&self) -> MetricsSource {
        MetricsSource {
            threads: self.metrics.clone(),
            datapath: self.kind.name(),
        }
    }

    /// The flag that stops every I/O thread (for signal handlers).
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Runs `f` on thread `thread`'s host between two turns of its loop and
    /// returns its result; `None` when the thread is gone or `timeout` passes.
    pub fn call_thread<R: Send + 'static>(
        &self,
        thread: usize,
        timeout: Duration,
        f: impl FnOnce(&mut Host) -> R + Send + 'static,
    ) -> Option<R> {
        let t = self.threads.get(thread)?;
        let (tx, rx) = mpsc::sync_channel(1);
        let command: Command = Box::new(move |host| {
            let _ = tx.send(f(host));
        });
        t.commands.send(command).ok()?;
        rx.recv_timeout(timeout).ok()
    }

    /// Runs `f` on node `node` (global index) in its thread; `None` when it is
    /// not running or its thread does not answer within a second.
    pub fn with_node<R: Send + 'static>(
        &self,
        node: usize,
        f: impl FnOnce(&Node) -> R + Send + 'static,
    ) -> Option<R> {
        let &(thread, local) = self.placement.get(node)?;
        self.call_thread(thread, Duration::from_secs(1), move |host| {
            host.node(local).map(f)
        })
        .flatten()
    }

    /// The running nodes (global indexes, ascending) whose tables hold `id` as
    /// a member: with a partial view, the nodes that watch it. One round trip
    /// to each I/O thread, which scans its nodes' tables; a thread that does
    /// not answer within a second counts as holding none.
    pub fn holders(&self, id: NodeId) -> Vec<usize> {
        let mut out = Vec::new();
        for t in 0..self.threads.len() {
            let found = self.call_thread(t, Duration::from_secs(1), move |host| {
                (0..host.len())
                    .filter(|&i| {
                        host.node(i)
                            .and_then(|n| n.peers().by_id(id))
                            .is_some_and(|p| p.is_member())
                    })
                    .filter_map(|i| host.global(i))
                    .collect::<Vec<usize>>()
            });
            out.extend(found.into_iter().flatten());
        }
        out.sort_unstable();
        out
    }

    /// Every node counts the copies of `item` it receives from now on
    /// ([`Node::track`]; see [`ItemId`] for what counts): the running ones at
    /// once, and nodes started or restarted later from their start (a
    /// restarted node counts from zero). Read the counts with
    /// [`copies`](Runtime::copies). Returns false when some I/O thread
    /// already tracks [`gossip_core::MAX_TRACKED`] items, or does not answer
    /// within a second.
    pub fn track(&self, item: ItemId) -> bool {
        (0..self.threads.len()).fold(true, |all, t| {
            let tracked = self.call_thread(t, ACTION_WAIT, move |host| host.track(item));
            all & (tracked == Some(true))
        })
    }

    /// [`track`](Self::track) of each of `items`, one round trip to each I/O
    /// thread for all of them; an item some thread could not track is
    /// untracked everywhere (its copies are not counted). Returns, per item,
    /// whether it is tracked.
    pub fn track_all(&self, items: &[ItemId]) -> Vec<bool> {
        let mut all = vec![true; items.len()];
        for t in 0..self.threads.len() {
            let list = items.to_vec();
            let tracked = self.call_thread(t, ACTION_WAIT, move |host| {
                list.iter().map(|&i| host.track(i)).collect::<Vec<_>>()
            });
            for (k, a) in all.iter_mut().enumerate() {
                *a &= tracked.as_ref().is_some_and(|v| v[k]);
            }
        }
        let refused: Vec<ItemId> = items
            .iter()
            .zip(&all)
            .filter(|(_, &a)| !a)
            .map(|(&i, _)| i)
            .collect();
        if !refused.is_empty() {
            for t in 0..self.threads.len() {
                let list = refused.clone();
                self.call_thread(t, ACTION_WAIT, move |host| {
                    list.iter().for_each(|&i| {
                        host.untrack(i);
                    })
                });
            }
        }
        all
    }

    /// A keyring update on every I/O thread (a rotation step, see
    /// [`crate::keyfile`]): running nodes switch at once, keeping their
    /// epochs and counters. Returns how many running nodes switched; a
    /// runtime started without a keyring switches none (only nodes started
    /// later use it).
    pub fn set_keyring(&self, keyring: Arc<Keyring>) -> usize {
        (0..self.threads.len())
            .map(|t| {
                let k = keyring.clone();
                self.call_thread(t, ACTION_WAIT, move |host| host.set_keyring(k))
                    .unwrap_or(0)
            })
            .sum()
    }

    /// No node counts `item` any more, and its counts are forgotten.
    /// Returns whether some I/O thread tracked it.
    pub fn untrack(&self, item: ItemId) -> bool {
        (0..self.threads.len()).fold(false, |any, t| {
            let was = self.call_thread(t, ACTION_WAIT, move |host| host.untrack(item));
            any | (was == Some(true))
        })
    }

    /// Copies of `item` each node has received in its current life, by
    /// global index: `None` for a node that is not running (not started yet,
    /// or killed; a paused node keeps its count), or that does not track it.
    /// One round trip to each I/O thread, which reads its nodes' counters; a
    /// thread that does not answer within a second reports `None` for its
    /// nodes.
    pub fn copies(&self, item: ItemId) -> Vec<Option<u32>> {
        let mut out = vec![None; self.ids.len()];
        for t in 0..self.threads.len() {
            let counts = self.call_thread(t, Duration::from_secs(1), move |host| host.copies(item));
            for (node, copies) in counts.into_iter().flatten() {
                if let Some(slot) = out.get_mut(node) {
                    *slot = Some(copies);
                }
            }
        }
        out
    }

    /// A reader's handle on node `node`'s (global index) published peer view:
    /// its peers' ids, states, incarnations and last PONGs, read without a
    /// lock and without the I/O thread's attention. Getting the handle takes
    /// one round trip to the node's thread (`None` when the node has not
    /// started or its thread does not answer within a second); keep it and
    /// read through it as often as wanted. It follows the node's slot: empty
    /// while the node is stopped, filled again if it is restarted there.
    pub fn peer_view(&self, node: usize) -> Option<PeerView> {
        let &(thread, local) = self.placement.get(node)?;
        self.call_thread(thread, Duration::from_secs(1), move |host| {
            host.peer_view(local)
        })
        .flatten()
    }

    /// Stops nodes `nodes` (global indexes) at once, as [`kill`](Self::kill)
    /// does each, with one round trip to each I/O thread instead of one per
    /// node: a third of 5,000 nodes killed one by one took the trial loop
    /// thousands of thread turns, while their events went unread. Returns
    /// how many were running.
    pub fn kill_all(&self, nodes: &[usize]) -> usize {
        let mut by_thread = vec![Vec::new(); self.threads.len()];
        for &(thread, local) in nodes.iter().filter_map(|&n| self.placement.get(n)) {
            by_thread[thread].push(local);
        }
        by_thread
            .into_iter()
            .enumerate()
            .filter(|(_, locals)| !locals.is_empty())
            .map(|(t, locals)| {
                self.call_thread(t, ACTION_WAIT, move |host| {
                    locals.iter().filter(|&&l| host.remove_node(l)).count()
                })
                .unwrap_or(0)
            })
            .sum()
    }

    /// Stops node `node` (global index): closes its socket and forgets it, as
    /// a crash would. Returns whether it was running.
    pub fn kill(&self, node: usize) -> bool {
        let Some(&(thread, local)) = self.placement.get(node) else {
            return false;
        };
        self.call_thread(thread, ACTION_WAIT, move |host| host.remove_node(local))
            .unwrap_or(false)
    }

    /// Starts node `node` (global index), which is not running, and has it
    /// meet `meet`: a held node's first start (incarnation 0), or a restart
    /// of a killed node on the same address with the same id and the next
    /// incarnation.
    ///
    /// # Errors
    /// The node is running or unknown, its address cannot be bound again (a
    /// restart races any process that took the port), or its thread is gone.
    pub fn start_node(&self, node: usize, meet: &[Endpoint]) -> Result<(), NodeError> {
        let &(thread, local) = self
            .placement
            .get(node)
            .ok_or_else(|| NodeError::Config(format!("no node {node}")))?;
        let addr = self.addrs[node];
        let mut lives = self.lives.lock().unwrap_or_else(PoisonError::into_inner);
        let life = &mut lives[node];
        let next = life.incarnation.wrapping_add(u32::from(life.started));
        let (socket, incarnation) = match (life.parked.take(), life.shared) {
            (Some(socket), _) => (NodeSocket::Own(socket), life.incarnation),
            (None, Some(k)) => (NodeSocket::Shared(k), next),
            (None, None) => {
                let socket = bind(addr, self.socket_buffer_bytes)
                    .map_err(|source| NodeError::Bind { addr, source })?;
                (NodeSocket::Own(socket), next)
            }
        };
        let mut seed_state = self.seeds[node] ^ u64::from(incarnation);
        let spec = NodeSpec {
            socket,
            identity: Identity {
                id: self.ids[node],
                incarnation,
                slot: self.endpoints[node].slot(),
            },
            seed: splitmix64(&mut seed_state),
            meet: meet.to_vec(),
            global: node,
        };
        let started = self
            .call_thread(thread, Duration::from_secs(2), move |host| {
                host.revive(local, spec).map_err(|e| e.to_string())
            })
            .ok_or_else(|| {
                NodeError::Thread(io::Error::other(format!(
                    "I/O thread {thread} did not start node {node}"
                )))
            })?;
        started.map_err(|e| NodeError::Datapath {
            kind: self.kind,
            source: io::Error::other(e),
        })?;
        life.incarnation = incarnation;
        life.started = true;
        Ok(())
    }

    /// Kills node `node` if it runs, then starts it again on its address with
    /// the next incarnation, meeting `meet` (see [`start_node`](Runtime::start_node)).
    ///
    /// # Errors
    /// As `start_node`.
    pub fn restart(&self, node: usize, meet: &[Endpoint]) -> Result<(), NodeError> {
        self.kill(node);
        self.start_node(node, meet)
    }

    /// Pauses node `node`: no ticks, input discarded (see
    /// [`Host::pause_node`]). Returns whether it was running and not paused.
    pub fn pause(&self, node: usize) -> bool {
        let Some(&(thread, local)) = self.placement.get(node) else {
            return false;
        };
        self.call_thread(thread, ACTION_WAIT, move |host| host.pause_node(local))
            .unwrap_or(false)
    }

    /// Resumes a paused node. Returns whether it was paused.
    pub fn resume(&self, node: usize) -> bool {
        let Some(&(thread, local)) = self.placement.get(node) else {
            return false;
        };
        self.call_thread(thread, ACTION_WAIT, move |host| host.resume_node(local))
            .unwrap_or(false)
    }

    /// Node `node` (global index) publishes `value` under `key`, through its
    /// I/O thread's command path like the lifecycle commands: the write
    /// happens between two turns of the loop and spreads by the node's
    /// dissemination. `None` when the node is not running or its thread does
    /// not answer within a second; the core's error when dissemination is
    /// off or a store cap refuses it.
    pub fn publish(
        &self,
        node: usize,
        key: &[u8],
        value: &[u8],
    ) -> Option<Result<Stamp, PublishError>> {
        let &(thread, local) = self.placement.get(node)?;
        let (key, value) = (key.to_vec(), value.to_vec());
        self.call_thread(thread, ACTION_WAIT, move |host| {
            host.publish_update(local, &key, &value)
        })
        .flatten()
    }

    /// Node `node`'s current (or last) incarnation.
    pub fn incarnation(&self, node: usize) -> Option<u32> {
        let lives = self.lives.lock().unwrap_or_else(PoisonError::into_inner);
        lives.get(node).map(|l| l.incarnation)
    }

    /// The clock every I/O thread stamps events with (same origin), so that a
    /// reader can tell `now` in the same units.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Takes up to `max` observed events, oldest first per thread (threads in
    /// turn), and passes each to `f`; returns how many. Nothing without
    /// [`RuntimeConfig::event_queue`]. Never blocks an I/O thread.
    pub fn drain_events(&self, max: usize, mut f: impl FnMut(ObservedEvent)) -> usize {
        let mut taken = 0;
        for q in &self.events {
            while taken < max {
                let Some(e) = q.pop() else { break };
                f(e);
                taken += 1;
            }
        }
        taken
    }

    /// Events dropped by the observation channel since the start, per I/O
    /// thread (empty without observation).
    pub fn events_dropped(&self) -> Vec<u64> {
        self.events.iter().map(|q| q.dropped()).collect()
    }

    /// Node `node`'s traffic counters as its thread last published them
    /// (every 250 ms, and when it stops); `None` without observation or
    /// before the first publish.
    pub fn node_counters(&self, node: usize) -> Option<NodeCounters> {
        self.board.as_ref()?.read(node)
    }

    /// Stops every thread and waits for them.
    ///
    /// # Errors
    /// The first datapath error a thread stopped with.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_threads()
    }

    fn stop_threads(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let mut result = Ok(());
        for t in &mut self.threads {
            if let Some(h) = t.handle.take() {
                match h.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        if result.is_ok() {
                            result = Err(e);
                        }
                    }
                    Err(_) => {
                        if result.is_ok() {
                            result = Err(io::Error::other("an I/O thread panicked"));
                        }
                    }
                }
            }
        }
        result
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.stop_threads();
    }
}
