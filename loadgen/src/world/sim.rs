//! Membership scenarios in the simulator: real `Node`s on a seeded virtual
//! network (`gossip_core::sim`), measured by its observer and event log.

use std::time::{Duration, Instant as WallClock};

use anyhow::Result;
use gossip_core::rng::Rng;
use gossip_core::sim::{Fault, ItemId, Latency, NetworkParams, NodeSet, NodeStatus, Simulation};
use gossip_core::wire::{key_id, MessageType};
use gossip_core::{Event, Instant, NodeId};

use super::{parallel_trials, Control};
use crate::observe::{Detection, Item, Mark, MeanMax, Overhead, Trial, TypeRate};
use crate::scenario::{publish_key, schedule, Action, ActionKind, Scenario};

/// Mixed into the trial seed for the choice of publishing nodes.
pub(crate) const PUBLISH_SEED: u64 = 0x7075_626c_6973_6800;

/// Membership message types: what ping overhead counts (DESIGN §3).
const UPKEEP: [MessageType; 3] = [MessageType::Ping, MessageType::Pong, MessageType::Meet];
/// IPv4 + UDP header bytes per datagram.
const WIRE_OVERHEAD: u64 = 28;

/// Progress units per trial: virtual seconds.
pub fn units_per_trial(s: &Scenario) -> u64 {
    (s.run.warmup_s + s.run.duration_s).ceil() as u64
}

/// Runs the scenario's trials, up to `threads` at once.
///
/// # Errors
/// A scenario the core refuses.
pub fn run(s: &Scenario, threads: usize, control: &Control) -> Result<Vec<Trial>> {
    s.profile.config()?;
    parallel_trials(s.run.trials, threads, control, |i| trial(s, i, control))
}

pub(crate) fn trial_seed(base: u64, i: usize) -> u64 {
    gossip_core::epidemic::population::trial_seed(base, i as u64)
}

/// One trial; `None` if stopped before the end.
fn trial(s: &Scenario, index: usize, control: &Control) -> Result<Option<Trial>> {
    let started = WallClock::now();
    let config = s.profile.config()?;
    let tick = config.tick();
    let seed = trial_seed(s.run.seed, index);
    let total = s.cluster.nodes + s.joins();
    let crashes = s
        .timeline
        .iter()
        .filter(|a| a.action == ActionKind::Crash)
        .count();
    let mut sim = Simulation::builder(seed, total)
        .config(config)
        .network(network(s))
        .record_events(true)
        .fail_items(crashes + 16)
        .build();
    for n in 0..s.cluster.nodes {
        sim.apply(Fault::Start {
            node: n,
            meet: (n > 0).then_some(0),
        });
    }
    let warmup = Instant::ZERO + secs(s.run.warmup_s);
    let end = warmup + secs(s.run.duration_s);
    let mut run = TrialRun {
        sim,
        control,
        warmup,
        events_seen: 0,
        false_fails: 0,
        progressed: 0,
        next_join: s.cluster.nodes,
        initial: s.cluster.nodes,
        crashed: Vec::new(),
        paused: Vec::new(),
        marks: Vec::new(),
        completed: Vec::new(),
        rng: Rng::new(seed ^ PUBLISH_SEED),
    };
    if !run.advance(warmup) {
        return Ok(None);
    }
    let before = run.sim.observer().all_traffic().to_vec();
    let steps = schedule(&s.timeline);
    let steady_end = steps.first().map_or(end, |st| warmup + secs(st.0));
    let mut overhead = None;
    for &(at_s, i, step) in &steps {
        let at = warmup + secs(at_s);
        if !run.advance(at) {
            return Ok(None);
        }
        if overhead.is_none() {
            overhead = measure_overhead(&run.sim, &before, s.cluster.nodes, steady_end - warmup);
        }
        run.act(i, step, &s.timeline[i]);
    }
    if !run.advance(end) {
        return Ok(None);
    }
    if overhead.is_none() {
        overhead = measure_overhead(&run.sim, &before, s.cluster.nodes, end - warmup);
    }
    run.control
        .progress
        .inc(units_per_trial(s).saturating_sub(run.progressed));
    let detections = run.detections();
    let items = run.items(tick);
    let up_seconds: f64 = (0..total)
        .filter(|&n| run.sim.status(n) != NodeStatus::Down)
        .count() as f64
        * s.run.duration_s;
    Ok(Some(Trial {
        index,
        seed,
        nodes: s.cluster.nodes,
        window_s: s.run.duration_s,
        overhead,
        items,
        detections,
        false_fails: run.false_fails,
        node_hours: up_seconds / 3600.0,
        epidemic: None,
        timeline: run.marks,
        wall_s: started.elapsed().as_secs_f64(),
        sim_events: run.sim.events_processed(),
        trace_hash: Some(format!("{:016x}", run.sim.trace_hash())),
        datapath: None,
        resources: None,
    }))
}

