//! Digests: which keys a store holds at which stamps, one key range at a time,
//! and the queries that turn a peer's digest into "what should travel".

use alloc::vec::Vec;

use super::{EntryRef, Stamp, Store};
use crate::wire::{DIGEST_CHUNK_OVERHEAD, DIGEST_ITEM_OVERHEAD};

/// One key's stamp, as listed in a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DigestItem {
    /// The key.
    pub key: Vec<u8>,
    /// The stamp its sender holds.
    pub stamp: Stamp,
}

/// The sender's stamps for every key it holds in `[start, end)`.
///
/// A key in the range that is not listed is one the sender lacks. Chunks of one
/// store partition the key space: the next chunk starts where this one ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DigestChunk {
    /// First key covered (inclusive); empty for the start of the key space.
    pub start: Vec<u8>,
    /// First key not covered (exclusive); `None` for "to the end".
    pub end: Option<Vec<u8>>,
    /// The sender's keys in the range with their stamps, in strictly increasing
    /// key order.
    pub items: Vec<DigestItem>,
}

impl DigestChunk {
    /// Bytes this chunk takes on the wire (see [`DIGEST_ITEM_OVERHEAD`]).
    pub fn encoded_len(&self) -> usize {
        DIGEST_CHUNK_OVERHEAD
            + self.start.len()
            + self.end.as_ref().map_or(0, Vec::len)
            + self
                .items
                .iter()
                .map(|i| DIGEST_ITEM_OVERHEAD + i.key.len())
                .sum::<usize>()
    }

    /// Whether `key` lies in the chunk's range.
    pub fn covers(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether the items are in strictly increasing key order and inside the range,
    /// as every query on a chunk assumes. Check this on chunks from the network.
    pub fn is_well_formed(&self) -> bool {
        if self
            .end
            .as_deref()
            .is_some_and(|end| end <= self.start.as_slice())
        {
            return false;
        }
        self.items.windows(2).all(|w| w[0].key < w[1].key)
            && self.items.iter().all(|i| self.covers(&i.key))
    }
}

impl Store {
    /// The entries held in `chunk`'s range that the chunk's sender lacks or holds
    /// an older version of: what should travel to it. In key order.
    ///
    /// Assumes a well-formed chunk ([`DigestChunk::is_well_formed`]); on any other
    /// it may return too much or too little, but never panics.
    pub fn newer_than<'a>(
        &'a self,
        chunk: &'a DigestChunk,
    ) -> impl Iterator<Item = EntryRef<'a>> + 'a {
        let mut items = chunk.items.iter().peekable();
        self.range(&chunk.start, chunk.end.as_deref())
            .filter(move |e| {
                // Merge-join: advance past the sender's keys below this one.
                while items.next_if(|i| i.key.as_slice() < e.key).is_some() {}
                match items.peek() {
                    Some(i) if i.key.as_slice() == e.key => e.stamp > i.stamp,
                    _ => true,
                }
            })
    }

