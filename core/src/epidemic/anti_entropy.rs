//! Anti-entropy (Demers 1987, §1.3): each round a node resolves differences with
//! one random peer, so every update reaches every node (SI: susceptible,
//! infective; nothing is ever removed).
//!
//! The exchange is digest-based, so only entries one side lacks travel:
//!
//! ```text
//! push:       A -> B  Digest(push)       B -> A  Request(keys A has newer)   A -> B  Entries
//! pull:       A -> B  Digest(pull)       B -> A  Entries(newer than A's digest)
//! push-pull:  A -> B  Digest(push-pull)  B -> A  Entries + Request           A -> B  Entries
//! ```
//!
//! Large state is split: a digest covers one key range and fits the byte budget,
//! and a round sends at most `chunks_per_round` of them, resuming next round where
//! it stopped (so a full comparison of a big store spans several rounds). Entries
//! and requests are packed into messages under the same budget.
//!
//! [`AntiEntropy`] holds no per-peer state: the caller picks the peer
//! ([`choose_peer`]), carries [`Message`]s over the wire and feeds replies back to
//! [`AntiEntropy::handle`].

use alloc::vec::Vec;
use core::fmt;

use super::data::{
    DigestChunk, Entry, Merged, Store, StoreLimits, DIGEST_CHUNK_OVERHEAD, DIGEST_ITEM_OVERHEAD,
    ENTRY_OVERHEAD,
};
use super::Direction;
use crate::profile::ConfigError;
use crate::rng::Rng;

/// Bytes a request costs beyond its keys (a count).
pub const REQUEST_OVERHEAD: usize = 2;
/// Bytes a requested key costs beyond its bytes (a length).
pub const REQUEST_ITEM_OVERHEAD: usize = 2;
/// Bytes an entries message costs beyond its entries (a count).
pub const ENTRIES_OVERHEAD: usize = 2;
/// Smallest byte budget accepted: room for a few short entries.
pub const MIN_BUDGET: usize = 64;

/// One anti-entropy message body. The wire codec frames it; its encoded size is
/// at most the budget it was packed for, under the size model of
/// [`super::data::ENTRY_OVERHEAD`] and friends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Opens an exchange: the initiator's stamps for one key range, and which way
    /// entries should travel.
    Digest {
        /// Push: the receiver asks for what the initiator has newer. Pull: the
        /// receiver sends what it has newer. Push-pull: both.
        direction: Direction,
        /// The initiator's digest of one key range.
        chunk: DigestChunk,
    },
    /// Entries the receiver lacks or holds older versions of.
    Entries(Vec<Entry>),
    /// Keys whose entries the sender wants (the receiver holds newer ones).
    Request(Vec<Vec<u8>>),
}

impl Message {
    /// Bytes the body takes on the wire under the crate's size model.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::Digest { chunk, .. } => 1 + chunk.encoded_len(),
            Message::Entries(es) => {
                ENTRIES_OVERHEAD + es.iter().map(Entry::encoded_len).sum::<usize>()
            }
            Message::Request(keys) => {
                REQUEST_OVERHEAD
                    + keys
                        .iter()
                        .map(|k| REQUEST_ITEM_OVERHEAD + k.len())
                        .sum::<usize>()
            }
        }
    }
}

/// Why a message was refused. The store is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExchangeError {
    /// A digest whose items are unsorted, repeated or outside its range.
    MalformedDigest,
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::MalformedDigest => {
                f.write_str("malformed digest: items unsorted or outside its range")
            }
        }
    }
}

impl core::error::Error for ExchangeError {}

/// Counters of one node's anti-entropy work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AntiEntropyStats {
    /// Rounds opened.
    pub rounds: u64,
    /// Digest chunks sent.
    pub digests_sent: u64,
    /// Entries sent (each one the peer lacked when it sent its digest or request).
    pub entries_sent: u64,
    /// Keys requested.
    pub keys_requested: u64,
    /// Entries received.
    pub entries_received: u64,
    /// Entries received that were news here (inserted or replaced).
    pub entries_applied: u64,
    /// Entries received that a store cap refused.
    pub entries_rejected: u64,
    /// Messages refused as malformed.
    pub malformed: u64,
}

