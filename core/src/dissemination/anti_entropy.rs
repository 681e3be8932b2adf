//! Anti-entropy (Demers 1987 §1.3), the node's one engine for it: an
//! exchange opened with digests of the store's next key ranges, answered with
//! PUSH and PULL, packed into pooled datagrams.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use super::{Cx, Epidemic};
use crate::epidemic::data::{EntryRef, Store};
use crate::ids::Endpoint;
use crate::outbox::Outgoing;
use crate::wire::{Digest, DigestWriter, Header, Keys, MessageType, PullWriter, PushWriter};

impl Epidemic {
    /// Demers 1987, anti-entropy: one exchange with one random member, opened
    /// with digests of the next key ranges of the store.
    pub(super) fn exchange(&mut self, cx: &mut Cx<'_>) {
        self.pick_targets(cx, 1);
        let Some(&i) = self.targets.first() else {
            return;
        };
        let to = cx.peers.get(i).endpoint;
        let header = cx.header(MessageType::Digest, to);
        let direction = cx.config.anti_entropy_direction();
        cx.outbox.stats.data.exchanges += 1;
        let mut made = 0;
        let size = cx.payload;
        let cap = cx.config.data_queue();
        let e = &mut *self;
        for _ in 0..cx.config.anti_entropy_chunks() {
            if e.datagrams.len() >= cap {
                cx.outbox.stats.data.data_queue_full += 1;
                break;
            }
            let mut buf = e.pool.pop().unwrap_or_else(|| vec![0; size]);
            buf.resize(size, 0);
            let Some((len, end)) = write_digest(&e.store, &mut buf, &header, direction, &e.cursor)
            else {
                e.pool.push(buf);
                break;
            };
            e.datagrams.push_back((buf, len));
            made += 1;
            match end {
                Some(end) => {
                    // `end` borrows the store; the cursor is a buffer of its own.
                    e.cursor.clear();
                    e.cursor.extend_from_slice(end);
                }
                None => {
                    e.cursor.clear();
                    break;
                }
            }
        }
        cx.outbox.stats.data.digests_sent += made as u64;
        self.queue_data(cx, to, MessageType::Digest, made);
    }

    /// Queues `made` data datagrams of `kind` just encoded for `to`; those the
    /// transmit queue refuses are dropped from the datagram FIFO's tail.
    pub(super) fn queue_data(
        &mut self,
        cx: &mut Cx<'_>,
        to: Endpoint,
        kind: MessageType,
        made: usize,
    ) {
        for k in 0..made {
            if !cx.outbox.queue_outgoing(Outgoing::new(to, kind, false)) {
                for _ in k..made {
                    if let Some((buf, _)) = self.datagrams.pop_back() {
                        self.pool.push(buf);
                    }
                }
                return;
            }
        }
    }

    /// Answers a DIGEST: PUSH what we hold newer (pull), PULL what it holds
    /// newer (push).
    pub(super) fn answer_digest(&mut self, cx: &mut Cx<'_>, from: Endpoint, d: Digest<'_>) {
        let direction = d.direction();
        if direction.pulls() {
            let header = cx.header(MessageType::Push, from);
            let mut items = d.iter().peekable();
            let newer = self.store.range(d.start(), d.end()).filter(|e| {
                // Merge-join: skip the digest's keys below this one.
                while items.next_if(|i| i.key < e.key).is_some() {}
                match items.peek() {
                    Some(i) if i.key == e.key => e.stamp > i.stamp,
                    _ => true,
                }
            });
            let (made, sent, full) = pack_push(
                &mut self.datagrams,
                &mut self.pool,
                cx.payload,
                cx.config.data_queue(),
                &header,
                newer,
            );
            cx.outbox.stats.data.entries_sent += sent;
            cx.outbox.stats.data.data_queue_full += full;
            self.queue_data(cx, from, MessageType::Push, made);
        }
        if direction.pushes() {
            let header = cx.header(MessageType::Pull, from);
            let store = &self.store;
            let wanted = d
                .iter()
                .filter(|i| store.stamp(i.key).is_none_or(|mine| i.stamp > mine))
                .map(|i| i.key);
            let (made, keys, full) = pack_pull(
                &mut self.datagrams,
                &mut self.pool,
                cx.payload,
                cx.config.data_queue(),
                &header,
                wanted,
            );
            cx.outbox.stats.data.keys_requested += keys;
            cx.outbox.stats.data.data_queue_full += full;
            self.queue_data(cx, from, MessageType::Pull, made);
        }
    }

