//! Wire format v1: one datagram, one message. See `docs/wire-format.md`.
//!
//! `membership.rs` holds the gossip section of MEET, PING and PONG; `data.rs` the
//! epidemic data messages (DIGEST, PUSH, PULL, RUMOR) and the rumor block a PING
//! or PONG may carry after its section.
//!
//! Decoding borrows the datagram and checks every length before it reads; no count
//! in a header ever sizes an allocation (decoding allocates nothing at all).
//! Encoding writes into a caller's `&mut [u8]` and never past its end.
//! All integers are big-endian.
//!
//! The bottom layer: it imports only ids ([`crate::ids`]) and the hash finaliser
//! ([`crate::rng::mix64`], for [`key_id`]), and every byte size and offset of
//! the format is defined here (field ranges for the header and the section
//! entry; `*_LEN` and `*_OVERHEAD` for the rest), so that the store's budget,
//! the config's checks and the node's section sizing name these constants and
//! never numbers of their own. [`peek_dst_slot`] is the one read without a
//! decode, for a host that demultiplexes a shared socket.

mod data;
mod data_encode;
mod membership;
mod swim;
mod values;

pub use data::{
    ack_id, ack_id_of, key_id, Ack, Digest, DigestItemRef, DigestIter, Entries, EntriesIter, Keys,
    KeysIter, RumorBlock, ACK_KNEW, ACK_LEN, DIGEST_CHUNK_OVERHEAD, DIGEST_FIXED,
    DIGEST_ITEM_OVERHEAD, ENTRY_OVERHEAD, FLAG_RUMORS, KEY_OVERHEAD, LIST_OVERHEAD,
    RUMOR_BLOCK_OVERHEAD,
};
pub use data_encode::{reencode, DigestWriter, PullWriter, PushWriter, RumorWriter};
pub use membership::{
    EntryFlags, GossipEntry, Section, SectionIter, SectionWriter, BARE_LEN, ENTRY_LEN_V4,
    ENTRY_LEN_V6, NO_PING, SECTION_COUNT_LEN,
};
pub use swim::{
    encode_nack, encode_sync, encode_sync_check, Health, Member, Members, MembersWriter, SwimBody,
    SyncDigest, MAX_SYNC_LOG2, MEMBERS_COUNT_LEN, MEMBER_LEN_V4, MEMBER_LEN_V6, NACK_LEN,
    PROBE_LEN, SEQ_LEN, SUSPECTER_LEN, SYNC_BUCKET_LEN,
};
pub use values::{Direction, EntryRef, Stamp};

use crate::ids::{Incarnation, NodeId};

/// First two bytes of every datagram: "GS".
pub const MAGIC: u16 = 0x4753;
/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Byte ranges of the fixed header's fields (`docs/wire-format.md`).
mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const KIND: usize = 3;
    pub const FLAGS: usize = 4;
    pub const RESERVED: usize = 5;
    pub const SRC_SLOT: Range<usize> = 6..8;
    pub const DST_SLOT: Range<usize> = 8..10;
    pub const SENDER: Range<usize> = 10..18;
    pub const INCARNATION: Range<usize> = 18..22;
    pub const BODY_LEN: Range<usize> = 22..24;
    /// FAIL's body, after the header.
    pub const FAIL_ID: Range<usize> = 0..8;
    pub const FAIL_INCARNATION: Range<usize> = 8..12;
}

/// Offsets of the header's flags and sender, for the trailer's code (`crate::auth`).
pub(crate) const FLAGS_AT: usize = field::FLAGS;
pub(crate) const SENDER_AT: usize = field::SENDER.start;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = field::BODY_LEN.end;
/// Bytes in the FAIL body: the failed node's id and incarnation.
pub const FAIL_BODY_LEN: usize = field::FAIL_INCARNATION.end;
/// Largest datagram the format can describe (UDP's limit over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;