/// One node's anti-entropy: which way it exchanges, its byte budget, and where its
/// walk over a large store resumes.
#[derive(Clone, Debug)]
pub struct AntiEntropy {
    direction: Direction,
    budget: usize,
    chunks_per_round: usize,
    /// The next round's first digest starts here (empty: the first key).
    cursor: Vec<u8>,
    stats: AntiEntropyStats,
}

impl AntiEntropy {
    /// Exchanges in `direction`, packing every message into `budget` bytes (the
    /// datagram payload left after framing). Sends up to 8 digest chunks a round.
    ///
    /// # Errors
    /// A [`ConfigError`] if `budget` is below [`MIN_BUDGET`].
    pub fn new(direction: Direction, budget: usize) -> Result<Self, ConfigError> {
        if budget < MIN_BUDGET {
            return Err(ConfigError {
                field: "anti_entropy.budget",
                problem: "must be at least 64 bytes",
            });
        }
        Ok(AntiEntropy {
            direction,
            budget,
            chunks_per_round: 8,
            cursor: Vec::new(),
            stats: AntiEntropyStats::default(),
        })
    }

    /// Digest chunks sent per round, at least 1. More compares a big store faster
    /// at proportional bytes per round.
    pub fn with_chunks_per_round(mut self, chunks: usize) -> Self {
        self.chunks_per_round = chunks.max(1);
        self
    }

    /// Checks that the largest entry and digest item a store with `limits` can
    /// hold fit one message under this budget, so that every entry can travel.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the cap that is too large for the budget.
    pub fn check_limits(&self, limits: &StoreLimits) -> Result<(), ConfigError> {
        limits.validate()?;
        if ENTRIES_OVERHEAD + ENTRY_OVERHEAD + limits.max_key_len + limits.max_value_len
            > self.budget
        {
            return Err(ConfigError {
                field: "max_value_len",
                problem: "largest entry does not fit the anti-entropy budget",
            });
        }
        // A digest carries its range keys and at least one item.
        if 1 + DIGEST_CHUNK_OVERHEAD + DIGEST_ITEM_OVERHEAD + 3 * limits.max_key_len > self.budget {
            return Err(ConfigError {
                field: "max_key_len",
                problem: "a digest of the longest key does not fit the anti-entropy budget",
            });
        }
        Ok(())
    }

    /// The direction this node opens exchanges in.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The byte budget per message.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Counters so far.
    pub fn stats(&self) -> AntiEntropyStats {
        self.stats
    }

    /// Opens this round's exchange with the peer the caller chose: digests of the
    /// next key ranges of `store`, resuming where the last round stopped and
    /// wrapping around at the end. An empty store still sends one (empty) digest,
    /// so that a pull can fetch everything.
    pub fn open(&mut self, store: &Store) -> Vec<Message> {
        self.stats.rounds += 1;
        let mut out = Vec::new();
        // The digest rides in a message with a one-byte direction tag.
        let budget = self.budget - 1;
        for _ in 0..self.chunks_per_round {
            let chunk = store.digest_chunk(&self.cursor, budget);
            let end = chunk.end.clone();
            out.push(Message::Digest {
                direction: self.direction,
                chunk,
            });
            self.stats.digests_sent += 1;
            match end {
                Some(next) => self.cursor = next,
                None => {
                    self.cursor.clear();
                    break;
                }
            }
        }
        out
    }

