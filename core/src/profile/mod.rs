//! Protocol parameters: the Redis-faithful profile and everything it fixes, made
//! parametric. A [`Config`] is validated once, by [`ConfigBuilder::build`];
//! its enumerated choices are in `choices.rs`.

mod choices;

use core::time::Duration;

pub use crate::error::ConfigError;
pub use choices::{CronSchedule, Dissemination, PongGossip, Profile, Quorum, SectionPolicy};

use crate::epidemic::data::StoreLimits;
use crate::epidemic::rumor::RumorConfig;
use crate::wire::{
    Direction, DIGEST_FIXED, DIGEST_ITEM_OVERHEAD, ENTRY_OVERHEAD, HEADER_LEN, MAX_DATAGRAM,
    RUMOR_BLOCK_OVERHEAD,
};

/// Validated protocol parameters. Build one with [`Config::builder`] or
/// [`Profile::builder`]; every field has a getter of the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    tick: Duration,
    node_timeout: Duration,
    ping_interval: Duration,
    random_ping_every: u32,
    random_ping_sample: u32,
    random_ping_fanout: u32,
    gossip_refreshes_pong: bool,
    pong_gossip: PongGossip,
    cron: CronSchedule,
    pfail_counted_at_cron: bool,
    section: SectionPolicy,
    report_validity: Duration,
    quorum: Quorum,
    handshake_timeout: Duration,
    max_datagram: usize,
    max_peers: usize,
    partial_view: bool,
    max_failure_reports: usize,
    max_pending_meets: usize,
    transmit_queue: usize,
    event_queue: usize,
    dissemination: Dissemination,
    rumor: RumorConfig,
    rumor_period: Duration,
    anti_entropy_direction: Direction,
    anti_entropy_period: Duration,
    anti_entropy_chunks: u32,
    store_limits: StoreLimits,
    data_queue: usize,
}

impl Default for Config {
    /// The Redis-faithful profile with node_timeout 15 s (Redis's default).
    fn default() -> Self {
        ConfigBuilder::redis()
            .build()
            .expect("the Redis profile's defaults are valid") // invariant: tested below
    }
}

macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl Config {
            $($(#[$doc])* pub fn $name(&self) -> $ty { self.$name })*
        }
        impl ConfigBuilder {
            $($(#[$doc])* pub fn $name(mut self, value: $ty) -> Self { self.c.$name = value; self })*
        }
    };
}

getters! {
    /// Cron period (Redis: 100 ms, 10 ticks a second). Shorter reacts faster and
    /// costs CPU per node; 1 ms to 10 s.
    tick: Duration,
    /// Silence after which a peer is PFAIL (Redis cluster-node-timeout, default
    /// 15 s). Shorter detects sooner and pings more (the ping interval follows it)
    /// and risks false suspicion under loss or pauses; at least 2 ticks.
    node_timeout: Duration,
    /// Silence after which a peer is pinged (Redis: node_timeout / 2, which sets
    /// the message rate). Must be below node_timeout so a ping can be answered.
    ping_interval: Duration,
    /// Ticks between random-sample pings (Redis: 10, once a second); at least 1.
    random_ping_every: u32,
    /// Peers sampled for the random ping, the oldest PONG wins (Redis: 5); 1 to 64.
    random_ping_sample: u32,
    /// Peers pinged per random-sample round (Redis: 1): the fan-out. More spreads
    /// gossip faster at proportional cost; 0 (off) to 64.
    random_ping_fanout: u32,
    /// Whether a healthy gossip entry refreshes our last PONG of that peer (Redis
    /// does; it stretches ping intervals beyond ping_interval and so sets the
    /// real message rate).
    gossip_refreshes_pong: bool,
    /// Which PONG times a node gossips (Redis: the one it holds, as a
    /// wall-clock second; lean: its age in whole seconds).
    pong_gossip: PongGossip,
    /// When the cron runs again (Redis: a tick after each run, plus up to
    /// 1 ms; lean: a fixed grid).
    cron: CronSchedule,
    /// Whether a section's PFAIL tail holds at most as many nodes as were
    /// PFAIL when the last cron began (Redis 7 `clusterSendPing`:
    /// `pfail_wanted = stats_pfail_nodes`, recounted at the start of each
    /// cron), so a peer suspected in one cron is gossiped from the next one
    /// on; lean: false, at once (docs/redis-fidelity.md, difference 3).
    pfail_counted_at_cron: bool,
    /// Section size rule.
    section: SectionPolicy,
    /// Age after which a failure report no longer counts (Redis: 2 × node_timeout).
    report_validity: Duration,
    /// Failure reports needed for FAIL.
    quorum: Quorum,
    /// Time a handshake may take before the unconfirmed peer is forgotten (Redis:
    /// max(node_timeout, 1 s)).
    handshake_timeout: Duration,
    /// Largest datagram sent, in bytes (default 1,400: fits a 1,500-byte MTU
    /// with IPv6 and tunnel headers); 64 to 65,507.
    max_datagram: usize,
    /// Most peers held; gossip about more is dropped and counted. Bounds memory
    /// against a member that invents ids.
    max_peers: usize,
    /// Whether the peer table is a partial view of a cluster that may be
    /// larger than `max_peers` (Redis: false). When it is, a full table makes
    /// room for a node that MEETs us (or answers our `meet`) by forgetting a
    /// random peer not under suspicion, and forgets a FAIL peer silent for
    /// `report_validity`, so the view keeps admitting live nodes; gossip about
    /// unknown nodes fills free room only. When it is not, a full table
    /// refuses every new node and counts it (`Drops::peer_table_full`).
    partial_view: bool,
    /// Most failure reports held in all (default 65,536: a majority's reports
    /// about 130 suspects at N = 1,000, 1.5 MiB at worst); more are dropped and
    /// counted. A process hosting many nodes pays this per node.
    max_failure_reports: usize,
    /// Most outstanding `meet` commands (address-only joins).
    max_pending_meets: usize,
    /// Transmit queue bound; beyond it messages are dropped and counted. Must hold
    /// a FAIL broadcast to every peer.
    transmit_queue: usize,
    /// Event queue bound; beyond it events are dropped and counted.
    event_queue: usize,
    /// Epidemic dissemination of published data (default off: the Redis
    /// profile's bytes and costs are unchanged).
    dissemination: Dissemination,
    /// Rumor mongering: direction (push, pull, push-pull), `fanout` peers per
    /// round (1 to 64), stop rule and its k, and the hot-rumor caps. Push costs
    /// nothing while nothing is hot; pull and push-pull send a pull request to
    /// `fanout` peers every round even then (29 bytes alone, 5 on a PING).
    rumor: RumorConfig,
    /// Time between rumor rounds (default 100 ms, one Redis tick). A round runs
    /// at the first tick after the period, so below one tick means every tick.
    /// Shorter spreads faster in wall time at the same traffic per round.
    rumor_period: Duration,
    /// Which way an anti-entropy exchange moves entries (default push-pull,
    /// which converges fastest, Karp et al. 2000).
    anti_entropy_direction: Direction,
    /// Time between anti-entropy exchanges (default 1 s). Each costs at least
    /// one digest datagram even when nothing differs; behind rumors, a slow
    /// rate (seconds to minutes) is enough to remove the residue.
    anti_entropy_period: Duration,
    /// Digest datagrams per exchange, 1 to 64 (default 4): how much of a large
    /// store one exchange compares; the walk resumes there next period.
    anti_entropy_chunks: u32,
    /// Caps on the data a node holds (entries, key and value lengths, bytes).
    /// With dissemination on, the largest entry must fit one datagram.
    store_limits: StoreLimits,
    /// Most data datagrams (digests, pushes, pulls) waiting to be sent, at
    /// least 1 (default 1,024); beyond it they are dropped and counted, and the
    /// next exchange retries. Pending acks are bounded at 4 × this.
    data_queue: usize,
}

/// Builds and validates a [`Config`].
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    c: Config,
    ping_interval_set: bool,
    report_validity_set: bool,
    handshake_timeout_set: bool,
}

impl Config {
    /// The Redis-faithful profile, to adjust and build.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::redis()
    }
}

impl ConfigBuilder {
    /// Redis 7 constants: 100 ms tick, node_timeout 15 s, 5-sample random ping
    /// every 10 ticks, a tenth of the nodes in each section.
    pub fn redis() -> Self {
        let node_timeout = Duration::from_secs(15);
        ConfigBuilder {
            c: Config {
                tick: Duration::from_millis(100),
                node_timeout,
                ping_interval: node_timeout / 2,
                random_ping_every: 10,
                random_ping_sample: 5,
                random_ping_fanout: 1,
                gossip_refreshes_pong: true,
                pong_gossip: PongGossip::WallSecond,
                cron: CronSchedule::AfterRun {
                    slack: Duration::from_millis(1),
                },
                pfail_counted_at_cron: true,
                section: SectionPolicy::REDIS,
                report_validity: node_timeout * 2,
                quorum: Quorum::Majority,
                handshake_timeout: node_timeout,
                max_datagram: 1_400,
                max_peers: 100_000,
                partial_view: false,
                max_failure_reports: 1 << 16,
                max_pending_meets: 64,
                transmit_queue: 1 << 18,
                event_queue: 1 << 16,
                dissemination: Dissemination::Off,
                rumor: RumorConfig::default(),
                rumor_period: Duration::from_millis(100),
                anti_entropy_direction: Direction::PushPull,
                anti_entropy_period: Duration::from_secs(1),
                anti_entropy_chunks: 4,
                store_limits: StoreLimits::default(),
                data_queue: 1_024,
            },
            ping_interval_set: false,
            report_validity_set: false,
            handshake_timeout_set: false,
        }
    }

