//! Encoding of the epidemic data messages: streaming writers for DIGEST, PUSH,
//! PULL and the rumor block (standalone as a RUMOR, or after a PING's or PONG's
//! section), and `reencode`, which rebuilds any decoded message item by item.
//! Writers never write past their buffer nor past [`MAX_DATAGRAM`].

use super::data::{
    Ack, RumorBlock, ACK_LEN, DIGEST_FIXED, FLAG_RUMORS, KEY_OVERHEAD, LIST_OVERHEAD, MODE_PULL,
    MODE_PUSH, RUMOR_ACK_WANTED, RUMOR_BLOCK_OVERHEAD, RUMOR_PULL,
};
use super::membership::SectionWriter;
use super::swim::{
    encode_nack, encode_sync, encode_sync_check, MembersWriter, SwimBody, MAX_SYNC_LOG2,
};
use super::values::{Direction, EntryRef, Stamp};
use super::{
    encode_header, finish, Body, EncodeError, Header, Message, DIGEST_ITEM_OVERHEAD, HEADER_LEN,
    MAX_DATAGRAM,
};

// ---------------------------------------------------------------------------
// Writers.

/// A buffer being filled, capped at [`MAX_DATAGRAM`].
#[derive(Debug)]
struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Out<'b> {
    fn new(buf: &'b mut [u8], header: &Header, fixed: usize) -> Result<Self, EncodeError> {
        let cap = buf.len().min(MAX_DATAGRAM);
        let buf = &mut buf[..cap];
        if cap < HEADER_LEN + fixed {
            return Err(EncodeError::BufferTooSmall);
        }
        let len = encode_header(buf, header)?;
        Ok(Out { buf, len })
    }

    fn room(&self) -> usize {
        self.buf.len() - self.len
    }

    fn put(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn put_u16_at(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    fn put_entry(&mut self, e: &EntryRef<'_>) {
        self.put(&(e.key.len() as u16).to_be_bytes());
        self.put(&(e.value.len() as u16).to_be_bytes());
        self.put(&e.stamp.version.to_be_bytes());
        self.put(&e.stamp.origin.0.to_be_bytes());
        self.put(e.key);
        self.put(e.value);
    }
}

/// Whether an entry can be written at all (non-empty key, lengths fit u16).
fn writable(e: &EntryRef<'_>) -> bool {
    !e.key.is_empty()
        && e.key.len() <= usize::from(u16::MAX)
        && e.value.len() <= usize::from(u16::MAX)
}

/// Streams a PUSH: header, then entries while they fit.
#[derive(Debug)]
pub struct PushWriter<'b> {
    out: Out<'b>,
    count: u16,
}

impl<'b> PushWriter<'b> {
    /// Starts a PUSH in `buf` (its length is the size limit); `header.kind`
    /// should be [`super::MessageType::Push`].
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when an empty PUSH (26 bytes) does not fit.
    pub fn new(buf: &'b mut [u8], header: &Header) -> Result<Self, EncodeError> {
        let mut out = Out::new(buf, header, LIST_OVERHEAD)?;
        out.len += LIST_OVERHEAD;
        Ok(PushWriter { out, count: 0 })
    }

    /// Bytes left for entries.
    pub fn remaining(&self) -> usize {
        self.out.room()
    }

    /// Entries written so far.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Appends `e` if it fits; returns whether it did.
    pub fn push(&mut self, e: &EntryRef<'_>) -> bool {
        if !writable(e) || e.encoded_len() > self.out.room() || self.count == u16::MAX {
            return false;
        }
        self.out.put_entry(e);
        self.count += 1;
        true
    }

    /// Writes the count and body length; returns the message's length.
    pub fn finish(mut self) -> usize {
        self.out.put_u16_at(HEADER_LEN, self.count);
        finish(self.out.buf, self.out.len)
    }
}

/// Streams a PULL: header, then requested keys while they fit.
#[derive(Debug)]
pub struct PullWriter<'b> {
    out: Out<'b>,
    count: u16,
}

impl<'b> PullWriter<'b> {
    /// Starts a PULL in `buf`.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when an empty PULL (26 bytes) does not fit.
    pub fn new(buf: &'b mut [u8], header: &Header) -> Result<Self, EncodeError> {
        let mut out = Out::new(buf, header, LIST_OVERHEAD)?;
        out.len += LIST_OVERHEAD;
        Ok(PullWriter { out, count: 0 })
    }