    /// Handles one message from a peer: merges entries into `store`, answers
    /// digests and requests. Returns the replies to send back to that peer, each
    /// packed under the budget.
    ///
    /// # Errors
    /// [`ExchangeError`] for a malformed digest; nothing changed.
    pub fn handle(
        &mut self,
        store: &mut Store,
        message: Message,
    ) -> Result<Vec<Message>, ExchangeError> {
        let mut out = Vec::new();
        match message {
            Message::Digest { direction, chunk } => {
                if !chunk.is_well_formed() {
                    self.stats.malformed += 1;
                    return Err(ExchangeError::MalformedDigest);
                }
                if direction.pulls() {
                    // Demers pull: send what we hold newer than the digest.
                    let before = out.len();
                    pack_entries(
                        store.newer_than(&chunk).map(|e| e.to_entry()),
                        self.budget,
                        &mut out,
                    );
                    self.count_sent(&out[before..]);
                }
                if direction.pushes() {
                    // Demers push: ask for what the digest holds newer than us.
                    let before = out.len();
                    pack_request(store.wanted(&chunk), self.budget, &mut out);
                    for m in &out[before..] {
                        if let Message::Request(keys) = m {
                            self.stats.keys_requested += keys.len() as u64;
                        }
                    }
                }
            }
            Message::Request(keys) => {
                let found = keys
                    .iter()
                    .filter_map(|k| store.get(k).map(|(v, stamp)| (k, v, stamp)));
                let entries = found.map(|(k, v, stamp)| Entry {
                    key: k.clone(),
                    value: v.to_vec(),
                    stamp,
                });
                pack_entries(entries, self.budget, &mut out);
                self.count_sent(&out);
            }
            Message::Entries(entries) => {
                for e in entries {
                    self.stats.entries_received += 1;
                    match store.merge_entry(e) {
                        Ok(m) if m.is_news() => self.stats.entries_applied += 1,
                        Ok(Merged::Stale | Merged::Duplicate) | Ok(_) => {}
                        Err(_) => self.stats.entries_rejected += 1,
                    }
                }
            }
        }
        Ok(out)
    }

    fn count_sent(&mut self, messages: &[Message]) {
        for m in messages {
            if let Message::Entries(es) = m {
                self.stats.entries_sent += es.len() as u64;
            }
        }
    }
}

/// One uniform random peer index in `0..peers` (anti-entropy contacts one random
/// peer per round); `None` when there is no peer.
pub fn choose_peer(rng: &mut Rng, peers: usize) -> Option<usize> {
    (peers > 0).then(|| rng.index(peers))
}

/// Packs entries into `Entries` messages of at most `budget` bytes each. An entry
/// too large for any message is skipped (a store whose limits passed
/// [`AntiEntropy::check_limits`] holds none).
pub fn pack_entries(
    entries: impl IntoIterator<Item = Entry>,
    budget: usize,
    out: &mut Vec<Message>,
) {
    let mut batch = Vec::new();
    let mut used = ENTRIES_OVERHEAD;
    for e in entries {
        let cost = e.encoded_len();
        if ENTRIES_OVERHEAD + cost > budget {
            continue;
        }
        if used + cost > budget {
            out.push(Message::Entries(core::mem::take(&mut batch)));
            used = ENTRIES_OVERHEAD;
        }
        used += cost;
        batch.push(e);
    }
    if !batch.is_empty() {
        out.push(Message::Entries(batch));
    }
}

