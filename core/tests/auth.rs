//! Cluster keys at the node: a keyed cluster forms and spreads data; a node
//! without the key, a retired key, a replayed datagram, a flipped bit and a
//! forged FAIL are each refused and counted, and membership stays as it was.
//! Plus property tests of the tag and the replay window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gossip_core::auth::{AuthError, Key, Keyring, OpenCache, Window, WINDOW};
use gossip_core::wire::{self, Header, MessageType, FLAG_AUTH, TRAILER_LEN};
use gossip_core::{
    Config, Dissemination, Endpoint, Identity, Instant, Node, NodeId, PeerState, Profile,
};
use proptest::prelude::*;

const EPOCH: u64 = 0x6000_0000_0000_0001;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

fn keyring(id: u8) -> Arc<Keyring> {
    Arc::new(Keyring::new(&Key::new(id, [id; 32])))
}

fn config() -> Config {
    Profile::Redis
        .builder()
        .node_timeout(Duration::from_secs(2))
        .dissemination(Dissemination::Both)
        .build()
        .unwrap()
}

/// A datagram in flight.
#[derive(Clone, Debug)]
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// Nodes on made-up loopback addresses, stepped 10 ms at a time; every
/// datagram passes through `tap`, which may drop, keep or change it.
struct Net {
    nodes: Vec<Node>,
    now: Instant,
}

impl Net {
    /// `n` nodes, each with `keys[i]` (if any), all meeting node 0.
    fn new(keys: &[Option<Arc<Keyring>>]) -> Net {
        let mut nodes = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let mut node = Node::new(
                Identity::new(NodeId(100 + i as u64)),
                config(),
                i as u64,
                Instant::ZERO,
            );
            if let Some(k) = k {
                node.set_keyring(k.clone(), EPOCH + i as u64);
            }
            if i > 0 {
                node.meet(Instant::ZERO, addr(0).into()).unwrap();
            }
            nodes.push(node);
        }
        Net {
            nodes,
            now: Instant::ZERO,
        }
    }

    fn run(&mut self, ms: u64, tap: &mut dyn FnMut(&Datagram) -> Vec<Datagram>) {
        let mut buf = vec![0u8; 1500];
        for _ in 0..ms / 10 {
            self.now = self.now + Duration::from_millis(10);
            let mut flight = Vec::new();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                n.handle_timeout(self.now);
                while let Some(tx) = n.poll_transmit(self.now, &mut buf) {
                    flight.push(Datagram {
                        from: addr(i),
                        to: tx.to.addr(),
                        bytes: buf[..tx.len].to_vec(),
                    });
                }
            }
            for d in flight.iter().flat_map(&mut *tap) {
                self.deliver(&d);
            }
        }
    }

    fn deliver(&mut self, d: &Datagram) {
        if let Some(i) = (0..self.nodes.len()).find(|&i| addr(i) == d.to) {
            let _ = self.nodes[i].handle_datagram(self.now, d.from, &d.bytes);
        }
    }

    /// For each node, the ids it holds as members, sorted.
    fn members(&self) -> Vec<Vec<u64>> {
        self.nodes
            .iter()
            .map(|n| {
                let mut v: Vec<u64> = n
                    .peers()
                    .iter()
                    .filter(|p| p.is_member())
                    .map(|p| p.id().0)
                    .collect();
                v.sort();
                v
            })
            .collect()
    }

    fn any_failed(&self) -> bool {
        self.nodes.iter().any(|n| {
            n.peers()
                .iter()
                .any(|p| matches!(p.state(), PeerState::Fail | PeerState::Pfail))
        })
    }
}

fn pass(d: &Datagram) -> Vec<Datagram> {
    vec![d.clone()]
}

/// A formed keyed cluster of 3 (all members of all), and its membership.
fn formed(keys: Arc<Keyring>) -> (Net, Vec<Vec<u64>>) {
    let mut net = Net::new(&[Some(keys.clone()), Some(keys.clone()), Some(keys)]);
    net.run(3_000, &mut pass);
    let members = net.members();
    assert_eq!(
        members,
        vec![vec![101, 102], vec![100, 102], vec![100, 101]]
    );
    (net, members)
}

