//! Epidemic-only trials: one update among N abstract nodes that pick uniform
//! random peers in lockstep rounds (`gossip_core::epidemic::population`), the
//! model of Demers et al. 1987, Pittel 1987 and Karp et al. 2000.

use std::time::Instant as WallClock;

use anyhow::{anyhow, bail, Result};
use gossip_core::epidemic::population::{trial_seed, Population, Scenario as Model};
use gossip_core::epidemic::rumor::StopRule;
use gossip_core::epidemic::Direction;
use gossip_core::rng::Rng;

use super::{parallel_trials, Control};
use crate::observe::{EpidemicTrial, Trial};
use crate::scenario::{Epidemic, Scenario};

/// The core's model for a scenario's `[epidemic]` table.
///
/// # Errors
/// One line naming the bad field.
pub fn scenario(e: &Epidemic, nodes: usize) -> Result<Model> {
    let direction = Direction::from_name(&e.mode)
        .ok_or_else(|| anyhow!("epidemic.mode: {:?} is not push, pull or push-pull", e.mode))?;
    let n = u32::try_from(nodes)
        .map_err(|_| anyhow!("cluster.nodes: too many for the epidemic model"))?;
    let model = match e.protocol.as_str() {
        "rumor" => {
            let k = u8::try_from(e.k)
                .ok()
                .filter(|&k| (1..=StopRule::MAX_K).contains(&k))
                .ok_or_else(|| anyhow!("epidemic.k: must be between 1 and {}", StopRule::MAX_K))?;
            let stop = match e.stop.as_str() {
                "feedback-counter" => StopRule::feedback_counter(k),
                "feedback-coin" => StopRule::feedback_coin(k),
                "blind-counter" => StopRule::blind_counter(k),
                "blind-coin" => StopRule::blind_coin(k),
                other => bail!(
                    "epidemic.stop: {other:?} is not feedback-counter, feedback-coin, blind-counter or blind-coin"
                ),
            };
            Model::rumor(n, direction, stop).with_fanout(e.fanout)
        }
        "anti-entropy" => Model::anti_entropy(n, direction),
        other => bail!("epidemic.protocol: {other:?} is not rumor or anti-entropy"),
    };
    model.validate().map_err(|e| anyhow!("{e}"))?;
    Ok(model)
}

/// Runs the scenario's trials on `threads` threads. Trial i uses
/// `trial_seed(seed, i)` whatever the thread count, so results replay exactly.
///
/// # Errors
/// A bad `[epidemic]` table.
pub fn run(s: &Scenario, threads: usize, control: &Control) -> Result<Vec<Trial>> {
    let e = s
        .epidemic
        .as_ref()
        .ok_or_else(|| anyhow!("scenario has no [epidemic] table"))?;
    let model = scenario(e, s.cluster.nodes)?;
    parallel_trials(s.run.trials, threads, control, |i| {
        let started = WallClock::now();
        let seed = trial_seed(s.run.seed, i as u64);
        // A fresh population per trial: buffers are sized by the first trial
        // anyway, and per-thread reuse would need thread-local state.
        let mut pop = Population::new();
        let r = pop
            .run(&model, &mut Rng::new(seed))
            .map_err(|e| anyhow!("{e}"))?;
        control.progress.inc(1);
        Ok(Some(Trial {
            index: i,
            seed,
            nodes: s.cluster.nodes,
            epidemic: Some(EpidemicTrial {
                residue: r.residue(),
                traffic: r.traffic(),
                t_ave: r.t_ave(),
                t_last: r.t_last,
                rounds_to_all: r.rounds_to_all(),
                redundancy: r.redundancy(),
                receptions_max: r.receptions_max,
            }),
            wall_s: started.elapsed().as_secs_f64(),
            ..Trial::default()
        }))
    })
}
