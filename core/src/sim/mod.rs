//! `sim`: a seeded discrete-event network of real [`crate::Node`]s.
//!
//! A [`Simulation`] holds N nodes, a virtual clock and a timeline. Each wakeup
//! of a node runs the same drive loop as every driver (feed datagrams, fire the
//! deadline, drain transmits, drain events, ask for the next deadline); then the
//! clock jumps to the next delivery, deadline or [`Fault`]. The network in
//! between ([`NetworkParams`], [`LinkRule`]) delays ([`Latency`]: fixed, uniform, log-normal, Pareto), loses,
//! duplicates and reorders datagrams, and partitions the cluster; faults crash,
//! restart (next incarnation), pause and resume nodes. Two timing models:
//! [`Timing::Timers`] (the real world in virtual time) and [`Timing::Lockstep`]
//! (synchronous rounds, as the epidemic literature assumes).
//!
//! The [`Observer`] measures every tracked item at every node (first reception
//! time and round, receptions, first sender) and every datagram's type and size.
//!
//! Everything random comes from the seed through [`crate::rng::Rng`], so a seed
//! replays its run exactly; [`Simulation::trace_hash`] proves it, and a failing
//! property prints the [`replay_line`] that reruns it.
//!
//! Never touches a socket or a clock; it uses `std` only for `SIM_SEED`
//! ([`seed_from_env`]). Latency draws use a logarithm, exponential and normal
//! quantile built from IEEE basic operations, so a seed replays bit for bit on
//! every platform.
//!
//! ```
//! use core::time::Duration;
//! use gossip_core::sim::{Fault, NetworkParams, Simulation};
//! use gossip_core::{Config, Instant};
//!
//! let config = Config::builder().node_timeout(Duration::from_secs(1)).build().unwrap();
//! let mut sim = Simulation::builder(0x5eed, 5)
//!     .config(config)
//!     .network(NetworkParams::LAN)
//!     .build();
//! sim.start_all_meeting(0);
//! sim.schedule(Instant::from_millis(5_000), Fault::Crash(4));
//! sim.run_until(Instant::from_millis(10_000));
//! assert!(sim.check_invariants().is_ok());
//! // Every live node has marked node 4 FAIL.
//! assert_eq!(sim.count_seeing(4, gossip_core::PeerState::Fail), 4);
//! ```
mod actions;
mod builder;
mod capture;
mod check;
mod fault;
mod math;
mod network;
mod observer;
mod queue;
mod simulation;
mod trace;

pub use crate::copies::ItemId;
pub use builder::SimBuilder;
pub use capture::{Capture, Sent};
pub use check::{
    replay_line, seed_from_env, seeds_or_env, Failure, ReplayGuard, Violation, SEED_VAR,
};
pub use fault::{Fault, FaultLog, Timing};
pub use network::{FaultSpace, Latency, LinkRule, NetStats, NetworkParams, NodeSet};
pub use observer::{ItemTrace, NodeTraffic, Observer, Reception};
pub use simulation::{LoggedEvent, Simulation};
pub use trace::TraceHash;

/// Whether a simulated node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeStatus {
    /// Not started, or crashed.
    Down,
    /// Running.
    Up,
    /// Paused: keeps its state, does not tick, buffers what arrives.
    Paused,
}

/// The UDP port every simulated node listens on.
pub const PORT: u16 = 7000;
/// Node 0's IPv4 address, 127.0.0.1, as a number; node i has `BASE_IP + i`.
pub const BASE_IP: u32 = 0x7f00_0001;

/// The inverse of [`crate::rng::mix64`]: node ids are `mix64(index ^ key)`, so
/// an id maps back to its index in a few multiplications, with no table.
pub(crate) const fn unmix64(mut z: u64) -> u64 {
    z = unxorshift(z, 31);
    z = z.wrapping_mul(inverse(0x94d0_49bb_1331_11eb));
    z = unxorshift(z, 27);
    z = z.wrapping_mul(inverse(0xbf58_476d_1ce4_e5b9));
    unxorshift(z, 30)
}

/// Inverts `x ^= x >> s`.
const fn unxorshift(y: u64, s: u32) -> u64 {
    let mut x = y;
    let mut k = s;
    while k < 64 {
        x = y ^ (x >> s);
        k += s;
    }
    x
}

/// The multiplicative inverse of odd `a` modulo 2^64 (Newton's iteration: each
/// step doubles the correct low bits, 5 steps from 3 bits give 96).
const fn inverse(a: u64) -> u64 {
    let mut x = a; // correct to 3 bits for odd a
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::mix64;

    #[test]
    fn unmix_inverts_mix() {
        for x in [0, 1, 2, 42, u64::MAX, 0x5eed, 1 << 63] {
            assert_eq!(unmix64(mix64(x)), x);
        }
        let mut r = crate::rng::Rng::new(9);
        for _ in 0..1000 {
            let x = r.next_u64();
            assert_eq!(unmix64(mix64(x)), x);
        }
    }
}
