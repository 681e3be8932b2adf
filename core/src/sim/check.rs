//! Properties checked while a simulation runs, and how a failure names the seed
//! that replays it.

#[cfg(not(test))]
extern crate std;

use alloc::format;
use alloc::string::String;
use core::fmt;

use super::fault::FaultLog;
use super::simulation::Simulation;
use super::NodeStatus;
use crate::peers::PeerState;
use crate::time::Instant;

/// The environment variable that pins a seed: `SIM_SEED=0x5eed` (hex with
/// `0x`, or decimal).
pub const SEED_VAR: &str = "SIM_SEED";

/// The seed named by `SIM_SEED`, if set and well formed.
///
/// # Panics
/// If `SIM_SEED` is set but is not a number: a typo must not silently run
/// other seeds.
pub fn seed_from_env() -> Option<u64> {
    let v = std::env::var(SEED_VAR).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => v.replace('_', "").parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{SEED_VAR}={v} is not a seed (use 0x5eed or 24301)")))
}

/// The seeds a test should run: the one in `SIM_SEED` if set, else `defaults`.
pub fn seeds_or_env(defaults: impl IntoIterator<Item = u64>) -> alloc::vec::Vec<u64> {
    match seed_from_env() {
        Some(s) => alloc::vec![s],
        None => defaults.into_iter().collect(),
    }
}

/// The command that reruns test `test` of `core/tests/sim.rs` with `seed`.
pub fn replay_line(seed: u64, test: &str) -> String {
    format!("{SEED_VAR}={seed:#x} cargo test -p gossip-core --features sim --test sim -- {test} --exact --nocapture")
}

/// Prints the replay line of a seed if the test panics while it is alive, so
/// that any failed assertion, not only a checked property, names its seed:
///
/// ```
/// let _replay = gossip_core::sim::ReplayGuard::new(0x5eed, "my_test");
/// // ... assertions ...
/// ```
#[derive(Debug)]
pub struct ReplayGuard {
    seed: u64,
    test: &'static str,
}

impl ReplayGuard {
    /// Arms the guard for `seed` in test `test`.
    pub fn new(seed: u64, test: &'static str) -> Self {
        ReplayGuard { seed, test }
    }
}

impl Drop for ReplayGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::eprintln!("replay: {}", replay_line(self.seed, self.test));
        }
    }
}

/// A property that did not hold, at one node, at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When it was seen.
    pub at: Instant,
    /// The node it was seen at, if one.
    pub node: Option<usize>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.at.as_micros() as f64 / 1e6;
        match self.node {
            Some(n) => write!(f, "at {t:.6} s, node {n}: {}", self.what),
            None => write!(f, "at {t:.6} s: {}", self.what),
        }
    }
}

/// A failed run: the violation, the run's fault log, and the replay line.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// What went wrong.
    pub violation: Violation,
    /// The run's seed, parameters and schedule.
    pub log: FaultLog,
    /// The trace hash at the failure.
    pub trace_hash: u64,
    /// The command that replays it.
    pub replay: String,
}

impl Failure {
    /// A failure of test `test` in `sim`.
    pub fn new(sim: &Simulation, test: &str, violation: Violation) -> Self {
        Failure {
            violation,
            log: sim.fault_log().clone(),
            trace_hash: sim.trace_hash(),
            replay: replay_line(sim.seed(), test),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "property failed {}", self.violation)?;
        write!(f, "{}", self.log)?;
        writeln!(f, "  trace hash at failure: {:#018x}", self.trace_hash)?;
        write!(f, "replay: {}", self.replay)
    }
}

impl Simulation {
    /// Checks the invariants of every node (see [`check_node`](Self::check_node)).
    ///
    /// # Errors
    /// The first [`Violation`] found.
    pub fn check_invariants(&self) -> Result<(), Violation> {
        (0..self.len()).try_for_each(|n| self.check_node(n))
    }

