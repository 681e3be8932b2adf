//! Membership scenarios on real UDP nodes on loopback: `gossip-node`'s
//! [`Runtime`] in this process (its datapath and I/O threads), driven in wall
//! clock time and measured through its observation channel.
//!
//! What it does honestly and what it refuses:
//! - joins (a node bound at the start, started at its time, meeting node 0),
//!   crashes (socket closed, state forgotten), restarts (same id and address,
//!   next incarnation, meeting node 0), pauses (no ticks; input discarded, as
//!   by a full receive buffer) and resumes;
//! - loss, latency, partitions and the `[network]` section need a network to
//!   shape, and loopback is not one: a scenario asking for any of them is
//!   refused before anything starts, naming the action.
//!
//! Figures, as in the sim world (`docs/report-schema.md`): ping overhead from
//! per-node counter deltas over the steady window (each node's rate over the
//! exact interval between its two publishes), join and FAIL items and
//! detections from the nodes' events (first receptions), false FAILs as FAILs
//! of nodes that were running. Published updates (`publish` actions) go
//! through [`Runtime::publish`] on the node's I/O thread; their first
//! receptions come from the nodes' `UpdateReceived` events. Copies received
//! are not counted (that needs every datagram decoded twice on the I/O path),
//! so `redundancy` and update `traffic` are absent, for joins, FAILs and
//! updates alike.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant as WallClock};

use anyhow::{anyhow, bail, Result};
use gossip_core::rng::Rng;
use gossip_core::wire::{key_id, MessageType};
use gossip_core::{Endpoint, Event, Instant, NodeId, Stamp};
use gossip_node::datapath::{self, DatapathChoice};
use gossip_node::metrics::{MetricsSource, Snapshot};
use gossip_node::observe::{NodeCounters, ObservedEvent};
use gossip_node::runtime::{NodeError, Runtime, RuntimeConfig};

use super::Control;
use crate::observe::{Detection, Item, Mark, MeanMax, Overhead, Resources, Trial, TypeRate};
use crate::scenario::{publish_key, schedule, Action, ActionKind, Network, Scenario};

/// Membership message types: what ping overhead counts (DESIGN §3).
const UPKEEP: [MessageType; 3] = [MessageType::Ping, MessageType::Pong, MessageType::Meet];
/// IPv4 + UDP header bytes per datagram.
const WIRE_OVERHEAD: u64 = 28;
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

/// Refuses what loopback cannot do honestly, naming it in one line.
///
/// # Errors
/// The first timeline action or network setting the UDP world cannot apply.
pub fn check(s: &Scenario) -> Result<()> {
    let net = &s.network;
    let ideal = Network::default();
    if net.loss > 0.0 || net.duplicate > 0.0 {
        bail!("network.loss/duplicate: the udp world runs on loopback and cannot drop or duplicate datagrams honestly; use --world sim");
    }
    if net.latency_ms != ideal.latency_ms || net.jitter_ms != ideal.jitter_ms {
        bail!("network.latency_ms/jitter_ms: the udp world has loopback's latency and cannot add any; use --world sim");
    }
    for (i, a) in s.timeline.iter().enumerate() {
        let name = match a.action {
            ActionKind::Partition => "partition",
            ActionKind::Heal => "heal",
            ActionKind::Loss => "loss",
            ActionKind::Latency => "latency",
            _ => continue,
        };
        bail!("timeline[{i}]: action {name:?} is not supported in the udp world (loopback cannot shape traffic honestly); use --world sim");
    }
    let slack = s.cluster.timer_slack_ms;
    if !(slack.is_finite() && (0.0..=10.0).contains(&slack)) {
        bail!("cluster.timer_slack_ms: must be between 0 and 10 ms (a tick later than 10 ms counts as late)");
    }
    if s.cluster.nodes + s.joins() > 20_000 {
        bail!("cluster.nodes: the udp world runs at most 20,000 nodes on one machine");
    }
    Ok(())
}

