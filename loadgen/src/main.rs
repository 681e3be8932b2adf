//! `gossip-loadgen`: run, sweep, re-render and list scenarios; build a lab.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use gossip_loadgen::lab;
use gossip_loadgen::report::Report;
use gossip_loadgen::runner::{self, Options};
use gossip_loadgen::scenario::{self, Scenario, WorldKind};
use gossip_loadgen::sweep::{Axis, Target};
use gossip_loadgen::world::{self, udp, Control};

#[derive(Parser, Debug)]
#[command(
    name = "gossip-loadgen",
    version,
    about = "Run gossip clusters, measure them, write reports"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one scenario (default: the built-in demo).
    Run(RunArgs),
    /// Run a grid of scenario variants and recommend a setting.
    Sweep(SweepArgs),
    /// Run one scenario in several worlds back to back; one side-by-side report.
    Compare(CompareArgs),
    /// Render summary.md and report.html again from a report.json.
    Report {
        /// A report.json, or the directory holding it.
        path: PathBuf,
        /// Where to write (default: beside the JSON).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare two reports figure by figure: the change, its 95 % interval,
    /// whether it is beyond noise. Exits 1 when a --fail-on figure rose
    /// (regressed) beyond noise.
    Diff {
        /// The baseline: a report.json or its directory.
        a: PathBuf,
        /// The report compared with it.
        b: PathBuf,
        /// A figure (dotted summary path, e.g. detect_all_fail_s.p50) whose
        /// rise beyond noise fails the diff (repeatable).
        #[arg(long = "fail-on", value_name = "FIGURE")]
        fail_on: Vec<String>,
    },
    /// List the built-in scenarios.
    Scenarios,
    /// Hosts as network namespaces on this machine (needs root).
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
}

#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Build H hosts (namespaces on a bridge, 198.18.0.0/15, no route out)
    /// and start an agent in each; a stale lab of the same name goes first.
    Up {
        /// Hosts, 1 to 1000.
        #[arg(long)]
        hosts: usize,
        /// The lab's name: 1 to 8 of a-z, 0-9.
        #[arg(long, default_value = "lab")]
        name: String,
        /// The gossip-node binary (default: the one beside gossip-loadgen).
        #[arg(long, value_name = "PATH", conflicts_with = "no_agents")]
        agent: Option<PathBuf>,
        /// Build the hosts only; start no agents.
        #[arg(long)]
        no_agents: bool,
    },
    /// Remove every namespace, device, rule and process of the lab.
    Down {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// Print the lab's hosts, addresses, sockets and agents.
    Status {
        #[arg(long, default_value = "lab")]
        name: String,
    },
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// A built-in scenario name or a TOML file.
    #[arg(long, short = 's', default_value = "demo")]
    scenario: String,
    /// Override any scenario field: --set cluster.nodes=1000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// cluster.world: sim, udp, redis or hosts.
    #[arg(long)]
    world: Option<String>,
    /// hosts.agents, and --world hosts: the agents to run on, as
    /// HOST:PORT,... or unix:PATH,..., or `lab` (`lab:NAME`) for every host
    /// of the network-namespace lab.
    #[arg(long, value_name = "AGENTS")]
    hosts: Option<String>,
    /// hosts.token_file: the file holding the agents' token.
    #[arg(long, value_name = "PATH")]
    token_file: Option<String>,
    /// cluster.nodes.
    #[arg(long, short = 'n')]
    nodes: Option<usize>,
    /// run.trials; `auto` (sweeps): add trials to the points still
    /// undecided on their targets until decided or --budget ends.
    #[arg(long, short = 't', value_parser = parse_trials, value_name = "N|auto")]
    trials: Option<Trials>,
    /// run.seed.
    #[arg(long)]
    seed: Option<u64>,
    /// run.duration_s (the measured window, seconds).
    #[arg(long)]
    duration: Option<f64>,
    /// epidemic.mode: push, pull or push-pull.
    #[arg(long)]
    mode: Option<String>,
    /// epidemic.stop: feedback-counter, feedback-coin, blind-counter, blind-coin.
    #[arg(long)]
    stop: Option<String>,
    /// epidemic.k.
    #[arg(long)]
    k: Option<u32>,
    /// Fan-out: epidemic.fanout for epidemic scenarios, else
    /// profile.random_ping_fanout.
    #[arg(long)]
    fanout: Option<u32>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Output directory (default: reports/runs/<run-id>); refused when it
    /// holds a report already, unless --force.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the report in --out.
    #[arg(long)]
    force: bool,
    /// Print the summary object as JSON on stdout, and nothing else there.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct CompareArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The worlds, in order; ratios divide the first one's figures by each
    /// other's: --worlds udp,redis.
    #[arg(long, value_name = "W1,W2,...", required = true)]
    worlds: String,
    /// Each world twice: the scenario as given, then the same without its
    /// cluster key (auth.key off, the key rotation steps dropped), for the
    /// key's cost in bytes and CPU per node per second: --scenario
    /// key-rotation --worlds udp --without-key.
    #[arg(long)]
    without_key: bool,
}