#[test]
fn a_keyed_cluster_forms_spreads_data_and_refuses_nothing() {
    let (mut net, _) = formed(keyring(1));
    let now = net.now;
    net.nodes[0].publish(now, b"k", b"v").unwrap();
    let mut sizes = Vec::new();
    net.run(2_000, &mut |d| {
        sizes.push(d.bytes.len());
        assert_ne!(d.bytes[4] & FLAG_AUTH, 0, "every datagram is authenticated");
        pass(d)
    });
    for n in &net.nodes {
        assert_eq!(n.get(b"k").map(|(v, _)| v), Some(&b"v"[..]));
        assert_eq!(n.stats().auth.total(), 0, "{:?}", n.stats().auth);
        assert_eq!(n.stats().decode_errors_total(), 0);
    }
    assert!(!net.any_failed());
    assert!(sizes
        .iter()
        .all(|&s| (wire::BARE_LEN + TRAILER_LEN..=1500).contains(&s)));
}

#[test]
fn a_node_without_the_key_is_refused_both_ways() {
    let k = keyring(1);
    let mut net = Net::new(&[Some(k.clone()), Some(k), None]);
    net.run(3_000, &mut pass);
    let m = net.members();
    assert_eq!(m[0], vec![101]);
    assert_eq!(m[1], vec![100]);
    assert!(m[2].is_empty(), "the keyless node joined nothing");
    assert!(net.nodes[0].stats().auth.unauthenticated > 0);
    // The keyed node's answers to it were none: it refused the MEETs unread.
    assert_eq!(net.nodes[2].stats().auth.no_key, 0);
    assert!(!net.any_failed());
}

#[test]
fn a_retired_key_is_refused_and_counted_apart() {
    let (mut net, members) = formed(keyring(1));
    // Rotation on nodes 0 and 1: accept 2, send with 2, retire 1. Node 2 is
    // left behind with key 1 only.
    let mut rotated = Keyring::new(&Key::new(1, [1; 32]));
    rotated.accept(&Key::new(2, [2; 32])).unwrap();
    rotated.set_sending(2).unwrap();
    rotated.retire(1).unwrap();
    let rotated = Arc::new(rotated);
    for n in &mut net.nodes[..2] {
        n.set_keyring(rotated.clone(), EPOCH + n.id().0 - 100);
    }
    net.run(500, &mut pass);
    assert!(net.nodes[0].stats().auth.retired_key > 0);
    assert!(net.nodes[2].stats().auth.unknown_key > 0);
    assert_eq!(
        net.members()[0..2],
        members[0..2],
        "no one forgot anyone yet"
    );
}

#[test]
fn a_replayed_datagram_is_refused_and_counted() {
    let (mut net, members) = formed(keyring(1));
    let mut copies = 0;
    net.run(1_000, &mut |d| {
        copies += 1;
        vec![d.clone(), d.clone()]
    });
    let replays: u64 = net.nodes.iter().map(|n| n.stats().auth.replay).sum();
    assert!(replays > 0);
    // Every second copy of a datagram from a member is a replay; copies from
    // nobody known (none here) would not be.
    assert_eq!(replays, copies);
    assert_eq!(net.members(), members);
    assert!(!net.any_failed());
}

#[test]
fn every_flipped_bit_is_refused() {
    let (mut net, members) = formed(keyring(1));
    let mut captured = None;
    net.run(200, &mut |d| {
        if captured.is_none() && d.to == addr(1) {
            captured = Some(d.clone());
        }
        vec![]
    });
    let d = captured.unwrap();
    let before = net.nodes[1].stats().clone();
    for bit in 0..d.bytes.len() * 8 {
        let mut bytes = d.bytes.clone();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let now = net.now;
        let _ = net.nodes[1].handle_datagram(now, d.from, &bytes);
    }
    let after = net.nodes[1].stats();
    let refused = after.auth.total() - before.auth.total()
        + (after.decode_errors_total() - before.decode_errors_total());
    assert_eq!(refused, (d.bytes.len() * 8) as u64, "{:?}", after.auth);
    assert_eq!(
        after.received.iter().map(|t| t.datagrams).sum::<u64>(),
        before.received.iter().map(|t| t.datagrams).sum::<u64>(),
        "nothing was accepted"
    );
    assert_eq!(net.members(), members);
}