/// Runs the scenario's trials one after another (each trial owns every core).
///
/// # Errors
/// A refused scenario, or [`CannotStart`] when the nodes cannot start.
pub fn run(s: &Scenario, control: &Control) -> Result<Vec<Trial>> {
    check(s)?;
    s.profile.config()?;
    // A socket binds on 127.0.0.1 even where loopback is down (a bare network
    // namespace); only a datagram tells.
    can_start().map_err(|e| anyhow::Error::new(CannotStart(format!("{e:#}"))))?;
    let choice: DatapathChoice = s
        .cluster
        .datapath
        .parse()
        .map_err(|e| anyhow!("cluster.datapath: {e}"))?;
    let mut out = Vec::new();
    for i in 0..s.run.trials {
        if control.stopped() {
            break;
        }
        match trial(s, i, choice, control)? {
            Some(t) => out.push(t),
            None => break,
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Bound, waiting for its join.
    Held,
    Up,
    Paused,
    Down,
}

/// One trial; `None` if stopped before the end.
fn trial(
    s: &Scenario,
    index: usize,
    choice: DatapathChoice,
    control: &Control,
) -> Result<Option<Trial>> {
    let started = WallClock::now();
    let config = s.profile.config()?;
    let partial = config.partial_view();
    let tick = config.tick();
    let seed = super::sim::trial_seed(s.run.seed, index);
    let joins = s.joins();
    let total = s.cluster.nodes + joins;
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
            held: joins + sockets * slots - total,
            event_queue: EVENT_QUEUE,
            timer_slack: Duration::from_secs_f64(s.cluster.timer_slack_ms / 1_000.0),
            ..RuntimeConfig::default()
        },
        datapath::probe_uring,
    )
    .map_err(|e| anyhow::Error::new(CannotStart::from(e)))?;
    let metrics = rt.metrics();
    let clock = rt.clock();
    let origin = clock.now();
    let warmup = origin + secs(s.run.warmup_s);
    let end = warmup + secs(s.run.duration_s);
    let mut run = UdpRun {
        index: rt
            .ids()
            .iter()
            .enumerate()
            .map(|(n, &id)| (id, n))
            .collect(),
        ids: rt.ids().to_vec(),
        rt,
        control,
        warmup,
        origin,
        status: (0..total)
            .map(|n| {
                if n < s.cluster.nodes {
                    Status::Up
                } else {
                    Status::Held
                }
            })
            .collect(),
        up_since: (0..total)
            .map(|n| (n < s.cluster.nodes).then_some(warmup))
            .collect(),
        up_us: vec![0; total],
        log: Vec::new(),
        false_fails: 0,
        progressed: 0,
        next_join: s.cluster.nodes,
        crashed: Vec::new(),
        partial,
        joined: Vec::new(),
        paused: Vec::new(),
        marks: Vec::new(),
        published: Vec::new(),
        rng: Rng::new(seed ^ super::sim::PUBLISH_SEED),
    };
    if !run.wait_until(warmup) {
        return Ok(None);
    }
    let before = run.counters(s.cluster.nodes);
    let resources_before = (metrics.total(), rcvbuf_errors());
    let mut overhead = None;
    for (at_s, i, step) in schedule(&s.timeline) {
        if !run.wait_until(warmup + secs(at_s)) {
            return Ok(None);
        }
        if overhead.is_none() {
            overhead = measure_overhead(&before, &run.counters(s.cluster.nodes));
        }
        run.act(i, step, &s.timeline[i])?;
    }
    if !run.wait_until(end) {
        return Ok(None);
    }
    if overhead.is_none() {
        overhead = measure_overhead(&before, &run.counters(s.cluster.nodes));
    }
    run.pump();
    let at_end = clock.now();
    for n in 0..total {
        run.set_status(n, run.status[n], at_end);
    }
    let datapath = run.rt.datapath().name().to_string();
    let up_us: u64 = run.up_us.iter().sum();
    let detections = run.detections();
    let items = run.items(tick);
    let UdpRun {
        rt,
        false_fails,
        progressed,
        marks,
        ..
    } = run;
    // Threads publish their last counters as they stop.
    rt.shutdown()
        .map_err(|e| anyhow!("udp world: an I/O thread failed: {e}"))?;
    let resources = resources(&metrics, &resources_before, up_us);
    control
        .progress
        .inc(super::units_per_trial(s).saturating_sub(progressed));
    Ok(Some(Trial {
        index,
        seed,
        nodes: s.cluster.nodes,
        window_s: s.run.duration_s,
        overhead,
        items,
        detections,
        false_fails,
        node_hours: up_us as f64 / 3.6e9,
        epidemic: None,
        timeline: marks,
        wall_s: started.elapsed().as_secs_f64(),
        sim_events: 0,
        trace_hash: None,
        datapath: Some(datapath),
        resources: Some(resources),
    }))
}