#[derive(Args, Debug)]
struct SweepArgs {
    #[command(flatten)]
    run: RunArgs,
    /// An axis: --sweep profile.node_timeout_ms=1000,2000,5000 (repeatable).
    #[arg(
        long = "sweep",
        value_name = "KEY=V1,V2,...",
        required_unless_present = "worlds"
    )]
    axes: Vec<String>,
    /// A target the recommendation must meet: --target detect_all_fail_s.p99=3 (repeatable).
    #[arg(long = "target", value_name = "FIGURE=MAX")]
    targets: Vec<String>,
    /// Worlds as one more axis: --worlds sim,udp is --sweep cluster.world=sim,udp.
    #[arg(long, value_name = "W1,W2,...")]
    worlds: Option<String>,
    /// With --trials auto: the time the sweep may take, e.g. 600, 90s, 10m, 1h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    budget: Option<std::time::Duration>,
}

/// `--trials`: a count, or `auto` for sweeps.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Trials {
    N(usize),
    Auto,
}

fn parse_trials(s: &str) -> std::result::Result<Trials, String> {
    match s {
        "auto" => Ok(Trials::Auto),
        n => n
            .parse()
            .map(Trials::N)
            .map_err(|_| format!("{n:?}: expected a number of trials or `auto`")),
    }
}

fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let (num, unit) = match s
        .trim()
        .char_indices()
        .find(|(_, c)| c.is_ascii_alphabetic())
    {
        Some((i, _)) => s.trim().split_at(i),
        None => (s.trim(), "s"),
    };
    let mult = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{s:?}: expected seconds, or a number with s, m or h"
            ))
        }
    };
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && v * mult <= 7.0 * 86_400.0 => {
            Ok(std::time::Duration::from_secs_f64(v * mult))
        }
        _ => Err(format!(
            "{s:?}: expected a positive time up to a week, e.g. 600, 90s, 10m"
        )),
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("gossip-loadgen: {}", one_line(&format!("{e:#}")));
        std::process::exit(2);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(RunArgs::default_run())) {
        Command::Run(a) => run(&a),
        Command::Sweep(a) => sweep(&a),
        Command::Compare(a) => compare(&a),
        Command::Report { path, out } => {
            let r = Report::read(&path)?;
            let dir = out.unwrap_or_else(|| {
                if path.is_dir() {
                    path.clone()
                } else {
                    path.parent().map(PathBuf::from).unwrap_or_default()
                }
            });
            let html = r.write(&dir)?;
            println!("{}", r.markdown());
            eprintln!("report: {}", html.display());
            Ok(())
        }
        Command::Lab { command } => lab_command(command),
        Command::Diff { a, b, fail_on } => diff(&a, &b, &fail_on),
        Command::Scenarios => {
            for (name, _) in scenario::BUILT_IN {
                let s = Scenario::load(name, &[])?;
                println!("{name:<14} {}", s.description);
            }
            Ok(())
        }
    }
}

