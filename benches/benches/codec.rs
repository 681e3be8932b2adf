//! Wire codec: encode and decode a PING with 0, 10 and 100 gossip entries.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gossip_benches::{entries, header, message};
use gossip_core::wire::{self, Body, MessageType};

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for n in [0u32, 10, 100] {
        let bytes = message(MessageType::Ping, 1, n);
        let es = entries(n);
        let h = header(MessageType::Ping, 1);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode_ping", n), &n, |b, _| {
            let mut buf = vec![0u8; wire::MAX_DATAGRAM];
            b.iter(|| wire::encode(black_box(&mut buf), &h, black_box(&es), None));
        });
        g.bench_with_input(BenchmarkId::new("decode_ping", n), &n, |b, _| {
            b.iter(|| {
                // Decoding validates lengths; reading every entry is the real cost.
                let m = wire::decode(black_box(&bytes)).expect("valid fixture");
                match m.body {
                    Body::Section(s) => s.iter().map(|e| e.id.0).fold(0, u64::wrapping_add),
                    Body::Fail { id, .. } => id.0,
                    _ => 0,
                }
            });
        });
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