/// What a datagram carries.
///
/// Codes 5..=10 are the swim profile's (docs/design/swim.md), 11..=15 are
/// reserved for more membership messages; 16..=31 belong to the epidemic data
/// messages, of which 16..=19 are defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Join request: "add me"; answered with PONG.
    Meet = 1,
    /// Liveness probe carrying the sender's view; answered with PONG.
    Ping = 2,
    /// Answer to PING and MEET; proves the sender alive.
    Pong = 3,
    /// "This node has failed": broadcast once a quorum agrees.
    Fail = 4,
    /// swim: a direct probe, answered by ACK.
    Probe = 5,
    /// swim: the answer to a PROBE, or one relayed for a PROBE_REQ.
    Ack = 6,
    /// swim: "probe this member for me" (an indirect probe).
    ProbeReq = 7,
    /// swim: "the member you asked me to probe did not answer".
    Nack = 8,
    /// swim: a membership digest (anti-entropy).
    Sync = 9,
    /// swim: members of the digest buckets that differed.
    State = 10,
    /// Anti-entropy: the sender's stamps for one key range; opens an exchange.
    Digest = 16,
    /// Entries the receiver lacks (an answer to a DIGEST or a PULL).
    Push = 17,
    /// Keys whose entries the sender wants (an answer to a push DIGEST).
    Pull = 18,
    /// A standalone rumor block: hot rumors, acks, a pull request.
    Rumor = 19,
}

impl MessageType {
    /// Every type this version decodes, in code order.
    pub const ALL: [MessageType; 14] = [
        MessageType::Meet,
        MessageType::Ping,
        MessageType::Pong,
        MessageType::Fail,
        MessageType::Probe,
        MessageType::Ack,
        MessageType::ProbeReq,
        MessageType::Nack,
        MessageType::Sync,
        MessageType::State,
        MessageType::Digest,
        MessageType::Push,
        MessageType::Pull,
        MessageType::Rumor,
    ];
    /// Number of type slots counted in statistics (codes 0..COUNT): counters
    /// are indexed by wire code, so this is the highest code plus one.
    pub const COUNT: usize = 20;

    /// The type for a wire code, if this version knows it.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => MessageType::Meet,
            2 => MessageType::Ping,
            3 => MessageType::Pong,
            4 => MessageType::Fail,
            5 => MessageType::Probe,
            6 => MessageType::Ack,
            7 => MessageType::ProbeReq,
            8 => MessageType::Nack,
            9 => MessageType::Sync,
            10 => MessageType::State,
            16 => MessageType::Digest,
            17 => MessageType::Push,
            18 => MessageType::Pull,
            19 => MessageType::Rumor,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Lower-case name, as used in metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Meet => "meet",
            MessageType::Ping => "ping",
            MessageType::Pong => "pong",
            MessageType::Fail => "fail",
            MessageType::Probe => "probe",
            MessageType::Ack => "ack",
            MessageType::ProbeReq => "probe_req",
            MessageType::Nack => "nack",
            MessageType::Sync => "sync",
            MessageType::State => "state",
            MessageType::Digest => "digest",
            MessageType::Push => "push",
            MessageType::Pull => "pull",
            MessageType::Rumor => "rumor",
        }
    }

    /// Whether this is an epidemic data message (codes 16..=31).
    pub fn is_data(self) -> bool {
        self.code() >= 16
    }

    /// Whether this is one of the swim profile's messages (codes 5..=10).
    pub fn is_swim(self) -> bool {
        (5..=10).contains(&self.code())
    }

    /// Whether a rumor block may follow the body (header flag bit 1).
    pub fn carries_rumors(self) -> bool {
        matches!(
            self,
            MessageType::Ping
                | MessageType::Pong
                | MessageType::Probe
                | MessageType::Ack
                | MessageType::ProbeReq
                | MessageType::State
        )
    }

    /// Whether the body is a gossip section (MEET, PING, PONG).
    pub fn has_section(self) -> bool {
        matches!(
            self,
            MessageType::Meet | MessageType::Ping | MessageType::Pong
        )
    }
}

