//! Scenarios: what cluster to run, in which world, and what happens to it.
//!
//! A scenario is a TOML file (built-ins are embedded; users pass a path). Every
//! field can be overridden from the command line with `--set a.b=value`, which
//! edits the parsed TOML before it is checked, so a bad override gets the same
//! one-line error as a bad file.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

mod worlds;

pub use gossip_node::profile::ProfileParams;
pub use worlds::{HostsParams, RedisParams};

/// The scenarios shipped inside the binary: name and TOML text.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("demo", include_str!("../../scenarios/demo.toml")),
    ("steady", include_str!("../../scenarios/steady.toml")),
    ("join", include_str!("../../scenarios/join.toml")),
    ("crash", include_str!("../../scenarios/crash.toml")),
    ("rumor", include_str!("../../scenarios/rumor.toml")),
    (
        "anti-entropy",
        include_str!("../../scenarios/anti-entropy.toml"),
    ),
    ("partition", include_str!("../../scenarios/partition.toml")),
    (
        "mass-failure",
        include_str!("../../scenarios/mass-failure.toml"),
    ),
    ("slow-node", include_str!("../../scenarios/slow-node.toml")),
    (
        "section-cost",
        include_str!("../../scenarios/section-cost.toml"),
    ),
    ("lean", include_str!("../../scenarios/lean.toml")),
    ("racks", include_str!("../../scenarios/racks.toml")),
    (
        "key-rotation",
        include_str!("../../scenarios/key-rotation.toml"),
    ),
];

/// A whole scenario, every field defaulted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Short name, used in run ids.
    pub name: String,
    /// One sentence: what it measures.
    pub description: String,
    /// The cluster.
    pub cluster: Cluster,
    /// Protocol parameters.
    pub profile: ProfileParams,
    /// The simulated network (sim world only).
    pub network: Network,
    /// How long and how often.
    pub run: Run,
    /// What happens, relative to the end of the warm-up.
    pub timeline: Vec<Action>,
    /// Epidemic-only runs (rumor mongering, anti-entropy) instead of membership.
    pub epidemic: Option<Epidemic>,
    /// The redis world's servers.
    pub redis: RedisParams,
    /// The hosts world's agents.
    pub hosts: HostsParams,
    /// Cluster keys and proven joins (udp world).
    pub auth: Auth,
}

/// Cluster keys and proven joins (issue 14). The key itself is drawn at
/// random for each run and appears nowhere: a key is a secret, not a
/// parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Every datagram carries an authentication tag (33 bytes).
    pub key: bool,
    /// Bodies are encrypted too (needs `key`).
    pub sealed: bool,
    /// A MEET is answered with a stateless cookie; only a PING returning it
    /// admits the sender.
    pub join_cookies: bool,
}

/// Which world runs the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorldKind {
    /// `gossip_core::sim`: virtual time, deterministic.
    Sim,
    /// Real UDP nodes on loopback (`gossip-node`).
    Udp,
    /// A real Redis (or Valkey) Cluster on loopback, the system under test.
    Redis,
    /// Real UDP nodes on agents (`gossip-node agent`) on many hosts, or on the
    /// network-namespace lab's hosts.
    Hosts,
}

/// The cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    /// Nodes at the start (joins add more).
    pub nodes: usize,
    /// The world.
    pub world: WorldKind,
    /// UDP world: `auto`, `uring` or `mmsg`.
    pub datapath: String,
    /// UDP world: I/O threads (0: one per core).
    pub threads: usize,
    /// UDP world: nodes per socket (1: a socket each; more: shared-socket
    /// mode, nodes told apart by the header's slot).
    pub slots: usize,
    /// UDP world: UDP GSO/GRO offload (either datapath; pays with slots > 1).
    pub offload: bool,
    /// UDP world: how long past its earliest deadline an I/O thread may
    /// sleep, ms (0 to 10; default 2 as `gossip-node --timer-slack`), so that
    /// the ticks of many nodes fire in one wakeup.
    pub timer_slack_ms: f64,
    /// Udp and hosts worlds: start the starting nodes over this many seconds
    /// (node i at i/n of it) instead of all at once, as a real cluster's
    /// nodes join over time; 0: all at once. Must end within the warm-up.
    pub ramp_s: f64,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            nodes: 100,
            world: WorldKind::Sim,
            datapath: "auto".into(),
            threads: 0,
            slots: 1,
            offload: false,
            timer_slack_ms: 2.0,
            ramp_s: 0.0,
        }
    }
}

