//! Protocol parameters: the Redis-faithful profile and everything it fixes, made
//! parametric, declared once below. The one declaration yields [`Config`]
//! (fields and getters), [`ConfigBuilder`] (a setter per field, validation in
//! [`ConfigBuilder::build`]), the Redis profile's values, and the flat named
//! view ([`Config::flat`], [`ConfigBuilder::set`], [`params`]) that scenario
//! files, the loadgen's `--set profile.*` and `gossip-node`'s flags spell
//! parameters with (`flat.rs`). The enumerated choices are in `choices.rs`.

mod choices;
mod flat;

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

pub use crate::error::ConfigError;
pub use choices::{
    CronSchedule, Dissemination, Membership, PongGossip, Profile, Quorum, SectionPolicy,
};
pub use flat::{Flat, Part, SetError};

use crate::epidemic::data::StoreLimits;
use crate::epidemic::rumor::RumorConfig;
use crate::wire::{
    Direction, DIGEST_FIXED, DIGEST_ITEM_OVERHEAD, ENTRY_OVERHEAD, HEADER_LEN, MAX_DATAGRAM,
    RUMOR_BLOCK_OVERHEAD,
};

/// One flat parameter: a config field's part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The config field (and its getter and setter).
    pub field: &'static str,
    /// The part of it.
    pub part: Part,
    /// The field's documentation.
    pub doc: &'static str,
}

impl Param {
    /// The flat name: the field's name and the part's suffix.
    pub fn name(&self) -> String {
        let mut n = String::from(self.field);
        n.push_str(self.part.suffix);
        n
    }
}

