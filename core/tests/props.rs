//! Property tests for the wire codec: round trips, canonical encoding, total
//! decoding, truncation, and a section writer that never overruns its buffer.

use gossip_core::epidemic::data::EntryRef;
use gossip_core::epidemic::Direction;
use gossip_core::wire::{
    self, Ack, Body, DecodeError, DigestWriter, EntryFlags, GossipEntry, Header, Message,
    MessageType, PullWriter, PushWriter, RumorWriter, SectionWriter, ACK_LEN, DIGEST_FIXED,
    ENTRY_LEN_V4, ENTRY_LEN_V6, FAIL_BODY_LEN, FLAG_RUMORS, HEADER_LEN, MAX_DATAGRAM, NO_PING,
    RUMOR_BLOCK_OVERHEAD,
};
use gossip_core::{Endpoint, Incarnation, NodeId, Stamp};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

// ---------------------------------------------------------------------------
// Strategies.

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        // Addresses near the v4-mapped prefix, which must still travel as IPv4.
        any::<[u8; 4]>().prop_map(|o| IpAddr::V6(Ipv4Addr::from(o).to_ipv6_mapped())),
        any::<[u8; 4]>().prop_map(|o| IpAddr::V6(Ipv4Addr::from(o).to_ipv6_compatible())),
    ]
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (ip(), any::<u16>(), any::<u16>())
        .prop_map(|(ip, port, slot)| Endpoint::new(SocketAddr::new(ip, port), slot))
}

fn age() -> impl Strategy<Value = u32> {
    prop_oneof![Just(NO_PING), Just(0), Just(NO_PING - 1), any::<u32>()]
}

fn entry() -> impl Strategy<Value = GossipEntry> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<(bool, bool)>(),
        age(),
        age(),
        endpoint(),
    )
        .prop_map(
            |(id, incarnation, (pfail, fail), ping_age_ms, pong_age_ms, endpoint)| GossipEntry {
                id: NodeId(id),
                incarnation,
                flags: EntryFlags { pfail, fail },
                ping_age_ms,
                pong_age_ms,
                endpoint,
            },
        )
}

fn header(kinds: &'static [MessageType]) -> impl Strategy<Value = Header> {
    (
        proptest::sample::select(kinds),
        any::<u16>(),
        any::<u16>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(kind, src_slot, dst_slot, sender, incarnation)| Header {
            kind,
            flags: 0,
            src_slot,
            dst_slot,
            sender: NodeId(sender),
            incarnation,
        })
}

const SECTION_KINDS: &[MessageType] = &[MessageType::Meet, MessageType::Ping, MessageType::Pong];

/// Any valid message: a section message with up to 60 entries (a PING or PONG
/// possibly with a rumor block), a FAIL, or a data message.
fn message() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (header(SECTION_KINDS), prop::collection::vec(entry(), 0..60)).prop_map(
            |(header, entries)| Owned {
                header,
                entries,
                fail: None,
                data: None,
            }
        ),
        (
            header(&[MessageType::Ping, MessageType::Pong]),
            prop::collection::vec(entry(), 0..10),
            block()
        )
            .prop_map(|(mut header, entries, b)| {
                header.flags = FLAG_RUMORS;
                Owned {
                    header,
                    entries,
                    fail: None,
                    data: Some(b),
                }
            }),
        (header(&[MessageType::Fail]), any::<u64>(), any::<u32>()).prop_map(|(header, id, inc)| {
            Owned {
                header,
                entries: Vec::new(),
                fail: Some((NodeId(id), inc)),
                data: None,
            }
        }),
        (header(&[MessageType::Digest]), digest()).prop_map(|(header, d)| Owned::data(header, d)),
        (
            header(&[MessageType::Push]),
            prop::collection::vec(data_entry(), 0..20)
        )
            .prop_map(|(header, es)| Owned::data(header, Data::Push(es))),
        (
            header(&[MessageType::Pull]),
            prop::collection::vec(key(), 0..20)
        )
            .prop_map(|(header, ks)| Owned::data(header, Data::Pull(ks))),
        (header(&[MessageType::Rumor]), block()).prop_map(|(header, b)| Owned::data(header, b)),
    ]
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..12)
}

fn stamp() -> impl Strategy<Value = Stamp> {
    (any::<u64>(), any::<u64>()).prop_map(|(v, o)| Stamp::new(v, NodeId(o)))
}