    /// Answers a PULL with PUSH of the keys we hold.
    pub(super) fn answer_pull(&mut self, cx: &mut Cx<'_>, from: Endpoint, keys: Keys<'_>) {
        let header = cx.header(MessageType::Push, from);
        let store = &self.store;
        let found = keys.iter().filter_map(|k| {
            store.get(k).map(|(value, stamp)| EntryRef {
                key: k,
                value,
                stamp,
            })
        });
        let (made, sent, full) = pack_push(
            &mut self.datagrams,
            &mut self.pool,
            cx.payload,
            cx.config.data_queue(),
            &header,
            found,
        );
        cx.outbox.stats.data.entries_sent += sent;
        cx.outbox.stats.data.data_queue_full += full;
        self.queue_data(cx, from, MessageType::Push, made);
    }
}

/// A digest of the keys from `start` on, as many as fit `buf`; returns its
/// length and its end (the next digest's start), `None` at the last key.
fn write_digest<'s>(
    store: &'s Store,
    buf: &mut [u8],
    header: &Header,
    direction: crate::epidemic::Direction,
    start: &[u8],
) -> Option<(usize, Option<&'s [u8]>)> {
    let mut w = DigestWriter::new(buf, header, direction, start).ok()?;
    let mut entries = store.range(start, None).peekable();
    let mut end = None;
    while let Some(e) = entries.next() {
        // Taking `e` may make the next key this digest's end: leave room for it.
        let end_room = entries.peek().map_or(0, |next| next.key.len());
        if !w.push(e.key, e.stamp, end_room) {
            if w.count() == 0 {
                // Config validation makes one item fit; refuse rather than stall.
                return None;
            }
            end = Some(e.key);
            break;
        }
    }
    let len = w.finish(end).ok()?;
    Some((len, end))
}

/// Packs entries into PUSH datagrams; returns (datagrams, entries, drops).
fn pack_push<'s>(
    datagrams: &mut VecDeque<(Vec<u8>, usize)>,
    pool: &mut Vec<Vec<u8>>,
    size: usize,
    cap: usize,
    header: &Header,
    entries: impl Iterator<Item = EntryRef<'s>>,
) -> (usize, u64, u64) {
    pack(
        datagrams,
        pool,
        size,
        cap,
        entries.peekable(),
        |buf, entries| {
            let mut w = PushWriter::new(buf, header).ok()?;
            while let Some(e) = entries.peek() {
                // An entry too large for any datagram is skipped, never sent.
                if w.push(e) || w.count() == 0 {
                    entries.next();
                } else {
                    break;
                }
            }
            Some((w.count() as u64, w.finish()))
        },
    )
}

/// Packs keys into PULL datagrams; returns (datagrams, keys, drops).
fn pack_pull<'k>(
    datagrams: &mut VecDeque<(Vec<u8>, usize)>,
    pool: &mut Vec<Vec<u8>>,
    size: usize,
    cap: usize,
    header: &Header,
    keys: impl Iterator<Item = &'k [u8]>,
) -> (usize, u64, u64) {
    pack(datagrams, pool, size, cap, keys.peekable(), |buf, keys| {
        let mut w = PullWriter::new(buf, header).ok()?;
        while let Some(k) = keys.peek() {
            // A key too long for any datagram is skipped, never sent.
            if w.push(k) || w.count() == 0 {
                keys.next();
            } else {
                break;
            }
        }
        Some((w.count() as u64, w.finish()))
    })
}

/// Fills datagrams of `size` bytes from `items` with `fill` (which writes one
/// datagram and returns its item count and length) until the items run out or
/// `cap` datagrams are queued; returns (datagrams made, items sent, 1 if the
/// queue was full).
fn pack<I: Iterator>(
    datagrams: &mut VecDeque<(Vec<u8>, usize)>,
    pool: &mut Vec<Vec<u8>>,
    size: usize,
    cap: usize,
    mut items: core::iter::Peekable<I>,
    mut fill: impl FnMut(&mut [u8], &mut core::iter::Peekable<I>) -> Option<(u64, usize)>,
) -> (usize, u64, u64) {
    let (mut made, mut sent) = (0, 0);
    while items.peek().is_some() {
        if datagrams.len() >= cap {
            return (made, sent, 1);
        }
        let mut buf = pool.pop().unwrap_or_default();
        buf.resize(size, 0);
        let Some((n, len)) = fill(&mut buf, &mut items) else {
            return (made, sent, 0);
        };
        if n == 0 {
            pool.push(buf);
            continue;
        }
        sent += n;
        datagrams.push_back((buf, len));
        made += 1;
    }
    (made, sent, 0)
}
