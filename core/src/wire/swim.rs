//! The swim profile's messages (docs/design/swim.md §4): PROBE, ACK,
//! PROBE_REQ, NACK, SYNC and STATE.
//!
//! ```text
//! member    = id:u64 life:u32 refute:u32 state:u8 port:u16 slot:u16 ip:(4 | 16)
//!             [suspecter:u64, when suspect]
//! members   = count:u16 member*count
//! PROBE     = seq:u32 members          (membership updates riding along)
//! ACK       = seq:u32 members
//! PROBE_REQ = seq:u32 target:member members
//! NACK      = seq:u32
//! SYNC      = mode:u8 hash:u64 * 2^log2   (mode: bits 0-3 log2 <= MAX_SYNC_LOG2,
//!                                          bit 7 answer, bit 6 check (log2 0,
//!                                          not an answer), bits 4-5 reserved)
//! STATE     = members
//! ```
//! `state`: bits 0-1 health (0 alive, 1 suspect, 2 dead; 3 is malformed), bit 2
//! IPv6, bits 3-7 reserved (must be 0). A member about an IPv4 node is 25
//! bytes, an IPv6 one 37; a suspect one carries 8 more, the id of the member
//! whose own probe raised the suspicion, so that receivers count independent
//! suspicions (Lifeguard), not the gossip that forwarded one. PROBE, ACK,
//! PROBE_REQ and STATE may carry a rumor block (user updates) after their
//! members (header flag bit 1), as PING and PONG do after their section.

use super::{be_u16, be_u32, be_u64, encode_header, finish, DecodeError, EncodeError, Header};
use super::{HEADER_LEN, MAX_DATAGRAM};
use crate::ids::{Endpoint, Incarnation, NodeId};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Byte ranges of a member record's fields.
mod field {
    use core::ops::Range;
    pub const ID: Range<usize> = 0..8;
    pub const LIFE: Range<usize> = 8..12;
    pub const REFUTE: Range<usize> = 12..16;
    pub const STATE: usize = 16;
    pub const PORT: Range<usize> = 17..19;
    pub const SLOT: Range<usize> = 19..21;
    /// The address, 4 or 16 bytes by the IPv6 bit.
    pub const IP: usize = 21;
}

/// Bytes of a sequence number.
pub const SEQ_LEN: usize = 4;
/// Bytes of a member list's count.
pub const MEMBERS_COUNT_LEN: usize = 2;
/// Bytes of a member record about an IPv4 node.
pub const MEMBER_LEN_V4: usize = field::IP + 4;
/// Bytes of a member record about an IPv6 node.
pub const MEMBER_LEN_V6: usize = field::IP + 16;
/// Bytes a suspect member record adds: the suspecter's id.
pub const SUSPECTER_LEN: usize = 8;
/// Bytes of a PROBE or ACK carrying nothing: the steady state's datagram.
pub const PROBE_LEN: usize = HEADER_LEN + SEQ_LEN + MEMBERS_COUNT_LEN;
/// Bytes of a NACK.
pub const NACK_LEN: usize = HEADER_LEN + SEQ_LEN;
/// Bytes a SYNC's bucket hash takes.
pub const SYNC_BUCKET_LEN: usize = 8;
/// Most buckets a SYNC carries, as log2: 2^12 × 8 bytes = 32 KiB, inside
/// [`MAX_DATAGRAM`].
pub const MAX_SYNC_LOG2: u8 = 12;

const SYNC_LOG2_MASK: u8 = 0x0f;
const SYNC_ANSWER: u8 = 0x80;
const SYNC_CHECK: u8 = 0x40;
const HEALTH_MASK: u8 = 0b11;
const STATE_IPV6: u8 = 1 << 2;
const STATE_KNOWN: u8 = HEALTH_MASK | STATE_IPV6;

/// What a member record says of the member's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// Answering.
    Alive = 0,
    /// Suspected by someone; refutable by the member itself.
    Suspect = 1,
    /// Declared dead (a suspicion that outlived its timeout).
    Dead = 2,
}

/// One member as the sender knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// The member.
    pub id: NodeId,
    /// Its life (the header's incarnation: bumped on restart).
    pub life: Incarnation,
    /// Within a life, how often it refuted a suspicion.
    pub refute: u32,
    /// Its health as the sender knows it.
    pub health: Health,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// When suspect: the member whose own probe raised the suspicion
    /// (ignored, and not sent, for the other healths).
    pub suspecter: NodeId,
}

