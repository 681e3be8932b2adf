//! The agent: `gossip-node agent` runs no nodes until a loadgen tells it to,
//! over a control channel (HTTP + JSON, [`api`]).
//!
//! - [`server`]: the agent process: token, routing, sessions, the lease
//!   watchdog, shutdown on a signal.
//! - `session`: the session's lease.
//! - `cluster`: the [`Runtime`](crate::runtime::Runtime) a session runs, its
//!   event stream and resources.
//! - `faults`: loss and partitions with nftables, latency with tc netem.
//! - [`client`]: the loadgen's side, a blocking client.

pub mod api;
pub mod client;
mod cluster;
mod faults;
pub mod server;
mod session;

pub use client::{clock_offset, AgentAddr, AgentClient, EventStream, OffsetEstimate};
pub use faults::TABLE_PREFIX;
pub use server::{run, AgentOptions};

/// The agent's clock: CLOCK_MONOTONIC µs plus `offset_us` (tests inject an
/// offset to check a loadgen's estimate of it).
pub fn now_us(offset_us: i64) -> u64 {
    (crate::datapath::sys::monotonic_us() as i64)
        .saturating_add(offset_us)
        .max(0) as u64
}
