//! The sim world: real `Node`s on a seeded virtual network
//! (`gossip_core::sim`), in virtual time. Every network change the timeline
//! asks for is honoured; copies are counted by the simulator's observer,
//! which sees every delivered datagram.

use std::time::Duration;

use anyhow::Result;
use gossip_core::sim::{
    Fault, ItemId, Latency, NetworkParams, NodeSet, NodeStatus, Observer, Simulation,
};
use gossip_core::wire::MessageType;
use gossip_core::Instant;

use super::{Extras, ItemKey, Published, Seen, Shape, Upkeep, World, UPKEEP};
use crate::scenario::{ActionKind, Scenario};

/// One trial's simulation.
pub struct SimWorld {
    sim: Simulation,
    /// Events of the simulation's log already handed on.
    events_seen: usize,
}

impl std::fmt::Debug for SimWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimWorld")
            .field("nodes", &self.sim.len())
            .field("now", &self.sim.now())
            .finish_non_exhaustive()
    }
}

impl SimWorld {
    /// Builds the simulation and starts `cluster.nodes` nodes, each but
    /// node 0 meeting node 0.
    ///
    /// # Errors
    /// A scenario the core refuses.
    pub fn start(s: &Scenario, seed: u64) -> Result<Self> {
        let total = s.cluster.nodes + s.joins();
        let crashes = s
            .timeline
            .iter()
            .filter(|a| a.action == ActionKind::Crash)
            .count();
        let mut sim = Simulation::builder(seed, total)
            .config(s.profile.config()?)
            .network(network(s))
            .record_events(true)
            // FAIL items are tracked by the observer at the first FAIL of
            // each node: the crashes', and a few of nodes nobody crashed.
            .fail_items(crashes + crate::timeline::EXTRA_FAIL_ITEMS)
            .build();
        for n in 0..s.cluster.nodes {
            sim.apply(Fault::Start {
                node: n,
                meet: (n > 0).then_some(0),
            });
        }
        Ok(SimWorld {
            sim,
            events_seen: 0,
        })
    }

    fn item_id(&self, key: ItemKey) -> ItemId {
        match key {
            ItemKey::Join(n) => ItemId::Join(self.sim.id(n)),
            ItemKey::Fail(n) => ItemId::Fail(self.sim.id(n)),
            ItemKey::Update {
                origin,
                key,
                version,
            } => ItemId::Update {
                origin: self.sim.id(origin),
                key,
                version,
            },
        }
    }
}

impl World for SimWorld {
    fn now(&self) -> Instant {
        self.sim.now()
    }

    fn step(&self) -> Duration {
        self.sim.config().tick()
    }

    fn advance(&mut self, until: Instant) -> Result<()> {
        self.sim.run_until(until);
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Seen>) -> Result<()> {
        let events = self.sim.events();
        let index = |id| self.sim.index_of(id);
        out.extend(
            events[self.events_seen..]
                .iter()
                .filter_map(|e| Seen::of_event(e.node, e.at, &e.event, index)),
        );
        self.events_seen = events.len();
        Ok(())
    }

    fn start(&mut self, n: usize, meet: usize) -> Result<()> {
        self.sim.apply(Fault::Start {
            node: n,
            meet: Some(meet),
        });
        Ok(())
    }

    fn crash(&mut self, n: usize) -> Result<()> {
        self.sim.apply(Fault::Crash(n));
        Ok(())
    }

    fn restart(&mut self, n: usize, meet: usize) -> Result<()> {
        self.sim.apply(Fault::Restart { node: n, meet });
        Ok(())
    }

    fn pause(&mut self, n: usize) -> Result<()> {
        self.sim.apply(Fault::Pause(n));
        Ok(())
    }

    fn resume(&mut self, n: usize) -> Result<()> {
        self.sim.apply(Fault::Resume(n));
        Ok(())
    }

    fn shape(&mut self, change: &Shape) -> Result<()> {
        let fault = match change {
            Shape::Partition(side) => {
                let mut set = NodeSet::new();
                for &n in side {
                    set.insert(n);
                }
                Fault::Partition(vec![set])
            }
            Shape::Heal => Fault::Heal,
            Shape::Loss(p) => Fault::SetLoss(*p),
            Shape::Latency(ms) => {
                Fault::SetLatency(Latency::Fixed(Duration::from_secs_f64(ms / 1e3)))
            }
        };
        self.sim.apply(fault);
        Ok(())
    }

    fn publish(&mut self, n: usize, key: &[u8], value: &[u8]) -> Result<Published> {
        let at = self.sim.now();
        let r = self
            .sim
            .command(n, |node, now| node.publish(now, key, value));
        Ok(Published::of_core(n, key, at, r))
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.sim.connected(a, b)
    }

    fn holders(&mut self, n: usize) -> Option<Vec<usize>> {
        if !self.sim.config().partial_view() {
            return None;
        }
        let id = self.sim.id(n);
        let holds = |m: usize| {
            self.sim
                .node(m)
                .and_then(|node| node.peers().by_id(id))
                .is_some_and(|p| p.is_member())
        };
        Some(self.sim.up_nodes().filter(|&m| holds(m)).collect())
    }

    fn track(&mut self, item: ItemKey) {
        // FAIL items the observer tracks itself, from the first FAIL.
        if !matches!(item, ItemKey::Fail(_)) {
            let id = self.item_id(item);
            self.sim.track(id);
        }
    }

    fn copies(&mut self, item: ItemKey) -> Option<Vec<u32>> {
        let id = self.item_id(item);
        let counts = match self.sim.observer().item(id) {
            Some(trace) => trace.receptions().map(|r| r.count()).collect(),
            None => vec![0; self.sim.len()],
        };
        Some(counts)
    }

    fn upkeep(&mut self, nodes: usize) -> Result<Vec<Option<Upkeep>>> {
        let now = self.sim.now();
        let observer: &Observer = self.sim.observer();
        Ok((0..nodes.min(self.sim.len()))
            .map(|n| {
                if self.sim.status(n) != NodeStatus::Up {
                    return None;
                }
                let sent = &observer.traffic(n).sent;
                let of = |kind: MessageType| sent[usize::from(kind.code())];
                let traffic = UPKEEP_TYPES.map(of);
                Some(Upkeep::of_udp(
                    now,
                    self.sim.incarnation(n),
                    traffic.map(|t| t.datagrams),
                    traffic.map(|t| t.bytes),
                ))
            })
            .collect())
    }

    fn finish(self: Box<Self>, _node_s: f64) -> Result<Extras> {
        Ok(Extras {
            sim_events: self.sim.events_processed(),
            trace_hash: Some(format!("{:016x}", self.sim.trace_hash())),
            ..Extras::default()
        })
    }
}

/// Our message types in [`UPKEEP`] order.
pub(crate) const UPKEEP_TYPES: [MessageType; UPKEEP.len()] = [
    MessageType::Ping,
    MessageType::Pong,
    MessageType::Meet,
    MessageType::Probe,
    MessageType::Ack,
    MessageType::ProbeReq,
    MessageType::Nack,
    MessageType::Sync,
    MessageType::State,
];

fn network(s: &Scenario) -> NetworkParams {
    let lo = Duration::from_secs_f64(s.network.latency_ms / 1e3);
    let hi = Duration::from_secs_f64((s.network.latency_ms + s.network.jitter_ms) / 1e3);
    NetworkParams {
        latency: Latency::Uniform { min: lo, max: hi },
        loss: s.network.loss,
        duplicate: s.network.duplicate,
        ..NetworkParams::IDEAL
    }
}
