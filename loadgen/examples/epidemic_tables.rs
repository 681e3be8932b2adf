//! Regenerates the figures of `docs/validation.md`: the population engine's
//! estimates beside Demers et al. 1987 (rumor mongering, n = 1,000) and beside the
//! anti-entropy round counts of Pittel 1987 and Karp et al. 2000.
//!
//! ```text
//! cargo run --release -p gossip-loadgen --example epidemic_tables [trials] [threads]
//! ```
//!
//! Each cell is `mean ± standard error`; `gap/tol` is |simulated - published|
//! divided by the tolerance `core/tests/validation.rs` uses (4.5 combined
//! standard errors, assuming 100 runs behind each published row, plus half a unit
//! of the last printed digit): below 1 passes.

use gossip_core::epidemic::rumor::StopRule;
use gossip_core::epidemic::Direction;
use gossip_loadgen::population::{run_trials, summarize, Estimate, Scenario, Tally};

include!("../tests/data/demers_tables.rs");

/// A table: title, direction, stop rule by k, rows.
type Table = (&'static str, Direction, fn(u8) -> StopRule, &'static [Row]);

/// The test's tolerance rule (core/tests/validation.rs).
fn gap_over_tolerance(sim: &Estimate, published: &str) -> f64 {
    let value: f64 = published.parse().expect("a decimal number");
    let decimals = published.split_once('.').map_or(0, |(_, f)| f.len());
    let half_unit = 0.5 * 10f64.powi(-(decimals as i32));
    let se_pub = sim.std_dev / 100f64.sqrt();
    let tolerance = 4.5 * (sim.std_error.powi(2) + se_pub.powi(2)).sqrt() + half_unit;
    (sim.mean - value).abs() / tolerance
}

fn cell(sim: &Estimate, published: &str, digits: usize) -> String {
    format!(
        "{:.digits$} ± {:.digits$} | {published} | {:.2}",
        sim.mean,
        sim.std_error,
        gap_over_tolerance(sim, published)
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let trials: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let threads: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("trials per rumor row: {trials}, threads: {threads}, seed 0x5eed\n");
    let tables: [Table; 3] = [
        (
            "Table 1: push, feedback + counter",
            Direction::Push,
            StopRule::feedback_counter,
            &TABLE_1,
        ),
        (
            "Table 2: push, blind + coin",
            Direction::Push,
            StopRule::blind_coin,
            &TABLE_2,
        ),
        (
            "Table 3: pull, feedback + counter",
            Direction::Pull,
            StopRule::feedback_counter,
            &TABLE_3,
        ),
    ];
    for (title, direction, rule, rows) in tables {
        println!("### {title}, n = 1000\n");
        println!("| k | s sim | s pub | gap/tol | m sim | m pub | gap/tol | t_ave sim | t_ave pub | gap/tol | t_last sim | t_last pub | gap/tol | e^-m |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for &(k, s, m, t_ave, t_last) in rows {
            // Demers' simulations run the stop rule once per site per cycle.
            let scenario = Scenario::rumor(1_000, direction, rule(k)).with_tally(Tally::PerRound);
            let sum = summarize(&run_trials(&scenario, 0x5eed, trials, threads).expect("valid"));
            println!(
                "| {k} | {} | {} | {} | {} | {:.5} |",
                cell(&sum.residue, s, 6),
                cell(&sum.traffic, m, 4),
                cell(&sum.t_ave, t_ave, 3),
                cell(&sum.t_last, t_last, 3),
                (-sum.traffic.mean).exp()
            );
        }
        println!();
    }
    println!("### Anti-entropy: rounds until every node has the update\n");
    println!("| n | direction | trials | rounds | sd | growth terms | O(1) term |");
    println!("|---|---|---|---|---|---|---|");
    for (n, share) in [(1_000u32, 1), (10_000, 5), (100_000, 50)] {
        let nf = f64::from(n);
        for direction in [Direction::Push, Direction::Pull, Direction::PushPull] {
            let t = (trials / share).max(10);
            let sum = summarize(
                &run_trials(&Scenario::anti_entropy(n, direction), 0x5eed, t, threads)
                    .expect("valid"),
            );
            let (label, growth) = match direction {
                Direction::Push => ("log2 n + ln n", nf.log2() + nf.ln()),
                Direction::Pull => ("log2 n + log2 ln n", nf.log2() + nf.ln().log2()),
                Direction::PushPull => ("log3 n + log2 ln n", nf.ln() / 3f64.ln() + nf.ln().log2()),
            };
            let r = sum.rounds_to_all;
            println!(
                "| {n} | {} | {t} | {:.3} ± {:.3} | {:.2} | {label} = {growth:.3} | {:.3} |",
                direction.name(),
                r.mean,
                r.std_error,
                r.std_dev,
                r.mean - growth
            );
        }
    }
}