    /// Checks node `n`'s invariants, which hold at every step whatever the
    /// network does: it does not list itself; every peer is a simulated node at
    /// its true address, listed once, never in a newer incarnation than the
    /// node's own; its member count matches its table; no datagram failed to
    /// decode (the simulator never corrupts bytes). A down node passes.
    ///
    /// # Errors
    /// The first [`Violation`] found.
    pub fn check_node(&self, n: usize) -> Result<(), Violation> {
        let Some(node) = self.node(n) else {
            return Ok(());
        };
        let bad = |what: String| {
            Err(Violation {
                at: self.now(),
                node: Some(n),
                what,
            })
        };
        let peers = node.peers();
        let mut members = 1;
        for (i, p) in peers.iter().enumerate() {
            if p.id() == node.id() {
                return bad(format!("lists itself as a peer ({:?})", p.state()));
            }
            let Some(x) = self.index_of(p.id()) else {
                return bad(format!("lists {} which is no simulated node", p.id()));
            };
            if peers.find(p.id()) != Some(i) {
                return bad(format!("lists node {x} twice or its index is stale"));
            }
            if p.endpoint() != self.endpoint(x) {
                return bad(format!(
                    "has node {x} at {} (it is at {})",
                    p.endpoint(),
                    self.endpoint(x)
                ));
            }
            if p.incarnation() > self.incarnation(x) {
                return bad(format!(
                    "has node {x} in incarnation {} (it is in {})",
                    p.incarnation(),
                    self.incarnation(x)
                ));
            }
            members += usize::from(p.is_member());
        }
        if node.members() != members {
            return bad(format!(
                "counts {} members, its table has {members}",
                node.members()
            ));
        }
        if node.stats().decode_errors_total() != 0 {
            return bad(format!(
                "refused {} datagrams as undecodable",
                node.stats().decode_errors_total()
            ));
        }
        Ok(())
    }

    /// Checks that every running node knows every other running node as an
    /// alive member in its current incarnation: the cluster has converged.
    ///
    /// # Errors
    /// The first node that does not see another as alive.
    pub fn check_converged(&self) -> Result<(), Violation> {
        for a in self.up_nodes() {
            let node = self.node(a).expect("an up node has a Node"); // invariant of status
            for b in self.up_nodes().filter(|&b| b != a) {
                let what = match node.peers().by_id(self.id(b)) {
                    None => format!("does not know node {b}"),
                    Some(p) if p.state() != PeerState::Alive => {
                        format!("sees node {b} as {}", p.state().name())
                    }
                    Some(p) if p.incarnation() != self.incarnation(b) => format!(
                        "has node {b} in incarnation {} (it is in {})",
                        p.incarnation(),
                        self.incarnation(b)
                    ),
                    Some(_) => continue,
                };
                return Err(Violation {
                    at: self.now(),
                    node: Some(a),
                    what,
                });
            }
        }
        Ok(())
    }

    /// Runs until `until`, checking the invariants of whatever each step
    /// touched (the woken node, or every node after a fault).
    ///
    /// # Errors
    /// A [`Failure`] naming test `test`'s replay line.
    pub fn run_checked(
        &mut self,
        until: Instant,
        test: &str,
    ) -> Result<(), alloc::boxed::Box<Failure>> {
        let r = self.run_until_with(until, |sim| match sim.last_woken() {
            Some(n) => sim.check_node(n),
            None => sim.check_invariants(),
        });
        r.map_err(|v| alloc::boxed::Box::new(Failure::new(self, test, v)))
    }

    /// How many running nodes hold node `x` in `state`.
    pub fn count_seeing(&self, x: usize, state: PeerState) -> usize {
        let id = self.id(x);
        self.up_nodes()
            .filter(|&a| {
                self.node(a)
                    .and_then(|n| n.peers().by_id(id))
                    .is_some_and(|p| p.state() == state)
            })
            .count()
    }

    /// Node `a`'s view of node `b`, if `a` runs (or is paused) and knows `b`.
    pub fn view(&self, a: usize, b: usize) -> Option<PeerState> {
        let id = self.id(b);
        self.node(a)?.peers().by_id(id).map(|p| p.state())
    }

    /// Nodes that are down.
    pub fn down_nodes(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.status(i) == NodeStatus::Down)
    }
}