/// The simulated network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// One-way latency, ms (the low end when jitter is set).
    pub latency_ms: f64,
    /// Uniform extra latency, ms.
    pub jitter_ms: f64,
    /// Loss probability per datagram.
    pub loss: f64,
    /// Duplication probability per datagram.
    pub duplicate: f64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_ms: 0.2,
            jitter_ms: 0.3,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// Duration and repetition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Run {
    /// Time for the cluster to form and settle before measuring, s.
    pub warmup_s: f64,
    /// The measured window, s.
    pub duration_s: f64,
    /// Independent trials (seeds derived from `seed`).
    pub trials: usize,
    /// Base seed.
    pub seed: u64,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            warmup_s: 20.0,
            duration_s: 30.0,
            trials: 1,
            seed: 1,
        }
    }
}

/// A change on the timeline, at `at_s` seconds after the warm-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Seconds after the warm-up.
    pub at_s: f64,
    /// What happens.
    pub action: ActionKind,
    /// The node it happens to (default: the last node started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<usize>,
    /// Partition: fraction of the nodes on the first side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// Loss probability or latency in ms, for `loss` and `latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Publish: updates to publish (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Publish: updates per second from `at_s` (default: all at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// A stall's shortest and longest length, s, and the gaps between stalls.
const STALL_S: (f64, f64) = (0.5, 2.0);
const STALL_GAP_S: (f64, f64) = (1.0, 5.0);

impl Action {
    /// The times, s after the warm-up, of the steps this action takes: one,
    /// or one per update for `publish` (`count` of them, `rate` a second).
    pub fn steps(&self) -> Vec<f64> {
        match self.action {
            ActionKind::Publish => {
                let count = self.count.unwrap_or(1);
                (0..count)
                    .map(|j| match self.rate {
                        Some(r) if r > 0.0 => self.at_s + f64::from(j) / r,
                        _ => self.at_s,
                    })
                    .collect()
            }
            ActionKind::Stall => {
                // Stalls of 0.5-2 s with gaps of 1-5 s, drawn from the action
                // itself so that every trial (and every world) stalls alike:
                // pause, resume, pause, resume, ...
                let mut state = self.at_s.to_bits() ^ u64::from(self.count.unwrap_or(10));
                let mut draw = |(lo, hi): (f64, f64)| {
                    let u = (gossip_core::rng::splitmix64(&mut state) >> 11) as f64
                        / (1u64 << 53) as f64;
                    lo + (hi - lo) * u
                };
                let mut t = self.at_s;
                let mut out = Vec::new();
                for _ in 0..self.count.unwrap_or(10) {
                    let len = draw(STALL_S);
                    out.push(t);
                    out.push(t + len);
                    t += len + draw(STALL_GAP_S);
                }
                out
            }
            _ => vec![self.at_s],
        }
    }
}