/// A trial in progress: the simulation plus what the timeline did to it.
struct TrialRun<'a> {
    sim: Simulation,
    control: &'a Control,
    warmup: Instant,
    /// Events already checked for false FAILs.
    events_seen: usize,
    false_fails: u64,
    /// Progress units reported so far.
    progressed: u64,
    next_join: usize,
    /// Nodes started before the timeline.
    initial: usize,
    /// (node, when, its holders then if views are partial) for each crash,
    /// in order.
    crashed: Vec<(usize, Instant, Option<Vec<usize>>)>,
    paused: Vec<usize>,
    marks: Vec<Mark>,
    /// Per tracked item: receptions at each node when the last live node got
    /// it. Copies after that are upkeep (every PING mentions a member), not
    /// dissemination, so redundancy counts only up to here.
    completed: Vec<Option<Vec<u32>>>,
    /// Picks the node each publish without a `node` runs on.
    rng: Rng,
}

impl TrialRun<'_> {
    /// Runs to `until` one tick at a time, reporting progress, checking new
    /// events and noting completed items; false if stopped.
    fn advance(&mut self, until: Instant) -> bool {
        let tick = self.sim.config().tick();
        while self.sim.now() < until {
            if self.control.stopped() {
                return false;
            }
            let step = (self.sim.now() + tick).min(until);
            self.sim.run_until(step);
            self.count_false_fails();
            self.note_completions();
            let done = (self.sim.now() - Instant::ZERO).as_secs();
            if done > self.progressed {
                self.control.progress.inc(done - self.progressed);
                self.progressed = done;
            }
        }
        true
    }

    /// A FAIL is false when the failed node was running and reachable from the
    /// node that declared it. Status and partitions change only at timeline
    /// actions, which fall on step boundaries, so "now" is exact for a step.
    fn count_false_fails(&mut self) {
        let events = self.sim.events();
        for e in &events[self.events_seen..] {
            if let Event::PeerFail { id, .. } = e.event {
                let Some(x) = self.sim.index_of(id) else {
                    continue;
                };
                if self.sim.status(x) == NodeStatus::Up
                    && self.sim.connected(e.node, x)
                    && self.sim.connected(x, e.node)
                {
                    self.false_fails += 1;
                }
            }
        }
        self.events_seen = events.len();
    }

    fn note_completions(&mut self) {
        let items = self.sim.observer().items();
        self.completed.resize(items.len(), None);
        for (k, trace) in items.enumerate() {
            if self.completed[k].is_some() {
                continue;
            }
            let about = subject(&self.sim, trace.item());
            let live = self.sim.up_nodes().filter(|&n| Some(n) != about);
            if trace.reached_all(live) {
                self.completed[k] = Some(trace.receptions().map(|r| r.count()).collect());
            }
        }
    }

    fn t(&self) -> f64 {
        (self.sim.now().as_micros() as f64 - self.warmup.as_micros() as f64) / 1e6
    }

    fn mark(&mut self, what: String) {
        let t_s = self.t();
        self.marks.push(Mark { t_s, what });
    }

    /// Applies step `step` of timeline action `i` now.
    fn act(&mut self, i: usize, step: u32, a: &Action) {
        let running = |sim: &Simulation| {
            (1..sim.len())
                .rev()
                .find(|&n| sim.status(n) == NodeStatus::Up)
        };
        match a.action {
            ActionKind::Join => {
                let n = self.next_join;
                self.next_join += 1;
                let id = self.sim.id(n);
                self.sim.track(ItemId::Join(id));
                self.sim.apply(Fault::Start {
                    node: n,
                    meet: Some(0),
                });
                self.mark(format!("node {n} joins"));
            }
            ActionKind::Crash => {
                let Some(n) = a.node.or_else(|| running(&self.sim)) else {
                    return;
                };
                let holders = self.holders(self.sim.id(n));
                self.sim.apply(Fault::Crash(n));
                self.crashed.push((n, self.sim.now(), holders));
                self.mark(format!("node {n} crashes"));
            }
            ActionKind::Restart => {
                let Some(n) = a.node.or_else(|| self.crashed.last().map(|c| c.0)) else {
                    return;
                };
                self.sim.apply(Fault::Restart { node: n, meet: 0 });
                self.mark(format!("node {n} restarts"));
            }
            ActionKind::Pause => {
                let Some(n) = a.node.or_else(|| running(&self.sim)) else {
                    return;
                };
                self.sim.apply(Fault::Pause(n));
                self.paused.push(n);
                self.mark(format!("node {n} pauses"));
            }
            ActionKind::Resume => {
                let Some(n) = a.node.or_else(|| self.paused.pop()) else {
                    return;
                };
                self.sim.apply(Fault::Resume(n));
                self.mark(format!("node {n} resumes"));
            }
            ActionKind::Partition => {
                // The first side takes a fraction of the starting nodes, plus
                // every node joining (they meet node 0, so they belong with it).
                let f = a.fraction.unwrap_or(0.5);
                let k = ((self.initial as f64) * f).round() as usize;
                let mut side = NodeSet::range(0..k);
                for j in self.initial..self.sim.len() {
                    side.insert(j);
                }
                self.sim.apply(Fault::Partition(vec![side]));
                self.mark(format!("partition: nodes 0..{k} and joiners | rest"));
            }
            ActionKind::Heal => {
                self.sim.apply(Fault::Heal);
                self.mark("partition heals".into());
            }
            ActionKind::Loss => {
                let p = a.value.unwrap_or(0.0);
                self.sim.apply(Fault::SetLoss(p));
                self.mark(format!("loss {:.1} %", p * 100.0));
            }
            ActionKind::Latency => {
                let ms = a.value.unwrap_or(0.0);
                self.sim
                    .apply(Fault::SetLatency(Latency::Fixed(Duration::from_secs_f64(
                        ms / 1e3,
                    ))));
                self.mark(format!("latency {ms} ms"));
            }
            ActionKind::Publish => {
                let n = match a.node {
                    Some(n) => n,
                    None => {
                        let up: Vec<usize> = self.sim.up_nodes().collect();
                        if up.is_empty() {
                            return;
                        }
                        up[self.rng.index(up.len())]
                    }
                };
                if step == 0 {
                    self.mark(publish_mark(a));
                }
                let key = publish_key(i, step);
                let value = publish_value(step);
                let published = self
                    .sim
                    .command(n, |node, now| node.publish(now, key.as_bytes(), &value));
                match published {
                    Some(Ok(stamp)) => self.sim.track(ItemId::Update {
                        origin: stamp.origin,
                        key: key_id(key.as_bytes()),
                        version: stamp.version,
                    }),
                    // Not running (a named node crashed or paused), or a store
                    // cap refused it: nothing spreads, nothing to measure.
                    Some(Err(e)) => self.mark(format!("node {n} refused update {key}: {e}")),
                    None => self.mark(format!(
                        "node {n} is not running: update {key} not published"
                    )),
                }
            }
        }
    }

    /// With partial views, the running nodes (ascending) whose tables hold
    /// `id` as a member; `None` when every node holds every other.
    fn holders(&self, id: NodeId) -> Option<Vec<usize>> {
        if !self.sim.config().partial_view() {
            return None;
        }
        let holds = |n: usize| {
            self.sim
                .node(n)
                .and_then(|node| node.peers().by_id(id))
                .is_some_and(|p| p.is_member())
        };
        Some(self.sim.up_nodes().filter(|&n| holds(n)).collect())
    }

    /// Failure detection for each crash, from the event log.
    fn detections(&mut self) -> Vec<Detection> {
        let mut out = Vec::new();
        for (x, at, holders) in self.crashed.clone() {
            let id = self.sim.id(x);
            let since = |e: &gossip_core::sim::LoggedEvent| e.at >= at;
            let first = |want: fn(&Event, NodeId) -> bool| {
                self.sim
                    .events()
                    .iter()
                    .filter(|e| since(e) && want(&e.event, id))
                    .map(|e| e.at)
                    .min()
            };
            let pfail = first(|e, id| matches!(e, Event::PeerPfail { id: i } if *i == id));
            let fail = first(|e, id| matches!(e, Event::PeerFail { id: i, .. } if *i == id));
            let live = super::audience(self.sim.up_nodes(), holders.as_deref(), x);
            let mut all = Some(at);
            for &n in &live {
                let t = self
                    .sim
                    .events()
                    .iter()
                    .filter(|e| e.node == n && since(e))
                    .find(|e| matches!(e.event, Event::PeerFail { id: i, .. } if i == id))
                    .map(|e| e.at);
                all = match (all, t) {
                    (Some(a), Some(t)) => Some(a.max(t)),
                    _ => None,
                };
            }
            let rel = |t: Option<Instant>| t.map(|t| (t - at).as_secs_f64());
            let d = Detection {
                node: x,
                crashed_s: (at.as_micros() as f64 - self.warmup.as_micros() as f64) / 1e6,
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

    /// Every tracked item at every node running at the end.
    fn items(&self, tick: Duration) -> Vec<Item> {
        let mut out = Vec::new();
        for (k, trace) in self.sim.observer().items().enumerate() {
            let kind = match trace.item() {
                ItemId::Join(_) => "join",
                ItemId::Fail(_) => "fail",
                _ => "update",
            };
            let about = subject(&self.sim, trace.item());
            let origin = trace.origin();
            // A FAIL spreads from the first node that declared it: the item is
            // injected then, not at the crash (detection is measured apart).
            let injected = match trace.item() {
                ItemId::Fail(_) => trace
                    .receptions()
                    .filter_map(|r| r.first())
                    .min()
                    .unwrap_or(trace.injected_at()),
                _ => trace.injected_at(),
            };
            // Joins and FAILs: copies until the last live node had it (later
            // ones are upkeep). Updates: every copy (rumors die out, and
            // anti-entropy sends only what a peer lacks).
            let counts = match trace.item() {
                ItemId::Update { .. } => None,
                _ => self.completed.get(k).and_then(Option::as_ref),
            };
            // With partial views a FAIL concerns the nodes that held the node
            // at its crash, a join those that hold it at the end.
            let holders = match (trace.item(), about) {
                (ItemId::Fail(_), Some(x)) => self
                    .crashed
                    .iter()
                    .rev()
                    .find(|c| c.0 == x)
                    .and_then(|c| c.2.clone()),
                (ItemId::Join(_), Some(j)) => self.holders(self.sim.id(j)),
                _ => None,
            };
            let live = super::audience(
                self.sim.up_nodes().filter(|&n| Some(n) != origin),
                holders.as_deref(),
                about.unwrap_or(usize::MAX),
            );
            let mut latencies_us = Vec::new();
            let mut receptions = Vec::new();
            for &n in &live {
                let r = trace.at(n);
                if let Some(first) = r.first() {
                    latencies_us.push((first - injected).as_micros() as u64);
                    // A node that declared a FAIL itself (by quorum) was not
                    // reached by dissemination: it has no copies to count.
                    let copies = counts.map_or(r.count(), |c| c[n]);
                    if copies > 0 {
                        receptions.push(copies);
                    }
                }
            }
            // Demers' traffic m: copies delivered (every update-carrying
            // datagram, counted at its receiver) per node running, the origin
            // included; equal to messages sent per node without loss.
            let traffic = (kind == "update").then(|| {
                let running = live.len() + usize::from(origin.is_some());
                trace.receptions_total() as f64 / running.max(1) as f64
            });
            out.push(Item {
                kind: kind.into(),
                about,
                traffic,
                injected_s: (injected.as_micros() as f64 - self.warmup.as_micros() as f64) / 1e6,
                live: live.len(),
                reached: latencies_us.len(),
                latencies_us,
                receptions,
                round_us: tick.as_micros() as u64,
            });
        }
        out
    }
}

/// The timeline's note for a publish action.
pub(crate) fn publish_mark(a: &Action) -> String {
    let count = a.count.unwrap_or(1);
    let from = a
        .node
        .map_or("random running nodes".to_string(), |n| format!("node {n}"));
    match a.rate {
        Some(r) if count > 1 => format!("{count} updates published at {r}/s from {from}"),
        _ => format!("{count} update(s) published from {from}"),
    }
}

/// The value a publish step writes: 16 bytes.
pub(crate) fn publish_value(step: u32) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..4].copy_from_slice(&step.to_be_bytes());
    v
}