/// Header flag bit 0: an authentication trailer ([`TRAILER_LEN`] bytes) follows
/// the body, made with a cluster key (`crate::auth`). The body length does not
/// count it: a receiver checks and strips the trailer before it decodes.
pub const FLAG_AUTH: u8 = 0x01;
/// Header flag bit 2, with [`FLAG_AUTH`] only: the body is encrypted too.
pub const FLAG_SEALED: u8 = 0x04;
/// Header flag bit 3, MEET, PING and PONG only: a join cookie
/// ([`COOKIE_LEN`] bytes, `crate::cookie`) follows the body, before any
/// authentication trailer; the body length does not count it.
pub const FLAG_COOKIE: u8 = 0x08;
/// Bytes of a join cookie.
pub const COOKIE_LEN: usize = 16;

/// Header flag bits [`decode`] reads: [`FLAG_RUMORS`] (PING and PONG only: a
/// rumor block follows the gossip section). [`FLAG_AUTH`], [`FLAG_SEALED`]
/// and [`FLAG_COOKIE`] are read by [`decode_opened`] alone, once what they
/// announce was checked and stripped. A datagram
/// with any other bit set is refused, so that a later version can give them
/// meaning without being misread.
pub const FLAGS_KNOWN: u8 = FLAG_RUMORS;

/// Byte ranges of the authentication trailer (`docs/wire-format.md` §8), from
/// its start: key id, the sender's start epoch, its datagram counter, the tag.
pub mod trailer {
    use core::ops::Range;
    /// Which key of the cluster's keyring made the tag.
    pub const KEY_ID: usize = 0;
    /// The sender's epoch: chosen once per start of the node.
    pub const EPOCH: Range<usize> = 1..9;
    /// The sender's datagram counter within its epoch.
    pub const COUNTER: Range<usize> = 9..17;
    /// The AEAD tag.
    pub const TAG: Range<usize> = 17..33;
}
/// Bytes of the authentication trailer a cluster key adds to every datagram.
pub const TRAILER_LEN: usize = trailer::TAG.end;

/// The fixed header, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub kind: MessageType,
    /// Message flags (see [`FLAGS_KNOWN`]).
    pub flags: u8,
    /// Sender's slot behind its socket.
    pub src_slot: u16,
    /// Receiver's slot behind its socket.
    pub dst_slot: u16,
    /// Sender's node id.
    pub sender: NodeId,
    /// Sender's incarnation.
    pub incarnation: Incarnation,
}

/// A decoded datagram; the body borrows the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The fixed header.
    pub header: Header,
    /// The body, by type.
    pub body: Body<'a>,
    /// PING, PONG, PROBE, ACK, PROBE_REQ or STATE with [`FLAG_RUMORS`]: the
    /// rumor block after the section or the members.
    pub rumors: Option<RumorBlock<'a>>,
}