#[test]
fn a_forged_fail_is_refused_and_changes_nothing() {
    let (mut net, members) = formed(keyring(1));
    // A FAIL about node 102 "from" member 101, to node 100: once without a
    // trailer, once sealed with a key of the same id but other bytes.
    let header = Header {
        kind: MessageType::Fail,
        flags: 0,
        src_slot: 0,
        dst_slot: 0,
        sender: NodeId(101),
        incarnation: 0,
    };
    let mut buf = [0u8; 128];
    let len = wire::encode_fail(&mut buf, &header, NodeId(102), 0).unwrap();
    let now = net.now;
    net.nodes[0]
        .handle_datagram(now, addr(1), &buf[..len])
        .unwrap();
    let forger = Keyring::new(&Key::new(1, [9; 32]));
    let sealed = forger
        .seal(NodeId(101), EPOCH + 99, 0, &mut buf, len)
        .unwrap();
    net.nodes[0]
        .handle_datagram(now, addr(1), &buf[..sealed])
        .unwrap();
    let auth = net.nodes[0].stats().auth;
    assert_eq!((auth.unauthenticated, auth.bad_tag), (1, 1));
    net.run(500, &mut pass);
    assert_eq!(net.members(), members);
    assert!(!net.any_failed());
}

#[test]
fn a_node_without_a_keyring_counts_authenticated_datagrams_as_no_key() {
    let k = keyring(1);
    let mut net = Net::new(&[None, Some(k)]);
    net.run(1_000, &mut pass);
    assert!(net.nodes[0].stats().auth.no_key > 0);
    assert_eq!(net.nodes[0].stats().decode_errors_total(), 0);
    assert!(net.members()[0].is_empty());
}

#[test]
fn a_sealed_cluster_forms_and_hides_its_bodies() {
    let mut k = Keyring::new(&Key::new(3, [3; 32]));
    k.set_sealed(true);
    let (mut net, _) = formed(Arc::new(k));
    let now = net.now;
    net.nodes[0]
        .publish(now, b"secret-key", b"secret-value")
        .unwrap();
    net.run(2_000, &mut |d| {
        assert!(!d.bytes.windows(12).any(|w| w == b"secret-value"));
        pass(d)
    });
    assert_eq!(
        net.nodes[2].get(b"secret-key").map(|(v, _)| v),
        Some(&b"secret-value"[..])
    );
}

#[test]
fn a_partial_view_pong_to_a_stranger_is_no_larger_than_its_ping_with_a_key() {
    // Lean profile: a PING from an unknown sender draws a PONG with a section
    // capped at the PING's size; with a key the cap counts the trailer too.
    let k = keyring(1);
    let lean = Profile::Lean.builder().build().unwrap();
    let mut a = Node::new(Identity::new(NodeId(1)), lean.clone(), 1, Instant::ZERO);
    a.set_keyring(k.clone(), EPOCH);
    for i in 0..40u64 {
        let mut buf = [0u8; 128];
        let h = Header {
            kind: MessageType::Meet,
            flags: 0,
            src_slot: 0,
            dst_slot: 0,
            sender: NodeId(1000 + i),
            incarnation: 0,
        };
        let len = wire::encode(&mut buf, &h, &[], None).unwrap();
        let len = k.seal(h.sender, EPOCH, 0, &mut buf, len).unwrap();
        a.handle_datagram(Instant::ZERO, addr(10 + i as usize), &buf[..len])
            .unwrap();
    }
    let mut buf = [0u8; 1500];
    while a.poll_transmit(Instant::ZERO, &mut buf).is_some() {}
    let stranger = NodeId(5000);
    let h = Header {
        kind: MessageType::Ping,
        flags: 0,
        src_slot: 0,
        dst_slot: 0,
        sender: stranger,
        incarnation: 0,
    };
    let len = wire::encode(&mut buf, &h, &[], None).unwrap();
    let ping = k.seal(stranger, EPOCH, 0, &mut buf, len).unwrap();
    a.handle_datagram(Instant::ZERO, addr(99), &buf[..ping])
        .unwrap();
    let tx = a.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    assert_eq!(tx.to, Endpoint::from(addr(99)));
    assert!(
        tx.len <= ping,
        "PONG {} bytes to a {ping}-byte PING",
        tx.len
    );
}

