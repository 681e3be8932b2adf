//! Rumor mongering (Demers 1987, §1.4): a complex epidemic, SIR (susceptible,
//! infective, removed) for each update.
//!
//! A node that learns a new update holds it as a hot rumor (infective) and, each
//! round, sends its hot rumors to `fanout` random peers (push), answers pulls with
//! them (pull), or both (push-pull). After each contact a [`StopRule`] decides
//! whether the node loses interest (removed):
//!
//! | rule | counts | stops |
//! |---|---|---|
//! | feedback + counter | contacts whose peer already knew it; a useful contact resets the count | after `k` in a row |
//! | feedback + coin | contacts whose peer already knew it | with probability 1/k after each |
//! | blind + counter | every send | after `k` |
//! | blind + coin | every send | with probability 1/k after each |
//!
//! Rumors can die before reaching everyone (the residue); a slow
//! anti-entropy behind them (the node's exchange, `dissemination`) mops it up.
//!
//! [`Rumors`] is one node's table of hot rumors: bounded, in insertion order, with
//! all randomness drawn from the caller's [`Rng`]. [`StopRule::after_contact`] is the
//! single place the stop rules live; the loadgen's epidemic-only model
//! (`gossip_loadgen::population`) runs the same code for a million abstract nodes.
//!
//! Over 600 lines because a third of them are the stop rules' and the hot
//! table's unit tests, which read best beside the rules they pin down.

use alloc::vec::Vec;

use super::data::Stamp;
use super::Direction;
use crate::error::ConfigError;
use crate::rng::Rng;

/// What a node counts towards losing interest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Only contacts whose peer already knew the rumor (the peer tells us).
    Feedback,
    /// Every send, whatever the peer knew (no reply needed).
    Blind,
}

/// How a node decides to lose interest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Removal {
    /// After `k` counted contacts (for feedback: `k` in a row).
    Counter,
    /// With probability `1/k` after each counted contact.
    Coin,
}

/// When a hot rumor stops being spread (Demers 1987, §1.4 "Blind vs. Feedback",
/// "Counter vs. Coin").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StopRule {
    /// What counts.
    pub trigger: Trigger,
    /// How counting ends spreading.
    pub removal: Removal,
    /// The parameter k, 1 to [`StopRule::MAX_K`]. Larger k leaves less residue
    /// (roughly e^-m for push, Demers §1.4) at proportionally more traffic.
    pub k: u8,
}

impl StopRule {
    /// Largest `k` (so a counter and the state it lives in fit one byte).
    pub const MAX_K: u8 = 253;

    /// Feedback + counter: lose interest after `k` contacts in a row that already
    /// knew the rumor.
    pub const fn feedback_counter(k: u8) -> Self {
        StopRule {
            trigger: Trigger::Feedback,
            removal: Removal::Counter,
            k,
        }
    }

    /// Feedback + coin: after each contact that already knew the rumor, lose
    /// interest with probability 1/k.
    pub const fn feedback_coin(k: u8) -> Self {
        StopRule {
            trigger: Trigger::Feedback,
            removal: Removal::Coin,
            k,
        }
    }

    /// Blind + counter: lose interest after `k` sends.
    pub const fn blind_counter(k: u8) -> Self {
        StopRule {
            trigger: Trigger::Blind,
            removal: Removal::Counter,
            k,
        }
    }

    /// Blind + coin: after each send, lose interest with probability 1/k.
    pub const fn blind_coin(k: u8) -> Self {
        StopRule {
            trigger: Trigger::Blind,
            removal: Removal::Coin,
            k,
        }
    }

