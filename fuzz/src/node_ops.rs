//! The `node_ops` target: a sequence of datagrams, timeouts, meets and
//! publishes against one live `Node` (with or without a cluster key, join
//! cookies, sealed bodies), and the promises it keeps whatever arrives:
//! never a panic; every datagram it sends opens (with its key) and decodes;
//! none is longer than `max_datagram`; the transmit queue stays within its
//! bound; and every datagram fed in is counted exactly once before dispatch
//! (received, a decode error, or an authentication refusal).
//!
//! Input: byte 0 picks the mode (bit 0 key, bit 1 cookies, bit 2 sealed),
//! then operations until the input ends:
//!
//! | op (byte % 6) | then | does |
//! |---|---|---|
//! | 0 | len:u16, from:u8, bytes | feeds `bytes` as they are, from peer `from % 4` |
//! | 1 | len:u16, from:u8, ctr:u8, bytes | feeds `bytes` sealed with the cluster key (the fuzzer gets past the tag): sender id from the bytes' header, counter `ctr` |
//! | 2 | ms:u16 | advances the clock, fires the deadline, drains and checks transmits |
//! | 3 | to:u8 | meets peer `to % 4` |
//! | 4 | k:u8, v:u8 | publishes key `[k]`, value `v` bytes of `v` |
//! | 5 | — | feeds the node's own transmits back to it |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gossip_core::auth::{Key, Keyring};
use gossip_core::wire::{self, HEADER_LEN, TRAILER_LEN};
use gossip_core::{Dissemination, Identity, Instant, Node, NodeId, Profile};

const PEERS: usize = 4;
const MAX_LEN: usize = 1_500;

fn peer(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9_000 + i as u16))
}

/// Reads bytes off the front of the input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b
    }
}

/// Runs one input. Panics when a promise is broken: that is the bug.
pub fn run(data: &[u8]) {
    let mut input = Input(data);
    let mode = input.u8();
    let config = Profile::Redis
        .builder()
        .node_timeout(Duration::from_millis(500))
        .dissemination(Dissemination::Both)
        .build()
        .expect("valid config");
    let max = config.max_datagram();
    let queue_cap = config.transmit_queue();
    let mut node = Node::new(Identity::new(NodeId(1)), config, 7, Instant::ZERO);
    let mut ring = Keyring::new(&Key::new(1, [0x11; 32]));
    ring.set_sealed(mode & 4 != 0);
    let ring = Arc::new(ring);
    let keyed = mode & 1 != 0;
    if keyed {
        node.set_keyring(ring.clone(), 1 << 32);
    }
    if mode & 2 != 0 {
        node.require_cookies([0x22; 32]);
    }
    let mut now = Instant::ZERO;
    let mut fed = 0u64;
    let mut buf = vec![0u8; MAX_LEN + TRAILER_LEN];
    let mut own: Vec<Vec<u8>> = Vec::new();
    while !input.0.is_empty() {
        match input.u8() % 6 {
            op @ (0 | 1) => {
                let len = usize::from(input.u16()) % MAX_LEN;
                let from = peer(usize::from(input.u8()) % PEERS);
                let counter = if op == 1 { u64::from(input.u8()) } else { 0 };
                let bytes = input.bytes(len).to_vec();
                let datagram = match op {
                    0 => bytes,
                    _ => {
                        let mut b = bytes;
                        b.resize(b.len().max(HEADER_LEN), 0);
                        let n = b.len();
                        b.resize(n + TRAILER_LEN, 0);
                        let sender = NodeId(u64::from_be_bytes(b[10..18].try_into().unwrap()));
                        match ring.seal(sender, 5 << 32, counter, &mut b, n) {
                            Some(total) => b[..total].to_vec(),
                            None => continue,
                        }
                    }
                };
                let _ = node.handle_datagram(now, from, &datagram);
                fed += 1;
            }
            2 => {
                now = now + Duration::from_millis(u64::from(input.u16()));
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
                own.clear();
                drain(&mut node, now, &mut buf, keyed, &ring, max, &mut own);
            }
            3 => {
                let to = peer(usize::from(input.u8()) % PEERS);
                let _ = node.meet(now, to.into());
            }
            4 => {
                let k = input.u8();
                let v = usize::from(input.u8());
                let _ = node.publish(now, &[k], &vec![k; v]);
            }
            _ => {
                for d in own.drain(..) {
                    let _ = node.handle_datagram(now, peer(0), &d);
                    fed += 1;
                }
            }
        }
        assert!(
            node.pending_transmits() <= queue_cap,
            "transmit queue past its bound"
        );
        while node.poll_event().is_some() {}
    }
    let s = node.stats();
    let received: u64 = s.received.iter().map(|t| t.datagrams).sum();
    let a = s.auth;
    let before_dispatch = a.no_key + a.unauthenticated + a.unknown_key + a.retired_key + a.bad_tag;
    assert_eq!(
        received + s.decode_errors_total() + before_dispatch,
        fed,
        "a datagram was counted twice or not at all: {s:?}"
    );
}

/// Takes every transmit and checks it is a datagram a peer would accept.
fn drain(
    node: &mut Node,
    now: Instant,
    buf: &mut [u8],
    keyed: bool,
    ring: &Keyring,
    max: usize,
    own: &mut Vec<Vec<u8>>,
) {
    while let Some(tx) = node.poll_transmit(now, buf) {
        let d = &buf[..tx.len];
        assert!(tx.len <= max, "{} bytes past max_datagram {max}", tx.len);
        let mut scratch = vec![0u8; d.len()];
        let message = match keyed {
            true => {
                ring.open(d, &mut scratch)
                    .expect("our own tag verifies")
                    .message
            }
            false => d,
        };
        let (message, _cookie) = wire::split_cookie(message);
        let msg = wire::decode_opened(message).expect("what we send decodes");
        assert_eq!(msg.header.kind, tx.kind);
        own.push(d.to_vec());
    }
}