/// The timeline as steps in time order: (time s after the warm-up, action
/// index, step within the action). Ties keep the file's order.
pub fn schedule(timeline: &[Action]) -> Vec<(f64, usize, u32)> {
    let mut out: Vec<(f64, usize, u32)> = timeline
        .iter()
        .enumerate()
        .flat_map(|(i, a)| {
            a.steps()
                .into_iter()
                .enumerate()
                .map(move |(j, t)| (t, i, j as u32))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    out
}

/// Timeline verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// A new node meets node 0.
    Join,
    /// A node stops, losing its state.
    Crash,
    /// A crashed node returns with the next incarnation and meets node 0.
    Restart,
    /// A node stops running but keeps its state.
    Pause,
    /// A paused node runs again.
    Resume,
    /// The first `fraction` of the starting nodes (with every joining node,
    /// since joiners meet node 0) and the rest stop hearing each other.
    Partition,
    /// The partition ends.
    Heal,
    /// Loss probability becomes `value`.
    Loss,
    /// One-way latency becomes `value` ms.
    Latency,
    /// `count` updates (default 1), `rate` a second (default all at once),
    /// each published by `node` or by a random running node; needs
    /// `profile.dissemination` on.
    Publish,
    /// `node` (default 1) stalls `count` times (default 10), each for 0.5-2 s
    /// with 1-5 s between, from `at_s`: paused and resumed, as an overloaded
    /// host or a long GC pause stalls a process.
    Stall,
    /// Key rotation, step 1: every node accepts a new cluster key.
    KeyAdd,
    /// Step 2: every node sends with the newest key.
    KeySwitch,
    /// Step 3: every node retires the previous key.
    KeyRetire,
}

impl ActionKind {
    /// Its name in a scenario file.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Join => "join",
            ActionKind::Crash => "crash",
            ActionKind::Restart => "restart",
            ActionKind::Pause => "pause",
            ActionKind::Resume => "resume",
            ActionKind::Partition => "partition",
            ActionKind::Heal => "heal",
            ActionKind::Loss => "loss",
            ActionKind::Latency => "latency",
            ActionKind::Publish => "publish",
            ActionKind::Stall => "stall",
            ActionKind::KeyAdd => "key-add",
            ActionKind::KeySwitch => "key-switch",
            ActionKind::KeyRetire => "key-retire",
        }
    }
}

/// Epidemic-only runs (DESIGN §2.2): one update, uniform random peers, lockstep rounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Epidemic {
    /// `rumor` or `anti-entropy`.
    pub protocol: String,
    /// `push`, `pull` or `push-pull`.
    pub mode: String,
    /// Rumor stop rule: `feedback-counter`, `feedback-coin`, `blind-counter`, `blind-coin`.
    pub stop: String,
    /// The stop rule's k.
    pub k: u32,
    /// Peers contacted per round.
    pub fanout: u32,
}

impl Default for Epidemic {
    fn default() -> Self {
        Epidemic {
            protocol: "rumor".into(),
            mode: "push".into(),
            stop: "feedback-counter".into(),
            k: 1,
            fanout: 1,
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "custom".into(),
            description: String::new(),
            cluster: Cluster::default(),
            profile: ProfileParams::default(),
            network: Network::default(),
            run: Run::default(),
            timeline: Vec::new(),
            epidemic: None,
            redis: RedisParams::default(),
            hosts: HostsParams::default(),
            auth: Auth::default(),
        }
    }
}

impl Scenario {
    /// Loads a built-in scenario by name, or a TOML file by path, then applies
    /// `overrides` (`a.b=value`, value parsed as TOML, else taken as a string).
    ///
    /// # Errors
    /// One line naming the file, field or override at fault.
    pub fn load(name_or_path: &str, overrides: &[String]) -> Result<Scenario> {
        let (origin, mut s) = Self::parse(name_or_path, overrides)?;
        s.validate().with_context(|| origin.clone())?;
        if s.epidemic.is_none() {
            // A report records every parameter, not only those set.
            s.profile = s.profile.resolved()?;
        }
        Ok(s)
    }

