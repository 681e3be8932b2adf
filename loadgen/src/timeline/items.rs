//! The items a trial measures (joins, FAILs, updates), indexed by key.
//!
//! A mass failure at 5,000 nodes brings 5.5 million FAIL events about 1,667
//! items among 6,667: finding an event's item by a scan of all of them, and
//! checking every incomplete item at every node on each drain, kept the
//! trial loop so far behind that the nodes' event queues overflowed.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};

use gossip_core::Instant;

use crate::world::ItemKey;

/// One measured item: its key, where it started, and each node's first
/// reception.
pub(super) struct Tracked {
    pub(super) key: ItemKey,
    /// The node it is about (joins and FAILs).
    pub(super) about: Option<usize>,
    /// The node that published it (updates).
    pub(super) origin: Option<usize>,
    /// When it was created: a join's start, a publish, a crash, or (for a FAIL
    /// nobody crashed) the first FAIL. Receptions before it do not count.
    pub(super) since: Instant,
    /// With partial views, the nodes that held a crashed node at its crash.
    pub(super) holders: Option<Vec<usize>>,
    /// First reception at each node.
    pub(super) firsts: Vec<Option<Instant>>,
    /// Nodes with a first reception (the `Some`s in `firsts`): an item is
    /// checked for completion only once enough nodes have it.
    pub(super) reached: usize,
    /// Copies at each node when every live node had it (joins and FAILs).
    pub(super) completed: Option<Vec<u32>>,
}

impl Tracked {
    /// A new item for a trial of `nodes` nodes.
    pub(super) fn new(
        key: ItemKey,
        about: Option<usize>,
        origin: Option<usize>,
        since: Instant,
        nodes: usize,
    ) -> Self {
        Tracked {
            key,
            about,
            origin,
            since,
            holders: None,
            firsts: vec![None; nodes],
            reached: 0,
            completed: None,
        }
    }

    /// Records a reception at `node` at `at`: its first, or an earlier one
    /// (events of different I/O threads arrive in no strict time order).
    pub(super) fn receive(&mut self, node: usize, at: Instant) {
        if let Some(f) = self.firsts.get_mut(node) {
            match f {
                None => {
                    *f = Some(at);
                    self.reached += 1;
                }
                Some(g) if at < *g => *g = at,
                Some(_) => {}
            }
        }
    }
}

/// The items in the order they were created, with an index by key.
#[derive(Default)]
pub(super) struct Items {
    list: Vec<Tracked>,
    by_key: HashMap<ItemKey, Vec<usize>>,
}

impl Items {
    pub(super) fn push(&mut self, t: Tracked) {
        self.by_key.entry(t.key).or_default().push(self.list.len());
        self.list.push(t);
    }

    /// The latest item with `key` created at or before `at`.
    pub(super) fn latest_mut(&mut self, key: ItemKey, at: Instant) -> Option<&mut Tracked> {
        let list = &self.list;
        let k = *self
            .by_key
            .get(&key)?
            .iter()
            .rev()
            .find(|&&k| at >= list[k].since)?;
        Some(&mut self.list[k])
    }

    /// Whether an item with `key` was created at or before `at`.
    pub(super) fn known(&self, key: ItemKey, at: Instant) -> bool {
        self.by_key
            .get(&key)
            .is_some_and(|ks| ks.iter().any(|&k| at >= self.list[k].since))
    }
}

impl Deref for Items {
    type Target = [Tracked];
    fn deref(&self) -> &[Tracked] {
        &self.list
    }
}

impl DerefMut for Items {
    fn deref_mut(&mut self) -> &mut [Tracked] {
        &mut self.list
    }
}
