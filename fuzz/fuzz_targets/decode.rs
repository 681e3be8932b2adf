//! Any bytes: `decode` returns `Ok` or a `DecodeError`, never panics, and a
//! datagram that decodes re-encodes to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gossip_fuzz::check_decode(data);
});
