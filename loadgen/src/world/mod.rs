//! Worlds that run a scenario's trials, behind one trait.
//!
//! A [`World`] is one trial's nodes in one kind of world: the simulator
//! (membership in virtual time, [`sim`]), real UDP nodes on loopback
//! ([`udp`]), or a real Redis Cluster ([`redis`]). Each does only what is
//! specific to it (start, crash, pause a node, shape the network, report what
//! its nodes saw); the one timeline interpreter, [`crate::timeline`], acts
//! the scenario out on any of them and computes every figure the same way.
//! The epidemic-only model ([`epidemic`]) has no nodes to act on: it runs
//! Demers' model of one update in lockstep rounds, and shares only the trial
//! plumbing here (seeds, threads, stop flag, progress).

pub mod epidemic;
pub mod hosts;
pub mod keys;
pub mod redis;
pub mod sim;
pub mod udp;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use gossip_core::wire::key_id;
use gossip_core::{Event, Instant, NodeId, PublishError, Stamp};

use crate::observe::{Resources, Trial};
use crate::progress::Progress;
use crate::scenario::{Scenario, WorldKind};

/// What a node saw of another node (or of an update), in its world's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The node that saw it (trial index).
    pub node: usize,
    /// When, on the world's clock.
    pub at: Instant,
    /// What.
    pub what: What,
}

/// The observations the figures are made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// It learned that the node exists.
    Discovered(usize),
    /// It holds the node as a member: the node answered its handshake (the
    /// redis world lists only members by their real id, so its discoveries
    /// are joins too).
    Joined(usize),
    /// It suspects the node (PFAIL).
    Pfail(usize),
    /// It holds the node FAIL.
    Fail(usize),
    /// It holds the node alive again: a PFAIL or FAIL it held cleared (the
    /// node answered, or came back restarted).
    Alive(usize),
    /// It no longer lists the node: a partial view made room or dropped a
    /// silent FAIL, or a handshake timed out.
    Forgotten(usize),
    /// It took a published update as news.
    Update(ItemKey),
}

/// Something disseminated whose spread is measured (DESIGN §3), by trial
/// indices: "node X exists", "node X is FAIL", or a published update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKey {
    /// A node joined.
    Join(usize),
    /// A node is FAIL.
    Fail(usize),
    /// An update `(key id, version)` published by node `origin`.
    Update {
        /// The publishing node.
        origin: usize,
        /// The key's id (`gossip_core::wire::key_id`).
        key: u64,
        /// Its version.
        version: u64,
    },
}

/// A change to the network between the nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// These nodes and the rest stop hearing each other.
    Partition(Vec<usize>),
    /// Every partition ends.
    Heal,
    /// Each datagram is lost with this probability.
    Loss(f64),
    /// One-way latency becomes this many ms.
    Latency(f64),
}

/// What a publish did.
#[derive(Clone, Debug, PartialEq)]
pub enum Published {
    /// The node took it: the item, injected at `at`.
    Item {
        /// The update.
        key: ItemKey,
        /// When it was published.
        at: Instant,
    },
    /// The node refused it (a store cap), saying why.
    Refused(String),
    /// The node is not running.
    NotRunning,
}

/// One node's membership upkeep sent so far (DESIGN §3, ping overhead), by
/// message type in [`UPKEEP`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct Upkeep {
    /// When the counters were read, on the world's clock.
    pub at: Instant,
    /// Which life of the node they count (a restart starts again at 0).
    pub life: u32,
    /// Messages sent, by type.
    pub msgs: [u64; UPKEEP.len()],
    /// Payload bytes sent by type, where the world tells types apart.
    pub bytes: Option<[u64; UPKEEP.len()]>,
    /// Payload bytes of all upkeep messages.
    pub bytes_total: u64,
    /// Bytes on the wire: payload plus the headers below it.
    pub wire_bytes: u64,
}

impl Upkeep {
    /// Upkeep of our nodes (sim, udp, hosts worlds) from datagrams and payload
    /// bytes sent by type, in [`UPKEEP`] order, over IPv4 + UDP.
    pub fn of_udp(
        at: Instant,
        life: u32,
        msgs: [u64; UPKEEP.len()],
        bytes: [u64; UPKEEP.len()],
    ) -> Self {
        /// IPv4 + UDP header bytes per datagram.
        const WIRE_OVERHEAD: u64 = 28;
        let (m, b): (u64, u64) = (msgs.iter().sum(), bytes.iter().sum());
        Upkeep {
            at,
            life,
            msgs,
            bytes: Some(bytes),
            bytes_total: b,
            wire_bytes: b + WIRE_OVERHEAD * m,
        }
    }
}

