//! A small hand-wired test network of real [`Node`]s, shared by the scenario and
//! allocation tests.
//!
//! Nodes listen on distinct `127.0.0.x:7000` endpoints. A virtual clock jumps to
//! the next delivery or deadline; every datagram gets a fixed or seeded-random
//! latency and may be lost; a node can crash (it stops receiving and sending) and
//! restart (a fresh `Node` with the same id and the next incarnation, which then
//! `meet`s a live node). Each node runs the five-line loop of the crate docs: feed
//! datagrams, fire the deadline, drain transmits, drain events, next deadline.
//! Event time is the virtual `now`.
//!
//! Everything is deterministic: one seeded [`Rng`] draws node seeds, latencies and
//! losses; the delivery queue orders by (time, sequence number); nodes are visited
//! in index order. The same seed gives the same trace hash.
#![allow(dead_code)] // each test file uses its own subset

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use gossip_core::rng::{mix64, Rng};
use gossip_core::wire::MessageType;
use gossip_core::{Config, Endpoint, Event, Identity, Instant, Node, NodeId, PeerState};

/// The UDP port every test node listens on (they differ by IP address).
pub const PORT: u16 = 7000;

/// Node `i`'s address: `127.0.0.(i + 1):7000`.
pub fn addr(i: usize) -> SocketAddr {
    assert!(i < 250, "the test network has room for 250 nodes");
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, i as u8 + 1), PORT))
}

/// Node `i`'s endpoint.
pub fn endpoint(i: usize) -> Endpoint {
    Endpoint::from(addr(i))
}

/// Node `i`'s id: scattered bits, so no test depends on ids being small or ordered.
pub fn id(i: usize) -> NodeId {
    NodeId(mix64(0x6055_1900 + i as u64))
}

/// The node index behind an endpoint of the test network.
pub fn index_of(to: Endpoint) -> Option<usize> {
    let ip = to.ipv4()?;
    let [a, b, c, d] = ip.octets();
    (a == 127 && b == 0 && c == 0 && d >= 1 && to.port() == PORT).then(|| usize::from(d) - 1)
}

/// A Redis-faithful config (the builder's defaults) with the given node_timeout.
pub fn redis(node_timeout: Duration) -> Config {
    Config::builder()
        .node_timeout(node_timeout)
        .build()
        .expect("a Redis profile with node_timeout >= 2 ticks is valid")
}

/// Per-datagram one-way latency.
#[derive(Clone, Copy, Debug)]
pub enum Latency {
    /// Every datagram takes exactly this long.
    Fixed(Duration),
    /// Uniform in `[min, max]`, drawn from the network's seeded generator.
    Uniform(Duration, Duration),
}

impl Latency {
    /// The longest a datagram can take.
    pub fn max(self) -> Duration {
        match self {
            Latency::Fixed(d) => d,
            Latency::Uniform(_, hi) => hi,
        }
    }
}

/// How much of each transmit the network keeps in [`Net::sent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Nothing (the trace hash and counters are always kept).
    Nothing,
    /// Time, endpoints, type and length.
    Headers,
    /// As `Headers`, plus the datagram's bytes.
    Bytes,
}

/// One datagram a node handed to the network.
#[derive(Clone, Debug)]
pub struct Sent {
    /// When it was sent.
    pub at: Instant,
    /// Sender index.
    pub from: usize,
    /// Receiver index, if the endpoint belongs to the network.
    pub to: Option<usize>,
    /// Message type.
    pub kind: MessageType,
    /// Bytes.
    pub len: usize,
    /// The datagram, with [`Record::Bytes`]; empty otherwise.
    pub bytes: Vec<u8>,
}

/// One event a node reported, stamped with the virtual time it was polled at.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// Virtual time.
    pub at: Instant,
    /// The node that reported it.
    pub node: usize,
    /// What happened.
    pub event: Event,
}

/// A member of the network: the node and whether it runs.
#[derive(Debug)]
pub struct Member {
    /// The state machine.
    pub node: Node,
    /// False once crashed (until restarted).
    pub up: bool,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    from: SocketAddr,
    bytes: Vec<u8>,
}

