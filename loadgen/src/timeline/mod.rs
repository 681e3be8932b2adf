//! The one timeline interpreter: acts a scenario out on any [`World`] and
//! turns what its nodes saw into one [`Trial`], the same way in every world.
//!
//! A trial: the world starts `cluster.nodes` nodes; the warm-up passes; the
//! timeline's steps run at their times (joins, crashes, restarts, pauses,
//! network changes, publishes); the window ends. Between steps the
//! interpreter advances the world one [`World::step`] at a time and reads
//! what the nodes saw, so that it can count false FAILs as they happen and
//! note the moment each item has reached every live node (its copies are
//! read then: later ones are upkeep, not dissemination). Figures follow
//! DESIGN §3 and `docs/report-schema.md`.

use std::collections::HashMap;
use std::time::{Duration, Instant as WallClock};

use anyhow::{anyhow, Result};
use gossip_core::rng::Rng;
use gossip_core::wire::key_id;
use gossip_core::{Config, Instant};

mod agreement;
mod figures;
mod items;
mod suspicions;

use agreement::Agreement;
use figures::{audience, measure_overhead};
use items::{Items, Tracked};
use suspicions::Suspicions;

use crate::observe::{Detection, Item, Mark, Recovery, Trial};
use crate::scenario::{schedule, Action, ActionKind, Scenario};
use crate::world::PUBLISH_SEED;
use crate::world::{Control, ItemKey, Published, Seen, Shape, What, World};

/// FAIL items measured beyond the crashes' own: FAILs of nodes nobody
/// crashed (a partition, a pause, loss), measured like any other.
pub(crate) const EXTRA_FAIL_ITEMS: usize = 16;

