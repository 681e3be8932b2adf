//! The hosts world: real UDP nodes run by agents (`gossip-node agent`) on
//! many Linux hosts, or on the hosts of the network-namespace lab
//! ([`crate::lab`]), driven over each agent's control channel.
//!
//! The scenario's nodes are spread over the agents (`placement.rs`); each
//! agent runs its share in one runtime, bound on its host's address, and
//! streams its nodes' events with its own timestamps. The loadgen estimates
//! each agent's clock offset (round trips, the fastest kept) and puts every
//! event on its own clock; the uncertainty of that offset goes into the
//! report beside the latency figures it bounds.
//!
//! The network between hosts is real, and so are its faults: loss,
//! partitions (whole hosts: a host's nodes stay together) and latency are
//! applied by each agent to real packets on arrival (nftables; latency with
//! tc netem where the kernel has it, refused with the reason otherwise).
//! Traffic between two nodes of one host never leaves it and is never
//! shaped.

mod agents;
mod placement;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use gossip_core::wire::key_id;
use gossip_core::{Instant, ItemId, NodeId};
use gossip_node::agent::api::{
    ClusterSpec, Counters, Item, KeyFile, Peer, PublishReply, Resources as AgentResources, Support,
};
use gossip_node::datapath::sys::monotonic_us;
use serde::{Deserialize, Serialize};

pub use agents::Targets;
use agents::{Agent, Agents};
pub use placement::Placement;
use placement::{ranges, Net};

use super::keys::ClusterKeys;
use super::sim::UPKEEP_TYPES;
use super::{Extras, ItemKey, Published, Seen, Shape, Upkeep, World};
use crate::observe::Resources;
use crate::scenario::{ActionKind, Scenario};

/// How often the trial loop reads the event streams.
const PUMP_EVERY: Duration = Duration::from_millis(20);
/// Events each I/O thread's observation queue holds on an agent.
const EVENT_QUEUE: usize = 1 << 17;

/// What the report says of the hosts a trial ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostsInfo {
    /// One per agent, in host order.
    pub agents: Vec<AgentInfo>,
    /// The largest clock uncertainty of any agent, ms: cross-host latencies
    /// smaller than this are not resolved.
    pub clock_uncertainty_ms: f64,
    /// The faults applied and by what, in words.
    pub faults: Vec<String>,
}

/// One agent of a trial.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its control address.
    pub addr: String,
    /// Its host name.
    pub host: String,
    /// The address its nodes bound.
    pub bind_ip: String,
    /// The trial nodes it ran (`0-249,1000`).
    pub nodes: String,
    /// Its clock minus ours at the start, ms.
    pub offset_ms: f64,
    /// The offset's uncertainty (half the fastest round trip, plus the
    /// drift seen over the trial), ms.
    pub uncertainty_ms: f64,
    /// The fastest control round trip, ms.
    pub rtt_ms: f64,
    /// The datapath its nodes ran on.
    pub datapath: String,
}

/// One trial's nodes on the agents.
#[derive(Debug)]
pub struct HostsWorld {
    agents: Agents,
    place: Placement,
    /// Every node as others reach it, by trial index.
    peers: Vec<Peer>,
    /// Trial index by node id.
    index: HashMap<u64, usize>,
    /// Each host's address.
    addrs: Vec<IpAddr>,
    partial: bool,
    net: Net,
    /// Our clock at the trial's start, µs (CLOCK_MONOTONIC).
    origin_us: u64,
    datapaths: Vec<String>,
    resources_before: Option<Vec<Option<AgentResources>>>,
    uncounted: Vec<ItemKey>,
    faults: Vec<String>,
    /// The cluster keys (`auth.key`), as the rotation steps leave them.
    keys: Option<ClusterKeys>,
}