impl Member {
    /// Encoded size.
    pub fn encoded_len(&self) -> usize {
        let addr = match self.endpoint.ipv4() {
            Some(_) => MEMBER_LEN_V4,
            None => MEMBER_LEN_V6,
        };
        match self.health {
            Health::Suspect => addr + SUSPECTER_LEN,
            _ => addr,
        }
    }

    /// Writes the record into `out`, which holds exactly `encoded_len` bytes.
    fn write(&self, out: &mut [u8]) {
        out[field::ID].copy_from_slice(&self.id.0.to_be_bytes());
        out[field::LIFE].copy_from_slice(&self.life.to_be_bytes());
        out[field::REFUTE].copy_from_slice(&self.refute.to_be_bytes());
        let v4 = self.endpoint.ipv4();
        out[field::STATE] = self.health as u8 | (u8::from(v4.is_none()) * STATE_IPV6);
        out[field::PORT].copy_from_slice(&self.endpoint.port().to_be_bytes());
        out[field::SLOT].copy_from_slice(&self.endpoint.slot().to_be_bytes());
        let end = match v4 {
            Some(ip) => {
                out[field::IP..field::IP + 4].copy_from_slice(&ip.octets());
                field::IP + 4
            }
            None => {
                out[field::IP..field::IP + 16].copy_from_slice(&self.endpoint.ip_octets());
                field::IP + 16
            }
        };
        if self.health == Health::Suspect {
            out[end..end + SUSPECTER_LEN].copy_from_slice(&self.suspecter.0.to_be_bytes());
        }
    }

    /// Reads a record `check_member` accepted.
    fn read(e: &[u8]) -> Member {
        let state = e[field::STATE];
        let (ip, end) = if state & STATE_IPV6 != 0 {
            let mut o = [0; 16];
            o.copy_from_slice(&e[field::IP..field::IP + 16]);
            (IpAddr::V6(Ipv6Addr::from(o)), field::IP + 16)
        } else {
            let o = &e[field::IP..field::IP + 4];
            (
                IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3])),
                field::IP + 4,
            )
        };
        let health = match state & HEALTH_MASK {
            0 => Health::Alive,
            1 => Health::Suspect,
            _ => Health::Dead,
        };
        Member {
            id: NodeId(be_u64(e, field::ID.start)),
            life: be_u32(e, field::LIFE.start),
            refute: be_u32(e, field::REFUTE.start),
            health,
            endpoint: Endpoint::new(
                SocketAddr::new(ip, be_u16(e, field::PORT.start)),
                be_u16(e, field::SLOT.start),
            ),
            suspecter: match health {
                Health::Suspect => NodeId(be_u64(e, end)),
                _ => NodeId(0),
            },
        }
    }
}

/// Checks one member record at the start of `b`; returns its length.
fn check_member(b: &[u8]) -> Result<usize, DecodeError> {
    let state = *b.get(field::STATE).ok_or(DecodeError::Malformed)?;
    if state & !STATE_KNOWN != 0 {
        return Err(DecodeError::ReservedBits);
    }
    if state & HEALTH_MASK == HEALTH_MASK {
        return Err(DecodeError::Malformed);
    }
    let addr = match state & STATE_IPV6 {
        0 => MEMBER_LEN_V4,
        _ => MEMBER_LEN_V6,
    };
    let len = match state & HEALTH_MASK {
        1 => addr + SUSPECTER_LEN,
        _ => addr,
    };
    let e = b.get(..len).ok_or(DecodeError::Malformed)?;
    // One encoding per address: IPv4 travels as 4 bytes, never v4-mapped.
    if state & STATE_IPV6 != 0 && e[field::IP..field::IP + 12] == V4_MAPPED {
        return Err(DecodeError::Malformed);
    }
    Ok(len)
}

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// A validated member list, borrowing the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Members<'a> {
    count: u16,
    bytes: &'a [u8],
}