fn data_entry() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, Stamp)> {
    (key(), prop::collection::vec(any::<u8>(), 0..24), stamp())
}

/// A well-formed digest: sorted distinct keys, a start at or below the first,
/// an end (if any) above the last.
fn digest() -> impl Strategy<Value = Data> {
    (
        proptest::sample::select(&[Direction::Push, Direction::Pull, Direction::PushPull][..]),
        prop::collection::btree_set(key(), 0..20),
        prop::collection::vec(stamp(), 20),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(direction, keys, stamps, from_first, bounded)| {
            let keys: Vec<Vec<u8>> = keys
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let start = match (from_first, keys.first()) {
                (true, Some(k)) => k[..k.len() / 2].to_vec(),
                _ => Vec::new(),
            };
            let end = bounded.then(|| {
                let mut e = keys.last().cloned().unwrap_or_else(|| start.clone());
                e.push(0);
                e
            });
            let items = keys.into_iter().zip(stamps).collect();
            Data::Digest {
                direction,
                start,
                end,
                items,
            }
        })
}

/// A rumor block that says something.
fn block() -> impl Strategy<Value = Data> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(any::<(u64, bool)>(), 0..8),
        prop::collection::vec(data_entry(), 0..6),
    )
        .prop_map(|(pull, ack_wanted, acks, entries)| Data::Rumor {
            pull: pull || (acks.is_empty() && entries.is_empty()),
            ack_wanted: ack_wanted && !entries.is_empty(),
            acks: acks
                .into_iter()
                .map(|(id, knew)| Ack::new(id, knew))
                .collect(),
            entries,
        })
}

/// The parts of a data message or a rumor block.
#[derive(Clone, Debug, PartialEq)]
enum Data {
    Digest {
        direction: Direction,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        items: Vec<(Vec<u8>, Stamp)>,
    },
    Push(Vec<(Vec<u8>, Vec<u8>, Stamp)>),
    Pull(Vec<Vec<u8>>),
    Rumor {
        pull: bool,
        ack_wanted: bool,
        acks: Vec<Ack>,
        entries: Vec<(Vec<u8>, Vec<u8>, Stamp)>,
    },
}

fn entry_ref((k, v, s): &(Vec<u8>, Vec<u8>, Stamp)) -> EntryRef<'_> {
    EntryRef {
        key: k,
        value: v,
        stamp: *s,
    }
}

fn owned_entry(e: EntryRef<'_>) -> (Vec<u8>, Vec<u8>, Stamp) {
    (e.key.to_vec(), e.value.to_vec(), e.stamp)
}

fn block_of(b: &wire::RumorBlock<'_>) -> Data {
    Data::Rumor {
        pull: b.pull(),
        ack_wanted: b.wants_ack(),
        acks: b.acks().collect(),
        entries: b.entries().iter().map(owned_entry).collect(),
    }
}

impl Data {
    fn encoded_len(&self) -> usize {
        let entries = |es: &[(Vec<u8>, Vec<u8>, Stamp)]| {
            es.iter().map(|e| 20 + e.0.len() + e.1.len()).sum::<usize>()
        };
        match self {
            Data::Digest {
                start, end, items, ..
            } => {
                DIGEST_FIXED
                    + start.len()
                    + end.as_ref().map_or(0, Vec::len)
                    + items.iter().map(|(k, _)| 18 + k.len()).sum::<usize>()
            }
            Data::Push(es) => 2 + entries(es),
            Data::Pull(ks) => 2 + ks.iter().map(|k| 2 + k.len()).sum::<usize>(),
            Data::Rumor {
                acks, entries: es, ..
            } => RUMOR_BLOCK_OVERHEAD + acks.len() * ACK_LEN + entries(es),
        }
    }

    fn write_block(&self, r: &mut RumorWriter<'_>) {
        let Data::Rumor {
            pull,
            ack_wanted,
            acks,
            entries,
        } = self
        else {
            panic!("not a rumor block")
        };
        r.set_pull(*pull);
        r.set_ack_wanted(*ack_wanted);
        for a in acks {
            assert!(r.push_ack(*a));
        }
        for e in entries {
            assert!(r.push_entry(&entry_ref(e)));
        }
    }
}