impl RunArgs {
    fn default_run() -> Self {
        match Cli::parse_from(["gossip-loadgen", "run"]).command {
            Some(Command::Run(a)) => a,
            // Invariant: "run" parses as the Run subcommand.
            _ => unreachable!("`run` parses as Command::Run"),
        }
    }

    /// The scenario with every flag applied as an override.
    fn scenario(&self) -> Result<Scenario> {
        Scenario::load(&self.scenario, &self.overrides()?)
    }

    /// `--set` and every flag as overrides. `--fanout` means the epidemic
    /// model's fan-out in an epidemic scenario, the profile's otherwise.
    fn overrides(&self) -> Result<Vec<String>> {
        let mut o = self.set.clone();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                o.push(format!("{k}={v}"));
            }
        };
        let world = self
            .world
            .clone()
            .or_else(|| self.hosts.as_ref().map(|_| "hosts".into()));
        add("cluster.world", world);
        add(
            "hosts.agents",
            self.hosts.as_ref().map(|h| {
                let quoted: Vec<String> = h.split(',').map(|a| format!("{:?}", a.trim())).collect();
                format!("[{}]", quoted.join(","))
            }),
        );
        add(
            "hosts.token_file",
            self.token_file.as_ref().map(|t| format!("{t:?}")),
        );
        add("cluster.nodes", self.nodes.map(|v| v.to_string()));
        if let Some(Trials::N(n)) = self.trials {
            add("run.trials", Some(n.to_string()));
        }
        add("run.seed", self.seed.map(|v| v.to_string()));
        add("run.duration_s", self.duration.map(|v| v.to_string()));
        add("epidemic.mode", self.mode.clone());
        add("epidemic.stop", self.stop.clone());
        add("epidemic.k", self.k.map(|v| v.to_string()));
        if let Some(f) = self.fanout {
            let (_, base) = Scenario::parse(&self.scenario, &o)?;
            let key = if base.epidemic.is_some() {
                "epidemic.fanout"
            } else {
                "profile.random_ping_fanout"
            };
            o.push(format!("{key}={f}"));
        }
        Ok(o)
    }

    /// Whether this is the bare default run: the demo, its world not chosen.
    fn is_default_demo(&self) -> bool {
        self.scenario == "demo"
            && self.world.is_none()
            && self.hosts.is_none()
            && !self
                .set
                .iter()
                .any(|o| o.trim_start().starts_with("cluster.world"))
    }

    fn options(&self) -> Options {
        Options {
            threads: self.threads.unwrap_or_else(world::default_threads),
            out: self.out.clone(),
            force: self.force,
            command: std::env::args().collect(),
        }
    }
}

/// Ctrl-C stops the run cleanly (finished trials are kept); a second one exits.
fn install_ctrl_c(control: &Arc<Control>) -> Result<()> {
    let c = Arc::clone(control);
    ctrlc::set_handler(move || {
        if c.stop.swap(true, Ordering::Relaxed) {
            // Servers a redis world started die with us (they also carry
            // PR_SET_PDEATHSIG); nothing else outlives the process.
            gossip_loadgen::world::redis::cluster::kill_all();
            std::process::exit(130);
        }
        eprintln!(
            "\ngossip-loadgen: stopping; finished trials will be kept (Ctrl-C again to quit now)"
        );
    })?;
    Ok(())
}

/// `--trials auto` only means something to a sweep.
fn fixed_trials(a: &RunArgs, command: &str) -> Result<()> {
    if a.trials == Some(Trials::Auto) {
        bail!("--trials auto: only for sweep (it adds trials to undecided points); give {command} a number");
    }
    Ok(())
}