impl HostsWorld {
    /// Holds the agents, starts each one's share of the nodes (node 0
    /// first; every other node meets node 0), applies the scenario's network
    /// and starts reading the events.
    ///
    /// # Errors
    /// An agent unreachable, held, or refusing the nodes or a fault.
    pub fn start(s: &Scenario, seed: u64) -> Result<Self> {
        let config = s.profile.config()?;
        let targets = Targets::resolve(&s.hosts)?;
        let mut agents = Agents::hold(&targets, Duration::from_millis(s.hosts.lease_ms))?;
        let net = Net {
            loss: s.network.loss,
            partition: None,
            latency_ms: added(s.network.latency_ms, s.network.jitter_ms).0,
            jitter_ms: added(s.network.latency_ms, s.network.jitter_ms).1,
        };
        refuse_unsupported(&agents.list, &net, s)?;
        if s.cluster.nodes < agents.list.len() {
            bail!(
                "cluster.nodes: {} nodes over {} hosts would leave a host without any",
                s.cluster.nodes,
                agents.list.len()
            );
        }
        let keys = match s.auth.key {
            true => Some(ClusterKeys::new(s.auth.sealed)?),
            false => None,
        };
        let place = Placement::new(s.cluster.nodes, s.joins(), agents.list.len());
        let total = s.cluster.nodes + s.joins();
        let mut peers: Vec<Option<Peer>> = vec![None; total];
        let mut datapaths = Vec::new();
        for (h, a) in agents.list.iter_mut().enumerate() {
            let mine = place.nodes(h);
            let spec = ClusterSpec {
                profile: s.profile.clone(),
                nodes: mine.len(),
                held: mine.len() - place.starting(h),
                // Node 0 is host 0's first: its nodes meet it by default.
                join: if h == 0 {
                    Vec::new()
                } else {
                    peers[0].into_iter().collect()
                },
                datapath: s.cluster.datapath.clone(),
                threads: s.cluster.threads,
                slots: s.cluster.slots.max(1),
                offload: s.cluster.offload,
                rng_seed: seed ^ (h as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                timer_slack_us: (s.cluster.timer_slack_ms * 1_000.0) as u64,
                event_queue: EVENT_QUEUE,
                ramp_ms: (s.cluster.ramp_s * 1_000.0) as u64,
                keyring: keys.as_ref().map(|k| KeyFile(k.file())),
                join_cookies: s.auth.join_cookies,
            };
            let started = a
                .client
                .start_cluster(&spec)
                .map_err(|e| anyhow!("agent {}: start {} nodes: {e:#}", a.addr, mine.len()))?;
            if started.nodes.len() != mine.len() {
                bail!(
                    "agent {}: started {} nodes, asked {}",
                    a.addr,
                    started.nodes.len(),
                    mine.len()
                );
            }
            for (l, p) in started.nodes.into_iter().enumerate() {
                peers[mine[l]] = Some(p);
            }
            datapaths.push(started.datapath);
        }
        let peers: Vec<Peer> = peers
            .into_iter()
            .enumerate()
            .map(|(n, p)| p.ok_or_else(|| anyhow!("node {n} was placed on no agent")))
            .collect::<Result<_>>()?;
        let index = peers.iter().enumerate().map(|(n, p)| (p.id, n)).collect();
        agents.stream_events()?;
        let addrs = agents.list.iter().map(Agent::ip).collect();
        let mut world = HostsWorld {
            agents,
            place,
            peers,
            index,
            addrs,
            partial: config.partial_view(),
            net,
            origin_us: monotonic_us(),
            datapaths,
            resources_before: None,
            uncounted: Vec::new(),
            faults: Vec::new(),
            keys,
        };
        if world.net.any() {
            world.apply_net()?;
        }
        Ok(world)
    }

    /// An agent's time on our clock.
    fn at(&self, host: usize, agent_us: u64) -> Instant {
        let ours = agent_us as i64 - self.agents.list[host].offset.offset_us;
        Instant::from_micros(ours.saturating_sub(self.origin_us as i64).max(0) as u64)
    }

    fn agent(&mut self, n: usize) -> (&mut Agent, usize) {
        let (h, l) = self.place.of(n);
        (&mut self.agents.list[h], l)
    }

    fn item(&self, item: ItemKey) -> Item {
        let id = |n: usize| NodeId(self.peers[n].id);
        let core = match item {
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
        };
        Item::of(core).expect("the API carries every item kind the timeline tracks")
        // invariant: same three kinds
    }

    /// Tells every agent the faults its host applies now.
    fn apply_net(&mut self) -> Result<()> {
        let mut said = Vec::new();
        for (h, a) in self.agents.list.iter_mut().enumerate() {
            let faults = self.net.faults(h, &self.addrs);
            let applied = if faults.loss.is_empty() && faults.latency_ms == 0.0 {
                a.client.clear_faults().map(|()| Vec::new())
            } else {
                a.client.set_faults(&faults).map(|f| f.mechanisms)
            }
            .map_err(|e| anyhow!("agent {}: faults: {e:#}", a.addr))?;
            said.extend(applied.into_iter().map(|m| format!("host {h}: {m}")));
        }
        for m in said {
            if !self.faults.contains(&m) {
                self.faults.push(m);
            }
        }
        Ok(())
    }

    fn info(&self, drift: &[Option<f64>]) -> HostsInfo {
        let agents: Vec<AgentInfo> = self
            .agents
            .list
            .iter()
            .enumerate()
            .map(|(h, a)| AgentInfo {
                addr: a.addr.to_string(),
                host: a.hello.host.clone(),
                bind_ip: a.hello.bind_ip.to_string(),
                nodes: ranges(self.place.nodes(h)),
                offset_ms: a.offset.offset_us as f64 / 1e3,
                uncertainty_ms: (a.offset.uncertainty_us as f64
                    + drift.get(h).copied().flatten().unwrap_or(0.0))
                    / 1e3,
                rtt_ms: a.offset.rtt_us as f64 / 1e3,
                datapath: self.datapaths[h].clone(),
            })
            .collect();
        HostsInfo {
            clock_uncertainty_ms: agents.iter().map(|a| a.uncertainty_ms).fold(0.0, f64::max),
            agents,
            faults: self.faults.clone(),
        }
    }
}

/// Latency and jitter the scenario adds beyond the network's own: the
/// `[network]` defaults describe the simulator's wire, not an addition.
fn added(latency_ms: f64, jitter_ms: f64) -> (f64, f64) {
    let ideal = crate::scenario::Network::default();
    if latency_ms == ideal.latency_ms && jitter_ms == ideal.jitter_ms {
        (0.0, 0.0)
    } else {
        (latency_ms, jitter_ms)
    }
}

/// Refuses, before any node starts, a fault some agent cannot apply.
fn refuse_unsupported(agents: &[Agent], net: &Net, s: &Scenario) -> Result<()> {
    let wants = |k: ActionKind| s.timeline.iter().any(|a| a.action == k);
    for a in agents {
        let f = &a.hello.faults;
        let needs = [
            ("loss", net.loss > 0.0 || wants(ActionKind::Loss), &f.loss),
            ("partition", wants(ActionKind::Partition), &f.partition),
            (
                "latency",
                net.latency_ms > 0.0 || wants(ActionKind::Latency),
                &f.latency,
            ),
        ];
        for (what, needed, support) in needs {
            if let (true, Support::No(why)) = (needed, support) {
                bail!("{what}: agent {} cannot apply it: {why}", a.addr);
            }
        }
    }
    Ok(())
}

impl World for HostsWorld {
    fn now(&self) -> Instant {
        Instant::from_micros(monotonic_us().saturating_sub(self.origin_us))
    }

