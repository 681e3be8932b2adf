//! Worlds that run a scenario's trials: the simulator (membership in virtual
//! time), the epidemic-only model (lockstep rounds at scale), and real UDP
//! nodes on loopback (membership in wall-clock time).

pub mod epidemic;
pub mod sim;
pub mod udp;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Result;

use crate::observe::Trial;
use crate::progress::Progress;
use crate::scenario::{Scenario, WorldKind};

/// The nodes an item about node `about` should reach, of those running at
/// the end (`up`), never `about` itself: all of them, or, when each node holds
/// a partial view (`Config::partial_view`), only the `holders` (sorted): the
/// nodes that held it at its crash (a FAIL) or at the end (a join). The
/// others have no reason to learn of it.
pub(crate) fn audience(
    up: impl Iterator<Item = usize>,
    holders: Option<&[usize]>,
    about: usize,
) -> Vec<usize> {
    up.filter(|&n| n != about && holders.is_none_or(|h| h.binary_search(&n).is_ok()))
        .collect()
}

/// What a run shares with its trials: the stop flag (Ctrl-C) and the progress bar.
#[derive(Debug)]
pub struct Control {
    /// Set on Ctrl-C: finish nothing new, keep what is finished.
    pub stop: AtomicBool,
    /// Progress in work units (trials, or virtual seconds).
    pub progress: Progress,
}

impl Control {
    /// A control with a progress bar of `total` units.
    pub fn new(total: u64, label: &str) -> Self {
        Control {
            stop: AtomicBool::new(false),
            progress: Progress::new(total, label),
        }
    }

    /// Whether the run should stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Runs `count` independent jobs on up to `threads` threads; job `i` is
/// `run(i)`, returning `None` when it was stopped before finishing. Every job
/// finished before a stop is returned, in index order; the first error is
/// returned after the running jobs finish (and stops the rest).
pub fn parallel<T: Send>(
    count: usize,
    threads: usize,
    control: &Control,
    run: impl Fn(usize) -> Result<Option<T>> + Sync,
) -> Result<Vec<(usize, T)>> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(count));
    let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let worker = || loop {
        if control.stopped() {
            return;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            return;
        }
        match run(i) {
            Ok(Some(t)) => done.lock().unwrap_or_else(|p| p.into_inner()).push((i, t)),
            Ok(None) => return,
            Err(e) => {
                error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
                control.stop.store(true, Ordering::Relaxed);
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, count.max(1)) {
            s.spawn(worker);
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    Ok(done)
}

/// [`parallel`] for trials: the finished trials in index order.
///
/// # Errors
/// The first trial error.
pub fn parallel_trials(
    trials: usize,
    threads: usize,
    control: &Control,
    run: impl Fn(usize) -> Result<Option<Trial>> + Sync,
) -> Result<Vec<Trial>> {
    Ok(parallel(trials, threads, control, run)?
        .into_iter()
        .map(|(_, t)| t)
        .collect())
}

/// Runs a scenario's trials in its world.
///
/// # Errors
/// A scenario the world refuses, or a world that cannot start.
pub fn run(s: &Scenario, threads: usize, control: &Control) -> Result<Vec<Trial>> {
    if s.epidemic.is_some() {
        return epidemic::run(s, threads, control);
    }
    match s.cluster.world {
        WorldKind::Sim => sim::run(s, threads, control),
        WorldKind::Udp => udp::run(s, control),
    }
}

/// Progress units one trial reports.
pub fn units_per_trial(s: &Scenario) -> u64 {
    match s.epidemic {
        Some(_) => 1,
        None => sim::units_per_trial(s),
    }
}

/// Threads to use: the cores this process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
