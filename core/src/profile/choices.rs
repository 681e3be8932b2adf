//! The enumerated choices a [`Config`](super::Config) is made of: which
//! dissemination runs, the section rule, which PONG time is gossiped, the
//! cron's schedule, the FAIL quorum, and the named profiles.

use core::time::Duration;

use super::ConfigBuilder;

/// Which epidemic dissemination a node runs for published data (DESIGN §2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dissemination {
    /// None: `publish` is refused, data messages are dropped and counted, and
    /// the node costs nothing beyond membership (the Redis profile's default).
    #[default]
    Off,
    /// Rumor mongering only (SIR): fast, cheap, may leave residue.
    Rumor,
    /// Anti-entropy only (SI): every update reaches everyone, at the cost of a
    /// digest exchange every period.
    AntiEntropy,
    /// Rumor mongering with anti-entropy behind it to remove the residue.
    Both,
}

impl Dissemination {
    /// Whether hot rumors are spread.
    pub fn rumors(self) -> bool {
        matches!(self, Dissemination::Rumor | Dissemination::Both)
    }

    /// Whether anti-entropy exchanges run.
    pub fn anti_entropy(self) -> bool {
        matches!(self, Dissemination::AntiEntropy | Dissemination::Both)
    }

    /// Lower-case name, as used in scenarios and reports.
    pub fn name(self) -> &'static str {
        match self {
            Dissemination::Off => "off",
            Dissemination::Rumor => "rumor",
            Dissemination::AntiEntropy => "anti-entropy",
            Dissemination::Both => "both",
        }
    }

    /// Parses [`Dissemination::name`]'s output.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "off" => Dissemination::Off,
            "rumor" => Dissemination::Rumor,
            "anti-entropy" => Dissemination::AntiEntropy,
            "both" => Dissemination::Both,
            _ => return None,
        })
    }
}

/// How many other nodes a PING, PONG or MEET describes.
///
/// Redis 7 `clusterSendPing`: wanted = floor(N / 10), at least 3, at most N - 2,
/// where N counts every known node including self. `byte_budget` caps the section
/// in bytes as well (and `Config::max_datagram` always does): a section that would
/// not fit shrinks instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionPolicy {
    /// Entries wanted per thousand known nodes (Redis: 100, a tenth).
    pub per_thousand: u32,
    /// Lower bound on wanted entries (Redis: 3).
    pub min: u32,
    /// Upper bound on wanted entries, if any beyond N - 2 (Redis: none).
    pub max: Option<u32>,
    /// Upper bound on the section's encoded bytes, if any.
    pub byte_budget: Option<usize>,
}

impl SectionPolicy {
    /// Redis 7: a tenth of the nodes, at least 3, at most N - 2.
    pub const REDIS: SectionPolicy = SectionPolicy {
        per_thousand: 100,
        min: 3,
        max: None,
        byte_budget: None,
    };

    /// Entries wanted when `known` nodes (self included) are known.
    pub fn wanted(&self, known: usize) -> usize {
        let frac = (known as u64 * u64::from(self.per_thousand) / 1000) as usize;
        let mut wanted = frac.max(self.min as usize);
        if let Some(max) = self.max {
            wanted = wanted.min(max as usize);
        }
        // Redis: freshnodes = dictSize - 2 (self, and one spare for the receiver).
        wanted.min(known.saturating_sub(2))
    }
}

/// Which PONG time a node puts in its gossip entry about a peer.
///
/// Entries carry ages, one wire format for every rule, and a receiver turns an
/// age into a time with its own clock, later than the sender's by the transit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PongGossip {
    /// Redis 7 `clusterSetGossipEntry`: the PONG time held, whether first-hand or
    /// adopted from gossip, as a wall-clock second rounded down
    /// (`pong_received / 1000`), which the receiver adopts as is
    /// (`clusterProcessGossipSection`). The entry carries its age on the
    /// cluster's shared wall clock ([`crate::Node::set_epoch`]), and the
    /// receiver rounds `now - age` to its nearest wall-clock second: the
    /// sender's second exactly when both share the epoch and the transit is
    /// under half a second. Every node's adopted times then fall on the same
    /// second boundaries, so a node often learns that a peer was heard in the
    /// current second before its own ping to it is due, and skips it: the
    /// suppression that makes Redis's ping rate grow slower than N
    /// (docs/redis-fidelity.md, difference 1).
    WallSecond,
    /// The PONG time held, as its age rounded up to whole seconds: no shared
    /// clock needed. An adopted time is then always at least a second old, so
    /// with ping_interval 1 s gossip never puts off a ping.
    AgeSeconds,
    /// Only first-hand times (the last datagram from the peer itself), to the
    /// millisecond. A time can then be at most one transit late, whatever the
    /// latency, at the cost of a higher ping rate (the refresh reaches one hop).
    FirstHand,
}

