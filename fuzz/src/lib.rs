//! Checks shared by the fuzz targets and by `core/tests/fuzz_corpus.rs`, which
//! includes this file to replay the corpus on stable Rust.

use gossip_core::wire::{self, Body, DecodeError, GossipEntry, Message, HEADER_LEN};

#[path = "node_ops.rs"]
pub mod node_ops;

/// Decodes `data` and, when it decodes, checks everything a decoded message
/// promises: the header agrees with `decode_header`, the section yields exactly
/// its count of entries, and re-encoding gives back exactly `data` (the encoding
/// is canonical). Returns the decode result.
///
/// # Panics
/// When any of those checks fails: that is the bug the fuzzer looks for.
pub fn check_decode(data: &[u8]) -> Result<(), DecodeError> {
    let decoded = wire::decode(data);
    let header = wire::decode_header(data);
    let msg = match decoded {
        Ok(msg) => msg,
        Err(e) => {
            // decode_header may accept what the body parser refuses, never the
            // other way round; when it refuses, the error is the same.
            if let Err(h) = header {
                assert_eq!(h, e, "decode and decode_header disagree");
            }
            return Err(e);
        }
    };
    let (h, body) = header.expect("decode accepted what decode_header refused");
    assert_eq!(h, msg.header);
    assert_eq!(body.len() + HEADER_LEN, data.len());

    // Re-encode into a buffer with room to spare, so a longer encoding shows.
    let mut buf = vec![0u8; data.len() + 64];
    let n = reencode(&msg, &mut buf);
    assert!(
        buf[..n] == *data,
        "not canonical: {:?}\n decoded from {:02x?}\n re-encoded as {:02x?}",
        msg,
        data,
        &buf[..n]
    );
    Ok(())
}

/// Encodes a decoded message again; returns its length. Membership messages
/// go through `wire::encode`, the rest (data and swim messages, a message
/// with a rumor block) item by item through `wire::reencode`'s writers.
fn reencode(msg: &Message<'_>, buf: &mut [u8]) -> usize {
    if msg.rumors.is_some() || msg.header.kind.is_data() || msg.header.kind.is_swim() {
        if let Some(block) = msg.rumors {
            // Every ack and entry is read back; counts and iteration agree.
            assert_eq!(block.acks().count(), block.ack_count());
            assert_eq!(block.entries().iter().count(), block.entries().len());
        }
        // Invariant: as below, `buf` is longer than the message.
        return wire::reencode(msg, buf).expect("room for the message");
    }
    match msg.body {
        Body::Section(section) => {
            let mut entries: Vec<GossipEntry> = Vec::with_capacity(section.len().min(4096));
            entries.extend(section.iter());
            assert_eq!(
                entries.len(),
                section.len(),
                "section count and entries disagree"
            );
            // Invariant: a decoded message is at least as long as its empty
            // form, and `buf` is longer than the message.
            wire::encode(buf, &msg.header, &entries, None).expect("room for the message")
        }
        Body::Fail { id, incarnation } => {
            wire::encode(buf, &msg.header, &[], Some((id, incarnation))).expect("room for a FAIL")
        }
        _ => unreachable!("data and swim bodies are re-encoded above"),
    }
}
