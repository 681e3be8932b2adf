//! Validation of the epidemic-only engine (`gossip_loadgen::population`)
//! against the literature (issue 3, item 5). Every figure is a mean over trials
//! with a fixed seed; `docs/validation.md` shows the same figures side by side
//! (regenerate them with
//! `cargo run --release -p gossip-loadgen --example epidemic_tables`).
//!
//! # Where the tolerances come from
//!
//! A simulated figure is the mean of T independent trials, so its standard
//! error is SE_sim = sd / sqrt(T), with sd the sample standard deviation over
//! the trials. A published figure is itself a Monte-Carlo mean, printed to a few
//! digits. The comparison therefore allows for three things:
//!
//! 1. our sampling error, SE_sim (measured);
//! 2. the paper's sampling error, SE_pub = sd / sqrt(T_pub). Demers et al. do not
//!    say how many runs a row averages; we take T_pub = 100. Fewer runs would not
//!    support the digits they print: sd(t_last) is about 1.2 cycles, so 100 runs
//!    give SE_pub = 0.12, about one unit of the printed t_last (16.8, 16.9, ...).
//!    The process is the same, so our sd estimates theirs;
//! 3. rounding: a printed 0.037 stands for anything within half a unit of its
//!    last digit, h = 0.0005.
//!
//! A figure passes when |sim - pub| <= Z * sqrt(SE_sim^2 + SE_pub^2) + h with
//! Z = 4.5: for one comparison of two unbiased normal estimates, a false alarm
//! has probability 7e-6, so the ~60 comparisons here fail by chance with
//! probability below 1e-3; the seeds are fixed, so a run is also reproducible.
//!
//! Where the theory is asymptotic (Pittel's and Karp et al.'s O(1) and
//! O(log log n) terms), only the growth terms are pinned; see
//! [`anti_entropy_rounds_follow_pittel_and_karp`] for how the unknown constants
//! enter.

use gossip_core::epidemic::rumor::StopRule;
use gossip_core::epidemic::Direction;
use gossip_loadgen::population::{
    run_trials, summarize, Estimate, Scenario, Summary, Tally, TrialReport,
};

/// Standard errors allowed (see the module docs).
const Z: f64 = 4.5;
/// Runs we assume behind each published row.
const PUBLISHED_RUNS: f64 = 100.0;
/// Trials per simulated row at n = 1,000.
const TRIALS: usize = 2_000;
/// The machine has two cores; the reports do not depend on this.
const THREADS: usize = 2;
const SEED: u64 = 0x5eed;

/// A published figure as printed, e.g. "0.037": its value and half a unit of
/// its last digit.
fn printed(text: &str) -> (f64, f64) {
    let value: f64 = text.parse().expect("a decimal number");
    let decimals = text.split_once('.').map_or(0, |(_, frac)| frac.len());
    (value, 0.5 * 10f64.powi(-(decimals as i32)))
}

/// Compares a simulated estimate with a printed figure; returns a line for the
/// failure report if they disagree beyond the tolerance.
fn compare(what: &str, sim: &Estimate, published: &str) -> Option<String> {
    let (value, half_unit) = printed(published);
    let se_pub = sim.std_dev / PUBLISHED_RUNS.sqrt();
    let tolerance = Z * (sim.std_error.powi(2) + se_pub.powi(2)).sqrt() + half_unit;
    let gap = (sim.mean - value).abs();
    // Shown with --nocapture: how much of its tolerance each comparison uses.
    eprintln!(
        "{what}: simulated {:.5} ± {:.5}, published {published}, gap/tolerance {:.2}",
        sim.mean,
        sim.std_error,
        gap / tolerance
    );
    (gap > tolerance).then(|| {
        format!(
            "{what}: simulated {:.5} (SE {:.5}), published {published}, gap {gap:.5} > tolerance {tolerance:.5}",
            sim.mean, sim.std_error
        )
    })
}

fn batch(scenario: &Scenario, trials: usize, seed: u64) -> (Vec<TrialReport>, Summary) {
    let reports = run_trials(scenario, seed, trials, THREADS).expect("valid scenario");
    let summary = summarize(&reports);
    assert_eq!(
        summary.capped, 0,
        "no trial may hit the round cap: {scenario:?}"
    );
    (reports, summary)
}

include!("data/demers_tables.rs");

