//! `datapath-bench`: the datapaths side by side on loopback, in one run.
//!
//! Cases, each an echo between two sockets driven by one thread (so that all
//! the work, sender and receiver, kernel and user, lands on one CPU clock):
//! - `std`: per-datagram `send_to`/`recv_from` on blocking sockets;
//! - `mmsg`, `uring`: raw echo through the [`Datapath`] interface;
//!   `uring-sendmsg` sends with `IORING_OP_SENDMSG` instead of the default
//!   `IORING_OP_SEND` with a destination address;
//! - `node-mmsg`, `node-uring`: the node's full PING/PONG handling: node B
//!   decodes each PING and encodes a PONG with a gossip section, node A decodes
//!   the PONG and applies its section; A's next PING goes out per PONG received;
//! - `-gso`: the same with UDP GSO/GRO offload;
//! - `-key`: the node cases with a cluster key: every datagram carries the
//!   33-byte authentication trailer, B checks each PING's tag and replay
//!   window and seals its PONG, A checks each PONG (and each PING copy is
//!   sealed afresh, as A's send would);
//! - `uring-gso-<size>[-zc]`: one GSO send of `<size>` bytes a turn, copied or
//!   zero-copy (`SENDMSG_ZC`), for the zero-copy crossover. 8 KB is about the
//!   largest a zero-copy send can be: its datagrams sit in separate send
//!   slots and an skb takes at most 17 page fragments (see the uring
//!   datapath's `ZEROCOPY_MAX_PAGES`).
//!
//! Repetitions are interleaved (rep 1 runs every case, then rep 2, ...) after
//! one warm-up rep, so that a change in the machine's load lands on every
//! case alike; the thread is pinned to one CPU. Each figure is the mean over
//! reps with its 95 % t-interval, each ratio the mean of the per-rep ratios
//! (rep i of one case against rep i of the other, run moments apart) with
//! its interval. The CPU the rest of the machine used during every rep is
//! recorded, and the JSON in `reports/datapath/<date>.json` keeps every rep.
//! Every case is bounded by a datagram count and a time limit.
//!
//! ```text
//! cargo run --release -p gossip-node --bin datapath-bench -- --reps 5
//! ```
#![forbid(unsafe_code)]

mod echo;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result};
use clap::Parser;
use gossip_core::Instant;
use gossip_node::datapath::uring::{SendOp, UringDatapath};
use gossip_node::datapath::{create, probe_uring, sys, Datapath, DatapathKind, DatapathOptions};
use gossip_node::timers::Timers;
use serde_json::{json, Value};

use echo::Run;
use stats::Summary;

/// The datapaths side by side on loopback.
#[derive(Debug, Parser)]
#[command(name = "datapath-bench")]
struct Args {
    /// Datagrams delivered per case and repetition (upper bound).
    #[arg(long, default_value_t = 100_000_000)]
    packets: u64,
    /// Time per case and repetition, seconds: a rep runs this long unless
    /// `--packets` ends it first, so that the fast cases (GSO: millions of
    /// datagrams a second) do as much work per rep as the slow ones and set-up
    /// and the /proc/stat tick (10 ms) vanish in it.
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
    /// Measured repetitions of every case (after one warm-up rep).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Datagrams in flight in each echo.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Nodes in the cluster the two benchmarked nodes know (sets the section size).
    #[arg(long, default_value_t = 50)]
    cluster: usize,
    /// CPU to pin the bench's thread to (default: the last one).
    #[arg(long)]
    cpu: Option<usize>,
    /// Only these cases (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Directory for the JSON report.
    #[arg(long, default_value = "reports/datapath")]
    out: PathBuf,
    /// Print only; write no report.
    #[arg(long)]
    no_write: bool,
    /// An earlier report (JSON) whose ratios to hold this run's against:
    /// prints, for every ratio in both, whether the two 95 % intervals overlap.
    #[arg(long, value_name = "JSON")]
    compare: Option<PathBuf>,
}

