//! `gossip-node`: runs one or many gossip nodes on real UDP sockets.
//!
//! ```text
//! gossip-node --nodes 200 --metrics 127.0.0.1:9100 --duration 20
//! gossip-node --bind 10.0.0.5:7000 --join 10.0.0.4:7000 --node-timeout-ms 5000
//! gossip-node --nodes 1000 --slots 500 --offload   # 2 shared sockets, GSO/GRO
//! gossip-node agent --listen 127.0.0.1:7070 --token-file agent.token
//! ```
#![forbid(unsafe_code)]

use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use gossip_core::wire::MessageType;
use gossip_core::{Endpoint, Profile};
use gossip_node::agent::{self, AgentAddr, AgentOptions};
use gossip_node::datapath::DatapathChoice;
use gossip_node::metrics;
use gossip_node::profile;
use gossip_node::runtime::{Runtime, RuntimeConfig};

/// Runs gossip nodes (Redis-Cluster-style membership) on real UDP sockets.
#[derive(Debug, Parser)]
#[command(name = "gossip-node", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs no nodes until a loadgen tells it to, over an HTTP + JSON control
    /// channel (start, kill, restart, pause nodes; stream their events; apply
    /// network faults).
    Agent(AgentArgs),
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// Where the control channel listens: IP:PORT, or unix:PATH (a socket
    /// file made mode 0600). A non-loopback address reaches the agent from
    /// other hosts; every request still needs the token.
    #[arg(long, value_name = "ADDR|unix:PATH", default_value = "127.0.0.1:7070")]
    listen: AgentAddr,
    /// File holding the shared token every request must carry (Authorization:
    /// Bearer). Created with a random token, mode 0600, when missing.
    #[arg(long, value_name = "PATH")]
    token_file: PathBuf,
    /// Address the nodes bind (default: the listen IP if it is a specific
    /// one, else 127.0.0.1).
    #[arg(long, value_name = "IP")]
    bind_ip: Option<IpAddr>,
    /// Let the loadgen apply network faults to this host's packets (loss and
    /// partitions with nftables, latency with tc netem); needs root.
    #[arg(long)]
    allow_faults: bool,
    /// Added to the agent's clock, in ms: for tests of a loadgen's clock
    /// offset estimate; never needed on real hosts.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    clock_offset_ms: i64,
}

/// The flat run mode: nodes from the command line.
#[derive(Debug, clap::Args)]
struct Args {
    /// Address of the first socket; further sockets take the following ports.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7000")]
    bind: SocketAddr,
    /// Nodes to run in this process, on consecutive ports.
    #[arg(long, value_name = "N", default_value_t = 1)]
    nodes: usize,
    /// Nodes per socket (shared-socket mode above 1): each socket carries
    /// this many nodes in slots 0.., told apart by the header's slot.
    /// --nodes must be a multiple of it.
    #[arg(long, value_name = "K", default_value_t = 1)]
    slots: usize,
    /// UDP GSO/GRO: a turn's datagrams to one socket leave as one send and
    /// arrive as one receive (either datapath; pays with --slots > 1).
    #[arg(long)]
    offload: bool,
    /// Spread the nodes over this many consecutive IPv4 addresses from
    /// --bind's (127.0.0.1, 127.0.0.2, ... on loopback), then over ports.
    #[arg(long, value_name = "K", default_value_t = 1)]
    ips: usize,
    /// Node to MEET at start, ADDR or ADDR#SLOT behind a shared socket
    /// (repeatable). Without any, nodes 1.. meet node 0.
    #[arg(long, value_name = "ADDR[#SLOT]", value_parser = parse_endpoint)]
    join: Vec<Endpoint>,
    /// Deprecated spelling of --join (a PRNG seed everywhere else is
    /// --rng-seed); accepted with a warning for one release.
    #[arg(long = "seed", value_name = "ADDR[#SLOT]", value_parser = parse_endpoint, hide = true)]
    deprecated_seed: Vec<Endpoint>,
    /// Protocol profile: redis (every node holds every other, Redis Cluster's
    /// rules), lean (Redis's rules over a partial view of --max-peers peers,
    /// for clusters of thousands) or swim (every node holds every other at a
    /// cost per node that does not grow with N: SWIM with Lifeguard).
    #[arg(long, value_name = "NAME", default_value = "redis")]
    profile: String,
    /// Deprecated spellings of --max-peers, --node-timeout-ms and --tick-ms
    /// (every protocol parameter's flag is now its flat name); accepted with
    /// a warning for one release.
    #[arg(long = "view", value_name = "PEERS", hide = true)]
    deprecated_view: Option<String>,
    #[arg(long = "node-timeout", value_name = "MS", hide = true)]
    deprecated_node_timeout: Option<String>,
    #[arg(long = "tick", value_name = "MS", hide = true)]
    deprecated_tick: Option<String>,
    /// UDP datapath: io_uring, recvmmsg/sendmsg (mmsg), or io_uring where it works.
    #[arg(long, value_name = "auto|uring|mmsg", default_value = "auto")]
    datapath: DatapathChoice,
    /// I/O threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Pin each I/O thread to its own CPU.
    #[arg(long)]
    pin: bool,
    /// Serve Prometheus metrics over HTTP at this address.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Start the nodes over this many seconds instead of all at once.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    ramp: f64,
    /// Let an I/O thread sleep up to this long past its earliest deadline, so
    /// that the deadlines of many nodes fire in one turn (fewer system calls,
    /// fuller GSO sends); every tick then fires up to this much late.
    #[arg(long, value_name = "MS", default_value_t = 2.0)]
    timer_slack: f64,
    /// Seed for node ids and random choices (default: random).
    #[arg(long, value_name = "U64")]
    rng_seed: Option<u64>,
    /// SO_RCVBUF and SO_SNDBUF per node, in bytes (a shared socket asks for
    /// this times its slots, at most 64 MiB; the kernel caps both).
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024)]
    socket_buffer: usize,
    #[command(flatten)]
    cluster_key: ClusterKeyArgs,
}