    /// The rule's name without its k: `feedback-counter`, `feedback-coin`,
    /// `blind-counter` or `blind-coin`.
    pub fn name(&self) -> &'static str {
        match (self.trigger, self.removal) {
            (Trigger::Feedback, Removal::Counter) => "feedback-counter",
            (Trigger::Feedback, Removal::Coin) => "feedback-coin",
            (Trigger::Blind, Removal::Counter) => "blind-counter",
            (Trigger::Blind, Removal::Coin) => "blind-coin",
        }
    }

    /// The rule [`StopRule::name`] names, with parameter `k`.
    pub fn from_name(name: &str, k: u8) -> Option<Self> {
        Some(match name {
            "feedback-counter" => Self::feedback_counter(k),
            "feedback-coin" => Self::feedback_coin(k),
            "blind-counter" => Self::blind_counter(k),
            "blind-coin" => Self::blind_coin(k),
            _ => return None,
        })
    }

    /// Checks `k`.
    ///
    /// # Errors
    /// A [`ConfigError`] if `k` is 0 or above [`StopRule::MAX_K`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.k == 0 || self.k > Self::MAX_K {
            return Err(ConfigError {
                field: "rumor",
                part: "_stop_k",
                problem: "must be between 1 and 253",
            });
        }
        Ok(())
    }

    /// Applies the rule after one contact that carried the rumor: updates the
    /// rumor's `count` and says whether the sender now loses interest (the rumor
    /// is removed at the sender).
    ///
    /// `useful` is the feedback: the peer did not know the rumor before. Blind
    /// rules ignore it. `count` stays below `k` while the rumor is hot.
    #[inline]
    pub fn after_contact(&self, count: &mut u8, useful: bool, rng: &mut Rng) -> bool {
        match (self.trigger, self.removal) {
            // Demers §1.4: "each unnecessary message was sent by a site that,
            // within the last k cycles, sent a necessary message": a useful
            // contact resets the counter.
            (Trigger::Feedback, _) if useful => {
                *count = 0;
                false
            }
            (_, Removal::Counter) => {
                *count = count.saturating_add(1);
                *count >= self.k
            }
            (_, Removal::Coin) => rng.one_in(u32::from(self.k)),
        }
    }
}

/// Parameters of one node's rumor mongering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RumorConfig {
    /// Push (send hot rumors to peers), pull (answer pulls with them), or both.
    pub direction: Direction,
    /// Peers contacted per round, 1 to 64. Each adds one message per hot rumor per
    /// round and speeds spreading; Demers' tables use 1.
    pub fanout: u32,
    /// When a rumor stops being spread.
    pub stop: StopRule,
    /// Most hot rumors held, at least 1; a new one beyond it evicts the oldest
    /// (left to anti-entropy). Bounds memory and message size.
    pub max_hot: usize,
    /// Rounds after which a rumor stops being spread whatever the rule says, at
    /// least 1: bounds a feedback rule whose peers never answer.
    pub max_hot_rounds: u32,
}

impl Default for RumorConfig {
    /// Push, fanout 1, feedback + counter with k = 3 (Demers: residue about 1%),
    /// 1,024 hot rumors, 1,000 rounds at most.
    fn default() -> Self {
        RumorConfig {
            direction: Direction::Push,
            fanout: 1,
            stop: StopRule::feedback_counter(3),
            max_hot: 1_024,
            max_hot_rounds: 1_000,
        }
    }
}

impl RumorConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.stop.validate()?;
        let err = |part, problem| {
            Err(ConfigError {
                field: "rumor",
                part,
                problem,
            })
        };
        if !(1..=64).contains(&self.fanout) {
            return err("_fanout", "must be between 1 and 64");
        }
        if self.max_hot == 0 {
            return err("_max_hot", "must be at least 1");
        }
        if self.max_hot_rounds == 0 {
            return err("_max_hot_rounds", "must be at least 1");
        }
        Ok(())
    }
}

/// One hot rumor: an update this node is still spreading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hot {
    /// The updated key.
    pub key: Vec<u8>,
    /// The version being spread.
    pub stamp: Stamp,
    /// The id acks name it by ([`crate::wire::ack_id`] of key and stamp).
    id: u64,
    count: u8,
    rounds: u32,
    /// Who it came from, as the caller tags senders (0: nobody, a local
    /// write): the one peer certain to know it already.
    from: u64,
}

impl Hot {
    /// The stop rule's counter (unnecessary contacts in a row, or sends).
    pub fn count(&self) -> u8 {
        self.count
    }

    /// Rounds it has been hot.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// The id acks name it by.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Who it came from ([`Rumors::start_from`]'s tag; 0: nobody).
    pub fn from(&self) -> u64 {
        self.from
    }
}