    /// Keys written so far.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Appends `key` if it fits; returns whether it did.
    pub fn push(&mut self, key: &[u8]) -> bool {
        let n = KEY_OVERHEAD + key.len();
        if key.is_empty() || key.len() > usize::from(u16::MAX) || n > self.out.room() {
            return false;
        }
        if self.count == u16::MAX {
            return false;
        }
        self.out.put(&(key.len() as u16).to_be_bytes());
        self.out.put(key);
        self.count += 1;
        true
    }

    /// Writes the count and body length; returns the message's length.
    pub fn finish(mut self) -> usize {
        self.out.put_u16_at(HEADER_LEN, self.count);
        finish(self.out.buf, self.out.len)
    }
}

/// Streams a DIGEST: header, mode and start key, items while they fit, end key.
///
/// Items must come in strictly increasing key order, inside `[start, end)`;
/// the caller (a store walking its keys in order) guarantees it.
#[derive(Debug)]
pub struct DigestWriter<'b> {
    out: Out<'b>,
    count_at: usize,
    count: u16,
}

impl<'b> DigestWriter<'b> {
    /// Starts a DIGEST of the range beginning at `start`.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when the empty digest does not fit.
    pub fn new(
        buf: &'b mut [u8],
        header: &Header,
        direction: Direction,
        start: &[u8],
    ) -> Result<Self, EncodeError> {
        if start.len() > usize::from(u16::MAX) {
            return Err(EncodeError::BufferTooSmall);
        }
        let mut out = Out::new(buf, header, DIGEST_FIXED + start.len())?;
        let mode = match direction {
            Direction::Push => MODE_PUSH,
            Direction::Pull => MODE_PULL,
            Direction::PushPull => MODE_PUSH | MODE_PULL,
        };
        out.put(&[mode]);
        out.put(&(start.len() as u16).to_be_bytes());
        out.put(start);
        let count_at = out.len;
        out.len += 2;
        Ok(DigestWriter {
            out,
            count_at,
            count: 0,
        })
    }

    /// Items written so far.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Appends an item if it fits while leaving room for an end key of
    /// `end_room` bytes; returns whether it did.
    pub fn push(&mut self, key: &[u8], stamp: Stamp, end_room: usize) -> bool {
        let n = DIGEST_ITEM_OVERHEAD + key.len();
        // The end key's length field (2 bytes) is always kept free.
        if key.is_empty() || key.len() > usize::from(u16::MAX) || self.count == u16::MAX {
            return false;
        }
        if n + 2 + end_room > self.out.room() {
            return false;
        }
        self.out.put(&(key.len() as u16).to_be_bytes());
        self.out.put(&stamp.version.to_be_bytes());
        self.out.put(&stamp.origin.0.to_be_bytes());
        self.out.put(key);
        self.count += 1;
        true
    }

    /// Writes the end key (`None`: to the end of the key space) and the lengths;
    /// returns the message's length.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when the end key does not fit (push
    /// with `end_room` to keep room for it).
    pub fn finish(mut self, end: Option<&[u8]>) -> Result<usize, EncodeError> {
        let end = end.unwrap_or(&[]);
        if 2 + end.len() > self.out.room() || end.len() > usize::from(u16::MAX) {
            return Err(EncodeError::BufferTooSmall);
        }
        self.out.put(&(end.len() as u16).to_be_bytes());
        self.out.put(end);
        let at = self.count_at;
        self.out.put_u16_at(at, self.count);
        Ok(finish(self.out.buf, self.out.len))
    }
}

/// Streams a rumor block: standalone (a RUMOR) or after a PING's or PONG's
/// gossip section. Acks first, then entries.
#[derive(Debug)]
pub struct RumorWriter<'b> {
    out: Out<'b>,
    /// Offset of the block's flags byte; `None` when a piggybacked block had no
    /// room at all (the message goes out with its section only).
    block: Option<usize>,
    /// Where the section ends (piggybacked only).
    section_end: usize,
    standalone: bool,
    flags: u8,
    acks: u16,
    entries_at: Option<usize>,
    entries: u16,
}

impl<'b> RumorWriter<'b> {
    /// Starts a RUMOR in `buf`; `header.kind` should be [`super::MessageType::Rumor`].
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when the block's fixed part does not fit.
    pub fn standalone(buf: &'b mut [u8], header: &Header) -> Result<Self, EncodeError> {
        let mut out = Out::new(buf, header, RUMOR_BLOCK_OVERHEAD)?;
        let block = out.len;
        out.len += 3;
        Ok(RumorWriter {
            out,
            block: Some(block),
            section_end: block,
            standalone: true,
            flags: 0,
            acks: 0,
            entries_at: None,
            entries: 0,
        })
    }

