//! How fast the epidemic-only engine runs (issue 3, item 6 targets: one push
//! rumor trial at N = 1,000,000 under 2 s; 200 trials at N = 1,000 under 5 s on
//! two cores). Prints wall times; asserts nothing.
//!
//! ```text
//! cargo run --release -p gossip-loadgen --example epidemic_speed [threads]
//! ```

use std::time::Instant;

use gossip_core::epidemic::rumor::StopRule;
use gossip_core::epidemic::Direction;
use gossip_core::rng::Rng;
use gossip_loadgen::population::{run_trials, summarize, Population, Scenario};

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let big = 1_000_000;
    println!("## One trial at N = {big}\n");
    println!("| scenario | wall ms | rounds | residue | traffic m | t_last | messages/s |");
    println!("|---|---|---|---|---|---|---|");
    let scenarios = [
        (
            "push, feedback+counter k=1",
            Scenario::rumor(big, Direction::Push, StopRule::feedback_counter(1)),
        ),
        (
            "push, feedback+counter k=4",
            Scenario::rumor(big, Direction::Push, StopRule::feedback_counter(4)),
        ),
        (
            "push, blind+coin k=4",
            Scenario::rumor(big, Direction::Push, StopRule::blind_coin(4)),
        ),
        (
            "pull, feedback+counter k=2",
            Scenario::rumor(big, Direction::Pull, StopRule::feedback_counter(2)),
        ),
        (
            "push-pull, feedback+coin k=2",
            Scenario::rumor(big, Direction::PushPull, StopRule::feedback_coin(2)),
        ),
        (
            "anti-entropy push",
            Scenario::anti_entropy(big, Direction::Push),
        ),
        (
            "anti-entropy push-pull",
            Scenario::anti_entropy(big, Direction::PushPull),
        ),
    ];
    let mut pop = Population::new();
    // Size the buffers once so that the first timed trial does not pay for it.
    pop.run(
        &Scenario::anti_entropy(big, Direction::PushPull).with_max_rounds(1),
        &mut Rng::new(0),
    )
    .expect("valid scenario");
    for (name, scenario) in &scenarios {
        let mut rng = Rng::new(0x5eed);
        let start = Instant::now();
        let r = pop.run(scenario, &mut rng).expect("valid scenario");
        let wall = start.elapsed();
        println!(
            "| {name} | {:.0} | {} | {:.5} | {:.3} | {} | {:.0} M |",
            wall.as_secs_f64() * 1e3,
            r.rounds,
            r.residue(),
            r.traffic(),
            r.t_last,
            r.messages as f64 / wall.as_secs_f64() / 1e6
        );
    }

    println!("\n## 200 trials at N = 1,000 on {threads} threads\n");
    println!("| scenario | wall ms | mean residue | mean traffic m |");
    println!("|---|---|---|---|");
    let small = [
        (
            "push, feedback+counter k=4",
            Scenario::rumor(1_000, Direction::Push, StopRule::feedback_counter(4)),
        ),
        (
            "pull, feedback+counter k=2",
            Scenario::rumor(1_000, Direction::Pull, StopRule::feedback_counter(2)),
        ),
        (
            "anti-entropy push-pull",
            Scenario::anti_entropy(1_000, Direction::PushPull),
        ),
    ];
    for (name, scenario) in &small {
        let start = Instant::now();
        let reports = run_trials(scenario, 0x5eed, 200, threads).expect("valid scenario");
        let wall = start.elapsed();
        let s = summarize(&reports);
        println!(
            "| {name} | {:.1} | {:.5} | {:.3} |",
            wall.as_secs_f64() * 1e3,
            s.residue.mean,
            s.traffic.mean
        );
    }
}