/// Counters of one node's rumor mongering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RumorStats {
    /// Rumors that became hot here.
    pub started: u64,
    /// Contacts recorded (a rumor carried to a peer).
    pub contacts: u64,
    /// Contacts whose peer already knew the rumor (feedback only).
    pub unnecessary: u64,
    /// Rumors removed by the stop rule.
    pub removed: u64,
    /// Rumors evicted because `max_hot` were hot.
    pub evicted: u64,
    /// Rumors removed after `max_hot_rounds`.
    pub expired: u64,
}

/// One node's hot rumors and the rule that retires them.
#[derive(Clone, Debug)]
pub struct Rumors {
    config: RumorConfig,
    hot: Vec<Hot>,
    stats: RumorStats,
}

impl Rumors {
    /// No hot rumors (the config is assumed valid: see [`RumorConfig::validate`]).
    pub fn new(config: RumorConfig) -> Self {
        Rumors {
            config,
            hot: Vec::new(),
            stats: RumorStats::default(),
        }
    }

    /// The parameters.
    pub fn config(&self) -> &RumorConfig {
        &self.config
    }

    /// Sets the stop rule's k (clamped to 1..=[`StopRule::MAX_K`]): the swim
    /// profile scales it with the cluster's size, as its membership
    /// updates' retransmit limit.
    pub fn set_stop_k(&mut self, k: u32) {
        self.config.stop.k = k.clamp(1, u32::from(StopRule::MAX_K)) as u8;
    }

    /// Counters so far.
    pub fn stats(&self) -> RumorStats {
        self.stats
    }

    /// Hot rumors, oldest first.
    pub fn hot(&self) -> &[Hot] {
        &self.hot
    }

    /// Whether nothing is being spread.
    pub fn is_idle(&self) -> bool {
        self.hot.is_empty()
    }

    /// Whether `key` is hot at exactly `stamp`.
    pub fn is_hot(&self, key: &[u8], stamp: Stamp) -> bool {
        self.position(key, stamp).is_some()
    }

    /// Makes an update hot: call it when a local write or a received entry was
    /// news to the store ([`super::data::Merged::is_news`]). A newer version of a
    /// key already hot replaces it with a fresh count. When `max_hot` rumors are
    /// hot, the oldest is evicted (anti-entropy will carry it).
    pub fn start(&mut self, key: &[u8], stamp: Stamp) {
        self.start_from(key, stamp, 0);
    }

    /// [`Rumors::start`] for an update received from the peer the caller
    /// tags `from` (not 0), so that sending can pass that peer by.
    pub fn start_from(&mut self, key: &[u8], stamp: Stamp, from: u64) {
        if let Some(h) = self.hot.iter_mut().find(|h| h.key == key) {
            if stamp > h.stamp {
                h.stamp = stamp;
                h.id = crate::wire::ack_id(key, stamp);
                h.count = 0;
                h.rounds = 0;
                h.from = from;
                self.stats.started += 1;
            }
            return;
        }
        self.stats.started += 1;
        if self.hot.len() >= self.config.max_hot {
            self.hot.remove(0);
            self.stats.evicted += 1;
        }
        self.hot.push(Hot {
            key: key.to_vec(),
            stamp,
            id: crate::wire::ack_id(key, stamp),
            count: 0,
            rounds: 0,
            from,
        });
    }

    /// The peers to push to this round: `fanout` distinct uniform indices in
    /// `0..peers` (all of them if fewer), written to `out`. Empty when nothing is
    /// hot or the direction does not push.
    pub fn targets(&self, rng: &mut Rng, peers: usize, out: &mut Vec<usize>) {
        out.clear();
        if self.hot.is_empty() || !self.config.direction.pushes() || peers == 0 {
            return;
        }
        let want = (self.config.fanout as usize).min(peers);
        if want == peers {
            out.extend(0..peers);
            return;
        }
        // Robert Floyd's sampling: `want` distinct indices with `want` draws.
        for j in peers - want..peers {
            let t = rng.index(j + 1);
            if out.contains(&t) {
                out.push(j);
            } else {
                out.push(t);
            }
        }
    }

    /// What to answer a pull request with: the hot rumors, if this node answers
    /// pulls (pull or push-pull); empty otherwise.
    pub fn answer_pull(&self) -> &[Hot] {
        if self.config.direction.pulls() {
            &self.hot
        } else {
            &[]
        }
    }