/// What a case runs.
#[derive(Clone, Copy, Debug)]
enum Case {
    Std,
    /// Raw echo on a datapath, its send operation, offload.
    Raw(DatapathKind, SendOp, bool),
    /// The nodes' PING/PONG on a datapath, its send operation, offload,
    /// cluster key.
    Node(DatapathKind, SendOp, bool, bool),
    /// One GSO send of `count` datagrams of `segment` bytes a turn on
    /// io_uring, zero-copy or copied.
    Burst {
        segment: usize,
        count: usize,
        zerocopy: bool,
    },
}

impl Case {
    fn uses_uring(self) -> bool {
        match self {
            Case::Std => false,
            Case::Raw(kind, ..) | Case::Node(kind, ..) => kind == DatapathKind::Uring,
            Case::Burst { .. } => true,
        }
    }
}

const MMSG: DatapathKind = DatapathKind::Mmsg;
const URING: DatapathKind = DatapathKind::Uring;
const TO: SendOp = SendOp::SendTo;
const MSG: SendOp = SendOp::SendMsg;

/// Every case, in report order. `uring` uses the datapath's default send
/// operation (SEND with a destination); `-sendmsg` the SENDMSG alternative.
const CASES: [(&str, Case); 21] = [
    ("std", Case::Std),
    ("mmsg", Case::Raw(MMSG, TO, false)),
    ("uring", Case::Raw(URING, TO, false)),
    ("uring-sendmsg", Case::Raw(URING, MSG, false)),
    ("node-mmsg", Case::Node(MMSG, TO, false, false)),
    ("node-uring", Case::Node(URING, TO, false, false)),
    ("node-uring-sendmsg", Case::Node(URING, MSG, false, false)),
    ("mmsg-gso", Case::Raw(MMSG, TO, true)),
    ("uring-gso", Case::Raw(URING, TO, true)),
    ("node-mmsg-gso", Case::Node(MMSG, TO, true, false)),
    ("node-uring-gso", Case::Node(URING, TO, true, false)),
    ("node-mmsg-key", Case::Node(MMSG, TO, false, true)),
    ("node-uring-key", Case::Node(URING, TO, false, true)),
    ("node-mmsg-gso-key", Case::Node(MMSG, TO, true, true)),
    ("node-uring-gso-key", Case::Node(URING, TO, true, true)),
    ("uring-gso-1k", burst(256, 4, false)),
    ("uring-gso-1k-zc", burst(256, 4, true)),
    ("uring-gso-4k", burst(1_000, 4, false)),
    ("uring-gso-4k-zc", burst(1_000, 4, true)),
    ("uring-gso-8k", burst(1_000, 8, false)),
    ("uring-gso-8k-zc", burst(1_000, 8, true)),
];

const fn burst(segment: usize, count: usize, zerocopy: bool) -> Case {
    Case::Burst {
        segment,
        count,
        zerocopy,
    }
}

/// Ratios reported (numerator, denominator), each over paired reps.
const RATIOS: [(&str, &str); 21] = [
    ("mmsg", "std"),
    ("uring", "std"),
    ("uring", "mmsg"),
    ("uring", "uring-sendmsg"),
    ("node-mmsg", "mmsg"),
    ("node-uring", "uring"),
    ("node-uring", "node-mmsg"),
    ("mmsg-gso", "mmsg"),
    ("uring-gso", "uring"),
    ("uring-gso", "mmsg-gso"),
    ("node-mmsg-gso", "node-mmsg"),
    ("node-uring-gso", "node-uring"),
    ("node-uring-gso", "node-mmsg-gso"),
    ("node-uring-sendmsg", "uring-sendmsg"),
    ("node-mmsg-key", "node-mmsg"),
    ("node-uring-key", "node-uring"),
    ("node-mmsg-gso-key", "node-mmsg-gso"),
    ("node-uring-gso-key", "node-uring-gso"),
    ("uring-gso-1k-zc", "uring-gso-1k"),
    ("uring-gso-4k-zc", "uring-gso-4k"),
    ("uring-gso-8k-zc", "uring-gso-8k"),
];

