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
//! Encoding lives in `data_encode.rs`. Every size is defined here
//! ([`ENTRY_OVERHEAD`], [`DIGEST_ITEM_OVERHEAD`], [`DIGEST_CHUNK_OVERHEAD`] plus a
//! one-byte mode, [`LIST_OVERHEAD`], [`KEY_OVERHEAD`]); the store's byte budget
//! and the config's checks use these, never numbers of their own. Views borrow the datagram; every length is
//! checked before it is used; counts bound loops, never allocations.

use super::values::{Direction, EntryRef, Stamp};
use super::{be_u16, be_u64, Body, DecodeError, MessageType};
use crate::ids::NodeId;
use crate::rng::mix64;

/// Header flag bit 1: a rumor block follows the gossip section (PING and PONG only).
pub const FLAG_RUMORS: u8 = 1 << 1;
/// Bytes an entry costs in PUSH and in a rumor block beyond its key and value
/// (key length u16, value length u16, version u64, origin u64); the store's
/// byte budget uses the same model.
pub const ENTRY_OVERHEAD: usize = 2 + 2 + 8 + 8;
/// Bytes a digest item costs beyond its key (key length u16, version, origin).
pub const DIGEST_ITEM_OVERHEAD: usize = 2 + 8 + 8;
/// Bytes a digest chunk costs beyond its items and range keys (two range-key
/// lengths, an item count).
pub const DIGEST_CHUNK_OVERHEAD: usize = 2 + 2 + 2;
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

pub(super) const MODE_PUSH: u8 = 1;
pub(super) const MODE_PULL: u8 = 2;
pub(super) const RUMOR_PULL: u8 = 1;
pub(super) const RUMOR_ACK_WANTED: u8 = 2;
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

    pub(super) fn to_wire(self) -> u64 {
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
