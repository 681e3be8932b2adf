//! A driver for a real Redis Cluster (or Valkey) on 127.0.0.1, the system
//! under test of the redis world.
//!
//! [`Cluster::start`] spawns `nodes` servers in cluster mode, spreads all
//! 16,384 slots over them (Redis counts only masters with slots as FAIL
//! voters: quorum = size/2 + 1, as with `redis-cli --cluster create` and no
//! replicas), MEETs everyone to node 0 and waits until every node knows every
//! node and says `cluster_state:ok`. Then the scenario acts on single nodes
//! ([`Cluster::kill`], [`Cluster::pause`], [`Cluster::restart`],
//! [`Cluster::join`], …) while [`Cluster::poll`] reads CLUSTER NODES from
//! every running server and reports what each one newly sees of the others,
//! and [`Cluster::counters`] reads CLUSTER INFO's message counts plus the bus
//! bytes the kernel counted (see `bus.rs`: Redis counts no bytes).
//!
//! Everything is synchronous and bounded: every wait has a deadline, every
//! socket a timeout, and a paused or dead server is never waited on. Nodes are
//! 0-based indices, fixed for the cluster's life.
//!
//! Servers never outlive the loadgen: a `Cluster` kills every server it
//! started when dropped, [`kill_all`] kills every server of the process from
//! a Ctrl-C handler about to `exit`, and each server carries
//! `PR_SET_PDEATHSIG(SIGKILL)`, which Linux fires when the *thread* that
//! spawned it exits: start, join and restart a cluster from a thread that
//! outlives it.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use gossip_loadgen::world::redis::cluster::{Cluster, Options};
//!
//! let stop = AtomicBool::new(false);
//! let o = Options { nodes: 6, capacity: 7, node_timeout_ms: 1000, ..Options::default() };
//! let mut c = Cluster::start(&o, &stop)?;
//! c.kill(5);
//! for _ in 0..200 {
//!     for change in c.poll()? {
//!         println!("{:?}: node {} sees node {} {:?}", change.at, change.node, change.about, change.what);
//!     }
//!     std::thread::sleep(std::time::Duration::from_millis(25));
//! }
//! c.shutdown()?;
//! # anyhow::Ok(())
//! ```

mod bus;
mod process;
mod startup;
mod text;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use redis::io::tcp::TcpSettings;
use redis::{Connection, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value};

pub use bus::BusBytes;
pub use process::{kill_all, live_pids};
pub use text::Messages;

use process::{Server, BUS_PORT_OFFSET};
use text::Id;

/// How to run the cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// The server binary (a path or a name on PATH). None: `redis-server`
    /// on PATH, else `valkey-server`.
    pub server: Option<PathBuf>,
    /// Servers started and formed into a cluster by [`Cluster::start`], each
    /// a master with an equal share of the slots.
    pub nodes: usize,
    /// `nodes` plus later joins: nodes `nodes..capacity` start with
    /// [`Cluster::join`]. Ports for all of them are checked at start.
    pub capacity: usize,
    /// `cluster-node-timeout`. Redis's default is 15,000 ms; below about
    /// 500 ms a busy loopback host sees false PFAILs.
    pub node_timeout_ms: u64,
    /// Client ports to choose from, one per node (bus port = port + 10,000,
    /// so ports must stay below 55,536). Taken ports are skipped. Keep bus
    /// ports below the ephemeral range (Linux: 32,768 up), where an outgoing
    /// connection may hold one at the moment a server restarts.
    pub ports: Range<u16>,
    /// Working directory: one `node-<n>` subdirectory per node holds its
    /// redis.conf, nodes.conf, redis.log and stdout.log.
    pub dir: PathBuf,
    /// How long [`Cluster::start`] waits for the cluster to form.
    pub form_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            server: None,
            nodes: 3,
            capacity: 3,
            node_timeout_ms: 15_000,
            // Far from 6379 (a system redis) and, with bus ports 31000..32000,
            // below the ephemeral range.
            ports: 21_000..22_000,
            dir: std::env::temp_dir().join(format!("gossip-loadgen-redis-{}", std::process::id())),
            form_timeout: Duration::from_secs(60),
        }
    }
}

