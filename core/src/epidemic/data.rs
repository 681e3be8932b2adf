//! Versioned data: a bounded `(key, value, version)` store whose merge is a join.
//!
//! A higher version wins; equal versions go to the higher origin id; and, so that
//! merge stays commutative even when a faulty origin reuses a stamp for two values,
//! a last tie goes to the larger value bytes. Merging is therefore idempotent,
//! commutative and associative: replicas that saw the same entries in any order and
//! any number of times hold the same state.
//!
//! Digests list `(key, version, origin)` for one key range at a time ([`DigestChunk`]),
//! so a large store is compared chunk by chunk under a byte budget, and
//! [`Store::newer_than`] / [`Store::wanted`] say which entries should travel.
//!
//! Memory is bounded by [`StoreLimits`]: entries, key and value lengths and total
//! payload bytes are capped, and an entry that would pass a cap is refused (and
//! counted), never stored.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;
use core::ops::Bound;

use crate::error::ConfigError;
use crate::ids::NodeId;
use crate::wire::ENTRY_OVERHEAD;

mod digest;

pub use crate::wire::{EntryRef, Stamp};
pub use digest::{DigestChunk, DigestItem};

/// One key's current value with its stamp, owned (as received or to be sent).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Its version and origin.
    pub stamp: Stamp,
}

impl Entry {
    /// Bytes this entry takes in an entries message (see [`ENTRY_OVERHEAD`]).
    pub fn encoded_len(&self) -> usize {
        ENTRY_OVERHEAD + self.key.len() + self.value.len()
    }
}

impl From<EntryRef<'_>> for Entry {
    /// An owned copy.
    fn from(e: EntryRef<'_>) -> Self {
        Entry {
            key: e.key.to_vec(),
            value: e.value.to_vec(),
            stamp: e.stamp,
        }
    }
}

/// Caps on what a [`Store`] holds. Each trades completeness (an entry past a cap
/// is refused and never spreads from here) for bounded memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most keys held (default 65,536); 1 to 2^32.
    pub max_entries: usize,
    /// Longest key in bytes (default 255); 1 to 1,024. Digests carry keys, so long
    /// keys make digests, and so anti-entropy, costly.
    pub max_key_len: usize,
    /// Longest value in bytes (default 768). An entry must fit one datagram, so
    /// keep key + value + [`ENTRY_OVERHEAD`] under the anti-entropy byte budget.
    pub max_value_len: usize,
    /// Most key + value bytes held in all (default 16 MiB).
    pub max_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_entries: 1 << 16,
            max_key_len: 255,
            max_value_len: 768,
            max_bytes: 16 << 20,
        }
    }
}

impl StoreLimits {
    /// Checks every cap.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first cap out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |part, problem| {
            Err(ConfigError {
                field: "store_limits",
                part,
                problem,
            })
        };
        if self.max_entries == 0 || self.max_entries > 1 << 32 {
            return err("_max_entries", "must be between 1 and 2^32");
        }
        if !(1..=1_024).contains(&self.max_key_len) {
            return err("_max_key_len", "must be between 1 and 1024 bytes");
        }
        if self.max_value_len > u16::MAX as usize {
            return err("_max_value_len", "must be at most 65535 bytes");
        }
        if self.max_bytes < self.max_key_len + self.max_value_len {
            return err("_max_bytes", "must hold at least one largest entry");
        }
        Ok(())
    }
}

/// What a merge did. The store changed only for `Inserted` and `Replaced`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merged {
    /// The key was new here.
    Inserted,
    /// The entry beat the one held, which it replaced.
    Replaced {
        /// The stamp replaced.
        previous: Stamp,
    },
    /// The entry held is newer: nothing changed.
    Stale,
    /// The entry held is this very one: nothing changed.
    Duplicate,
}

impl Merged {
    /// Whether the store changed (the entry is news here).
    pub fn is_news(self) -> bool {
        matches!(self, Merged::Inserted | Merged::Replaced { .. })
    }
}

/// Why an entry was refused. The store is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejected {
    /// The key is longer than `max_key_len` (or empty).
    BadKey,
    /// The value is longer than `max_value_len`.
    ValueTooLong,
    /// The store holds `max_entries` keys already.
    TooManyEntries,
    /// The entry would take the store past `max_bytes`.
    TooManyBytes,
    /// The key's version is `u64::MAX`: no later version can be written.
    VersionExhausted,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejected::BadKey => "key empty or longer than max_key_len",
            Rejected::ValueTooLong => "value longer than max_value_len",
            Rejected::TooManyEntries => "store holds max_entries keys",
            Rejected::TooManyBytes => "store would pass max_bytes",
            Rejected::VersionExhausted => "key version exhausted",
        })
    }
}

