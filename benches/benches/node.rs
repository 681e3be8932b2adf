//! The node's per-datagram work: building a gossip section at N = 1,000 and
//! 10,000, and one PING handled end to end (decode, update, PONG encoded).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gossip_benches::{addr, big_config, cluster_node, message};
use gossip_core::wire::MessageType;
use gossip_core::Instant;

fn ping_to_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(1));
    for n in [100u32, 1_000, 10_000] {
        let mut node = cluster_node(n, big_config());
        // A PING from a member with a 10-entry section (what a 100-node cluster sends).
        let ping = message(MessageType::Ping, 0, 10);
        let from = addr(0);
        let now = Instant::from_millis(2);
        let mut buf = vec![0u8; 65_507];
        g.bench_with_input(BenchmarkId::new("ping_to_pong", n), &n, |b, _| {
            b.iter(|| {
                node.handle_datagram(now, from, black_box(&ping))
                    .expect("valid fixture");
                node.poll_transmit(now, black_box(&mut buf)).map(|t| t.len)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, ping_to_pong);
criterion_main!(benches);
