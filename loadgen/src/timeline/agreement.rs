//! Agreement, and how long the cluster takes to get back to it after a heal,
//! a resume or a restart (`recover_s`, `docs/report-schema.md`).
//!
//! Agreement is about the nodes running (up: not yet joined, paused or down
//! nodes do not count, neither as holders nor as held):
//! - full membership (every node holds every other; `World::holders` is
//!   `None`): every running node holds every other running node alive, that
//!   is holds it as a member (its handshake answered, not forgotten since)
//!   and neither PFAIL nor FAIL;
//! - partial views (`World::holders` is `Some`): no running node holds a
//!   running node PFAIL or FAIL. A view need not hold everyone, so a node
//!   missing from it is no disagreement.
//!
//! The interpreter keeps each node's opinion of each other from what the
//! nodes saw, and a running count of the pairs (n, m), n ≠ m, both running,
//! that disagree: a [`Seen`] changes one pair, O(1); a node that starts or
//! stops running changes the pairs it is in, O(N), at timeline actions only;
//! checking agreement is reading the count. Full membership keeps who holds
//! whom as a member in a bitset (N² bits: 12.5 MB at 10,000 nodes);
//! suspicions are per-node sets, as large as the suspicions held; partial
//! views need only those.

use std::collections::HashSet;

use gossip_core::Instant;

use crate::observe::Recovery;
use crate::world::{Seen, What};

/// Every node's opinion of every other, the disagreeing pairs, and the
/// recoveries measured against them.
pub(super) struct Agreement {
    nodes: usize,
    partial: bool,
    /// Full membership only: bit `n * nodes + m` is set while n holds m as a
    /// member (a node in handshake is not one: it has not answered yet).
    known: Vec<u64>,
    /// Per node: the nodes it holds PFAIL or FAIL.
    suspects: Vec<HashSet<usize>>,
    running: Vec<bool>,
    /// Each node's opinions count from the start of its current life:
    /// events of an earlier life that are drained late are not its opinions.
    life_from: Vec<Instant>,
    /// Pairs (n, m), n ≠ m, both running, where n does not hold m alive.
    disagreeing: u64,
    /// The latest time an opinion change made a running pair agree or
    /// disagree: when the count last moved.
    changed_at: Instant,
    /// Every recovery so far; at most the last is open.
    recoveries: Vec<Pending>,
    /// The open recovery (an index into `recoveries`).
    open: Option<usize>,
}

/// A recovery in progress or done, on the world's clock.
struct Pending {
    after: &'static str,
    node: Option<usize>,
    at: Instant,
    agreed: Option<Instant>,
    interrupted: bool,
}

impl Agreement {
    /// `nodes` nodes in all, those for which `running` holds running from
    /// `origin`, knowing nobody yet.
    pub(super) fn new(
        nodes: usize,
        partial: bool,
        running: impl Fn(usize) -> bool,
        origin: Instant,
    ) -> Self {
        let running: Vec<bool> = (0..nodes).map(running).collect();
        // Nobody holds anybody yet: with full membership every ordered pair
        // of running nodes disagrees, with partial views none (counted, not
        // summed node by node: O(N²) at 10,000 nodes).
        let r = running.iter().filter(|&&up| up).count() as u64;
        Agreement {
            nodes,
            partial,
            known: match partial {
                true => Vec::new(),
                false => vec![0; (nodes * nodes).div_ceil(64)],
            },
            suspects: vec![HashSet::new(); nodes],
            running,
            // A first life counts whenever its events are stamped: real
            // worlds' nodes may speak before the trial's clock is first read.
            life_from: vec![Instant::ZERO; nodes],
            disagreeing: match partial {
                true => 0,
                false => r * r.saturating_sub(1),
            },
            changed_at: origin,
            recoveries: Vec::new(),
            open: None,
        }
    }

    fn knows(&self, n: usize, m: usize) -> bool {
        let bit = n * self.nodes + m;
        self.known[bit / 64] & (1 << (bit % 64)) != 0
    }

    fn set_known(&mut self, n: usize, m: usize, known: bool) {
        if self.partial {
            return;
        }
        let bit = n * self.nodes + m;
        match known {
            true => self.known[bit / 64] |= 1 << (bit % 64),
            false => self.known[bit / 64] &= !(1 << (bit % 64)),
        }
    }

    /// Whether n holds m alive, by the definition of the module's head.
    fn holds_alive(&self, n: usize, m: usize) -> bool {
        !self.suspects[n].contains(&m) && (self.partial || self.knows(n, m))
    }

    /// Whether the pair (n, m) counts and disagrees.
    fn disagrees(&self, n: usize, m: usize) -> bool {
        n != m && self.running[n] && self.running[m] && !self.holds_alive(n, m)
    }

