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
//!   the PONG and applies its section; A's next PING goes out per PONG received.
//!
//! Reported as datagrams delivered per CPU-second of the process, with ratios,
//! and written as JSON into `reports/datapath/<date>.json` with the machine.
//! Every case is bounded by a datagram count and a time limit.
//!
//! ```text
//! cargo run --release -p gossip-node --bin datapath-bench -- --packets 300000
//! ```
#![forbid(unsafe_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result};
use clap::Parser;
use gossip_core::wire::MessageType;
use gossip_core::{Config, Identity, Instant, Node, NodeId, PeerState};
use gossip_node::datapath::uring::{SendOp, UringDatapath};
use gossip_node::datapath::{create, probe_uring, sys, Datapath, DatapathKind, DatapathOptions};
use gossip_node::runtime::bind;
use gossip_node::timers::{Clock, Timers};
use serde_json::{json, Value};

/// The datapaths side by side on loopback.
#[derive(Debug, Parser)]
#[command(name = "datapath-bench")]
struct Args {
    /// Datagrams delivered per case and repetition (upper bound).
    #[arg(long, default_value_t = 300_000)]
    packets: u64,
    /// Time limit per case and repetition, seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Repetitions per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Datagrams in flight in each echo.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Nodes in the cluster the two benchmarked nodes know (sets the section size).
    #[arg(long, default_value_t = 50)]
    cluster: usize,
    /// Directory for the JSON report.
    #[arg(long, default_value = "reports/datapath")]
    out: PathBuf,
    /// Print only; write no report.
    #[arg(long)]
    no_write: bool,
}

/// What a case runs.
#[derive(Clone, Copy, Debug)]
enum Case {
    Std,
    Raw(DatapathKind, SendOp),
    Node(DatapathKind, SendOp),
    /// The mmsg datapath with UDP GSO/GRO offload: raw echo, or nodes.
    RawGso,
    NodeGso,
}

/// Every case, in report order. `uring` uses the datapath's default send
/// operation (SEND with a destination); `-sendmsg` the SENDMSG alternative.
const CASES: [(&str, Case); 9] = [
    ("std", Case::Std),
    ("mmsg", Case::Raw(DatapathKind::Mmsg, SendOp::SendTo)),
    ("uring", Case::Raw(DatapathKind::Uring, SendOp::SendTo)),
    (
        "uring-sendmsg",
        Case::Raw(DatapathKind::Uring, SendOp::SendMsg),
    ),
    ("node-mmsg", Case::Node(DatapathKind::Mmsg, SendOp::SendTo)),
    (
        "node-uring",
        Case::Node(DatapathKind::Uring, SendOp::SendTo),
    ),
    (
        "node-uring-sendmsg",
        Case::Node(DatapathKind::Uring, SendOp::SendMsg),
    ),
    ("mmsg-gso", Case::RawGso),
    ("node-mmsg-gso", Case::NodeGso),
];

/// One measured run.
#[derive(Clone, Copy, Debug)]
struct Run {
    packets: u64,
    cpu: Duration,
    wall: Duration,
    syscalls: u64,
}