fn run(a: &RunArgs) -> Result<()> {
    fixed_trials(a, "run")?;
    let mut s = a.scenario()?;
    runner::check_out(&a.options())?;
    let units = s.run.trials as u64 * world::units_per_trial(&s);
    let control = Arc::new(Control::new(units, &s.name));
    install_ctrl_c(&control)?;
    if a.is_default_demo() && s.cluster.world == WorldKind::Udp {
        // The default demo shows the product wherever it runs: where real
        // UDP nodes cannot start, the sim world runs it instead, saying why.
        // An explicit --world udp never falls back.
        if let Err(why) = udp::can_start() {
            eprintln!(
                "gossip-loadgen: UDP nodes cannot start here ({}); running the demo in the sim world instead",
                one_line(&why.to_string())
            );
            s.cluster.world = WorldKind::Sim;
        }
    } else if s.cluster.world == WorldKind::Udp && s.epidemic.is_none() {
        udp::can_start().map_err(|e| anyhow::anyhow!("UDP nodes cannot start: {e:#}"))?;
    }
    if !a.json {
        eprintln!(
            "gossip-loadgen: {} — {} nodes, world {}, {} trial(s), seed {}",
            s.name,
            s.cluster.nodes,
            s.cluster.world.name(),
            s.run.trials,
            s.run.seed
        );
    }
    let (report, html) = match runner::run(&s, &a.options(), &control) {
        Err(e) if a.is_default_demo() && e.downcast_ref::<udp::CannotStart>().is_some() => {
            eprintln!(
                "gossip-loadgen: {}; running the demo in the sim world instead",
                one_line(&format!("{e:#}"))
            );
            s.cluster.world = WorldKind::Sim;
            runner::run(&s, &a.options(), &control)?
        }
        r => r?,
    };
    finish(&report, &html, a.json)
}

fn sweep(a: &SweepArgs) -> Result<()> {
    let s = a.run.scenario()?;
    runner::check_out(&a.run.options())?;
    let mut axes = a
        .axes
        .iter()
        .map(|x| Axis::parse(x))
        .collect::<Result<Vec<_>>>()?;
    if let Some(w) = &a.worlds {
        for name in w.split(',') {
            WorldKind::from_name(name.trim()).map_err(|e| anyhow::anyhow!("--worlds: {e}"))?;
        }
        axes.push(Axis::parse(&format!("cluster.world={w}"))?);
    }
    let targets = a
        .targets
        .iter()
        .map(|x| Target::parse(x))
        .collect::<Result<Vec<_>>>()?;
    let auto = match (a.run.trials, a.budget) {
        (Some(Trials::Auto), _) if targets.is_empty() => {
            bail!("--trials auto: needs a --target to decide (it adds trials until each point is decided)")
        }
        (Some(Trials::Auto), b) => Some(b.unwrap_or(DEFAULT_BUDGET)),
        (_, Some(_)) => bail!("--budget: only with --trials auto"),
        _ => None,
    };
    let control = Arc::new(Control::new(
        runner::sweep_units(&s, &axes),
        &format!("{} sweep", s.name),
    ));
    install_ctrl_c(&control)?;
    let overrides = a.run.overrides()?;
    let (report, html) = runner::sweep(
        &s,
        &overrides,
        &axes,
        &targets,
        &a.run.options(),
        &control,
        &a.run.scenario,
        auto,
    )?;
    if let Some(sw) = &report.sweep {
        for t in &targets {
            if sw.points.iter().all(|p| t.value(&p.summary).is_none()) {
                bail!(
                    "--target {}: no run of this sweep reports that figure",
                    t.path
                );
            }
        }
    }
    finish(&report, &html, a.run.json)
}