/// A message with its parts owned, for comparing against a decoded one.
#[derive(Clone, Debug, PartialEq)]
struct Owned {
    header: Header,
    entries: Vec<GossipEntry>,
    fail: Option<(NodeId, Incarnation)>,
    /// A data message's body, or a PING's or PONG's rumor block.
    data: Option<Data>,
}

impl Owned {
    fn data(header: Header, data: Data) -> Owned {
        Owned {
            header,
            entries: Vec::new(),
            fail: None,
            data: Some(data),
        }
    }

    fn of(msg: &Message<'_>) -> Owned {
        let data = match msg.body {
            Body::Section(s) => {
                let entries: Vec<GossipEntry> = s.iter().collect();
                assert_eq!(entries.len(), s.len(), "count and iteration agree");
                return Owned {
                    header: msg.header,
                    entries,
                    fail: None,
                    data: msg.rumors.as_ref().map(block_of),
                };
            }
            Body::Fail { id, incarnation } => {
                return Owned {
                    header: msg.header,
                    entries: Vec::new(),
                    fail: Some((id, incarnation)),
                    data: None,
                }
            }
            Body::Digest(d) => Data::Digest {
                direction: d.direction(),
                start: d.start().to_vec(),
                end: d.end().map(<[u8]>::to_vec),
                items: d.iter().map(|i| (i.key.to_vec(), i.stamp)).collect(),
            },
            Body::Push(es) => Data::Push(es.iter().map(owned_entry).collect()),
            Body::Pull(ks) => Data::Pull(ks.iter().map(<[u8]>::to_vec).collect()),
            Body::Rumor(b) => block_of(&b),
            _ => panic!("a body this test does not know"),
        };
        Owned::data(msg.header, data)
    }

    fn encoded_len(&self) -> usize {
        if self.fail.is_some() {
            return HEADER_LEN + FAIL_BODY_LEN;
        }
        let data = self.data.as_ref().map_or(0, Data::encoded_len);
        if self.header.kind.is_data() {
            return HEADER_LEN + data;
        }
        HEADER_LEN
            + 2
            + self
                .entries
                .iter()
                .map(GossipEntry::encoded_len)
                .sum::<usize>()
            + data
    }

    fn encode(&self) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let h = &self.header;
        let n = match &self.data {
            None => wire::encode(&mut buf, h, &self.entries, self.fail)
                .expect("a MAX_DATAGRAM buffer holds any empty message"),
            Some(d @ Data::Rumor { .. }) if !h.kind.is_data() => {
                let plain = Header { flags: 0, ..*h };
                let mut w = SectionWriter::new(&mut buf, &plain).unwrap();
                for e in &self.entries {
                    assert!(w.push(e));
                }
                let mut r = RumorWriter::after_section(w);
                d.write_block(&mut r);
                r.finish().unwrap()
            }
            Some(d @ Data::Rumor { .. }) => {
                let mut r = RumorWriter::standalone(&mut buf, h).unwrap();
                d.write_block(&mut r);
                r.finish().expect("the block says something")
            }
            Some(Data::Digest {
                direction,
                start,
                end,
                items,
            }) => {
                let mut w = DigestWriter::new(&mut buf, h, *direction, start).unwrap();
                for (k, s) in items {
                    assert!(w.push(k, *s, end.as_ref().map_or(0, Vec::len)));
                }
                w.finish(end.as_deref()).unwrap()
            }
            Some(Data::Push(es)) => {
                let mut w = PushWriter::new(&mut buf, h).unwrap();
                for e in es {
                    assert!(w.push(&entry_ref(e)));
                }
                w.finish()
            }
            Some(Data::Pull(ks)) => {
                let mut w = PullWriter::new(&mut buf, h).unwrap();
                for k in ks {
                    assert!(w.push(k));
                }
                w.finish()
            }
        };
        buf.truncate(n);
        buf
    }
}

