//! A run and a sweep end to end: trials, summary, report files. Used by the
//! binary and by the end-to-end tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant as WallClock, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::compare::Comparison;
use crate::machine::{commit, Machine};
use crate::metrics::summarize;
use crate::noise::Probe;
use crate::observe::Trial;
use crate::report::{Report, SCHEMA};
use crate::scenario::{Scenario, WorldKind};
use crate::sweep::{grid, AutoTrials, Axis, Point, SweepResult, Target, Verdict};
use crate::world::{self, Control};

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Worker threads.
    pub threads: usize,
    /// Output directory; `None`: `reports/runs/<run-id>`.
    pub out: Option<PathBuf>,
    /// Write into `out` even when it holds a report already.
    pub force: bool,
    /// The command line, recorded in the report.
    pub command: Vec<String>,
}

/// Runs one scenario and writes its report; returns the report and the HTML path.
/// An interrupted run (Ctrl-C sets `control.stop`) still writes every finished trial.
///
/// # Errors
/// A world that refuses the scenario, or report I/O.
pub fn run(s: &Scenario, opts: &Options, control: &Control) -> Result<(Report, PathBuf)> {
    let started = WallClock::now();
    let created_ms = now_unix_ms();
    let (dir, id) = claim_dir(opts, &run_id(&s.name, created_ms, s.run.seed))?;
    let probe = Probe::start();
    let trials = world::run(s, opts.threads, control)?;
    control.progress.finish();
    let mut report = report(
        s,
        trials,
        control.interruption(),
        opts,
        id,
        created_ms / 1000,
        started,
    )?;
    report.host = probe.finish(report.summary.late_tick_fraction);
    let html = report.write(&dir)?;
    Ok((report, html))
}

/// The report of one run of `s` that finished `trials`.
fn report(
    s: &Scenario,
    trials: Vec<crate::observe::Trial>,
    interruption: Option<String>,
    opts: &Options,
    run_id: String,
    created: u64,
    started: WallClock,
) -> Result<Report> {
    let (summary, histograms) = summarize(s.cluster.world.name(), s.cluster.nodes, &trials)?;
    Ok(Report {
        schema: SCHEMA.into(),
        run_id,
        created_unix_s: created,
        command: opts.command.clone(),
        commit: commit(),
        machine: Machine::this(),
        world: s.cluster.world.name().into(),
        datapath: trials.iter().find_map(|t| t.datapath.clone()),
        seed: s.run.seed,
        trials_requested: s.run.trials,
        trials_done: trials.len(),
        interrupted: trials.len() < s.run.trials,
        interruption,
        wall_s: started.elapsed().as_secs_f64(),
        scenario: s.clone(),
        summary,
        histograms,
        trials,
        sweep: None,
        compare: None,
        host: None,
    })
}