    /// Records that `key` at `stamp` was carried to a peer, with the peer's
    /// feedback `peer_knew` (ignored by blind rules; for them, call this as the
    /// message leaves). Applies the stop rule and returns whether the rumor is
    /// still hot. A stamp that is no longer hot (replaced, removed) is ignored.
    pub fn record_contact(
        &mut self,
        key: &[u8],
        stamp: Stamp,
        peer_knew: bool,
        rng: &mut Rng,
    ) -> bool {
        let Some(at) = self.position(key, stamp) else {
            return false;
        };
        self.stats.contacts += 1;
        if peer_knew && self.config.stop.trigger == Trigger::Feedback {
            self.stats.unnecessary += 1;
        }
        let h = &mut self.hot[at];
        if self
            .config
            .stop
            .after_contact(&mut h.count, !peer_knew, rng)
        {
            self.hot.remove(at);
            self.stats.removed += 1;
            return false;
        }
        true
    }

    /// [`Rumors::record_contact`] for the rumor an ack names by its id: the
    /// feedback of a feedback rule. Returns whether the rumor is still hot; an
    /// id that is not hot (removed, replaced, never sent) is ignored.
    pub fn record_ack(&mut self, id: u64, peer_knew: bool, rng: &mut Rng) -> bool {
        let Some(at) = self.hot.iter().position(|h| h.id == id) else {
            return false;
        };
        self.stats.contacts += 1;
        if peer_knew {
            self.stats.unnecessary += 1;
        }
        let h = &mut self.hot[at];
        if self
            .config
            .stop
            .after_contact(&mut h.count, !peer_knew, rng)
        {
            self.hot.remove(at);
            self.stats.removed += 1;
            return false;
        }
        true
    }

    /// Records one send of each hot rumor whose id is in `sent`, for a blind
    /// rule (which counts sends, not feedback); in table order, so that the
    /// coin flips replay. Allocates nothing.
    pub fn record_sends(&mut self, sent: &[u64], rng: &mut Rng) {
        let Rumors { config, hot, stats } = self;
        let before = hot.len();
        hot.retain_mut(|h| {
            if !sent.contains(&h.id) {
                return true;
            }
            stats.contacts += 1;
            !config.stop.after_contact(&mut h.count, true, rng)
        });
        stats.removed += (before - hot.len()) as u64;
    }

    /// Ends a round: ages every hot rumor and retires those hot for
    /// `max_hot_rounds`.
    pub fn end_round(&mut self) {
        let max = self.config.max_hot_rounds;
        let before = self.hot.len();
        self.hot.retain_mut(|h| {
            h.rounds += 1;
            h.rounds < max
        });
        self.stats.expired += (before - self.hot.len()) as u64;
    }