/// The test network.
#[derive(Debug)]
pub struct Net {
    /// The virtual clock.
    pub now: Instant,
    /// The nodes, by index.
    pub members: Vec<Member>,
    /// Every event, in order.
    pub events: Vec<Seen>,
    /// Transmits, as much as [`Record`] asks.
    pub sent: Vec<Sent>,
    /// Hash of every transmit (time, sender, receiver, bytes) in order.
    pub trace: u64,
    /// Datagrams handed to the network.
    pub datagrams: u64,
    /// Datagrams the network dropped (loss).
    pub lost: u64,
    /// Datagrams dropped because the receiver was down or not in the network.
    pub undeliverable: u64,
    /// Datagrams a node refused with a decode error.
    pub decode_errors: u64,
    config: Config,
    rng: Rng,
    latency: Latency,
    loss: f64,
    record: Record,
    remeet: bool,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    buf: Vec<u8>,
}

impl Net {
    /// `n` nodes that know nobody yet, all with `config`, 1 ms fixed latency, no
    /// loss. `seed` drives every random choice in the run.
    pub fn new(n: usize, config: Config, seed: u64) -> Net {
        let mut rng = Rng::new(seed);
        let members = (0..n)
            .map(|i| Member {
                node: Node::new(
                    Identity::new(id(i)),
                    config.clone(),
                    rng.next_u64(),
                    Instant::ZERO,
                ),
                up: true,
            })
            .collect();
        Net {
            now: Instant::ZERO,
            members,
            events: Vec::new(),
            sent: Vec::new(),
            trace: 0xcbf2_9ce4_8422_2325,
            datagrams: 0,
            lost: 0,
            undeliverable: 0,
            decode_errors: 0,
            buf: vec![0; config.max_datagram()],
            config,
            rng,
            latency: Latency::Fixed(Duration::from_millis(1)),
            loss: 0.0,
            record: Record::Nothing,
            remeet: false,
            queue: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Sets the latency model.
    pub fn with_latency(mut self, latency: Latency) -> Net {
        self.latency = latency;
        self
    }

    /// Sets the probability that a datagram is lost.
    pub fn with_loss(mut self, loss: f64) -> Net {
        self.set_loss(loss);
        self
    }

    /// Makes nodes meet again when a meet times out, as an operator (or a
    /// node's join loop) would on [`Event::MeetTimedOut`].
    pub fn with_remeet(mut self) -> Net {
        self.remeet = true;
        self
    }

    /// Sets what [`Net::sent`] keeps.
    pub fn with_record(mut self, record: Record) -> Net {
        self.record = record;
        self
    }

    /// Changes the loss probability from now on.
    pub fn set_loss(&mut self, loss: f64) {
        assert!((0.0..1.0).contains(&loss));
        self.loss = loss;
    }

    /// Changes what [`Net::sent`] keeps from now on.
    pub fn set_record(&mut self, record: Record) {
        self.record = record;
    }

    /// The config every node runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The latency model.
    pub fn latency(&self) -> Latency {
        self.latency
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.members[i].node
    }

    /// Number of nodes, up or down.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Indices of the nodes that run.
    pub fn live(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.members[i].up).collect()
    }

    /// Node `i` meets node `j` (Redis `CLUSTER MEET`).
    pub fn meet(&mut self, i: usize, j: usize) {
        let now = self.now;
        self.members[i]
            .node
            .meet(now, endpoint(j))
            .expect("a test meets few enough nodes");
        self.drain(i);
    }

    /// Every other node meets node `j`.
    pub fn join_through(&mut self, j: usize) {
        for i in 0..self.len() {
            if i != j {
                self.meet(i, j);
            }
        }
    }

    /// Node `i` crashes: from now on it neither receives nor sends. Datagrams it
    /// sent before are still delivered.
    pub fn crash(&mut self, i: usize) {
        self.members[i].up = false;
    }

    /// Node `i` restarts as a fresh node with the same id and the next
    /// incarnation, and meets node `via`.
    pub fn restart(&mut self, i: usize, via: usize) {
        let old = self.members[i].node.identity();
        let me = Identity {
            incarnation: old.incarnation + 1,
            ..old
        };
        let seed = self.rng.next_u64();
        self.members[i] = Member {
            node: Node::new(me, self.config.clone(), seed, self.now),
            up: true,
        };
        self.meet(i, via);
    }

    /// Delivers `bytes` to node `to` now, as if sent from `from`; returns what
    /// `handle_datagram` said. Whatever the node answers goes out as usual.
    pub fn inject(
        &mut self,
        to: usize,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), gossip_core::wire::DecodeError> {
        let now = self.now;
        let r = self.members[to].node.handle_datagram(now, from, bytes);
        self.drain(to);
        r
    }

    /// The next time anything happens: a delivery or a node's deadline.
    pub fn next_time(&self) -> Option<Instant> {
        let delivery = self.queue.peek().map(|Reverse(d)| d.at);
        let deadline = self
            .members
            .iter()
            .filter(|m| m.up)
            .filter_map(|m| m.node.poll_timeout())
            .min();
        match (delivery, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances to the next time anything happens and runs every node's loop.
    /// Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        let Some(at) = self.next_time() else {
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now;
        // 1. feed datagrams
        while self.queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Reverse(d) = self.queue.pop().expect("peeked just above");
            let m = &mut self.members[d.to];
            if !m.up {
                self.undeliverable += 1;
                continue;
            }
            if m.node.handle_datagram(now, d.from, &d.bytes).is_err() {
                self.decode_errors += 1;
            }
        }
        for i in 0..self.len() {
            if !self.members[i].up {
                continue;
            }
            // 2. fire the deadline
            let node = &mut self.members[i].node;
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
            }
            // 3. drain transmits, 4. drain events (5. is next_time above)
            self.drain(i);
        }
        true
    }