/// One rep of one case, and what the rest of the machine did meanwhile.
#[derive(Clone, Copy, Debug)]
struct Rep {
    run: Run,
    /// CPU-seconds per second the rest of the machine used during the rep
    /// (machine busy time less this process's CPU time, over wall time).
    other_cores: Option<f64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let limit = Duration::from_secs_f64(args.seconds);
    anyhow::ensure!(
        args.reps >= 2,
        "--reps must be at least 2 (an interval needs two)"
    );
    for c in &args.cases {
        anyhow::ensure!(
            CASES.iter().any(|(name, _)| name == c),
            "unknown case {c:?}"
        );
    }
    let size = echo::node_pair(args.cluster, false)?.0.len();
    eprintln!(
        "datapath-bench: {size}-byte datagrams (a PING in a {}-node cluster), window {}, {} reps interleaved after a warm-up",
        args.cluster, args.window, args.reps
    );
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let cpu = args.cpu.unwrap_or(cores - 1);
    let pinned = match sys::pin_current_thread(cpu) {
        Ok(()) => Some(cpu),
        Err(e) => {
            eprintln!(
                "datapath-bench: not pinned to CPU {cpu} ({e}); the scheduler may move the thread"
            );
            None
        }
    };
    let uring = match probe_uring() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("datapath-bench: io_uring refused ({e}); uring cases skipped");
            false
        }
    };
    let cases: Vec<(&str, Case)> = CASES
        .iter()
        .copied()
        .filter(|(name, _)| args.cases.is_empty() || args.cases.iter().any(|c| c == name))
        .filter(|(_, case)| uring || !case.uses_uring())
        .collect();
    let run = |case: Case| -> Result<Run> {
        match case {
            Case::Std => echo::std_echo(size, args.window, args.packets, limit),
            Case::Raw(kind, op, offload) => {
                let dp = datapath(kind, op, offload, false)?;
                echo::raw_echo(dp, size, args.window, args.packets, limit)
            }
            Case::Node(kind, op, offload, keyed) => {
                let dp = datapath(kind, op, offload, false)?;
                echo::node_echo(dp, args.cluster, args.window, args.packets, limit, keyed)
            }
            Case::Burst {
                segment,
                count,
                zerocopy,
            } => {
                let dp = datapath(URING, TO, true, zerocopy)?;
                echo::burst(dp, segment, count, zerocopy, args.packets, limit)
            }
        }
    };
    let load_before = stats::loadavg();
    let wall0 = StdInstant::now();
    let mut reps: Vec<Vec<Rep>> = vec![Vec::new(); cases.len()];
    let mut warmups: Vec<Option<Run>> = vec![None; cases.len()];
    for rep in 0..=args.reps {
        for (i, &(name, case)) in cases.iter().enumerate() {
            let busy0 = stats::machine_busy_seconds();
            let r = run(case).with_context(|| format!("case {name}, rep {rep}"))?;
            let busy = stats::machine_busy_seconds()
                .zip(busy0)
                .map(|(b1, b0)| b1 - b0);
            let other_cores =
                busy.map(|b| (b - r.cpu.as_secs_f64()).max(0.0) / r.wall.as_secs_f64());
            if rep == 0 {
                warmups[i] = Some(r);
            } else {
                reps[i].push(Rep {
                    run: r,
                    other_cores,
                });
            }
        }
        eprintln!(
            "  rep {rep}{} done at {:.0} s",
            if rep == 0 { " (warm-up)" } else { "" },
            wall0.elapsed().as_secs_f64()
        );
    }
    let load_after = stats::loadavg();
    let rates = |i: usize| -> Vec<f64> { reps[i].iter().map(|r| r.run.per_cpu_second()).collect() };
    eprintln!();
    eprintln!("| case | datagrams per CPU-second, mean | 95 % interval | sd | syscalls per datagram | other load, cores |");
    eprintln!("|---|---:|---:|---:|---:|---:|");
    let mut results = Vec::new();
    for (i, &(name, _)) in cases.iter().enumerate() {
        let Some(s) = Summary::of(&rates(i)) else {
            continue;
        };
        let packets: u64 = reps[i].iter().map(|r| r.run.packets).sum();
        let syscalls: u64 = reps[i].iter().map(|r| r.run.syscalls).sum();
        let other: Vec<f64> = reps[i].iter().filter_map(|r| r.other_cores).collect();
        let other_mean =
            (!other.is_empty()).then(|| other.iter().sum::<f64>() / other.len() as f64);
        eprintln!(
            "| {name} | {:.0} | {:.0} – {:.0} (±{:.1} %) | {:.1} % | {:.2} | {} |",
            s.mean,
            s.lo,
            s.hi,
            s.half_width_pct(),
            s.sd / s.mean * 100.0,
            syscalls as f64 / packets.max(1) as f64,
            other_mean.map_or("n/a".into(), |o| format!("{o:.2}")),
        );
        results.push(json!({
            "case": name,
            "datagrams_per_cpu_second": s.json(),
            "syscalls_per_datagram": syscalls as f64 / packets.max(1) as f64,
            "warmup": warmups[i].map(|r| rep_json(&Rep { run: r, other_cores: None })),
            "reps": reps[i].iter().map(rep_json).collect::<Vec<_>>(),
        }));
    }
    eprintln!();
    eprintln!("| ratio (datagrams per CPU-second, paired reps) | mean | 95 % interval |");
    eprintln!("|---|---:|---:|");
    let index = |n: &str| cases.iter().position(|(name, _)| *name == n);
    let mut ratios = serde_json::Map::new();
    for (a, b) in RATIOS {
        let (Some(ia), Some(ib)) = (index(a), index(b)) else {
            continue;
        };
        let paired: Vec<f64> = rates(ia)
            .iter()
            .zip(rates(ib))
            .map(|(x, y)| x / y.max(1e-9))
            .collect();
        let Some(s) = Summary::of(&paired) else {
            continue;
        };
        eprintln!("| {a} / {b} | {:.2} | {:.2} – {:.2} |", s.mean, s.lo, s.hi);
        ratios.insert(format!("{a}/{b}"), s.json());
    }
    if let Some(path) = &args.compare {
        compare(path, &ratios)?;
    }
    let timer_ns = timer_cost(10_000, 2_000_000);
    eprintln!(
        "timers: {timer_ns:.0} ns per fire + reschedule with 10,000 node deadlines (binary heap)"
    );
    let report = json!({
        "bench": "datapath",
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "date": today(),
        "commit": commit(),
        "machine": machine(cores),
        "load": {
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "note": "per rep: other_cores = (machine busy CPU-s from /proc/stat - this process's CPU-s) / wall s",
        },
        "pinned_cpu": pinned,
        "parameters": {
            "datagram_bytes": size,
            "key_trailer_bytes": gossip_core::wire::TRAILER_LEN,
            "window": args.window,
            "cluster_nodes": args.cluster,
            "packets_limit": args.packets,
            "seconds_limit": args.seconds,
            "reps": args.reps,
            "order": "interleaved: one warm-up rep of every case, then rep 1 of every case, rep 2, ...",
            "unit": "datagrams delivered per CPU-second of the process (one thread drives both ends)",
            "interval": "95 % Student's t interval of the mean over reps; ratios over paired reps",
        },
        "results": results,
        "ratios": ratios,
        "timers": { "nodes": 10_000, "ns_per_fire_and_reschedule": timer_ns.round(), "structure": "binary heap, lazy deletion" },
    });
    if !args.no_write {
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let path = args.out.join(format!("{}.json", today()));
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Prints this run's ratios beside those of the report at `path`, and whether
/// each pair of intervals overlaps (the two runs agree on that ratio).
fn compare(path: &std::path::Path, ratios: &serde_json::Map<String, Value>) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let earlier: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let interval = |v: &Value| -> Option<(f64, f64, f64)> {
        Some((
            v.get("mean")?.as_f64()?,
            v.get("ci95")?.get(0)?.as_f64()?,
            v.get("ci95")?.get(1)?.as_f64()?,
        ))
    };
    eprintln!();
    eprintln!("| ratio | {} | this run | agree |", path.display());
    eprintln!("|---|---:|---:|---|");
    let (mut agree, mut total) = (0, 0);
    for (name, now) in ratios {
        let (Some((m1, lo1, hi1)), Some((m2, lo2, hi2))) = (
            earlier
                .get("ratios")
                .and_then(|r| r.get(name))
                .and_then(interval),
            interval(now),
        ) else {
            continue;
        };
        let overlap = lo1.max(lo2) <= hi1.min(hi2);
        total += 1;
        agree += usize::from(overlap);
        eprintln!(
            "| {name} | {m1:.2} ({lo1:.2} – {hi1:.2}) | {m2:.2} ({lo2:.2} – {hi2:.2}) | {} |",
            if overlap { "yes" } else { "NO" }
        );
    }
    eprintln!("{agree} of {total} ratios agree (overlapping 95 % intervals)");
    Ok(())
}