/// A message body. Non-exhaustive: codes 20..=31 are set aside for more data
/// messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body<'a> {
    /// MEET, PING or PONG: a gossip section (possibly empty).
    Section(Section<'a>),
    /// FAIL: which node failed, in which incarnation.
    Fail {
        /// The failed node.
        id: NodeId,
        /// Its incarnation as the sender knew it.
        incarnation: Incarnation,
    },
    /// DIGEST: the sender's stamps for one key range.
    Digest(Digest<'a>),
    /// PUSH: entries.
    Push(Entries<'a>),
    /// PULL: keys wanted.
    Pull(Keys<'a>),
    /// RUMOR: a standalone rumor block.
    Rumor(RumorBlock<'a>),
    /// One of the swim profile's messages.
    Swim(SwimBody<'a>),
}

/// Why a datagram was refused. Decoding changes no state, so every variant means
/// "dropped, nothing else happened".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than the fixed header.
    TooShort,
    /// The magic number is wrong: not ours.
    BadMagic,
    /// A version this build does not read.
    UnsupportedVersion,
    /// A type code this version does not know (or reserves).
    UnknownType,
    /// A reserved flag bit or reserved byte is set.
    ReservedBits,
    /// The header's body length disagrees with the datagram's length.
    BodyLength,
    /// The body's own structure (entry count, entry lengths) does not add up.
    Malformed,
    /// Longer than [`MAX_DATAGRAM`]: no encoder writes it, so it has no canonical form.
    TooLong,
}

impl DecodeError {
    /// Number of variants, for counters indexed by [`DecodeError::index`].
    pub const COUNT: usize = 8;
    /// Every variant, in index order.
    pub const ALL: [DecodeError; Self::COUNT] = [
        DecodeError::TooShort,
        DecodeError::BadMagic,
        DecodeError::UnsupportedVersion,
        DecodeError::UnknownType,
        DecodeError::ReservedBits,
        DecodeError::BodyLength,
        DecodeError::Malformed,
        DecodeError::TooLong,
    ];

    /// A dense index for counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Snake-case name, as used in metrics.
    pub fn name(self) -> &'static str {
        match self {
            DecodeError::TooShort => "too_short",
            DecodeError::BadMagic => "bad_magic",
            DecodeError::UnsupportedVersion => "unsupported_version",
            DecodeError::UnknownType => "unknown_type",
            DecodeError::ReservedBits => "reserved_bits",
            DecodeError::BodyLength => "body_length",
            DecodeError::Malformed => "malformed",
            DecodeError::TooLong => "too_long",
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::error::Error for DecodeError {}

/// Why a message could not be encoded. Nothing is written that a caller should send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The buffer cannot hold even the fixed part of the message.
    BufferTooSmall,
    /// [`encode`] writes membership messages only; data messages have writers.
    NotMembership,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::BufferTooSmall => f.write_str("buffer too small for the message"),
            EncodeError::NotMembership => f.write_str("not a MEET, PING, PONG or FAIL"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Decodes one datagram, borrowing it.
///
/// # Errors
/// A [`DecodeError`] for anything that is not a well-formed v1 message; any input
/// whatsoever gives `Ok` or an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    decode_with(bytes, false)
}

/// Decodes a datagram whose authentication trailer and cookie were checked
/// and stripped (`bytes` is header and plain body): as [`decode`], except
/// that [`FLAG_AUTH`], [`FLAG_SEALED`] (with `AUTH`) and [`FLAG_COOKIE`]
/// (MEET, PING, PONG) may be set.
///
/// # Errors
/// As [`decode`].
pub fn decode_opened(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    decode_with(bytes, true)
}

fn decode_with(bytes: &[u8], opened: bool) -> Result<Message<'_>, DecodeError> {
    let (header, body) = header_with(bytes, opened)?;
    let mut rumors = None;
    let body = match header.kind {
        MessageType::Meet | MessageType::Ping | MessageType::Pong => {
            if header.flags & FLAG_RUMORS != 0 {
                let (section, used) = Section::parse_prefix(body)?;
                rumors = Some(RumorBlock::parse(&body[used..])?);
                Body::Section(section)
            } else {
                Body::Section(Section::parse(body)?)
            }
        }
        MessageType::Fail => {
            if body.len() != FAIL_BODY_LEN {
                return Err(DecodeError::Malformed);
            }
            Body::Fail {
                id: NodeId(be_u64(body, field::FAIL_ID.start)),
                incarnation: be_u32(body, field::FAIL_INCARNATION.start),
            }
        }
        kind if kind.is_swim() => {
            let (swim, rest) = swim::decode_body(kind, body)?;
            if header.flags & FLAG_RUMORS != 0 {
                rumors = Some(RumorBlock::parse(rest)?);
            } else if !rest.is_empty() {
                return Err(DecodeError::Malformed);
            }
            Body::Swim(swim)
        }
        kind => data::decode_body(kind, body)?,
    };
    Ok(Message {
        header,
        body,
        rumors,
    })
}

/// Decodes and checks the fixed header; returns it and the body bytes.
///
/// # Errors
/// As [`decode`], for the header's part.
pub fn decode_header(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    header_with(bytes, false)
}

fn header_with(bytes: &[u8], opened: bool) -> Result<(Header, &[u8]), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort);
    }
    // The header's u16 body length could describe up to 24 + 65,535 bytes, but the
    // encoders stop at MAX_DATAGRAM; refusing the rest keeps decoding canonical.
    if bytes.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLong);
    }
    if be_u16(bytes, field::MAGIC.start) != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes[field::VERSION] != VERSION {
        return Err(DecodeError::UnsupportedVersion);
    }
    let kind = MessageType::from_code(bytes[field::KIND]).ok_or(DecodeError::UnknownType)?;
    let flags = bytes[field::FLAGS];
    let known = match opened {
        true => FLAGS_KNOWN | FLAG_AUTH | FLAG_SEALED | FLAG_COOKIE,
        false => FLAGS_KNOWN,
    };
    let sealed_alone = flags & (FLAG_AUTH | FLAG_SEALED) == FLAG_SEALED;
    if flags & !known != 0 || bytes[field::RESERVED] != 0 || sealed_alone {
        return Err(DecodeError::ReservedBits);
    }
    // The rumor flag means something on PING, PONG, PROBE, ACK, PROBE_REQ
    // and STATE only, a
    // cookie on MEET, PING and PONG.
    if flags & FLAG_RUMORS != 0 && !kind.carries_rumors() {
        return Err(DecodeError::ReservedBits);
    }
    if flags & FLAG_COOKIE != 0 && !kind.has_section() {
        return Err(DecodeError::ReservedBits);
    }
    let body_len = usize::from(be_u16(bytes, field::BODY_LEN.start));
    let body = &bytes[HEADER_LEN..];
    if body.len() != body_len {
        return Err(DecodeError::BodyLength);
    }
    let header = Header {
        kind,
        flags,
        src_slot: be_u16(bytes, field::SRC_SLOT.start),
        dst_slot: be_u16(bytes, field::DST_SLOT.start),
        sender: NodeId(be_u64(bytes, field::SENDER.start)),
        incarnation: be_u32(bytes, field::INCARNATION.start),
    };
    Ok((header, body))
}