/// Packs keys into `Request` messages of at most `budget` bytes each.
pub fn pack_request<'a>(
    keys: impl IntoIterator<Item = &'a [u8]>,
    budget: usize,
    out: &mut Vec<Message>,
) {
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut used = REQUEST_OVERHEAD;
    for k in keys {
        let cost = REQUEST_ITEM_OVERHEAD + k.len();
        if REQUEST_OVERHEAD + cost > budget {
            continue;
        }
        if used + cost > budget {
            out.push(Message::Request(core::mem::take(&mut batch)));
            used = REQUEST_OVERHEAD;
        }
        used += cost;
        batch.push(k.to_vec());
    }
    if !batch.is_empty() {
        out.push(Message::Request(batch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epidemic::data::{Stamp, StoreLimits};
    use crate::ids::NodeId;
    use alloc::format;

    /// Runs one exchange opened by `a` towards `b` to completion; returns the
    /// number of entries that travelled each way (a to b, b to a).
    fn exchange(
        ae_a: &mut AntiEntropy,
        a: &mut Store,
        ae_b: &mut AntiEntropy,
        b: &mut Store,
    ) -> (u64, u64) {
        let (sa, sb) = (ae_a.stats().entries_sent, ae_b.stats().entries_sent);
        let mut to_b = ae_a.open(a);
        while !to_b.is_empty() {
            let mut to_a = Vec::new();
            for m in to_b.drain(..) {
                assert!(m.encoded_len() <= ae_a.budget());
                to_a.extend(ae_b.handle(b, m).unwrap());
            }
            for m in to_a {
                assert!(m.encoded_len() <= ae_b.budget());
                to_b.extend(ae_a.handle(a, m).unwrap());
            }
        }
        (
            ae_a.stats().entries_sent - sa,
            ae_b.stats().entries_sent - sb,
        )
    }

    fn content(s: &Store) -> Vec<Entry> {
        s.iter().map(|e| e.to_entry()).collect()
    }

    fn two_stores() -> (Store, Store) {
        let mut a = Store::new(StoreLimits::default());
        let mut b = Store::new(StoreLimits::default());
        for i in 0..30u32 {
            a.publish(NodeId(1), format!("a{i:03}").as_bytes(), b"from a")
                .unwrap();
            b.publish(NodeId(2), format!("b{i:03}").as_bytes(), b"from b")
                .unwrap();
        }
        // A shared key, newer at b.
        a.merge(b"shared", b"old", Stamp::new(1, NodeId(1)))
            .unwrap();
        b.merge(b"shared", b"new", Stamp::new(2, NodeId(2)))
            .unwrap();
        (a, b)
    }

    #[test]
    fn push_sends_only_what_the_peer_lacks() {
        let (mut a, mut b) = two_stores();
        let mut ae_a = AntiEntropy::new(Direction::Push, 1_200).unwrap();
        let mut ae_b = AntiEntropy::new(Direction::Push, 1_200).unwrap();
        let (ab, ba) = exchange(&mut ae_a, &mut a, &mut ae_b, &mut b);
        assert_eq!((ab, ba), (30, 0));
        assert_eq!(b.len(), 61);
        assert_eq!(a.len(), 31);
        assert_eq!(b.get(b"shared").unwrap().0, b"new");
        // Again: nothing left to push.
        assert_eq!(exchange(&mut ae_a, &mut a, &mut ae_b, &mut b), (0, 0));
    }

    #[test]
    fn pull_fetches_only_what_the_caller_lacks() {
        let (mut a, mut b) = two_stores();
        let mut ae_a = AntiEntropy::new(Direction::Pull, 1_200).unwrap();
        let mut ae_b = AntiEntropy::new(Direction::Pull, 1_200).unwrap();
        assert_eq!(exchange(&mut ae_a, &mut a, &mut ae_b, &mut b), (0, 31));
        assert_eq!(a.get(b"shared").unwrap().0, b"new");
        assert_eq!(b.len(), 31);
        assert_eq!(exchange(&mut ae_a, &mut a, &mut ae_b, &mut b), (0, 0));
    }

    #[test]
    fn push_pull_converges_both_sides_in_one_exchange() {
        let (mut a, mut b) = two_stores();
        let mut ae_a = AntiEntropy::new(Direction::PushPull, 1_200).unwrap();
        let mut ae_b = AntiEntropy::new(Direction::PushPull, 1_200).unwrap();
        assert_eq!(exchange(&mut ae_a, &mut a, &mut ae_b, &mut b), (30, 31));
        assert_eq!(content(&a), content(&b));
        assert_eq!(exchange(&mut ae_a, &mut a, &mut ae_b, &mut b), (0, 0));
    }

    #[test]
    fn a_large_store_is_compared_over_several_rounds_within_the_budget() {
        let mut a = Store::new(StoreLimits::default());
        let mut b = Store::new(StoreLimits::default());
        for i in 0..2_000u32 {
            a.publish(NodeId(1), format!("key-{i:06}").as_bytes(), &[7; 40])
                .unwrap();
        }
        let budget = 512;
        let mut ae_a = AntiEntropy::new(Direction::Push, budget)
            .unwrap()
            .with_chunks_per_round(4);
        let mut ae_b = AntiEntropy::new(Direction::Push, budget).unwrap();
        ae_a.check_limits(&StoreLimits {
            max_value_len: 200,
            ..StoreLimits::default()
        })
        .unwrap_err();
        let mut rounds = 0;
        while b.len() < a.len() {
            exchange(&mut ae_a, &mut a, &mut ae_b, &mut b);
            rounds += 1;
            assert!(rounds < 1_000);
        }
        // 28 bytes per digest item (10-byte keys): (511 - 6 - 10 - 10) / 28 = 17 items
        // per digest, 4 digests a round: 2,000 / 68 = 30 rounds.
        assert!((29..=31).contains(&rounds), "{rounds} rounds");
        assert_eq!(content(&a), content(&b));
        assert_eq!(ae_a.stats().entries_sent, 2_000);
    }

    #[test]
    fn malformed_digest_is_refused_and_counted() {
        let mut ae = AntiEntropy::new(Direction::Pull, 1_200).unwrap();
        let mut s = Store::new(StoreLimits::default());
        s.publish(NodeId(1), b"k", b"v").unwrap();
        let bad = DigestChunk {
            start: b"z".to_vec(),
            end: None,
            items: vec![super::super::data::DigestItem {
                key: b"a".to_vec(),
                stamp: Stamp::default(),
            }],
        };
        let m = Message::Digest {
            direction: Direction::Pull,
            chunk: bad,
        };
        assert_eq!(ae.handle(&mut s, m), Err(ExchangeError::MalformedDigest));
        assert_eq!(ae.stats().malformed, 1);
        assert!(AntiEntropy::new(Direction::Pull, 10).is_err());
    }

    #[test]
    fn default_limits_fit_a_typical_datagram_budget() {
        let ae = AntiEntropy::new(Direction::PushPull, 1_200).unwrap();
        ae.check_limits(&StoreLimits::default()).unwrap();
        let mut rng = Rng::new(1);
        assert_eq!(choose_peer(&mut rng, 0), None);
        assert!(choose_peer(&mut rng, 3).is_some_and(|p| p < 3));
    }

    #[test]
    fn random_replicas_converge_under_random_push_pull_rounds() {
        let mut rng = Rng::new(99);
        let n = 6;
        let mut stores: Vec<Store> = (0..n).map(|_| Store::new(StoreLimits::default())).collect();
        let mut aes: Vec<AntiEntropy> = (0..n)
            .map(|_| {
                AntiEntropy::new(Direction::PushPull, 300)
                    .unwrap()
                    .with_chunks_per_round(2)
            })
            .collect();
        for _ in 0..200 {
            let i = rng.index(n);
            let key = format!("k{}", rng.below(40));
            let _ = stores[i].publish(NodeId(i as u64), key.as_bytes(), &[rng.below(256) as u8]);
        }
        for _ in 0..60 {
            for i in 0..n {
                let j = (i + 1 + rng.index(n - 1)) % n;
                let (lo, hi) = (i.min(j), i.max(j));
                let (left, right) = stores.split_at_mut(hi);
                let (ael, aer) = aes.split_at_mut(hi);
                if i < j {
                    exchange(&mut ael[lo], &mut left[lo], &mut aer[0], &mut right[0]);
                } else {
                    exchange(&mut aer[0], &mut right[0], &mut ael[lo], &mut left[lo]);
                }
            }
        }
        for s in &stores[1..] {
            assert_eq!(content(s), content(&stores[0]));
        }
    }
}
