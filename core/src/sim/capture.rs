//! What a test looks at besides the observer: the datagrams nodes send
//! ([`Capture`], [`Sent`]), datagrams from outside the simulated cluster
//! ([`Simulation::inject`]), and running until a condition holds.

use alloc::vec::Vec;
use core::net::SocketAddr;

use super::simulation::Simulation;
use super::NodeStatus;
use crate::ids::Endpoint;
use crate::time::Instant;
use crate::wire::{DecodeError, MessageType};

/// How much of each datagram a node sends the simulation keeps in
/// [`Simulation::sent`]. The trace hash and the observer's counters are kept
/// whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Capture {
    /// Nothing (the default: a long run would keep every datagram).
    #[default]
    Off,
    /// Time, sender, receiver, type and length.
    Headers,
    /// As `Headers`, plus the datagram's bytes.
    Bytes,
}

/// One datagram a node handed to the network, captured as it left the node:
/// before the network lost, delayed or duplicated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// When it was sent.
    pub at: Instant,
    /// The sender's index.
    pub from: usize,
    /// The receiver's index, or `None` when no simulated node owns the
    /// endpoint it was addressed to (an injected stranger's address).
    pub to: Option<usize>,
    /// Its message type.
    pub kind: MessageType,
    /// Its length in bytes.
    pub len: usize,
    /// Its bytes with [`Capture::Bytes`]; empty otherwise.
    pub bytes: Vec<u8>,
}

impl Simulation {
    /// Changes what [`sent`](Self::sent) keeps from now on.
    pub fn set_capture(&mut self, capture: Capture) {
        self.capture = capture;
    }

    /// What [`sent`](Self::sent) keeps.
    pub fn capture(&self) -> Capture {
        self.capture
    }

    /// Every datagram sent since the capture was turned on or last cleared,
    /// in the order sent.
    pub fn sent(&self) -> &[Sent] {
        &self.sent
    }

    /// Forgets the captured datagrams (the capture stays as it is).
    pub fn clear_sent(&mut self) {
        self.sent.clear();
    }

    /// Keeps one transmit of node `n`, the first `len` bytes of packet
    /// buffer `p`, as the capture asks.
    pub(super) fn capture_sent(
        &mut self,
        n: usize,
        to: Option<usize>,
        kind: MessageType,
        p: u32,
        len: usize,
    ) {
        let bytes = match self.capture {
            Capture::Bytes => self.packets.buf_mut(p)[..len].to_vec(),
            Capture::Headers | Capture::Off => Vec::new(),
        };
        self.sent.push(Sent {
            at: self.now,
            from: n,
            to,
            kind,
            len,
            bytes,
        });
    }

