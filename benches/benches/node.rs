//! The node's per-datagram work: one PING handled end to end (decode, gossip
//! applied, PONG with a fresh gossip section encoded) at N = 100 to 10,000.
//!
//! `section_unbounded` lets the section grow to the Redis size (a tenth of N:
//! 1,000 entries at N = 10,000) in a 64 KiB datagram, so it measures section
//! selection at full size; `ping_to_pong` uses the default 1,400-byte datagram,
//! where the section stops at 47 IPv4 entries, as a deployed node would.
//! `ping_to_pong_copies` is `ping_to_pong` with the node counting copies of
//! [`MAX_TRACKED`] items, the joins and FAILs of the first 32 nodes: the
//! sender and every entry of the PING are among them (the worst case, every
//! filter test passes and each scans the items).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gossip_benches::{addr, big_config, cluster_node, message};
use gossip_core::wire::MessageType;
use gossip_core::{Config, Instant, ItemId, NodeId, MAX_TRACKED};

fn ping_to_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(1));
    let cases = [
        ("ping_to_pong", Config::default()),
        ("section_unbounded", big_config()),
    ];
    for (name, config) in cases {
        for n in [100u32, 1_000, 10_000] {
            let mut node = cluster_node(n, config.clone());
            // A PING from a member with a 10-entry section (what a 100-node cluster sends).
            let ping = message(MessageType::Ping, 0, 10);
            let from = addr(0);
            let now = Instant::from_millis(2);
            let mut buf = vec![0u8; 65_507];
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    node.handle_datagram(now, from, black_box(&ping))
                        .expect("valid fixture");
                    node.poll_transmit(now, black_box(&mut buf)).map(|t| t.len)
                });
            });
        }
    }
    for n in [1_000u32] {
        let mut node = cluster_node(n, Config::default());
        for i in 1..=(MAX_TRACKED / 2) as u64 {
            assert!(node.track(ItemId::Join(NodeId(i))) && node.track(ItemId::Fail(NodeId(i))));
        }
        let ping = message(MessageType::Ping, 0, 10);
        let (from, now) = (addr(0), Instant::from_millis(2));
        let mut buf = vec![0u8; 65_507];
        g.bench_with_input(BenchmarkId::new("ping_to_pong_copies", n), &n, |b, _| {
            b.iter(|| {
                node.handle_datagram(now, from, black_box(&ping))
                    .expect("valid fixture");
                node.poll_transmit(now, black_box(&mut buf)).map(|t| t.len)
            });
        });
        assert!(node.copies(ItemId::Join(NodeId(1))) > Some(0));
    }
    g.finish();
}

criterion_group!(benches, ping_to_pong);
criterion_main!(benches);