#[test]
fn the_open_cache_keeps_only_verified_senders_in_its_slots() {
    let ring = Keyring::new(&Key::new(1, [9; 32]));
    let mut cache = OpenCache::new(8);
    let sealed = |sender: u64| {
        let plain = message(b"body", sender);
        let mut buf = plain.clone();
        buf.resize(plain.len() + TRAILER_LEN, 0);
        ring.seal(NodeId(sender), EPOCH, 1, &mut buf, plain.len())
            .unwrap();
        buf
    };
    let mut scratch = vec![0u8; 1500];
    // A forger cycling sender ids: every datagram refused, nothing kept.
    for sender in 0..1_000 {
        let mut d = sealed(sender);
        let last = d.len() - 1;
        d[last] ^= 1;
        let e = ring.open_cached(&d, &mut scratch, &mut cache).unwrap_err();
        assert_eq!(e, AuthError::BadTag);
    }
    assert_eq!((cache.filled(), cache.hits_misses()), (0, (0, 1_000)));
    // Many real senders: never more keys than slots.
    for sender in 0..100 {
        ring.open_cached(&sealed(sender), &mut scratch, &mut cache)
            .unwrap();
    }
    assert!(cache.filled() <= 8);
    // The same sender again finds its key (another key under the same id
    // does not: the slot is named by the key, not its id).
    ring.open_cached(&sealed(99), &mut scratch, &mut cache)
        .unwrap();
    assert_eq!(cache.hits_misses().0, 1);
    let other = Keyring::new(&Key::new(1, [8; 32]));
    let e = other
        .open_cached(&sealed(99), &mut scratch, &mut cache)
        .map(|_| ());
    assert_eq!(e.unwrap_err(), AuthError::BadTag);
    assert_eq!(cache.hits_misses().0, 1);
}

fn any_message() -> impl Strategy<Value = (Vec<u8>, u64, u64, u64, bool)> {
    (
        proptest::collection::vec(any::<u8>(), 2..600),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
    )
}

/// A PUSH-shaped message: header and a body of `body` bytes (its structure
/// does not matter to the trailer).
fn message(body: &[u8], sender: u64) -> Vec<u8> {
    let h = Header {
        kind: MessageType::Push,
        flags: 0,
        src_slot: 1,
        dst_slot: 2,
        sender: NodeId(sender),
        incarnation: 3,
    };
    let mut buf = vec![0u8; wire::HEADER_LEN + body.len()];
    wire::encode_header(&mut buf, &h).unwrap();
    buf[wire::HEADER_LEN..].copy_from_slice(body);
    wire::finish(&mut buf, wire::HEADER_LEN + body.len());
    buf
}