    /// Runs until `t` (everything due at `t` included), then sets the clock to `t`.
    pub fn run_until(&mut self, t: Instant) {
        while self.next_time().is_some_and(|at| at <= t) {
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Runs until `done` holds (checked after every step) or `limit` passes;
    /// returns the virtual time it first held.
    pub fn run_until_true(
        &mut self,
        limit: Instant,
        mut done: impl FnMut(&Net) -> bool,
    ) -> Option<Instant> {
        if done(self) {
            return Some(self.now);
        }
        while self.next_time().is_some_and(|at| at <= limit) {
            self.step();
            if done(self) {
                return Some(self.now);
            }
        }
        None
    }

    /// What node `i` thinks of node `j`, if it knows it.
    pub fn view(&self, i: usize, j: usize) -> Option<PeerState> {
        self.node(i).peers().by_id(id(j)).map(|p| p.state())
    }

    /// Whether every live node holds every other live node as a full member, Alive.
    pub fn is_full_mesh(&self) -> bool {
        let live = self.live();
        live.iter().all(|&i| {
            live.iter()
                .all(|&j| i == j || self.view(i, j) == Some(PeerState::Alive))
        })
    }

    /// Events matching `f`, in order.
    pub fn events_where(&self, f: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        self.events.iter().filter(|s| f(s)).copied().collect()
    }

    fn drain(&mut self, i: usize) {
        let now = self.now;
        while let Some(tx) = self.members[i].node.poll_transmit(now, &mut self.buf) {
            let bytes = &self.buf[..tx.len];
            let to = index_of(tx.to);
            self.datagrams += 1;
            for x in [now.as_micros(), i as u64, tx.len as u64]
                .into_iter()
                .chain(tx.to.ip_octets().map(u64::from))
                .chain([u64::from(tx.to.port())])
                .chain(bytes.iter().map(|&b| u64::from(b)))
            {
                self.trace = mix64(self.trace ^ x);
            }
            if self.record != Record::Nothing {
                self.sent.push(Sent {
                    at: now,
                    from: i,
                    to,
                    kind: tx.kind,
                    len: tx.len,
                    bytes: match self.record {
                        Record::Bytes => bytes.to_vec(),
                        _ => Vec::new(),
                    },
                });
            }
            if self.loss > 0.0 && self.rng.unit_f64() < self.loss {
                self.lost += 1;
                continue;
            }
            let delay = match self.latency {
                Latency::Fixed(d) => d,
                Latency::Uniform(lo, hi) => {
                    let span = (hi - lo).as_micros() as u64;
                    lo + Duration::from_micros(self.rng.below(span + 1))
                }
            };
            let Some(to) = to else {
                self.undeliverable += 1;
                continue;
            };
            self.seq += 1;
            self.queue.push(Reverse(InFlight {
                at: now + delay,
                seq: self.seq,
                to,
                from: addr(i),
                bytes: bytes.to_vec(),
            }));
        }
        let mut again = None;
        while let Some(event) = self.members[i].node.poll_event() {
            if let Event::MeetTimedOut { endpoint } = event {
                again = again.or(self.remeet.then_some(endpoint));
            }
            self.events.push(Seen {
                at: now,
                node: i,
                event,
            });
        }
        if let Some(to) = again {
            self.members[i]
                .node
                .meet(now, to)
                .expect("the meet that timed out left room");
            self.drain(i);
        }
    }
}

/// Milliseconds of a duration, as a float, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