/// What one node newly lists about another in CLUSTER NODES.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    /// Listed for the first time (by its real id: handshake entries, which
    /// carry a random temporary id, do not count).
    Discovered,
    /// Its flags gained `fail?` (PFAIL).
    Pfail,
    /// Its flags gained `fail` (FAIL).
    Fail,
    /// Its flags dropped `fail?` or `fail` and now carry neither.
    Alive,
    /// Listed before, missing now (a handshake that timed out, CLUSTER FORGET).
    Forgotten,
}

/// One change seen by [`Cluster::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// When the poll round that saw it sent its requests, on [`Cluster::now`]'s
    /// clock: the change happened after the previous round's `at` and was
    /// true by the time the server answered (within the round).
    pub at: Duration,
    /// The node that lists it (the observer).
    pub node: usize,
    /// The node listed.
    pub about: usize,
    /// What changed.
    pub what: Seen,
}

/// One node's counters: messages from CLUSTER INFO, bytes from the kernel.
/// Both count from the process's start; a restart starts them again at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// When they were read, on [`Cluster::now`]'s clock.
    pub at: Duration,
    /// Which process of the node these count: 0 the first, one more per
    /// restart. Counts restart at 0 with each life.
    pub life: u32,
    /// Messages sent, by type (`cluster_stats_messages_*_sent`).
    pub sent: Messages,
    /// Messages received, by type (`cluster_stats_messages_*_received`).
    pub received: Messages,
    /// Bus bytes; None when the kernel's socket table cannot be read (see
    /// [`Cluster::bus_error`]).
    pub bus: Option<BusBytes>,
}

/// Where a node is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Not started yet (a join to come).
    Unstarted,
    /// Its process runs.
    Running,
    /// Its process is stopped (SIGSTOP).
    Paused,
    /// Killed; [`Cluster::restart`] brings it back.
    Dead,
}

/// A running Redis Cluster on 127.0.0.1; dropping it kills every server.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    version: String,
    node_timeout_ms: u64,
    nodes: Vec<Node>,
    /// Ports of `Options::ports` not yet handed out, for a node whose port
    /// was taken between our check and its start.
    spare_ports: Range<u16>,
    index: HashMap<Id, usize>,
    /// `view[observer * capacity + about]`: what the observer listed at the
    /// last poll (`text::KNOWN | PFAIL | FAIL`).
    view: Vec<u8>,
    bus: bus::BusTable,
    origin: Instant,
    formed_in: Duration,
    /// What the baseline poll saw, until taken ([`Cluster::take_formation`]).
    formation: Vec<Change>,
}