/// Decodes and, on success, checks that re-encoding gives the very same bytes.
fn decode_is_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(msg) = wire::decode(bytes) {
        let again = match msg.body {
            // swim's bodies (a mutation can make one: a SYNC check is nine
            // bytes): the crate's own re-encoder; this file models the others.
            Body::Swim(_) => {
                let mut b = vec![0u8; bytes.len() + 64];
                let n = wire::reencode(&msg, &mut b).expect("a decoded swim body re-encodes");
                b.truncate(n);
                b
            }
            _ => Owned::of(&msg).encode(),
        };
        prop_assert_eq!(&again[..], bytes, "decoded {:?}", msg);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties.

proptest! {
    #[test]
    fn decode_of_encode_is_the_message(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(bytes.len(), m.encoded_len());
        let body_len = u16::from_be_bytes([bytes[22], bytes[23]]);
        prop_assert_eq!(usize::from(body_len), bytes.len() - HEADER_LEN);
        let msg = wire::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Owned::of(&msg), m);
    }

    #[test]
    fn an_ipv4_endpoint_always_travels_as_four_bytes(e in entry()) {
        let expect = if e.endpoint.ipv4().is_some() { ENTRY_LEN_V4 } else { ENTRY_LEN_V6 };
        prop_assert_eq!(e.encoded_len(), expect);
        let m = Owned { header: Header { kind: MessageType::Ping, flags: 0, src_slot: 0, dst_slot: 0, sender: NodeId(1), incarnation: 0 }, entries: vec![e], fail: None, data: None };
        let bytes = m.encode();
        prop_assert_eq!(bytes.len(), HEADER_LEN + 2 + expect);
        // Flag bit 2 (IPV6) is set exactly when the address takes 16 bytes.
        prop_assert_eq!(bytes[HEADER_LEN + 2 + 12] & 4 != 0, expect == ENTRY_LEN_V6);
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        decode_is_canonical(&bytes)?;
    }

    #[test]
    fn header_shaped_bytes_decode_canonically_or_fail(
        kind in prop_oneof![0u8..12, 14u8..22],
        flags in prop_oneof![Just(0u8), Just(FLAG_RUMORS), any::<u8>()],
        reserved in prop_oneof![Just(0u8), any::<u8>()],
        rest in any::<[u8; 16]>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
        count in prop_oneof![Just(None), (0u16..8).prop_map(Some)],
    ) {
        // A well-formed header around a random body (optionally with a small
        // count) reaches the section and FAIL parsers far more often than noise.
        let mut body = body;
        if let (Some(c), true) = (count, body.len() >= 2) {
            body[..2].copy_from_slice(&c.to_be_bytes());
        }
        let mut bytes = vec![0x47, 0x53, 1, kind, flags, reserved];
        bytes.extend_from_slice(&rest);
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&body);
        let known = (1..=10).contains(&kind) || (16..=19).contains(&kind);
        match wire::decode(&bytes) {
            Ok(_) => {
                prop_assert!(known);
                // The rumor flag: PING, PONG, PROBE and ACK only.
                prop_assert!(flags == 0 || (flags == FLAG_RUMORS && matches!(kind, 2 | 3 | 5 | 6)));
                prop_assert_eq!(reserved, 0);
            }
            Err(DecodeError::UnknownType) => prop_assert!(!known),
            Err(DecodeError::ReservedBits) => {}
            Err(DecodeError::Malformed) => prop_assert!(known),
            Err(e) => prop_assert!(false, "unexpected {e:?} for a well-framed header"),
        }
        decode_is_canonical(&bytes)?;
    }

    #[test]
    fn a_mutated_message_is_refused_or_reencodes_to_itself(
        m in message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = m.encode();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        decode_is_canonical(&bytes)?;
    }

    #[test]
    fn a_message_with_bytes_appended_is_refused(m in message(), extra in prop::collection::vec(any::<u8>(), 1..50)) {
        let mut bytes = m.encode();
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(wire::decode(&bytes).map(|_| ()), Err(DecodeError::BodyLength));
        // Even when the header is patched to claim the extra bytes.
        let body = (bytes.len() - HEADER_LEN) as u16;
        bytes[22..24].copy_from_slice(&body.to_be_bytes());
        prop_assert_eq!(wire::decode(&bytes).map(|_| ()), Err(DecodeError::Malformed));
    }

    #[test]
    fn truncating_a_message_anywhere_is_an_error(m in message()) {
        let bytes = m.encode();
        for cut in 0..bytes.len() {
            let short = &bytes[..cut];
            let want = if cut < HEADER_LEN { DecodeError::TooShort } else { DecodeError::BodyLength };
            prop_assert_eq!(wire::decode(short).map(|_| ()), Err(want), "cut at {}", cut);
            if cut >= HEADER_LEN {
                // A truncation that also fixes the header's body length still
                // leaves a body that does not add up.
                let mut patched = short.to_vec();
                patched[22..24].copy_from_slice(&((cut - HEADER_LEN) as u16).to_be_bytes());
                prop_assert_eq!(
                    wire::decode(&patched).map(|_| ()),
                    Err(DecodeError::Malformed),
                    "patched cut at {}", cut
                );
            }
        }
    }

    #[test]
    fn an_ipv4_address_spelled_v4_mapped_is_refused(
        e in entry(),
        v4 in any::<[u8; 4]>(),
        ipv6 in any::<[u8; 16]>(),
    ) {
        // Force an IPv6 entry, then overwrite its address with ::ffff:a.b.c.d.
        let mut e = e;
        let mut o = ipv6;
        o[0] = 0x20; // 2000::/8: never v4-mapped
        e.endpoint = Endpoint::new(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), 1), 0);
        let mut bytes = ping_with(&[e]).encode();
        prop_assert!(wire::decode(&bytes).is_ok());
        let ip = HEADER_LEN + 2 + 25;
        bytes[ip..ip + 16].copy_from_slice(&Ipv4Addr::from(v4).to_ipv6_mapped().octets());
        prop_assert_eq!(wire::decode(&bytes).map(|_| ()), Err(DecodeError::Malformed));
        decode_is_canonical(&bytes)?;
    }

    #[test]
    fn a_set_header_flag_or_reserved_byte_is_refused(m in message(), flags in 1u8.., at in 4usize..6) {
        let mut bytes = m.encode();
        let had = bytes[4];
        bytes[at] = flags;
        let ping_or_pong = matches!(m.header.kind, MessageType::Ping | MessageType::Pong);
        let got = wire::decode(&bytes).map(|_| ());
        if at == 4 && flags == FLAG_RUMORS && ping_or_pong {
            // Setting the rumor flag is legal; the body then lacks (or, if it
            // was set, still has) its block.
            prop_assert_eq!(got.is_ok(), had == FLAG_RUMORS);
            if had != FLAG_RUMORS {
                prop_assert_eq!(got, Err(DecodeError::Malformed));
            }
        } else if at == 4 && flags == FLAG_RUMORS {
            prop_assert_eq!(got, Err(DecodeError::ReservedBits));
        } else {
            prop_assert_eq!(got, Err(DecodeError::ReservedBits));
        }
    }

    #[test]
    fn a_section_writer_never_writes_past_its_buffer(
        h in header(SECTION_KINDS),
        entries in prop::collection::vec(entry(), 0..40),
        size in 0usize..700,
    ) {
        const GUARD: u8 = 0xa5;
        let mut space = vec![GUARD; size + 64];
        let (buf, guard) = space.split_at_mut(size);
        let Ok(mut w) = SectionWriter::new(buf, &h) else {
            prop_assert!(size < HEADER_LEN + 2, "refused a {}-byte buffer", size);
            prop_assert!(guard.iter().all(|&b| b == GUARD));
            return Ok(());
        };
        prop_assert!(size >= HEADER_LEN + 2);
        let mut kept = Vec::new();
        for e in &entries {
            let room = w.remaining();
            if w.push(e) {
                kept.push(*e);
            } else {
                prop_assert!(e.encoded_len() > room, "refused an entry that fit");
            }
            prop_assert_eq!(w.count(), kept.len());
        }
        let n = w.finish();
        prop_assert!(n <= size);
        prop_assert!(guard.iter().all(|&b| b == GUARD), "wrote past the buffer");
        let msg = wire::decode(&space[..n]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Owned::of(&msg), Owned { header: h, entries: kept, fail: None, data: None });
    }

    #[test]
    fn encode_shrinks_a_section_to_the_longest_prefix_that_fits(
        h in header(SECTION_KINDS),
        entries in prop::collection::vec(entry(), 0..40),
        size in (HEADER_LEN + 2)..700,
    ) {
        let mut buf = vec![0u8; size];
        let n = wire::encode(&mut buf, &h, &entries, None).expect("an empty section fits");
        let mut fit = 0;
        let mut len = HEADER_LEN + 2;
        for e in &entries {
            if len + e.encoded_len() > size {
                break;
            }
            len += e.encoded_len();
            fit += 1;
        }
        prop_assert_eq!(n, len);
        let msg = wire::decode(&buf[..n]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Owned::of(&msg).entries, &entries[..fit]);
    }

    #[test]
    fn encode_fail_needs_36_bytes_and_writes_no_further(
        h in header(&[MessageType::Fail]),
        id in any::<u64>(),
        inc in any::<u32>(),
        size in 0usize..64,
    ) {
        let mut space = vec![0xa5u8; size + 16];
        let (buf, guard) = space.split_at_mut(size);
        match wire::encode_fail(buf, &h, NodeId(id), inc) {
            Ok(n) => {
                prop_assert_eq!(n, 36);
                prop_assert!(size >= 36);
            }
            Err(_) => prop_assert!(size < 36),
        }
        prop_assert!(guard.iter().all(|&b| b == 0xa5));
    }
}

