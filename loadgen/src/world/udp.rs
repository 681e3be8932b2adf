//! The udp world: real UDP nodes on loopback, `gossip-node`'s [`Runtime`]
//! in this process (its datapath and I/O threads), in wall-clock time,
//! observed through its observation channel.
//!
//! What it does honestly and what it refuses:
//! - joins (a node bound at the start, started at its time), crashes (socket
//!   closed, state forgotten), restarts (same id and address, next
//!   incarnation), pauses (no ticks; input discarded, as by a full receive
//!   buffer) and resumes; published updates through [`Runtime::publish`];
//! - loss, latency, partitions and the `[network]` section need a network to
//!   shape, and loopback is not one: a scenario asking for any of them is
//!   refused before anything starts ([`WorldKind::check`](crate::scenario::WorldKind::check)).
//!
//! Upkeep comes from each node's counters as its I/O thread last published
//! them (with the time of publishing); what the nodes saw from their events;
//! copies from the nodes' own counts of the items they track
//! ([`Runtime::track`], read synchronously with [`Runtime::copies`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use gossip_core::{Instant, ItemId, NodeId};
use gossip_node::datapath::{self, DatapathChoice};
use gossip_node::metrics::{MetricsSource, Snapshot};
use gossip_node::runtime::{NodeError, Runtime, RuntimeConfig};

use super::keys::ClusterKeys;
use super::sim::UPKEEP_TYPES;
use super::{Extras, ItemKey, Published, Seen, Upkeep, World};
use crate::observe::Resources;
use crate::scenario::{ActionKind, Scenario};

/// Events each I/O thread's observation queue holds: a join storm of a few
/// hundred nodes produces tens of thousands within a second; the pump drains
/// every [`PUMP_EVERY`].
const EVENT_QUEUE: usize = 1 << 17;
/// How often the trial loop drains events and checks the stop flag.
const PUMP_EVERY: Duration = Duration::from_millis(20);

/// The UDP nodes could not start (no loopback, a bind refused, a datapath
/// refused): the demo falls back to the sim world on this error only.
#[derive(Debug)]
pub struct CannotStart(pub String);

impl std::fmt::Display for CannotStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UDP nodes cannot start: {}", self.0)
    }
}

impl From<NodeError> for CannotStart {
    fn from(e: NodeError) -> Self {
        CannotStart(e.to_string())
    }
}

impl std::error::Error for CannotStart {}

/// Checks that real nodes can start here: binds a UDP socket on loopback
/// and sends it a datagram, through the same bind as the runtime's.
///
/// # Errors
/// What the kernel refused (no loopback, no sockets, no permission).
pub fn can_start() -> Result<()> {
    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    let socket = gossip_node::runtime::bind(any, 64 * 1024)?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let me = socket.local_addr()?;
    socket
        .send_to(b"probe", me)
        .map_err(|e| anyhow!("a datagram to {me} was refused: {e}"))?;
    let mut buf = [0u8; 8];
    let (len, _) = socket
        .recv_from(&mut buf)
        .map_err(|e| anyhow!("no datagram came back on {me}: {e}"))?;
    if &buf[..len] != b"probe" {
        bail!("loopback returned a different datagram");
    }
    Ok(())
}

/// One trial's real nodes: a [`Runtime`] in this process.
#[derive(Debug)]
pub struct UdpWorld {
    rt: Runtime,
    /// Node index by id, for the events.
    index: HashMap<NodeId, usize>,
    partial: bool,
    /// Resource counters when the window started.
    resources_before: Option<(Snapshot, Option<u64>)>,
    /// Items whose copies are not counted: every node's tracked set was full.
    uncounted: Vec<ItemKey>,
    /// The cluster keys (`auth.key`), as the rotation steps leave them.
    keys: Option<ClusterKeys>,
}