/// Membership message types, as ping overhead counts them (DESIGN §3): the
/// redis machine's, then the swim profile's.
pub const UPKEEP: [&str; 9] = [
    "ping",
    "pong",
    "meet",
    "probe",
    "ack",
    "probe_req",
    "nack",
    "sync",
    "state",
];

/// How many of [`UPKEEP`] the redis machine sends (the rest are swim's).
pub const UPKEEP_REDIS: usize = 3;

/// What a world adds to a finished trial.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extras {
    /// Simulator events processed.
    pub sim_events: u64,
    /// The simulator's trace hash.
    pub trace_hash: Option<String>,
    /// The datapath or server the nodes ran on.
    pub datapath: Option<String>,
    /// What running real nodes cost.
    pub resources: Option<Resources>,
    /// The hosts world: agents, placement, clocks, faults.
    pub hosts: Option<hosts::HostsInfo>,
}

/// One trial's nodes in one world, acted on by [`crate::timeline`]. Nodes
/// are trial indices: `0..cluster.nodes` run from the start, the rest join
/// later. An action a world cannot do is refused before the trial starts
/// ([`WorldKind::check`]); the methods' defaults refuse it again, naming it.
pub trait World {
    /// The world's clock.
    fn now(&self) -> Instant;
    /// How far one step of the interpreter goes between two looks at what
    /// the nodes saw (a tick in the simulator, a poll on real nodes).
    fn step(&self) -> Duration;
    /// Runs (or waits) until `until`.
    ///
    /// # Errors
    /// A world that broke (a server or I/O thread gone).
    fn advance(&mut self, until: Instant) -> Result<()>;
    /// Moves what the nodes saw since the last call into `out`.
    ///
    /// # Errors
    /// A world that broke.
    fn drain(&mut self, out: &mut Vec<Seen>) -> Result<()>;
    /// Starts node `n`, a joiner, meeting node `meet`.
    ///
    /// # Errors
    /// The node could not start.
    fn start(&mut self, n: usize, meet: usize) -> Result<()>;
    /// Stops node `n` at once, losing its state.
    ///
    /// # Errors
    /// The node could not be stopped.
    fn crash(&mut self, n: usize) -> Result<()>;
    /// Stops nodes `ns` at once (a mass failure), as [`crash`](Self::crash)
    /// does each.
    ///
    /// # Errors
    /// A node could not be stopped.
    fn crash_all(&mut self, ns: &[usize]) -> Result<()> {
        ns.iter().try_for_each(|&n| self.crash(n))
    }
    /// Starts crashed node `n` again, meeting node `meet`.
    ///
    /// # Errors
    /// The node could not start.
    fn restart(&mut self, n: usize, meet: usize) -> Result<()>;
    /// Freezes node `n`, keeping its state.
    ///
    /// # Errors
    /// The node could not be paused.
    fn pause(&mut self, n: usize) -> Result<()>;
    /// Lets paused node `n` run again.
    ///
    /// # Errors
    /// The node could not be resumed.
    fn resume(&mut self, n: usize) -> Result<()>;
    /// Changes the network.
    ///
    /// # Errors
    /// A world without a network to shape.
    fn shape(&mut self, change: &Shape) -> Result<()> {
        anyhow::bail!("{change:?}: this world cannot shape its network")
    }
    /// A key rotation step on every node (see `ActionKind::KeyAdd`).
    ///
    /// # Errors
    /// A world without cluster keys.
    fn rekey(&mut self, step: crate::scenario::ActionKind) -> Result<String> {
        anyhow::bail!("{}: this world has no cluster keys", step.name())
    }
    /// Node `n` publishes `value` under `key`.
    ///
    /// # Errors
    /// A world whose nodes carry no data.
    fn publish(&mut self, n: usize, key: &[u8], value: &[u8]) -> Result<Published> {
        let _ = (n, key, value);
        anyhow::bail!("publish: this world's nodes carry no published data")
    }
    /// The first side of a partition that puts `fraction` of the network on
    /// it: by default that fraction of the `initial` starting nodes plus every
    /// joiner (they meet node 0, so they belong with it), of `total` nodes.
    fn partition_side(&self, fraction: f64, initial: usize, total: usize) -> Vec<usize> {
        let k = ((initial as f64) * fraction).round() as usize;
        (0..k).chain(initial..total).collect()
    }
    /// Whether datagrams from `a` reach `b` (false across a partition).
    fn connected(&self, a: usize, b: usize) -> bool {
        let _ = (a, b);
        true
    }
    /// With partial views, the running nodes (ascending) that hold node
    /// `n` as a member; `None` when every node holds every other.
    fn holders(&mut self, n: usize) -> Option<Vec<usize>>;
    /// Starts counting the copies of `item` each node receives.
    fn track(&mut self, item: ItemKey);
    /// [`track`](Self::track) of each of `items` (a mass failure's).
    fn track_all(&mut self, items: &[ItemKey]) {
        items.iter().for_each(|&i| self.track(i));
    }
    /// Stops counting the copies of `item` (its copies were read for good).
    fn untrack(&mut self, item: ItemKey) {
        let _ = item;
    }
    /// Copies of `item` each node (by trial index) received so far, or
    /// `None` where the world cannot count them.
    fn copies(&mut self, item: ItemKey) -> Option<Vec<u32>>;
    /// Upkeep counters of nodes `0..nodes`; `None` for a node not running.
    ///
    /// # Errors
    /// Counters that cannot be read.
    fn upkeep(&mut self, nodes: usize) -> Result<Vec<Option<Upkeep>>>;
    /// The measured window starts now (real worlds read their resource
    /// counters here).
    fn window_starts(&mut self) {}
    /// Ends the trial: stops every node; `node_s` is node-seconds run in the
    /// window, for costs per node-second.
    ///
    /// # Errors
    /// A world that did not stop cleanly.
    fn finish(self: Box<Self>, node_s: f64) -> Result<Extras>;
}