impl<'a> Members<'a> {
    /// Checks a member list at the start of `body`; returns it and the bytes
    /// it takes. Walks the bytes once; allocates nothing.
    pub(crate) fn parse_prefix(body: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        let count = body
            .get(..MEMBERS_COUNT_LEN)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(DecodeError::Malformed)?;
        let rest = &body[MEMBERS_COUNT_LEN..];
        let mut at = 0;
        for _ in 0..count {
            at += check_member(&rest[at..])?;
        }
        Ok((
            Members {
                count,
                bytes: &rest[..at],
            },
            MEMBERS_COUNT_LEN + at,
        ))
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The members, decoded one at a time.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Member> + Clone + 'a {
        let mut rest = self.bytes;
        (0..usize::from(self.count)).map(move |_| {
            // parse_prefix checked every record; the read cannot fall short.
            let len = check_member(rest).unwrap_or(rest.len());
            let m = Member::read(rest);
            rest = &rest[len..];
            m
        })
    }
}

/// A SYNC's digest: the sender's membership hashed into 2^log2 buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncDigest<'a> {
    log2: u8,
    answer: bool,
    check: bool,
    hashes: &'a [u8],
}

impl<'a> SyncDigest<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (&mode, hashes) = body.split_first().ok_or(DecodeError::Malformed)?;
        if mode & !(SYNC_LOG2_MASK | SYNC_ANSWER | SYNC_CHECK) != 0 {
            return Err(DecodeError::ReservedBits);
        }
        let log2 = mode & SYNC_LOG2_MASK;
        if log2 > MAX_SYNC_LOG2 || hashes.len() != SYNC_BUCKET_LEN << log2 {
            return Err(DecodeError::Malformed);
        }
        let (answer, check) = (mode & SYNC_ANSWER != 0, mode & SYNC_CHECK != 0);
        if check && (answer || log2 != 0) {
            return Err(DecodeError::Malformed);
        }
        Ok(SyncDigest {
            log2,
            answer,
            check,
            hashes,
        })
    }

    /// Whether it answers a SYNC (push-pull's second half: answered with
    /// STATE only, never with another SYNC).
    pub fn answer(&self) -> bool {
        self.answer
    }

    /// Whether it is a check: one bucket, the hash of the sender's whole
    /// membership, answered with the receiver's full digest if they differ.
    pub fn check(&self) -> bool {
        self.check
    }

    /// Buckets, as log2.
    pub fn log2(&self) -> u8 {
        self.log2
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        1 << self.log2
    }

    /// Whether there are no buckets (never: a digest has at least one).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Bucket `i`'s hash; 0 past the end.
    pub fn bucket(&self, i: usize) -> u64 {
        match self
            .hashes
            .get(i * SYNC_BUCKET_LEN..(i + 1) * SYNC_BUCKET_LEN)
        {
            Some(b) => be_u64(b, 0),
            None => 0,
        }
    }
}

/// A decoded swim body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwimBody<'a> {
    /// PROBE: are you alive?
    Probe {
        /// Echoed by the ACK.
        seq: u32,
        /// Membership updates.
        updates: Members<'a>,
    },
    /// ACK: alive (to a PROBE, or relayed for a PROBE_REQ).
    Ack {
        /// The PROBE's or PROBE_REQ's.
        seq: u32,
        /// Membership updates.
        updates: Members<'a>,
    },
    /// PROBE_REQ: probe `target` for me.
    ProbeReq {
        /// Echoed by the ACK or NACK.
        seq: u32,
        /// The member to probe.
        target: Member,
        /// Membership updates.
        updates: Members<'a>,
    },
    /// NACK: the target of a PROBE_REQ did not answer in time.
    Nack {
        /// The PROBE_REQ's.
        seq: u32,
    },
    /// SYNC: the sender's membership digest.
    Sync(SyncDigest<'a>),
    /// STATE: members of the buckets that differed.
    State(Members<'a>),
}

/// Decodes a swim body; for PROBE, ACK, PROBE_REQ and STATE also returns the
/// bytes after the members (a rumor block, when the header says so; else
/// they must be none).
pub(crate) fn decode_body(
    kind: super::MessageType,
    body: &[u8],
) -> Result<(SwimBody<'_>, &[u8]), DecodeError> {
    use super::MessageType as T;
    let seq = || {
        body.get(..SEQ_LEN)
            .map(|b| be_u32(b, 0))
            .ok_or(DecodeError::Malformed)
    };
    let out = match kind {
        T::Probe | T::Ack => {
            let seq = seq()?;
            let (updates, used) = Members::parse_prefix(&body[SEQ_LEN..])?;
            let rest = &body[SEQ_LEN + used..];
            let b = match kind {
                T::Probe => SwimBody::Probe { seq, updates },
                _ => SwimBody::Ack { seq, updates },
            };
            return Ok((b, rest));
        }
        T::ProbeReq => {
            let seq = seq()?;
            let len = check_member(&body[SEQ_LEN..])?;
            let target = Member::read(&body[SEQ_LEN..]);
            let (updates, used) = Members::parse_prefix(&body[SEQ_LEN + len..])?;
            let b = SwimBody::ProbeReq {
                seq,
                target,
                updates,
            };
            return Ok((b, &body[SEQ_LEN + len + used..]));
        }
        T::Nack => {
            if body.len() != SEQ_LEN {
                return Err(DecodeError::Malformed);
            }
            SwimBody::Nack { seq: seq()? }
        }
        T::Sync => SwimBody::Sync(SyncDigest::parse(body)?),
        T::State => {
            let (members, used) = Members::parse_prefix(body)?;
            return Ok((SwimBody::State(members), &body[used..]));
        }
        _ => return Err(DecodeError::UnknownType),
    };
    Ok((out, &[]))
}

/// Streams a PROBE, ACK, PROBE_REQ or STATE: header, the fixed part, then
/// members while they fit.
#[derive(Debug)]
pub struct MembersWriter<'b> {
    buf: &'b mut [u8],
    /// Where the member count goes.
    count_at: usize,
    len: usize,
    count: u16,
}