impl core::error::Error for Rejected {}

/// Counters of everything merged into a store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// New keys stored.
    pub inserted: u64,
    /// Entries that replaced an older one.
    pub replaced: u64,
    /// Entries older than the one held.
    pub stale: u64,
    /// Entries equal to the one held.
    pub duplicate: u64,
    /// Entries refused by a cap.
    pub rejected: u64,
}

#[derive(Clone, Debug)]
struct Slot {
    value: Vec<u8>,
    stamp: Stamp,
}

/// A bounded map from key to the newest `(value, stamp)` seen, in key order.
#[derive(Clone, Debug)]
pub struct Store {
    map: BTreeMap<Vec<u8>, Slot>,
    bytes: usize,
    limits: StoreLimits,
    stats: StoreStats,
}

impl Store {
    /// An empty store with these caps (assumed valid: see [`StoreLimits::validate`]).
    pub fn new(limits: StoreLimits) -> Self {
        Store {
            map: BTreeMap::new(),
            bytes: 0,
            limits,
            stats: StoreStats::default(),
        }
    }

    /// The caps.
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Key + value bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Counters of merges so far.
    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// The value and stamp held for `key`.
    pub fn get(&self, key: &[u8]) -> Option<(&[u8], Stamp)> {
        self.map.get(key).map(|s| (s.value.as_slice(), s.stamp))
    }

    /// The stamp held for `key`.
    pub fn stamp(&self, key: &[u8]) -> Option<Stamp> {
        self.map.get(key).map(|s| s.stamp)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.map.iter().map(entry_ref)
    }

    /// A local write: stores `value` under `key` with a version one above the
    /// highest held for the key, written by `origin`, and returns its stamp.
    ///
    /// # Errors
    /// [`Rejected`] when a cap refuses it; the store is unchanged.
    pub fn publish(&mut self, origin: NodeId, key: &[u8], value: &[u8]) -> Result<Stamp, Rejected> {
        let version = match self.stamp(key) {
            Some(s) if s.version == u64::MAX => return Err(self.reject(Rejected::VersionExhausted)),
            Some(s) => s.version + 1,
            None => 1,
        };
        let stamp = Stamp::new(version, origin);
        self.merge(key, value, stamp).map(|_| stamp)
    }

    /// Merges one entry: it replaces the one held if it wins (higher version, then
    /// higher origin, then larger value bytes).
    ///
    /// Idempotent and commutative: the result depends only on the set of entries
    /// merged. Copies the key and value only when they are stored.
    ///
    /// # Errors
    /// [`Rejected`] when a cap refuses a winning entry; the store is unchanged.
    /// A losing entry is `Ok(Stale)` even when it would not fit.
    pub fn merge(&mut self, key: &[u8], value: &[u8], stamp: Stamp) -> Result<Merged, Rejected> {
        match self.decide(key, value, stamp)? {
            Decision::Keep(m) => Ok(m),
            Decision::Insert => Ok(self.insert(key.to_vec(), value.to_vec(), stamp)),
            Decision::Replace => Ok(self.replace(key, value.to_vec(), stamp)),
        }
    }

    /// [`Store::merge`] for an owned entry (no copy).
    ///
    /// # Errors
    /// As [`Store::merge`].
    pub fn merge_entry(&mut self, entry: Entry) -> Result<Merged, Rejected> {
        let Entry { key, value, stamp } = entry;
        match self.decide(&key, &value, stamp)? {
            Decision::Keep(m) => Ok(m),
            Decision::Insert => Ok(self.insert(key, value, stamp)),
            Decision::Replace => Ok(self.replace(&key, value, stamp)),
        }
    }

    /// Entries with keys in `[start, end)`, in key order.
    pub fn range<'a>(
        &'a self,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> impl Iterator<Item = EntryRef<'a>> + 'a {
        let upper = match end {
            Some(e) if e <= start => {
                // An empty or inverted range: BTreeMap::range would panic.
                return RangeIter::Empty;
            }
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        RangeIter::Range(
            self.map
                .range::<[u8], _>((Bound::Included(start), upper))
                .map(entry_ref),
        )
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>, stamp: Stamp) -> Merged {
        self.bytes += key.len() + value.len();
        self.map.insert(key, Slot { value, stamp });
        self.stats.inserted += 1;
        Merged::Inserted
    }