/// Splits the join cookie off a message whose header has [`FLAG_COOKIE`]
/// (authentication trailer already stripped): the message without it, and
/// the cookie. Without the flag, or too short to hold one: as it is, none.
pub fn split_cookie(bytes: &[u8]) -> (&[u8], Option<&[u8]>) {
    match bytes.get(field::FLAGS) {
        Some(f) if f & FLAG_COOKIE != 0 && bytes.len() >= HEADER_LEN + COOKIE_LEN => {
            let (m, c) = bytes.split_at(bytes.len() - COOKIE_LEN);
            (m, Some(c))
        }
        _ => (bytes, None),
    }
}

/// The header's `dst_slot`, read without decoding anything else: how a host
/// sharing one socket among many nodes picks the node a datagram is for.
/// `None` when the datagram is too short to hold the field; nothing else is
/// checked (the chosen node decodes the datagram and counts what is wrong).
pub fn peek_dst_slot(bytes: &[u8]) -> Option<u16> {
    let b = bytes.get(field::DST_SLOT)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Writes the fixed header with a zero body length; [`finish`] patches it.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] when `buf` is shorter than [`HEADER_LEN`].
pub fn encode_header(buf: &mut [u8], header: &Header) -> Result<usize, EncodeError> {
    let out = buf
        .get_mut(..HEADER_LEN)
        .ok_or(EncodeError::BufferTooSmall)?;
    out[field::MAGIC].copy_from_slice(&MAGIC.to_be_bytes());
    out[field::VERSION] = VERSION;
    out[field::KIND] = header.kind.code();
    out[field::FLAGS] = header.flags;
    out[field::RESERVED] = 0;
    out[field::SRC_SLOT].copy_from_slice(&header.src_slot.to_be_bytes());
    out[field::DST_SLOT].copy_from_slice(&header.dst_slot.to_be_bytes());
    out[field::SENDER].copy_from_slice(&header.sender.0.to_be_bytes());
    out[field::INCARNATION].copy_from_slice(&header.incarnation.to_be_bytes());
    out[field::BODY_LEN].copy_from_slice(&0u16.to_be_bytes());
    Ok(HEADER_LEN)
}