    /// Redis's rules over a partial view of 32 peers (`max_peers`,
    /// `partial_view`), FAIL on 2 reports (`Quorum::AtLeast(2)`: own PFAIL and
    /// one other; a majority of a view is a majority of nobody in particular).
    ///
    /// What each rule costs no longer grows with the cluster: a node pings 32
    /// peers each node_timeout / 2 instead of every node, its sections carry 3
    /// entries, its table stays about 4 KB, and a node joining handshakes with
    /// about 32 others instead of all. The price: a node's failure is detected
    /// by the nodes that hold it (the views are random, about 32 on average),
    /// not by all, and FAIL reaches the others only through their views.
    pub fn lean() -> Self {
        let mut b = ConfigBuilder::redis();
        b.c.max_peers = 32;
        b.c.partial_view = true;
        b.c.quorum = Quorum::AtLeast(2);
        // The rules before issue 18's findings: a wall-clock second gossiped
        // to every node bunches all pings into the start of each second, and
        // a cluster too large for full views need not share a clock.
        b.c.pong_gossip = PongGossip::AgeSeconds;
        b.c.cron = CronSchedule::Grid;
        b.c.pfail_counted_at_cron = false;
        b
    }

    /// Sets the ping interval explicitly (otherwise node_timeout / 2).
    pub fn with_ping_interval(mut self, d: Duration) -> Self {
        self.c.ping_interval = d;
        self.ping_interval_set = true;
        self
    }

    /// Sets report validity explicitly (otherwise 2 × node_timeout).
    pub fn with_report_validity(mut self, d: Duration) -> Self {
        self.c.report_validity = d;
        self.report_validity_set = true;
        self
    }

    /// Sets the handshake timeout explicitly (otherwise max(node_timeout, 1 s)).
    pub fn with_handshake_timeout(mut self, d: Duration) -> Self {
        self.c.handshake_timeout = d;
        self.handshake_timeout_set = true;
        self
    }

    /// Derives the unset timeouts from node_timeout and checks every field.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field out of range.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut c = self.c;
        if !self.ping_interval_set {
            c.ping_interval = c.node_timeout / 2;
        }
        if !self.report_validity_set {
            c.report_validity = c.node_timeout * 2;
        }
        if !self.handshake_timeout_set {
            c.handshake_timeout = c.node_timeout.max(Duration::from_secs(1));
        }
        let err = |field, problem| Err(ConfigError { field, problem });
        if c.tick < Duration::from_millis(1) || c.tick > Duration::from_secs(10) {
            return err("tick", "must be between 1 ms and 10 s");
        }
        if c.node_timeout < c.tick * 2 {
            return err("node_timeout", "must be at least two ticks");
        }
        if c.node_timeout > Duration::from_secs(86_400) {
            return err("node_timeout", "must be at most one day");
        }
        if c.ping_interval.is_zero() || c.ping_interval >= c.node_timeout {
            return err("ping_interval", "must be above zero and below node_timeout");
        }
        if c.random_ping_every == 0 {
            return err("random_ping_every", "must be at least 1 tick");
        }
        if !(1..=64).contains(&c.random_ping_sample) {
            return err("random_ping_sample", "must be between 1 and 64");
        }
        if c.random_ping_fanout > 64 {
            return err("random_ping_fanout", "must be at most 64");
        }
        if c.section.per_thousand > 1000 {
            return err("section.per_thousand", "must be at most 1000");
        }
        if c.section.max.is_some_and(|m| m < c.section.min) {
            return err("section.max", "must be at least section.min");
        }
        if c.report_validity < c.node_timeout {
            return err("report_validity", "must be at least node_timeout");
        }
        if matches!(c.quorum, Quorum::AtLeast(0)) {
            return err("quorum", "must be at least 1");
        }
        if let CronSchedule::AfterRun { slack } = c.cron {
            if slack >= c.tick {
                return err("cron", "slack must be below one tick");
            }
        }
        if c.handshake_timeout < c.tick {
            return err("handshake_timeout", "must be at least one tick");
        }
        if !(64..=MAX_DATAGRAM).contains(&c.max_datagram) {
            return err("max_datagram", "must be between 64 and 65507 bytes");
        }
        if c.max_peers == 0 || c.max_peers > u32::MAX as usize {
            return err("max_peers", "must be between 1 and 2^32 - 1");
        }
        if c.transmit_queue < c.max_peers.min(1 << 16) {
            return err(
                "transmit_queue",
                "must hold a broadcast to min(max_peers, 65536) peers",
            );
        }
        if c.event_queue == 0 || c.max_pending_meets == 0 || c.max_failure_reports == 0 {
            return err(
                "event_queue",
                "queues and tables must hold at least one entry",
            );
        }
        check_dissemination(&c)?;
        Ok(c)
    }
}

