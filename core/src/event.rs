//! What a node tells its driver: events (`poll_event`) and counters (`stats`).

use crate::auth::AuthDrops;
use crate::ids::{Endpoint, Incarnation, NodeId};
use crate::peers::PeerState;
use crate::wire::{DecodeError, MessageType};

/// Something that happened to this node's view of the cluster. Events carry no
/// time: the driver knows the `now` it passed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A node entered the peer table (from gossip, a MEET, or an answered `meet`).
    PeerDiscovered {
        /// The node.
        id: NodeId,
        /// Where it listens.
        endpoint: Endpoint,
    },
    /// A peer answered its handshake and is a full member.
    PeerJoined {
        /// The node.
        id: NodeId,
    },
    /// A peer went PFAIL here (our ping unanswered for node_timeout).
    PeerPfail {
        /// The node.
        id: NodeId,
    },
    /// A peer went FAIL here.
    PeerFail {
        /// The node.
        id: NodeId,
        /// Whether this node declared it itself and broadcast FAIL (a quorum
        /// of reports, or in a partial view a suspicion that outlived
        /// `report_validity`), or was told by a FAIL message.
        by_quorum: bool,
    },
    /// A PFAIL or FAIL peer answered again and is alive.
    PeerAlive {
        /// The node.
        id: NodeId,
        /// What it was.
        was: PeerState,
    },
    /// A peer came back with a higher incarnation (it restarted).
    PeerRestarted {
        /// The node.
        id: NodeId,
        /// Its new incarnation.
        incarnation: Incarnation,
    },
    /// A peer never answered its handshake and was forgotten.
    HandshakeTimedOut {
        /// The node.
        id: NodeId,
    },
    /// A member left a partial view (`Config::partial_view`): forgotten to
    /// make room for a node that MET us, or FAIL and silent too long.
    PeerForgotten {
        /// The node.
        id: NodeId,
    },
    /// Nobody answered a `meet` at this endpoint in time.
    MeetTimedOut {
        /// The endpoint met.
        endpoint: Endpoint,
    },
    /// This node learned a published update for the first time (a rumor, a
    /// PUSH): its store took `(key, version, origin)` as news. Emitted once per
    /// update per node, so observers time first receptions by it.
    UpdateReceived {
        /// The node that published it.
        origin: NodeId,
        /// The key's id ([`crate::wire::key_id`]).
        key: u64,
        /// Its version.
        version: u64,
        /// The peer whose datagram carried it.
        from: NodeId,
    },
}

/// Datagrams and bytes (UDP payload) of one message type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams.
    pub datagrams: u64,
    /// UDP payload bytes.
    pub bytes: u64,
}

impl Traffic {
    pub(crate) fn add(&mut self, bytes: usize) {
        self.datagrams += 1;
        self.bytes += bytes as u64;
    }
}

/// Input that was dropped without being an undecodable datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// A well-formed message from a node we do not know, other than MEET, PING,
    /// or the PONG that answers our `meet`.
    pub unknown_sender: u64,
    /// A message from an older incarnation of a peer (delayed from its last life).
    pub stale_incarnation: u64,
    /// A message carrying our own id (a loop, or an id clash).
    pub own_id: u64,
    /// A message for another slot behind our socket.
    pub wrong_slot: u64,
    /// A message of a profile this node does not run (a swim PROBE to a
    /// redis-profile node, a PING to a swim one).
    pub other_profile: u64,
    /// A new peer refused because the table was full.
    pub peer_table_full: u64,
    /// A failure report refused because the report table was full.
    pub report_table_full: u64,
    /// An outgoing message refused because the transmit queue was full.
    pub transmit_queue_full: u64,
    /// An outgoing message that did not fit the caller's buffer.
    pub transmit_buffer_too_small: u64,
    /// An event dropped because the event queue was full.
    pub event_queue_full: u64,
}

/// Counters of one node, cumulative since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sent, by type code.
    pub sent: [Traffic; MessageType::COUNT],
    /// Received and accepted by decoding, by type code.
    pub received: [Traffic; MessageType::COUNT],
    /// Datagrams refused by the decoder, by [`DecodeError::index`].
    pub decode_errors: [u64; DecodeError::COUNT],
    /// Other input dropped.
    pub drops: Drops,
    /// Datagrams refused by the cluster key check (`crate::auth`).
    pub auth: AuthDrops,
    /// Cron ticks run.
    pub ticks: u64,
    /// Ticks that ran more than one tick period after their deadline.
    pub late_ticks: u64,
    /// Epidemic dissemination counters.
    pub data: DataStats,
}

/// Counters of a node's epidemic dissemination (all zero while it is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataStats {
    /// Local writes (`Node::publish`).
    pub published: u64,
    /// Entries received (in PUSH messages and rumor blocks).
    pub entries_received: u64,
    /// Entries received that were news here (each also an `UpdateReceived`).
    pub updates_received: u64,
    /// Entries received that this node held already, or held newer.
    pub entries_known: u64,
    /// Entries received that a store cap refused.
    pub entries_rejected: u64,
    /// Entries sent in PUSH messages (anti-entropy).
    pub entries_sent: u64,
    /// Hot rumors carried to a peer (one per rumor per message).
    pub rumors_sent: u64,
    /// Rumor blocks that rode a PING or PONG instead of a datagram of their own.
    pub rumor_blocks_piggybacked: u64,
    /// Acks sent.
    pub acks_sent: u64,
    /// Acks received.
    pub acks_received: u64,
    /// Anti-entropy exchanges opened.
    pub exchanges: u64,
    /// Digest datagrams sent.
    pub digests_sent: u64,
    /// Keys requested in PULL messages.
    pub keys_requested: u64,
    /// Data messages or rumor blocks from a node that is not a member here (in
    /// handshake), dropped. Unknown senders count in `Drops::unknown_sender`.
    pub from_non_member: u64,
    /// Data messages or rumor blocks received while dissemination is off, dropped.
    pub disabled: u64,
    /// Data datagrams dropped because `Config::data_queue` were waiting.
    pub data_queue_full: u64,
    /// Acks dropped because 4 × `Config::data_queue` were pending.
    pub ack_queue_full: u64,
}

impl Stats {
    /// Sent traffic of one type.
    pub fn sent(&self, kind: MessageType) -> Traffic {
        self.sent[usize::from(kind.code())]
    }

    /// Received traffic of one type.
    pub fn received(&self, kind: MessageType) -> Traffic {
        self.received[usize::from(kind.code())]
    }

    /// All datagrams refused by the decoder.
    pub fn decode_errors_total(&self) -> u64 {
        self.decode_errors.iter().sum()
    }
}
