//! The peer table's id-to-index map: open addressing with linear probing
//! over 8-byte slots, each holding 32 bits of the id's hash (the tag) beside
//! the peer's index.
//!
//! A lookup reads one cache line of slots and touches a peer record only on
//! a tag match. hashbrown, which this replaces, keeps control bytes and
//! buckets apart, so its lookup was two dependent cache misses before the
//! peer record's; in the simulator, where 1,000 tables take turns and each
//! is cold when its datagram arrives, those misses were most of the cost of
//! applying a gossip section (issue 3).
//!
//! The tag also places the slot (its low bits are the home position), so
//! growing and deleting never rehash an id or read the peer array.

use alloc::vec::Vec;

/// Slot value of an empty slot; a full one holds `tag << 32 | (index + 1)`.
const EMPTY: u64 = 0;

/// Open-addressed map from a 64-bit id hash to a `u32` peer index.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdIndex {
    /// A power of two long (or empty); at most 3/4 full, so that a probe
    /// sequence stays short (2.5 slots on average for a miss at 1/2 full).
    slots: Vec<u64>,
    len: usize,
}

impl IdIndex {
    /// The first index whose slot carries `hash`'s tag, if any: the peer,
    /// unless two ids share 32 hash bits. Reads no peer record.
    pub(crate) fn first(&self, hash: u64) -> Option<u32> {
        self.probe(tag(hash)).next()
    }

    /// Requests the first slot `hash` probes into the cache.
    pub(crate) fn prefetch(&self, hash: u64) {
        if let Some(mask) = self.slots.len().checked_sub(1) {
            super::prefetch(&self.slots[home(tag(hash), mask)]);
        }
    }

    /// The index among those tagged like `hash` for which `is` holds.
    pub(crate) fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        self.probe(tag(hash)).find(|&i| is(i))
    }

    /// Adds `index` under `hash`; the caller knows it is not there yet.
    pub(crate) fn insert(&mut self, hash: u64, index: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.place(tag(hash), index);
        self.len += 1;
    }

    /// Removes `index`, held under `hash`. Later slots of its run shift back
    /// into the gap, so that no probe sequence is cut (no tombstones).
    pub(crate) fn remove(&mut self, hash: u64, index: u32) {
        let Some(mut gap) = self.position(tag(hash), index) else {
            return;
        };
        let mask = self.slots.len() - 1;
        let mut j = gap;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            let home = home(slot_tag(s), mask);
            // Slot j may fill the gap unless its home lies cyclically in
            // (gap, j]: then the gap is not on its probe sequence.
            let stays = match gap <= j {
                true => gap < home && home <= j,
                false => gap < home || home <= j,
            };
            if !stays {
                self.slots[gap] = s;
                gap = j;
            }
        }
        self.slots[gap] = EMPTY;
        self.len -= 1;
    }

    /// Points the entry of `from`, held under `hash`, at `to` instead.
    pub(crate) fn repoint(&mut self, hash: u64, from: u32, to: u32) {
        if let Some(p) = self.position(tag(hash), from) {
            self.slots[p] = slot(tag(hash), to);
        }
    }

    /// Bytes on the heap.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<u64>()
    }

    /// Indices tagged `t`, in probe order.
    fn probe(&self, t: u32) -> impl Iterator<Item = u32> + '_ {
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = home(t, mask);
        let mut left = self.slots.len();
        core::iter::from_fn(move || {
            while left > 0 {
                left -= 1;
                let s = self.slots[at];
                at = (at + 1) & mask;
                if s == EMPTY {
                    left = 0;
                } else if slot_tag(s) == t {
                    return Some(slot_index(s));
                }
            }
            None
        })
    }

    /// The slot position holding `index` under tag `t`.
    fn position(&self, t: u32, index: u32) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let want = slot(t, index);
        let mut at = home(t, mask);
        loop {
            match self.slots[at] {
                EMPTY => return None,
                s if s == want => return Some(at),
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn place(&mut self, t: u32, index: u32) {
        let mask = self.slots.len() - 1;
        let mut at = home(t, mask);
        while self.slots[at] != EMPTY {
            at = (at + 1) & mask;
        }
        self.slots[at] = slot(t, index);
    }

    fn grow(&mut self) {
        let old = core::mem::take(&mut self.slots);
        self.slots = alloc::vec![EMPTY; (old.len() * 2).max(16)];
        for s in old.into_iter().filter(|&s| s != EMPTY) {
            self.place(slot_tag(s), slot_index(s));
        }
    }
}

/// The hash's top 32 bits.
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// Where a tag's probe sequence starts. Tables beyond 2^32 slots (billions of
/// peers) use only the first 2^32 homes: slower, still correct.
fn home(t: u32, mask: usize) -> usize {
    t as usize & mask
}

fn slot(t: u32, index: u32) -> u64 {
    // Peer indices stay below max_peers <= u32::MAX, so index + 1 fits.
    u64::from(t) << 32 | u64::from(index + 1)
}

fn slot_tag(s: u64) -> u32 {
    (s >> 32) as u32
}

fn slot_index(s: u64) -> u32 {
    (s as u32) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{mix64, Rng};
    use alloc::collections::BTreeMap;

    #[test]
    fn inserts_removals_and_repoints_agree_with_a_reference_map() {
        let mut rng = Rng::new(3);
        let mut index = IdIndex::default();
        // key -> index; keys 2m and 2m + 1 share their tag (and so their home).
        let mut reference: BTreeMap<u64, u32> = BTreeMap::new();
        let hash = |k: u64| (mix64(k / 2) & !0xffff_ffff) | k;
        for step in 0..20_000u32 {
            let key = rng.below(3_000);
            match (reference.get(&key).copied(), rng.below(3)) {
                (None, _) => {
                    index.insert(hash(key), step);
                    reference.insert(key, step);
                }
                (Some(i), 0) => {
                    index.remove(hash(key), i);
                    reference.remove(&key);
                }
                (Some(i), 1) => {
                    index.repoint(hash(key), i, step);
                    reference.insert(key, step);
                }
                (Some(_), _) => {}
            }
            if step % 1_000 == 0 {
                for k in 0..3_000 {
                    let want = reference.get(&k).copied();
                    let got = index.find(hash(k), |i| Some(i) == want);
                    assert_eq!(got, want, "key {k} at step {step}");
                }
                assert!(index.len * 4 <= index.slots.len() * 3);
            }
        }
        assert_eq!(index.len, reference.len());
    }

    #[test]
    fn an_empty_index_finds_nothing_and_removes_nothing() {
        let mut index = IdIndex::default();
        assert_eq!(index.first(42), None);
        assert_eq!(index.find(42, |_| true), None);
        index.remove(42, 0);
        index.repoint(42, 0, 1);
        assert_eq!(index.memory_bytes(), 0);
    }
}