    fn step(&self) -> Duration {
        PUMP_EVERY
    }

    fn advance(&mut self, until: Instant) -> Result<()> {
        super::sleep_until(self.now(), until);
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Seen>) -> Result<()> {
        let mut records = Vec::new();
        self.agents.drain(|h, r| records.push((h, r)))?;
        for (h, r) in records {
            let Some(node) = self.place.node(h, r.node) else {
                continue;
            };
            let at = self.at(h, r.at_us);
            let index = |id: NodeId| self.index.get(&id.0).copied();
            out.extend(Seen::of_event(node, at, &r.event.event(), index));
        }
        Ok(())
    }

    fn start(&mut self, n: usize, meet: usize) -> Result<()> {
        let meet = self.peers[meet];
        let (a, l) = self.agent(n);
        a.client.start_node(l, meet)
    }

    fn crash(&mut self, n: usize) -> Result<()> {
        let (a, l) = self.agent(n);
        a.client.kill(l)
    }

    fn restart(&mut self, n: usize, meet: usize) -> Result<()> {
        let meet = self.peers[meet];
        let (a, l) = self.agent(n);
        a.client.restart_node(l, meet)
    }

    fn pause(&mut self, n: usize) -> Result<()> {
        let (a, l) = self.agent(n);
        a.client.pause(l)
    }