impl UdpWorld {
    /// Binds every node's socket (joiners' too, held until they join) and
    /// starts `cluster.nodes` nodes, each but node 0 meeting node 0.
    ///
    /// # Errors
    /// [`CannotStart`] when the nodes cannot start.
    pub fn start(s: &Scenario, seed: u64) -> Result<Self> {
        let config = s.profile.config()?;
        let partial = config.partial_view();
        let choice: DatapathChoice = s
            .cluster
            .datapath
            .parse()
            .map_err(|e| anyhow!("cluster.datapath: {e}"))?;
        let total = s.cluster.nodes + s.joins();
        let keys = match s.auth.key {
            true => Some(ClusterKeys::new(s.auth.sealed)?),
            false => None,
        };
        let keyring = keys.as_ref().map(ClusterKeys::keyring).transpose()?;
        // Shared sockets come whole: the slots past `total` are held and never
        // started.
        let slots = s.cluster.slots.max(1);
        let sockets = total.div_ceil(slots);
        let rt = Runtime::start_with_probe(
            RuntimeConfig {
                datapath: choice,
                threads: s.cluster.threads,
                node: config,
                // Port 0: the kernel picks free ports, so runs never collide.
                binds: RuntimeConfig::consecutive(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, sockets),
                slots,
                offload: s.cluster.offload,
                rng_seed: seed,
                held: s.joins() + sockets * slots - total,
                event_queue: EVENT_QUEUE,
                timer_slack: Duration::from_secs_f64(s.cluster.timer_slack_ms / 1_000.0),
                ramp: Duration::from_secs_f64(s.cluster.ramp_s),
                keyring: keyring.map(std::sync::Arc::new),
                join_cookies: s.auth.join_cookies,
                ..RuntimeConfig::default()
            },
            datapath::probe_uring,
        )
        .map_err(|e| anyhow::Error::new(CannotStart::from(e)))?;
        Ok(UdpWorld {
            index: rt
                .ids()
                .iter()
                .enumerate()
                .map(|(n, &id)| (id, n))
                .collect(),
            partial,
            rt,
            resources_before: None,
            uncounted: Vec::new(),
            keys,
        })
    }

    fn item_id(&self, item: ItemKey) -> ItemId {
        let id = |n: usize| self.rt.ids()[n];
        match item {
            ItemKey::Join(n) => ItemId::Join(id(n)),
            ItemKey::Fail(n) => ItemId::Fail(id(n)),
            ItemKey::Update {
                origin,
                key,
                version,
            } => ItemId::Update {
                origin: id(origin),
                key,
                version,
            },
        }
    }
}

impl World for UdpWorld {
    fn now(&self) -> Instant {
        self.rt.clock().now()
    }

    fn step(&self) -> Duration {
        PUMP_EVERY
    }

    fn advance(&mut self, until: Instant) -> Result<()> {
        super::sleep_until(self.now(), until);
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Seen>) -> Result<()> {
        let mut taken = Vec::new();
        self.rt.drain_events(usize::MAX, |e| taken.push(e));
        let index = |id| self.index.get(&id).copied();
        out.extend(
            taken
                .iter()
                .filter_map(|e| Seen::of_event(e.node, e.at, &e.event, index)),
        );
        Ok(())
    }

    fn start(&mut self, n: usize, meet: usize) -> Result<()> {
        let seed = [self.rt.endpoints()[meet]];
        Ok(self.rt.start_node(n, &seed)?)
    }

    fn crash(&mut self, n: usize) -> Result<()> {
        self.rt.kill(n);
        Ok(())
    }

    fn crash_all(&mut self, ns: &[usize]) -> Result<()> {
        self.rt.kill_all(ns);
        Ok(())
    }

    fn restart(&mut self, n: usize, meet: usize) -> Result<()> {
        let seed = [self.rt.endpoints()[meet]];
        Ok(self.rt.restart(n, &seed)?)
    }

    fn pause(&mut self, n: usize) -> Result<()> {
        self.rt.pause(n);
        Ok(())
    }

    fn resume(&mut self, n: usize) -> Result<()> {
        self.rt.resume(n);
        Ok(())
    }

    fn rekey(&mut self, step: ActionKind) -> Result<String> {
        let Some(keys) = self.keys.as_mut() else {
            bail!("{}: the nodes run without a key (auth.key)", step.name());
        };
        let said = keys.step(step)?;
        let switched = self.rt.set_keyring(std::sync::Arc::new(keys.keyring()?));
        Ok(format!("{said} ({switched} running)"))
    }