impl Seen {
    /// What a core node's `event` says, if the figures use it: `index` maps a
    /// node id to its trial index (the sim and udp worlds run core nodes).
    pub fn of_event(
        node: usize,
        at: Instant,
        event: &Event,
        index: impl Fn(NodeId) -> Option<usize>,
    ) -> Option<Seen> {
        let what = match *event {
            Event::PeerDiscovered { id, .. } => What::Discovered(index(id)?),
            Event::PeerJoined { id } => What::Joined(index(id)?),
            Event::PeerPfail { id } => What::Pfail(index(id)?),
            Event::PeerFail { id, .. } => What::Fail(index(id)?),
            // A restarted peer that was PFAIL or FAIL is alive again: the core
            // says so with `PeerAlive` before `PeerRestarted`, which changes
            // no opinion by itself.
            Event::PeerAlive { id, .. } => What::Alive(index(id)?),
            Event::PeerForgotten { id } | Event::HandshakeTimedOut { id } => {
                What::Forgotten(index(id)?)
            }
            Event::UpdateReceived {
                origin,
                key,
                version,
                ..
            } => What::Update(ItemKey::Update {
                origin: index(origin)?,
                key,
                version,
            }),
            _ => return None,
        };
        Some(Seen { node, at, what })
    }
}

impl Published {
    /// What a core node's `publish` of `key` on node `n`, at `at`, did
    /// (`None`: the node was not running).
    pub fn of_core(
        n: usize,
        key: &[u8],
        at: Instant,
        r: Option<Result<Stamp, PublishError>>,
    ) -> Published {
        match r {
            Some(Ok(stamp)) => Published::Item {
                key: ItemKey::Update {
                    origin: n,
                    key: key_id(key),
                    version: stamp.version,
                },
                at,
            },
            Some(Err(e)) => Published::Refused(e.to_string()),
            None => Published::NotRunning,
        }
    }
}

/// Sleeps until `until` on a real world's clock (`now` read just before).
pub(crate) fn sleep_until(now: Instant, until: Instant) {
    if until > now {
        std::thread::sleep(until - now);
    }
}

/// Mixed into the trial seed for the choice of publishing nodes.
pub(crate) const PUBLISH_SEED: u64 = 0x7075_626c_6973_6800;

/// Trial `i`'s seed under base seed `base`, whatever the world or thread count.
pub fn trial_seed(base: u64, i: usize) -> u64 {
    crate::population::trial_seed(base, i as u64)
}

