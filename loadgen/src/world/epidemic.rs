//! Epidemic-only trials: one update among N abstract nodes that pick uniform
//! random peers in lockstep rounds (`crate::population`), the
//! model of Demers et al. 1987, Pittel 1987 and Karp et al. 2000.

use std::time::Instant as WallClock;

use crate::population::Population;
use anyhow::{anyhow, Result};
use gossip_core::rng::Rng;

use super::{parallel_trials, trial_seed, Control};
use crate::observe::{EpidemicTrial, Trial};
use crate::scenario::Scenario;

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
    let model = e.model(s.cluster.nodes)?;
    parallel_trials(s.run.trials, threads, control, |i| {
        let started = WallClock::now();
        let seed = trial_seed(s.run.seed, i);
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
