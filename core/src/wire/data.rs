//! Epidemic data messages (DIGEST, PUSH, PULL, RUMOR) and the rumor block that a
//! PING or PONG may carry after its gossip section. See `docs/wire-format.md` §3.4.
//!
//! ```text
//! entry   = key_len:u16 value_len:u16 version:u64 origin:u64 key value   (20 + key + value)
//! DIGEST  = mode:u8 start_len:u16 start count:u16 item*count end_len:u16 end
//! item    = key_len:u16 version:u64 origin:u64 key                        (18 + key)
//! PUSH    = count:u16 entry*count
//! PULL    = count:u16 (key_len:u16 key)*count
//! RUMOR   = rumor block
//! block   = flags:u8 ack_count:u16 ack:u64*ack_count entry_count:u16 entry*entry_count
//! ```
//!
//! The sizes are exactly the size model of [`crate::epidemic::data`]
//! ([`ENTRY_OVERHEAD`], [`DIGEST_ITEM_OVERHEAD`], [`DIGEST_CHUNK_OVERHEAD`] plus a
//! one-byte mode) and of [`crate::epidemic::anti_entropy`] (a two-byte count per
//! list, two bytes per requested key). Views borrow the datagram; every length is
//! checked before it is used; counts bound loops, never allocations.

use super::membership::SectionWriter;
use super::{
    be_u16, be_u64, encode_header, finish, Body, DecodeError, EncodeError, Header, Message,
    MessageType, HEADER_LEN, MAX_DATAGRAM,
};
use crate::epidemic::data::{
    EntryRef, Stamp, DIGEST_CHUNK_OVERHEAD, DIGEST_ITEM_OVERHEAD, ENTRY_OVERHEAD,
};
use crate::epidemic::Direction;
use crate::ids::NodeId;
use crate::rng::mix64;

/// Header flag bit 1: a rumor block follows the gossip section (PING and PONG only).
pub const FLAG_RUMORS: u8 = 1 << 1;
/// Bytes of a DIGEST body beyond its range keys and items: mode, start length,
/// item count, end length.
pub const DIGEST_FIXED: usize = 1 + DIGEST_CHUNK_OVERHEAD;
/// Bytes of a PUSH or PULL body beyond its entries or keys: the count.
pub const LIST_OVERHEAD: usize = 2;
/// Bytes a requested key costs in a PULL beyond its bytes: its length.
pub const KEY_OVERHEAD: usize = 2;
/// Bytes of a rumor block with no acks and no entries: flags and two counts.
pub const RUMOR_BLOCK_OVERHEAD: usize = 5;
/// Bytes of one ack in a rumor block.
pub const ACK_LEN: usize = 8;
/// Ack bit 63: the receiver already knew the rumor (an unnecessary contact).
pub const ACK_KNEW: u64 = 1 << 63;

const MODE_PUSH: u8 = 1;
const MODE_PULL: u8 = 2;
const RUMOR_PULL: u8 = 1;
const RUMOR_ACK_WANTED: u8 = 2;
const RUMOR_FLAGS_KNOWN: u8 = RUMOR_PULL | RUMOR_ACK_WANTED;

/// The 64-bit id of a key: FNV-1a over its bytes, then the SplitMix64 finaliser.
/// Fixed by the protocol (events and observers name updates by it).
pub fn key_id(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// The 63-bit id an ack names a rumor by: the key's id mixed with the stamp.
pub fn ack_id(key: &[u8], stamp: Stamp) -> u64 {
    ack_id_of(key_id(key), stamp)
}

/// [`ack_id`] from a key id already computed.
pub fn ack_id_of(key_id: u64, stamp: Stamp) -> u64 {
    mix64(key_id ^ mix64(stamp.version ^ mix64(stamp.origin.0))) & !ACK_KNEW
}

// ---------------------------------------------------------------------------
// Views.

/// One digest item: a key and the stamp its sender holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestItemRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Its stamp at the digest's sender.
    pub stamp: Stamp,
}

/// A DIGEST body: the sender's stamps for every key it holds in `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest<'a> {
    mode: u8,
    start: &'a [u8],
    end: Option<&'a [u8]>,
    count: u16,
    items: &'a [u8],
}