    /// [`Scenario::load`] without the validation, and where it came from: what
    /// a scenario says before the command line has said everything (which
    /// world, which agents).
    ///
    /// # Errors
    /// A scenario that does not parse, or a bad override.
    pub fn parse(name_or_path: &str, overrides: &[String]) -> Result<(String, Scenario)> {
        let (origin, text) = match BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, t)) => (format!("built-in scenario {n}"), (*t).to_string()),
            None => {
                let text = std::fs::read_to_string(name_or_path).map_err(|e| {
                    anyhow!(
                        "scenario {name_or_path:?}: not a built-in ({}) and not a readable file: {e}",
                        names().join(", ")
                    )
                })?;
                (name_or_path.to_string(), text)
            }
        };
        let mut value: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow!("{origin}: {}", one_line(&e.to_string())))?;
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        let s: Scenario = Scenario::deserialize(toml::Value::Table(value))
            .map_err(|e| anyhow!("{origin}: {}", one_line(&e.to_string())))?;
        for (old, new) in &s.profile.renamed {
            eprintln!("gossip-loadgen: warning: profile.{old} is now profile.{new} (the old name goes in the next release)");
        }
        Ok((origin, s))
    }

    /// The same scenario without its cluster key: `auth.key` and
    /// `auth.sealed` off and the key rotation steps dropped from the
    /// timeline (nothing else changes: the same updates, crashes, faults).
    /// What `compare --without-key` runs beside it, for the key's cost.
    ///
    /// # Errors
    /// The scenario has no key to drop.
    pub fn without_key(&self) -> Result<Scenario> {
        if !self.auth.key {
            bail!(
                "--without-key: scenario {} runs without a cluster key already (auth.key = false)",
                self.name
            );
        }
        let mut s = self.clone();
        s.auth.key = false;
        s.auth.sealed = false;
        s.timeline.retain(|a| {
            !matches!(
                a.action,
                ActionKind::KeyAdd | ActionKind::KeySwitch | ActionKind::KeyRetire
            )
        });
        s.validate()?;
        Ok(s)
    }

    /// Checks everything a run relies on; refuses rather than shrinks.
    ///
    /// # Errors
    /// One line naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.cluster.nodes < 2 {
            bail!("cluster.nodes: must be at least 2");
        }
        if self.cluster.nodes > 1_000_000 {
            bail!("cluster.nodes: at most 1,000,000");
        }
        if self.run.trials == 0 {
            bail!("run.trials: must be at least 1");
        }
        for (name, v) in [
            ("run.warmup_s", self.run.warmup_s),
            ("run.duration_s", self.run.duration_s),
        ] {
            if !(0.0..=86_400.0).contains(&v) {
                bail!("{name}: must be between 0 and 86400 seconds");
            }
        }
        for (name, p) in [
            ("network.loss", self.network.loss),
            ("network.duplicate", self.network.duplicate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bail!("{name}: must be a probability between 0 and 1");
            }
        }
        if self.network.latency_ms < 0.0 || self.network.jitter_ms < 0.0 {
            bail!("network.latency_ms: latencies must not be negative");
        }
        if let Some(e) = &self.epidemic {
            e.model(self.cluster.nodes)?;
            return Ok(());
        }
        self.profile.config()?;
        if self.cluster.nodes > 100_000 {
            bail!("cluster.nodes: membership runs take at most 100,000 nodes");
        }
        for (i, a) in self.timeline.iter().enumerate() {
            if !(0.0..=self.run.duration_s).contains(&a.at_s) {
                bail!(
                    "timeline[{i}].at_s: must fall inside the measured window (0..={})",
                    self.run.duration_s
                );
            }
            if let Some(n) = a.node {
                if n >= self.cluster.nodes + self.joins() {
                    bail!("timeline[{i}].node: no node {n}");
                }
            }
            match a.action {
                ActionKind::Partition if !a.fraction.is_some_and(|f| f > 0.0 && f < 1.0) => {
                    bail!("timeline[{i}].fraction: a partition needs a fraction between 0 and 1")
                }
                ActionKind::Loss if !a.value.is_some_and(|v| (0.0..=1.0).contains(&v)) => {
                    bail!("timeline[{i}].value: loss needs a probability between 0 and 1")
                }
                ActionKind::Latency if !a.value.is_some_and(|v| v >= 0.0) => {
                    bail!("timeline[{i}].value: latency needs milliseconds >= 0")
                }
                ActionKind::Publish if !self.profile.disseminates() => {
                    bail!("timeline[{i}]: publish needs profile.dissemination on (rumor, anti-entropy or both); it is off")
                }
                ActionKind::Publish if a.count.is_some_and(|c| !(1..=100_000).contains(&c)) => {
                    bail!("timeline[{i}].count: must be between 1 and 100000")
                }
                ActionKind::Publish if a.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) => {
                    bail!("timeline[{i}].rate: must be above zero updates per second")
                }
                ActionKind::Publish
                    if a.steps().last().is_some_and(|&t| t > self.run.duration_s) =>
                {
                    bail!(
                        "timeline[{i}].rate: the last update would fall after the measured window ({} s)",
                        self.run.duration_s
                    )
                }
                ActionKind::Crash
                    if [a.count.is_some(), a.node.is_some(), a.fraction.is_some()]
                        .iter()
                        .filter(|&&x| x)
                        .count()
                        > 1 =>
                {
                    bail!("timeline[{i}]: a crash takes a node, a count or a fraction, one of them")
                }
                ActionKind::Crash if a.fraction.is_some_and(|f| !(f > 0.0 && f < 1.0)) => {
                    bail!("timeline[{i}].fraction: a crash's fraction is between 0 and 1")
                }
                ActionKind::Crash
                    if a.count
                        .is_some_and(|c| c == 0 || c as usize >= self.cluster.nodes) =>
                {
                    bail!(
                        "timeline[{i}].count: a crash of between 1 and {} nodes (one must survive)",
                        self.cluster.nodes - 1
                    )
                }
                ActionKind::Crash if a.rate.is_some() => {
                    bail!("timeline[{i}].rate: only a publish takes it")
                }
                ActionKind::Crash => {}
                ActionKind::Stall
                    if a.rate.is_some() || a.count.is_some_and(|c| !(1..=10_000).contains(&c)) =>
                {
                    bail!("timeline[{i}].count: a stall takes a count of stalls between 1 and 10000 (no rate)")
                }
                ActionKind::Stall if a.steps().last().is_some_and(|&t| t > self.run.duration_s) => {
                    bail!(
                        "timeline[{i}].count: the last stall would end after the measured window ({} s)",
                        self.run.duration_s
                    )
                }
                ActionKind::Stall => {}
                ActionKind::KeyAdd | ActionKind::KeySwitch | ActionKind::KeyRetire
                    if !self.auth.key =>
                {
                    bail!("timeline[{i}]: {} needs auth.key = true", a.action.name())
                }
                _ if a.action != ActionKind::Publish && (a.count.is_some() || a.rate.is_some()) => {
                    bail!(
                        "timeline[{i}].count/rate: only a publish (and count, a crash) takes them"
                    )
                }
                _ => {}
            }
        }
        match self.cluster.datapath.as_str() {
            "auto" | "uring" | "mmsg" => {}
            other => bail!("cluster.datapath: {other:?} is not auto, uring or mmsg"),
        }
        if !(1..=65_536).contains(&self.cluster.slots) {
            bail!("cluster.slots: must be between 1 and 65536 nodes per socket");
        }
        if self.auth.sealed && !self.auth.key {
            bail!("auth.sealed: sealing needs auth.key = true");
        }
        self.cluster.world.check(self)?;
        Ok(())
    }

    /// Nodes the timeline adds.
    pub fn joins(&self) -> usize {
        self.timeline
            .iter()
            .filter(|a| a.action == ActionKind::Join)
            .count()
    }
}

