//! Many trials over threads, and their statistics (needs std: threads, sqrt).
use super::{trial_seed, Population, Scenario, TrialReport};
use gossip_core::rng::Rng;
use gossip_core::ConfigError;

/// Runs `trials` independent trials of `scenario` on up to `threads` threads
/// and returns their reports in trial order. Trial i draws from
/// `Rng::new(trial_seed(seed, i))`, so the reports are the same for any
/// thread count.
///
/// # Errors
/// A [`ConfigError`] if the scenario is invalid.
pub fn run_trials(
    scenario: &Scenario,
    seed: u64,
    trials: usize,
    threads: usize,
) -> Result<Vec<TrialReport>, ConfigError> {
    scenario.validate()?;
    let threads = threads.clamp(1, trials.max(1));
    let run_share = |first: usize| {
        let mut pop = Population::new();
        (first..trials)
            .step_by(threads)
            .map(|i| {
                let mut rng = Rng::new(trial_seed(seed, i as u64));
                // Invariant: validated above, and run only fails validation.
                pop.run(scenario, &mut rng).expect("scenario validated")
            })
            .collect::<Vec<_>>()
    };
    let shares: Vec<Vec<TrialReport>> = if threads == 1 {
        vec![run_share(0)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| s.spawn(move || run_share(t)))
                .collect();
            handles
                .into_iter()
                // Invariant: a trial never panics on a validated scenario; if
                // one did, re-raise it here rather than lose it.
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut out = Vec::with_capacity(trials);
    let mut iters: Vec<_> = shares.into_iter().map(Vec::into_iter).collect();
    for i in 0..trials {
        // Invariant: share t holds trials t, t + threads, ... in order.
        out.push(iters[i % threads].next().expect("every trial ran"));
    }
    Ok(out)
}

/// The mean of a quantity over trials, with its spread.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Estimate {
    /// Trials the quantity was measured in.
    pub count: usize,
    /// Sample mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator).
    pub std_dev: f64,
    /// Standard error of the mean: std_dev / sqrt(count).
    pub std_error: f64,
}

impl Estimate {
    /// The estimate from samples (Welford's update, stable for many samples).
    pub fn of(samples: impl IntoIterator<Item = f64>) -> Self {
        let (mut count, mut mean, mut m2) = (0usize, 0.0f64, 0.0f64);
        for x in samples {
            count += 1;
            let d = x - mean;
            mean += d / count as f64;
            m2 += d * (x - mean);
        }
        let std_dev = if count > 1 {
            (m2 / (count - 1) as f64).sqrt()
        } else {
            0.0
        };
        let std_error = if count > 0 {
            std_dev / (count as f64).sqrt()
        } else {
            0.0
        };
        Estimate {
            count,
            mean,
            std_dev,
            std_error,
        }
    }
}

/// Means over a batch of trials.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Trials.
    pub trials: usize,
    /// Trials in which every node got the update.
    pub complete: usize,
    /// Trials that hit the round cap.
    pub capped: usize,
    /// Residue s.
    pub residue: Estimate,
    /// Traffic m.
    pub traffic: Estimate,
    /// t_ave.
    pub t_ave: Estimate,
    /// t_last.
    pub t_last: Estimate,
    /// Rounds until all had it, over the complete trials only.
    pub rounds_to_all: Estimate,
    /// Receptions per node reached.
    pub redundancy: Estimate,
    /// Most receptions at one node.
    pub receptions_max: Estimate,
}

/// Means, standard deviations and standard errors over `reports`.
pub fn summarize(reports: &[TrialReport]) -> Summary {
    let of = |f: fn(&TrialReport) -> f64| Estimate::of(reports.iter().map(f));
    Summary {
        trials: reports.len(),
        complete: reports
            .iter()
            .filter(|r| r.rounds_to_all().is_some())
            .count(),
        capped: reports.iter().filter(|r| r.capped).count(),
        residue: of(TrialReport::residue),
        traffic: of(TrialReport::traffic),
        t_ave: of(TrialReport::t_ave),
        t_last: of(|r| f64::from(r.t_last)),
        rounds_to_all: Estimate::of(
            reports
                .iter()
                .filter_map(|r| r.rounds_to_all().map(f64::from)),
        ),
        redundancy: of(TrialReport::redundancy),
        receptions_max: of(|r| f64::from(r.receptions_max)),
    }
}
