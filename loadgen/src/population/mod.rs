//! Epidemic-only mode: theory at scale.
//!
//! N abstract nodes, no membership table: every contact goes to a uniform random
//! other node. Rounds are lockstep, as the epidemic literature assumes (Demers
//! 1987's "cycles", Pittel 1987, Karp et al. 2000): in round r every node acts
//! once, and every contact of the round sees the state as it was when the round
//! began. Concretely:
//!
//! - a node spreads in round r if it was infective when round r began; a node
//!   first reached in round r has reception round r and starts spreading in
//!   round r + 1;
//! - the feedback a contact gives its sender ("useful") is whether the recipient
//!   lacked the update when the round began, so several senders that reach one
//!   node in the same round all hear "useful";
//! - a node the stop rule removes during round r still serves the rest of round r
//!   (it was infective when the round began) and stops at its end;
//! - push with fanout f sends to f distinct peers at once;
//! - [`Tally`] says whether the stop rule runs once per contact or once per node
//!   per round on "was any of this round's contacts useful" (Demers' simulations;
//!   the two agree for push with fanout 1, and differ for pull, where one
//!   infective node may answer many requests in a round).
//!
//! These are the semantics under which this engine reproduces Demers' published
//! residue, traffic and t_last (see `docs/validation.md`).
//!
//! Figures follow Demers 1987 and DESIGN.md §3: **residue** is the fraction of
//! nodes never reached; **traffic** m is update-carrying messages per node (pull
//! requests and digests that carry nothing are `contacts`, not traffic);
//! **t_ave** is the mean reception round over the nodes reached (the origin counts,
//! at round 0); **t_last** is the round of the last reception; the rounds until
//! all have it equal t_last when nobody is left out; **redundancy** is
//! receptions ÷ nodes reached.
//!
//! State is compact (one byte of state, two of reception round and four of
//! reception count per node), and a push trial touches only infective nodes, so a
//! trial at N = 1,000,000 takes a fraction of a second. The stop rules are
//! [`StopRule::after_contact`], the same code a real node's rumors
//! (`gossip_core::epidemic::rumor::Rumors`) run.
//!
//! It lives here, not in `gossip-core`, because the loadgen's epidemic-only
//! world is its only user: the core holds the protocol and its simulator.
//!
//! `run_trials` spreads independent trials over threads
//! (each trial's seed derives from the batch seed and its index, so the results do
//! not depend on the thread count) and `summarize` turns them into means with
//! standard errors.

use gossip_core::epidemic::rumor::StopRule;
use gossip_core::epidemic::Direction;
use gossip_core::rng::{mix64, Rng};
use gossip_core::ConfigError;

/// What the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Rumor mongering (SIR): infective nodes spread until the stop rule removes them.
    Rumor {
        /// Push: each infective node sends to `fanout` peers. Pull: every node asks
        /// `fanout` peers and infective ones answer. Push-pull: both.
        direction: Direction,
        /// When a node loses interest.
        stop: StopRule,
        /// Peers contacted per node per round.
        fanout: u32,
        /// How often the stop rule runs.
        tally: Tally,
    },
    /// Anti-entropy (SI): every node exchanges with one random peer each round,
    /// digest first, so the update travels only to a node that lacked it when the
    /// round began. Runs until every node has it.
    AntiEntropy {
        /// Push, pull or push-pull exchanges.
        direction: Direction,
    },
}

/// How often a node's stop rule runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tally {
    /// After every contact that carried the update (`gossip_core::epidemic::rumor::Rumors`
    /// does this).
    #[default]
    PerContact,
    /// Once per round for each node that carried the update in it, with feedback
    /// "useful" if any of its contacts that round was (Demers 1987's simulations:
    /// it reproduces his pull table).
    PerRound,
}

/// Slow anti-entropy behind rumor mongering, to mop up the residue (Demers 1987,
/// §1.5). A node that receives the update this way holds it as a hot rumor, as a
/// real node does with any update that is news to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backup {
    /// An anti-entropy round every this many rounds, at least 1.
    pub every: u32,
    /// Which way its exchanges go.
    pub direction: Direction,
}

/// One experiment: the population, the protocol, and its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Nodes, 2 to 2^31.
    pub n: u32,
    /// What they run.
    pub protocol: Protocol,
    /// Anti-entropy behind rumors, if any (ignored for [`Protocol::AntiEntropy`]).
    pub backup: Option<Backup>,
    /// A trial stops after this many rounds even if it could go on (1 to 65,535;
    /// default 10,000); its report says so.
    pub max_rounds: u32,
}

impl Scenario {
    /// Rumor mongering with fanout 1 and no backup.
    pub fn rumor(n: u32, direction: Direction, stop: StopRule) -> Self {
        Scenario {
            n,
            protocol: Protocol::Rumor {
                direction,
                stop,
                fanout: 1,
                tally: Tally::PerContact,
            },
            backup: None,
            max_rounds: 10_000,
        }
    }

