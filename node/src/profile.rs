//! Protocol parameters as people write them: a scenario's `[profile]`
//! section, and what a loadgen sends an agent to start nodes with. One flat
//! set of named fields (zero meaning "the profile's value" where noted),
//! turned into a validated core [`Config`] by [`ProfileParams::config`].

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use gossip_core::epidemic::rumor::{RumorConfig, StopRule};
use gossip_core::epidemic::Direction;
use gossip_core::{Config, Dissemination, Profile, Quorum, SectionPolicy};
use serde::{Deserialize, Serialize};

/// Protocol parameters; zero means "the profile's value" where noted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileParams {
    /// Profile name: `redis` or `lean`.
    pub name: String,
    /// Silence before PFAIL, ms.
    pub node_timeout_ms: u64,
    /// Cron period, ms.
    pub tick_ms: u64,
    /// Silence before a ping, ms (0: node_timeout / 2).
    pub ping_interval_ms: u64,
    /// Ticks between random-sample pings.
    pub random_ping_every: u32,
    /// Peers sampled for the random ping.
    pub sample: u32,
    /// Peers pinged per random-sample round (fan-out).
    pub fanout: u32,
    /// Section entries per thousand known nodes.
    pub section_per_thousand: u32,
    /// Section minimum entries.
    pub section_min: u32,
    /// Section maximum entries (0: none).
    pub section_max: u32,
    /// Section byte budget (0: none).
    pub section_bytes: usize,
    /// FAIL quorum: reports needed (0: the profile's, a majority for redis,
    /// 2 for lean).
    pub quorum: u32,
    /// Peers a node holds at most (0: the profile's; lean's partial view
    /// is 32, redis holds every node).
    pub view: usize,
    /// Largest datagram, bytes.
    pub max_datagram: usize,
    /// Epidemic dissemination of published updates (DESIGN §2.2): `off`,
    /// `rumor`, `anti-entropy` or `both` (rumors with anti-entropy behind).
    pub dissemination: String,
    /// Rumor direction: `push`, `pull` or `push-pull`.
    pub rumor_mode: String,
    /// Rumor stop rule: `feedback-counter`, `feedback-coin`, `blind-counter`, `blind-coin`.
    pub rumor_stop: String,
    /// The stop rule's k.
    pub rumor_k: u32,
    /// Peers contacted per rumor round.
    pub rumor_fanout: u32,
    /// Time between rumor rounds, ms.
    pub rumor_period_ms: u64,
    /// Anti-entropy direction: `push`, `pull` or `push-pull`.
    pub anti_entropy_mode: String,
    /// Time between anti-entropy exchanges, ms.
    pub anti_entropy_period_ms: u64,
}

impl Default for ProfileParams {
    fn default() -> Self {
        let c = Config::default();
        ProfileParams {
            name: "redis".into(),
            node_timeout_ms: c.node_timeout().as_millis() as u64,
            tick_ms: c.tick().as_millis() as u64,
            ping_interval_ms: 0,
            random_ping_every: c.random_ping_every(),
            sample: c.random_ping_sample(),
            fanout: c.random_ping_fanout(),
            section_per_thousand: c.section().per_thousand,
            section_min: c.section().min,
            section_max: 0,
            section_bytes: 0,
            quorum: 0,
            view: 0,
            max_datagram: c.max_datagram(),
            dissemination: c.dissemination().name().into(),
            rumor_mode: c.rumor().direction.name().into(),
            rumor_stop: "feedback-counter".into(),
            rumor_k: u32::from(c.rumor().stop.k),
            rumor_fanout: c.rumor().fanout,
            rumor_period_ms: c.rumor_period().as_millis() as u64,
            anti_entropy_mode: c.anti_entropy_direction().name().into(),
            anti_entropy_period_ms: c.anti_entropy_period().as_millis() as u64,
        }
    }
}

impl ProfileParams {
    /// The validated core `Config`.
    ///
    /// # Errors
    /// An unknown profile, or the core's `ConfigError` naming the field.
    pub fn config(&self) -> Result<Config> {
        let profile = Profile::from_name(&self.name).ok_or_else(|| {
            let known: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
            anyhow!(
                "profile.name: unknown profile {:?} (known: {})",
                self.name,
                known.join(", ")
            )
        })?;
        let mut b = profile
            .builder()
            .tick(Duration::from_millis(self.tick_ms))
            .node_timeout(Duration::from_millis(self.node_timeout_ms))
            .random_ping_every(self.random_ping_every)
            .random_ping_sample(self.sample)
            .random_ping_fanout(self.fanout)
            .section(SectionPolicy {
                per_thousand: self.section_per_thousand,
                min: self.section_min,
                max: (self.section_max > 0).then_some(self.section_max),
                byte_budget: (self.section_bytes > 0).then_some(self.section_bytes),
            })
            .max_datagram(self.max_datagram);
        if self.quorum > 0 {
            b = b.quorum(Quorum::AtLeast(self.quorum));
        }
        if self.view > 0 {
            b = b.max_peers(self.view);
        }
        if self.ping_interval_ms > 0 {
            b = b.with_ping_interval(Duration::from_millis(self.ping_interval_ms));
        }
        let dissemination = Dissemination::from_name(&self.dissemination).ok_or_else(|| {
            anyhow!(
                "profile.dissemination: {:?} is not off, rumor, anti-entropy or both",
                self.dissemination
            )
        })?;
        let direction = |field: &str, v: &str| {
            Direction::from_name(v)
                .ok_or_else(|| anyhow!("profile.{field}: {v:?} is not push, pull or push-pull"))
        };
        let k = u8::try_from(self.rumor_k)
            .ok()
            .filter(|&k| (1..=StopRule::MAX_K).contains(&k))
            .ok_or_else(|| anyhow!("profile.rumor_k: must be between 1 and {}", StopRule::MAX_K))?;
        let stop = match self.rumor_stop.as_str() {
            "feedback-counter" => StopRule::feedback_counter(k),
            "feedback-coin" => StopRule::feedback_coin(k),
            "blind-counter" => StopRule::blind_counter(k),
            "blind-coin" => StopRule::blind_coin(k),
            other => bail!(
                "profile.rumor_stop: {other:?} is not feedback-counter, feedback-coin, blind-counter or blind-coin"
            ),
        };
        b = b
            .dissemination(dissemination)
            .rumor(RumorConfig {
                direction: direction("rumor_mode", &self.rumor_mode)?,
                fanout: self.rumor_fanout,
                stop,
                ..RumorConfig::default()
            })
            .rumor_period(Duration::from_millis(self.rumor_period_ms))
            .anti_entropy_direction(direction("anti_entropy_mode", &self.anti_entropy_mode)?)
            .anti_entropy_period(Duration::from_millis(self.anti_entropy_period_ms));
        // The core names its fields (`rumor.fanout`, `rumor_period`, ...): say
        // which scenario field that is.
        b.build().map_err(|e| {
            let field = match e.field {
                "rumor.fanout" => "profile.rumor_fanout",
                "rumor_period" => "profile.rumor_period_ms",
                "anti_entropy_period" => "profile.anti_entropy_period_ms",
                "rumor.k" => "profile.rumor_k",
                _ => "profile",
            };
            anyhow!("{field}: {e}")
        })
    }

    /// Whether published updates spread (a `publish` action needs it).
    pub fn disseminates(&self) -> bool {
        self.dissemination != Dissemination::Off.name()
    }
}