impl Run {
    fn per_cpu_second(&self) -> f64 {
        self.packets as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let limit = Duration::from_secs_f64(args.seconds);
    let size = node_pair(args.cluster)?.0.len();
    eprintln!(
        "datapath-bench: {size}-byte datagrams (a PING in a {}-node cluster), window {}",
        args.cluster, args.window
    );
    let uring = match probe_uring() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("datapath-bench: io_uring refused ({e}); uring cases skipped");
            false
        }
    };
    let mut results: Vec<(String, Option<Run>)> = Vec::new();
    let case = |name: &str, f: &mut dyn FnMut() -> Result<Run>| -> Result<Run> {
        let mut runs = Vec::new();
        for _ in 0..args.reps.max(1) {
            runs.push(f().with_context(|| format!("case {name}"))?);
        }
        runs.sort_by(|a, b| a.per_cpu_second().total_cmp(&b.per_cpu_second()));
        let median = runs[runs.len() / 2];
        eprintln!(
            "  {name:<18} {:>9.0} datagrams/CPU-s  {:>9.0} datagrams/s  ({} datagrams, {:.2} CPU-s, {:.2} syscalls/datagram)",
            median.per_cpu_second(),
            median.packets as f64 / median.wall.as_secs_f64(),
            median.packets,
            median.cpu.as_secs_f64(),
            median.syscalls as f64 / median.packets as f64,
        );
        Ok(median)
    };
    for (name, what) in CASES {
        let run = |what| match what {
            Case::Std => std_echo(size, args.window, args.packets, limit),
            Case::Raw(kind, op) => {
                let dp = datapath(kind, op, false)?;
                raw_echo(dp, size, args.window, args.packets, limit)
            }
            Case::Node(kind, op) => {
                let dp = datapath(kind, op, false)?;
                node_echo(dp, args.cluster, args.window, args.packets, limit)
            }
            Case::RawGso => {
                let dp = datapath(DatapathKind::Mmsg, SendOp::SendTo, true)?;
                raw_echo(dp, size, args.window, args.packets, limit)
            }
            Case::NodeGso => {
                let dp = datapath(DatapathKind::Mmsg, SendOp::SendTo, true)?;
                node_echo(dp, args.cluster, args.window, args.packets, limit)
            }
        };
        match what {
            Case::Raw(DatapathKind::Uring, _) | Case::Node(DatapathKind::Uring, _) if !uring => {
                results.push((name.to_string(), None));
            }
            _ => results.push((name.to_string(), Some(case(name, &mut || run(what))?))),
        }
    }
    let rate = |n: &str| {
        results
            .iter()
            .find(|(name, _)| name == n)
            .and_then(|(_, r)| r.map(|r| r.per_cpu_second()))
    };
    let ratio = |a: &str, b: &str| rate(a).zip(rate(b)).map(|(a, b)| a / b);
    let ratios = [
        ("mmsg/std", ratio("mmsg", "std")),
        ("uring/std", ratio("uring", "std")),
        ("uring/mmsg", ratio("uring", "mmsg")),
        ("uring/uring-sendmsg", ratio("uring", "uring-sendmsg")),
        ("node-mmsg/mmsg", ratio("node-mmsg", "mmsg")),
        ("node-uring/uring", ratio("node-uring", "uring")),
        ("node-uring/node-mmsg", ratio("node-uring", "node-mmsg")),
        ("mmsg-gso/std", ratio("mmsg-gso", "std")),
        ("mmsg-gso/mmsg", ratio("mmsg-gso", "mmsg")),
        ("node-mmsg-gso/std", ratio("node-mmsg-gso", "std")),
        ("node-mmsg-gso/mmsg-gso", ratio("node-mmsg-gso", "mmsg-gso")),
        (
            "node-uring-sendmsg/uring-sendmsg",
            ratio("node-uring-sendmsg", "uring-sendmsg"),
        ),
    ];
    eprintln!("ratios (datagrams per CPU-second):");
    for (name, r) in &ratios {
        match r {
            Some(r) => eprintln!("  {name:<33} {r:.2}"),
            None => eprintln!("  {name:<33} n/a"),
        }
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
        "machine": machine(),
        "parameters": {
            "datagram_bytes": size,
            "window": args.window,
            "cluster_nodes": args.cluster,
            "packets_limit": args.packets,
            "seconds_limit": args.seconds,
            "reps": args.reps,
            "unit": "datagrams delivered per CPU-second of the process (one thread drives both ends)",
        },
        "results": results.iter().map(|(name, r)| match r {
            Some(r) => json!({
                "case": name,
                "datagrams": r.packets,
                "cpu_seconds": r.cpu.as_secs_f64(),
                "wall_seconds": r.wall.as_secs_f64(),
                "datagrams_per_cpu_second": r.per_cpu_second().round(),
                "datagrams_per_second": (r.packets as f64 / r.wall.as_secs_f64()).round(),
                "syscalls_per_datagram": r.syscalls as f64 / r.packets as f64,
            }),
            None => json!({ "case": name, "skipped": "io_uring refused" }),
        }).collect::<Vec<Value>>(),
        "ratios": ratios.iter().map(|(n, r)| (n.to_string(), json!(r))).collect::<serde_json::Map<_, _>>(),
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

fn loopback_pair() -> Result<(UdpSocket, SocketAddr, UdpSocket, SocketAddr)> {
    let a = bind("127.0.0.1:0".parse()?, 4 << 20)?;
    let b = bind("127.0.0.1:0".parse()?, 4 << 20)?;
    let (aa, ba) = (a.local_addr()?, b.local_addr()?);
    Ok((a, aa, b, ba))
}

/// Per-datagram blocking send_to/recv_from, `window` datagrams in flight.
fn std_echo(size: usize, window: usize, packets: u64, limit: Duration) -> Result<Run> {
    let (a, _, b, addr_b) = loopback_pair()?;
    a.set_read_timeout(Some(Duration::from_secs(1)))?;
    b.set_read_timeout(Some(Duration::from_secs(1)))?;
    let payload = vec![0x5au8; size];
    let mut buf = vec![0u8; 65_536];
    let (cpu0, wall0) = (sys::process_cpu_time(), StdInstant::now());
    for _ in 0..window {
        a.send_to(&payload, addr_b)?;
    }
    let mut delivered = 0u64;
    let mut syscalls = window as u64;
    while delivered < packets && wall0.elapsed() < limit {
        // B echoes one, A takes the echo and sends the next: 2 deliveries.
        let (n, from) = b.recv_from(&mut buf)?;
        b.send_to(&buf[..n], from)?;
        let (n, _) = a.recv_from(&mut buf)?;
        a.send_to(&buf[..n], addr_b)?;
        delivered += 2;
        syscalls += 4;
    }
    Ok(Run {
        packets: delivered,
        cpu: sys::process_cpu_time() - cpu0,
        wall: wall0.elapsed(),
        syscalls,
    })
}

/// The datapath under test; `send_op` picks io_uring's send operation,
/// `offload` UDP GSO/GRO (mmsg only).
fn datapath(kind: DatapathKind, send_op: SendOp, offload: bool) -> Result<Box<dyn Datapath>> {
    let options = DatapathOptions {
        max_datagram: 1_400,
        max_sockets: 4,
        recv_buffers: 4_096,
        send_buffers: 4_096,
        offload,
    };
    if kind == DatapathKind::Uring {
        let mut dp = UringDatapath::new(options)?;
        dp.set_send_op(send_op);
        return Ok(Box::new(dp));
    }
    Ok(create(kind, options)?)
}

/// Raw echo through a datapath: every datagram received is sent back out of
/// the socket it arrived on, copied, the same size.
fn raw_echo(
    mut dp: Box<dyn Datapath>,
    size: usize,
    window: usize,
    packets: u64,
    limit: Duration,
) -> Result<Run> {
    let (a, addr_a, b, addr_b) = loopback_pair()?;
    let ia = dp.register(a)?;
    let ib = dp.register(b)?;
    let (cpu0, wall0) = (sys::process_cpu_time(), StdInstant::now());
    let syscalls0 = dp.counters().syscalls;
    for _ in 0..window {
        let buf = dp.send_buffer().context("no send buffer")?;
        buf[..size].fill(0x5a);
        dp.queue_send(ia, addr_b, size);
    }
    let mut delivered = 0u64;
    let mut echo: Vec<(usize, Vec<u8>)> = Vec::with_capacity(window);
    let mut spare: Vec<Vec<u8>> = Vec::new();
    while delivered < packets && wall0.elapsed() < limit {
        dp.poll(Some(Duration::from_millis(100)), &mut |socket, _, bytes| {
            let mut v = spare.pop().unwrap_or_default();
            v.clear();
            v.extend_from_slice(bytes);
            echo.push((socket, v));
        })?;
        for (socket, bytes) in echo.drain(..) {
            delivered += 1;
            let to = if socket == ib { addr_a } else { addr_b };
            let Some(buf) = dp.send_buffer() else {
                anyhow::bail!("send buffers exhausted");
            };
            buf[..bytes.len()].copy_from_slice(&bytes);
            dp.queue_send(socket, to, bytes.len());
            spare.push(bytes);
        }
    }
    Ok(Run {
        packets: delivered,
        cpu: sys::process_cpu_time() - cpu0,
        wall: wall0.elapsed(),
        syscalls: dp.counters().syscalls - syscalls0,
    })
}

/// Two nodes that know each other and `cluster - 2` more peers, all alive,
/// at the addresses their sockets will have; and a PING from A to B.
struct NodePair {
    a: Node,
    b: Node,
}

/// Builds a converged in-memory cluster of `cluster` nodes and returns A's
/// PING to B (captured from A's cron) and the two nodes. The other nodes'
/// addresses are never sent to in the bench (no cron runs there).
fn node_pair(cluster: usize) -> Result<(Vec<u8>, NodePair)> {
    let cluster = cluster.max(3);
    let config = Config::default();
    let addr = |i: usize| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16)) };
    let mut nodes: Vec<Node> = (0..cluster)
        .map(|i| {
            Node::new(
                Identity::new(NodeId(1_000 + i as u64)),
                config.clone(),
                i as u64,
                Instant::ZERO,
            )
        })
        .collect();
    let mut now = Instant::ZERO;
    for n in nodes.iter_mut().skip(1) {
        let _ = n.meet(now, addr(0).into());
    }
    let mut buf = vec![0u8; config.max_datagram()];
    let mut in_flight: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::new();
    // Step virtual time until everyone sees everyone alive (bounded).
    for _ in 0..100_000 {
        now = now + Duration::from_millis(10);
        for (i, n) in nodes.iter_mut().enumerate() {
            n.handle_timeout(now);
            while let Some(tx) = n.poll_transmit(now, &mut buf) {
                in_flight.push((
                    tx.to.port() as usize - 20_000,
                    addr(i),
                    buf[..tx.len].to_vec(),
                ));
            }
            while n.poll_event().is_some() {}
        }
        for (to, from, bytes) in in_flight.drain(..) {
            if let Some(n) = nodes.get_mut(to) {
                let _ = n.handle_datagram(now, from, &bytes);
            }
        }
        let converged = nodes.iter().all(|n| {
            n.peers().len() == cluster - 1
                && n.peers().iter().all(|p| p.state() == PeerState::Alive)
        });
        if converged {
            break;
        }
    }
    let mut b = nodes.swap_remove(1);
    let mut a = nodes.swap_remove(0);
    anyhow::ensure!(
        a.peers().len() == cluster - 1,
        "the in-memory cluster did not converge"
    );
    // Advance A until its cron pings B; keep that datagram.
    let b_port = 20_001;
    for _ in 0..100_000 {
        now = now + Duration::from_millis(10);
        a.handle_timeout(now);
        while let Some(tx) = a.poll_transmit(now, &mut buf) {
            if tx.kind == MessageType::Ping && tx.to.port() == b_port {
                while b.poll_event().is_some() {}
                return Ok((buf[..tx.len].to_vec(), NodePair { a, b }));
            }
        }
    }
    anyhow::bail!("A never pinged B")
}

