//! The lockstep engine behind [`super::Population::run`]: one trial's rounds over
//! compact per-node state.

use super::{Population, Protocol, Scenario, Tally, TrialReport};
use gossip_core::epidemic::rumor::StopRule;
use gossip_core::epidemic::Direction;
use gossip_core::rng::Rng;

/// Node state byte: never reached.
pub(super) const SUSCEPTIBLE: u8 = 0;
/// Knows the update and is not spreading it (removed, or an anti-entropy node).
pub(super) const KNOWS: u8 = 1;
/// Infective with stop-rule count c: `INFECTIVE + c` (c < k <= 253).
pub(super) const INFECTIVE: u8 = 2;
/// Infective, but its stop rule fired this round: it serves the rest of the
/// round and is removed at its end.
pub(super) const RETIRING: u8 = u8::MAX;

/// Per-round tally byte: no contact yet this round.
pub(super) const TALLY_NONE: u8 = 0;
/// Per-round tally byte: only unnecessary contacts so far this round.
pub(super) const TALLY_UNNECESSARY: u8 = 1;
/// Per-round tally byte: at least one useful contact this round.
pub(super) const TALLY_USEFUL: u8 = 2;

/// Runs one trial of a validated scenario through `pop`'s buffers.
pub(super) fn run(pop: &mut Population, scenario: &Scenario, rng: &mut Rng) -> TrialReport {
    let n = scenario.n as usize;
    pop.state.clear();
    pop.state.resize(n, SUSCEPTIBLE);
    pop.receptions.clear();
    pop.receptions.resize(n, 0);
    // Reception rounds are read only where state says the node has the update.
    pop.got.resize(n, 0);
    for v in [
        &mut pop.touched,
        &mut pop.retiring,
        &mut pop.fresh,
        &mut pop.active,
        &mut pop.next,
    ] {
        v.clear();
    }
    let (stop, per_round) = match scenario.protocol {
        Protocol::Rumor { stop, tally, .. } => (stop, tally == Tally::PerRound),
        Protocol::AntiEntropy { .. } => (StopRule::blind_counter(1), false),
    };
    if per_round {
        pop.tally.clear();
        pop.tally.resize(n, TALLY_NONE);
    }
    let origin = rng.below(u64::from(scenario.n)) as u32;
    pop.got[origin as usize] = 0;
    let mut e = Engine {
        b: pop,
        n: scenario.n,
        stop,
        per_round,
        collect_fresh: false,
        infective: 0,
        report: TrialReport {
            n: scenario.n,
            reached: 1,
            ..TrialReport::default()
        },
    };
    match scenario.protocol {
        Protocol::AntiEntropy { direction } => {
            e.run_anti_entropy(origin, direction, scenario.max_rounds, rng)
        }
        Protocol::Rumor {
            direction, fanout, ..
        } => e.run_rumor(origin, direction, fanout, scenario, rng),
    }
    e.report
}

/// One trial in progress: the buffers and the running figures.
struct Engine<'a> {
    b: &'a mut Population,
    n: u32,
    stop: StopRule,
    per_round: bool,
    /// Whether deliver() records first receptions in `fresh` (push needs them).
    collect_fresh: bool,
    /// Nodes with state >= INFECTIVE (RETIRING included until the round ends).
    infective: u32,
    report: TrialReport,
}

