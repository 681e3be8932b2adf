//! Plain values the data messages carry and the store keeps: a version
//! [`Stamp`], a borrowed entry ([`EntryRef`]) and an exchange's [`Direction`].
//! They live at the bottom layer so that the codec needs nothing above it;
//! `epidemic` re-exports them under their usual names.

use super::ENTRY_OVERHEAD;
use crate::ids::NodeId;

/// The version of one key's value: a counter bumped by each write, and the node
/// that wrote it (the tie-breaker when two nodes write the same version).
///
/// Ordered by version, then origin: the greater stamp wins a merge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Bumped by every write of the key (a write takes the highest version seen + 1).
    pub version: u64,
    /// The node that wrote this version.
    pub origin: NodeId,
}

impl Stamp {
    /// A stamp.
    pub const fn new(version: u64, origin: NodeId) -> Self {
        Stamp { version, origin }
    }
}

/// One key's current value, borrowed (from a store or a datagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Its version and origin.
    pub stamp: Stamp,
}

impl EntryRef<'_> {
    /// Bytes this entry takes in an entries message (see [`ENTRY_OVERHEAD`]).
    pub fn encoded_len(&self) -> usize {
        ENTRY_OVERHEAD + self.key.len() + self.value.len()
    }
}

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