impl<'a> Digest<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let mode = r.u8()?;
        if mode & !(MODE_PUSH | MODE_PULL) != 0 {
            return Err(DecodeError::ReservedBits);
        }
        if mode == 0 {
            return Err(DecodeError::Malformed);
        }
        let start_len = usize::from(r.u16()?);
        let start = r.bytes(start_len)?;
        let count = r.u16()?;
        let items_at = r.at;
        let mut last: Option<&[u8]> = None;
        for _ in 0..count {
            let key_len = usize::from(r.u16()?);
            r.bytes(16)?;
            let key = r.bytes(key_len)?;
            // Strictly increasing, non-empty, inside the range (end checked below).
            if key.is_empty() || key < start || last.is_some_and(|l| key <= l) {
                return Err(DecodeError::Malformed);
            }
            last = Some(key);
        }
        let items = &body[items_at..r.at];
        let end_len = usize::from(r.u16()?);
        let end = r.bytes(end_len)?;
        r.done()?;
        let end = match end_len {
            0 => None,
            _ if end <= start || last.is_some_and(|l| l >= end) => {
                return Err(DecodeError::Malformed)
            }
            _ => Some(end),
        };
        Ok(Digest {
            mode,
            start,
            end,
            count,
            items,
        })
    }

    /// Which way entries should travel: push (the receiver asks for what the
    /// digest holds newer), pull (the receiver sends what it holds newer), or both.
    pub fn direction(&self) -> Direction {
        match (self.mode & MODE_PUSH != 0, self.mode & MODE_PULL != 0) {
            (true, true) => Direction::PushPull,
            (false, true) => Direction::Pull,
            _ => Direction::Push,
        }
    }

    /// First key covered (inclusive); empty for the start of the key space.
    pub fn start(&self) -> &'a [u8] {
        self.start
    }

    /// First key not covered (exclusive); `None` for "to the end".
    pub fn end(&self) -> Option<&'a [u8]> {
        self.end
    }

    /// Whether `key` lies in the range.
    pub fn covers(&self, key: &[u8]) -> bool {
        key >= self.start && self.end.is_none_or(|e| key < e)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the sender holds no key in the range.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The items, in strictly increasing key order.
    pub fn iter(&self) -> DigestIter<'a> {
        DigestIter {
            left: self.count,
            r: Reader::new(self.items),
        }
    }
}

/// Iterator over a validated digest's items.
#[derive(Clone, Debug)]
pub struct DigestIter<'a> {
    left: u16,
    r: Reader<'a>,
}

impl<'a> Iterator for DigestIter<'a> {
    type Item = DigestItemRef<'a>;
    fn next(&mut self) -> Option<DigestItemRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Digest::parse checked every length; `ok()?` keeps this total anyway.
        let key_len = usize::from(self.r.u16().ok()?);
        let version = self.r.u64().ok()?;
        let origin = NodeId(self.r.u64().ok()?);
        let key = self.r.bytes(key_len).ok()?;
        Some(DigestItemRef {
            key,
            stamp: Stamp::new(version, origin),
        })
    }
}

/// A list of entries: a PUSH body, or the entries of a rumor block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entries<'a> {
    count: u16,
    bytes: &'a [u8],
}

impl<'a> Entries<'a> {
    fn parse(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let count = r.u16()?;
        let at = r.at;
        for _ in 0..count {
            read_entry(r)?;
        }
        Ok(Entries {
            count,
            bytes: &r.b[at..r.at],
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries, in order.
    pub fn iter(&self) -> EntriesIter<'a> {
        EntriesIter {
            left: self.count,
            r: Reader::new(self.bytes),
        }
    }
}

/// Iterator over validated entries.
#[derive(Clone, Debug)]
pub struct EntriesIter<'a> {
    left: u16,
    r: Reader<'a>,
}

impl<'a> Iterator for EntriesIter<'a> {
    type Item = EntryRef<'a>;
    fn next(&mut self) -> Option<EntryRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        read_entry(&mut self.r).ok()
    }
}

/// A PULL body: the keys whose entries the sender wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys<'a> {
    count: u16,
    bytes: &'a [u8],
}

impl<'a> Keys<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let count = r.u16()?;
        for _ in 0..count {
            let n = usize::from(r.u16()?);
            if r.bytes(n)?.is_empty() {
                return Err(DecodeError::Malformed);
            }
        }
        r.done()?;
        Ok(Keys {
            count,
            bytes: &body[2..],
        })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The keys, in order.
    pub fn iter(&self) -> KeysIter<'a> {
        KeysIter {
            left: self.count,
            r: Reader::new(self.bytes),
        }
    }
}

/// Iterator over a validated PULL's keys.
#[derive(Clone, Debug)]
pub struct KeysIter<'a> {
    left: u16,
    r: Reader<'a>,
}

impl<'a> Iterator for KeysIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = usize::from(self.r.u16().ok()?);
        self.r.bytes(n).ok()
    }
}

/// One ack: the rumor it answers and whether the receiver already knew it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The rumor's [`ack_id`] (63 bits).
    pub id: u64,
    /// The receiver held this update (or a newer one) already.
    pub knew: bool,
}