/// What a run shares with its trials: the stop flag (Ctrl-C) and the progress bar.
#[derive(Debug)]
pub struct Control {
    /// Set on Ctrl-C: finish nothing new, keep what is finished.
    pub stop: AtomicBool,
    /// Progress in work units (trials, or virtual seconds).
    pub progress: Progress,
    /// The error that stopped the run after some trials had finished.
    interruption: Mutex<Option<String>>,
}

impl Control {
    /// A control with a progress bar of `total` units.
    pub fn new(total: u64, label: &str) -> Self {
        Control {
            stop: AtomicBool::new(false),
            progress: Progress::new(total, label),
            interruption: Mutex::new(None),
        }
    }

    /// Stops the run because of `why`, keeping what finished.
    pub fn interrupt(&self, why: String) {
        self.interruption
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The error that stopped the run, if one did.
    pub fn interruption(&self) -> Option<String> {
        self.interruption
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the run should stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs `count` independent jobs on up to `threads` threads; job `i` is
/// `run(i)`, returning `None` when it was stopped before finishing. Every job
/// finished before a stop is returned, in index order; the first error is
/// returned after the running jobs finish (and stops the rest).
pub fn parallel<T: Send>(
    count: usize,
    threads: usize,
    control: &Control,
    run: impl Fn(usize) -> Result<Option<T>> + Sync,
) -> Result<Vec<(usize, T)>> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(count));
    let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let worker = || loop {
        if control.stopped() {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            return;
        }
        match run(i) {
            Ok(Some(t)) => done.lock().unwrap_or_else(|p| p.into_inner()).push((i, t)),
            Ok(None) => return,
            Err(e) => {
                error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
                control.stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, count.max(1)) {
            s.spawn(worker);
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    Ok(done)
}

/// [`parallel`] for trials: the finished trials in index order.
///
/// # Errors
/// The first trial error.
pub fn parallel_trials(
    trials: usize,
    threads: usize,
    control: &Control,
    run: impl Fn(usize) -> Result<Option<Trial>> + Sync,
) -> Result<Vec<Trial>> {
    Ok(parallel(trials, threads, control, run)?
        .into_iter()
        .map(|(_, t)| t)
        .collect())
}

/// Runs a scenario's trials in its world: the epidemic model's in parallel,
/// the simulator's on up to `threads` threads, real worlds' one after
/// another (each trial owns the machine).
///
/// # Errors
/// A scenario the world refuses, or a world that cannot start.
pub fn run(s: &Scenario, threads: usize, control: &Control) -> Result<Vec<Trial>> {
    if s.epidemic.is_some() {
        return epidemic::run(s, threads, control);
    }
    s.cluster.world.check(s)?;
    let trial = |i: usize| -> Result<Option<Trial>> {
        let seed = trial_seed(s.run.seed, i);
        let world: Box<dyn World> = match s.cluster.world {
            WorldKind::Sim => Box::new(sim::SimWorld::start(s, seed)?),
            WorldKind::Udp => Box::new(udp::UdpWorld::start(s, seed)?),
            WorldKind::Redis => redis::start(s, i, control)?,
            WorldKind::Hosts => Box::new(hosts::HostsWorld::start(s, seed)?),
        };
        crate::timeline::drive(world, s, i, seed, control)
    };
    match s.cluster.world {
        WorldKind::Sim => parallel_trials(s.run.trials, threads, control, trial),
        WorldKind::Udp | WorldKind::Redis | WorldKind::Hosts => {
            if s.cluster.world == WorldKind::Udp {
                // A socket binds on 127.0.0.1 even where loopback is down (a
                // bare network namespace); only a datagram tells.
                udp::can_start()
                    .map_err(|e| anyhow::Error::new(udp::CannotStart(format!("{e:#}"))))?;
            }
            let mut out = Vec::new();
            for i in 0..s.run.trials {
                if control.stopped() {
                    break;
                }
                match trial(i) {
                    Ok(Some(t)) => out.push(t),
                    Ok(None) => break,
                    // A world that broke mid-run (an agent or server gone)
                    // loses no finished trial: the report is written, marked.
                    Err(e) if !out.is_empty() => {
                        control.interrupt(format!("trial {i}: {e:#}"));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
    }
}

/// Progress units one trial reports.
pub fn units_per_trial(s: &Scenario) -> u64 {
    match s.epidemic {
        Some(_) => 1,
        // Seconds of the world's clock.
        None => (s.run.warmup_s + s.run.duration_s).ceil() as u64,
    }
}

/// Threads to use: the cores this process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