/// Cluster keys (issue 14): kept apart from the protocol's parameters, as a
/// key is a secret, not a tunable, and never appears in a report.
#[derive(Debug, clap::Args)]
struct ClusterKeyArgs {
    /// Authenticate every datagram with the cluster keyring in this file
    /// (format: `gossip_node::keyfile`, docs/wire-format.md §8). SIGHUP
    /// re-reads it: a key rotation step on the running nodes.
    #[arg(long, value_name = "PATH")]
    cluster_key_file: Option<PathBuf>,
    /// Require proven joins: a MEET is answered with a stateless cookie and
    /// only a PING that returns it admits the sender (every node of the
    /// cluster should use it, or none).
    #[arg(long)]
    join_cookies: bool,
}

impl ClusterKeyArgs {
    fn load(&self) -> Result<Option<std::sync::Arc<gossip_core::Keyring>>> {
        self.cluster_key_file
            .as_deref()
            .map(|p| gossip_node::keyfile::load(p).map_err(anyhow::Error::msg))
            .transpose()
    }
}

fn main() -> ExitCode {
    // The protocol parameters' flags come from the core's list, not from a
    // struct here: one declaration, one spelling.
    let matches = profile::add_flags(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let set = profile::flags(&matches);
    let result = match cli.command {
        Some(Command::Agent(a)) => agent::run(AgentOptions {
            listen: a.listen,
            token_file: a.token_file,
            bind_ip: a.bind_ip,
            allow_faults: a.allow_faults,
            clock_offset_ms: a.clock_offset_ms,
        }),
        None => run(cli.run, set),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the top error's text already names its cause.
            eprintln!("gossip-node: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, mut set: Vec<(String, String)>) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if args.slots == 0 || args.slots > 65_536 || args.nodes % args.slots != 0 {
        bail!(
            "--slots must be between 1 and 65536 and divide --nodes ({} nodes, {} slots)",
            args.nodes,
            args.slots
        );
    }
    let sockets = args.nodes / args.slots;
    let Some(binds) = RuntimeConfig::spread(args.bind.ip(), args.bind.port(), sockets, args.ips)
    else {
        bail!(
            "{sockets} socket(s) over --ips {} from {} run out of addresses or ports (or spread IPv6)",
            args.ips,
            args.bind
        );
    };
    let Some(profile) = Profile::from_name(&args.profile) else {
        let known: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
        bail!(
            "unknown profile {:?} (known: {})",
            args.profile,
            known.join(", ")
        );
    };
    for (old, new, v) in [
        ("view", "max_peers", &args.deprecated_view),
        (
            "node-timeout",
            "node_timeout_ms",
            &args.deprecated_node_timeout,
        ),
        ("tick", "tick_ms", &args.deprecated_tick),
    ] {
        if let Some(v) = v {
            let flag = new.replace('_', "-");
            eprintln!("gossip-node: warning: --{old} is deprecated, use --{flag} (--{old} goes in the next release)");
            set.push((new.into(), v.clone()));
        }
    }
    let mut builder = profile.builder();
    for (name, v) in &set {
        let flag = name.replace('_', "-");
        builder
            .set(name, v)
            .map_err(|e| anyhow::anyhow!("--{flag} {v:?}: {e}"))?;
    }
    let node = builder
        .build()
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.param().replace('_', "-"), e.problem))?;
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration must be a positive number of seconds");
        }
    }
    if !(args.timer_slack.is_finite() && (0.0..=10.0).contains(&args.timer_slack)) {
        bail!("--timer-slack must be between 0 and 10 ms (a tick later than 10 ms counts as late)");
    }
    if !(args.ramp.is_finite() && args.ramp >= 0.0) {
        bail!("--ramp must be zero or a positive number of seconds");
    }
    let keyring = args.cluster_key.load()?;
    let metrics_listener = match args.metrics {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot bind metrics address {addr}: {e}"))?,
        ),
        None => None,
    };
    let rng_seed = args.rng_seed.unwrap_or_else(|| {
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
    });
    let mut join = args.join.clone();
    if !args.deprecated_seed.is_empty() {
        eprintln!("gossip-node: warning: --seed is deprecated, use --join (--seed goes in the next release)");
        join.extend(args.deprecated_seed.iter().copied());
    }
    let runtime = Runtime::start(RuntimeConfig {
        datapath: args.datapath,
        threads: args.threads,
        pin: args.pin,
        node,
        binds,
        slots: args.slots,
        offload: args.offload,
        join,
        rng_seed,
        ramp: Duration::from_secs_f64(args.ramp),
        socket_buffer_bytes: args.socket_buffer,
        timer_slack: Duration::from_secs_f64(args.timer_slack / 1_000.0),
        keyring,
        join_cookies: args.cluster_key.join_cookies,
        ..RuntimeConfig::default()
    })?;
    let stop = runtime.stop_flag();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    let endpoints = runtime.endpoints();
    eprintln!(
        "gossip-node: {} node(s) on {}{}, {} I/O thread(s), datapath {}{}",
        endpoints.len(),
        endpoints[0],
        match endpoints.len() {
            1 => String::new(),
            n => format!(" to {}", endpoints[n - 1]),
        },
        runtime.threads(),
        runtime.datapath(),
        if args.offload { " with GSO/GRO" } else { "" },
    );
    let server = match metrics_listener {
        Some(listener) => {
            let at = listener.local_addr()?;
            eprintln!("gossip-node: metrics at http://{at}/metrics");
            Some(metrics::serve(listener, runtime.metrics())?)
        }
        None => None,
    };
    let started = Instant::now();
    let until = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let reload = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.cluster_key.cluster_key_file.is_some() {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
            .context("installing the SIGHUP handler")?;
    }
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| Instant::now() < u) {
        std::thread::sleep(Duration::from_millis(50));
        if reload.swap(false, Ordering::Relaxed) {
            // A bad file leaves the keyring as it was: the nodes keep talking.
            match args.cluster_key.load() {
                Ok(Some(k)) => eprintln!(
                    "gossip-node: cluster keyring reloaded: {} node(s) now send with key {}",
                    runtime.set_keyring(k.clone()),
                    k.sending()
                ),
                Ok(None) => {}
                Err(e) => eprintln!("gossip-node: keyring not reloaded: {e}"),
            }
        }
    }
    let source = runtime.metrics();
    runtime.shutdown().context("an I/O thread failed")?;
    if let Some(server) = server {
        server.stop();
    }
    let m = source.total();
    eprintln!(
        "gossip-node: stopped after {:.1} s: {} node(s); peers handshake {} alive {} pfail {} fail {}; events PFAIL {} FAIL {} forgotten {}; ticks {} (late {}); datagrams in {} out {}; system calls {}; GSO sends {} GRO receives {}; decode errors {}; auth refused {}",
        started.elapsed().as_secs_f64(),
        m.nodes,
        m.peers[0],
        m.peers[1],
        m.peers[2],
        m.peers[3],
        m.events[event_kind("peer_pfail")],
        m.events[event_kind("peer_fail")],
        m.events[event_kind("peer_forgotten")],
        m.stats.ticks,
        m.stats.late_ticks,
        m.datapath.datagrams_in,
        m.datapath.datagrams_out,
        m.datapath.syscalls,
        m.datapath.gso_sends,
        m.datapath.gro_receives,
        m.stats.decode_errors_total(),
        m.stats.auth.total(),
    );
    // Every datagram the nodes handed out, and what became of it: a line to
    // parse (`key value` pairs), for tests that hold it against a firewall's
    // counters.
    let c = &m.datapath;
    eprintln!(
        "gossip-node: sends: transmits {} sent {} refused {} would_block {} errors {} stale {} received {}",
        MessageType::ALL
            .iter()
            .map(|&kind| m.stats.sent(kind).datagrams)
            .sum::<u64>(),
        c.datagrams_out,
        c.send_refused,
        c.send_would_block,
        c.send_errors,
        c.stale,
        c.datagrams_in,
    );
    // And how receiving went: io_uring's multishot receives that ran out of
    // buffers (each re-armed), and what was dropped on the way in.
    eprintln!(
        "gossip-node: receives: received {} gro_receives {} truncated {} errors {} enobufs {} rearms {} drains {}",
        c.datagrams_in, c.gro_receives, c.truncated, c.recv_errors, c.enobufs, c.rearms, c.drains,
    );
    Ok(())
}

/// Index of an event kind in `metrics::EVENT_KINDS`.
fn event_kind(name: &str) -> usize {
    metrics::EVENT_KINDS
        .iter()
        .position(|&k| k == name)
        .expect("a kind listed in EVENT_KINDS") // invariant: names from that list
}

/// `ADDR` or `ADDR#SLOT`, as endpoints print.
fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let (addr, slot) = match s.rsplit_once('#') {
        Some((addr, slot)) => {
            let slot = slot
                .parse::<u16>()
                .map_err(|_| format!("slot {slot:?} is not a number from 0 to 65535"))?;
            (addr, slot)
        }
        None => (s, 0),
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP:PORT address"))?;
    Ok(Endpoint::new(addr, slot))
}
