//! What each world takes and refuses (`WorldKind::check`), the redis
//! world's own settings, and the epidemic-only model a scenario describes.

use crate::population::Scenario as Model;
use anyhow::{anyhow, bail, Result};
use gossip_core::epidemic::rumor::StopRule;
use gossip_core::epidemic::Direction;
use gossip_core::Profile;
use serde::{Deserialize, Serialize};

use super::{ActionKind, Epidemic, Network, Scenario, WorldKind};

impl WorldKind {
    /// Every world a membership scenario runs in.
    pub const ALL: [WorldKind; 4] = [
        WorldKind::Sim,
        WorldKind::Udp,
        WorldKind::Redis,
        WorldKind::Hosts,
    ];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            WorldKind::Sim => "sim",
            WorldKind::Udp => "udp",
            WorldKind::Redis => "redis",
            WorldKind::Hosts => "hosts",
        }
    }

    /// The world of that name.
    ///
    /// # Errors
    /// One line listing the worlds.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .ok_or_else(|| anyhow!("unknown world {name:?} (known: sim, udp, redis, hosts)"))
    }

    /// Why this world cannot do `action`, if it cannot.
    fn refuses(self, action: ActionKind) -> Option<&'static str> {
        use ActionKind::{Heal, KeyAdd, KeyRetire, KeySwitch, Latency, Loss, Partition, Publish};
        match (self, action) {
            (WorldKind::Sim | WorldKind::Redis, KeyAdd | KeySwitch | KeyRetire) => {
                Some("cluster keys run on real nodes: the udp or hosts world")
            }
            (WorldKind::Sim | WorldKind::Hosts, _) => None,
            (WorldKind::Udp | WorldKind::Redis, Partition | Heal | Loss | Latency) => {
                Some("loopback cannot shape traffic honestly; use --world sim")
            }
            (WorldKind::Redis, Publish) => {
                Some("Redis Cluster's bus carries no published updates of ours")
            }
            _ => None,
        }
    }

    /// Refuses, in one line naming the field or action, what this world
    /// cannot do honestly.
    ///
    /// # Errors
    /// The first setting or timeline action the world cannot apply.
    pub fn check(self, s: &Scenario) -> Result<()> {
        let w = self.name();
        if !matches!(self, WorldKind::Udp | WorldKind::Hosts) && (s.auth.key || s.auth.join_cookies)
        {
            bail!("auth: cluster keys and join cookies run on real nodes (the udp or hosts world)");
        }
        if self == WorldKind::Hosts {
            if s.network.duplicate > 0.0 {
                bail!("network.duplicate: the hosts world drops datagrams on real paths but does not duplicate them; use --world sim");
            }
        } else if self != WorldKind::Sim {
            let net = &s.network;
            let ideal = Network::default();
            if net.loss > 0.0 || net.duplicate > 0.0 {
                bail!("network.loss/duplicate: the {w} world runs on loopback and cannot drop or duplicate datagrams honestly; use --world sim");
            }
            if net.latency_ms != ideal.latency_ms || net.jitter_ms != ideal.jitter_ms {
                bail!("network.latency_ms/jitter_ms: the {w} world has loopback's latency and cannot add any; use --world sim");
            }
        }
        for (i, a) in s.timeline.iter().enumerate() {
            if let Some(why) = self.refuses(a.action) {
                bail!(
                    "timeline[{i}]: action {:?} is not supported in the {w} world ({why})",
                    a.action.name()
                );
            }
        }
        let ramp = s.cluster.ramp_s;
        match self {
            WorldKind::Udp | WorldKind::Hosts
                if !(ramp.is_finite()
                    && ramp >= 0.0
                    && ramp < s.run.warmup_s.max(f64::MIN_POSITIVE)) =>
            {
                bail!("cluster.ramp_s: must be at least 0 and end within the warm-up (run.warmup_s = {})", s.run.warmup_s);
            }
            WorldKind::Sim | WorldKind::Redis if ramp != 0.0 => {
                bail!("cluster.ramp_s: the {w} world starts every node at once; use --world udp or hosts");
            }
            _ => {}
        }
        match self {
            WorldKind::Sim => {}
            WorldKind::Udp => {
                let slack = s.cluster.timer_slack_ms;
                if !(slack.is_finite() && (0.0..=10.0).contains(&slack)) {
                    bail!("cluster.timer_slack_ms: must be between 0 and 10 ms (a tick later than 10 ms counts as late)");
                }
                if s.cluster.nodes + s.joins() > 20_000 {
                    bail!("cluster.nodes: the udp world runs at most 20,000 nodes on one machine");
                }
            }
            WorldKind::Redis => s.redis.check(s)?,
            WorldKind::Hosts => s.hosts.check(s)?,
        }
        Ok(())
    }
}

