//! The gossip section carried by MEET, PING and PONG.
//!
//! ```text
//! section  = count:u16 entry*count
//! entry    = id:u64 incarnation:u32 flags:u8 ping_age_ms:u32 pong_age_ms:u32
//!            port:u16 slot:u16 ip:(4 | 16 bytes, by flag bit 2)
//! ```
//! An IPv4 entry is 29 bytes, an IPv6 one 41.

use super::{
    be_u16, be_u32, be_u64, encode_header, finish, DecodeError, EncodeError, Header, HEADER_LEN,
    MAX_DATAGRAM,
};
use crate::ids::{Endpoint, Incarnation, NodeId};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Byte ranges of a section entry's fields.
mod field {
    use core::ops::Range;
    pub const ID: Range<usize> = 0..8;
    pub const INCARNATION: Range<usize> = 8..12;
    pub const FLAGS: usize = 12;
    pub const PING_AGE: Range<usize> = 13..17;
    pub const PONG_AGE: Range<usize> = 17..21;
    pub const PORT: Range<usize> = 21..23;
    pub const SLOT: Range<usize> = 23..25;
    /// The address, 4 or 16 bytes by the IPv6 flag.
    pub const IP: usize = 25;
}

/// Bytes of a section's entry count.
pub const SECTION_COUNT_LEN: usize = 2;
/// Bytes of a MEET, PING or PONG with an empty section.
pub const BARE_LEN: usize = HEADER_LEN + SECTION_COUNT_LEN;
/// Bytes of an entry before its IP address.
const ENTRY_FIXED: usize = field::IP;
/// Bytes of an entry about an IPv4 node.
pub const ENTRY_LEN_V4: usize = ENTRY_FIXED + 4;
/// Bytes of an entry about an IPv6 node.
pub const ENTRY_LEN_V6: usize = ENTRY_FIXED + 16;

const FLAG_PFAIL: u8 = 1 << 0;
const FLAG_FAIL: u8 = 1 << 1;
const FLAG_IPV6: u8 = 1 << 2;
const FLAGS_KNOWN: u8 = FLAG_PFAIL | FLAG_FAIL | FLAG_IPV6;
const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// Ping age that means "no ping in flight".
pub const NO_PING: u32 = u32::MAX;

/// What the sender believes about a node's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryFlags {
    /// The sender suspects it (its ping went unanswered for node_timeout).
    pub pfail: bool,
    /// The sender holds it failed (a quorum agreed).
    pub fail: bool,
}

impl EntryFlags {
    /// Whether the entry is a failure report (PFAIL or FAIL).
    pub fn is_failure_report(self) -> bool {
        self.pfail || self.fail
    }
}

/// One node as the sender sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GossipEntry {
    /// The node described.
    pub id: NodeId,
    /// Its incarnation as the sender knows it.
    pub incarnation: Incarnation,
    /// The sender's view of its health.
    pub flags: EntryFlags,
    /// Milliseconds since the sender's unanswered ping to it, or [`NO_PING`].
    pub ping_age_ms: u32,
    /// Milliseconds since the sender last had a PONG from it (saturating).
    pub pong_age_ms: u32,
    /// Where it listens.
    pub endpoint: Endpoint,
}

impl GossipEntry {
    /// Encoded size of this entry.
    pub fn encoded_len(&self) -> usize {
        if self.endpoint.ipv4().is_some() {
            ENTRY_LEN_V4
        } else {
            ENTRY_LEN_V6
        }
    }
}

/// A validated gossip section, borrowing the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    count: u16,
    entries: &'a [u8],
}

impl<'a> Section<'a> {
    /// Checks a section body: the count, and that every entry is whole and the
    /// entries fill the body exactly. Walks the bytes once; allocates nothing.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (section, used) = Self::parse_prefix(body)?;
        if used != body.len() {
            return Err(DecodeError::Malformed);
        }
        Ok(section)
    }

    /// Checks a section at the start of `body` (a rumor block may follow it);
    /// returns it and the bytes it takes.
    pub(crate) fn parse_prefix(body: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        if body.len() < SECTION_COUNT_LEN {
            return Err(DecodeError::Malformed);
        }
        let count = be_u16(body, 0);
        let entries = &body[SECTION_COUNT_LEN..];
        let mut at = 0;
        for _ in 0..count {
            let flags = *entries
                .get(at + field::FLAGS)
                .ok_or(DecodeError::Malformed)?;
            if flags & !FLAGS_KNOWN != 0 {
                return Err(DecodeError::ReservedBits);
            }
            let len = entry_len(flags);
            let entry = entries.get(at..at + len).ok_or(DecodeError::Malformed)?;
            // One encoding per address: IPv4 travels as 4 bytes, never v4-mapped.
            if flags & FLAG_IPV6 != 0 && entry[ENTRY_FIXED..ENTRY_FIXED + 12] == V4_MAPPED {
                return Err(DecodeError::Malformed);
            }
            at += len;
        }
        let entries = &entries[..at];
        Ok((Section { count, entries }, SECTION_COUNT_LEN + at))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries' ids alone, in order (cheaper than decoding whole entries).
    pub(crate) fn ids(&self) -> impl Iterator<Item = NodeId> + Clone + 'a {
        let mut rest = self.entries;
        (0..self.count).map_while(move |_| {
            let len = entry_len(*rest.get(field::FLAGS)?);
            let id = NodeId(be_u64(rest.get(..len)?, field::ID.start));
            rest = &rest[len..];
            Some(id)
        })
    }

    /// The entries, decoded one at a time.
    pub fn iter(&self) -> SectionIter<'a> {
        SectionIter {
            left: self.count,
            rest: self.entries,
        }
    }
}