    fn replace(&mut self, key: &[u8], value: Vec<u8>, stamp: Stamp) -> Merged {
        // Invariant: decide() returned Replace, so the key is held.
        let slot = self.map.get_mut(key).expect("decide() saw the key");
        self.bytes = self.bytes - slot.value.len() + value.len();
        let previous = slot.stamp;
        slot.value = value;
        slot.stamp = stamp;
        self.stats.replaced += 1;
        Merged::Replaced { previous }
    }

    fn decide(&mut self, key: &[u8], value: &[u8], stamp: Stamp) -> Result<Decision, Rejected> {
        if key.is_empty() || key.len() > self.limits.max_key_len {
            return Err(self.reject(Rejected::BadKey));
        }
        match self.map.get(key) {
            Some(slot) => match wins(stamp, value, slot.stamp, &slot.value) {
                Ordering::Less => {
                    self.stats.stale += 1;
                    Ok(Decision::Keep(Merged::Stale))
                }
                Ordering::Equal => {
                    self.stats.duplicate += 1;
                    Ok(Decision::Keep(Merged::Duplicate))
                }
                Ordering::Greater => {
                    if value.len() > self.limits.max_value_len {
                        return Err(self.reject(Rejected::ValueTooLong));
                    }
                    if self.bytes - slot.value.len() + value.len() > self.limits.max_bytes {
                        return Err(self.reject(Rejected::TooManyBytes));
                    }
                    Ok(Decision::Replace)
                }
            },
            None => {
                if value.len() > self.limits.max_value_len {
                    return Err(self.reject(Rejected::ValueTooLong));
                }
                if self.map.len() >= self.limits.max_entries {
                    return Err(self.reject(Rejected::TooManyEntries));
                }
                if self.bytes + key.len() + value.len() > self.limits.max_bytes {
                    return Err(self.reject(Rejected::TooManyBytes));
                }
                Ok(Decision::Insert)
            }
        }
    }

    fn reject(&mut self, why: Rejected) -> Rejected {
        self.stats.rejected += 1;
        why
    }
}

enum Decision {
    Insert,
    Replace,
    Keep(Merged),
}

/// How `(stamp, value)` compares with the held `(held, held_value)`: the merge order.
fn wins(stamp: Stamp, value: &[u8], held: Stamp, held_value: &[u8]) -> Ordering {
    stamp.cmp(&held).then_with(|| value.cmp(held_value))
}

fn entry_ref<'a>((key, slot): (&'a Vec<u8>, &'a Slot)) -> EntryRef<'a> {
    EntryRef {
        key,
        value: &slot.value,
        stamp: slot.stamp,
    }
}

enum RangeIter<I> {
    Empty,
    Range(I),
}