/// Full protocol handling: B answers each PING with a PONG (section
/// included), A handles each PONG and sends the next PING.
fn node_echo(
    mut dp: Box<dyn Datapath>,
    cluster: usize,
    window: usize,
    packets: u64,
    limit: Duration,
) -> Result<Run> {
    // Node is not Clone (one state machine, one owner): a fresh pair per run.
    let (ping, NodePair { mut a, mut b }) = node_pair(cluster)?;
    let ping = ping.as_slice();
    let (a_sock, _, b_sock, addr_b) = loopback_pair()?;
    let ia = dp.register(a_sock)?;
    let ib = dp.register(b_sock)?;
    // The nodes' views name the in-memory addresses; the real ones differ, and
    // the core adopts a peer's new address when it hears from it (B answers
    // A's real socket from the first PING on).
    let clock = Clock::new();
    let (cpu0, wall0) = (sys::process_cpu_time(), StdInstant::now());
    let syscalls0 = dp.counters().syscalls;
    for _ in 0..window {
        let buf = dp.send_buffer().context("no send buffer")?;
        buf[..ping.len()].copy_from_slice(ping);
        dp.queue_send(ia, addr_b, ping.len());
    }
    let mut delivered = 0u64;
    let mut pongs = 0usize;
    let base = Instant::from_micros(1 << 40);
    while delivered < packets && wall0.elapsed() < limit {
        let now = Instant::from_micros(base.as_micros() + clock.now().as_micros());
        let mut got = 0u64;
        dp.poll(
            Some(Duration::from_millis(100)),
            &mut |socket, from, bytes| {
                got += 1;
                if socket == ib {
                    let _ = b.handle_datagram(now, from, bytes);
                } else {
                    let _ = a.handle_datagram(now, from, bytes);
                    pongs += 1;
                }
            },
        )?;
        delivered += got;
        while let Some(buf) = dp.send_buffer() {
            let Some(tx) = b.poll_transmit(now, buf) else {
                break;
            };
            dp.queue_send(ib, tx.to.addr(), tx.len);
        }
        while a.poll_event().is_some() || b.poll_event().is_some() {}
        for _ in 0..pongs {
            let buf = dp.send_buffer().context("no send buffer")?;
            buf[..ping.len()].copy_from_slice(ping);
            dp.queue_send(ia, addr_b, ping.len());
        }
        pongs = 0;
    }
    anyhow::ensure!(
        a.stats().received(MessageType::Pong).datagrams > 0,
        "no PONG reached A"
    );
    anyhow::ensure!(
        a.stats().decode_errors_total() + b.stats().decode_errors_total() == 0,
        "decode errors"
    );
    Ok(Run {
        packets: delivered,
        cpu: sys::process_cpu_time() - cpu0,
        wall: wall0.elapsed(),
        syscalls: dp.counters().syscalls - syscalls0,
    })
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

fn machine() -> Value {
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
        "cores": std::thread::available_parallelism().map_or(1, |c| c.get()),
        "kernel": kernel,
        "io_uring_disabled": std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").map(|s| s.trim().to_string()).ok(),
    })
}