/// Runs scenario `name_or_path` (with `overrides`) in each of `worlds` in
/// turn and writes one comparison: each world's report in `<dir>/<world>/`,
/// the side-by-side report in `<dir>`, rewritten after each world so that an
/// interruption, or a world that fails, loses none that finished.
///
/// # Errors
/// A world that refuses the scenario (checked for every world before any
/// runs), a world that fails (after the finished ones are written), or I/O.
pub fn compare(
    name_or_path: &str,
    overrides: &[String],
    worlds: &[WorldKind],
    without_key: bool,
    opts: &Options,
    control: &Control,
) -> Result<(Report, PathBuf)> {
    let started = WallClock::now();
    let created_ms = now_unix_ms();
    let created = created_ms / 1000;
    // The sides: each world's scenario, and with `without_key` the same
    // without its key right after it (named `<world>-no-key`).
    let mut scenarios: Vec<(String, Scenario)> = Vec::new();
    for w in worlds {
        let mut o = overrides.to_vec();
        o.push(format!("cluster.world={}", w.name()));
        let s = Scenario::load(name_or_path, &o).with_context(|| format!("world {}", w.name()))?;
        let bare = without_key.then(|| s.without_key()).transpose()?;
        scenarios.push((w.name().to_owned(), s));
        if let Some(b) = bare {
            scenarios.push((format!("{}-no-key", w.name()), b));
        }
    }
    let base = &scenarios[0].1;
    let (dir, run_id) = claim_dir(
        opts,
        &format!("{}-compare", run_id(&base.name, created_ms, base.run.seed)),
    )?;
    let names: Vec<&str> = scenarios.iter().map(|(n, _)| n.as_str()).collect();
    let mut sides: Vec<Report> = Vec::new();
    let whole = |sides: &[Report], interrupted: bool| Report {
        schema: SCHEMA.into(),
        run_id: run_id.clone(),
        created_unix_s: created,
        command: opts.command.clone(),
        commit: commit(),
        machine: Machine::this(),
        world: names.join(","),
        datapath: None,
        seed: base.run.seed,
        trials_requested: base.run.trials * scenarios.len(),
        trials_done: sides.iter().map(|r| r.trials_done).sum(),
        interrupted,
        interruption: control.interruption(),
        wall_s: started.elapsed().as_secs_f64(),
        scenario: base.clone(),
        summary: sides.first().map(|r| r.summary.clone()).unwrap_or_default(),
        histograms: Default::default(),
        trials: Vec::new(),
        sweep: None,
        compare: Some(Comparison {
            sides: sides.to_vec(),
            names: names[..sides.len()].iter().map(|n| n.to_string()).collect(),
        }),
        host: None,
    };
    let probe = Probe::start();
    for (name, s) in &scenarios {
        if control.stopped() {
            break;
        }
        let side_started = WallClock::now();
        let side_probe = Probe::start();
        let trials = match world::run(s, opts.threads, control) {
            Ok(t) => t,
            Err(e) => {
                whole(&sides, true).write(&dir)?;
                return Err(e.context(format!("side {name}")));
            }
        };
        let side_id = format!("{run_id}-{name}");
        let mut r = report(
            s,
            trials,
            control.interruption(),
            opts,
            side_id,
            created,
            side_started,
        )?;
        r.host = side_probe.finish(r.summary.late_tick_fraction);
        r.write(&dir.join(name))?;
        sides.push(r);
        whole(&sides, true).write(&dir)?;
    }
    control.progress.finish();
    let done = sides.len() == scenarios.len() && sides.iter().all(|r| !r.interrupted);
    let mut report = whole(&sides, !done);
    let late = sides
        .iter()
        .filter_map(|r| r.summary.late_tick_fraction)
        .reduce(f64::max);
    report.host = probe.finish(late);
    let html = report.write(&dir)?;
    Ok((report, html))
}