/// A trial in progress: the runtime plus what the timeline did to it.
struct UdpRun<'a> {
    rt: Runtime,
    ids: Vec<NodeId>,
    index: HashMap<NodeId, usize>,
    control: &'a Control,
    origin: Instant,
    warmup: Instant,
    status: Vec<Status>,
    /// Since when each node has been up within the window (None: not up).
    up_since: Vec<Option<Instant>>,
    /// Microseconds each node was up within the measured window.
    up_us: Vec<u64>,
    /// Events kept for the figures (PFAIL, FAIL, alive, restarted, and
    /// discoveries of joining nodes).
    log: Vec<ObservedEvent>,
    false_fails: u64,
    progressed: u64,
    next_join: usize,
    /// (node, when, its holders then if views are partial) for each crash,
    /// in order.
    crashed: Vec<(usize, Instant, Option<Vec<usize>>)>,
    /// Whether nodes hold partial views (FAILs and joins then concern only
    /// the nodes that hold the node).
    partial: bool,
    /// (node, when) for each join.
    joined: Vec<(usize, Instant)>,
    paused: Vec<usize>,
    marks: Vec<Mark>,
    /// (origin node, key id, stamp, when) for each update published.
    published: Vec<(usize, u64, Stamp, Instant)>,
    /// Picks the node each publish without a `node` runs on.
    rng: Rng,
}