/// Runs every row of a table and compares the chosen columns.
///
/// Demers' "cycle" is our round: every site acts once per cycle, a site infected
/// in a cycle starts spreading in the next (his blind + coin, k = 1 row, a chain
/// of about 40 sites over t_last = 38 cycles, shows it), and every contact in a
/// cycle sees the state at its start. His sites apply the stop rule once per
/// cycle (`Tally::PerRound`; identical to per contact for push with one contact
/// per cycle). t_ave is the mean reception cycle over the sites reached, the
/// origin at 0; t_last the cycle of the last reception.
fn check_table(
    title: &str,
    direction: Direction,
    rule: fn(u8) -> StopRule,
    rows: &[Row],
    t_ave_rows: &[u8],
) {
    let mut failures = Vec::new();
    for &(k, s, m, t_ave, t_last) in rows {
        let scenario = Scenario::rumor(1_000, direction, rule(k)).with_tally(Tally::PerRound);
        let (_, sum) = batch(&scenario, TRIALS, SEED + u64::from(k));
        let row = format!("{title} k={k}");
        failures.extend(compare(&format!("{row} residue s"), &sum.residue, s));
        failures.extend(compare(&format!("{row} traffic m"), &sum.traffic, m));
        failures.extend(compare(&format!("{row} t_last"), &sum.t_last, t_last));
        if t_ave_rows.contains(&k) {
            failures.extend(compare(&format!("{row} t_ave"), &sum.t_ave, t_ave));
        }
    }
    assert!(
        failures.is_empty(),
        "disagreements with Demers 1987:\n{}",
        failures.join("\n")
    );
}

#[test]
fn demers_table_1_push_feedback_counter_residue_traffic_and_t_last() {
    // t_ave is not compared: the published push t_ave column (11.0 .. 12.8) is
    // one to three cycles above the mean reception cycle of any model that
    // matches the other three columns, and above the same paper's pull t_ave
    // (about 10), although push and pull grow alike until most sites know.
    // docs/validation.md records the disagreement.
    check_table(
        "Table 1 (push, feedback+counter)",
        Direction::Push,
        StopRule::feedback_counter,
        &TABLE_1,
        &[],
    );
}

#[test]
fn demers_table_2_push_blind_coin_residue_traffic_and_t_last() {
    // t_ave only for k = 1, where every reached site sends exactly once, the
    // reached sites form a chain, and t_ave = t_last / 2 whatever the averaging.
    check_table(
        "Table 2 (push, blind+coin)",
        Direction::Push,
        StopRule::blind_coin,
        &TABLE_2,
        &[1],
    );
}

#[test]
fn demers_table_3_pull_feedback_counter_all_four_figures() {
    check_table(
        "Table 3 (pull, feedback+counter)",
        Direction::Pull,
        StopRule::feedback_counter,
        &TABLE_3,
        &[1, 2, 3],
    );
}