/// Runs every grid point of `axes` over `base` (points in parallel, each point's
/// trials in turn), rewriting the report after each finished point so that an
/// interruption loses nothing finished. With `auto` (`--trials auto`), points
/// whose targets are still undecided then get more trials, round after
/// round, until decided or the time budget would be passed.
///
/// # Errors
/// A grid point the scenario refuses (checked before anything runs), or I/O.
#[allow(clippy::too_many_arguments)]
pub fn sweep(
    base: &Scenario,
    overrides: &[String],
    axes: &[Axis],
    targets: &[Target],
    opts: &Options,
    control: &Control,
    name_or_path: &str,
    auto: Option<Duration>,
) -> Result<(Report, PathBuf)> {
    let started = WallClock::now();
    let created_ms = now_unix_ms();
    let created = created_ms / 1000;
    // Refuse the whole sweep up front if any point is invalid.
    let points: Vec<(Vec<(String, String)>, Scenario)> = grid(axes)
        .into_iter()
        .map(|params| {
            let mut o = overrides.to_vec();
            o.extend(params.iter().map(|(k, v)| format!("{k}={v}")));
            Scenario::load(name_or_path, &o).map(|s| (params, s))
        })
        .collect::<Result<_>>()?;
    let (dir, run_id) = claim_dir(
        opts,
        &format!("{}-sweep", run_id(&base.name, created_ms, base.run.seed)),
    )?;
    let state: Mutex<(SweepResult, Vec<Vec<Trial>>)> = Mutex::new((
        SweepResult {
            axes: axes.to_vec(),
            targets: targets.to_vec(),
            auto: auto.map(|b| AutoTrials {
                budget_s: b.as_secs_f64(),
                ..AutoTrials::default()
            }),
            ..SweepResult::default()
        },
        vec![Vec::new(); points.len()],
    ));
    let make_report = |sw: &SweepResult, interrupted: bool| {
        let pick = sw
            .recommended
            .or(if sw.points.is_empty() { None } else { Some(0) });
        let summary = pick
            .map(|i| sw.points[i].summary.clone())
            .unwrap_or_default();
        let done: usize = sw.points.iter().map(|p| p.summary.trials).sum();
        Report {
            schema: SCHEMA.into(),
            run_id: run_id.clone(),
            created_unix_s: created,
            command: opts.command.clone(),
            commit: commit(),
            machine: Machine::this(),
            world: base.cluster.world.name().into(),
            datapath: None,
            seed: base.run.seed,
            trials_requested: match auto {
                Some(_) => done,
                None => base.run.trials * points.len(),
            },
            trials_done: done,
            interrupted,
            interruption: control.interruption(),
            wall_s: started.elapsed().as_secs_f64(),
            scenario: base.clone(),
            summary,
            histograms: Default::default(),
            trials: Vec::new(),
            sweep: Some(sw.clone()),
            compare: None,
            host: None,
        }
    };
    let probe = Probe::start();
    // Real worlds own the machine: their points run one at a time.
    let real = points
        .iter()
        .any(|(_, s)| s.epidemic.is_none() && s.cluster.world != WorldKind::Sim);
    let threads = if real { 1 } else { opts.threads };
    let order = grid(axes);
    // Runs `jobs` (grid index, scenario with the trials to add) and folds
    // each point's new trials into its summary; returns the jobs finished.
    let run_batch = |jobs: &[(usize, Scenario)]| {
        world::parallel(jobs.len(), threads, control, |j| {
            let (i, s) = &jobs[j];
            let trials = world::run(s, 1, control)?;
            if trials.len() < s.run.trials {
                return Ok(None); // stopped inside this point: keep only whole batches
            }
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let (sw, all) = &mut *st;
            let mine = &mut all[*i];
            for mut t in trials {
                t.index = mine.len();
                mine.push(t);
            }
            let (summary, _) = summarize(s.cluster.world.name(), s.cluster.nodes, mine)?;
            let params: BTreeMap<String, String> = points[*i].0.iter().cloned().collect();
            match sw.points.iter_mut().find(|p| p.params == params) {
                Some(p) => p.summary = summary,
                None => sw.points.push(Point {
                    params,
                    summary,
                    verdict: None,
                }),
            }
            // Grid order, whatever order the workers finished in.
            sw.points.sort_by_key(|p| {
                order
                    .iter()
                    .position(|g| g.iter().cloned().collect::<BTreeMap<_, _>>() == p.params)
            });
            sw.analyse();
            make_report(sw, true).write(&dir)?;
            Ok(Some(()))
        })
    };
    let first: Vec<(usize, Scenario)> = points
        .iter()
        .enumerate()
        .map(|(i, (_, s))| (i, s.clone()))
        .collect();
    let mut whole = run_batch(&first)?.len() == points.len();
    if let Some(budget) = auto {
        let mut round = 0;
        let ended = loop {
            if control.stopped() {
                break "interrupted";
            }
            let jobs = {
                let st = state.lock().unwrap_or_else(|p| p.into_inner());
                let left = budget.saturating_sub(started.elapsed()).as_secs_f64();
                match more_trials(&st.0, &st.1, &points, left, threads) {
                    Ok(jobs) => jobs,
                    Err(why) => break why,
                }
            };
            round += 1;
            let jobs: Vec<(usize, Scenario)> = jobs
                .into_iter()
                .map(|(i, add)| {
                    let mut s = points[i].1.clone();
                    s.run.trials = add;
                    // Each round's trials get seeds of their own.
                    s.run.seed = world::trial_seed(base.run.seed, 1_000_000 + round);
                    (i, s)
                })
                .collect();
            control.progress.grow(
                jobs.iter()
                    .map(|(_, s)| s.run.trials as u64 * world::units_per_trial(s))
                    .sum(),
            );
            whole &= run_batch(&jobs)?.len() == jobs.len();
        };
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = st.0.auto.as_mut() {
            a.rounds = round;
            a.ended = ended.into();
        }
        st.0.analyse();
    }
    control.progress.finish();
    let (sw, _) = state.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut report = make_report(&sw, !whole || sw.points.len() < points.len());
    let late = sw
        .points
        .iter()
        .filter_map(|p| p.summary.late_tick_fraction)
        .reduce(f64::max);
    report.host = probe.finish(late);
    let html = report.write(&dir)?;
    Ok((report, html))
}