fn rep_json(r: &Rep) -> Value {
    json!({
        "datagrams": r.run.packets,
        "cpu_seconds": r.run.cpu.as_secs_f64(),
        "wall_seconds": r.run.wall.as_secs_f64(),
        "datagrams_per_cpu_second": r.run.per_cpu_second().round(),
        "syscalls": r.run.syscalls,
        "other_cores": r.other_cores,
    })
}

/// The datapath under test; `send_op` picks io_uring's send operation,
/// `offload` UDP GSO/GRO, `zerocopy` SENDMSG_ZC for every GSO send (io_uring).
fn datapath(
    kind: DatapathKind,
    send_op: SendOp,
    offload: bool,
    zerocopy: bool,
) -> Result<Box<dyn Datapath>> {
    let options = DatapathOptions {
        max_datagram: 1_400,
        max_sockets: 4,
        recv_buffers: 4_096,
        send_buffers: 4_096,
        offload,
        zerocopy_min_bytes: zerocopy.then_some(0),
    };
    if kind == DatapathKind::Uring {
        let mut dp = UringDatapath::new(options)?;
        dp.set_send_op(send_op);
        return Ok(Box::new(dp));
    }
    Ok(create(kind, options)?)
}

/// Cost of firing and rescheduling one deadline among `nodes`, in ns.
fn timer_cost(nodes: u32, ops: u64) -> f64 {
    let mut timers = Timers::new();
    let period = 100_000u64; // 100 ms in µs
    for n in 0..nodes {
        timers.schedule(
            n,
            Some(Instant::from_micros(
                u64::from(n) * period / u64::from(nodes),
            )),
        );
    }
    let mut now = 0u64;
    let mut done = 0u64;
    let start = StdInstant::now();
    while done < ops {
        now += 10;
        while let Some((n, at)) = timers.pop_due(Instant::from_micros(now)) {
            timers.schedule(n, Some(Instant::from_micros(at.as_micros() + period)));
            done += 1;
        }
    }
    start.elapsed().as_nanos() as f64 / done as f64
}

/// Today's date (UTC), YYYY-MM-DD, from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Civil from days (H. Hinnant's algorithm), valid for the Unix era.
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// HEAD, and whether `node/` differs from it (a report from uncommitted code
/// says so).
fn commit() -> Value {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "HEAD"]);
    let dirty = git(&["status", "--porcelain", "--", "node"]).map(|s| !s.is_empty());
    json!({ "head": head, "node_dirty": dirty })
}

/// The machine; `cores` as counted before the thread was pinned (after it,
/// `available_parallelism` sees one).
fn machine(cores: usize) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .ok();
    json!({
        "cpu_model": model,
        "cores": cores,
        "kernel": kernel,
        "io_uring_disabled": std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").map(|s| s.trim().to_string()).ok(),
    })
}