    fn position(&self, key: &[u8], stamp: Stamp) -> Option<usize> {
        self.hot
            .iter()
            .position(|h| h.key == key && h.stamp == stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn st(v: u64) -> Stamp {
        Stamp::new(v, NodeId(1))
    }

    #[test]
    fn feedback_counter_needs_k_unnecessary_contacts_in_a_row() {
        let rule = StopRule::feedback_counter(3);
        let mut rng = Rng::new(1);
        let mut c = 0;
        assert!(!rule.after_contact(&mut c, false, &mut rng));
        assert!(!rule.after_contact(&mut c, false, &mut rng));
        // A useful contact resets the count.
        assert!(!rule.after_contact(&mut c, true, &mut rng));
        assert_eq!(c, 0);
        assert!(!rule.after_contact(&mut c, false, &mut rng));
        assert!(!rule.after_contact(&mut c, false, &mut rng));
        assert!(rule.after_contact(&mut c, false, &mut rng));
    }

    #[test]
    fn blind_counter_stops_after_k_sends_whatever_the_peer_knew() {
        let rule = StopRule::blind_counter(2);
        let mut rng = Rng::new(1);
        let mut c = 0;
        assert!(!rule.after_contact(&mut c, true, &mut rng));
        assert!(rule.after_contact(&mut c, true, &mut rng));
    }

    #[test]
    fn coins_stop_with_probability_one_in_k() {
        let mut rng = Rng::new(7);
        let trials = 40_000;
        for rule in [StopRule::blind_coin(4), StopRule::feedback_coin(4)] {
            let mut c = 0;
            let stops = (0..trials)
                .filter(|_| rule.after_contact(&mut c, false, &mut rng))
                .count();
            // Binomial(40,000, 1/4): mean 10,000, sd 86.6; 5 sd = 433.
            assert!(
                (9_567..=10_433).contains(&stops),
                "{} stopped {stops}",
                rule.name()
            );
        }
        // Feedback + coin never stops on a useful contact; k = 1 always stops.
        let mut c = 0;
        assert!(
            (0..1_000).all(|_| !StopRule::feedback_coin(1).after_contact(&mut c, true, &mut rng))
        );
        assert!(StopRule::blind_coin(1).after_contact(&mut c, true, &mut rng));
    }

    #[test]
    fn a_rumor_table_retires_rumors_by_rule_by_age_and_by_eviction() {
        let config = RumorConfig {
            stop: StopRule::feedback_counter(2),
            max_hot: 2,
            max_hot_rounds: 3,
            ..RumorConfig::default()
        };
        let mut r = Rumors::new(config);
        let mut rng = Rng::new(3);
        r.start(b"a", st(1));
        r.start(b"b", st(1));
        assert!(r.record_contact(b"a", st(1), true, &mut rng));
        assert!(!r.record_contact(b"a", st(1), true, &mut rng));
        assert!(!r.is_hot(b"a", st(1)));
        // A newer version of a hot key refreshes it.
        assert!(r.record_contact(b"b", st(1), true, &mut rng));
        r.start(b"b", st(2));
        assert_eq!(r.hot()[0].count(), 0);
        assert!(
            !r.record_contact(b"b", st(1), true, &mut rng),
            "old stamp ignored"
        );
        // Full: the oldest is evicted.
        r.start(b"c", st(1));
        r.start(b"d", st(1));
        assert!(!r.is_hot(b"b", st(2)));
        assert_eq!(r.stats().evicted, 1);
        for _ in 0..3 {
            r.end_round();
        }
        assert!(r.is_idle());
        let s = r.stats();
        assert_eq!((s.removed, s.expired, s.unnecessary), (1, 2, 3));
    }

    #[test]
    fn targets_are_distinct_and_uniform() {
        let config = RumorConfig {
            fanout: 3,
            ..RumorConfig::default()
        };
        let mut r = Rumors::new(config);
        let mut rng = Rng::new(9);
        let mut out = Vec::new();
        r.targets(&mut rng, 10, &mut out);
        assert!(out.is_empty(), "nothing hot, nothing sent");
        r.start(b"k", st(1));
        let mut hits = [0u32; 10];
        for _ in 0..10_000 {
            r.targets(&mut rng, 10, &mut out);
            assert_eq!(out.len(), 3);
            assert!(out[0] != out[1] && out[1] != out[2] && out[0] != out[2]);
            for &t in &out {
                hits[t] += 1;
            }
        }
        // Each peer: Binomial(10,000, 0.3), mean 3,000, sd 45.8; 5 sd = 229.
        assert!(
            hits.iter().all(|&h| (2_771..=3_229).contains(&h)),
            "{hits:?}"
        );
        r.targets(&mut rng, 2, &mut out);
        assert_eq!(out, [0, 1]);
    }

    #[test]
    fn only_pulling_configs_answer_pulls() {
        let mut push = Rumors::new(RumorConfig::default());
        let mut pull = Rumors::new(RumorConfig {
            direction: Direction::Pull,
            ..RumorConfig::default()
        });
        push.start(b"k", st(1));
        pull.start(b"k", st(1));
        assert!(push.answer_pull().is_empty());
        assert_eq!(pull.answer_pull().len(), 1);
        let mut out = Vec::new();
        pull.targets(&mut Rng::new(1), 5, &mut out);
        assert!(out.is_empty(), "pull never pushes");
    }

    #[test]
    fn config_validation_names_the_field() {
        assert!(RumorConfig::default().validate().is_ok());
        let bad_k = RumorConfig {
            stop: StopRule::blind_coin(0),
            ..RumorConfig::default()
        };
        assert_eq!(bad_k.validate().unwrap_err().param(), "rumor_stop_k");
        let bad_fanout = RumorConfig {
            fanout: 0,
            ..RumorConfig::default()
        };
        assert_eq!(bad_fanout.validate().unwrap_err().param(), "rumor_fanout");
    }
}