struct Node {
    port: u16,
    dir: PathBuf,
    server: Option<Server>,
    paused: bool,
    id: Option<Id>,
    conn: Option<Connection>,
    /// Processes started for this node so far.
    starts: u32,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // redis::Connection has no Debug: say whether there is one.
        f.debug_struct("Node")
            .field("port", &self.port)
            .field("server", &self.server)
            .field("paused", &self.paused)
            .field("id", &self.id.as_ref().map(text::id_str))
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

/// A command to a running, unpaused server on loopback answers within
/// milliseconds; a busy 2-core host can stall one for tens.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// One poll round gives up on the servers that have not answered by then.
const ROUND_TIMEOUT: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const SLOTS: usize = 16_384;

impl Cluster {
    /// Starts servers `0..nodes` and forms them into a cluster with every
    /// slot assigned; returns once every node lists every node (none in
    /// handshake or failing) and reports `cluster_state:ok`. What the nodes
    /// know at that moment is the baseline: [`Cluster::poll`] reports only
    /// what changes after it.
    ///
    /// # Errors
    /// A one-line error, with nothing left running, when: the server binary
    /// is missing (naming the Debian package), `nodes`/`capacity` make no
    /// sense, the port range has fewer than `capacity` free port pairs, a
    /// server exits at start (with the last lines of its log), the cluster
    /// does not form within `form_timeout`, or `stop` is set meanwhile.
    pub fn start(o: &Options, stop: &AtomicBool) -> Result<Cluster> {
        let started = Instant::now();
        if o.nodes == 0 || o.capacity < o.nodes {
            bail!(
                "a redis cluster needs nodes ≥ 1 and capacity ≥ nodes (got {} and {})",
                o.nodes,
                o.capacity
            );
        }
        if o.nodes > SLOTS {
            bail!(
                "a redis cluster has {SLOTS} slots: at most {SLOTS} masters with slots (got {})",
                o.nodes
            );
        }
        if o.node_timeout_ms == 0 {
            bail!("cluster-node-timeout must be at least 1 ms");
        }
        let bin = process::resolve(o.server.as_deref())?;
        let version = process::version(&bin)?;
        std::fs::create_dir_all(&o.dir)
            .with_context(|| format!("cannot create {}", o.dir.display()))?;
        let dir = o
            .dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", o.dir.display()))?;

        let mut ports = Vec::with_capacity(o.capacity);
        let mut spare_ports = o.ports.clone();
        for p in spare_ports.by_ref() {
            if ports.len() == o.capacity {
                break;
            }
            if process::is_free(p) {
                ports.push(p);
            }
        }
        if ports.len() < o.capacity {
            bail!(
                "port range {}..{} has {} free port pairs on 127.0.0.1 (client port p and bus port p+{BUS_PORT_OFFSET}), \
                 {} needed (capacity): choose a larger or freer range",
                o.ports.start,
                o.ports.end,
                ports.len(),
                o.capacity
            );
        }
        let nodes = ports
            .into_iter()
            .enumerate()
            .map(|(n, port)| Node {
                port,
                dir: dir.join(format!("node-{n}")),
                server: None,
                paused: false,
                id: None,
                conn: None,
                starts: 0,
            })
            .collect();
        // Built before the first spawn: from here on an early return drops
        // it, and Drop kills whatever was started.
        let mut c = Cluster {
            bin,
            version,
            node_timeout_ms: o.node_timeout_ms,
            nodes,
            spare_ports,
            index: HashMap::new(),
            view: vec![0; o.capacity * o.capacity],
            bus: bus::BusTable::new(o.capacity),
            origin: started,
            formed_in: Duration::ZERO,
            formation: Vec::new(),
        };
        // Spawn all, then wait for each: servers start in parallel.
        for n in 0..o.nodes {
            c.spawn(n, true)?;
        }
        for n in 0..o.nodes {
            if stop.load(Ordering::Relaxed) {
                bail!("stopped while the redis servers started");
            }
            c.ready(n, true)?;
        }
        for n in 0..o.nodes {
            let (lo, hi) = (n * SLOTS / o.nodes, (n + 1) * SLOTS / o.nodes - 1);
            // Distinct config epochs up front, as redis-cli --cluster create
            // does: equal ones would be resolved one collision at a time.
            c.command(n, redis::cmd("CLUSTER").arg("SET-CONFIG-EPOCH").arg(n + 1))?;
            c.command(
                n,
                redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(lo).arg(hi),
            )?;
        }
        let port0 = c.nodes[0].port;
        for n in 1..o.nodes {
            c.command(
                n,
                redis::cmd("CLUSTER")
                    .arg("MEET")
                    .arg("127.0.0.1")
                    .arg(port0),
            )?;
        }
        c.wait_formed(o.nodes, o.form_timeout, stop)?;
        // The baseline later polls diff against; true once formed: at 0.
        c.formation = c.poll()?;
        for change in &mut c.formation {
            change.at = Duration::ZERO;
        }
        c.formed_in = started.elapsed();
        c.origin = Instant::now();
        Ok(c)
    }

    /// What each starting node listed when the cluster formed (every other
    /// node, none flagged), timed at 0 on [`Cluster::now`]'s clock: the
    /// changes of the baseline poll, which [`Cluster::poll`] does not
    /// return. Empty after the first call.
    pub fn take_formation(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.formation)
    }