/// The epidemic fields: always in range; with dissemination on, every entry and
/// digest the store can hold must also fit one datagram.
fn check_dissemination(c: &Config) -> Result<(), ConfigError> {
    let err = |field, problem| Err(ConfigError { field, problem });
    c.rumor.validate()?;
    c.store_limits.validate()?;
    if c.rumor_period.is_zero() || c.rumor_period > Duration::from_secs(86_400) {
        return err("rumor_period", "must be above zero and at most one day");
    }
    if c.anti_entropy_period.is_zero() || c.anti_entropy_period > Duration::from_secs(86_400) {
        return err(
            "anti_entropy_period",
            "must be above zero and at most one day",
        );
    }
    if !(1..=64).contains(&c.anti_entropy_chunks) {
        return err("anti_entropy_chunks", "must be between 1 and 64");
    }
    if c.data_queue == 0 || c.data_queue > 1 << 20 {
        return err("data_queue", "must be between 1 and 2^20");
    }
    if c.dissemination == Dissemination::Off {
        return Ok(());
    }
    let l = &c.store_limits;
    let rumor =
        HEADER_LEN + RUMOR_BLOCK_OVERHEAD + ENTRY_OVERHEAD + l.max_key_len + l.max_value_len;
    if rumor > c.max_datagram {
        return err(
            "store_limits.max_value_len",
            "largest entry does not fit max_datagram",
        );
    }
    // A digest carries its start and end keys and at least one item.
    let digest = HEADER_LEN + DIGEST_FIXED + DIGEST_ITEM_OVERHEAD + 3 * l.max_key_len;
    if digest > c.max_datagram {
        return err(
            "store_limits.max_key_len",
            "a digest of the longest key does not fit max_datagram",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_defaults_are_valid_and_derived_from_node_timeout() {
        let c = Config::builder()
            .node_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        assert_eq!(c.ping_interval(), Duration::from_secs(1));
        assert_eq!(c.report_validity(), Duration::from_secs(4));
        assert_eq!(c.handshake_timeout(), Duration::from_secs(2));
        assert_eq!(Config::default().node_timeout(), Duration::from_secs(15));
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let e = Config::builder()
            .node_timeout(Duration::from_millis(150))
            .build()
            .unwrap_err();
        assert_eq!(e.field, "node_timeout");
        let e = Config::builder().max_datagram(10).build().unwrap_err();
        assert_eq!(e.field, "max_datagram");
        assert_eq!(
            e.to_string(),
            "invalid config: max_datagram: must be between 64 and 65507 bytes"
        );
    }

    #[test]
    fn section_size_follows_the_redis_rule() {
        let p = SectionPolicy::REDIS;
        assert_eq!(p.wanted(3), 1); // at most N - 2
        assert_eq!(p.wanted(5), 3); // at least 3
        assert_eq!(p.wanted(100), 10); // a tenth
        assert_eq!(p.wanted(1000), 100);
        assert_eq!(p.wanted(1), 0);
    }

    #[test]
    fn dissemination_is_off_by_default_and_checked_against_the_datagram_when_on() {
        let c = Config::default();
        assert_eq!(c.dissemination(), Dissemination::Off);
        // Off: a tiny datagram is still a valid Redis profile.
        Config::builder().max_datagram(64).build().unwrap();
        let e = Config::builder()
            .max_datagram(600)
            .dissemination(Dissemination::Rumor)
            .build()
            .unwrap_err();
        assert_eq!(e.field, "store_limits.max_value_len");
        let e = Config::builder()
            .anti_entropy_chunks(0)
            .build()
            .unwrap_err();
        assert_eq!(e.field, "anti_entropy_chunks");
        for d in [
            Dissemination::Off,
            Dissemination::Rumor,
            Dissemination::AntiEntropy,
            Dissemination::Both,
        ] {
            assert_eq!(Dissemination::from_name(d.name()), Some(d));
            Config::builder().dissemination(d).build().unwrap();
        }
    }
}