    fn publish(&mut self, n: usize, key: &[u8], value: &[u8]) -> Result<Published> {
        // Before the call: a peer may have it before the call returns.
        let at = self.now();
        Ok(Published::of_core(
            n,
            key,
            at,
            self.rt.publish(n, key, value),
        ))
    }

    fn holders(&mut self, n: usize) -> Option<Vec<usize>> {
        let id = self.rt.ids()[n];
        self.partial.then(|| self.rt.holders(id))
    }

    fn track(&mut self, item: ItemKey) {
        // A node tracks at most MAX_TRACKED items; past that an item's copies
        // are not counted (and say so by their absence), never guessed.
        if !self.rt.track(self.item_id(item)) {
            self.rt.untrack(self.item_id(item));
            self.uncounted.push(item);
        }
    }

    fn track_all(&mut self, items: &[ItemKey]) {
        let ids: Vec<_> = items.iter().map(|&i| self.item_id(i)).collect();
        let tracked = self.rt.track_all(&ids);
        for (&item, ok) in items.iter().zip(tracked) {
            if !ok {
                self.uncounted.push(item);
            }
        }
    }

    fn untrack(&mut self, item: ItemKey) {
        self.rt.untrack(self.item_id(item));
    }

    fn copies(&mut self, item: ItemKey) -> Option<Vec<u32>> {
        if self.uncounted.contains(&item) {
            return None;
        }
        Some(
            self.rt
                .copies(self.item_id(item))
                .into_iter()
                .map(|c| c.unwrap_or(0))
                .collect(),
        )
    }

    fn upkeep(&mut self, nodes: usize) -> Result<Vec<Option<Upkeep>>> {
        Ok((0..nodes)
            .map(|n| {
                let c = self.rt.node_counters(n).filter(|c| c.running)?;
                let traffic = UPKEEP_TYPES.map(|k| c.sent(k));
                Some(Upkeep::of_udp(
                    c.at,
                    c.incarnation,
                    traffic.map(|t| t.datagrams),
                    traffic.map(|t| t.bytes),
                ))
            })
            .collect())
    }

    fn window_starts(&mut self) {
        self.resources_before = Some((
            self.rt.metrics().total(),
            datapath::sys::udp_rcvbuf_errors(),
        ));
    }

    fn finish(self: Box<Self>, node_s: f64) -> Result<Extras> {
        let metrics = self.rt.metrics();
        let datapath = self.rt.datapath().name().to_string();
        // Threads publish their last counters as they stop.
        self.rt
            .shutdown()
            .map_err(|e| anyhow!("udp world: an I/O thread failed: {e}"))?;
        let before = self
            .resources_before
            .unwrap_or_else(|| (metrics.total(), datapath::sys::udp_rcvbuf_errors()));
        Ok(Extras {
            datapath: Some(datapath),
            resources: Some(resources(&metrics, &before, node_s)),
            ..Extras::default()
        })
    }
}

fn resources(metrics: &MetricsSource, before: &(Snapshot, Option<u64>), node_s: f64) -> Resources {
    let (b, rcv_before) = before;
    let a = metrics.total();
    let dp = |s: &Snapshot| {
        let c = &s.datapath;
        c.send_drops() + c.truncated + c.recv_errors + s.stats.drops.transmit_queue_full
    };
    let cpu_s = a.cpu_us.saturating_sub(b.cpu_us) as f64 / 1e6;
    Resources {
        cpu_s_per_node_s: if node_s > 0.0 { cpu_s / node_s } else { 0.0 },
        rss_bytes: datapath::sys::max_rss_bytes(),
        drops: dp(&a).saturating_sub(dp(b)),
        udp_rcvbuf_errors: match (rcv_before, datapath::sys::udp_rcvbuf_errors()) {
            (Some(x), Some(y)) => Some(y.saturating_sub(*x)),
            _ => None,
        },
        events_dropped: a.events_dropped.saturating_sub(b.events_dropped),
        ticks: a.stats.ticks.saturating_sub(b.stats.ticks),
        late_ticks: a.stats.late_ticks.saturating_sub(b.stats.late_ticks),
    }
}
