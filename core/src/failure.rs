//! Failure detection, one sub-machine of a [`crate::Node`]: PFAIL, failure
//! reports, FAIL by quorum, FAIL messages, and the state bookkeeping every
//! transition goes through (the member count, the list of PFAIL peers).
//! Semantics follow Redis 7 (`markNodeAsFailingIfNeeded`, `clusterSendFail`).
//! The reports themselves live in the peer table's side table
//! ([`PeerTable::add_report`]); membership's cron and sections call in here.

use alloc::vec::Vec;

use crate::copies::Copies;
use crate::event::Event;
use crate::ids::{Incarnation, NodeId};
use crate::outbox::{Outbox, Outgoing};
use crate::peers::{Peer, PeerState, PeerTable};
use crate::profile::Config;
use crate::time::Instant;
use crate::wire::MessageType;

/// Failure detection's own state: counts kept in step with the peers' states.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Peers not in handshake (the voters, with self).
    members: usize,
    /// Ids of the peers in PFAIL, in the order they became so (appended to
    /// every section; a list, so that encoding costs O(PFAIL), not O(peers)).
    pfail: Vec<NodeId>,
    /// PFAIL peers a section's tail may carry: `pfail.len()` when the last
    /// cron began, with `Config::pfail_counted_at_cron` (else unbounded).
    pfail_wanted: usize,
}

/// What failure detection reads and writes of its node for one call.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) peers: &'a mut PeerTable,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) copies: &'a mut Copies,
}

impl Failure {
    pub(crate) fn new() -> Self {
        Failure {
            members: 0,
            pfail: Vec::new(),
            pfail_wanted: usize::MAX,
        }
    }

    /// Members known, self included (the voters for FAIL).
    pub(crate) fn members(&self) -> usize {
        self.members + 1
    }

    /// The PFAIL peers, oldest suspicion first.
    pub(crate) fn pfail(&self) -> &[NodeId] {
        &self.pfail
    }

    /// How many of [`pfail`](Self::pfail) a section's tail may carry.
    pub(crate) fn pfail_wanted(&self) -> usize {
        self.pfail_wanted
    }

    /// A cron begins: Redis recounts the PFAIL nodes a section may carry.
    pub(crate) fn count_pfail_for_cron(&mut self) {
        self.pfail_wanted = self.pfail.len();
    }

    /// Peer `p` was removed from the table: it no longer counts.
    pub(crate) fn forgotten(&mut self, p: &Peer) {
        match p.state {
            PeerState::Handshake => {}
            PeerState::Pfail => {
                self.members -= 1;
                self.pfail.retain(|&x| x != p.id);
            }
            PeerState::Alive | PeerState::Fail => self.members -= 1,
        }
    }

    /// Moves peer `i` to `to`, keeping the member and PFAIL counts, and emits
    /// `PeerAlive` when a PFAIL or FAIL clears.
    pub(crate) fn set_state(&mut self, cx: &mut Cx<'_>, i: usize, to: PeerState) {
        let p = cx.peers.get_mut(i);
        let from = p.state;
        if from == to {
            return;
        }
        p.state = to;
        let id = p.id;
        if from == PeerState::Handshake {
            self.members += 1;
        }
        if from == PeerState::Pfail {
            self.pfail.retain(|&x| x != id);
        }
        if to == PeerState::Pfail {
            self.pfail.push(id);
        }
        if to == PeerState::Alive && matches!(from, PeerState::Pfail | PeerState::Fail) {
            cx.outbox.emit(Event::PeerAlive { id, was: from });
        }
    }

    /// Redis `markNodeAsFailingIfNeeded`: if we hold peer `i` PFAIL ourselves and
    /// the live failure reports plus our own vote reach the quorum of voters
    /// (members, self included), mark it FAIL and broadcast FAIL to everyone.
    pub(crate) fn fail_if_quorum(&mut self, cx: &mut Cx<'_>, now: Instant, i: usize) {
        if cx.peers.get(i).state != PeerState::Pfail {
            return;
        }
        let validity = cx.config.report_validity();
        let votes = cx.peers.live_reports(i, now, validity) + 1;
        if votes < cx.config.quorum().needed(self.members()) {
            return;
        }
        self.declare_fail(cx, i);
    }

    /// Marks peer `i` FAIL on our own judgement (a quorum, or a partial
    /// view's suspicion timeout) and broadcasts FAIL.
    pub(crate) fn declare_fail(&mut self, cx: &mut Cx<'_>, i: usize) {
        self.set_state(cx, i, PeerState::Fail);
        let p = cx.peers.get(i);
        let (id, incarnation) = (p.id, p.incarnation);
        cx.outbox.emit(Event::PeerFail {
            id,
            by_quorum: true,
        });
        self.broadcast_fail(cx, id, incarnation);
    }

    /// Redis `clusterSendFail`: FAIL to every member but the failed node.
    fn broadcast_fail(&mut self, cx: &mut Cx<'_>, id: NodeId, incarnation: Incarnation) {
        for j in 0..cx.peers.len() {
            let p = cx.peers.get(j);
            if !p.is_member() || p.id == id {
                continue;
            }
            let to = p.endpoint;
            cx.outbox.queue_outgoing(Outgoing {
                about: id,
                about_incarnation: incarnation,
                ..Outgoing::new(to, MessageType::Fail, true)
            });
        }
    }

    /// A FAIL message from a member: mark the node FAIL unless it is us, unknown,
    /// already FAIL, or the message is about an incarnation it has since left.
    pub(crate) fn handle_fail_message(
        &mut self,
        cx: &mut Cx<'_>,
        id: NodeId,
        incarnation: Incarnation,
    ) {
        cx.copies.count_fail(id);
        let Some(i) = cx.peers.find(id) else {
            return;
        };
        let p = cx.peers.get(i);
        if !p.is_member() || p.state == PeerState::Fail || incarnation < p.incarnation {
            return;
        }
        self.set_state(cx, i, PeerState::Fail);
        cx.outbox.emit(Event::PeerFail {
            id,
            by_quorum: false,
        });
    }
}