    fn resume(&mut self, n: usize) -> Result<()> {
        let (a, l) = self.agent(n);
        a.client.resume(l)
    }

    fn shape(&mut self, change: &Shape) -> Result<()> {
        match change {
            Shape::Partition(side) => {
                let hosts = self.place.hosts_of(side).map_err(|h| {
                    anyhow!("partition: host {h} has nodes on both sides; the hosts world partitions whole hosts")
                })?;
                self.net.partition = Some(hosts);
            }
            Shape::Heal => self.net.partition = None,
            Shape::Loss(p) => self.net.loss = *p,
            Shape::Latency(ms) => self.net.latency_ms = *ms,
        }
        self.apply_net()
    }

    fn partition_side(&self, fraction: f64, _initial: usize, _total: usize) -> Vec<usize> {
        self.place.side(fraction).1
    }

    fn rekey(&mut self, step: ActionKind) -> Result<String> {
        let Some(keys) = self.keys.as_mut() else {
            bail!("{}: the nodes run without a key (auth.key)", step.name());
        };
        let said = keys.step(step)?;
        // Each agent has switched its nodes when its call returns; the
        // scenario spaces the steps so that one reaches every node first.
        let file = KeyFile(keys.file());
        let mut switched = 0;
        for a in &mut self.agents.list {
            let set = a
                .client
                .set_keyring(&file)
                .map_err(|e| anyhow!("agent {}: {}: {e:#}", a.addr, step.name()))?;
            switched += set.switched;
        }
        Ok(format!("{said} ({switched} running)"))
    }

    fn publish(&mut self, n: usize, key: &[u8], value: &[u8]) -> Result<Published> {
        let (h, _) = self.place.of(n);
        let (a, l) = self.agent(n);
        let reply = a.client.publish(l, key, value)?;
        Ok(match reply {
            PublishReply::Item { version, at_us } => Published::Item {
                key: ItemKey::Update {
                    origin: n,
                    key: key_id(key),
                    version,
                },
                at: self.at(h, at_us),
            },
            PublishReply::Refused(why) => Published::Refused(why),
            PublishReply::NotRunning => Published::NotRunning,
        })
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.net.connected(self.place.of(a).0, self.place.of(b).0)
    }

    fn holders(&mut self, n: usize) -> Option<Vec<usize>> {
        if !self.partial {
            return None;
        }
        let id = self.peers[n].id;
        let mut out = Vec::new();
        for (h, a) in self.agents.list.iter_mut().enumerate() {
            // A holder an agent cannot name is not counted as one; the
            // agent's failure shows in the trial's next request.
            if let Ok(locals) = a.client.holders(id) {
                out.extend(locals.into_iter().filter_map(|l| self.place.node(h, l)));
            }
        }
        out.sort_unstable();
        Some(out)
    }

    fn track(&mut self, item: ItemKey) {
        let it = self.item(item);
        let tracked: Vec<bool> = self
            .agents
            .list
            .iter_mut()
            .map(|a| a.client.track(it).unwrap_or(false))
            .collect();
        // Counted everywhere or nowhere: a partial count would be a guess.
        if tracked.contains(&false) {
            for a in &mut self.agents.list {
                let _ = a.client.untrack(it);
            }
            self.uncounted.push(item);
        }
    }

    fn untrack(&mut self, item: ItemKey) {
        let it = self.item(item);
        for a in &mut self.agents.list {
            let _ = a.client.untrack(it);
        }
    }

    fn copies(&mut self, item: ItemKey) -> Option<Vec<u32>> {
        if self.uncounted.contains(&item) {
            return None;
        }
        let it = self.item(item);
        let mut out = vec![0u32; self.peers.len()];
        for (h, a) in self.agents.list.iter_mut().enumerate() {
            let counts = a.client.copies(it).ok()?;
            for (l, c) in counts.into_iter().enumerate() {
                if let Some(n) = self.place.node(h, l) {
                    out[n] = c.unwrap_or(0);
                }
            }
        }
        Some(out)
    }

