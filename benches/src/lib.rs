//! Shared fixtures for the criterion suites in `benches/benches/`.
//!
//! Everything here goes through `gossip-core`'s public API, as a driver would:
//! clusters are built by feeding real datagrams, not by poking at internals.

use std::net::{Ipv4Addr, SocketAddr};

use gossip_core::wire::{self, EntryFlags, GossipEntry, Header, MessageType};
use gossip_core::{Config, Endpoint, Identity, Instant, Node, NodeId};

/// The address of the `i`-th synthetic node: 127.x.y.z:7000, unique up to 2^24.
pub fn addr(i: u32) -> SocketAddr {
    let [_, a, b, c] = (i + 1).to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(127, a, b, c), 7000))
}

/// A header from synthetic node `i`.
pub fn header(kind: MessageType, i: u32) -> Header {
    Header {
        kind,
        flags: 0,
        src_slot: 0,
        dst_slot: 0,
        sender: NodeId(u64::from(i) + 1),
        incarnation: 0,
    }
}

/// Gossip entries describing synthetic nodes `0..n` (IPv4, healthy), the
/// members of a [`cluster_node`] of at least `n` peers.
pub fn entries(n: u32) -> Vec<GossipEntry> {
    (0..n)
        .map(|i| GossipEntry {
            id: NodeId(u64::from(i) + 1),
            incarnation: 0,
            flags: EntryFlags::default(),
            ping_age_ms: wire::NO_PING,
            pong_age_ms: 1_000 + i,
            endpoint: Endpoint::from(addr(i)),
        })
        .collect()
}

/// An encoded message from synthetic node `from` with `n` entries.
pub fn message(kind: MessageType, from: u32, n: u32) -> Vec<u8> {
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let len = wire::encode(&mut buf, &header(kind, from), &entries(n), None)
        .expect("a 64 KiB buffer holds any section"); // invariant: MAX_DATAGRAM buffer
    buf.truncate(len);
    buf
}

/// A node (id 0, at 127.0.0.1:6999) that knows `peers` members, all alive, built
/// by feeding it a MEET and then a PONG from each, as the network would.
pub fn cluster_node(peers: u32, config: Config) -> Node {
    let me = Identity::new(NodeId(0));
    let mut node = Node::new(me, config, 7, Instant::ZERO);
    let now = Instant::from_millis(1);
    let meet = |i| message(MessageType::Meet, i, 0);
    let pong = |i| message(MessageType::Pong, i, 0);
    let mut buf = vec![0u8; 2048];
    for i in 0..peers {
        node.handle_datagram(now, addr(i), &meet(i))
            .expect("fixture datagrams are well formed");
        node.handle_datagram(now, addr(i), &pong(i))
            .expect("fixture datagrams are well formed");
        while node.poll_transmit(now, &mut buf).is_some() {}
    }
    while node.poll_event().is_some() {}
    assert_eq!(
        node.members(),
        peers as usize + 1,
        "fixture cluster did not form"
    );
    node
}

/// Config for clusters larger than the default limits allow.
pub fn big_config() -> Config {
    Config::builder()
        .max_datagram(wire::MAX_DATAGRAM)
        .build()
        .expect("valid bench config") // invariant: within documented ranges
}
