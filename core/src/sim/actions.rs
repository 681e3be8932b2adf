//! What a [`Fault`] does: start, meet, crash, restart, pause, resume, and
//! the network changes.

use super::fault::Fault;
use super::queue::DELIVER;
use super::simulation::{Simulation, NO_TIMER, SEED_EPOCH, SEED_NODE};
use super::NodeStatus;
use crate::copies::ItemId;
use crate::ids::Identity;
use crate::ids::Incarnation;
use crate::node::Node;
use crate::rng::mix64;
use crate::time::Instant;

impl Simulation {
    pub(super) fn apply_fault(&mut self, fault: &Fault) {
        match *fault {
            Fault::Start { node, meet } => {
                if self.slots[node].status == NodeStatus::Down && !self.slots[node].ever_started {
                    self.boot(node, 0, meet);
                } else if let Some(m) = meet {
                    self.meet(node, m);
                }
            }
            Fault::StartAll { meet } => {
                for node in core::iter::once(meet).chain(0..self.slots.len()) {
                    if !self.slots[node].ever_started {
                        self.boot(node, 0, (node != meet).then_some(meet));
                    }
                }
            }
            Fault::Meet { node, target } => self.meet(node, target),
            Fault::Crash(node) => self.crash(node),
            Fault::Restart { node, meet } => {
                self.crash(node);
                let inc = self.slots[node].incarnation.wrapping_add(1);
                self.boot(node, inc, Some(meet));
            }
            Fault::Pause(node) => {
                if self.slots[node].status == NodeStatus::Up {
                    self.slots[node].status = NodeStatus::Paused;
                }
            }
            Fault::Resume(node) => self.resume(node),
            Fault::Partition(ref sides) => self.network.partition(sides),
            Fault::Heal => self.network.heal(),
            Fault::SetLoss(p) => self.network.params.loss = p,
            Fault::SetDuplicate(p) => self.network.params.duplicate = p,
            Fault::SetReorder(p) => self.network.params.reorder = p,
            Fault::SetLatency(l) => self.network.params.latency = l,
            Fault::AddLink(ref rule) => self.network.rules.push(rule.clone()),
            Fault::ClearLinks => self.network.rules.clear(),
        }
    }

    fn boot(&mut self, n: usize, incarnation: Incarnation, meet: Option<usize>) {
        let me = Identity {
            id: self.id(n),
            incarnation,
            slot: 0,
        };
        let seed = mix64(self.seed ^ SEED_NODE ^ mix64((n as u64) << 32 | u64::from(incarnation)));
        // Lockstep: a node starting in round k is created at the round's start,
        // so that its first tick (at a random phase within one tick) falls due
        // at the round's instant.
        let created = match self.round_us {
            0 => self.now,
            r => Instant::from_micros((self.now.as_micros() + 1).saturating_sub(r)),
        };
        let mut node = Node::new(me, self.config.clone(), seed, created);
        // Every node reads one wall clock whose seconds start at a point
        // drawn from the seed, not at the origin: a timeline's events at
        // whole seconds (a crash at 10 s) then fall anywhere in the
        // wall-clock second, as on a real host, not always at its start,
        // where Redis's rules (`PongGossip::WallSecond`) detect fastest.
        node.set_epoch(core::time::Duration::from_micros(
            mix64(self.seed ^ SEED_EPOCH) % 1_000_000,
        ));
        let slot = &mut self.slots[n];
        slot.node = Some(node);
        slot.status = NodeStatus::Up;
        slot.incarnation = incarnation;
        slot.ever_started = true;
        slot.timer_at = NO_TIMER;
        if self.track_joins {
            self.observer
                .track(ItemId::Join(me.id), Some(n), self.now, Some(n));
        }
        if let Some(m) = meet {
            self.meet(n, m);
        } else {
            self.run_node(n, false);
        }
    }

    fn meet(&mut self, n: usize, target: usize) {
        let to = self.endpoint(target);
        let now = self.now;
        if let Some(node) = self.slots[n].node.as_mut() {
            // A refused meet (too many pending) is the node's own business,
            // counted nowhere else; the schedule asked for it, so it is logged.
            let _ = node.meet(now, to);
            self.run_node(n, false);
        }
    }

    fn crash(&mut self, n: usize) {
        let slot = &mut self.slots[n];
        if slot.status == NodeStatus::Down {
            return;
        }
        slot.node = None;
        slot.status = NodeStatus::Down;
        slot.timer_at = NO_TIMER;
        slot.held_bytes = 0;
        // What waited in its receive buffer dies with it.
        self.in_flight -= slot.held.len() as u64;
        self.network.stats.to_down += slot.held.len() as u64;
        while let Some(p) = slot.held.pop_front() {
            self.packets.release(p);
        }
        let id = self.id(n);
        self.observer.track_fail(id, n, self.now);
    }

    fn resume(&mut self, n: usize) {
        if self.slots[n].status != NodeStatus::Paused {
            return;
        }
        self.slots[n].status = NodeStatus::Up;
        self.slots[n].held_bytes = 0;
        // The receive buffer is read first, in arrival order, then the cron runs:
        // all in this node's next wakeup, now.
        let now = self.quantize_us(self.now.as_micros());
        while let Some(p) = self.slots[n].held.pop_front() {
            self.queue.push(now, n as u32 + 1, DELIVER, p);
        }
        self.slots[n].timer_at = NO_TIMER;
        self.schedule_timer(n);
    }
}