impl Engine<'_> {
    fn run_anti_entropy(
        &mut self,
        origin: u32,
        direction: Direction,
        max_rounds: u32,
        rng: &mut Rng,
    ) {
        self.b.state[origin as usize] = KNOWS;
        let mut round = 0;
        while self.report.reached < self.n && round < max_rounds {
            round += 1;
            self.anti_entropy_round(round as u16, direction, KNOWS, rng);
        }
        self.report.rounds = round;
        self.report.capped = self.report.reached < self.n;
    }

    fn run_rumor(
        &mut self,
        origin: u32,
        direction: Direction,
        fanout: u32,
        scenario: &Scenario,
        rng: &mut Rng,
    ) {
        self.b.state[origin as usize] = INFECTIVE;
        self.infective = 1;
        self.collect_fresh = direction == Direction::Push;
        self.b.active.push(origin);
        let mut round = 0;
        loop {
            let more =
                self.infective > 0 || (scenario.backup.is_some() && self.report.reached < self.n);
            if !more || round >= scenario.max_rounds {
                self.report.capped = more;
                break;
            }
            round += 1;
            let r = round as u16;
            if self.infective > 0 {
                if direction == Direction::Push {
                    for at in 0..self.b.active.len() {
                        let i = self.b.active[at];
                        self.push_turn(i, r, fanout, rng);
                    }
                } else {
                    for j in 0..self.n {
                        self.exchange_turn(j, r, direction, fanout, rng);
                    }
                }
            }
            if let Some(b) = scenario.backup {
                if round % b.every == 0 {
                    self.anti_entropy_round(r, b.direction, INFECTIVE, rng);
                }
            }
            self.end_round(rng);
        }
        self.report.rounds = round;
    }

    /// One update-carrying message arrives at `to` in round `r`; if it is the
    /// first, `to` takes state `new_state`. Returns the sender's feedback: whether
    /// `to` lacked the update when the round began.
    #[inline]
    fn deliver(&mut self, to: u32, r: u16, new_state: u8) -> bool {
        let at = to as usize;
        self.report.messages += 1;
        let c = self.b.receptions[at].saturating_add(1);
        self.b.receptions[at] = c;
        self.report.receptions_max = self.report.receptions_max.max(c);
        if self.b.state[at] != SUSCEPTIBLE {
            return self.b.got[at] == r;
        }
        self.b.state[at] = new_state;
        self.b.got[at] = r;
        self.report.reached += 1;
        self.report.reception_rounds_total += u64::from(r);
        self.report.t_last = u32::from(r);
        if new_state >= INFECTIVE {
            self.infective += 1;
            if self.collect_fresh {
                self.b.fresh.push(to);
            }
        }
        true
    }

    /// Whether `node` was infective when round `r` began (it spreads all round).
    #[inline]
    fn is_spreading(&self, node: u32, r: u16) -> bool {
        let i = node as usize;
        self.b.state[i] >= INFECTIVE && self.b.got[i] < r
    }

    /// Whether `node` had the update when round `r` began.
    #[inline]
    fn knew(&self, node: u32, r: u16) -> bool {
        let i = node as usize;
        self.b.state[i] != SUSCEPTIBLE && self.b.got[i] < r
    }

    /// `sender` carried the update to a peer, with feedback `useful`: run its stop
    /// rule now (per contact) or tally it for the end of the round (per round).
    #[inline]
    fn note(&mut self, sender: u32, useful: bool, rng: &mut Rng) {
        let i = sender as usize;
        if self.per_round {
            let t = &mut self.b.tally[i];
            if *t == TALLY_NONE {
                self.b.touched.push(sender);
            }
            *t = (*t).max(if useful {
                TALLY_USEFUL
            } else {
                TALLY_UNNECESSARY
            });
        } else {
            self.apply_rule(sender, useful, rng);
        }
    }

    #[inline]
    fn apply_rule(&mut self, node: u32, useful: bool, rng: &mut Rng) {
        let i = node as usize;
        let s = self.b.state[i];
        if s == RETIRING {
            return;
        }
        let mut count = s - INFECTIVE;
        if self.stop.after_contact(&mut count, useful, rng) {
            self.b.state[i] = RETIRING;
            self.b.retiring.push(node);
        } else {
            self.b.state[i] = INFECTIVE + count;
        }
    }

    /// Push: infective `i` sends to `fanout` distinct peers at once and hears
    /// their feedback.
    fn push_turn(&mut self, i: u32, r: u16, fanout: u32, rng: &mut Rng) {
        let mut peers = [0u32; 64];
        let k = distinct_others(rng, self.n, i, fanout, &mut peers);
        self.report.contacts += k as u64;
        for &j in &peers[..k] {
            let useful = self.deliver(j, r, INFECTIVE);
            self.note(i, useful, rng);
        }
    }

    /// Pull or push-pull: node `j` contacts `fanout` distinct peers. If it pushes
    /// and was infective when the round began, it sends to all of them; if it
    /// pulls, each peer infective when the round began answers it.
    fn exchange_turn(&mut self, j: u32, r: u16, direction: Direction, fanout: u32, rng: &mut Rng) {
        let mut peers = [0u32; 64];
        let k = distinct_others(rng, self.n, j, fanout, &mut peers);
        self.report.contacts += k as u64;
        if direction.pushes() && self.is_spreading(j, r) {
            for &i in &peers[..k] {
                let useful = self.deliver(i, r, INFECTIVE);
                self.note(j, useful, rng);
            }
        }
        if direction.pulls() {
            for &i in &peers[..k] {
                if self.is_spreading(i, r) {
                    let useful = self.deliver(j, r, INFECTIVE);
                    self.note(i, useful, rng);
                }
            }
        }
    }

    /// One anti-entropy round: every node exchanges with one random peer, and the
    /// update travels to whichever side lacked it when the round began (their
    /// digests said so). New holders take `new_state`.
    fn anti_entropy_round(&mut self, r: u16, direction: Direction, new_state: u8, rng: &mut Rng) {
        for j in 0..self.n {
            let i = other_than(rng, self.n, j);
            self.report.contacts += 1;
            let (j_knew, i_knew) = (self.knew(j, r), self.knew(i, r));
            if direction.pushes() && j_knew && !i_knew {
                self.deliver(i, r, new_state);
            } else if direction.pulls() && i_knew && !j_knew {
                self.deliver(j, r, new_state);
            }
        }
    }

    /// Ends a round: per-round tallies meet the stop rule, removals take effect,
    /// and (push) next round's senders are the survivors plus the newly reached.
    fn end_round(&mut self, rng: &mut Rng) {
        if self.per_round {
            let touched = core::mem::take(&mut self.b.touched);
            for &node in &touched {
                let t = core::mem::replace(&mut self.b.tally[node as usize], TALLY_NONE);
                self.apply_rule(node, t == TALLY_USEFUL, rng);
            }
            self.b.touched = touched;
            self.b.touched.clear();
        }
        for at in 0..self.b.retiring.len() {
            let node = self.b.retiring[at] as usize;
            self.b.state[node] = KNOWS;
        }
        self.infective -= self.b.retiring.len() as u32;
        self.b.retiring.clear();
        if self.collect_fresh {
            let b = &mut *self.b;
            b.next.clear();
            b.next.extend(
                b.active
                    .iter()
                    .copied()
                    .filter(|&i| b.state[i as usize] >= INFECTIVE),
            );
            b.next.append(&mut b.fresh);
            core::mem::swap(&mut b.active, &mut b.next);
        }
    }
}