    /// Anti-entropy.
    pub fn anti_entropy(n: u32, direction: Direction) -> Self {
        Scenario {
            n,
            protocol: Protocol::AntiEntropy { direction },
            backup: None,
            max_rounds: 10_000,
        }
    }

    /// The same with `fanout` peers per node per round (rumors only).
    pub fn with_fanout(mut self, fanout: u32) -> Self {
        if let Protocol::Rumor { fanout: f, .. } = &mut self.protocol {
            *f = fanout;
        }
        self
    }

    /// The same with another stop-rule tally (rumors only).
    pub fn with_tally(mut self, tally: Tally) -> Self {
        if let Protocol::Rumor { tally: t, .. } = &mut self.protocol {
            *t = tally;
        }
        self
    }

    /// The same with anti-entropy behind the rumors.
    pub fn with_backup(mut self, backup: Backup) -> Self {
        self.backup = Some(backup);
        self
    }

    /// The same with another round cap.
    pub fn with_max_rounds(mut self, max_rounds: u32) -> Self {
        self.max_rounds = max_rounds;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem| {
            Err(ConfigError {
                field,
                part: "",
                problem,
            })
        };
        if !(2..=1 << 31).contains(&self.n) {
            return err("population.n", "must be between 2 and 2^31");
        }
        if !(1..=u32::from(u16::MAX)).contains(&self.max_rounds) {
            return err("population.max_rounds", "must be between 1 and 65535");
        }
        if let Protocol::Rumor { stop, fanout, .. } = self.protocol {
            stop.validate()?;
            if !(1..=64).contains(&fanout) {
                return err("rumor_fanout", "must be between 1 and 64");
            }
        }
        if self.backup.is_some_and(|b| b.every == 0) {
            return err("backup.every", "must be at least 1 round");
        }
        Ok(())
    }
}

/// What one trial measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrialReport {
    /// Nodes.
    pub n: u32,
    /// Nodes that got the update, the origin included.
    pub reached: u32,
    /// Update-carrying messages sent (every one is received: the model loses none).
    pub messages: u64,
    /// Contacts made, update-carrying or not (pull requests, digests).
    pub contacts: u64,
    /// Sum over the nodes reached of their reception round.
    pub reception_rounds_total: u64,
    /// Round of the last first-reception (0 if only the origin has it).
    pub t_last: u32,
    /// Rounds run until nothing could change (or the cap).
    pub rounds: u32,
    /// Most copies any one node received.
    pub receptions_max: u32,
    /// Whether the trial hit `max_rounds` while it could still change.
    pub capped: bool,
}

impl TrialReport {
    /// Fraction of nodes never reached (Demers' residue s).
    pub fn residue(&self) -> f64 {
        f64::from(self.n - self.reached) / f64::from(self.n)
    }

    /// Update-carrying messages per node (Demers' traffic m).
    pub fn traffic(&self) -> f64 {
        self.messages as f64 / f64::from(self.n)
    }

    /// Mean reception round over the nodes reached (Demers' t_ave).
    pub fn t_ave(&self) -> f64 {
        self.reception_rounds_total as f64 / f64::from(self.reached)
    }

    /// Receptions per node reached (DESIGN.md §3 redundancy).
    pub fn redundancy(&self) -> f64 {
        self.messages as f64 / f64::from(self.reached)
    }

    /// Rounds until every node had the update, if every node got it.
    pub fn rounds_to_all(&self) -> Option<u32> {
        (self.reached == self.n).then_some(self.t_last)
    }
}
mod engine;
mod trials;

pub use trials::{run_trials, summarize, Estimate, Summary};

use engine::SUSCEPTIBLE;

/// Reusable buffers for trials of any size: run many trials through one.
#[derive(Clone, Debug, Default)]
pub struct Population {
    /// SUSCEPTIBLE, KNOWS, INFECTIVE + count or RETIRING, per node.
    state: Vec<u8>,
    /// Reception round, valid where state is not SUSCEPTIBLE.
    got: Vec<u16>,
    /// Copies received, per node.
    receptions: Vec<u32>,
    /// Per-round stop-rule tally, per node (Tally::PerRound only).
    tally: Vec<u8>,
    /// Nodes with a tally this round.
    touched: Vec<u32>,
    /// Nodes whose rule fired this round.
    retiring: Vec<u32>,
    /// Nodes first reached this round (push: next round's new senders).
    fresh: Vec<u32>,
    /// Push: the nodes infective when this round began.
    active: Vec<u32>,
    /// Push: scratch for the next round's senders.
    next: Vec<u32>,
}