fn compare(a: &CompareArgs) -> Result<()> {
    fixed_trials(&a.run, "compare")?;
    if a.run.world.is_some() {
        bail!("compare: give the worlds with --worlds, not --world");
    }
    let worlds = a
        .worlds
        .split(',')
        .map(|w| WorldKind::from_name(w.trim()))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| anyhow::anyhow!("--worlds: {e}"))?;
    if worlds.len() < 2 && !a.without_key {
        bail!("--worlds: name at least two worlds to compare, e.g. --worlds udp,redis (or one with --without-key)");
    }
    let s = a.run.scenario()?;
    runner::check_out(&a.run.options())?;
    if s.epidemic.is_some() {
        bail!(
            "compare: {} is an epidemic-only scenario; compare runs membership scenarios",
            s.name
        );
    }
    if a.without_key {
        s.without_key()?;
    }
    let sides = worlds.len() * if a.without_key { 2 } else { 1 };
    let units = (sides * s.run.trials) as u64 * world::units_per_trial(&s);
    let control = Arc::new(Control::new(units, &format!("{} compare", s.name)));
    install_ctrl_c(&control)?;
    let overrides = a.run.overrides()?;
    let (report, html) = runner::compare(
        &a.run.scenario,
        &overrides,
        &worlds,
        a.without_key,
        &a.run.options(),
        &control,
    )?;
    finish(&report, &html, a.run.json)
}

fn diff(a: &std::path::Path, b: &std::path::Path, fail_on: &[String]) -> Result<()> {
    let (ra, rb) = (Report::read(a)?, Report::read(b)?);
    let changes = gossip_loadgen::diff::diff(&ra, &rb);
    for f in fail_on {
        if !changes.iter().any(|c| &c.path == f) {
            bail!("--fail-on {f}: not a figure both reports have (e.g. detect_all_fail_s.p50, latency_ms.p99)");
        }
    }
    print!("{}", gossip_loadgen::diff::markdown(&ra, &rb, &changes));
    let regressed: Vec<&str> = changes
        .iter()
        .filter(|c| fail_on.contains(&c.path) && c.verdict == gossip_loadgen::diff::Said::Higher)
        .map(|c| c.path.as_str())
        .collect();
    if !regressed.is_empty() {
        eprintln!(
            "gossip-loadgen: diff: regressed beyond noise: {}",
            regressed.join(", ")
        );
        std::process::exit(1);
    }
    Ok(())
}

fn lab_command(command: LabCommand) -> Result<()> {
    match command {
        LabCommand::Up {
            hosts,
            name,
            agent,
            no_agents,
        } => {
            let mut o = lab::UpOptions::new(&name, hosts);
            o.agent = agent;
            o.start_agents = !no_agents;
            // `up` clears a stale lab itself; clearing it here first lets
            // us say what went.
            lab::check_name(&name)?;
            if hosts > 0 && hosts <= lab::MAX_HOSTS {
                let stale = lab::down(&name)?;
                if !stale.is_empty() {
                    eprintln!("gossip-loadgen: lab up: cleared a stale lab: {stale}");
                }
            }
            let lab = lab::up(&o)?;
            print!("{}", lab.status());
            Ok(())
        }
        LabCommand::Down { name } => {
            println!("{}", lab::down(&name)?);
            Ok(())
        }
        LabCommand::Status { name } => {
            print!("{}", lab::Lab::load(&name)?.status());
            Ok(())
        }
    }
}

fn finish(report: &Report, html: &std::path::Path, json: bool) -> Result<()> {
    if json {
        let value = match (&report.sweep, &report.compare) {
            (Some(sw), _) => serde_json::json!({ "summary": report.summary, "sweep": sw }),
            (None, Some(c)) => serde_json::Value::Object(
                c.sides
                    .iter()
                    .map(|r| Ok((r.world.clone(), serde_json::to_value(&r.summary)?)))
                    .collect::<Result<_>>()?,
            ),
            (None, None) => serde_json::to_value(&report.summary)?,
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", report.markdown());
    }
    if report.interrupted {
        eprintln!(
            "gossip-loadgen: interrupted; {} of {} trials kept",
            report.trials_done, report.trials_requested
        );
    }
    if !json || std::io::stderr().is_terminal() {
        eprintln!("report: {}", html.display());
    }
    if let Some(why) = &report.interruption {
        bail!("the run broke off: {why}");
    }
    Ok(())
}

/// `--trials auto` without `--budget`: ten minutes.
const DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_secs(600);

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