impl<'a> IntoIterator for Section<'a> {
    type Item = GossipEntry;
    type IntoIter = SectionIter<'a>;
    fn into_iter(self) -> SectionIter<'a> {
        self.iter()
    }
}

/// Iterator over a validated section.
#[derive(Clone, Debug)]
pub struct SectionIter<'a> {
    left: u16,
    rest: &'a [u8],
}

impl Iterator for SectionIter<'_> {
    type Item = GossipEntry;

    fn next(&mut self) -> Option<GossipEntry> {
        if self.left == 0 {
            return None;
        }
        // Section::parse checked every entry's length; `get` keeps this total anyway.
        let b = self.rest;
        let flags = *b.get(field::FLAGS)?;
        let len = entry_len(flags);
        let e = b.get(..len)?;
        let ip = if flags & FLAG_IPV6 != 0 {
            let mut o = [0; 16];
            o.copy_from_slice(&e[ENTRY_FIXED..ENTRY_FIXED + 16]);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                e[ENTRY_FIXED],
                e[ENTRY_FIXED + 1],
                e[ENTRY_FIXED + 2],
                e[ENTRY_FIXED + 3],
            ))
        };
        let port = be_u16(e, field::PORT.start);
        let slot = be_u16(e, field::SLOT.start);
        self.left -= 1;
        self.rest = &b[len..];
        Some(GossipEntry {
            id: NodeId(be_u64(e, field::ID.start)),
            incarnation: be_u32(e, field::INCARNATION.start),
            flags: EntryFlags {
                pfail: flags & FLAG_PFAIL != 0,
                fail: flags & FLAG_FAIL != 0,
            },
            ping_age_ms: be_u32(e, field::PING_AGE.start),
            pong_age_ms: be_u32(e, field::PONG_AGE.start),
            endpoint: Endpoint::new(SocketAddr::new(ip, port), slot),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.left), Some(usize::from(self.left)))
    }
}

/// Streams a MEET, PING or PONG into a buffer: header, then entries while they fit.
#[derive(Debug)]
pub struct SectionWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    count: u16,
}

impl<'b> SectionWriter<'b> {
    /// Starts a message in `buf`; its length is the size limit.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when even an empty section does not fit.
    pub fn new(buf: &'b mut [u8], header: &Header) -> Result<Self, EncodeError> {
        if buf.len() < BARE_LEN {
            return Err(EncodeError::BufferTooSmall);
        }
        let len = encode_header(buf, header)? + SECTION_COUNT_LEN;
        let buf = match buf.len() > MAX_DATAGRAM {
            true => &mut buf[..MAX_DATAGRAM],
            false => buf,
        };
        Ok(SectionWriter { buf, len, count: 0 })
    }

    /// Bytes left for entries.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Entries written so far.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Appends `e` if it fits; returns whether it did.
    pub fn push(&mut self, e: &GossipEntry) -> bool {
        let n = e.encoded_len();
        if n > self.remaining() || self.count == u16::MAX {
            return false;
        }
        let out = &mut self.buf[self.len..self.len + n];
        out[field::ID].copy_from_slice(&e.id.0.to_be_bytes());
        out[field::INCARNATION].copy_from_slice(&e.incarnation.to_be_bytes());
        let v4 = e.endpoint.ipv4();
        out[field::FLAGS] = (u8::from(e.flags.pfail) * FLAG_PFAIL)
            | (u8::from(e.flags.fail) * FLAG_FAIL)
            | (u8::from(v4.is_none()) * FLAG_IPV6);
        out[field::PING_AGE].copy_from_slice(&e.ping_age_ms.to_be_bytes());
        out[field::PONG_AGE].copy_from_slice(&e.pong_age_ms.to_be_bytes());
        out[field::PORT].copy_from_slice(&e.endpoint.port().to_be_bytes());
        out[field::SLOT].copy_from_slice(&e.endpoint.slot().to_be_bytes());
        match v4 {
            Some(ip) => out[ENTRY_FIXED..].copy_from_slice(&ip.octets()),
            None => out[ENTRY_FIXED..].copy_from_slice(&e.endpoint.ip_octets()),
        }
        self.len += n;
        self.count += 1;
        true
    }

    /// Writes the entry count; hands back the buffer and the length so far, for
    /// a rumor block to follow.
    pub(crate) fn into_raw(self) -> (&'b mut [u8], usize) {
        let at = HEADER_LEN;
        self.buf[at..at + SECTION_COUNT_LEN].copy_from_slice(&self.count.to_be_bytes());
        (self.buf, self.len)
    }

    /// Writes the entry count and body length; returns the message's length.
    pub fn finish(self) -> usize {
        let at = HEADER_LEN;
        self.buf[at..at + SECTION_COUNT_LEN].copy_from_slice(&self.count.to_be_bytes());
        finish(self.buf, self.len)
    }
}

fn entry_len(flags: u8) -> usize {
    if flags & FLAG_IPV6 != 0 {
        ENTRY_LEN_V6
    } else {
        ENTRY_LEN_V4
    }
}
