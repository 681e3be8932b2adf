//! Epidemic dissemination of versioned data (Demers et al. 1987, "Epidemic
//! algorithms for replicated database maintenance", PODC): the sans-io building
//! blocks that a [`crate::Node`] wires to its datagrams.
//!
//! - [`data`]: the versioned store. `(key, value, version)`; a higher version wins,
//!   ties go to the higher origin id; merge is idempotent and commutative; digests
//!   and "what is newer than this digest" queries; every table is capped.
//! - [`rumor`]: rumor mongering (SIR: susceptible, infective, removed). New updates
//!   are hot rumors sent each round to `fanout` random peers until a stop rule
//!   (feedback or blind, counter or coin) removes them.
//!
//! Anti-entropy (SI: digests first, then only newer entries) has no engine of
//! its own here: its one implementation is the exchange a [`crate::Node`] runs
//! over its datagrams (`dissemination`, on [`Store::range`](data::Store::range)
//! and the digest queries), so there is nothing to keep in step with it.
//! The epidemic-only Monte-Carlo model (abstract nodes, lockstep rounds) lives
//! in `gossip-loadgen` (`population`), its only user.
//!
//! Everything here is a plain state machine: no I/O, no clock, no OS randomness
//! (every random choice comes from a caller-given [`crate::rng::Rng`]), and no
//! iteration over a hash map (the store is a `BTreeMap`, so digests come out in
//! key order and every run replays).
//!
//! # Example: two stores converge by merging each other's entries
//!
//! ```
//! use gossip_core::epidemic::data::{Store, StoreLimits};
//! use gossip_core::NodeId;
//!
//! let limits = StoreLimits::default();
//! let mut a = Store::new(limits);
//! let mut b = Store::new(limits);
//! let stamp = a.publish(NodeId(1), b"colour", b"blue").unwrap();
//! b.publish(NodeId(2), b"colour", b"red").unwrap(); // the same version
//! // Both sides merge the other's entry: a tie goes to the higher origin.
//! let (red, red_stamp) = b.get(b"colour").map(|(v, s)| (v.to_vec(), s)).unwrap();
//! a.merge(b"colour", &red, red_stamp).unwrap();
//! b.merge(b"colour", b"blue", stamp).unwrap();
//! assert_eq!(a.get(b"colour").unwrap().0, b"red");
//! assert_eq!(b.get(b"colour").unwrap().0, b"red");
//! ```

pub mod data;
pub mod rumor;

pub use crate::wire::Direction;