impl<'a, I: Iterator<Item = EntryRef<'a>>> Iterator for RangeIter<I> {
    type Item = EntryRef<'a>;
    fn next(&mut self) -> Option<EntryRef<'a>> {
        match self {
            RangeIter::Empty => None,
            RangeIter::Range(i) => i.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn store() -> Store {
        Store::new(StoreLimits::default())
    }

    fn snapshot(s: &Store) -> Vec<Entry> {
        s.iter().map(Entry::from).collect()
    }

    #[test]
    fn higher_version_wins_then_higher_origin() {
        let mut s = store();
        assert_eq!(
            s.merge(b"k", b"a", Stamp::new(2, NodeId(1))),
            Ok(Merged::Inserted)
        );
        assert_eq!(
            s.merge(b"k", b"b", Stamp::new(1, NodeId(9))),
            Ok(Merged::Stale)
        );
        assert_eq!(
            s.merge(b"k", b"c", Stamp::new(2, NodeId(3))),
            Ok(Merged::Replaced {
                previous: Stamp::new(2, NodeId(1))
            })
        );
        assert_eq!(
            s.merge(b"k", b"c", Stamp::new(2, NodeId(3))),
            Ok(Merged::Duplicate)
        );
        assert_eq!(s.get(b"k"), Some((&b"c"[..], Stamp::new(2, NodeId(3)))));
        assert_eq!(s.bytes(), 2);
        let st = s.stats();
        assert_eq!(
            (st.inserted, st.replaced, st.stale, st.duplicate),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn publish_bumps_past_the_highest_version_seen() {
        let mut s = store();
        s.merge(b"k", b"x", Stamp::new(7, NodeId(5))).unwrap();
        assert_eq!(
            s.publish(NodeId(1), b"k", b"y"),
            Ok(Stamp::new(8, NodeId(1)))
        );
        assert_eq!(
            s.publish(NodeId(1), b"new", b"z"),
            Ok(Stamp::new(1, NodeId(1)))
        );
        s.merge(b"max", b"", Stamp::new(u64::MAX, NodeId(1)))
            .unwrap();
        assert_eq!(
            s.publish(NodeId(1), b"max", b"w"),
            Err(Rejected::VersionExhausted)
        );
    }

    #[test]
    fn merge_is_idempotent_and_order_free_even_with_conflicting_stamps() {
        let mut rng = Rng::new(11);
        // A pool of entries over few keys, with deliberate stamp collisions
        // (same version and origin, different values).
        let mut pool = Vec::new();
        for _ in 0..60 {
            let key = [b'a' + rng.below(4) as u8];
            let value = [rng.below(3) as u8];
            let stamp = Stamp::new(rng.below(3), NodeId(rng.below(2)));
            pool.push(Entry {
                key: key.to_vec(),
                value: value.to_vec(),
                stamp,
            });
        }
        let mut reference = store();
        for e in &pool {
            reference.merge_entry(e.clone()).unwrap();
        }
        for _ in 0..20 {
            // Shuffle (Fisher-Yates) and duplicate some entries.
            let mut order = pool.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.index(i + 1));
            }
            let extra: Vec<Entry> = order.iter().take(10).cloned().collect();
            order.extend(extra);
            let mut s = store();
            for e in order {
                s.merge(&e.key, &e.value, e.stamp).unwrap();
            }
            assert_eq!(snapshot(&s), snapshot(&reference));
            assert_eq!(s.bytes(), reference.bytes());
        }
    }

    #[test]
    fn caps_refuse_without_changing_anything() {
        let limits = StoreLimits {
            max_entries: 2,
            max_key_len: 4,
            max_value_len: 8,
            max_bytes: 20,
        };
        limits.validate().unwrap();
        let mut s = Store::new(limits);
        let st = |v| Stamp::new(v, NodeId(1));
        assert_eq!(s.merge(b"", b"v", st(1)), Err(Rejected::BadKey));
        assert_eq!(s.merge(b"toolong", b"v", st(1)), Err(Rejected::BadKey));
        assert_eq!(
            s.merge(b"k", b"123456789", st(1)),
            Err(Rejected::ValueTooLong)
        );
        s.merge(b"a", b"12345678", st(1)).unwrap();
        s.merge(b"b", b"12345678", st(1)).unwrap();
        assert_eq!(s.merge(b"c", b"1", st(1)), Err(Rejected::TooManyEntries));
        // 18 bytes held; growing b's value by 3 would pass 20.
        assert_eq!(
            s.merge(b"b", b"12345678901", st(2)),
            Err(Rejected::ValueTooLong)
        );
        s.merge(b"a", b"1", st(2)).unwrap();
        assert_eq!(s.bytes(), 11);
        assert_eq!(
            s.merge(b"a", b"12345678", st(3)),
            Ok(Merged::Replaced { previous: st(2) })
        );
        // A stale entry is Stale even when it would not fit.
        assert_eq!(s.merge(b"a", b"123456789", st(1)), Ok(Merged::Stale));
        assert_eq!(s.len(), 2);
        assert_eq!(s.stats().rejected, 5);
    }

    #[test]
    fn byte_cap_holds_under_random_input() {
        let limits = StoreLimits {
            max_entries: 50,
            max_key_len: 8,
            max_value_len: 40,
            max_bytes: 300,
        };
        let mut s = Store::new(limits);
        let mut rng = Rng::new(5);
        for _ in 0..5_000 {
            let key: Vec<u8> = (0..1 + rng.index(9)).map(|_| rng.below(4) as u8).collect();
            let value: Vec<u8> = (0..rng.index(45)).map(|_| 0).collect();
            let _ = s.merge(
                &key,
                &value,
                Stamp::new(rng.below(10), NodeId(rng.below(3))),
            );
            let held: usize = s.iter().map(|e| e.key.len() + e.value.len()).sum();
            assert_eq!(held, s.bytes());
            assert!(s.bytes() <= limits.max_bytes && s.len() <= limits.max_entries);
        }
    }
}