// ---------------------------------------------------------------------------
// The edges of the datagram size, too big for random generation.

fn ping_with(entries: &[GossipEntry]) -> Owned {
    Owned {
        header: Header {
            kind: MessageType::Ping,
            flags: 0,
            src_slot: 1,
            dst_slot: 2,
            sender: NodeId(0xfeed),
            incarnation: 3,
        },
        entries: entries.to_vec(),
        fail: None,
        data: None,
    }
}

fn entries(v4: usize, v6: usize) -> Vec<GossipEntry> {
    let at = |i: usize, ip: IpAddr| GossipEntry {
        id: NodeId(i as u64),
        incarnation: i as u32,
        flags: EntryFlags {
            pfail: i % 3 == 0,
            fail: i % 5 == 0,
        },
        ping_age_ms: if i % 2 == 0 { NO_PING } else { i as u32 },
        pong_age_ms: i as u32 * 7,
        endpoint: Endpoint::new(SocketAddr::new(ip, i as u16), (i % 4) as u16),
    };
    let four = (0..v4).map(|i| at(i, IpAddr::V4(Ipv4Addr::from(i as u32))));
    let six = (0..v6).map(|i| {
        at(
            v4 + i,
            IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | i as u128)),
        )
    });
    four.chain(six).collect()
}