impl<'b> MembersWriter<'b> {
    /// Starts a message of `header.kind` in `buf` (its length is the size
    /// limit): `seq` for all but STATE, `target` for PROBE_REQ.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when not even the empty list fits.
    pub fn new(
        buf: &'b mut [u8],
        header: &Header,
        seq: u32,
        target: Option<&Member>,
    ) -> Result<Self, EncodeError> {
        use super::MessageType as T;
        let buf = match buf.len() > MAX_DATAGRAM {
            true => &mut buf[..MAX_DATAGRAM],
            false => buf,
        };
        let fixed = match header.kind {
            T::State => 0,
            T::ProbeReq => SEQ_LEN + target.map_or(MEMBER_LEN_V4, Member::encoded_len),
            _ => SEQ_LEN,
        };
        if buf.len() < HEADER_LEN + fixed + MEMBERS_COUNT_LEN {
            return Err(EncodeError::BufferTooSmall);
        }
        let mut len = encode_header(buf, header)?;
        if header.kind != T::State {
            buf[len..len + SEQ_LEN].copy_from_slice(&seq.to_be_bytes());
            len += SEQ_LEN;
        }
        if let (T::ProbeReq, Some(t)) = (header.kind, target) {
            let n = t.encoded_len();
            t.write(&mut buf[len..len + n]);
            len += n;
        }
        Ok(MembersWriter {
            buf,
            count_at: len,
            len: len + MEMBERS_COUNT_LEN,
            count: 0,
        })
    }

    /// Bytes left for members.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Members written so far.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Appends `m` if it fits; returns whether it did.
    pub fn push(&mut self, m: &Member) -> bool {
        let n = m.encoded_len();
        if n > self.remaining() || self.count == u16::MAX {
            return false;
        }
        m.write(&mut self.buf[self.len..self.len + n]);
        self.len += n;
        self.count += 1;
        true
    }

    /// Writes the count; hands back the buffer and the length so far, for a
    /// rumor block to follow.
    pub(crate) fn into_raw(self) -> (&'b mut [u8], usize) {
        let at = self.count_at;
        self.buf[at..at + MEMBERS_COUNT_LEN].copy_from_slice(&self.count.to_be_bytes());
        (self.buf, self.len)
    }

    /// Writes the count and the body length; returns the message's length.
    pub fn finish(self) -> usize {
        let (buf, len) = self.into_raw();
        finish(buf, len)
    }
}

/// Encodes a NACK.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] below [`NACK_LEN`] bytes.
pub fn encode_nack(buf: &mut [u8], header: &Header, seq: u32) -> Result<usize, EncodeError> {
    if buf.len() < NACK_LEN {
        return Err(EncodeError::BufferTooSmall);
    }
    encode_header(buf, header)?;
    buf[HEADER_LEN..NACK_LEN].copy_from_slice(&seq.to_be_bytes());
    Ok(finish(buf, NACK_LEN))
}