    /// Time since the cluster formed ([`Cluster::start`] returned), monotonic.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// How long [`Cluster::start`] took, from its call to a formed cluster.
    pub fn formed_in(&self) -> Duration {
        self.formed_in
    }

    /// `nodes` plus later joins: every valid node index is below it.
    pub fn capacity(&self) -> usize {
        self.nodes.len()
    }

    /// Where node `n` is in its life.
    ///
    /// # Panics
    /// If `n >= capacity`.
    pub fn state(&self, n: usize) -> NodeState {
        let node = &self.nodes[n];
        match (&node.server, node.paused, node.id.is_some()) {
            (Some(_), false, _) => NodeState::Running,
            (Some(_), true, _) => NodeState::Paused,
            (None, _, true) => NodeState::Dead,
            (None, _, false) => NodeState::Unstarted,
        }
    }

    /// Starts node `n` (one of `nodes..capacity`, never started) and has it
    /// MEET the lowest-numbered running node (node 0 unless it is down). It
    /// gets no slots, so it is no FAIL voter. [`Cluster::poll`] reports who
    /// discovers it, and when.
    ///
    /// # Errors
    /// `n` out of range or already started, the server exits at start (with
    /// its log's last lines), no running node to meet, or a command fails.
    pub fn join(&mut self, n: usize) -> Result<()> {
        if n >= self.nodes.len() || self.state(n) != NodeState::Unstarted {
            bail!(
                "node {n} cannot join: it is not one of the {} nodes never started",
                self.nodes.len()
            );
        }
        let Some(contact) = (0..self.nodes.len()).find(|&m| self.state(m) == NodeState::Running)
        else {
            bail!("node {n} cannot join: no node is running");
        };
        self.spawn(n, true)?;
        self.ready(n, true)?;
        let port = self.nodes[contact].port;
        self.command(
            n,
            redis::cmd("CLUSTER").arg("MEET").arg("127.0.0.1").arg(port),
        )?;
        Ok(())
    }

    /// SIGKILLs node `n` and reaps it; false if it was not running or paused.
    ///
    /// # Panics
    /// If `n >= capacity`.
    pub fn kill(&mut self, n: usize) -> bool {
        // What it listed died with it: the first listing of its next life,
        // read from its nodes.conf, is news again.
        let cap = self.nodes.len();
        self.view[n * cap..(n + 1) * cap].fill(0);
        let node = &mut self.nodes[n];
        node.conn = None;
        node.paused = false;
        match node.server.take() {
            Some(server) => {
                server.kill();
                true
            }
            None => false,
        }
    }

    /// Starts a killed node `n` again on its port and directory: its
    /// nodes.conf gives it back its id, peers and slots.
    ///
    /// # Errors
    /// `n` is not dead, its port is taken, the server exits at start, or it
    /// comes back with another id (its nodes.conf was lost).
    pub fn restart(&mut self, n: usize) -> Result<()> {
        if self.state(n) != NodeState::Dead {
            bail!(
                "node {n} cannot restart: it is {:?}, not dead",
                self.state(n)
            );
        }
        self.bus.forget(n);
        self.spawn(n, false)?;
        self.ready(n, false)?;
        Ok(())
    }

    /// SIGSTOPs node `n`; false if it was not running (unpaused).
    ///
    /// # Panics
    /// If `n >= capacity`.
    pub fn pause(&mut self, n: usize) -> bool {
        let node = &mut self.nodes[n];
        match &node.server {
            Some(s) if !node.paused && s.signal(Signal::SIGSTOP) => {
                node.paused = true;
                true
            }
            _ => false,
        }
    }

    /// SIGCONTs a paused node `n`; false if it was not paused.
    ///
    /// # Panics
    /// If `n >= capacity`.
    pub fn resume(&mut self, n: usize) -> bool {
        let node = &mut self.nodes[n];
        match &node.server {
            Some(s) if node.paused && s.signal(Signal::SIGCONT) => {
                node.paused = false;
                true
            }
            _ => false,
        }
    }