    /// Hands `bytes` to running node `n` now, as if they arrived from `from`
    /// (any address: a simulated node's, or a stranger's); returns what
    /// [`crate::Node::handle_datagram`] said, or `None` when the node is not
    /// running. What the node answers goes into the network as usual (to a
    /// stranger, nowhere: [`NetStats::no_route`](super::NetStats::no_route)).
    ///
    /// For hostile-input tests: the bytes need not decode. The datagram enters
    /// the trace hash and the observer like a delivered one (from sender
    /// `u32::MAX` in the hash when `from` is no simulated node), but not the
    /// [`NetStats`](super::NetStats): it never crossed the network.
    pub fn inject(
        &mut self,
        n: usize,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<Result<(), DecodeError>> {
        self.now = self.quantize(self.now);
        if self.slots[n].status != NodeStatus::Up {
            return None;
        }
        let now = self.now;
        let sender = self.index_of_endpoint(Endpoint::from(from));
        let hash_from = sender.map_or(u32::MAX, |s| s as u32);
        self.trace
            .datagram(now.as_micros(), hash_from, n as u32, bytes);
        let (id_key, len) = (self.id_key, self.slots.len());
        self.observer.on_datagram(n, sender, bytes, |id| {
            super::simulation::index_with(id_key, len, id)
        });
        let node = self.slots[n].node.as_mut()?;
        let r = node.handle_datagram(now, from, bytes);
        self.drain_events(n, sender);
        self.run_node(n, false);
        Some(r)
    }

    /// Runs until `done` holds (checked now and after every
    /// [`step`](Self::step)) or the clock would pass `until`; returns the time
    /// it first held, or `None` (the clock then stands at `until`).
    pub fn run_until_holds(
        &mut self,
        until: Instant,
        mut done: impl FnMut(&Simulation) -> bool,
    ) -> Option<Instant> {
        if done(self) {
            return Some(self.now);
        }
        self.run_until_with(until, |sim| match done(sim) {
            true => Err(sim.now()),
            false => Ok(()),
        })
        .err()
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::*;
    use crate::event::Event;
    use crate::ids::NodeId;
    use crate::profile::Config;
    use crate::sim::{Fault, NetworkParams};
    use crate::wire::{self, Header};

    fn config() -> Config {
        Config::builder()
            .node_timeout(Duration::from_secs(1))
            .build()
            .unwrap()
    }

    fn joined(capture: Capture) -> Simulation {
        let mut sim = Simulation::builder(5, 4)
            .config(config())
            .network(NetworkParams {
                loss: 0.1,
                ..NetworkParams::LAN
            })
            .capture(capture)
            .build();
        sim.start_all_meeting(0);
        sim.run_until(Instant::from_millis(3_000));
        sim
    }

    #[test]
    fn the_capture_keeps_every_datagram_sent_lost_ones_included() {
        let sim = joined(Capture::Headers);
        let sent = sim.sent();
        let stats = sim.network_stats();
        assert_eq!(sent.len() as u64, stats.sent + stats.no_route);
        assert!(stats.lost > 0, "{stats:?}");
        for kind in MessageType::ALL {
            let mine = sent.iter().filter(|s| s.kind == kind);
            let (n, bytes) = mine.fold((0, 0), |(n, b), s| (n + 1, b + s.len as u64));
            let total = sim.observer().sent_total(kind);
            assert_eq!((n, bytes), (total.datagrams, total.bytes), "{kind:?}");
        }
        assert!(sent.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(sent.iter().all(|s| s.to.is_some() && s.bytes.is_empty()));
        // The same seed with bytes kept: the same datagrams, and they decode.
        let with_bytes = joined(Capture::Bytes);
        assert_eq!(with_bytes.sent().len(), sent.len());
        for (a, b) in sent.iter().zip(with_bytes.sent()) {
            assert_eq!((a.at, a.from, a.to, a.len), (b.at, b.from, b.to, b.len));
            let m = wire::decode(&b.bytes).unwrap();
            assert_eq!((m.header.kind, b.bytes.len()), (b.kind, b.len));
        }
        assert_eq!(with_bytes.trace_hash(), sim.trace_hash());
        // Capturing changes nothing the nodes do.
        assert_eq!(joined(Capture::Off).trace_hash(), sim.trace_hash());
        assert!(joined(Capture::Off).sent().is_empty());
        let mut sim = sim;
        sim.clear_sent();
        sim.set_capture(Capture::Off);
        sim.run_for(Duration::from_secs(1));
        assert!(sim.sent().is_empty());
    }

    #[test]
    fn an_injected_datagram_reaches_the_node_and_its_answer_goes_nowhere() {
        let mut sim = joined(Capture::Headers);
        sim.clear_sent();
        let stranger: SocketAddr = "127.0.9.9:4000".parse().unwrap();
        let before = (sim.trace_hash(), *sim.network_stats());
        assert_eq!(
            sim.inject(1, stranger, b"junk"),
            Some(Err(DecodeError::TooShort))
        );
        assert_ne!(sim.trace_hash(), before.0, "an injected datagram is traced");
        assert_eq!(sim.node(1).unwrap().stats().decode_errors_total(), 1);
        // A MEET from a stranger is answered with a PONG to its address,
        // which no simulated node owns.
        let header = Header {
            kind: MessageType::Meet,
            flags: 0,
            src_slot: 0,
            dst_slot: 0,
            sender: NodeId(0x5742),
            incarnation: 0,
        };
        let mut buf = [0u8; 64];
        let len = wire::encode(&mut buf, &header, &[], None).unwrap();
        assert_eq!(sim.inject(1, stranger, &buf[..len]), Some(Ok(())));
        let pong = sim.sent().iter().find(|s| s.kind == MessageType::Pong);
        let pong = pong.expect("the MEET is answered at once");
        assert_eq!((pong.from, pong.to, pong.at), (1, None, sim.now()));
        assert_eq!(sim.network_stats().no_route, before.1.no_route + 1);
        assert_eq!(sim.network_stats().delivered, before.1.delivered);
        // From a simulated node's address, it counts as that node's traffic.
        let ping = Header {
            kind: MessageType::Ping,
            sender: sim.id(2),
            ..header
        };
        let len = wire::encode(&mut buf, &ping, &[], None).unwrap();
        let received = |sim: &Simulation| {
            sim.observer().traffic(1).received[usize::from(MessageType::Ping.code())].datagrams
        };
        let r0 = received(&sim);
        let from = sim.endpoint(2).addr();
        assert_eq!(sim.inject(1, from, &buf[..len]), Some(Ok(())));
        assert_eq!(received(&sim), r0 + 1);
        sim.apply(Fault::Crash(1));
        assert_eq!(sim.inject(1, stranger, &buf[..len]), None);
    }

    #[test]
    fn remeet_meets_again_until_the_met_node_comes_up() {
        let run = |remeet: bool| {
            let mut sim = Simulation::builder(9, 2)
                .config(config())
                .remeet(remeet)
                .record_events(true)
                .build();
            // Node 1 meets node 0, which starts only after 5 handshake timeouts.
            sim.apply(Fault::Start {
                node: 1,
                meet: Some(0),
            });
            let up = Instant::ZERO + config().handshake_timeout() * 5;
            sim.schedule(
                up,
                Fault::Start {
                    node: 0,
                    meet: None,
                },
            );
            let joined = sim.run_until_holds(up + Duration::from_secs(5), |s| {
                s.check_converged().is_ok() && s.is_up(0)
            });
            let timeouts = sim
                .events()
                .iter()
                .filter(|e| matches!(e.event, Event::MeetTimedOut { .. }))
                .count();
            (joined, timeouts)
        };
        let (joined, timeouts) = run(true);
        let t = joined.expect("the meet was renewed until node 0 answered");
        assert!(
            t > Instant::ZERO + config().handshake_timeout() * 5,
            "{t:?}"
        );
        assert!(timeouts >= 4, "{timeouts}");
        let (joined, timeouts) = run(false);
        assert_eq!((joined, timeouts), (None, 1));
    }

    #[test]
    fn run_until_holds_stops_at_the_first_step_where_it_holds() {
        let mut sim = joined(Capture::Off);
        let start = sim.now();
        assert_eq!(sim.run_until_holds(Instant::ZERO, |_| true), Some(start));
        let target = start + Duration::from_millis(1_234);
        let t = sim.run_until_holds(target + Duration::from_secs(1), |s| s.now() >= target);
        let t = t.expect("the clock passes the target");
        assert!(
            t >= target && t < target + Duration::from_millis(200),
            "{t:?}"
        );
        assert_eq!(sim.now(), t);
        let end = t + Duration::from_secs(1);
        assert_eq!(sim.run_until_holds(end, |_| false), None);
        assert_eq!(sim.now(), end);
    }
}