    /// Continues a PING or PONG after its section. If the block ends up saying
    /// nothing, [`RumorWriter::finish`] drops it and clears the header flag, so
    /// the message is byte for byte the plain one.
    pub fn after_section(section: SectionWriter<'b>) -> Self {
        let (buf, len) = section.into_raw();
        Self::after(buf, len)
    }

    /// Continues a swim PROBE or ACK after its members, as
    /// [`RumorWriter::after_section`] does a PING or PONG.
    pub fn after_members(members: MembersWriter<'b>) -> Self {
        let (buf, len) = members.into_raw();
        Self::after(buf, len)
    }

    fn after(buf: &'b mut [u8], len: usize) -> Self {
        let block = (buf.len() - len >= RUMOR_BLOCK_OVERHEAD).then_some(len);
        RumorWriter {
            out: Out {
                buf,
                len: len + if block.is_some() { 3 } else { 0 },
            },
            block,
            section_end: len,
            standalone: false,
            flags: 0,
            acks: 0,
            entries_at: None,
            entries: 0,
        }
    }

    /// Asks the receiver for its hot rumors.
    pub fn set_pull(&mut self, pull: bool) {
        self.flags = (self.flags & !RUMOR_PULL) | if pull { RUMOR_PULL } else { 0 };
    }

    /// Asks the receiver to ack each entry (set when the stop rule uses feedback).
    pub fn set_ack_wanted(&mut self, wanted: bool) {
        self.flags = (self.flags & !RUMOR_ACK_WANTED) | if wanted { RUMOR_ACK_WANTED } else { 0 };
    }

    /// Appends an ack if it fits and no entry was written yet.
    pub fn push_ack(&mut self, ack: Ack) -> bool {
        if self.block.is_none() || self.entries_at.is_some() || self.acks == u16::MAX {
            return false;
        }
        // Keep two bytes for the entry count.
        if ACK_LEN + 2 > self.out.room() {
            return false;
        }
        self.out.put(&ack.to_wire().to_be_bytes());
        self.acks += 1;
        true
    }

    /// Appends an entry (a hot rumor) if it fits.
    pub fn push_entry(&mut self, e: &EntryRef<'_>) -> bool {
        if self.block.is_none() || !writable(e) || self.entries == u16::MAX {
            return false;
        }
        let count = if self.entries_at.is_none() { 2 } else { 0 };
        if count + e.encoded_len() > self.out.room() {
            return false;
        }
        if self.entries_at.is_none() {
            self.entries_at = Some(self.out.len);
            self.out.len += 2;
        }
        self.out.put_entry(e);
        self.entries += 1;
        true
    }

    /// Bytes left for acks and entries.
    pub fn remaining(&self) -> usize {
        match self.entries_at {
            Some(_) => self.out.room(),
            None => self.out.room().saturating_sub(2),
        }
    }

    /// Entries written so far.
    pub fn entries(&self) -> usize {
        usize::from(self.entries)
    }

    /// Acks written so far.
    pub fn acks(&self) -> usize {
        usize::from(self.acks)
    }

    /// Writes counts, flags and lengths; returns the message's length, or `None`
    /// for a standalone RUMOR that would say nothing (nothing to send).
    pub fn finish(mut self) -> Option<usize> {
        if self.entries == 0 {
            self.flags &= !RUMOR_ACK_WANTED;
        }
        let empty = self.flags == 0 && self.acks == 0 && self.entries == 0;
        let Some(block) = self.block.filter(|_| !empty) else {
            if self.standalone {
                return None;
            }
            return Some(finish(self.out.buf, self.section_end));
        };
        if self.entries_at.is_none() {
            self.entries_at = Some(self.out.len);
            self.out.len += 2;
        }
        let at = self.entries_at.unwrap_or(self.out.len); // set just above
        self.out.put_u16_at(at, self.entries);
        self.out.buf[block] = self.flags;
        self.out.put_u16_at(block + 1, self.acks);
        if !self.standalone {
            self.out.buf[4] |= FLAG_RUMORS;
        }
        Some(finish(self.out.buf, self.out.len))
    }
}

// ---------------------------------------------------------------------------
// Re-encoding.

