//! `gossip-core`: the gossip protocol as a deterministic, sans-io state machine.
//!
//! It holds the wire codec ([`wire`]), the peer table ([`peers`]), Redis-style
//! membership gossip (MEET, PING, PONG, FAIL; PFAIL and FAIL by quorum), SWIM
//! membership with Lifeguard's refinements (the swim profile), and the
//! parameters that shape them ([`profile`]).
//! A node also counts the copies it receives of a few tracked items
//! ([`ItemId`], [`Node::track`], [`Node::copies`]), so that drivers measure
//! redundancy without decoding a datagram twice.
//!
//! It never opens a socket, reads a clock, spawns a thread or draws OS
//! randomness: callers pass `now`, a seed and datagrams in, and take datagrams,
//! deadlines and events out. The same inputs give the same outputs, byte for byte.
//! It is `no_std` (with `alloc`) so the compiler keeps all of that out.
//!
//! # The drive loop
//!
//! Every driver (the simulator, the UDP node, a test) runs the same loop; only
//! the waiting differs:
//!
//! ```
//! use gossip_core::{Config, Identity, Instant, Node, NodeId};
//!
//! let mut node = Node::new(Identity::new(NodeId(1)), Config::default(), 42, Instant::ZERO);
//! let seed: std::net::SocketAddr = "127.0.0.1:7000".parse().unwrap();
//! node.meet(Instant::ZERO, seed.into()).unwrap();
//!
//! let mut buf = [0u8; 1500];
//! let mut now = Instant::ZERO;
//! for _ in 0..3 {
//!     // 1. feed datagrams: node.handle_datagram(now, from, &bytes)
//!     // 2. fire the deadline
//!     if node.poll_timeout().is_some_and(|at| at <= now) {
//!         node.handle_timeout(now);
//!     }
//!     // 3. drain transmits
//!     while let Some(tx) = node.poll_transmit(now, &mut buf) {
//!         let _datagram = (&buf[..tx.len], tx.to);
//!     }
//!     // 4. drain events
//!     while let Some(_event) = node.poll_event() {}
//!     // 5. wait until the next deadline (or a datagram)
//!     now = node.poll_timeout().unwrap();
//! }
//! ```
//!
//! # Modules, bottom up
//!
//! Each module imports only from the rows below it (no circle):
//!
//! ```text
//! sim                          the simulator (feature `sim`): a network of Nodes
//! node                         Node: inputs, dispatch by sender and type, encoding
//! membership | swim | failure | dissemination   the sub-machines Node owns, each
//!   (membership and swim call failure)          with its own state and a context
//! outbox | copies              what a node owes the outside; copies of tracked items
//! profile | epidemic | event   parameters; store and rumor rules; events, counters
//! peers | error                the peer table; ConfigError
//! auth | cookie                cluster keys, replay window; join cookies
//! wire                         wire format v1, every byte size and offset
//! ids | rng | time             ids, endpoints, identity; PRNG; Instant
//! ```
//!
//! - [`ids`]: node ids, incarnations, endpoints (address + slot), [`Identity`].
//! - [`rng`], [`time`]: the seeded PRNG (xoshiro256++) and [`Instant`].
//! - [`auth`]: cluster keys ([`Keyring`]): the trailer that authenticates
//!   (and may seal) each datagram, and the per-peer replay window;
//!   [`cookie`]: proven joins (a stateless cookie answers a MEET).
//! - [`wire`]: the codec (decoding borrows, encoding into `&mut [u8]`), the
//!   field ranges and sizes, [`wire::peek_dst_slot`] for shared sockets.
//! - [`peers`]: the peer table (dense indices, hot fields, failure reports,
//!   batched lookups and the one `unsafe`, a prefetch hint).
//! - `error`: [`ConfigError`].
//! - [`profile`]: [`Config`] declared once (its builder, validation and flat
//!   named view), the three profiles.
//! - [`epidemic`]: the versioned store ([`epidemic::data`]) and the rumor
//!   rules ([`epidemic::rumor`]).
//! - [`event`]: [`Event`]s and the counters ([`Stats`]).
//! - `outbox`: the transmit queue of message descriptors, the event queue and
//!   the counters, bounded by the config.
//! - `copies`: copies of tracked items ([`ItemId`], [`Node::track`]).
//! - `membership`: the cron, handshakes and `meet`, admission into the table,
//!   gossip sections (Redis `clusterCron`, `clusterSendPing`,
//!   `clusterProcessGossipSection`).
//! - `failure`: PFAIL, failure reports, FAIL by quorum, FAIL messages, and the
//!   state bookkeeping every profile's transitions go through.
//! - `swim`: the swim profile's membership (SWIM with Lifeguard): probes,
//!   indirect probes, refutable suspicion, piggybacked updates, digest
//!   anti-entropy (docs/design/swim.md).
//! - `dissemination`: publish, rumor mongering and the node's anti-entropy
//!   exchange over datagrams ([`Node::publish`]).
//! - `node`: [`Node`], which owns the peer table, the outbox and the four
//!   sub-machines, and hands each a context of disjoint borrows per call.
//! - [`sim`] (feature `sim`): a seeded discrete-event network of real nodes.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]
// One exception, `peers::prefetch` (a cache hint), allowed where it stands.
#![deny(unsafe_code)]

extern crate alloc;

pub mod auth;
pub mod cookie;
mod copies;
mod dissemination;
pub mod epidemic;
mod error;
pub mod event;
mod failure;
pub mod ids;
mod membership;
mod node;
mod outbox;
pub mod peers;
pub mod profile;
pub mod rng;
#[cfg(feature = "sim")]
pub mod sim;
mod swim;
pub mod time;
pub mod wire;

pub use auth::{Key, Keyring};
pub use copies::{ItemId, MAX_TRACKED};
pub use dissemination::PublishError;
pub use epidemic::data::Stamp;
pub use event::{DataStats, Drops, Event, Stats, Traffic};
pub use ids::{Endpoint, Identity, Incarnation, NodeId};
pub use membership::MeetError;
pub use node::{Node, Transmit};
pub use peers::{Peer, PeerState, PeerTable};
pub use profile::{
    Config, ConfigBuilder, ConfigError, CronSchedule, Dissemination, PongGossip, Profile, Quorum,
    SectionPolicy,
};
pub use time::Instant;
pub use wire::BARE_LEN;
