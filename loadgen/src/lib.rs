//! `gossip-loadgen`: scenarios, runs in the sim or UDP world, metrics and reports.
//!
//! Not built yet: it lands with the loadgen issue, on top of the simulator.

pub use gossip_core as core;