    fn upkeep(&mut self, nodes: usize) -> Result<Vec<Option<Upkeep>>> {
        let mut out: Vec<Option<Upkeep>> = vec![None; nodes];
        let mut all = Vec::with_capacity(self.agents.list.len());
        for a in &mut self.agents.list {
            all.push(
                a.client
                    .counters()
                    .map_err(|e| anyhow!("agent {}: counters: {e:#}", a.addr))?,
            );
        }
        for (h, counters) in all.into_iter().enumerate() {
            for (l, c) in counters.into_iter().enumerate() {
                let (Some(n), Some(c)) = (self.place.node(h, l), c) else {
                    continue;
                };
                if n < nodes && c.running {
                    out[n] = Some(self.upkeep_of(h, &c));
                }
            }
        }
        Ok(out)
    }

    fn window_starts(&mut self) {
        self.resources_before = Some(
            self.agents
                .list
                .iter_mut()
                .map(|a| a.client.resources().ok())
                .collect(),
        );
    }

    fn finish(mut self: Box<Self>, node_s: f64) -> Result<Extras> {
        let end = self.agents.offsets_now();
        let drift: Vec<Option<f64>> = self
            .agents
            .list
            .iter()
            .zip(&end)
            .map(|(a, e)| e.map(|e| (e.offset_us - a.offset.offset_us).unsigned_abs() as f64))
            .collect();
        let info = self.info(&drift);
        let mut after = Vec::new();
        let mut first: Option<anyhow::Error> = None;
        for a in &mut self.agents.list {
            match a.client.stop_cluster() {
                Ok(r) => after.push(r),
                Err(e) => {
                    first.get_or_insert(anyhow!("agent {}: stop: {e:#}", a.addr));
                    after.push(AgentResources::default());
                }
            }
        }
        let before = self.resources_before.take();
        let datapath = self.datapaths.iter().find(|d| !d.is_empty()).cloned();
        let released = self.agents.release();
        if let Some(e) = first {
            return Err(e);
        }
        released?;
        Ok(Extras {
            datapath,
            resources: Some(resources(before.as_deref(), &after, node_s)),
            hosts: Some(info),
            ..Extras::default()
        })
    }
}

impl HostsWorld {
    fn upkeep_of(&self, h: usize, c: &Counters) -> Upkeep {
        let sent = |k: gossip_core::wire::MessageType| {
            c.sent.get(usize::from(k.code())).copied().unwrap_or([0, 0])
        };
        let traffic = UPKEEP_TYPES.map(sent);
        Upkeep::of_udp(
            self.at(h, c.at_us),
            c.incarnation,
            traffic.map(|t| t[0]),
            traffic.map(|t| t[1]),
        )
    }
}

/// What the agents' nodes cost over the window, summed over the agents.
fn resources(
    before: Option<&[Option<AgentResources>]>,
    after: &[AgentResources],
    node_s: f64,
) -> Resources {
    let zero = AgentResources::default();
    let mut r = Resources::default();
    let mut cpu_us = 0u64;
    let mut rcvbuf = Some(0u64);
    for (h, a) in after.iter().enumerate() {
        let b = before
            .and_then(|b| b.get(h).cloned().flatten())
            .unwrap_or_else(|| zero.clone());
        cpu_us += a.cpu_us.saturating_sub(b.cpu_us);
        r.rss_bytes = r.rss_bytes.max(a.max_rss_bytes.unwrap_or(0));
        r.drops += a.drops.saturating_sub(b.drops);
        rcvbuf = match (rcvbuf, a.udp_rcvbuf_errors, b.udp_rcvbuf_errors) {
            (Some(sum), Some(x), Some(y)) => Some(sum + x.saturating_sub(y)),
            _ => None,
        };
        r.events_dropped += a.events_dropped.saturating_sub(b.events_dropped);
        r.ticks += a.ticks.saturating_sub(b.ticks);
        r.late_ticks += a.late_ticks.saturating_sub(b.late_ticks);
    }
    r.udp_rcvbuf_errors = rcvbuf;
    r.cpu_s_per_node_s = if node_s > 0.0 {
        cpu_us as f64 / 1e6 / node_s
    } else {
        0.0
    };
    r
}