/// Declares every parameter once: doc, name, type, the Redis profile's value,
/// optionally a rule deriving it from the others when not set, and its checks
/// (in order; the first that fails names the field, or the part given with `at`).
macro_rules! declare {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $ty:ty = $default:expr
            $(, derived |$dc:ident| $derive:expr)?;
        $(check $(at $part:literal)? |$c:ident| $cond:expr => $problem:literal;)*
        $(validate |$vc:ident| $validate:expr;)?
    )*) => {
        /// Validated protocol parameters. Build one with [`Config::builder`] or
        /// [`Profile::builder`]; every field has a getter of the same name.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Config {
            $($name: $ty,)*
        }

        /// Bit positions of the fields, for [`ConfigBuilder`]'s record of
        /// what was set explicitly.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        enum Field {
            $($name,)*
        }

        impl Config {
            $($(#[doc = $doc])+ pub fn $name(&self) -> $ty { self.$name })*

            fn redis_values() -> Config {
                Config { $($name: $default,)* }
            }

            /// Fills the derived fields not set explicitly.
            fn derive(&mut self, explicit: u64) {
                $($(
                    if explicit & (1 << Field::$name as u32) == 0 {
                        let $dc = &*self;
                        self.$name = $derive;
                    }
                )?)*
            }

            fn check(&self) -> Result<(), ConfigError> {
                $(
                    $(
                        let $c = self;
                        if !($cond) {
                            return Err(ConfigError {
                                field: stringify!($name),
                                part: declare!(@part $ty $(, $part)?),
                                problem: $problem,
                            });
                        }
                    )*
                    $(let $vc = self; $validate?;)?
                )*
                Ok(())
            }

            /// Every flat parameter's value as text, in declaration order:
            /// what a report records and `ConfigBuilder::set` reads back.
            pub fn flat(&self) -> Vec<(String, String)> {
                let mut out = Vec::new();
                $(
                    for (i, part) in <$ty as Flat>::PARTS.iter().enumerate() {
                        let mut name = String::from(stringify!($name));
                        name.push_str(part.suffix);
                        out.push((name, Flat::get(&self.$name, i)));
                    }
                )*
                out
            }
        }

        impl ConfigBuilder {
            $(
                $(#[doc = $doc])+
                pub fn $name(mut self, value: $ty) -> Self {
                    self.c.$name = value;
                    self.explicit |= 1 << Field::$name as u32;
                    self
                }
            )*

            /// Sets one flat parameter from text, as `--set profile.NAME=VALUE`
            /// and `gossip-node --NAME VALUE` do; the range checks are
            /// [`ConfigBuilder::build`]'s.
            ///
            /// # Errors
            /// [`SetError::Unknown`] for a name no parameter has,
            /// [`SetError::Invalid`] for text that does not parse.
            pub fn set(&mut self, name: &str, text: &str) -> Result<(), SetError> {
                $(
                    if let Some(rest) = name.strip_prefix(stringify!($name)) {
                        let parts = <$ty as Flat>::PARTS;
                        if let Some(i) = parts.iter().position(|p| p.suffix == rest) {
                            Flat::set(&mut self.c.$name, i, text)?;
                            self.explicit |= 1 << Field::$name as u32;
                            return Ok(());
                        }
                    }
                )*
                Err(SetError::Unknown)
            }
        }

        /// Every flat parameter, in declaration order.
        pub fn params() -> impl Iterator<Item = Param> {
            let fields: &[(&'static str, &'static [Part], &'static str)] = &[
                $((stringify!($name), <$ty as Flat>::PARTS, concat!($($doc, "\n"),+)),)*
            ];
            fields.iter().flat_map(|&(field, parts, doc)| {
                parts.iter().map(move |&part| Param { field, part, doc })
            })
        }
    };
    (@part $ty:ty) => { <$ty as Flat>::PARTS[0].suffix };
    (@part $ty:ty, $part:literal) => { $part };
}

declare! {
    /// Cron period (Redis: 100 ms, 10 ticks a second). Shorter reacts faster and
    /// costs CPU per node; 1 ms to 10 s.
    tick: Duration = Duration::from_millis(100);
    check |c| c.tick >= Duration::from_millis(1) && c.tick <= Duration::from_secs(10)
        => "must be between 1 ms and 10 s";
    /// Silence after which a peer is PFAIL (Redis cluster-node-timeout, default
    /// 15 s). Shorter detects sooner and pings more (the ping interval follows it)
    /// and risks false suspicion under loss or pauses; at least 2 ticks.
    node_timeout: Duration = Duration::from_secs(15);
    check |c| c.node_timeout >= c.tick * 2 => "must be at least two ticks";
    check |c| c.node_timeout <= Duration::from_secs(86_400) => "must be at most one day";
    /// Silence after which a peer is pinged (Redis: node_timeout / 2, which sets
    /// the message rate; derived from node_timeout unless set). Must be below
    /// node_timeout so a ping can be answered.
    ping_interval: Duration = Duration::from_millis(7_500), derived |c| c.node_timeout / 2;
    check |c| !c.ping_interval.is_zero() && c.ping_interval < c.node_timeout
        => "must be above zero and below node_timeout";
    /// Ticks between random-sample pings (Redis: 10, once a second); at least 1.
    random_ping_every: u32 = 10;
    check |c| c.random_ping_every > 0 => "must be at least 1 tick";
    /// Peers sampled for the random ping, the oldest PONG wins (Redis: 5); 1 to 64.
    random_ping_sample: u32 = 5;
    check |c| (1..=64).contains(&c.random_ping_sample) => "must be between 1 and 64";
    /// Peers pinged per random-sample round (Redis: 1): the fan-out. More spreads
    /// gossip faster at proportional cost; 0 (off) to 64.
    random_ping_fanout: u32 = 1;
    check |c| c.random_ping_fanout <= 64 => "must be at most 64";
    /// Whether a healthy gossip entry refreshes our last PONG of that peer (Redis
    /// does; it stretches ping intervals beyond ping_interval and so sets the
    /// real message rate).
    gossip_refreshes_pong: bool = true;
    /// Which PONG times a node gossips (Redis: the one it holds, as a
    /// wall-clock second; lean: its age in whole seconds).
    pong_gossip: PongGossip = PongGossip::WallSecond;
    /// When the cron runs again (Redis: a tick after each run, plus up to
    /// 1 ms; lean: a fixed grid).
    cron: CronSchedule = CronSchedule::AfterRun { slack: Duration::from_millis(1) };
    check at "_slack_ms" |c| match c.cron {
        CronSchedule::AfterRun { slack } => slack < c.tick,
        CronSchedule::Grid => true,
    } => "must be below one tick";
    /// Whether a section's PFAIL tail holds at most as many nodes as were
    /// PFAIL when the last cron began (Redis 7 `clusterSendPing`:
    /// `pfail_wanted = stats_pfail_nodes`, recounted at the start of each
    /// cron), so a peer suspected in one cron is gossiped from the next one
    /// on; lean: false, at once (docs/redis-fidelity.md, difference 3).
    pfail_counted_at_cron: bool = true;
    /// Section size rule: entries per thousand known nodes, at least `min`, at
    /// most `max` and N - 2, within `byte_budget` bytes (Redis: a tenth, at
    /// least 3, no other bound).
    section: SectionPolicy = SectionPolicy::REDIS;
    check at "_per_thousand" |c| c.section.per_thousand <= 1000 => "must be at most 1000";
    check at "_max" |c| c.section.max.is_none_or(|m| m >= c.section.min)
        => "must be at least section_min";
    /// Age after which a failure report no longer counts (Redis: 2 ×
    /// node_timeout, derived from it unless set).
    report_validity: Duration = Duration::from_secs(30), derived |c| c.node_timeout * 2;
    check |c| c.report_validity >= c.node_timeout => "must be at least node_timeout";
    /// Failure reports needed for FAIL: `majority` of the members (Redis) or
    /// a number (self's own PFAIL counts as one).
    quorum: Quorum = Quorum::Majority;
    check |c| !matches!(c.quorum, Quorum::AtLeast(0)) => "must be at least 1";
    /// Time a handshake may take before the unconfirmed peer is forgotten (Redis:
    /// max(node_timeout, 1 s), derived from node_timeout unless set).
    handshake_timeout: Duration = Duration::from_secs(15),
        derived |c| c.node_timeout.max(Duration::from_secs(1));
    check |c| c.handshake_timeout >= c.tick => "must be at least one tick";
    /// Largest datagram sent, in bytes (default 1,400: fits a 1,500-byte MTU
    /// with IPv6 and tunnel headers); 64 to 65,507.
    max_datagram: usize = 1_400;
    check |c| (64..=MAX_DATAGRAM).contains(&c.max_datagram)
        => "must be between 64 and 65507 bytes";
    /// Most peers held; gossip about more is dropped and counted. Bounds memory
    /// against a member that invents ids (redis: 100,000; lean: a view of 32).
    max_peers: usize = 100_000;
    check |c| c.max_peers > 0 && c.max_peers <= u32::MAX as usize
        => "must be between 1 and 2^32 - 1";
    /// Whether the peer table is a partial view of a cluster that may be
    /// larger than `max_peers` (Redis: false). When it is, a full table makes
    /// room for a node that MEETs us (or answers our `meet`) by forgetting a
    /// random peer not under suspicion, and forgets a FAIL peer silent for
    /// `report_validity`, so the view keeps admitting live nodes; gossip about
    /// unknown nodes fills free room only. When it is not, a full table
    /// refuses every new node and counts it (`Drops::peer_table_full`).
    partial_view: bool = false;
    /// Most failure reports held in all (default 65,536: a majority's reports
    /// about 130 suspects at N = 1,000, 1.5 MiB at worst); more are dropped and
    /// counted. A process hosting many nodes pays this per node.
    max_failure_reports: usize = 1 << 16;
    check |c| c.max_failure_reports > 0 => "must be at least 1";
    /// Most outstanding `meet` commands (address-only joins).
    max_pending_meets: usize = 64;
    check |c| c.max_pending_meets > 0 => "must be at least 1";
    /// Transmit queue bound; beyond it messages are dropped and counted. Must hold
    /// a FAIL broadcast to every peer.
    transmit_queue: usize = 1 << 18;
    check |c| c.transmit_queue >= c.max_peers.min(1 << 16)
        => "must hold a broadcast to min(max_peers, 65536) peers";
    /// Event queue bound; beyond it events are dropped and counted.
    event_queue: usize = 1 << 16;
    check |c| c.event_queue > 0 => "must be at least 1";
    /// Which membership protocol runs: `redis` (MEET, PING, PONG, FAIL by
    /// quorum; the redis and lean profiles) or `swim` (the swim profile's
    /// probes and refutable suspicion). The `probe_*`, `indirect_probes`,
    /// `suspicion_*`, `retransmit_mult`, `awareness_max`, `gossip_nodes`,
    /// `sync_*` and `dead_retention` parameters are swim's; `tick` is its
    /// gossip interval.
    membership: Membership = Membership::Redis;
    /// swim: time between probes of one member each (Lifeguard stretches it
    /// by the local health score). Sets the steady bytes: a PROBE and an ACK
    /// of 30 bytes each per period.
    probe_interval: Duration = Duration::from_millis(300);
    check |c| c.probe_interval >= c.tick && c.probe_interval <= Duration::from_secs(60)
        => "must be between one tick and 60 s";
    /// swim: time a direct probe may take before indirect probes go out.
    probe_timeout: Duration = Duration::from_millis(100);
    check |c| !c.probe_timeout.is_zero() && c.probe_timeout < c.probe_interval
        => "must be above zero and below probe_interval";
    /// swim: members asked to probe a silent member for us (SWIM's k).
    indirect_probes: u32 = 3;
    check |c| c.indirect_probes <= 16 => "must be at most 16";
    /// swim: a suspicion's shortest timeout is this × max(1, log10 N) ×
    /// probe_interval (Lifeguard's α; memberlist: 4).
    suspicion_mult: u32 = 2;
    check |c| (1..=64).contains(&c.suspicion_mult) => "must be between 1 and 64";
    /// swim: a suspicion's longest timeout, as a multiple of the shortest
    /// (Lifeguard's β; memberlist: 6); independent confirmations shrink it
    /// towards the shortest.
    suspicion_max_mult: u32 = 4;
    check |c| (1..=64).contains(&c.suspicion_max_mult) => "must be between 1 and 64";
    /// swim: times a membership update is sent on, × ceil(log10(N + 1))
    /// (memberlist: 4).
    retransmit_mult: u32 = 4;
    check |c| (1..=64).contains(&c.retransmit_mult) => "must be between 1 and 64";
    /// swim: local health awareness's highest multiplier (Lifeguard; 1 turns
    /// it off): a node that misses acks or ticks stretches its probe
    /// interval and timeout up to this many times.
    awareness_max: u32 = 8;
    check |c| (1..=64).contains(&c.awareness_max) => "must be between 1 and 64";
    /// swim: members each gossip round (every tick while updates wait) sends
    /// waiting membership updates to.
    gossip_nodes: u32 = 3;
    check |c| (1..=64).contains(&c.gossip_nodes) => "must be between 1 and 64";
    /// swim: time between anti-entropy digests (SYNC) to one random member.
    sync_interval: Duration = Duration::from_secs(5);
    check |c| c.sync_interval >= c.tick && c.sync_interval <= Duration::from_secs(86_400)
        => "must be between one tick and one day";
    /// swim: STATE datagrams one SYNC may be answered with (1 to 64); a
    /// joiner asks again at once while digests differ.
    sync_chunks: u32 = 8;
    check |c| (1..=64).contains(&c.sync_chunks) => "must be between 1 and 64";
    /// swim: time a dead member is kept (so that older news cannot bring it
    /// back) before it is forgotten.
    dead_retention: Duration = Duration::from_secs(30);
    check |c| c.dead_retention >= c.probe_interval => "must be at least probe_interval";
    /// Epidemic dissemination of published data (default off: the Redis
    /// profile's bytes and costs are unchanged).
    dissemination: Dissemination = Dissemination::Off;
    /// Rumor mongering: direction (push, pull, push-pull), `fanout` peers per
    /// round (1 to 64), stop rule and its k, and the hot-rumor caps. Push costs
    /// nothing while nothing is hot; pull and push-pull send a pull request to
    /// `fanout` peers every round even then (29 bytes alone, 5 on a PING).
    /// swim: hot rumors ride its PROBEs, ACKs and gossip instead of rounds of
    /// their own, and k is multiplied by ceil(log10(N + 1)).
    rumor: RumorConfig = RumorConfig::default();
    validate |c| c.rumor.validate();
    /// Time between rumor rounds (default 100 ms, one Redis tick). A round runs
    /// at the first tick after the period, so below one tick means every tick.
    /// Shorter spreads faster in wall time at the same traffic per round.
    rumor_period: Duration = Duration::from_millis(100);
    check |c| !c.rumor_period.is_zero() && c.rumor_period <= Duration::from_secs(86_400)
        => "must be above zero and at most one day";
    /// Which way an anti-entropy exchange moves entries (default push-pull,
    /// which converges fastest, Karp et al. 2000).
    anti_entropy_direction: Direction = Direction::PushPull;
    /// Time between anti-entropy exchanges (default 1 s). Each costs at least
    /// one digest datagram even when nothing differs; behind rumors, a slow
    /// rate (seconds to minutes) is enough to remove the residue.
    anti_entropy_period: Duration = Duration::from_secs(1);
    check |c| !c.anti_entropy_period.is_zero()
        && c.anti_entropy_period <= Duration::from_secs(86_400)
        => "must be above zero and at most one day";
    /// Digest datagrams per exchange, 1 to 64 (default 4): how much of a large
    /// store one exchange compares; the walk resumes there next period.
    anti_entropy_chunks: u32 = 4;
    check |c| (1..=64).contains(&c.anti_entropy_chunks) => "must be between 1 and 64";
    /// Caps on the data a node holds (entries, key and value lengths, bytes).
    /// With dissemination on, the largest entry must fit one datagram.
    store_limits: StoreLimits = StoreLimits::default();
    validate |c| c.store_limits.validate().and_then(|()| entries_fit(c));
    /// Most data datagrams (digests, pushes, pulls) waiting to be sent, at
    /// least 1 (default 1,024); beyond it they are dropped and counted, and the
    /// next exchange retries. Pending acks are bounded at 4 × this.
    data_queue: usize = 1_024;
    check |c| c.data_queue > 0 && c.data_queue <= 1 << 20 => "must be between 1 and 2^20";
}

impl Default for Config {
    /// The Redis-faithful profile with node_timeout 15 s (Redis's default).
    fn default() -> Self {
        ConfigBuilder::redis()
            .build()
            .expect("the Redis profile's defaults are valid") // invariant: tested below
    }
}

/// Builds and validates a [`Config`].
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    c: Config,
    /// Bit `Field::x` set: `x` was set, so not derived.
    explicit: u64,
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
        ConfigBuilder {
            c: Config::redis_values(),
            explicit: 0,
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

    /// SWIM with Lifeguard's refinements over a full membership
    /// (docs/design/swim.md): a probe every 300 ms (30-byte PROBE and ACK),
    /// 3 indirect probes after 100 ms, suspicion for 2-8 × log10 N probe
    /// periods, updates sent on 4 × log10 N times and gossiped every 50 ms
    /// while they wait, a digest every 5 s; user updates (when dissemination
    /// is on) ride the same datagrams, sent on 1 × log10 N times.
    pub fn swim() -> Self {
        let mut b = ConfigBuilder::redis();
        b.c.membership = Membership::Swim;
        // User updates ride swim's datagrams and are sent on k × ceil(log10
        // (N + 1)) times, as its membership updates are (design §6): blind,
        // since swim's datagrams carry no acks back.
        b.c.rumor.stop = crate::epidemic::rumor::StopRule::blind_counter(1);
        b.c.tick = Duration::from_millis(50);
        b.c.cron = CronSchedule::Grid;
        b.c.pong_gossip = PongGossip::AgeSeconds;
        b.c.pfail_counted_at_cron = false;
        b
    }

    /// Derives the unset timeouts from node_timeout and checks every field.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field out of range.
    pub fn build(self) -> Result<Config, ConfigError> {
        let mut c = self.c;
        c.derive(self.explicit);
        c.check()?;
        Ok(c)
    }
}

/// With dissemination on, every entry and digest the store can hold must fit
/// one datagram.
fn entries_fit(c: &Config) -> Result<(), ConfigError> {
    let err = |part, problem| {
        Err(ConfigError {
            field: "store_limits",
            part,
            problem,
        })
    };
    if c.dissemination == Dissemination::Off {
        return Ok(());
    }
    let l = &c.store_limits;
    let rumor =
        HEADER_LEN + RUMOR_BLOCK_OVERHEAD + ENTRY_OVERHEAD + l.max_key_len + l.max_value_len;
    if rumor > c.max_datagram {
        return err("_max_value_len", "largest entry does not fit max_datagram");
    }
    // A digest carries its start and end keys and at least one item.
    let digest = HEADER_LEN + DIGEST_FIXED + DIGEST_ITEM_OVERHEAD + 3 * l.max_key_len;
    if digest > c.max_datagram {
        return err(
            "_max_key_len",
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
        assert_eq!(e.param(), "node_timeout_ms");
        let e = Config::builder().max_datagram(10).build().unwrap_err();
        assert_eq!(e.param(), "max_datagram");
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
        assert_eq!(e.param(), "store_limits_max_value_len");
        let e = Config::builder()
            .anti_entropy_chunks(0)
            .build()
            .unwrap_err();
        assert_eq!(e.param(), "anti_entropy_chunks");
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

    #[test]
    fn the_flat_view_names_every_parameter_once_and_reads_back() {
        let names: Vec<String> = params().map(|p| p.name()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "flat names collide: {names:?}");
        for profile in Profile::ALL {
            let c = profile.builder().build().unwrap();
            let flat = c.flat();
            assert_eq!(
                flat.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                names
            );
            // Setting every parameter to its own value, onto the other
            // profile, gives the same config: the view is complete.
            let other = if profile == Profile::Redis {
                Profile::Lean
            } else {
                Profile::Redis
            };
            let mut b = other.builder();
            for (n, v) in &flat {
                b.set(n, v).unwrap_or_else(|e| panic!("{n} = {v}: {e}"));
            }
            assert_eq!(b.build().unwrap(), c, "{}", profile.name());
        }
    }

    #[test]
    fn set_takes_flat_names_and_refuses_others() {
        let mut b = Config::builder();
        b.set("node_timeout_ms", "2000").unwrap();
        b.set("random_ping_fanout", "3").unwrap();
        b.set("section_max", "12").unwrap();
        b.set("rumor_stop", "blind-coin").unwrap();
        b.set("rumor_stop_k", "4").unwrap();
        b.set("quorum", "2").unwrap();
        let c = b.clone().build().unwrap();
        assert_eq!(c.node_timeout(), Duration::from_secs(2));
        assert_eq!(c.ping_interval(), Duration::from_secs(1)); // still derived
        assert_eq!(c.random_ping_fanout(), 3);
        assert_eq!(c.section().max, Some(12));
        assert_eq!(
            c.rumor().stop,
            crate::epidemic::rumor::StopRule::blind_coin(4)
        );
        assert_eq!(c.quorum(), Quorum::AtLeast(2));
        assert_eq!(b.set("node_timeout", "2000"), Err(SetError::Unknown));
        assert_eq!(b.set("fanout", "2"), Err(SetError::Unknown));
        assert_eq!(
            b.set("partial_view", "yes"),
            Err(SetError::Invalid("true or false"))
        );
        // A derived parameter set explicitly stays as set.
        b.set("ping_interval_ms", "300").unwrap();
        b.set("node_timeout_ms", "4000").unwrap();
        assert_eq!(
            b.build().unwrap().ping_interval(),
            Duration::from_millis(300)
        );
        let e = Config::builder()
            .section(SectionPolicy {
                max: Some(1),
                ..SectionPolicy::REDIS
            })
            .build()
            .unwrap_err();
        assert_eq!(e.param(), "section_max");
    }
}