impl Population {
    /// Empty buffers; the first trial sizes them.
    pub fn new() -> Self {
        Population::default()
    }

    /// Runs one trial of `scenario`, every random choice drawn from `rng`.
    ///
    /// # Errors
    /// A [`ConfigError`] if the scenario is invalid ([`Scenario::validate`]).
    pub fn run(&mut self, scenario: &Scenario, rng: &mut Rng) -> Result<TrialReport, ConfigError> {
        scenario.validate()?;
        Ok(engine::run(self, scenario, rng))
    }

    /// The round in which `node` first received the update in the last trial
    /// (0 for the origin), or `None` if it never did.
    pub fn reception_round(&self, node: u32) -> Option<u32> {
        let i = node as usize;
        (self.state.get(i).is_some_and(|&s| s != SUSCEPTIBLE)).then(|| u32::from(self.got[i]))
    }

    /// Copies of the update each node received in the last trial (for the
    /// redundancy distribution).
    pub fn receptions(&self) -> &[u32] {
        &self.receptions
    }
}

/// The seed of trial `index` of a batch seeded with `seed`: independent of how
/// trials are spread over threads.
pub fn trial_seed(seed: u64, index: u64) -> u64 {
    mix64(seed ^ mix64(index.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(s: &Scenario, seed: u64) -> (TrialReport, Population) {
        let mut pop = Population::new();
        let r = pop.run(s, &mut Rng::new(seed)).unwrap();
        (r, pop)
    }

    /// Recomputes every figure of a report from the per-node arrays.
    fn check_consistent(r: &TrialReport, pop: &Population) {
        let n = r.n;
        let rounds: Vec<u32> = (0..n).filter_map(|i| pop.reception_round(i)).collect();
        assert_eq!(rounds.len() as u32, r.reached);
        assert_eq!(
            rounds.iter().map(|&x| u64::from(x)).sum::<u64>(),
            r.reception_rounds_total
        );
        assert_eq!(rounds.iter().copied().max().unwrap(), r.t_last);
        assert_eq!(rounds.iter().filter(|&&x| x == 0).count(), 1, "one origin");
        assert_eq!(
            pop.receptions().iter().map(|&c| u64::from(c)).sum::<u64>(),
            r.messages
        );
        assert_eq!(
            pop.receptions().iter().copied().max().unwrap(),
            r.receptions_max
        );
        assert!(r.messages <= r.contacts * 2);
        assert!(r.t_last <= r.rounds);
    }

    #[test]
    fn every_variant_keeps_its_books_straight() {
        let stops = [
            StopRule::feedback_counter(2),
            StopRule::feedback_coin(2),
            StopRule::blind_counter(3),
            StopRule::blind_coin(3),
        ];
        let mut seed = 0;
        for direction in [Direction::Push, Direction::Pull, Direction::PushPull] {
            for stop in stops {
                for (fanout, tally) in [
                    (1, Tally::PerContact),
                    (3, Tally::PerContact),
                    (3, Tally::PerRound),
                ] {
                    seed += 1;
                    let s = Scenario::rumor(300, direction, stop)
                        .with_fanout(fanout)
                        .with_tally(tally);
                    let (r, pop) = run(&s, seed);
                    check_consistent(&r, &pop);
                    assert!(!r.capped);
                    assert!(r.reached > 1, "{direction:?} {stop:?} reached nobody");
                }
            }
            let (r, pop) = run(&Scenario::anti_entropy(300, direction), seed);
            check_consistent(&r, &pop);
            assert_eq!(r.rounds_to_all(), Some(r.t_last));
            assert_eq!(r.t_last, r.rounds);
        }
    }

    #[test]
    fn tallies_agree_for_push_with_fanout_one_and_differ_for_pull() {
        // Push, fanout 1: one contact per sender per round, so running the rule per
        // contact or per round is the same decision (counters draw no randomness,
        // so the trials are identical).
        for seed in 0..20 {
            let s = Scenario::rumor(1_000, Direction::Push, StopRule::feedback_counter(2));
            let a = run(&s, seed).0;
            let b = run(&s.with_tally(Tally::PerRound), seed).0;
            assert_eq!(a, b);
        }
        // Pull: an infective node may answer several requests in a round; per round
        // it counts at most one unnecessary round, so it spreads longer.
        let s = Scenario::rumor(1_000, Direction::Pull, StopRule::feedback_counter(1));
        let (mut per_contact, mut per_round) = (0u64, 0u64);
        for seed in 0..100 {
            per_contact += run(&s, seed).0.messages;
            per_round += run(&s.with_tally(Tally::PerRound), seed).0.messages;
        }
        // Means about 2.2 and 2.7 messages per node (sd about 0.04 per trial).
        assert!(
            per_round > per_contact + 100 * 300,
            "{per_round} vs {per_contact}"
        );
    }

    #[test]
    fn a_seed_replays_the_same_trial() {
        let s = Scenario::rumor(2_000, Direction::PushPull, StopRule::feedback_coin(2));
        assert_eq!(run(&s, 42).0, run(&s, 42).0);
        assert_ne!(run(&s, 42).0, run(&s, 43).0);
    }

    #[test]
    fn blind_coin_one_is_a_chain_of_single_sends() {
        // k = 1: every node sends exactly once, so the reached nodes form a chain
        // that grows by one per round until it hits a node that knew.
        for seed in 0..50 {
            let (r, _) = run(
                &Scenario::rumor(1_000, Direction::Push, StopRule::blind_coin(1)),
                seed,
            );
            assert_eq!(r.messages, u64::from(r.reached));
            assert_eq!(r.t_last, r.reached - 1);
            assert_eq!(r.rounds, r.reached);
            // Reception rounds are 0, 1, ..., reached - 1.
            let m = u64::from(r.reached);
            assert_eq!(r.reception_rounds_total, m * (m - 1) / 2);
        }
    }

    #[test]
    fn anti_entropy_sends_the_update_only_to_nodes_that_lacked_it() {
        // Pull: a node receives only by its own request, once.
        let (r, pop) = run(&Scenario::anti_entropy(5_000, Direction::Pull), 7);
        assert_eq!(r.messages, 4_999);
        assert!(pop.receptions().iter().all(|&c| c <= 1));
        // Push: redundant only when several senders reach one node in the same
        // round, which is common at the end (Poisson(1) pushes per lacking node).
        let (r, pop) = run(&Scenario::anti_entropy(5_000, Direction::Push), 7);
        assert!(r.messages > 4_999 && r.messages < 2 * 4_999, "{r:?}");
        assert!(pop.receptions().iter().any(|&c| c > 1));
    }

    #[test]
    fn backup_anti_entropy_removes_the_residue() {
        let s = Scenario::rumor(2_000, Direction::Push, StopRule::feedback_counter(1));
        let (plain, _) = run(&s, 5);
        assert!(plain.reached < 2_000, "k = 1 leaves residue");
        let backed = s.with_backup(Backup {
            every: 5,
            direction: Direction::PushPull,
        });
        for seed in 0..10 {
            let (r, pop) = run(&backed, seed);
            check_consistent(&r, &pop);
            assert_eq!(r.reached, 2_000);
            assert!(!r.capped);
        }
    }

    #[test]
    fn the_round_cap_stops_a_trial_and_says_so() {
        let s = Scenario::anti_entropy(10_000, Direction::Push).with_max_rounds(3);
        let (r, _) = run(&s, 1);
        assert!(r.capped && r.rounds == 3 && r.reached <= 8);
        assert_eq!(r.rounds_to_all(), None);
    }

    #[test]
    fn invalid_scenarios_are_refused() {
        let mut pop = Population::new();
        let mut rng = Rng::new(1);
        let bad = [
            Scenario::anti_entropy(1, Direction::Push),
            Scenario::anti_entropy(10, Direction::Push).with_max_rounds(70_000),
            Scenario::rumor(10, Direction::Push, StopRule::blind_coin(0)),
            Scenario::rumor(10, Direction::Push, StopRule::blind_coin(1)).with_fanout(65),
            Scenario::rumor(10, Direction::Push, StopRule::blind_coin(1)).with_backup(Backup {
                every: 0,
                direction: Direction::Pull,
            }),
        ];
        for s in bad {
            assert!(pop.run(&s, &mut rng).is_err(), "{s:?}");
        }
    }

    #[test]
    fn fanout_larger_than_the_population_contacts_everyone() {
        let s = Scenario::rumor(5, Direction::Push, StopRule::blind_counter(1)).with_fanout(10);
        let (r, _) = run(&s, 3);
        // The origin tells all 4 others in round 1; each then tells all 4 others once.
        assert_eq!((r.reached, r.t_last, r.messages), (5, 1, 20));
    }

    #[test]
    fn batches_do_not_depend_on_the_thread_count() {
        let s = Scenario::rumor(500, Direction::Push, StopRule::feedback_counter(2));
        let one = run_trials(&s, 9, 13, 1).unwrap();
        let three = run_trials(&s, 9, 13, 3).unwrap();
        assert_eq!(one, three);
        let sum = summarize(&one);
        assert_eq!(sum.trials, 13);
        assert!(sum.traffic.std_error > 0.0 && sum.traffic.std_error < sum.traffic.std_dev);
        let e = Estimate::of([1.0, 2.0, 3.0, 4.0]);
        assert!((e.mean - 2.5).abs() < 1e-12);
        assert!((e.std_dev - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((e.std_error - e.std_dev / 2.0).abs() < 1e-12);
    }
}
