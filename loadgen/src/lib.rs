//! `gossip-loadgen`: describe a cluster and what happens to it, run it in the
//! sim world (or on real UDP nodes), measure it (DESIGN §3), and write reports
//! people tune node_timeout, fan-out and section size from.
//!
//! The pipeline: [`scenario`] (TOML + overrides) → [`world`] (trials) →
//! [`observe::Trial`] (what a trial saw, world-agnostic) → [`metrics`] (the
//! summary and HDR histograms) → [`report`] (JSON, Markdown, HTML + SVG);
//! [`sweep`] runs grids and recommends a setting; [`lab`] builds hosts as
//! network namespaces on one machine.

pub mod compare;
pub mod diff;
pub mod lab;
pub mod machine;
pub mod metrics;
pub mod noise;
pub mod observe;
pub mod population;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod sweep;
pub mod timeline;
pub mod world;
