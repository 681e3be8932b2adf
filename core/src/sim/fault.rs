//! Changes on a run's timeline ([`Fault`]) and the log of what a run drew
//! from its seed ([`FaultLog`]).

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::network::{Latency, LinkRule, NetworkParams, NodeSet};
use crate::time::Instant;

/// A change to the simulated world at a point in time: a node starts, meets,
/// crashes, restarts, pauses or resumes; the network partitions, heals or
/// changes its parameters. Schedule with [`super::Simulation::schedule`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Node `node` starts (a fresh node, first incarnation) and, if given, meets
    /// `meet`. Starting a running node does nothing.
    Start {
        /// The node.
        node: usize,
        /// A node to meet.
        meet: Option<usize>,
    },
    /// Every node not started yet starts; each but `meet` meets node `meet`.
    StartAll {
        /// The node everyone meets.
        meet: usize,
    },
    /// Running node `node` meets node `target` (Redis `CLUSTER MEET`).
    Meet {
        /// The node that asks.
        node: usize,
        /// The node asked.
        target: usize,
    },
    /// Node `node` stops at once: its state is lost; datagrams to it are dropped.
    Crash(usize),
    /// Node `node` comes back as a fresh node with the same id and the next
    /// incarnation, and meets `meet` (crashing it first if it is running).
    Restart {
        /// The node.
        node: usize,
        /// A live node to meet.
        meet: usize,
    },
    /// Node `node` stops running but keeps its state (a stopped process, a long
    /// GC pause): no ticks; datagrams to it wait in its receive buffer, up to
    /// [`super::SimBuilder::receive_buffer`] bytes, and the rest are dropped.
    Pause(usize),
    /// A paused node runs again: it reads its receive buffer, then its cron
    /// catches up (one late tick, as a real process would).
    Resume(usize),
    /// Splits the network: each set is one side, the nodes in none of them
    /// form one more; no datagram crosses sides. Replaces any partition.
    Partition(Vec<NodeSet>),
    /// Removes the partition.
    Heal,
    /// Sets the default loss probability.
    SetLoss(f64),
    /// Sets the default duplication probability.
    SetDuplicate(f64),
    /// Sets the default reorder probability.
    SetReorder(f64),
    /// Sets the default latency.
    SetLatency(Latency),
    /// Adds a link rule (checked before the defaults; the first match wins).
    AddLink(LinkRule),
    /// Removes every link rule.
    ClearLinks,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Start { node, meet: None } => write!(f, "start {node}"),
            Fault::Start {
                node,
                meet: Some(m),
            } => write!(f, "start {node}, meet {m}"),
            Fault::StartAll { meet } => write!(f, "start all, meet {meet}"),
            Fault::Meet { node, target } => write!(f, "{node} meets {target}"),
            Fault::Crash(n) => write!(f, "crash {n}"),
            Fault::Restart { node, meet } => write!(f, "restart {node}, meet {meet}"),
            Fault::Pause(n) => write!(f, "pause {n}"),
            Fault::Resume(n) => write!(f, "resume {n}"),
            Fault::Partition(sides) => {
                f.write_str("partition ")?;
                for s in sides {
                    write!(f, "{s} | ")?;
                }
                f.write_str("rest")
            }
            Fault::Heal => f.write_str("heal"),
            Fault::SetLoss(p) => write!(f, "set loss {p:.4}"),
            Fault::SetDuplicate(p) => write!(f, "set duplicate {p:.4}"),
            Fault::SetReorder(p) => write!(f, "set reorder {p:.4}"),
            Fault::SetLatency(l) => write!(f, "set latency {l}"),
            Fault::AddLink(r) => write!(f, "link {r}"),
            Fault::ClearLinks => f.write_str("clear links"),
        }
    }
}

/// How time advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Each node ticks at its own phase (Node::new draws it); every datagram
    /// takes its drawn latency. The real world, in virtual time.
    Timers,
    /// Lockstep rounds, as the epidemic literature assumes: time moves in
    /// rounds of `round`; in each round every running node first reads every
    /// datagram sent to it in earlier rounds, then acts once (one tick). A
    /// datagram arrives at the first round boundary after `send + latency`, so
    /// with zero latency, exactly one round after it was sent. Every event
    /// happens at a round's instant, `(k + 1) × round − 1 µs` for round k (the
    /// last microsecond of the round, so that a node's tick, drawn at a random
    /// phase inside its first round, is due by then). Use `round` = the tick.
    Lockstep {
        /// Round length.
        round: Duration,
    },
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timing::Timers => f.write_str("timers"),
            Timing::Lockstep { round } => write!(f, "lockstep(round={round:?})"),
        }
    }
}

/// What a run drew from its seed and what it was told to do: print it first,
/// so that a failure can be read against it.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultLog {
    /// The run's seed.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// The timing model.
    pub timing: Timing,
    /// The network's starting parameters.
    pub network: NetworkParams,
    /// Every scheduled change, in the order scheduled.
    pub schedule: Vec<(Instant, Fault)>,
}

impl fmt::Display for FaultLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sim seed={:#x} nodes={} timing={}",
            self.seed, self.nodes, self.timing
        )?;
        writeln!(f, "  network: {}", self.network)?;
        for (at, fault) in &self.schedule {
            writeln!(f, "  at {:>10.3} s: {fault}", at.as_micros() as f64 / 1e6)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn the_log_names_every_drawn_parameter_and_change() {
        let log = FaultLog {
            seed: 0x5eed,
            nodes: 7,
            timing: Timing::Timers,
            network: NetworkParams::IDEAL,
            schedule: alloc::vec![
                (Instant::from_millis(1500), Fault::Crash(3)),
                (
                    Instant::from_millis(2000),
                    Fault::Partition(alloc::vec![NodeSet::range(0..3)])
                ),
            ],
        };
        let s = log.to_string();
        assert!(s.contains("seed=0x5eed nodes=7 timing=timers"), "{s}");
        assert!(s.contains("loss=0.0000"), "{s}");
        assert!(s.contains("1.500 s: crash 3"), "{s}");
        assert!(s.contains("partition {0..3} | rest"), "{s}");
    }
}