impl UdpRun<'_> {
    /// Pumps events and progress until `until` on the runtime clock; false if
    /// stopped. Bounded: it returns at `until` whatever happens.
    fn wait_until(&mut self, until: Instant) -> bool {
        let clock = self.rt.clock();
        loop {
            self.pump();
            if self.control.stopped() {
                return false;
            }
            let now = clock.now();
            let done = (now - self.origin).as_secs();
            if done > self.progressed {
                self.control.progress.inc(done - self.progressed);
                self.progressed = done;
            }
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(PUMP_EVERY));
        }
    }

    /// Drains the observation queues, counting false FAILs as they come and
    /// keeping what the figures need.
    fn pump(&mut self) {
        let mut taken = Vec::new();
        self.rt.drain_events(usize::MAX, |e| taken.push(e));
        for e in taken {
            let keep = match e.event {
                Event::PeerFail { id, .. } => {
                    if let Some(x) = self.index_of(id) {
                        // Status changes only at our commands, so "now" is the
                        // status the event was emitted under, give or take
                        // the 20 ms this queue waited.
                        if self.status[x] == Status::Up {
                            self.false_fails += 1;
                        }
                    }
                    true
                }
                Event::PeerPfail { .. } | Event::PeerAlive { .. } | Event::PeerRestarted { .. } => {
                    true
                }
                Event::PeerDiscovered { id, .. } => self
                    .index_of(id)
                    .is_some_and(|x| self.joined.iter().any(|j| j.0 == x)),
                // Only the timeline publishes, so every update is measured.
                Event::UpdateReceived { .. } => true,
                _ => false,
            };
            if keep {
                self.log.push(e);
            }
        }
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// Every measured node's counters now.
    fn counters(&self, nodes: usize) -> Vec<Option<NodeCounters>> {
        (0..nodes).map(|n| self.rt.node_counters(n)).collect()
    }

    fn t(&self, at: Instant) -> f64 {
        (at.as_micros() as f64 - self.warmup.as_micros() as f64) / 1e6
    }

    fn mark(&mut self, at: Instant, what: String) {
        let t_s = self.t(at);
        self.marks.push(Mark { t_s, what });
    }

    /// Records node `n`'s new status at `at`, accounting up-time in the window.
    fn set_status(&mut self, n: usize, status: Status, at: Instant) {
        if let Some(since) = self.up_since[n].take() {
            let from = since.max(self.warmup);
            if at > from {
                self.up_us[n] += (at - from).as_micros() as u64;
            }
        }
        if status == Status::Up {
            self.up_since[n] = Some(at);
        }
        self.status[n] = status;
    }

    /// Applies step `step` of timeline action `i` now.
    fn act(&mut self, i: usize, step: u32, a: &Action) -> Result<()> {
        let running = |st: &[Status]| (1..st.len()).rev().find(|&n| st[n] == Status::Up);
        let seed = [self.rt.endpoints()[0]];
        let now = self.rt.clock().now();
        match a.action {
            ActionKind::Join => {
                let n = self.next_join;
                self.next_join += 1;
                self.joined.push((n, now));
                self.rt
                    .start_node(n, &seed)
                    .map_err(|e| anyhow!("join of node {n}: {e}"))?;
                self.set_status(n, Status::Up, now);
                self.mark(now, format!("node {n} joins"));
            }
            ActionKind::Crash => {
                let Some(n) = a.node.or_else(|| running(&self.status)) else {
                    return Ok(());
                };
                let holders = self.partial.then(|| self.rt.holders(self.ids[n]));
                self.set_status(n, Status::Down, now);
                self.rt.kill(n);
                self.crashed.push((n, now, holders));
                self.mark(now, format!("node {n} crashes"));
            }
            ActionKind::Restart => {
                let Some(n) = a.node.or_else(|| self.crashed.last().map(|c| c.0)) else {
                    return Ok(());
                };
                let meet: &[Endpoint] = if n == 0 { &[] } else { &seed };
                self.rt
                    .restart(n, meet)
                    .map_err(|e| anyhow!("restart of node {n}: {e}"))?;
                self.set_status(n, Status::Up, self.rt.clock().now());
                self.mark(now, format!("node {n} restarts"));
            }
            ActionKind::Pause => {
                let Some(n) = a.node.or_else(|| running(&self.status)) else {
                    return Ok(());
                };
                self.set_status(n, Status::Paused, now);
                self.rt.pause(n);
                self.paused.push(n);
                self.mark(now, format!("node {n} pauses"));
            }
            ActionKind::Resume => {
                let Some(n) = a.node.or_else(|| self.paused.pop()) else {
                    return Ok(());
                };
                self.rt.resume(n);
                self.set_status(n, Status::Up, now);
                self.mark(now, format!("node {n} resumes"));
            }
            ActionKind::Publish => {
                let n = match a.node {
                    Some(n) => n,
                    None => {
                        let up: Vec<usize> = self.up_nodes().collect();
                        if up.is_empty() {
                            return Ok(());
                        }
                        up[self.rng.index(up.len())]
                    }
                };
                if step == 0 {
                    self.mark(now, super::sim::publish_mark(a));
                }
                let key = publish_key(i, step);
                let value = super::sim::publish_value(step);
                // Before the call: a peer may have it before the call returns.
                let at = self.rt.clock().now();
                match self.rt.publish(n, key.as_bytes(), &value) {
                    Some(Ok(stamp)) => {
                        self.published.push((n, key_id(key.as_bytes()), stamp, at));
                    }
                    Some(Err(e)) => self.mark(now, format!("node {n} refused update {key}: {e}")),
                    None => self.mark(
                        now,
                        format!("node {n} is not running: update {key} not published"),
                    ),
                }
            }
            // Refused by `check` before the trial started.
            ActionKind::Partition | ActionKind::Heal | ActionKind::Loss | ActionKind::Latency => {
                bail!("udp world: {:?} is not supported", a.action)
            }
        }
        Ok(())
    }

    /// Nodes running at the end.
    fn up_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.status.len()).filter(|&n| self.status[n] == Status::Up)
    }

    /// First event at each node matching `want` at or after `since`.
    fn firsts(&self, since: Instant, want: impl Fn(&Event) -> bool) -> Vec<Option<Instant>> {
        let mut first = vec![None; self.status.len()];
        for e in &self.log {
            if e.at >= since && want(&e.event) {
                let f: &mut Option<Instant> = &mut first[e.node];
                if f.is_none_or(|t| e.at < t) {
                    *f = Some(e.at);
                }
            }
        }
        first
    }

    /// Failure detection for each crash, from the event log.
    fn detections(&mut self) -> Vec<Detection> {
        let mut out = Vec::new();
        for (x, at, holders) in self.crashed.clone() {
            let id = self.ids[x];
            let pfail = self
                .firsts(at, |e| matches!(e, Event::PeerPfail { id: i } if *i == id))
                .into_iter()
                .flatten()
                .min();
            let fails = self.firsts(
                at,
                |e| matches!(e, Event::PeerFail { id: i, .. } if *i == id),
            );
            let fail = fails.iter().flatten().min().copied();
            let live = super::audience(self.up_nodes(), holders.as_deref(), x);
            let all = live
                .iter()
                .map(|&n| fails[n])
                .try_fold(at, |a, t| t.map(|t| a.max(t)));
            let rel = |t: Option<Instant>| t.map(|t| (t - at).as_secs_f64());
            let d = Detection {
                node: x,
                crashed_s: self.t(at),
                first_pfail_s: rel(pfail),
                first_fail_s: rel(fail),
                all_fail_s: if live.is_empty() { None } else { rel(all) },
            };
            self.marks.extend(d.marks());
            out.push(d);
        }
        self.marks.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        out
    }

    /// Each join and each crash's FAIL at every node running at the end (with
    /// partial views, at those that hold the node: see `audience`).
    fn items(&self, tick: Duration) -> Vec<Item> {
        let mut out = Vec::new();
        for &(j, at) in &self.joined {
            let id = self.ids[j];
            let firsts = self.firsts(
                at,
                |e| matches!(e, Event::PeerDiscovered { id: i, .. } if *i == id),
            );
            let holders = self.partial.then(|| self.rt.holders(id));
            let live = super::audience(self.up_nodes(), holders.as_deref(), j);
            out.push(self.item("join", Some(j), live, at, &firsts, tick));
        }
        for (x, at, holders) in &self.crashed {
            let (x, at) = (*x, *at);
            let id = self.ids[x];
            let firsts = self.firsts(
                at,
                |e| matches!(e, Event::PeerFail { id: i, .. } if *i == id),
            );
            let live = super::audience(self.up_nodes(), holders.as_deref(), x);
            // A FAIL spreads from the first node that declared it.
            let Some(injected) = firsts.iter().flatten().min().copied() else {
                out.push(Item {
                    kind: "fail".into(),
                    about: Some(x),
                    injected_s: self.t(at),
                    live: live.len(),
                    round_us: tick.as_micros() as u64,
                    ..Item::default()
                });
                continue;
            };
            out.push(self.item("fail", Some(x), live, injected, &firsts, tick));
        }
        for &(o, key, stamp, at) in &self.published {
            let firsts = self.firsts(at, |e| {
                matches!(e, Event::UpdateReceived { origin, key: k, version, .. }
                    if *origin == stamp.origin && *k == key && *version == stamp.version)
            });
            let live = super::audience(self.up_nodes(), None, o);
            out.push(self.item("update", None, live, at, &firsts, tick));
        }
        out
    }

    /// An item at the nodes `live`.
    fn item(
        &self,
        kind: &str,
        about: Option<usize>,
        live: Vec<usize>,
        injected: Instant,
        firsts: &[Option<Instant>],
        tick: Duration,
    ) -> Item {
        let latencies_us: Vec<u64> = live
            .iter()
            .filter_map(|&n| firsts[n])
            .map(|t| t.as_micros().saturating_sub(injected.as_micros()))
            .collect();
        Item {
            kind: kind.into(),
            about,
            injected_s: self.t(injected),
            live: live.len(),
            reached: latencies_us.len(),
            latencies_us,
            // Copies are not counted in the udp world (module docs).
            receptions: Vec::new(),
            round_us: tick.as_micros() as u64,
            traffic: None,
        }
    }
}