/// The node a join or FAIL item is about.
fn subject(sim: &Simulation, item: ItemId) -> Option<usize> {
    match item {
        ItemId::Join(id) | ItemId::Fail(id) => sim.index_of(id),
        _ => None,
    }
}

/// Ping overhead over `window`, for the first `nodes` nodes that are up.
fn measure_overhead(
    sim: &Simulation,
    before: &[gossip_core::sim::NodeTraffic],
    nodes: usize,
    window: Duration,
) -> Option<Overhead> {
    let secs = window.as_secs_f64();
    if secs <= 0.0 {
        return None;
    }
    let now = sim.observer().all_traffic();
    let measured: Vec<usize> = (0..nodes.min(now.len()))
        .filter(|&n| sim.status(n) == NodeStatus::Up)
        .collect();
    if measured.is_empty() {
        return None;
    }
    let delta = |n: usize, k: MessageType| {
        let c = usize::from(k.code());
        let (a, b) = (now[n].sent[c], before[n].sent[c]);
        (a.datagrams - b.datagrams, a.bytes - b.bytes)
    };
    let mut msgs = Vec::new();
    let mut bytes = Vec::new();
    let mut wire = Vec::new();
    for &n in &measured {
        let (m, b) = UPKEEP.iter().fold((0, 0), |(m, b), &k| {
            let (dm, db) = delta(n, k);
            (m + dm, b + db)
        });
        msgs.push(m as f64 / secs);
        bytes.push(b as f64 / secs);
        wire.push((b + WIRE_OVERHEAD * m) as f64 / secs);
    }
    let by_type = UPKEEP
        .iter()
        .map(|&k| {
            let (m, b) = measured.iter().fold((0u64, 0u64), |(m, b), &n| {
                let (dm, db) = delta(n, k);
                (m + dm, b + db)
            });
            let per = measured.len() as f64 * secs;
            TypeRate {
                kind: k.name().into(),
                msgs_per_node_s: m as f64 / per,
                bytes_per_node_s: b as f64 / per,
                bytes_per_msg: if m > 0 { b as f64 / m as f64 } else { 0.0 },
            }
        })
        .collect();
    Some(Overhead {
        window_s: secs,
        nodes: measured.len(),
        msgs_per_node_s: mean_max(&msgs),
        bytes_per_node_s: mean_max(&bytes),
        wire_bytes_per_node_s: mean_max(&wire),
        by_type,
    })
}

fn mean_max(xs: &[f64]) -> MeanMax {
    MeanMax {
        mean: xs.iter().sum::<f64>() / xs.len().max(1) as f64,
        max: xs.iter().copied().fold(0.0, f64::max),
    }
}

fn network(s: &Scenario) -> NetworkParams {
    let lo = Duration::from_secs_f64(s.network.latency_ms / 1e3);
    let hi = Duration::from_secs_f64((s.network.latency_ms + s.network.jitter_ms) / 1e3);
    NetworkParams {
        latency: Latency::Uniform { min: lo, max: hi },
        loss: s.network.loss,
        duplicate: s.network.duplicate,
        ..NetworkParams::IDEAL
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}