impl Epidemic {
    /// The core's model of this table for `nodes` nodes.
    ///
    /// # Errors
    /// One line naming the bad field.
    pub fn model(&self, nodes: usize) -> Result<Model> {
        let direction = Direction::from_name(&self.mode).ok_or_else(|| {
            anyhow!(
                "epidemic.mode: {:?} is not push, pull or push-pull",
                self.mode
            )
        })?;
        let n = u32::try_from(nodes)
            .map_err(|_| anyhow!("cluster.nodes: too many for the epidemic model"))?;
        let model = match self.protocol.as_str() {
            "rumor" => {
                let k = u8::try_from(self.k)
                    .ok()
                    .filter(|&k| (1..=StopRule::MAX_K).contains(&k))
                    .ok_or_else(|| {
                        anyhow!("epidemic.k: must be between 1 and {}", StopRule::MAX_K)
                    })?;
                let stop = match self.stop.as_str() {
                    "feedback-counter" => StopRule::feedback_counter(k),
                    "feedback-coin" => StopRule::feedback_coin(k),
                    "blind-counter" => StopRule::blind_counter(k),
                    "blind-coin" => StopRule::blind_coin(k),
                    other => bail!(
                        "epidemic.stop: {other:?} is not feedback-counter, feedback-coin, blind-counter or blind-coin"
                    ),
                };
                Model::rumor(n, direction, stop).with_fanout(self.fanout)
            }
            "anti-entropy" => Model::anti_entropy(n, direction),
            other => bail!("epidemic.protocol: {other:?} is not rumor or anti-entropy"),
        };
        model.validate().map_err(|e| anyhow!("{e}"))?;
        Ok(model)
    }
}

/// The redis world's servers (`[redis]`): which binary, which ports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisParams {
    /// The server binary: a path, or empty for `redis-server` on PATH (else
    /// `valkey-server`).
    pub server: String,
    /// First client port of the range the servers take (each also listens
    /// on its port + 10000 for the cluster bus).
    pub port_first: u16,
    /// Last client port of the range.
    pub port_last: u16,
}

impl Default for RedisParams {
    fn default() -> Self {
        RedisParams {
            server: String::new(),
            port_first: 21_000,
            port_last: 21_999,
        }
    }
}

impl RedisParams {
    /// Refuses what a Redis Cluster cannot run as asked.
    fn check(&self, s: &Scenario) -> Result<()> {
        if self.port_first == 0 || self.port_first > self.port_last || self.port_last > 55_535 {
            bail!("redis.port_first/port_last: need a range within 1..=55535 (each server's bus listens on its port + 10000)");
        }
        let need = s.cluster.nodes + s.joins();
        let have = usize::from(self.port_last - self.port_first) + 1;
        if have < need {
            bail!("redis.port_first/port_last: {need} servers need {need} ports; the range has {have}");
        }
        if need > 1_000 {
            bail!("cluster.nodes: the redis world runs at most 1,000 servers on one machine");
        }
        // Redis's rules are fixed: node_timeout is its only setting here.
        let ours = s.profile.config()?;
        let redis = Profile::Redis
            .builder()
            .node_timeout(ours.node_timeout())
            .build()?;
        let theirs = redis.flat();
        if let Some(((k, _), _)) = ours.flat().iter().zip(&theirs).find(|(a, b)| a != b) {
            bail!("profile.{k}: Redis Cluster's rules are its own; the redis world takes only profile.node_timeout_ms");
        }
        Ok(())
    }
}

/// The hosts world's agents (`[hosts]`, or `--hosts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostsParams {
    /// The agents: `HOST:PORT`, `unix:PATH`, or `lab` / `lab:NAME` for every
    /// host of the network-namespace lab of that name.
    pub agents: Vec<String>,
    /// The file holding the agents' shared token (the lab's own token when
    /// the agents are a lab's).
    pub token_file: String,
    /// Without a request from us for this long, an agent stops our nodes,
    /// ms: a loadgen that vanishes leaves no cluster running.
    pub lease_ms: u64,
}

impl Default for HostsParams {
    fn default() -> Self {
        HostsParams {
            agents: Vec::new(),
            token_file: String::new(),
            lease_ms: 10_000,
        }
    }
}

impl HostsParams {
    /// Refuses what the agents cannot be asked.
    fn check(&self, s: &Scenario) -> Result<()> {
        if self.agents.is_empty() {
            bail!(
                "hosts.agents: the hosts world needs agents: --hosts HOST:PORT,... or --hosts lab"
            );
        }
        if !(1_000..=600_000).contains(&self.lease_ms) {
            bail!("hosts.lease_ms: must be between 1,000 and 600,000 ms");
        }
        if s.cluster.nodes == 0 {
            bail!("cluster.nodes: the hosts world needs at least one node");
        }
        Ok(())
    }
}