impl PongGossip {
    /// Lower-case name, as in the flat view.
    pub fn name(self) -> &'static str {
        match self {
            PongGossip::WallSecond => "wall-second",
            PongGossip::AgeSeconds => "age-seconds",
            PongGossip::FirstHand => "first-hand",
        }
    }

    /// Parses [`PongGossip::name`]'s output.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            PongGossip::WallSecond,
            PongGossip::AgeSeconds,
            PongGossip::FirstHand,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }
}

/// When the cron runs again after a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CronSchedule {
    /// On a fixed grid, one tick apart whenever the run itself happened (a
    /// run more than a tick late restarts the grid from then).
    Grid,
    /// Redis 7's `ae` timer: re-armed one tick after the run
    /// (`processTimeEvents`: `when = now + 100 ms`), so every run's lateness
    /// carries over, plus a lateness drawn uniformly from [0, `slack`):
    /// `aeApiPoll` rounds each wait up to whole milliseconds, and a loop woken
    /// by messages in between polls again with a random fraction left. A
    /// period a little over a tick makes a peer pinged at one tick due ten
    /// ticks later, not eleven (docs/redis-fidelity.md, difference 2).
    AfterRun {
        /// Width of the uniform extra lateness (Redis on a busy bus: 1 ms).
        slack: Duration,
    },
}

/// How many failure reports turn a PFAIL into FAIL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quorum {
    /// More than half of the voters (members, self included): Redis's rule.
    Majority,
    /// A fixed number of reports (self's own PFAIL counts as one).
    AtLeast(u32),
}

impl Quorum {
    /// Reports needed when there are `voters` voters.
    pub fn needed(self, voters: usize) -> usize {
        match self {
            Quorum::Majority => voters / 2 + 1,
            Quorum::AtLeast(n) => n as usize,
        }
    }
}

/// Which membership protocol a node runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Membership {
    /// Redis Cluster's gossip: MEET, PING, PONG with sections, PFAIL by
    /// silence, FAIL by a quorum of reports (the redis and lean profiles).
    #[default]
    Redis,
    /// SWIM with Lifeguard's refinements: probes, indirect probes,
    /// refutable suspicion, piggybacked updates, digest anti-entropy
    /// (docs/design/swim.md).
    Swim,
}

impl Membership {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Membership::Redis => "redis",
            Membership::Swim => "swim",
        }
    }

    /// Parses [`Membership::name`]'s output.
    pub fn from_name(name: &str) -> Option<Self> {
        [Membership::Redis, Membership::Swim]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// A named starting point for a [`Config`](super::Config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// Redis 7 `cluster_legacy.c` constants and rules.
    Redis,
    /// Redis's rules over a bounded partial view, for clusters too large for
    /// every node to hold every other (see [`ConfigBuilder::lean`]).
    Lean,
    /// Every node holds every other at a per-node cost that does not grow
    /// with N: SWIM with Lifeguard (see [`ConfigBuilder::swim`]).
    Swim,
}

impl Profile {
    /// Every profile, in the order names are listed.
    pub const ALL: [Profile; 3] = [Profile::Redis, Profile::Lean, Profile::Swim];

    /// The profile's parameters, to adjust before `build()`.
    pub fn builder(self) -> ConfigBuilder {
        match self {
            Profile::Redis => ConfigBuilder::redis(),
            Profile::Lean => ConfigBuilder::lean(),
            Profile::Swim => ConfigBuilder::swim(),
        }
    }

    /// Lower-case name, as used on command lines and in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Redis => "redis",
            Profile::Lean => "lean",
            Profile::Swim => "swim",
        }
    }

    /// Parses [`Profile::name`]'s output.
    pub fn from_name(name: &str) -> Option<Self> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }
}