    /// Takes in one thing a node saw.
    pub(super) fn see(&mut self, e: &Seen) {
        let (n, m) = match e.what {
            What::Joined(m)
            | What::Pfail(m)
            | What::Fail(m)
            | What::Alive(m)
            | What::Forgotten(m) => (e.node, m),
            // A node discovered is in handshake: no opinion yet.
            What::Discovered(_) | What::Update(_) => return,
        };
        if n >= self.nodes || m >= self.nodes || n == m || e.at < self.life_from[n] {
            return;
        }
        let before = self.disagrees(n, m);
        match e.what {
            // A new member carries no suspicion of an earlier entry.
            What::Joined(_) | What::Alive(_) => {
                self.set_known(n, m, true);
                self.suspects[n].remove(&m);
            }
            What::Pfail(_) | What::Fail(_) => {
                self.set_known(n, m, true);
                self.suspects[n].insert(m);
            }
            What::Forgotten(_) => {
                self.set_known(n, m, false);
                self.suspects[n].remove(&m);
            }
            What::Discovered(_) | What::Update(_) => {}
        }
        let after = self.disagrees(n, m);
        if before != after {
            match after {
                true => self.disagreeing += 1,
                false => self.disagreeing -= 1,
            }
            self.changed_at = self.changed_at.max(e.at);
        }
    }

    /// The disagreeing pairs node `x` would be in if it ran: its opinion of
    /// every other running node, and theirs of it.
    fn pairs_with(&self, x: usize) -> u64 {
        (0..self.nodes)
            .filter(|&m| m != x && self.running[m])
            .map(|m| u64::from(!self.holds_alive(x, m)) + u64::from(!self.holds_alive(m, x)))
            .sum()
    }

    /// Node `x` starts or stops running (a timeline action).
    pub(super) fn set_running(&mut self, x: usize, running: bool) {
        if x >= self.nodes || self.running[x] == running {
            return;
        }
        match running {
            true => self.disagreeing += self.pairs_with(x),
            false => self.disagreeing -= self.pairs_with(x),
        }
        self.running[x] = running;
    }

    /// Node `x` starts a new life at `at` knowing nobody (a restart: what
    /// it held before is gone; what others hold of it is theirs).
    pub(super) fn restart(&mut self, x: usize, at: Instant) {
        if x >= self.nodes {
            return;
        }
        let was = self.running[x];
        self.set_running(x, false);
        if !self.partial {
            for m in 0..self.nodes {
                self.set_known(x, m, false);
            }
        }
        self.suspects[x].clear();
        self.life_from[x] = at;
        self.set_running(x, was);
    }

    /// Pairs that disagree now.
    pub(super) fn disagreeing(&self) -> u64 {
        self.disagreeing
    }

    /// A timeline action that disturbs membership: a recovery still open is
    /// interrupted, never given a number.
    pub(super) fn disrupted(&mut self) {
        if let Some(i) = self.open.take() {
            self.recoveries[i].interrupted = true;
        }
    }

    /// A heal, resume or restart at `at` (after the status change it makes):
    /// interrupts the open recovery and opens its own, closed at once if
    /// the running nodes agree already.
    pub(super) fn opened(&mut self, after: &'static str, node: Option<usize>, at: Instant) {
        self.disrupted();
        self.recoveries.push(Pending {
            after,
            node,
            at,
            agreed: None,
            interrupted: false,
        });
        self.open = Some(self.recoveries.len() - 1);
        self.check();
    }

    /// After each step: closes the open recovery if the running nodes agree,
    /// at the latest change that brought them there (or its own start).
    pub(super) fn check(&mut self) {
        if self.disagreeing > 0 {
            return;
        }
        if let Some(i) = self.open.take() {
            let r = &mut self.recoveries[i];
            r.agreed = Some(self.changed_at.max(r.at));
        }
    }

