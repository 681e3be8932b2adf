//! `Node` under the swim profile: its datagrams to the swim machine (data
//! messages from members still to dissemination), and the machine's context.

use crate::ids::Endpoint;
use crate::swim::{self, Swim};
use crate::time::Instant;
use crate::wire::{Body, Header, RumorBlock};

use super::Node;

impl Node {
    /// The swim machine and its context: disjoint borrows of self.
    pub(super) fn swim(&mut self) -> (&mut Swim, swim::Cx<'_>) {
        // The same borrows as the redis machine's: one context type.
        let cx = swim::Cx {
            config: &self.config,
            me: &self.me,
            rng: &mut self.rng,
            peers: &mut self.peers,
            outbox: &mut self.outbox,
            copies: &mut self.copies,
            failure: &mut self.failure,
        };
        (&mut self.swim, cx)
    }

    /// A datagram under the swim profile: swim's own types to its machine,
    /// data messages from members to dissemination, the rest counted as
    /// another profile's. `known`: the sender's index in the peer table.
    pub(super) fn handle_swim(
        &mut self,
        now: Instant,
        from: Endpoint,
        known: Option<usize>,
        h: &Header,
        body: Body<'_>,
        rumors: Option<RumorBlock<'_>>,
    ) {
        // The machine only appends to the table here, so the index holds.
        let member = known.filter(|&i| self.peers.get(i).is_member());
        match body {
            Body::Swim(b) => {
                let (s, mut cx) = self.swim();
                s.handle(&mut cx, now, from, known, h, &b);
                match (rumors, member) {
                    (Some(block), Some(i)) => {
                        let (epidemic, mut cx) = self.dissemination();
                        let rumor = epidemic.handle_rumor_block(&mut cx, i, from, block);
                        epidemic.queue_rumor_reply(&mut cx, from, rumor);
                    }
                    (Some(block), None) => self.copies.count_unread_rumors(block),
                    (None, _) => {}
                }
            }
            body if h.kind.is_data() => match member {
                Some(i) => {
                    let (epidemic, mut cx) = self.dissemination();
                    epidemic.handle_data(&mut cx, i, from, body);
                }
                None => {
                    self.outbox.stats.drops.unknown_sender += 1;
                    self.copies.count_unread(body, None);
                }
            },
            body => {
                self.outbox.stats.drops.other_profile += 1;
                self.copies.count_unread(body, rumors);
            }
        }
    }
}
