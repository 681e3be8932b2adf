//! Lab tool for issue 18 (docs/redis-fidelity.md §12): one Redis-profile
//! cluster in the simulator, its steady PING rate, in which cron after a
//! wall-clock second's start its nodes ping, and one crash's PFAIL and FAIL
//! times, with the cron's lateness and the network's latency as inputs.
//!
//! ```text
//! LAT_US=1000 LAT_SIGMA=1.5 cargo run --release -p gossip-core --features sim \
//!     --example redis_cron -- N NODE_TIMEOUT_MS SEED CRON_SLACK_US
//! ```
//! Latency is one-way, log-normal (median `LAT_US`, shape `LAT_SIGMA`;
//! defaults 250 µs and 0.5, the simulator's LAN).

use std::collections::BTreeMap;
use std::time::Duration;

use gossip_core::sim::{Capture, Fault, Latency, NetworkParams, Simulation};
use gossip_core::wire::MessageType;
use gossip_core::{Config, CronSchedule, Event, Instant};

/// The simulator's wall-clock origin (`sim/simulation.rs` `SEED_EPOCH`).
const SEED_EPOCH: u64 = 0xe90_0000_0000_0005;

fn arg<T: std::str::FromStr>(a: &mut impl Iterator<Item = String>, default: T) -> T {
    a.next()
        .map_or(default, |s| s.parse().ok().expect("arguments are numbers"))
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).map_or(default, |v| v.parse().ok().expect("a number"))
}

fn main() {
    let mut a = std::env::args().skip(1);
    let n: usize = arg(&mut a, 48);
    let nt: u64 = arg(&mut a, 2000);
    let seed: u64 = arg(&mut a, 1);
    let slack: u64 = arg(&mut a, 1000);
    let config = Config::builder()
        .node_timeout(Duration::from_millis(nt))
        .cron(CronSchedule::AfterRun {
            slack: Duration::from_micros(slack),
        })
        .build()
        .expect("a valid profile");
    let network = NetworkParams {
        latency: Latency::LogNormal {
            median: Duration::from_micros(env("LAT_US", 250)),
            sigma: env("LAT_SIGMA", 0.5),
            max: Duration::from_millis(200),
        },
        ..NetworkParams::LAN
    };
    let mut sim = Simulation::builder(seed, n)
        .config(config)
        .network(network)
        .track_joins(false)
        .record_events(true)
        .build();
    let epoch = gossip_core::rng::mix64(seed ^ SEED_EPOCH) % 1_000_000;
    let second = |at: u64| (at + epoch) / 1_000_000;
    sim.start_all_meeting(0);
    sim.run_until(Instant::from_millis(20_000));
    sim.set_capture(Capture::Headers);
    let (from, to) = (20_000_000u64, 30_000_000u64);
    sim.run_until(Instant::from_micros(to));

    // The PINGs of each node's crons, by wall-clock second.
    let mut crons: BTreeMap<(usize, u64), Vec<u64>> = BTreeMap::new();
    let mut pings = 0u64;
    for s in sim.sent().iter().filter(|s| s.kind == MessageType::Ping) {
        let at = s.at.as_micros();
        let v = crons.entry((s.from, second(at))).or_default();
        if v.last() != Some(&at) {
            v.push(at);
        }
        pings += 1;
    }
    // A second's PINGs in its first cron (whole seconds only).
    let (mut first, mut all) = (0usize, 0usize);
    let whole = second(from) + 1..second(to);
    for s in sim.sent().iter().filter(|s| s.kind == MessageType::Ping) {
        let at = s.at.as_micros();
        if whole.contains(&second(at)) {
            all += 1;
            first += usize::from(crons[&(s.from, second(at))][0] == at);
        }
    }
    let rate = pings as f64 / n as f64 / ((to - from) as f64 / 1e6);
    // Which cron of its second each PING to the victim went in (0: the first).
    let victim = n - 1;
    let mut index: BTreeMap<usize, u32> = BTreeMap::new();
    for s in sim.sent() {
        if s.kind != MessageType::Ping || s.to != Some(victim) {
            continue;
        }
        let at = s.at.as_micros();
        let k = crons[&(s.from, second(at))]
            .iter()
            .position(|&t| t == at)
            .expect("a PING's cron was recorded");
        *index.entry(k).or_default() += 1;
    }
    println!(
        "N {n} nt {nt} seed {seed}: PINGs/node/s {rate:.1}; share in the first cron {:.2}; PINGs to the victim by cron index {index:?}",
        first as f64 / all as f64
    );

    // One crash: PFAIL and FAIL times at every node.
    sim.set_capture(Capture::Off);
    let t0 = sim.now();
    sim.apply(Fault::Crash(victim));
    sim.run_until(t0 + Duration::from_millis(4 * nt + 2_000));
    let id = sim.id(victim);
    let (mut pfail, mut fail) = (Vec::new(), Vec::new());
    for e in sim.events().iter().filter(|e| e.at >= t0) {
        let t = (e.at - t0).as_secs_f64();
        match e.event {
            Event::PeerPfail { id: x } if x == id => pfail.push(t),
            Event::PeerFail { id: x, .. } if x == id => fail.push(t),
            _ => {}
        }
    }
    pfail.sort_by(f64::total_cmp);
    fail.sort_by(f64::total_cmp);
    let q = |v: &[f64], p: f64| {
        v.get(((v.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "crash at wall phase {:.3}: PFAIL {} p10 {:.3} p50 {:.3} p90 {:.3}; FAIL {} first {:.3} last {:.3}",
        ((t0.as_micros() + epoch) % 1_000_000) as f64 / 1e6,
        pfail.len(),
        q(&pfail, 0.1),
        q(&pfail, 0.5),
        q(&pfail, 0.9),
        fail.len(),
        q(&fail, 0.0),
        q(&fail, 1.0),
    );
}