impl Ack {
    /// The ack for `id` (its top bit is ignored).
    pub fn new(id: u64, knew: bool) -> Self {
        Ack {
            id: id & !ACK_KNEW,
            knew,
        }
    }

    fn to_wire(self) -> u64 {
        self.id | if self.knew { ACK_KNEW } else { 0 }
    }
}

/// A rumor block: the RUMOR body, or what follows the section of a PING or PONG
/// whose header has [`FLAG_RUMORS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RumorBlock<'a> {
    flags: u8,
    ack_count: u16,
    acks: &'a [u8],
    entries: Entries<'a>,
}

impl<'a> RumorBlock<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let flags = r.u8()?;
        if flags & !RUMOR_FLAGS_KNOWN != 0 {
            return Err(DecodeError::ReservedBits);
        }
        let ack_count = r.u16()?;
        let acks = r.bytes(usize::from(ack_count) * ACK_LEN)?;
        let entries = Entries::parse(&mut r)?;
        r.done()?;
        // One spelling: a block says something, and asks for acks only of entries.
        let says_nothing = flags & RUMOR_PULL == 0 && ack_count == 0 && entries.is_empty();
        if says_nothing || (flags & RUMOR_ACK_WANTED != 0 && entries.is_empty()) {
            return Err(DecodeError::Malformed);
        }
        Ok(RumorBlock {
            flags,
            ack_count,
            acks,
            entries,
        })
    }

    /// The sender asks for the receiver's hot rumors (pull).
    pub fn pull(&self) -> bool {
        self.flags & RUMOR_PULL != 0
    }

    /// The sender wants an ack for each entry (its stop rule uses feedback).
    pub fn wants_ack(&self) -> bool {
        self.flags & RUMOR_ACK_WANTED != 0
    }

    /// Acks of rumors the receiver of this block sent earlier.
    pub fn acks(&self) -> impl Iterator<Item = Ack> + 'a {
        self.acks.chunks_exact(ACK_LEN).map(|c| {
            let w = be_u64(c, 0);
            Ack {
                id: w & !ACK_KNEW,
                knew: w & ACK_KNEW != 0,
            }
        })
    }

    /// Number of acks.
    pub fn ack_count(&self) -> usize {
        usize::from(self.ack_count)
    }

    /// The hot rumors carried, as entries.
    pub fn entries(&self) -> Entries<'a> {
        self.entries
    }
}

/// Decodes the body of a data message (types 16..=19).
pub(crate) fn decode_body(kind: MessageType, body: &[u8]) -> Result<Body<'_>, DecodeError> {
    Ok(match kind {
        MessageType::Digest => Body::Digest(Digest::parse(body)?),
        MessageType::Push => {
            let mut r = Reader::new(body);
            let entries = Entries::parse(&mut r)?;
            r.done()?;
            Body::Push(entries)
        }
        MessageType::Pull => Body::Pull(Keys::parse(body)?),
        _ => Body::Rumor(RumorBlock::parse(body)?),
    })
}

fn read_entry<'a>(r: &mut Reader<'a>) -> Result<EntryRef<'a>, DecodeError> {
    let key_len = usize::from(r.u16()?);
    let value_len = usize::from(r.u16()?);
    let version = r.u64()?;
    let origin = NodeId(r.u64()?);
    let key = r.bytes(key_len)?;
    let value = r.bytes(value_len)?;
    if key.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(EntryRef {
        key,
        value,
        stamp: Stamp::new(version, origin),
    })
}

/// A bounds-checked cursor: every read checks its length first.
#[derive(Clone, Debug)]
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Malformed)?;
        let s = self.b.get(self.at..end).ok_or(DecodeError::Malformed)?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(be_u16(self.bytes(2)?, 0))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(be_u64(self.bytes(8)?, 0))
    }

    /// Trailing bytes are malformed: every length is exact.
    fn done(&self) -> Result<(), DecodeError> {
        match self.at == self.b.len() {
            true => Ok(()),
            false => Err(DecodeError::Malformed),
        }
    }
}

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
    /// should be [`MessageType::Push`].
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
    /// Starts a RUMOR in `buf`; `header.kind` should be [`MessageType::Rumor`].
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
    };
    Ok(len)
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

// ENTRY_OVERHEAD is the size model the codec keeps: checked at compile time.
const _: () = assert!(ENTRY_OVERHEAD == 2 + 2 + 8 + 8);
const _: () = assert!(DIGEST_ITEM_OVERHEAD == 2 + 8 + 8);
const _: () = assert!(DIGEST_CHUNK_OVERHEAD == 2 + 2 + 2);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode;

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