/// Runs one trial of `s` in `world`; `None` if stopped before the end. The
/// world is finished (its nodes stopped) whatever happens.
///
/// # Errors
/// A world that broke, or an action it refused.
pub fn drive(
    world: Box<dyn World>,
    s: &Scenario,
    index: usize,
    seed: u64,
    control: &Control,
) -> Result<Option<Trial>> {
    let started = WallClock::now();
    let config = s.profile.config()?;
    let mut d = Drive::new(world, s, &config, seed, control);
    let parts = d.act_out(s);
    let node_s = d.up_us.iter().sum::<u64>() as f64 / 1e6;
    let (progressed, false_fails, partition_fails) =
        (d.progressed, d.false_fails, d.partition_fails);
    let false_pfails = d.suspicions.count();
    let false_pfail_times = d.suspicions.times(d.origin, d.warmup);
    // The nodes stop whatever happened; the trial's own error comes first.
    let extras = d.world.finish(node_s);
    let Some(figures) = parts? else {
        return extras.map(|_| None);
    };
    let extras = extras?;
    control
        .progress
        .inc(crate::world::units_per_trial(s).saturating_sub(progressed));
    Ok(Some(Trial {
        index,
        seed,
        nodes: s.cluster.nodes,
        window_s: s.run.duration_s,
        false_fails,
        false_pfails,
        false_pfail_times,
        partition_fails,
        node_hours: node_s / 3600.0,
        wall_s: started.elapsed().as_secs_f64(),
        sim_events: extras.sim_events,
        trace_hash: extras.trace_hash,
        datapath: extras.datapath,
        resources: extras.resources,
        hosts: extras.hosts,
        ..figures
    }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Not started yet: a joiner waiting for its time.
    Held,
    Up,
    Paused,
    Down,
}

/// A trial in progress.
struct Drive<'a> {
    world: Box<dyn World>,
    control: &'a Control,
    partial: bool,
    /// The cron period: an item's latency in rounds is its latency ÷ tick.
    tick: Duration,
    origin: Instant,
    warmup: Instant,
    status: Vec<Status>,
    /// Since when each node has been up (None: not up).
    up_since: Vec<Option<Instant>>,
    /// Microseconds each node was up within the measured window.
    up_us: Vec<u64>,
    /// PFAILs and FAILs, for the detections.
    log: Vec<Seen>,
    /// The world's clock at the last drain.
    last_drain: Instant,
    seen: Vec<Seen>,
    false_fails: u64,
    /// PFAILs of running, reachable nodes outside a heal's aftermath.
    suspicions: Suspicions,
    /// FAILs of reachable nodes within `aftermath` of a heal.
    partition_fails: u64,
    /// The last heal, if any.
    healed_at: Option<Instant>,
    /// When each node last went from paused to running: a suspicion or FAIL
    /// of it within `aftermath` of that is the pause's evidence, not false.
    resumed_at: Vec<Option<Instant>>,
    /// How long a partition's evidence can still turn into a FAIL after its
    /// heal: a silence that began before the heal becomes PFAIL within
    /// node_timeout, and failure reports (or a partial view's suspicion
    /// timeout) from before it count for report_validity.
    aftermath: Duration,
    progressed: u64,
    next_join: usize,
    /// Nodes started before the timeline.
    initial: usize,
    /// Each node's opinion of each other, and the recoveries.
    agreement: Agreement,
    /// (node, when, its holders then if views are partial) for each crash.
    crashed: Vec<(usize, Instant, Option<Vec<usize>>)>,
    paused: Vec<usize>,
    marks: Vec<Mark>,
    items: Items,
    /// FAIL items of nodes nobody crashed still allowed.
    extra_fails: usize,
    /// Picks the node each publish without a `node` runs on.
    rng: Rng,
}

impl<'a> Drive<'a> {
    fn new(
        world: Box<dyn World>,
        s: &Scenario,
        config: &Config,
        seed: u64,
        control: &'a Control,
    ) -> Self {
        let total = s.cluster.nodes + s.joins();
        let origin = world.now();
        let warmup = origin + secs(s.run.warmup_s);
        // Partial views are exactly the worlds whose `holders` is Some.
        let partial = config.partial_view();
        Drive {
            world,
            control,
            partial,
            tick: config.tick(),
            origin,
            warmup,
            status: (0..total)
                .map(|n| match n < s.cluster.nodes {
                    true => Status::Up,
                    false => Status::Held,
                })
                .collect(),
            up_since: (0..total)
                .map(|n| (n < s.cluster.nodes).then_some(origin))
                .collect(),
            up_us: vec![0; total],
            log: Vec::new(),
            last_drain: origin,
            seen: Vec::new(),
            false_fails: 0,
            suspicions: Suspicions::default(),
            partition_fails: 0,
            healed_at: None,
            resumed_at: vec![None; total],
            aftermath: aftermath(config, total),
            progressed: 0,
            next_join: s.cluster.nodes,
            initial: s.cluster.nodes,
            agreement: Agreement::new(total, partial, |n| n < s.cluster.nodes, origin),
            crashed: Vec::new(),
            paused: Vec::new(),
            marks: Vec::new(),
            items: Items::default(),
            extra_fails: EXTRA_FAIL_ITEMS,
            rng: Rng::new(seed ^ PUBLISH_SEED),
        }
    }

    /// Warm-up, timeline, window; then the figures (a [`Trial`] the caller
    /// completes). `None` if stopped.
    fn act_out(&mut self, s: &Scenario) -> Result<Option<Trial>> {
        let end = self.warmup + secs(s.run.duration_s);
        if !self.advance(self.warmup)? {
            return Ok(None);
        }
        self.world.window_starts();
        let before = self.world.upkeep(s.cluster.nodes)?;
        let mut overhead = None;
        for (at_s, i, step) in schedule(&s.timeline) {
            if !self.advance(self.warmup + secs(at_s))? {
                return Ok(None);
            }
            if overhead.is_none() {
                overhead = measure_overhead(&before, &self.world.upkeep(s.cluster.nodes)?);
            }
            self.act(i, step, &s.timeline[i])?;
        }
        if !self.advance(end)? {
            return Ok(None);
        }
        if overhead.is_none() {
            overhead = measure_overhead(&before, &self.world.upkeep(s.cluster.nodes)?);
        }
        let now = self.world.now();
        for n in 0..self.status.len() {
            self.set_status(n, self.status[n], now);
        }
        let recoveries = self.agreement.recoveries(|at| self.t(at));
        self.marks
            .extend(recoveries.iter().filter_map(Recovery::mark));
        let detections = self.detections();
        let items = self.items();
        Ok(Some(Trial {
            items,
            detections,
            recoveries,
            disagreeing_pairs: Some(self.agreement.disagreeing()),
            overhead,
            timeline: std::mem::take(&mut self.marks),
            ..Trial::default()
        }))
    }

    /// Advances the world to `until` a step at a time, reading what its
    /// nodes saw after each step; false if stopped.
    fn advance(&mut self, until: Instant) -> Result<bool> {
        let step = self.world.step();
        loop {
            if self.control.stopped() {
                return Ok(false);
            }
            let now = self.world.now();
            let done = (now - self.origin).as_secs();
            if done > self.progressed {
                self.control.progress.inc(done - self.progressed);
                self.progressed = done;
            }
            if now >= until {
                return Ok(true);
            }
            self.world.advance((now + step).min(until))?;
            self.observe()?;
            self.agreement.check();
            self.note_completions();
        }
    }

    /// Takes in what the nodes saw: false FAILs, first receptions, the log.
    fn observe(&mut self) -> Result<()> {
        let mut seen = std::mem::take(&mut self.seen);
        seen.clear();
        self.world.drain(&mut seen)?;
        // Everything drained now happened after the previous drain: a FAIL
        // nobody crashed is measured from then (events of different I/O
        // threads arrive in no strict time order).
        let read_from = std::mem::replace(&mut self.last_drain, self.world.now());
        for e in &seen {
            self.agreement.see(e);
            match e.what {
                What::Fail(x) => {
                    // A FAIL is false when the failed node was running and
                    // reachable from the node that declared it. Status and
                    // partitions change only at timeline steps, between two
                    // reads, so "now" is the status it was declared under.
                    // Soon after a heal, such a FAIL still comes from the
                    // partition's evidence (reports, silences, a FAIL passed
                    // on from the other side) and is counted apart.
                    if self.status.get(x) == Some(&Status::Up)
                        && !self.just_resumed(x, e.at)
                        && self.world.connected(e.node, x)
                        && self.world.connected(x, e.node)
                    {
                        match self.healed_at {
                            Some(h) if e.at < h + self.aftermath => self.partition_fails += 1,
                            _ => self.false_fails += 1,
                        }
                    }
                    let known = self.items.known(ItemKey::Fail(x), e.at);
                    if !known && self.extra_fails > 0 && x < self.status.len() {
                        // A FAIL of a node nobody crashed: measured too.
                        self.extra_fails -= 1;
                        self.world.track(ItemKey::Fail(x));
                        let total = self.status.len();
                        self.items.push(Tracked::new(
                            ItemKey::Fail(x),
                            Some(x),
                            None,
                            read_from.min(e.at),
                            total,
                        ));
                    }
                    self.first(ItemKey::Fail(x), e);
                    self.log.push(*e);
                }
                What::Pfail(x) => {
                    // As for FAIL below: a suspicion of a node that was up
                    // and reachable, not explained by a heal, is false.
                    let after_heal = self.healed_at.is_some_and(|h| e.at < h + self.aftermath);
                    if self.status.get(x) == Some(&Status::Up)
                        && !self.just_resumed(x, e.at)
                        && self.world.connected(e.node, x)
                        && self.world.connected(x, e.node)
                        && !after_heal
                    {
                        self.suspicions.record(self.origin, e.at, e.node, x);
                    }
                    self.log.push(*e)
                }
                // Opinions only, taken in by the agreement above.
                What::Joined(_) | What::Alive(_) | What::Forgotten(_) => {}
                What::Discovered(x) => self.first(ItemKey::Join(x), e),
                What::Update(key) => self.first(key, e),
            }
        }
        self.seen = seen;
        Ok(())
    }

    /// Records `e` as a first reception of `key` (the latest such item).
    fn first(&mut self, key: ItemKey, e: &Seen) {
        if let Some(t) = self.items.latest_mut(key, e.at) {
            t.receive(e.node, e.at);
        }
    }

    /// Reads the copies of each join and FAIL that has just reached every
    /// live node (with partial views, a FAIL every holder of the crashed
    /// node). A join in partial views concerns the holders at the end,
    /// unknown until then: its copies are read at the end.
    fn note_completions(&mut self) {
        let is_up = |n: usize| self.status.get(n) == Some(&Status::Up);
        let up = self.status.iter().filter(|&&s| s == Status::Up).count();
        for k in 0..self.items.len() {
            let t = &self.items[k];
            if t.completed.is_some() || matches!(t.key, ItemKey::Update { .. }) {
                continue;
            }
            if self.partial && matches!(t.key, ItemKey::Join(_)) {
                continue;
            }
            let live = |n: usize| is_up(n) && Some(n) != t.about;
            let all = match &t.holders {
                Some(h) => h
                    .iter()
                    .filter(|&&n| live(n))
                    .all(|&n| t.firsts[n].is_some()),
                // Every live node but its subject: not before that many have it.
                None => {
                    t.reached >= up - usize::from(t.about.is_some_and(is_up))
                        && (0..self.status.len())
                            .filter(|&n| live(n))
                            .all(|n| t.firsts[n].is_some())
                }
            };
            if all {
                let key = t.key;
                self.items[k].completed = Some(self.world.copies(key).unwrap_or_default());
                self.world.untrack(key);
            }
        }
    }

    fn t(&self, at: Instant) -> f64 {
        (at.as_micros() as f64 - self.warmup.as_micros() as f64) / 1e6
    }

    fn mark(&mut self, at: Instant, what: String) {
        let t_s = self.t(at);
        self.marks.push(Mark { t_s, what });
    }

    /// Records node `n`'s new status at `at`, accounting up-time in the window.
    /// Whether node `x` was paused until less than `aftermath` before `at`.
    fn just_resumed(&self, x: usize, at: Instant) -> bool {
        self.resumed_at
            .get(x)
            .copied()
            .flatten()
            .is_some_and(|r| at < r + self.aftermath)
    }

    fn set_status(&mut self, n: usize, status: Status, at: Instant) {
        if self.status[n] == Status::Paused && status == Status::Up {
            self.resumed_at[n] = Some(at);
        }
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
        self.agreement.set_running(n, status == Status::Up);
    }

    fn up_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.status.len()).filter(|&n| self.status[n] == Status::Up)
    }

    /// The node a joiner or a restarted node meets: the lowest running one
    /// other than itself (node 0 unless it is down).
    fn meet_for(&self, n: usize) -> usize {
        self.up_nodes().find(|&m| m != n).unwrap_or(0)
    }

    fn new_item(
        &mut self,
        key: ItemKey,
        about: Option<usize>,
        origin: Option<usize>,
        since: Instant,
    ) {
        let total = self.status.len();
        self.items
            .push(Tracked::new(key, about, origin, since, total));
    }

    /// Applies step `step` of timeline action `i` now.
    fn act(&mut self, i: usize, step: u32, a: &Action) -> Result<()> {
        // The default subject of a crash or a pause: the last node running.
        let running = |st: &[Status]| (1..st.len()).rev().find(|&n| st[n] == Status::Up);
        let now = self.world.now();
        match a.action {
            ActionKind::Join => {
                let n = self.next_join;
                self.next_join += 1;
                let meet = self.meet_for(n);
                self.new_item(ItemKey::Join(n), Some(n), None, now);
                self.world.track(ItemKey::Join(n));
                self.world
                    .start(n, meet)
                    .map_err(|e| anyhow!("join of node {n}: {e:#}"))?;
                self.set_status(n, Status::Up, now);
                self.agreement.disrupted();
                self.mark(now, format!("node {n} joins"));
            }
            ActionKind::Crash => {
                // `count` nodes, or that `fraction` of those running, at the
                // same instant (a mass failure), the last ones running; or
                // `node`.
                let up = self.status.iter().filter(|&&s| s == Status::Up).count();
                let count = match (a.count, a.fraction) {
                    (Some(c), _) => c,
                    (None, Some(f)) => ((up as f64 * f).round() as u32).clamp(1, up as u32 - 1),
                    (None, None) => 1,
                };
                // Chosen and their holders read first, then crashed at once
                // (one call to the world, however many).
                let mut chosen = Vec::new();
                while chosen.len() < count as usize {
                    let Some(n) = a.node.or_else(|| running(&self.status)) else {
                        break;
                    };
                    chosen.push((n, self.world.holders(n)));
                    self.set_status(n, Status::Down, now);
                    if a.node.is_some() {
                        break;
                    }
                }
                if chosen.is_empty() {
                    return Ok(());
                }
                let ns: Vec<usize> = chosen.iter().map(|c| c.0).collect();
                self.world.crash_all(&ns).map_err(|e| {
                    anyhow!("crash of {} node(s) from node {}: {e:#}", ns.len(), ns[0])
                })?;
                for (n, holders) in chosen {
                    self.new_item(ItemKey::Fail(n), Some(n), None, now);
                    if let Some(t) = self.items.last_mut() {
                        t.holders.clone_from(&holders);
                    }
                    self.crashed.push((n, now, holders));
                    if count == 1 {
                        self.mark(now, format!("node {n} crashes"));
                    }
                }
                let items: Vec<ItemKey> = ns.iter().map(|&n| ItemKey::Fail(n)).collect();
                self.world.track_all(&items);
                if count > 1 {
                    self.mark(now, format!("{count} nodes crash"));
                }
                self.agreement.disrupted();
            }
            ActionKind::Restart => {
                let Some(n) = a.node.or_else(|| self.crashed.last().map(|c| c.0)) else {
                    return Ok(());
                };
                let meet = self.meet_for(n);
                self.world
                    .restart(n, meet)
                    .map_err(|e| anyhow!("restart of node {n}: {e:#}"))?;
                let at = self.world.now();
                // Its new life's events are stamped from the restart on:
                // `now`, read before it, leaves none out.
                self.agreement.restart(n, now);
                self.set_status(n, Status::Up, at);
                self.agreement.opened("restart", Some(n), now);
                self.mark(now, format!("node {n} restarts"));
            }
            ActionKind::Stall => {
                let n = a.node.unwrap_or(1);
                if self.status.get(n) == Some(&Status::Up) && step % 2 == 0 {
                    self.world
                        .pause(n)
                        .map_err(|e| anyhow!("stall of node {n}: {e:#}"))?;
                    self.set_status(n, Status::Paused, now);
                    self.agreement.disrupted();
                } else if self.status.get(n) == Some(&Status::Paused) && step % 2 == 1 {
                    self.world
                        .resume(n)
                        .map_err(|e| anyhow!("stall of node {n}: {e:#}"))?;
                    self.set_status(n, Status::Up, now);
                    self.agreement.opened("resume", Some(n), now);
                }
            }
            ActionKind::Pause => {
                let Some(n) = a.node.or_else(|| running(&self.status)) else {
                    return Ok(());
                };
                self.world
                    .pause(n)
                    .map_err(|e| anyhow!("pause of node {n}: {e:#}"))?;
                self.set_status(n, Status::Paused, now);
                self.paused.push(n);
                self.agreement.disrupted();
                self.mark(now, format!("node {n} pauses"));
            }
            ActionKind::Resume => {
                let Some(n) = a.node.or_else(|| self.paused.pop()) else {
                    return Ok(());
                };
                self.world
                    .resume(n)
                    .map_err(|e| anyhow!("resume of node {n}: {e:#}"))?;
                self.set_status(n, Status::Up, now);
                self.agreement.opened("resume", Some(n), now);
                self.mark(now, format!("node {n} resumes"));
            }
            ActionKind::Partition => {
                let f = a.fraction.unwrap_or(0.5);
                let side = self
                    .world
                    .partition_side(f, self.initial, self.status.len());
                let rest = self.status.len() - side.len();
                let said = format!("partition: {} nodes | {rest}", side.len());
                self.world.shape(&Shape::Partition(side))?;
                // A new cut: its FAILs are judged by its own heal.
                self.healed_at = None;
                self.agreement.disrupted();
                self.mark(now, said);
            }
            ActionKind::Heal => {
                self.world.shape(&Shape::Heal)?;
                self.healed_at = Some(now);
                self.agreement.opened("heal", None, now);
                self.mark(now, "partition heals".into());
            }
            ActionKind::Loss => {
                let p = a.value.unwrap_or(0.0);
                self.world.shape(&Shape::Loss(p))?;
                self.agreement.disrupted();
                self.mark(now, format!("loss {:.1} %", p * 100.0));
            }
            ActionKind::Latency => {
                let ms = a.value.unwrap_or(0.0);
                self.world.shape(&Shape::Latency(ms))?;
                self.agreement.disrupted();
                self.mark(now, format!("latency {ms} ms"));
            }
            ActionKind::Publish => self.publish(i, step, a, now)?,
            ActionKind::KeyAdd | ActionKind::KeySwitch | ActionKind::KeyRetire => {
                let said = self.world.rekey(a.action)?;
                self.mark(now, said);
            }
        }
        Ok(())
    }

    fn publish(&mut self, i: usize, step: u32, a: &Action, now: Instant) -> Result<()> {
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
            self.mark(now, publish_mark(a));
        }
        let key = publish_key(i, step);
        // Counting starts before the publish: on real nodes the update can reach
        // a node on another I/O thread before a `track` issued after it is
        // applied there, and that node's copies would go uncounted. Each
        // timeline key is published once a trial, so its version is 1.
        let expected = ItemKey::Update {
            origin: n,
            key: key_id(key.as_bytes()),
            version: 1,
        };
        self.world.track(expected);
        let published = self
            .world
            .publish(n, key.as_bytes(), &publish_value(step))?;
        if !matches!(published, Published::Item { key, .. } if key == expected) {
            self.world.untrack(expected);
        }
        match published {
            Published::Item { key, at } => {
                self.new_item(key, None, Some(n), at);
                if key != expected {
                    self.world.track(key);
                }
            }
            // A store cap refused it, or the named node is not running:
            // nothing spreads, nothing to measure.
            Published::Refused(why) => {
                self.mark(now, format!("node {n} refused update {key}: {why}"))
            }
            Published::NotRunning => self.mark(
                now,
                format!("node {n} is not running: update {key} not published"),
            ),
        }
        Ok(())
    }

    /// Failure detection for each crash, from the log.
    fn detections(&mut self) -> Vec<Detection> {
        let mut out = Vec::new();
        let crashed = self.crashed.clone();
        // One pass over the log for every crash (a mass failure's 1,667
        // crashes each scanning 11 million events took minutes): each
        // crash's first PFAIL, and each node's first FAIL of it, after it.
        let mut of_node: HashMap<usize, Vec<usize>> = HashMap::new();
        for (k, c) in crashed.iter().enumerate() {
            of_node.entry(c.0).or_default().push(k);
        }
        let mut pfails: Vec<Option<Instant>> = vec![None; crashed.len()];
        let mut failss: Vec<Vec<Option<Instant>>> = vec![Vec::new(); crashed.len()];
        for e in &self.log {
            let (What::Pfail(y) | What::Fail(y)) = e.what else {
                continue;
            };
            for &k in of_node.get(&y).into_iter().flatten() {
                if e.at < crashed[k].1 {
                    continue;
                }
                if matches!(e.what, What::Pfail(_)) {
                    let p = &mut pfails[k];
                    *p = Some(p.map_or(e.at, |p| p.min(e.at)));
                    continue;
                }
                let fails = &mut failss[k];
                if fails.is_empty() {
                    fails.resize(self.status.len(), None);
                }
                if let Some(f) = fails.get_mut(e.node) {
                    if f.is_none_or(|f| e.at < f) {
                        *f = Some(e.at);
                    }
                }
            }
        }
        for (k, (x, at, holders)) in crashed.into_iter().enumerate() {
            let pfail = pfails[k];
            let mut fails = std::mem::take(&mut failss[k]);
            fails.resize(self.status.len(), None);
            let fail = fails.iter().flatten().min().copied();
            let live = audience(self.up_nodes(), holders.as_deref(), x);
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

    /// Every item at every node running at the end, in the order they were
    /// injected.
    fn items(&mut self) -> Vec<Item> {
        let mut out = Vec::new();
        for k in 0..self.items.len() {
            let key = self.items[k].key;
            // Joins and FAILs: copies until the last live node had it (later
            // ones are upkeep). Updates: every copy (rumors die out, and
            // anti-entropy sends only what a peer lacks).
            let counts = match (&self.items[k].completed, key) {
                (Some(c), ItemKey::Join(_) | ItemKey::Fail(_)) => Some(c.clone()),
                _ => self.world.copies(key),
            };
            // With partial views a join concerns the nodes that hold the
            // joiner at the end.
            let holders = match key {
                ItemKey::Join(j) => self.world.holders(j),
                _ => self.items[k].holders.clone(),
            };
            let t = &self.items[k];
            // A FAIL spreads from the first node that declared it: the item is
            // injected then, not at the crash (detection is measured apart).
            let injected = match key {
                ItemKey::Fail(_) => t.firsts.iter().flatten().min().copied().unwrap_or(t.since),
                _ => t.since,
            };
            let live = audience(
                self.up_nodes().filter(|&n| Some(n) != t.origin),
                holders.as_deref(),
                t.about.unwrap_or(usize::MAX),
            );
            let mut latencies_us = Vec::new();
            let mut receptions = Vec::new();
            for &n in &live {
                if let Some(first) = t.firsts[n] {
                    latencies_us.push(first.as_micros().saturating_sub(injected.as_micros()));
                    // A node that declared a FAIL itself (by quorum) was not
                    // reached by dissemination: it has no copies to count.
                    let copies = counts.as_ref().and_then(|c| c.get(n)).copied().unwrap_or(0);
                    if copies > 0 {
                        receptions.push(copies);
                    }
                }
            }
            // Demers' traffic m: copies delivered (every update-carrying
            // datagram, counted at its receiver) per node running, the origin
            // included; equal to messages sent per node without loss.
            let traffic = match (key, &counts) {
                (ItemKey::Update { .. }, Some(c)) => {
                    let running = live.len() + usize::from(t.origin.is_some());
                    Some(
                        c.iter().map(|&x| u64::from(x)).sum::<u64>() as f64 / running.max(1) as f64,
                    )
                }
                _ => None,
            };
            out.push(Item {
                kind: match key {
                    ItemKey::Join(_) => "join",
                    ItemKey::Fail(_) => "fail",
                    ItemKey::Update { .. } => "update",
                }
                .into(),
                about: t.about,
                traffic,
                injected_s: self.t(injected),
                live: live.len(),
                reached: latencies_us.len(),
                latencies_us,
                receptions,
                round_us: self.tick.as_micros() as u64,
            });
        }
        out.sort_by(|a, b| a.injected_s.total_cmp(&b.injected_s));
        out
    }
}

/// The key a publish step writes: one key per update, so each is its own item.
pub fn publish_key(action: usize, step: u32) -> String {
    format!("loadgen/{action}/{step}")
}

/// The value a publish step writes: 16 bytes.
fn publish_value(step: u32) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..4].copy_from_slice(&step.to_be_bytes());
    v
}

/// The timeline's note for a publish action.
fn publish_mark(a: &Action) -> String {
    let count = a.count.unwrap_or(1);
    let from = a
        .node
        .map_or("random running nodes".to_string(), |n| format!("node {n}"));
    match a.rate {
        Some(r) if count > 1 => format!("{count} updates published at {r}/s from {from}"),
        _ => format!("{count} update(s) published from {from}"),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// How long after a heal or a resume a FAIL or a suspicion of a running node
/// still comes from the disruption's evidence: the redis rules' silence plus
/// the reports' validity; swim's longest suspicion plus a probe period.
fn aftermath(config: &gossip_core::Config, nodes: usize) -> Duration {
    match config.membership() {
        gossip_core::profile::Membership::Swim => {
            let log10 = (nodes.max(10) as f64).log10();
            let longest = config.probe_interval().as_secs_f64()
                * f64::from(config.suspicion_mult() * config.suspicion_max_mult())
                * log10;
            Duration::from_secs_f64(longest) + config.probe_interval()
        }
        gossip_core::profile::Membership::Redis => config.node_timeout() + config.report_validity(),
    }
}