/// Encodes a SYNC of `hashes` (a power of two of them, at most 2^12),
/// opening an exchange or (`answer`) answering one.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] when it does not fit, or the count is not
/// a power of two within bounds (nothing a decoder would accept).
pub fn encode_sync(
    buf: &mut [u8],
    header: &Header,
    hashes: &[u64],
    answer: bool,
) -> Result<usize, EncodeError> {
    let n = hashes.len();
    if !n.is_power_of_two() || n > 1 << MAX_SYNC_LOG2 {
        return Err(EncodeError::BufferTooSmall);
    }
    let len = HEADER_LEN + 1 + n * SYNC_BUCKET_LEN;
    if buf.len() < len {
        return Err(EncodeError::BufferTooSmall);
    }
    encode_header(buf, header)?;
    buf[HEADER_LEN] = n.trailing_zeros() as u8 | (u8::from(answer) * SYNC_ANSWER);
    for (i, h) in hashes.iter().enumerate() {
        let at = HEADER_LEN + 1 + i * SYNC_BUCKET_LEN;
        buf[at..at + SYNC_BUCKET_LEN].copy_from_slice(&h.to_be_bytes());
    }
    Ok(finish(buf, len))
}

/// Encodes a SYNC check: one bucket, `hash` the sender's whole membership.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] when it does not fit.
pub fn encode_sync_check(buf: &mut [u8], header: &Header, hash: u64) -> Result<usize, EncodeError> {
    let len = encode_sync(buf, header, &[hash], false)?;
    buf[HEADER_LEN] |= SYNC_CHECK;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::super::{decode, reencode, Body, MessageType};
    use super::*;

    fn header(kind: MessageType) -> Header {
        Header {
            kind,
            flags: 0,
            src_slot: 1,
            dst_slot: 2,
            sender: NodeId(0x0123_4567_89ab_cdef),
            incarnation: 3,
        }
    }

    fn member(i: u8, health: Health, v6: bool) -> Member {
        let ip: IpAddr = match v6 {
            false => Ipv4Addr::new(127, 0, 0, i).into(),
            true => Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i)).into(),
        };
        Member {
            id: NodeId(u64::from(i) << 40 | 7),
            life: u32::from(i),
            refute: 9,
            health,
            endpoint: Endpoint::new(SocketAddr::new(ip, 7000 + u16::from(i)), 5),
            suspecter: match health {
                Health::Suspect => NodeId(0xabcd),
                _ => NodeId(0),
            },
        }
    }

    #[test]
    fn every_swim_message_decodes_to_what_was_written_and_reencodes_byte_for_byte() {
        let updates = [
            member(1, Health::Alive, false),
            member(2, Health::Suspect, true),
            member(3, Health::Dead, false),
        ];
        let mut buf = [0u8; 512];
        for kind in [
            MessageType::Probe,
            MessageType::Ack,
            MessageType::ProbeReq,
            MessageType::State,
        ] {
            let target = member(4, Health::Alive, true);
            let mut w = MembersWriter::new(&mut buf, &header(kind), 77, Some(&target)).unwrap();
            for m in &updates {
                assert!(w.push(m));
            }
            let len = w.finish();
            let msg = decode(&buf[..len]).unwrap();
            let Body::Swim(body) = msg.body else {
                panic!("{kind:?} decoded as {:?}", msg.body)
            };
            let (seq, members) = match body {
                SwimBody::Probe { seq, updates } | SwimBody::Ack { seq, updates } => (seq, updates),
                SwimBody::ProbeReq {
                    seq,
                    target: t,
                    updates,
                } => {
                    assert_eq!(t, target);
                    (seq, updates)
                }
                SwimBody::State(m) => (77, m),
                other => panic!("{other:?}"),
            };
            assert_eq!(seq, 77);
            assert!(members.iter().eq(updates.iter().copied()), "{kind:?}");
            let mut again = [0u8; 512];
            let n = reencode(&msg, &mut again).unwrap();
            assert_eq!(&again[..n], &buf[..len], "{kind:?}");
        }
        let len = encode_nack(&mut buf, &header(MessageType::Nack), 5).unwrap();
        assert_eq!(len, NACK_LEN);
        assert_eq!(
            decode(&buf[..len]).unwrap().body,
            Body::Swim(SwimBody::Nack { seq: 5 })
        );
        let hashes = [1u64, 2, 3, u64::MAX];
        let len = encode_sync(&mut buf, &header(MessageType::Sync), &hashes, true).unwrap();
        let msg = decode(&buf[..len]).unwrap();
        let Body::Swim(SwimBody::Sync(d)) = msg.body else {
            panic!()
        };
        assert_eq!((d.log2(), d.len(), d.answer()), (2, 4, true));
        assert!((0..4).map(|i| d.bucket(i)).eq(hashes));
        let mut again = [0u8; 512];
        assert_eq!(reencode(&msg, &mut again).unwrap(), len);
        assert_eq!(&again[..len], &buf[..len]);
    }

    #[test]
    fn a_bare_probe_is_the_steady_state_datagram() {
        let mut buf = [0u8; 64];
        let w = MembersWriter::new(&mut buf, &header(MessageType::Probe), 1, None).unwrap();
        assert_eq!(w.finish(), PROBE_LEN);
        assert_eq!(PROBE_LEN, 30);
        assert_eq!(MEMBER_LEN_V4, 25);
        // Too small for even that: refused, nothing to send.
        let mut small = [0u8; PROBE_LEN - 1];
        assert!(MembersWriter::new(&mut small, &header(MessageType::Probe), 1, None).is_err());
    }

    #[test]
    fn hostile_bodies_are_refused_without_panicking() {
        let mut buf = [0u8; 256];
        let mut w = MembersWriter::new(&mut buf, &header(MessageType::Ack), 1, None).unwrap();
        w.push(&member(1, Health::Alive, false));
        let len = w.finish();
        let at_state = HEADER_LEN + SEQ_LEN + MEMBERS_COUNT_LEN + field::STATE;
        for (byte, value, want) in [
            (at_state, 3, DecodeError::Malformed),       // health 3
            (at_state, 0x08, DecodeError::ReservedBits), // a reserved bit
            (at_state, 0x04, DecodeError::Malformed),    // IPv6 but only 4 address bytes
            (HEADER_LEN + SEQ_LEN + 1, 2, DecodeError::Malformed), // count past the end
        ] {
            let mut b = buf;
            b[byte] = value;
            assert_eq!(decode(&b[..len]), Err(want), "byte {byte} = {value}");
        }
        // Every truncation is refused, whatever the header says.
        for cut in 0..len {
            assert!(decode(&buf[..cut]).is_err());
        }
        // A SYNC whose bucket count disagrees with its length.
        let len = encode_sync(&mut buf, &header(MessageType::Sync), &[1, 2], false).unwrap();
        buf[HEADER_LEN] = 2;
        assert_eq!(decode(&buf[..len]), Err(DecodeError::Malformed));
        buf[HEADER_LEN] = 0x21;
        assert_eq!(decode(&buf[..len]), Err(DecodeError::ReservedBits));
        // A check is one bucket and never an answer.
        buf[HEADER_LEN] = 0x41;
        assert_eq!(decode(&buf[..len]), Err(DecodeError::Malformed));
        let len = encode_sync_check(&mut buf, &header(MessageType::Sync), 7).unwrap();
        assert_eq!(len, HEADER_LEN + 1 + SYNC_BUCKET_LEN);
        let msg = decode(&buf[..len]).unwrap();
        let Body::Swim(SwimBody::Sync(d)) = msg.body else {
            panic!("{:?}", msg.body)
        };
        assert!(d.check() && !d.answer() && d.bucket(0) == 7);
        let mut again = [0u8; 64];
        assert_eq!(reencode(&msg, &mut again).unwrap(), len);
        assert_eq!(again[..len], buf[..len]);
        buf[HEADER_LEN] = 0xc0;
        assert_eq!(decode(&buf[..len]), Err(DecodeError::Malformed));
        buf[HEADER_LEN] = MAX_SYNC_LOG2 + 1;
        assert_eq!(decode(&buf[..len]), Err(DecodeError::Malformed));
        // A NACK with a trailing byte.
        let len = encode_nack(&mut buf, &header(MessageType::Nack), 1).unwrap();
        buf[len] = 0;
        super::super::finish(&mut buf, len + 1);
        assert_eq!(decode(&buf[..len + 1]), Err(DecodeError::Malformed));
    }
}