    /// Node `n`'s 40-hex Redis node id, once it has started.
    ///
    /// # Panics
    /// If `n >= capacity`.
    pub fn id(&self, n: usize) -> Option<&str> {
        self.nodes[n].id.as_ref().map(text::id_str)
    }

    /// Every node's id, by index (None: not started yet).
    pub fn ids(&self) -> Vec<Option<&str>> {
        (0..self.nodes.len()).map(|n| self.id(n)).collect()
    }

    /// Node `n`'s client port (its bus port is 10,000 above).
    ///
    /// # Panics
    /// If `n >= capacity`.
    pub fn port(&self, n: usize) -> u16 {
        self.nodes[n].port
    }

    /// Node `n`'s process id while it runs or is paused.
    ///
    /// # Panics
    /// If `n >= capacity`.
    pub fn pid(&self, n: usize) -> Option<u32> {
        self.nodes[n].server.as_ref().map(Server::pid)
    }

    /// Node `n`'s directory (redis.conf, nodes.conf, redis.log).
    ///
    /// # Panics
    /// If `n >= capacity`.
    pub fn dir(&self, n: usize) -> &Path {
        &self.nodes[n].dir
    }

    /// "redis 7.0.15", "valkey 8.0.2": what the binary says it is.
    pub fn version(&self) -> String {
        self.version.clone()
    }

    /// `cluster-node-timeout` in force.
    pub fn node_timeout(&self) -> Duration {
        Duration::from_millis(self.node_timeout_ms)
    }

    /// One round: CLUSTER NODES from every running, unpaused server, all
    /// requests sent before any reply is read (the servers work in
    /// parallel), each reply awaited at most until the round's deadline
    /// (200 ms). Returns what each node lists differently from the last
    /// round. A server that does not answer in time is skipped this round.
    ///
    /// # Errors
    /// A server we did not kill has exited (with its log's last lines).
    pub fn poll(&mut self) -> Result<Vec<Change>> {
        let at = self.now();
        let cmd = redis::cmd("CLUSTER").arg("NODES").get_packed_command();
        let replies = self.ask_all(&cmd, |_| true)?;
        let mut changes = Vec::new();
        for (n, reply) in replies {
            if let Some(reply) = text::reply_text(&reply) {
                self.observe(n, at, reply, &mut changes);
            }
        }
        Ok(changes)
    }

    /// Node `n`'s counters, or None if it is not running (or paused, or did
    /// not answer in time).
    ///
    /// # Errors
    /// As [`Cluster::counters_all`].
    pub fn counters(&mut self, n: usize) -> Result<Option<Counters>> {
        Ok(self.counters_of(|m| m == n)?.swap_remove(n))
    }

    /// Every node's counters (None for a node not running, paused or slow
    /// to answer): CLUSTER INFO from each, pipelined like [`Cluster::poll`],
    /// and one read of the kernel's socket table for the bus bytes.
    ///
    /// # Errors
    /// A server we did not kill has exited.
    pub fn counters_all(&mut self) -> Result<Vec<Option<Counters>>> {
        self.counters_of(|_| true)
    }

    /// Why bus bytes are unavailable (no sock_diag netlink, a kernel before
    /// 4.19), if they are.
    pub fn bus_error(&self) -> Option<&str> {
        self.bus.error()
    }

    /// Kills every server, by its pid, and reaps it.
    ///
    /// # Errors
    /// None today: killing our own unreaped child cannot fail. The Result
    /// leaves room for a graceful variant.
    pub fn shutdown(mut self) -> Result<()> {
        self.kill_everything();
        Ok(())
    }

    fn kill_everything(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
    }

    fn counters_of(&mut self, which: impl Fn(usize) -> bool) -> Result<Vec<Option<Counters>>> {
        let at = self.now();
        let cmd = redis::cmd("CLUSTER").arg("INFO").get_packed_command();
        let replies = self.ask_all(&cmd, &which)?;
        let bus_ports: Vec<u16> = self
            .nodes
            .iter()
            .map(|n| n.port + BUS_PORT_OFFSET)
            .collect();
        let pids: Vec<Option<u32>> = (0..self.nodes.len()).map(|n| self.pid(n)).collect();
        let bus = self.bus.read(&bus_ports, &pids);
        let mut out = vec![None; self.nodes.len()];
        for (n, reply) in replies {
            if let Some(info) = text::reply_text(&reply) {
                let (sent, received) = text::messages(info);
                out[n] = Some(Counters {
                    at,
                    life: self.nodes[n].starts.saturating_sub(1),
                    sent,
                    received,
                    bus: bus.as_ref().map(|b| b[n]),
                });
            }
        }
        Ok(out)
    }

