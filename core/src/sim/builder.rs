//! `SimBuilder`: every choice a simulation starts with.

use alloc::vec::Vec;

use super::capture::Capture;
use super::fault::{FaultLog, Timing};
use super::network::{FaultSpace, Network, NetworkParams};
use super::observer::Observer;
use super::queue::{Packets, Queue, MAX_NODES};
use super::simulation::{Simulation, Slot, SEED_DRAW, SEED_IDS, SEED_NET};
use super::trace::TraceHash;
use crate::profile::Config;
use crate::rng::{mix64, Rng};
use crate::time::{micros, Instant};

impl Simulation {
    /// A builder for `nodes` nodes whose whole run is a function of `seed`.
    pub fn builder(seed: u64, nodes: usize) -> SimBuilder {
        SimBuilder {
            seed,
            nodes,
            config: Config::default(),
            timing: Timing::Timers,
            lockstep_at_tick: false,
            network: NetworkParams::IDEAL,
            receive_buffer: 212_992,
            track_joins: false,
            fail_items: 64,
            record_events: false,
            capture: Capture::Off,
            remeet: false,
        }
    }
}

/// Builds a [`Simulation`]; every choice has a default.
#[derive(Clone, Debug)]
pub struct SimBuilder {
    seed: u64,
    nodes: usize,
    config: Config,
    timing: Timing,
    lockstep_at_tick: bool,
    network: NetworkParams,
    receive_buffer: usize,
    track_joins: bool,
    fail_items: usize,
    record_events: bool,
    capture: Capture,
    remeet: bool,
}

impl SimBuilder {
    /// Every node's protocol parameters (default: the Redis profile).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The timing model (default: timers).
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self.lockstep_at_tick = false;
        self
    }

    /// Lockstep rounds of one tick each. Give it a config with
    /// `CronSchedule::Grid`: a cron re-armed after its run falls just past
    /// the next round and runs every other round.
    pub fn lockstep(mut self) -> Self {
        self.lockstep_at_tick = true;
        self
    }

    /// The network's starting parameters (default: [`NetworkParams::IDEAL`]).
    pub fn network(mut self, params: NetworkParams) -> Self {
        self.network = params;
        self
    }

    /// Draws the network's parameters from the seed within `space`; the fault
    /// log shows what was drawn.
    pub fn draw_network(mut self, space: &FaultSpace) -> Self {
        let mut rng = Rng::new(mix64(self.seed ^ SEED_DRAW));
        self.network = NetworkParams::draw(&mut rng, space);
        self
    }

    /// Receive buffer of a paused node, in payload bytes: what arrives while it
    /// is paused waits here until it resumes, and what does not fit is dropped
    /// (counted in [`NetStats::overflowed`](super::NetStats::overflowed)), as a stopped process's socket
    /// does. Default 212,992 (Linux's `net.core.rmem_default`).
    pub fn receive_buffer(mut self, bytes: usize) -> Self {
        self.receive_buffer = bytes;
        self
    }

    /// Tracks the join of every node it starts (default off: 16 bytes per
    /// node per node, 160 GB at N = 100,000; track a sample with
    /// [`Simulation::track`] instead).
    pub fn track_joins(mut self, on: bool) -> Self {
        self.track_joins = on;
        self
    }

    /// Most FAIL items tracked automatically, for crashes and for FAILs of nodes
    /// that did not crash (default 64).
    pub fn fail_items(mut self, n: usize) -> Self {
        self.fail_items = n;
        self
    }

    /// Keeps every node event in [`Simulation::events`] (default off).
    pub fn record_events(mut self, on: bool) -> Self {
        self.record_events = on;
        self
    }

    /// Keeps the datagrams nodes send in [`Simulation::sent`], as much of
    /// each as `capture` says (default [`Capture::Off`]).
    pub fn capture(mut self, capture: Capture) -> Self {
        self.capture = capture;
        self
    }

    /// Makes a node meet again when a meet times out
    /// ([`Event::MeetTimedOut`](crate::Event::MeetTimedOut)), as an operator
    /// or a join loop would (default off: the meet is reported and dropped).
    /// A join whose every MEET was lost is then retried, not abandoned.
    pub fn remeet(mut self, on: bool) -> Self {
        self.remeet = on;
        self
    }

    /// The simulation, with no node started yet.
    ///
    /// # Panics
    /// With more than 2^24 − 2 nodes, or a lockstep round of zero.
    pub fn build(self) -> Simulation {
        assert!(self.nodes <= MAX_NODES, "at most {MAX_NODES} nodes");
        let timing = match self.lockstep_at_tick {
            true => Timing::Lockstep {
                round: self.config.tick(),
            },
            false => self.timing,
        };
        let round_us = match timing {
            Timing::Timers => 0,
            Timing::Lockstep { round } => micros(round),
        };
        assert!(
            matches!(timing, Timing::Timers) || round_us > 0,
            "a lockstep round must be longer than zero"
        );
        let observer_round = match timing {
            Timing::Timers => self.config.tick(),
            Timing::Lockstep { round } => round,
        };
        let n = self.nodes;
        Simulation {
            now: Instant::ZERO,
            seed: self.seed,
            id_key: mix64(self.seed ^ SEED_IDS),
            round_us,
            packets: Packets::new(self.config.max_datagram()),
            slots: (0..n).map(|_| Slot::default()).collect(),
            config: self.config,
            queue: Queue::default(),
            faults: Vec::new(),
            log: FaultLog {
                seed: self.seed,
                nodes: n,
                timing,
                network: self.network,
                schedule: Vec::new(),
            },
            network: Network::new(self.network, n, Rng::new(mix64(self.seed ^ SEED_NET))),
            observer: Observer::new(n, observer_round, self.fail_items),
            trace: TraceHash::new(),
            receive_buffer: self.receive_buffer,
            track_joins: self.track_joins,
            events: self.record_events.then(Vec::new),
            capture: self.capture,
            sent: Vec::new(),
            remeet: self.remeet,
            processed: 0,
            in_flight: 0,
            last_lane: None,
        }
    }
}