/// Sets the header's body length for a message of `len` bytes in all; returns `len`.
pub fn finish(buf: &mut [u8], len: usize) -> usize {
    debug_assert!((HEADER_LEN..=MAX_DATAGRAM).contains(&len));
    let body = (len - HEADER_LEN) as u16;
    buf[field::BODY_LEN].copy_from_slice(&body.to_be_bytes());
    len
}

/// Encodes a FAIL message.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] when it does not fit (it needs 36 bytes).
pub fn encode_fail(
    buf: &mut [u8],
    header: &Header,
    id: NodeId,
    incarnation: Incarnation,
) -> Result<usize, EncodeError> {
    let len = HEADER_LEN + FAIL_BODY_LEN;
    if buf.len() < len {
        return Err(EncodeError::BufferTooSmall);
    }
    encode_header(buf, header)?;
    let body = &mut buf[HEADER_LEN..len];
    body[field::FAIL_ID].copy_from_slice(&id.0.to_be_bytes());
    body[field::FAIL_INCARNATION].copy_from_slice(&incarnation.to_be_bytes());
    Ok(finish(buf, len))
}

/// Encodes a membership message from its parts (tests, tools, vectors). The
/// node itself streams sections with [`SectionWriter`] instead; data messages
/// have writers of their own ([`DigestWriter`], [`PushWriter`], [`PullWriter`],
/// [`RumorWriter`]).
///
/// Entries that do not fit are left out, as the node does: a section shrinks to fit.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] when even the empty message does not fit;
/// [`EncodeError::NotMembership`] for a data message type.
pub fn encode(
    buf: &mut [u8],
    header: &Header,
    entries: &[GossipEntry],
    fail: Option<(NodeId, Incarnation)>,
) -> Result<usize, EncodeError> {
    match header.kind {
        MessageType::Fail => {
            let (id, inc) = fail.unwrap_or_default();
            encode_fail(buf, header, id, inc)
        }
        kind if kind.is_data() => Err(EncodeError::NotMembership),
        _ => {
            // A rumor block is written by RumorWriter; here the flag would lie.
            let header = &Header {
                flags: header.flags & !FLAG_RUMORS,
                ..*header
            };
            let mut w = SectionWriter::new(buf, header)?;
            for e in entries {
                if !w.push(e) {
                    break;
                }
            }
            Ok(w.finish())
        }
    }
}

// Readers take offsets the caller has bounds-checked; slicing panics otherwise,
// which the decoder's length checks rule out.
pub(crate) fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_dst_slot_reads_the_header_field_and_nothing_else() {
        let header = Header {
            kind: MessageType::Ping,
            flags: 0,
            src_slot: 7,
            dst_slot: 0x0201,
            sender: NodeId(9),
            incarnation: 3,
        };
        let mut buf = [0u8; 64];
        let len = encode(&mut buf, &header, &[], None).unwrap();
        assert_eq!(peek_dst_slot(&buf[..len]), Some(0x0201));
        assert_eq!(decode(&buf[..len]).unwrap().header.dst_slot, 0x0201);
        // Too short for the field: none; long enough but not a message: read anyway.
        assert_eq!(peek_dst_slot(&buf[..9]), None);
        assert_eq!(peek_dst_slot(&[0xff; 10]), Some(0xffff));
        assert_eq!(HEADER_LEN, 24);
        assert_eq!(BARE_LEN, 26);
    }
}
