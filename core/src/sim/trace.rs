//! The trace hash: one running 64-bit digest of everything a run delivered and
//! every event its nodes reported, so that two runs of a seed can be compared
//! with one number.

use crate::event::Event;
use crate::peers::PeerState;
use crate::rng::mix64;

/// A running 64-bit hash over delivered datagrams `(time, from, to, bytes)` and
/// events `(time, node, event)`, in the order the simulation processed them.
///
/// Not cryptographic: it detects divergence between two runs, nothing more.
/// Words are folded in with one multiply each (FxHash-style) and every record is
/// closed with a full [`mix64`] avalanche, so that a one-bit change anywhere
/// reaches every bit of the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceHash {
    state: u64,
    records: u64,
}

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Default for TraceHash {
    fn default() -> Self {
        TraceHash::new()
    }
}

impl TraceHash {
    /// The hash of an empty trace.
    pub const fn new() -> Self {
        TraceHash {
            state: 0x9e37_79b9_7f4a_7c15,
            records: 0,
        }
    }

    /// The digest so far.
    pub fn value(&self) -> u64 {
        mix64(self.state ^ self.records)
    }

    /// Records folded in so far (datagrams plus events).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Folds in one delivered datagram.
    pub fn datagram(&mut self, at_us: u64, from: u32, to: u32, bytes: &[u8]) {
        self.word(at_us);
        self.word(u64::from(from) << 32 | u64::from(to));
        self.word(bytes.len() as u64);
        // Four independent lanes over 32-byte blocks, so the multiplies overlap;
        // folded into the state once per datagram. Fixed-size reads only: a
        // variable-length copy would cost a memcpy call per datagram.
        let mut lanes = [K, K.rotate_left(16), K.rotate_left(32), K.rotate_left(48)];
        let mut blocks = bytes.chunks_exact(32);
        for b in &mut blocks {
            for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
                *lane = (lane.rotate_left(5) ^ le_u64(w)).wrapping_mul(K);
            }
        }
        for lane in lanes {
            self.word(lane);
        }
        let mut words = blocks.remainder().chunks_exact(8);
        for w in &mut words {
            self.word(le_u64(w));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            self.word(tail.iter().rev().fold(0, |acc, &b| acc << 8 | u64::from(b)));
        }
        self.close();
    }

    /// Folds in one event reported by node `node`.
    pub fn event(&mut self, at_us: u64, node: u32, event: &Event) {
        self.word(at_us);
        self.word(u64::from(node) | 1 << 63);
        for w in event_words(event) {
            self.word(w);
        }
        self.close();
    }

    fn word(&mut self, w: u64) {
        self.state = (self.state.rotate_left(5) ^ w).wrapping_mul(K);
    }

    fn close(&mut self) {
        self.records += 1;
        self.state = mix64(self.state ^ self.records);
    }
}

/// Eight bytes, little-endian.
fn le_u64(w: &[u8]) -> u64 {
    u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
}

/// An event as four words: a variant code and its fields.
pub(crate) fn event_words(event: &Event) -> [u64; 4] {
    match *event {
        Event::PeerDiscovered { id, endpoint } => {
            let ip = endpoint.ip_octets();
            let mut lo = [0u8; 8];
            lo.copy_from_slice(&ip[8..]);
            let port = u64::from(endpoint.port()) << 16 | u64::from(endpoint.slot());
            [1, id.0, u64::from_le_bytes(lo) ^ port.rotate_left(40), 0]
        }
        Event::PeerJoined { id } => [2, id.0, 0, 0],
        Event::PeerPfail { id } => [3, id.0, 0, 0],
        Event::PeerFail { id, by_quorum } => [4, id.0, u64::from(by_quorum), 0],
        Event::PeerAlive { id, was } => [5, id.0, state_code(was), 0],
        Event::PeerRestarted { id, incarnation } => [6, id.0, u64::from(incarnation), 0],
        Event::HandshakeTimedOut { id } => [7, id.0, 0, 0],
        Event::MeetTimedOut { endpoint } => {
            let ip = endpoint.ip_octets();
            let mut lo = [0u8; 8];
            lo.copy_from_slice(&ip[8..]);
            [8, u64::from_le_bytes(lo), u64::from(endpoint.port()), 0]
        }
        Event::UpdateReceived {
            origin,
            key,
            version,
            from,
        } => [9, origin.0 ^ from.0.rotate_left(32), key, version],
        Event::PeerForgotten { id } => [10, id.0, 0, 0],
        // Variants added after this simulator was written still change the hash.
        #[allow(unreachable_patterns)]
        _ => [0xff, 0, 0, 0],
    }
}

fn state_code(s: PeerState) -> u64 {
    // Fieldless enum: its discriminant is a stable code within one build.
    s as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    #[test]
    fn a_one_bit_change_changes_the_hash() {
        let mut a = TraceHash::new();
        let mut b = TraceHash::new();
        a.datagram(10, 1, 2, b"hello world");
        b.datagram(10, 1, 2, b"hello worle");
        assert_ne!(a.value(), b.value());
        // Every byte of a long datagram counts: the lanes, the words, the tail.
        let long: alloc::vec::Vec<u8> = (0..77).collect();
        let mut base = TraceHash::new();
        base.datagram(1, 2, 3, &long);
        for i in 0..long.len() {
            let mut flipped = long.clone();
            flipped[i] ^= 1;
            let mut h = TraceHash::new();
            h.datagram(1, 2, 3, &flipped);
            assert_ne!(h.value(), base.value(), "byte {i}");
        }
        let mut c = TraceHash::new();
        c.datagram(10, 1, 2, b"hello world");
        assert_eq!(a.value(), c.value());
        c.event(11, 3, &Event::PeerPfail { id: NodeId(7) });
        assert_ne!(a.value(), c.value());
        assert_eq!(c.records(), 2);
    }
}
