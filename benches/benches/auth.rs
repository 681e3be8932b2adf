//! The cluster key's per-datagram work (`gossip_core::auth`): sealing with a
//! sender's kept key, opening with the receiver's cache of derived keys (a
//! hit: a sender seen before), and opening with the key derived afresh (a
//! miss, or no cache), at a PING's size in a 50-node cluster (171 bytes) and
//! at a full datagram (1,400).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gossip_core::auth::{Key, Keyring, OpenCache};
use gossip_core::wire::{self, Header, MessageType, TRAILER_LEN};
use gossip_core::NodeId;

/// A message of `len` bytes (header and a body of zeros) from node 1.
fn message(len: usize) -> Vec<u8> {
    let h = Header {
        kind: MessageType::Push,
        flags: 0,
        src_slot: 0,
        dst_slot: 0,
        sender: NodeId(1),
        incarnation: 1,
    };
    let mut buf = vec![0u8; len + TRAILER_LEN];
    wire::encode_header(&mut buf, &h).expect("room for a header");
    wire::finish(&mut buf, len);
    buf
}

fn auth(c: &mut Criterion) {
    let mut g = c.benchmark_group("auth");
    g.throughput(Throughput::Elements(1));
    let ring = Keyring::new(&Key::new(1, [0x5a; 32]));
    let sealer = ring.sealer(NodeId(1), 7 << 32).expect("a sending key");
    for len in [171usize, 1_400] {
        let mut buf = message(len);
        let mut counter = 0u64;
        g.bench_with_input(BenchmarkId::new("seal", len), &len, |b, &len| {
            b.iter(|| {
                counter += 1;
                sealer.seal(counter, black_box(&mut buf), len)
            });
        });
        let sealed = buf.clone();
        let mut scratch = vec![0u8; sealed.len()];
        let mut cache = OpenCache::new(64);
        g.bench_with_input(BenchmarkId::new("open_cached", len), &len, |b, _| {
            b.iter(|| {
                ring.open_cached(black_box(&sealed), &mut scratch, &mut cache)
                    .map(|o| o.counter)
                    .expect("verifies")
            });
        });
        g.bench_with_input(BenchmarkId::new("open_derived", len), &len, |b, _| {
            b.iter(|| {
                ring.open(black_box(&sealed), &mut scratch)
                    .map(|o| o.counter)
                    .expect("verifies")
            });
        });
    }
    g.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