/// Encodes a decoded message again, item by item through the writers (never by
/// copying its body): a canonical message re-encodes to its very bytes. For
/// tools, fuzzing and property tests.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] when `buf` cannot hold the message.
pub fn reencode(msg: &Message<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let h = &msg.header;
    let mut plain = *h;
    plain.flags &= !FLAG_RUMORS;
    let len = match msg.body {
        Body::Section(section) => {
            let mut w = SectionWriter::new(buf, &plain)?;
            for e in section.iter() {
                if !w.push(&e) {
                    return Err(EncodeError::BufferTooSmall);
                }
            }
            match msg.rumors {
                None => w.finish(),
                Some(block) => {
                    let mut r = RumorWriter::after_section(w);
                    write_block(&mut r, &block)?;
                    r.finish().ok_or(EncodeError::BufferTooSmall)?
                }
            }
        }
        Body::Fail { id, incarnation } => super::encode_fail(buf, h, id, incarnation)?,
        Body::Digest(d) => {
            let mut w = DigestWriter::new(buf, h, d.direction(), d.start())?;
            for i in d.iter() {
                if !w.push(i.key, i.stamp, d.end().map_or(0, <[u8]>::len)) {
                    return Err(EncodeError::BufferTooSmall);
                }
            }
            w.finish(d.end())?
        }
        Body::Push(entries) => {
            let mut w = PushWriter::new(buf, h)?;
            for e in entries.iter() {
                if !w.push(&e) {
                    return Err(EncodeError::BufferTooSmall);
                }
            }
            w.finish()
        }
        Body::Pull(keys) => {
            let mut w = PullWriter::new(buf, h)?;
            for k in keys.iter() {
                if !w.push(k) {
                    return Err(EncodeError::BufferTooSmall);
                }
            }
            w.finish()
        }
        Body::Rumor(block) => {
            let mut r = RumorWriter::standalone(buf, h)?;
            write_block(&mut r, &block)?;
            r.finish().ok_or(EncodeError::BufferTooSmall)?
        }
        Body::Swim(swim) => reencode_swim(&swim, msg.rumors, buf, &plain)?,
    };
    Ok(len)
}

fn reencode_swim(
    swim: &SwimBody<'_>,
    rumors: Option<RumorBlock<'_>>,
    buf: &mut [u8],
    h: &Header,
) -> Result<usize, EncodeError> {
    let (seq, target, members) = match *swim {
        SwimBody::Nack { seq } => return encode_nack(buf, h, seq),
        SwimBody::Sync(d) => {
            let mut hashes = [0u64; 1 << MAX_SYNC_LOG2];
            for (i, slot) in hashes.iter_mut().enumerate().take(d.len()) {
                *slot = d.bucket(i);
            }
            if d.check() {
                return encode_sync_check(buf, h, d.bucket(0));
            }
            return encode_sync(buf, h, &hashes[..d.len()], d.answer());
        }
        SwimBody::Probe { seq, updates } | SwimBody::Ack { seq, updates } => (seq, None, updates),
        SwimBody::ProbeReq {
            seq,
            target,
            updates,
        } => (seq, Some(target), updates),
        SwimBody::State(members) => (0, None, members),
    };
    let mut w = MembersWriter::new(buf, h, seq, target.as_ref())?;
    for m in members.iter() {
        if !w.push(&m) {
            return Err(EncodeError::BufferTooSmall);
        }
    }
    match rumors {
        None => Ok(w.finish()),
        Some(block) => {
            let mut r = RumorWriter::after_members(w);
            write_block(&mut r, &block)?;
            r.finish().ok_or(EncodeError::BufferTooSmall)
        }
    }
}