/// Demers §1.4: for push rumor mongering, a site is missed only if each of the
/// n·m messages misses it, each with probability 1 - 1/(n-1), so
/// s = (1 - 1/(n-1))^(n m) ≈ e^-m whatever the stop rule. The relation is tested
/// per trial: d = s - (1 - 1/(n-1))^(n m), whose mean over trials must be zero
/// within Z standard errors of d (paired, so the spread of s and m cancels).
#[test]
fn push_residue_follows_s_equals_e_to_the_minus_m() {
    let n = 1_000u32;
    let miss = 1.0 - 1.0 / f64::from(n - 1);
    let rules = [
        StopRule::feedback_counter(1),
        StopRule::feedback_counter(3),
        StopRule::feedback_coin(2),
        StopRule::blind_counter(2),
        StopRule::blind_coin(2),
        StopRule::blind_coin(4),
    ];
    let mut failures = Vec::new();
    for (i, rule) in rules.into_iter().enumerate() {
        let scenario = Scenario::rumor(n, Direction::Push, rule);
        let (reports, _) = batch(&scenario, TRIALS, SEED + 100 + i as u64);
        let d = Estimate::of(
            reports
                .iter()
                .map(|r| r.residue() - miss.powf(r.messages as f64)),
        );
        let s = Estimate::of(reports.iter().map(TrialReport::residue));
        eprintln!(
            "{} k={}: s {:.5}, s - e^-m {:+.6} ± {:.6}",
            rule.name(),
            rule.k,
            s.mean,
            d.mean,
            d.std_error
        );
        if d.mean.abs() > Z * d.std_error {
            failures.push(format!(
                "{} k={}: mean s {:.5}, mean s - e^-m {:.6} > {Z} x SE {:.6}",
                rule.name(),
                rule.k,
                s.mean,
                d.mean,
                d.std_error
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "s = e^-m violated:\n{}",
        failures.join("\n")
    );
}

/// Anti-entropy, rounds until every node has one update injected at one node.
///
/// - push: Pittel 1987, "On spreading a rumor": log2 n + ln n + O(1);
/// - pull: the informed count doubles while small (each informed node is asked
///   by one node a round on average), then the uninformed fraction squares each
///   round (Demers §1.3: p_{i+1} = p_i^2): log2 n + log2 ln n + O(1);
/// - push-pull: Karp, Schindelhauer, Shenker, Vöcking 2000, "Randomized rumor
///   spreading": log3 n + O(log log n); the informed count triples while small
///   and the end phase is pull's, so log3 n + log2 ln n + O(1).
///
/// The theory leaves an O(1) term c(n) unknown; it is bounded, and for push it
/// may oscillate with the fractional part of log2 n. So:
///
/// 1. c(n) = mean rounds - growth terms must lie in [0, C_MAX] at each n, with
///    C_MAX = 2 rounds (a bounded term the theory does not fix; an error in a
///    growth term, e.g. log2 for log3, would move it by 3 rounds or more at n =
///    10,000), widened by Z standard errors;
/// 2. c(10,000) - c(1,000), the growth between the two sizes net of the
///    theory's growth terms, must be zero within Z standard errors of the
///    difference of two independent means, plus OSCILLATION = 0.25 rounds for
///    the bounded oscillation of c(n) that the theory allows.
#[test]
fn anti_entropy_rounds_follow_pittel_and_karp() {
    const C_MAX: f64 = 2.0;
    const OSCILLATION: f64 = 0.25;
    let growth = |direction: Direction, n: f64| match direction {
        Direction::Push => n.log2() + n.ln(),
        Direction::Pull => n.log2() + n.ln().log2(),
        Direction::PushPull => n.ln() / 3f64.ln() + n.ln().log2(),
    };
    let mut failures = Vec::new();
    for (i, direction) in [Direction::Push, Direction::Pull, Direction::PushPull]
        .into_iter()
        .enumerate()
    {
        let mut c = Vec::new();
        for (j, (n, trials)) in [(1_000u32, 2_000), (10_000, 1_000)].into_iter().enumerate() {
            let (_, sum) = batch(
                &Scenario::anti_entropy(n, direction),
                trials,
                SEED + 200 + 10 * i as u64 + j as u64,
            );
            assert_eq!(sum.complete, trials, "anti-entropy reaches everyone");
            let rounds = sum.rounds_to_all;
            let cn = rounds.mean - growth(direction, f64::from(n));
            eprintln!(
                "{} n={n}: {:.3} ± {:.3} rounds (sd {:.3}), growth terms {:.3}, O(1) term {cn:.3}",
                direction.name(),
                rounds.mean,
                rounds.std_error,
                rounds.std_dev,
                growth(direction, f64::from(n))
            );
            let slack = Z * rounds.std_error;
            if cn < -slack || cn > C_MAX + slack {
                failures.push(format!(
                    "{} n={n}: {:.3} rounds, O(1) term {cn:.3} outside [0, {C_MAX}]",
                    direction.name(),
                    rounds.mean
                ));
            }
            c.push((cn, rounds.std_error));
        }
        let drift = c[1].0 - c[0].0;
        let tolerance = Z * (c[0].1.powi(2) + c[1].1.powi(2)).sqrt() + OSCILLATION;
        if drift.abs() > tolerance {
            failures.push(format!(
                "{}: O(1) term moved by {drift:.3} rounds from n=1000 to n=10000 (tolerance {tolerance:.3})",
                direction.name()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "anti-entropy disagrees with theory:\n{}",
        failures.join("\n")
    );
}

/// Lockstep push-pull beats pull beats push, at every size (Demers §1.3, Karp et
/// al.): a sanity check on the three exchange directions, per trial pair.
#[test]
fn push_pull_is_faster_than_pull_which_is_faster_than_push() {
    let mean = |d| {
        batch(&Scenario::anti_entropy(10_000, d), 200, SEED + 300)
            .1
            .rounds_to_all
    };
    let (push, pull, both) = (
        mean(Direction::Push),
        mean(Direction::Pull),
        mean(Direction::PushPull),
    );
    let apart = |a: &Estimate, b: &Estimate| {
        a.mean - b.mean > Z * (a.std_error.powi(2) + b.std_error.powi(2)).sqrt()
    };
    assert!(apart(&push, &pull), "push {push:?} vs pull {pull:?}");
    assert!(apart(&pull, &both), "pull {pull:?} vs push-pull {both:?}");
}