/// Names of the built-in scenarios.
pub fn names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(n, _)| *n).collect()
}

/// Applies one `a.b.c=value` override to a parsed scenario.
fn apply_override(root: &mut toml::Table, o: &str) -> Result<()> {
    let (path, raw) = o
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {o:?}: expected key=value, e.g. cluster.nodes=1000"))?;
    let value = parse_value(raw.trim());
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("--set {o:?}: empty key in {path:?}");
    }
    let (last, parents) = keys.split_last().expect("split yields at least one key"); // invariant: non-empty
    let mut table = root;
    for k in parents {
        let entry = table
            .entry(k.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("--set {o:?}: {k} is not a table"))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// A TOML value from its text, or the text as a string (so `mode=push` works).
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_loads_with_todays_parameter_names() {
        for name in names() {
            Scenario::load(name, &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let (_, s) = Scenario::parse(name, &[]).unwrap();
            assert!(
                s.profile.renamed.is_empty(),
                "{name}: {:?}",
                s.profile.renamed
            );
        }
    }

    #[test]
    fn cluster_keys_run_on_real_nodes_and_key_steps_need_a_key() {
        let load = |o: &[&str]| {
            let o: Vec<String> = o.iter().map(|x| x.to_string()).collect();
            Scenario::load("key-rotation", &o).map_err(|e| format!("{e:#}"))
        };
        let s = load(&[]).unwrap();
        assert!(s.auth.key);
        let e = load(&["auth.key=false"]).unwrap_err();
        assert!(e.contains("key-add needs auth.key = true"), "{e}");
        let e = load(&["cluster.world=sim"]).unwrap_err();
        assert!(
            e.contains("auth: cluster keys and join cookies run on real nodes"),
            "{e}"
        );
        let e = load(&["auth.sealed=true", "auth.key=false", "timeline=[]"]).unwrap_err();
        assert!(e.contains("auth.sealed"), "{e}");
    }

    #[test]
    fn overrides_reach_nested_fields_and_typos_are_refused() {
        let s = Scenario::load(
            "crash",
            &[
                "cluster.nodes=7".into(),
                "profile.node_timeout_ms=2000".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.cluster.nodes, 7);
        assert_eq!(s.profile.get("node_timeout_ms").unwrap(), "2000");
        // Resolved: the report records every parameter, the profile's too.
        assert_eq!(s.profile.get("random_ping_sample").unwrap(), "5");
        assert_eq!(s.profile.set.len(), gossip_core::profile::params().count());
        let e = Scenario::load("crash", &["cluster.nodez=7".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("nodez"), "{e:#}");
        let e = Scenario::load("crash", &["cluster.nodes=1".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("cluster.nodes"), "{e:#}");
    }

    #[test]
    fn a_string_override_needs_no_quotes() {
        let s = Scenario::load("rumor", &["epidemic.stop=blind-coin".into()]).unwrap();
        assert_eq!(s.epidemic.unwrap().stop, "blind-coin");
    }

    #[test]
    fn a_bad_profile_value_names_the_core_field() {
        let e = Scenario::load("steady", &["profile.max_datagram=10".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("max_datagram"), "{e:#}");
    }

    #[test]
    fn a_ramp_is_for_real_worlds_and_ends_within_the_warm_up() {
        let load = |o: &[&str]| {
            let o: Vec<String> = o.iter().map(|x| x.to_string()).collect();
            Scenario::load("crash", &o)
                .and_then(|s| s.cluster.world.check(&s))
                .map_err(|e| format!("{e:#}"))
        };
        assert!(load(&["cluster.world=udp", "cluster.ramp_s=10"]).is_ok());
        let e = load(&["cluster.world=udp", "cluster.ramp_s=30"]).unwrap_err();
        assert!(e.contains("cluster.ramp_s") && e.contains("warm-up"), "{e}");
        let e = load(&["cluster.ramp_s=5"]).unwrap_err();
        assert!(e.contains("sim world starts every node at once"), "{e}");
        let e = load(&[
            "cluster.world=hosts",
            "hosts.agents=[\"lab\"]",
            "cluster.ramp_s=-1",
        ])
        .unwrap_err();
        assert!(e.contains("cluster.ramp_s"), "{e}");
    }
}
