//! Sequences of datagrams, timeouts, meets and publishes against a live
//! `Node`, keyed or not, with join cookies or not: it never panics, sends only
//! datagrams a peer would accept, and counts every datagram it is fed once
//! (see `gossip_fuzz::node_ops`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gossip_fuzz::node_ops::run(data);
});
