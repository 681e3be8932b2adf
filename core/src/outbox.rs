//! What a node owes the outside: the transmit queue of message descriptors,
//! the event queue and the counters. Every sub-machine (membership, failure,
//! dissemination) writes here and nowhere else; both queues are bounded by the
//! `Config`, and what exceeds a bound is dropped and counted.

use alloc::collections::VecDeque;

use crate::event::{Event, Stats};
use crate::ids::{Endpoint, Identity, Incarnation, NodeId};
use crate::profile::Config;
use crate::wire::{Header, MessageType};

/// A message waiting in the transmit queue. Sections are chosen when it is
/// encoded, so the queue holds 40-byte descriptors, never datagrams.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outgoing {
    pub(crate) to: Endpoint,
    pub(crate) kind: MessageType,
    /// Send an empty section: the receiver has not proven it owns its address
    /// (handshake, unknown sender), so we send no more than we received.
    pub(crate) bare: bool,
    /// Most bytes of the datagram, if fewer than `max_datagram` (0): a
    /// partial view answers a PING from a node it does not hold with a
    /// section no longer than that PING.
    pub(crate) limit: u16,
    /// FAIL only: the failed node.
    pub(crate) about: NodeId,
    pub(crate) about_incarnation: Incarnation,
    /// PING, PONG, RUMOR: what the rumor block carries besides pending acks
    /// (`dissemination::OUT_*` bits); 0 on every other message.
    pub(crate) rumor: u8,
    /// PONG answering a MEET under join cookies: carries a cookie for `to`.
    pub(crate) cookie: bool,
}

impl Outgoing {
    /// A message with nothing but its type and destination.
    pub(crate) fn new(to: Endpoint, kind: MessageType, bare: bool) -> Self {
        Outgoing {
            to,
            kind,
            bare,
            limit: 0,
            about: NodeId(0),
            about_incarnation: 0,
            rumor: 0,
            cookie: false,
        }
    }
}

/// Why a queued message produced no datagram.
pub(crate) enum Skip {
    /// It did not fit the caller's buffer (counted).
    TooSmall,
    /// It had nothing left to say (a RUMOR whose acks went out earlier).
    Nothing,
}

/// The transmit queue, the event queue and the counters of one node.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) transmits: VecDeque<Outgoing>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: Stats,
    /// `Config::transmit_queue` and `Config::event_queue`.
    transmit_cap: usize,
    event_cap: usize,
}

impl Outbox {
    pub(crate) fn new(config: &Config) -> Self {
        Outbox {
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            transmit_cap: config.transmit_queue(),
            event_cap: config.event_queue(),
        }
    }

    /// Queues a message to `to`; counts a drop when the queue is full.
    pub(crate) fn queue(&mut self, to: Endpoint, kind: MessageType, bare: bool) {
        self.queue_outgoing(Outgoing::new(to, kind, bare));
    }

    /// Queues a message; returns false (and counts a drop) when the queue is full.
    pub(crate) fn queue_outgoing(&mut self, out: Outgoing) -> bool {
        if self.transmits.len() >= self.transmit_cap {
            self.stats.drops.transmit_queue_full += 1;
            return false;
        }
        self.transmits.push_back(out);
        true
    }

    /// Reports an event; counts a drop when the queue is full.
    pub(crate) fn emit(&mut self, e: Event) {
        if self.events.len() >= self.event_cap {
            self.stats.drops.event_queue_full += 1;
            return;
        }
        self.events.push_back(e);
    }
}

/// The header of a message from `me` to `to`.
pub(crate) fn header(me: &Identity, kind: MessageType, to: Endpoint) -> Header {
    Header {
        kind,
        flags: 0,
        src_slot: me.slot,
        dst_slot: to.slot(),
        sender: me.id,
        incarnation: me.incarnation,
    }
}