    /// Sends the packed `cmd` to every running, unpaused node `which`
    /// accepts, then reads the replies until the round's deadline. A node
    /// whose connection fails or is late loses its connection (its stream
    /// state is unknown) and is left out.
    fn ask_all(
        &mut self,
        cmd: &[u8],
        which: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, Value)>> {
        let deadline = Instant::now() + ROUND_TIMEOUT;
        let mut asked = Vec::with_capacity(self.nodes.len());
        for n in 0..self.nodes.len() {
            if self.state(n) != NodeState::Running || !which(n) {
                continue;
            }
            let Some(conn) = self.conn(n) else {
                self.check_alive(n)?;
                continue;
            };
            if conn.send_packed_command(cmd).is_ok() {
                asked.push(n);
            } else {
                self.nodes[n].conn = None;
                self.check_alive(n)?;
            }
        }
        let mut replies = Vec::with_capacity(asked.len());
        for n in asked {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let node = &mut self.nodes[n];
            let Some(conn) = node.conn.as_mut() else {
                continue;
            };
            match conn
                .set_read_timeout(Some(left))
                .and_then(|()| conn.recv_response())
            {
                Ok(v) => replies.push((n, v)),
                Err(_) => {
                    node.conn = None;
                    self.check_alive(n)?;
                }
            }
        }
        Ok(replies)
    }

    /// An error if node `n`'s server, which we did not kill, has exited.
    fn check_alive(&mut self, n: usize) -> Result<()> {
        let node = &mut self.nodes[n];
        if let Some(status) = node.server.as_mut().and_then(Server::exited) {
            node.server = None;
            bail!(
                "redis node {n} (port {}) exited by itself ({status}): {}",
                node.port,
                process::log_tail(&node.dir)
            );
        }
        Ok(())
    }

    /// Node `n`'s kept connection, dialled if needed.
    fn conn(&mut self, n: usize) -> Option<&mut Connection> {
        let node = &mut self.nodes[n];
        if node.conn.is_none() {
            node.conn = connect(node.port, CONNECT_TIMEOUT).ok();
        }
        node.conn.as_mut()
    }

    /// Runs one command on node `n` and returns its reply.
    fn command(&mut self, n: usize, cmd: &redis::Cmd) -> Result<Value> {
        let port = self.nodes[n].port;
        let Some(conn) = self.conn(n) else {
            bail!("cannot connect to redis node {n} (port {port})");
        };
        let reply = conn
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .and_then(|()| cmd.query::<Value>(conn));
        reply.map_err(|e| {
            self.nodes[n].conn = None;
            anyhow::anyhow!("redis node {n} (port {port}): {e}")
        })
    }

    /// Diffs node `n`'s CLUSTER NODES listing against the last one.
    fn observe(&mut self, n: usize, at: Duration, listing: &str, changes: &mut Vec<Change>) {
        let cap = self.nodes.len();
        let row = &mut self.view[n * cap..(n + 1) * cap];
        text::diff(row, &self.index, n, listing, |about, what| {
            changes.push(Change {
                at,
                node: n,
                about,
                what,
            })
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_everything();
    }
}

/// A connection to 127.0.0.1:`port` with `timeout` on connect, reads and
/// writes; it sends nothing on connecting (no CLIENT SETINFO, which Redis
/// 7.0 does not know).
fn connect(port: u16, timeout: Duration) -> redis::RedisResult<Connection> {
    let info = ConnectionAddr::Tcp("127.0.0.1".into(), port)
        .into_connection_info()?
        .set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name())
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    let conn = redis::Client::open(info)?.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}