/// The next round of `--trials auto`: for the cheapest points the
/// recommendation still waits on (`sw.undecided`, one per thread: if the
/// cheapest open point turns out to meet the targets, the dearer ones no
/// longer matter), the trials to add: what its verdict asks, at most
/// doubling its trials (the estimate is redone after each round), scaled
/// down to what fits in `left_s` seconds at the point's measured seconds
/// per trial on `threads` threads. `Err` says why no more.
fn more_trials(
    sw: &SweepResult,
    trials: &[Vec<Trial>],
    points: &[(Vec<(String, String)>, Scenario)],
    left_s: f64,
    threads: usize,
) -> std::result::Result<Vec<(usize, usize)>, &'static str> {
    let mut want: Vec<(usize, usize, f64)> = Vec::new();
    for &p in &sw.undecided {
        if want.len() >= threads.max(1) {
            break;
        }
        let Some(Verdict::Undecided {
            more_trials: Some(n),
        }) = sw.points[p].verdict
        else {
            continue;
        };
        let params = &sw.points[p].params;
        let Some(i) = points
            .iter()
            .position(|(g, _)| g.iter().cloned().collect::<BTreeMap<_, _>>() == *params)
        else {
            continue;
        };
        let done = trials[i].len();
        let per_trial_s = trials[i].iter().map(|t| t.wall_s).sum::<f64>() / done.max(1) as f64;
        want.push((i, n.min(done.max(1)), per_trial_s));
    }
    if want.is_empty() {
        return Err(if sw.undecided.is_empty() {
            "decided"
        } else {
            "nothing more would decide"
        });
    }
    let need_s: f64 =
        want.iter().map(|&(_, n, s)| n as f64 * s).sum::<f64>() / threads.max(1) as f64;
    let scale = if need_s > left_s {
        left_s / need_s
    } else {
        1.0
    };
    let jobs: Vec<(usize, usize)> = want
        .into_iter()
        .map(|(i, n, _)| (i, (n as f64 * scale).floor() as usize))
        .filter(|&(_, n)| n > 0)
        .collect();
    if jobs.is_empty() {
        return Err("budget");
    }
    Ok(jobs)
}

/// Progress units a sweep reports.
pub fn sweep_units(base: &Scenario, axes: &[Axis]) -> u64 {
    grid(axes).len() as u64 * base.run.trials as u64 * world::units_per_trial(base)
}

/// Claims the directory a run writes into, before it runs, and returns it
/// with the run's id. `--out DIR` is refused when DIR holds a report already
/// (unless `force`). Otherwise the directory is `reports/runs/<id>`, created
/// here: creating a directory either succeeds or finds it taken, atomically,
/// so runs started in the same millisecond (same scenario, same seed) each
/// get their own, the later ones `<id>-2`, `<id>-3`, ...
fn claim_dir(opts: &Options, id: &str) -> Result<(PathBuf, String)> {
    check_out(opts)?;
    if let Some(dir) = &opts.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        return Ok((dir.clone(), id.to_string()));
    }
    let runs = Path::new("reports").join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    for n in 1..=RUN_ID_TRIES {
        let id = match n {
            1 => id.to_string(),
            n => format!("{id}-{n}"),
        };
        let dir = runs.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, id)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!(
        "{}: {RUN_ID_TRIES} runs named {id} already; give one --out DIR",
        runs.display()
    )
}

/// Refuses `--out DIR` when DIR holds a report already (unless `force`), so
/// that a finished report is never replaced by mistake.
///
/// # Errors
/// One line naming the directory and `--force`.
pub fn check_out(opts: &Options) -> Result<()> {
    match &opts.out {
        Some(dir) if !opts.force && dir.join("report.json").exists() => bail!(
            "--out {}: holds a report already; choose another directory or pass --force to replace it",
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// Runs with one id (same scenario, seed and millisecond) a directory holds.
const RUN_ID_TRIES: usize = 10_000;

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `<scenario>-<UTC yyyymmdd-hhmmss-mmm>-s<seed>`: the start to the
/// millisecond, so that ids sort by time.
pub fn run_id(name: &str, unix_ms: u64, seed: u64) -> String {
    let unix_s = unix_ms / 1000;
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{name}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{:03}-s{seed}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_carry_the_utc_time() {
        assert_eq!(run_id("crash", 0, 1), "crash-19700101-000000-000-s1");
        assert_eq!(
            run_id("x", 1_795_786_200_042, 7),
            "x-20261127-133000-042-s7"
        );
    }
}