    /// The recoveries, times in seconds by `t` (after the warm-up).
    pub(super) fn recoveries(&self, t: impl Fn(Instant) -> f64) -> Vec<Recovery> {
        self.recoveries
            .iter()
            .map(|r| Recovery {
                after: r.after.into(),
                node: r.node,
                at_s: t(r.at),
                recover_s: r.agreed.map(|a| (a - r.at).as_secs_f64()),
                interrupted: r.interrupted,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossip_core::rng::Rng;

    fn seen(node: usize, at_ms: u64, what: What) -> Seen {
        Seen {
            node,
            at: Instant::from_micros(at_ms * 1000),
            what,
        }
    }

    /// The count recomputed pair by pair.
    fn recount(a: &Agreement) -> u64 {
        let mut c = 0;
        for n in 0..a.nodes {
            for m in 0..a.nodes {
                c += u64::from(a.disagrees(n, m));
            }
        }
        c
    }

    fn everyone_knows_everyone(a: &mut Agreement, at_ms: u64) {
        for n in 0..a.nodes {
            for m in 0..a.nodes {
                a.see(&seen(n, at_ms, What::Joined(m)));
            }
        }
    }

    #[test]
    fn full_membership_agrees_once_every_running_node_holds_every_other_alive() {
        let mut a = Agreement::new(4, false, |n| n < 3, Instant::ZERO);
        assert_eq!(a.disagreeing(), 6, "three running nodes know nobody");
        a.see(&seen(0, 1, What::Discovered(1)));
        assert_eq!(a.disagreeing(), 6, "a node in handshake is no member yet");
        everyone_knows_everyone(&mut a, 1);
        assert_eq!(a.disagreeing(), 0, "node 3 does not run: it does not count");
        a.set_running(3, true);
        assert_eq!(a.disagreeing(), 0, "everyone listed node 3 already");
        a.see(&seen(0, 2, What::Pfail(3)));
        a.see(&seen(1, 2, What::Fail(3)));
        assert_eq!(a.disagreeing(), 2);
        a.set_running(3, false);
        assert_eq!(a.disagreeing(), 0, "suspicions of a stopped node count not");
        a.set_running(3, true);
        a.opened("resume", Some(3), Instant::from_micros(2_500));
        a.see(&seen(0, 3, What::Alive(3)));
        a.check();
        assert!(a.open.is_some(), "node 1 still holds node 3 FAIL");
        a.see(&seen(1, 4, What::Alive(3)));
        a.check();
        let r = a.recoveries(|t| t.as_micros() as f64 / 1e6);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].recover_s, Some(0.0015), "{r:?}");
        assert!(!r[0].interrupted);
        a.see(&seen(2, 5, What::Forgotten(0)));
        assert_eq!(a.disagreeing(), 1, "a forgotten node is not held alive");
    }

    #[test]
    fn partial_views_disagree_only_on_suspicions() {
        let mut a = Agreement::new(3, true, |_| true, Instant::ZERO);
        assert_eq!(a.disagreeing(), 0, "a view need not hold everyone");
        a.see(&seen(0, 1, What::Pfail(1)));
        assert_eq!(a.disagreeing(), 1);
        a.see(&seen(0, 2, What::Forgotten(1)));
        assert_eq!(a.disagreeing(), 0, "forgetting drops the suspicion");
    }

    #[test]
    fn a_restart_forgets_the_old_life_and_ignores_its_late_events() {
        // Real worlds' nodes speak before the trial first reads its clock.
        let mut a = Agreement::new(3, false, |_| true, Instant::from_micros(50_000));
        everyone_knows_everyone(&mut a, 1);
        assert_eq!(a.disagreeing(), 0, "a first life counts from its start");
        a.set_running(2, false);
        a.restart(2, Instant::from_micros(10_000));
        a.set_running(2, true);
        assert_eq!(a.disagreeing(), 2, "node 2 lists nobody in its new life");
        a.see(&seen(2, 9, What::Joined(0)));
        assert_eq!(a.disagreeing(), 2, "an event of its old life");
        a.see(&seen(2, 10, What::Joined(0)));
        a.see(&seen(2, 11, What::Joined(1)));
        assert_eq!(a.disagreeing(), 0);
    }

    #[test]
    fn an_action_before_agreement_interrupts_the_recovery() {
        let mut a = Agreement::new(2, false, |_| true, Instant::ZERO);
        a.opened("heal", None, Instant::from_micros(1));
        a.disrupted();
        everyone_knows_everyone(&mut a, 2);
        a.check();
        a.opened("heal", None, Instant::from_micros(3_000));
        a.opened("restart", Some(1), Instant::from_micros(4_000));
        let r = a.recoveries(|t| t.as_micros() as f64 / 1e6);
        assert!(r[0].interrupted && r[0].recover_s.is_none(), "{r:?}");
        assert_eq!(r[1].recover_s, Some(0.0), "agreement held at the heal");
        assert_eq!(r[2].recover_s, Some(0.0));
    }

    #[test]
    fn the_running_count_matches_a_recount_under_random_changes() {
        for partial in [false, true] {
            let n = 12;
            let mut rng = Rng::new(7);
            let mut a = Agreement::new(n, partial, |x| x % 3 != 0, Instant::ZERO);
            assert_eq!(a.disagreeing(), recount(&a), "at the start");
            for step in 0..20_000u64 {
                let (x, y) = (rng.index(n), rng.index(n));
                match rng.index(9) {
                    0 => a.set_running(x, rng.index(2) == 0),
                    1 => a.restart(x, Instant::from_micros(step * 1000)),
                    k => {
                        let what = match k {
                            2 => What::Discovered(y),
                            3 => What::Joined(y),
                            4 => What::Pfail(y),
                            5 => What::Fail(y),
                            6 | 7 => What::Alive(y),
                            _ => What::Forgotten(y),
                        };
                        a.see(&seen(x, step, what));
                    }
                }
                assert_eq!(a.disagreeing(), recount(&a), "step {step}");
            }
        }
    }
}