/// Ping overhead between two readings of the per-node counters: each node's
/// rate over the interval between its two publishes; nodes not running (or
/// restarted) at either reading are left out.
fn measure_overhead(
    before: &[Option<NodeCounters>],
    after: &[Option<NodeCounters>],
) -> Option<Overhead> {
    let pairs: Vec<(&NodeCounters, &NodeCounters)> = before
        .iter()
        .zip(after)
        .filter_map(|(b, a)| match (b, a) {
            (Some(b), Some(a))
                if b.running && a.running && a.incarnation == b.incarnation && a.at > b.at =>
            {
                Some((b, a))
            }
            _ => None,
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let window_s = pairs
        .iter()
        .map(|(b, a)| (a.at - b.at).as_secs_f64())
        .sum::<f64>()
        / pairs.len() as f64;
    let delta = |b: &NodeCounters, a: &NodeCounters, k: MessageType| {
        let (x, y) = (a.sent(k), b.sent(k));
        (
            x.datagrams.saturating_sub(y.datagrams),
            x.bytes.saturating_sub(y.bytes),
        )
    };
    let mut msgs = Vec::new();
    let mut bytes = Vec::new();
    let mut wire = Vec::new();
    let mut by_kind = [(0f64, 0f64); UPKEEP.len()];
    for (b, a) in &pairs {
        let secs = (a.at - b.at).as_secs_f64();
        let (mut m, mut by) = (0, 0);
        for (k, &kind) in UPKEEP.iter().enumerate() {
            let (dm, db) = delta(b, a, kind);
            m += dm;
            by += db;
            by_kind[k].0 += dm as f64 / secs;
            by_kind[k].1 += db as f64 / secs;
        }
        msgs.push(m as f64 / secs);
        bytes.push(by as f64 / secs);
        wire.push((by + WIRE_OVERHEAD * m) as f64 / secs);
    }
    let n = pairs.len() as f64;
    let by_type = UPKEEP
        .iter()
        .zip(by_kind)
        .map(|(k, (m, b))| TypeRate {
            kind: k.name().into(),
            msgs_per_node_s: m / n,
            bytes_per_node_s: b / n,
            bytes_per_msg: if m > 0.0 { b / m } else { 0.0 },
        })
        .collect();
    Some(Overhead {
        window_s,
        nodes: pairs.len(),
        msgs_per_node_s: mean_max(&msgs),
        bytes_per_node_s: mean_max(&bytes),
        wire_bytes_per_node_s: mean_max(&wire),
        by_type,
    })
}

fn resources(metrics: &MetricsSource, before: &(Snapshot, Option<u64>), up_us: u64) -> Resources {
    let (b, rcv_before) = before;
    let a = metrics.total();
    let dp = |s: &Snapshot| {
        let c = &s.datapath;
        c.send_errors
            + c.send_would_block
            + c.truncated
            + c.recv_errors
            + s.stats.drops.transmit_queue_full
    };
    let cpu_s = a.cpu_us.saturating_sub(b.cpu_us) as f64 / 1e6;
    let node_s = up_us as f64 / 1e6;
    Resources {
        cpu_s_per_node_s: if node_s > 0.0 { cpu_s / node_s } else { 0.0 },
        rss_bytes: datapath::sys::max_rss_bytes(),
        drops: dp(&a).saturating_sub(dp(b)),
        udp_rcvbuf_errors: match (rcv_before, rcvbuf_errors()) {
            (Some(x), Some(y)) => Some(y.saturating_sub(*x)),
            _ => None,
        },
        events_dropped: a.events_dropped.saturating_sub(b.events_dropped),
        ticks: a.stats.ticks.saturating_sub(b.stats.ticks),
        late_ticks: a.stats.late_ticks.saturating_sub(b.stats.late_ticks),
    }
}

/// The kernel's UDP `RcvbufErrors` (machine-wide), if readable.
fn rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let names = udp.next()?.split_whitespace();
    let values = udp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
}

fn mean_max(xs: &[f64]) -> MeanMax {
    MeanMax {
        mean: xs.iter().sum::<f64>() / xs.len().max(1) as f64,
        max: xs.iter().copied().fold(0.0, f64::max),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}
