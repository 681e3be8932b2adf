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

/// Which way updates travel in one exchange between a node and the random peer
/// it contacted (Demers 1987, §1.3): the same three words name anti-entropy
/// exchanges and rumor-mongering variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The caller sends what it has that the peer lacks.
    Push,
    /// The caller asks; the peer sends what it has that the caller lacks.
    Pull,
    /// Both: each side ends with the newer of the two.
    PushPull,
}

impl Direction {
    /// Lower-case name, as used in reports and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Push => "push",
            Direction::Pull => "pull",
            Direction::PushPull => "push-pull",
        }
    }

    /// Parses [`Direction::name`]'s output.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "push" => Some(Direction::Push),
            "pull" => Some(Direction::Pull),
            "push-pull" | "pushpull" => Some(Direction::PushPull),
            _ => None,
        }
    }

    /// Whether the caller's updates travel to the peer.
    pub fn pushes(self) -> bool {
        matches!(self, Direction::Push | Direction::PushPull)
    }

    /// Whether the peer's updates travel to the caller.
    pub fn pulls(self) -> bool {
        matches!(self, Direction::Pull | Direction::PushPull)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_names_round_trip() {
        for d in [Direction::Push, Direction::Pull, Direction::PushPull] {
            assert_eq!(Direction::from_name(d.name()), Some(d));
        }
        assert_eq!(Direction::from_name("sideways"), None);
        assert!(Direction::PushPull.pushes() && Direction::PushPull.pulls());
        assert!(!Direction::Pull.pushes() && !Direction::Push.pulls());
    }
}