    /// The keys in `chunk` for which its sender holds a newer version than this
    /// store (or which this store lacks): what this store should ask for.
    pub fn wanted<'a>(&'a self, chunk: &'a DigestChunk) -> impl Iterator<Item = &'a [u8]> + 'a {
        chunk
            .items
            .iter()
            .filter(move |i| self.stamp(&i.key).is_none_or(|mine| i.stamp > mine))
            .map(|i| i.key.as_slice())
    }

    /// A digest of the keys from `start` on, as many as fit `budget` bytes (at
    /// least one, so that a walk over the store always advances). Its `end` is the
    /// next chunk's `start`, or `None` when it reaches the last key.
    pub fn digest_chunk(&self, start: &[u8], budget: usize) -> DigestChunk {
        let mut chunk = DigestChunk {
            start: start.to_vec(),
            end: None,
            items: Vec::new(),
        };
        let mut used = DIGEST_CHUNK_OVERHEAD + start.len();
        let mut entries = self.range(start, None).peekable();
        while let Some(e) = entries.next() {
            let cost = DIGEST_ITEM_OVERHEAD + e.key.len();
            // Taking `e` may make the next key this chunk's end: leave room for it.
            // (Stopping before `e` fits: the last item taken left room for it.)
            let end_len = entries.peek().map_or(0, |next| next.key.len());
            if !chunk.items.is_empty() && used + cost + end_len > budget {
                chunk.end = Some(e.key.to_vec());
                break;
            }
            used += cost;
            chunk.items.push(DigestItem {
                key: e.key.to_vec(),
                stamp: e.stamp,
            });
        }
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epidemic::data::StoreLimits;
    use crate::ids::NodeId;
    use alloc::format;

    fn store() -> Store {
        Store::new(StoreLimits::default())
    }

    #[test]
    fn digest_queries_find_exactly_what_should_travel() {
        let mut a = store();
        let mut b = store();
        let st = |v, o| Stamp::new(v, NodeId(o));
        a.merge(b"both-same", b"x", st(1, 1)).unwrap();
        b.merge(b"both-same", b"x", st(1, 1)).unwrap();
        a.merge(b"a-newer", b"x", st(3, 1)).unwrap();
        b.merge(b"a-newer", b"x", st(2, 1)).unwrap();
        a.merge(b"b-newer", b"x", st(1, 1)).unwrap();
        b.merge(b"b-newer", b"x", st(1, 2)).unwrap();
        a.merge(b"only-a", b"x", st(1, 1)).unwrap();
        b.merge(b"only-b", b"x", st(1, 1)).unwrap();

        let digest_b = b.digest_chunk(b"", 10_000);
        assert!(digest_b.is_well_formed() && digest_b.end.is_none());
        let to_b: Vec<&[u8]> = a.newer_than(&digest_b).map(|e| e.key).collect();
        assert_eq!(to_b, [&b"a-newer"[..], b"only-a"]);
        let a_wants: Vec<&[u8]> = a.wanted(&digest_b).collect();
        assert_eq!(a_wants, [&b"b-newer"[..], b"only-b"]);
    }

    #[test]
    fn digest_chunks_partition_the_store_under_the_budget() {
        let mut s = store();
        for i in 0..500u32 {
            s.publish(NodeId(1), format!("key-{i:05}").as_bytes(), b"v")
                .unwrap();
        }
        let budget = 1_200;
        let mut start = Vec::new();
        let mut seen = 0;
        let mut chunks = 0;
        loop {
            let c = s.digest_chunk(&start, budget);
            assert!(c.encoded_len() <= budget, "{} > {budget}", c.encoded_len());
            assert!(c.is_well_formed());
            seen += c.items.len();
            chunks += 1;
            match c.end {
                Some(end) => start = end,
                None => break,
            }
        }
        assert_eq!(seen, 500);
        // 27 bytes per item (9-byte keys): (1,200 - 6 - 9 - 9) / 27 = 43 per chunk.
        assert!((11..=13).contains(&chunks), "{chunks} chunks");
    }

    #[test]
    fn a_partial_digest_only_speaks_for_its_range() {
        let mut a = store();
        let b = store();
        for k in [b"a", b"m", b"z"] {
            a.publish(NodeId(1), k, b"v").unwrap();
        }
        // b is empty; a digest of b's range [m, z) says b lacks exactly "m".
        let chunk = DigestChunk {
            start: b"m".to_vec(),
            end: Some(b"z".to_vec()),
            items: Vec::new(),
        };
        let keys: Vec<&[u8]> = a.newer_than(&chunk).map(|e| e.key).collect();
        assert_eq!(keys, [&b"m"[..]]);
        assert!(b.wanted(&chunk).next().is_none());
    }

    #[test]
    fn malformed_chunks_are_detected_and_do_not_panic() {
        let mut s = store();
        s.publish(NodeId(1), b"k", b"v").unwrap();
        let item = |k: &[u8]| DigestItem {
            key: k.to_vec(),
            stamp: Stamp::default(),
        };
        let unsorted = DigestChunk {
            start: Vec::new(),
            end: None,
            items: vec![item(b"b"), item(b"a")],
        };
        let inverted = DigestChunk {
            start: b"z".to_vec(),
            end: Some(b"a".to_vec()),
            items: Vec::new(),
        };
        let outside = DigestChunk {
            start: b"m".to_vec(),
            end: None,
            items: vec![item(b"a")],
        };
        for c in [&unsorted, &inverted, &outside] {
            assert!(!c.is_well_formed());
            let _ = s.newer_than(c).count();
            let _ = s.wanted(c).count();
        }
    }
}
