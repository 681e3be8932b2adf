//! `gossip-node`: runs `gossip-core` nodes on real UDP sockets, many per I/O
//! thread, and the `gossip-node` binary.
//!
//! It owns everything the core never does: sockets, the clock, threads, and
//! the waiting. Each I/O thread ([`host::Host`]) runs the core's drive loop for
//! its nodes on one [`datapath`]: io_uring (multishot receive into a provided
//! buffer ring, decoded in place; all sends of a loop iteration in one enter) or,
//! where io_uring is refused, recvmmsg and one sendmsg per datagram; both
//! try each datagram once and count what became of it the same way.
//! [`runtime::Runtime`] binds the sockets and starts the threads; [`metrics`]
//! renders Prometheus text (served by [`http`]); [`agent`] runs nodes for a
//! loadgen on another host, over an HTTP + JSON control channel;
//! [`view`] publishes each node's peers to readers without a lock.
//! [`Runtime::track`](runtime::Runtime::track) has every node count the copies
//! it receives of a few items (a join, a FAIL, an update: redundancy, counted
//! in the core as it handles them), and
//! [`Runtime::copies`](runtime::Runtime::copies) reads the counters in one
//! round trip per I/O thread.
//!
//! It never decides protocol behaviour: that is `gossip-core`'s.
//!
//! ```no_run
//! use gossip_node::runtime::{Runtime, RuntimeConfig};
//!
//! let config = RuntimeConfig {
//!     binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 7000, 3),
//!     ..RuntimeConfig::default()
//! };
//! let runtime = Runtime::start(config)?; // nodes 1 and 2 meet node 0
//! std::thread::sleep(std::time::Duration::from_secs(5));
//! let peers = runtime.with_node(0, |node| node.peers().len());
//! assert_eq!(peers, Some(2));
//! runtime.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

pub use gossip_core as core;

pub mod agent;
#[allow(unsafe_code)]
pub mod datapath;
pub mod host;
pub mod http;
pub mod keyfile;
pub mod metrics;
pub mod observe;
pub mod profile;
pub mod runtime;
pub mod timers;
pub mod view;
