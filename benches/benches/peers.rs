//! Peer table: id lookups at 10,000 peers, and its memory per peer.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gossip_benches::{big_config, cluster_node};
use gossip_core::NodeId;

const PEERS: u32 = 10_000;

fn peers(c: &mut Criterion) {
    let node = cluster_node(PEERS, big_config());
    let table = node.peers();
    // Not a timing: printed once so the bench run records the memory figure.
    println!(
        "peer table: {} peers, {} bytes, {:.1} bytes/peer (hot fields {} bytes)",
        table.len(),
        table.memory_bytes(),
        table.memory_bytes() as f64 / table.len() as f64,
        std::mem::size_of::<gossip_core::Peer>(),
    );
    let mut g = c.benchmark_group("peers");
    g.bench_function("find_10k", |b| {
        let mut id = 0u64;
        b.iter(|| {
            id = id % u64::from(PEERS) + 1;
            table.find(black_box(NodeId(id)))
        });
    });
    g.finish();
}

criterion_group!(benches, peers);
criterion_main!(benches);