/// Fills `out` with `fanout` distinct uniform peers other than `me` (all others if
/// fewer) and returns how many.
#[inline]
fn distinct_others(rng: &mut Rng, n: u32, me: u32, fanout: u32, out: &mut [u32; 64]) -> usize {
    if fanout == 1 {
        out[0] = other_than(rng, n, me);
        return 1;
    }
    let want = fanout.min(n - 1) as usize;
    if want == (n - 1) as usize {
        for (slot, j) in out.iter_mut().zip((0..n).filter(|&j| j != me)) {
            *slot = j;
        }
        return want;
    }
    let mut k = 0;
    while k < want {
        let j = other_than(rng, n, me);
        if !out[..k].contains(&j) {
            out[k] = j;
            k += 1;
        }
    }
    k
}

/// A uniform random peer index in `0..n` other than `me` (`n >= 2`).
///
/// One draw, no rejection: draw from the `n - 1` others and skip over `me`.
#[inline]
fn other_than(rng: &mut Rng, n: u32, me: u32) -> u32 {
    debug_assert!(n >= 2 && me < n);
    let j = rng.below(u64::from(n - 1)) as u32;
    if j >= me {
        j + 1
    } else {
        j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_than_never_picks_me_and_covers_everyone_else() {
        let mut rng = Rng::new(3);
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            seen[other_than(&mut rng, 5, 2) as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        for (i, &c) in seen.iter().enumerate() {
            if i != 2 {
                // 1,250 expected each; 5 standard deviations is about 153.
                assert!((1_097..=1_403).contains(&c), "peer {i} picked {c} times");
            }
        }
    }
}