#[test]
fn a_datagram_of_exactly_max_datagram_bytes_round_trips() {
    // 26 + 2241 * 29 + 12 * 41 = 65,507.
    let m = ping_with(&entries(2241, 12));
    let bytes = m.encode();
    assert_eq!(bytes.len(), MAX_DATAGRAM);
    let msg = wire::decode(&bytes).unwrap();
    assert_eq!(Owned::of(&msg), m);
}

#[test]
fn a_well_formed_datagram_over_max_datagram_is_too_long() {
    // 26 + 2257 * 29 = 65,479 bytes decode; one entry more (65,508) is refused,
    // although its header and section add up: no encoder writes it.
    let fits = ping_with(&entries(2257, 0)).encode();
    assert_eq!(fits.len(), 65_479);
    assert!(wire::decode(&fits).is_ok());

    let mut big = fits.clone();
    big.extend_from_slice(&fits[fits.len() - ENTRY_LEN_V4..]);
    big[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&2258u16.to_be_bytes());
    let body = (big.len() - HEADER_LEN) as u16;
    big[22..24].copy_from_slice(&body.to_be_bytes());
    assert_eq!(big.len(), MAX_DATAGRAM + 1);
    assert_eq!(wire::decode(&big).map(|_| ()), Err(DecodeError::TooLong));
}

#[test]
fn a_section_writer_stops_at_max_datagram_even_in_a_larger_buffer() {
    let all = entries(2300, 0);
    let mut buf = vec![0u8; 70_000];
    let n = wire::encode(&mut buf, &ping_with(&[]).header, &all, None).unwrap();
    assert_eq!(n, HEADER_LEN + 2 + 2257 * ENTRY_LEN_V4);
    assert!(n <= MAX_DATAGRAM);
    assert!(buf[n..].iter().all(|&b| b == 0), "wrote past the message");
    let msg = wire::decode(&buf[..n]).unwrap();
    assert_eq!(Owned::of(&msg).entries, all[..2257]);
}

#[test]
fn a_count_of_65535_with_no_entries_is_malformed_without_allocating() {
    let mut bytes = ping_with(&[]).encode();
    bytes[HEADER_LEN..HEADER_LEN + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        wire::decode(&bytes).map(|_| ()),
        Err(DecodeError::Malformed)
    );
}