fn write_block(r: &mut RumorWriter<'_>, block: &RumorBlock<'_>) -> Result<(), EncodeError> {
    r.set_pull(block.pull());
    r.set_ack_wanted(block.wants_ack());
    for a in block.acks() {
        if !r.push_ack(a) {
            return Err(EncodeError::BufferTooSmall);
        }
    }
    for e in block.entries().iter() {
        if !r.push_entry(&e) {
            return Err(EncodeError::BufferTooSmall);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;
    use crate::rng::mix64;
    use crate::wire::{ack_id, decode, key_id, DecodeError, MessageType, ACK_KNEW};

    fn header(kind: MessageType) -> Header {
        Header {
            kind,
            flags: 0,
            src_slot: 0,
            dst_slot: 0,
            sender: NodeId(7),
            incarnation: 1,
        }
    }

    fn e<'a>(k: &'a [u8], v: &'a [u8], version: u64) -> EntryRef<'a> {
        EntryRef {
            key: k,
            value: v,
            stamp: Stamp::new(version, NodeId(3)),
        }
    }

    #[test]
    fn push_and_pull_round_trip_at_the_size_model() {
        let mut buf = [0u8; 200];
        let mut w = PushWriter::new(&mut buf, &header(MessageType::Push)).unwrap();
        assert!(w.push(&e(b"colour", b"blue", 2)));
        assert!(w.push(&e(b"k", b"", 1)));
        assert!(!w.push(&e(b"", b"x", 1)), "empty keys are not written");
        let n = w.finish();
        assert_eq!(n, HEADER_LEN + 2 + (20 + 10) + (20 + 1));
        let m = decode(&buf[..n]).unwrap();
        let Body::Push(es) = m.body else { panic!() };
        let got: Vec<_> = es.iter().collect();
        assert_eq!(got, [e(b"colour", b"blue", 2), e(b"k", b"", 1)]);

        let mut w = PullWriter::new(&mut buf, &header(MessageType::Pull)).unwrap();
        assert!(w.push(b"a") && w.push(b"bc"));
        let n = w.finish();
        assert_eq!(n, HEADER_LEN + 2 + 3 + 4);
        let Body::Pull(keys) = decode(&buf[..n]).unwrap().body else {
            panic!()
        };
        assert_eq!(keys.iter().collect::<Vec<_>>(), [&b"a"[..], b"bc"]);
    }

    #[test]
    fn a_digest_keeps_room_for_its_end_key_and_is_validated() {
        let mut buf = [0u8; HEADER_LEN + DIGEST_FIXED + 1 + 2 * 19 + 1];
        let mut w = DigestWriter::new(
            &mut buf,
            &header(MessageType::Digest),
            Direction::Pull,
            b"a",
        )
        .unwrap();
        assert!(w.push(b"a", Stamp::new(1, NodeId(1)), 1));
        assert!(w.push(b"b", Stamp::new(1, NodeId(1)), 1));
        assert!(!w.push(b"c", Stamp::new(1, NodeId(1)), 1), "no room left");
        let n = w.finish(Some(b"c")).unwrap();
        assert_eq!(n, buf.len());
        let Body::Digest(d) = decode(&buf).unwrap().body else {
            panic!()
        };
        assert_eq!(
            (d.start(), d.end(), d.len()),
            (&b"a"[..], Some(&b"c"[..]), 2)
        );
        assert_eq!(d.direction(), Direction::Pull);
        // Swap the two items' keys: unsorted, so malformed.
        let first = HEADER_LEN + 1 + 2 + 1 + 2;
        buf[first + 18] = b'b';
        buf[first + 19 + 18] = b'a';
        assert_eq!(decode(&buf).map(|_| ()), Err(DecodeError::Malformed));
    }

    #[test]
    fn a_piggybacked_block_that_says_nothing_leaves_the_ping_plain() {
        let mut a = [0u8; 100];
        let n = SectionWriter::new(&mut a, &header(MessageType::Ping))
            .unwrap()
            .finish();
        let mut b = [0u8; 100];
        let w = SectionWriter::new(&mut b, &header(MessageType::Ping)).unwrap();
        let m = RumorWriter::after_section(w).finish().unwrap();
        assert_eq!(a[..n], b[..m]);

        let w = SectionWriter::new(&mut b, &header(MessageType::Ping)).unwrap();
        let mut r = RumorWriter::after_section(w);
        r.set_ack_wanted(true);
        assert!(r.push_ack(Ack::new(5, true)));
        assert!(r.push_entry(&e(b"k", b"v", 1)));
        assert!(!r.push_ack(Ack::new(6, false)), "acks come first");
        let m = r.finish().unwrap();
        assert_eq!(m, 26 + RUMOR_BLOCK_OVERHEAD + 8 + 22);
        let msg = decode(&b[..m]).unwrap();
        assert_eq!(msg.header.flags, FLAG_RUMORS);
        let block = msg.rumors.unwrap();
        assert!(block.wants_ack() && !block.pull());
        assert_eq!(block.acks().collect::<Vec<_>>(), [Ack::new(5, true)]);
        let mut again = [0u8; 100];
        assert_eq!(reencode(&msg, &mut again), Ok(m));
        assert_eq!(again[..m], b[..m]);

        let mut r = RumorWriter::standalone(&mut b, &header(MessageType::Rumor)).unwrap();
        r.set_ack_wanted(true);
        assert_eq!(r.finish(), None, "a RUMOR that says nothing is not sent");
    }

    #[test]
    fn ids_are_pinned() {
        assert_eq!(key_id(b""), mix64(0xcbf2_9ce4_8422_2325));
        let id = ack_id(b"k", Stamp::new(1, NodeId(2)));
        assert_eq!(id & ACK_KNEW, 0);
        assert_ne!(id, ack_id(b"k", Stamp::new(2, NodeId(2))));
    }
}