/// Whether the xaes-256-gcm crate, given the cluster key, verifies the tag
/// of datagram `buf` (message `len` bytes, from `sender` as sealed) by the
/// nonce its trailer and header name.
fn crate_verifies(secret: &[u8; 32], buf: &[u8], len: usize, sender: u64, sealed: bool) -> bool {
    use xaes_256_gcm::aead::{inout::InOutBuf, AeadInOut, KeyInit};
    let t = &buf[len..];
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(&sender.to_be_bytes());
    nonce[8..].copy_from_slice(&t[1..17]);
    let nonce = xaes_256_gcm::Nonce::from(nonce);
    let tag = xaes_256_gcm::Tag::try_from(&t[17..]).unwrap();
    let cipher = xaes_256_gcm::Xaes256Gcm::new(&(*secret).into());
    let mut body = buf[wire::HEADER_LEN..len].to_vec();
    let (aad, io) = match sealed {
        true => (&buf[..wire::HEADER_LEN], InOutBuf::from(&mut body[..])),
        false => (&buf[..buf.len() - 16], InOutBuf::from(&mut [][..])),
    };
    cipher.decrypt_inout_detached(&nonce, aad, io, &tag).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_sealed_message_opens_to_itself_and_any_change_is_refused(
        (body, sender, epoch, counter, sealed) in any_message(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
        secret in any::<[u8; 32]>(),
    ) {
        // Sealing and opening derive the per-sender key themselves
        // (`auth::Sealer`, `auth::OpenCache`); the xaes-256-gcm crate's own
        // check of the tag, on random keys and nonces, holds the derivation
        // to the crate.
        let mut ring = Keyring::new(&Key::new(7, secret));
        ring.set_sealed(sealed);
        let plain = message(&body, sender);
        let mut buf = plain.clone();
        buf.resize(plain.len() + TRAILER_LEN, 0);
        let len = ring.seal(NodeId(sender), epoch, counter, &mut buf, plain.len()).unwrap();
        prop_assert_eq!(len, plain.len() + TRAILER_LEN);
        prop_assert_eq!(sealed, buf[wire::HEADER_LEN..plain.len()] != plain[wire::HEADER_LEN..]);
        prop_assert!(crate_verifies(&secret, &buf, plain.len(), sender, sealed));
        let mut scratch = vec![0u8; len];
        let opened = ring.open(&buf, &mut scratch).unwrap();
        prop_assert_eq!((opened.epoch, opened.counter), (epoch, counter));
        prop_assert_eq!(&opened.message[wire::HEADER_LEN..], &plain[wire::HEADER_LEN..]);
        prop_assert_ne!(opened.message[4] & FLAG_AUTH, 0);
        // The cache: a miss keeps the key, the next open finds it.
        let mut cache = OpenCache::new(4);
        for hits in 0..2 {
            let o = ring.open_cached(&buf, &mut scratch, &mut cache).unwrap();
            prop_assert_eq!(&o.message[wire::HEADER_LEN..], &plain[wire::HEADER_LEN..]);
            prop_assert_eq!(cache.hits_misses(), (hits, 1));
        }
        let at = flip.index(len);
        buf[at] ^= 1 << bit;
        let refused = ring.open(&buf, &mut scratch).map(|_| ()).unwrap_err();
        // The key id byte names a key this ring does not hold; anything else
        // fails the tag.
        let expect = if at == plain.len() { AuthError::UnknownKey } else { AuthError::BadTag };
        prop_assert_eq!(refused, expect);
        let cached = ring.open_cached(&buf, &mut scratch, &mut cache).map(|_| ());
        prop_assert_eq!(cached.unwrap_err(), expect);
        if at != plain.len() {
            prop_assert!(!crate_verifies(&secret, &buf, plain.len(), sender, sealed));
        }
        // Cut short by any amount: refused.
        buf[at] ^= 1 << bit;
        let cut = flip.index(len);
        prop_assert!(ring.open(&buf[..cut], &mut scratch).is_err());
    }

    #[test]
    fn the_window_accepts_exactly_the_new_counters_it_can_tell(
        counters in proptest::collection::vec(0u64..300, 1..400),
    ) {
        // Model: the first counter opens the window and counts every one
        // up to it as seen; after it, a counter is new unless seen or
        // WINDOW or more below the highest.
        let mut w = Window::default();
        let mut seen = std::collections::HashSet::new();
        let mut first_top = None::<(u64, u64)>;
        for c in counters {
            let new = match first_top {
                None => true,
                Some((first, top)) => !seen.contains(&c) && c > first && c + WINDOW > top,
            };
            prop_assert_eq!(w.accept(NodeId(1), 0, 9, c), new, "counter {}", c);
            if new {
                seen.insert(c);
                first_top = Some(first_top.map_or((c, c), |(f, t)| (f, t.max(c))));
            }
        }
    }
}
