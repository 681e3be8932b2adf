//! The hex test vectors of `docs/wire-format.md`, checked in both directions.
//!
//! The document is the single source: this file parses its `### vector:` sections
//! (a `hex` block and a `message` block each) and holds the codec to them. A vector
//! edited in the document without the code, or the code without the document,
//! fails here.

use gossip_core::epidemic::data::EntryRef;
use gossip_core::epidemic::Direction;
use gossip_core::wire::{
    self, Ack, Body, DecodeError, DigestWriter, EntryFlags, GossipEntry, Header, Health, Member,
    MembersWriter, Message, MessageType, PullWriter, PushWriter, RumorWriter, SectionWriter,
    SwimBody, ENTRY_LEN_V4, ENTRY_LEN_V6, FAIL_BODY_LEN, FLAG_RUMORS, HEADER_LEN, MAGIC,
    MAX_DATAGRAM, NO_PING, VERSION,
};
use gossip_core::{Config, Endpoint, Incarnation, NodeId, Stamp};
use std::net::SocketAddr;

const DOC: &str = include_str!("../../docs/wire-format.md");

/// Labels the issues ask for; the document may hold more.
const REQUIRED: [&str; 21] = [
    "ping-empty",
    "ping-2-entries",
    "pong",
    "meet",
    "fail",
    "ping-10-ipv4",
    "digest-pull",
    "digest-range",
    "push",
    "pull",
    "rumor-push",
    "rumor-acks",
    "rumor-pull",
    "ping-rumors",
    "pong-acks",
    "probe-empty",
    "ack-members-rumors",
    "probe-req",
    "nack",
    "sync",
    "state",
];

#[test]
fn the_document_holds_every_required_vector_once() {
    let vectors = vectors();
    for label in REQUIRED {
        let n = vectors.iter().filter(|v| v.label == label).count();
        assert_eq!(
            n, 1,
            "vector {label:?} appears {n} times in docs/wire-format.md"
        );
    }
    for (i, v) in vectors.iter().enumerate() {
        assert!(
            vectors[i + 1..].iter().all(|w| w.label != v.label),
            "vector {:?} is defined twice",
            v.label
        );
    }
    let rejects = vectors
        .iter()
        .filter(|v| matches!(v.expect, Expect::Error(_)))
        .count();
    assert!(rejects >= 25, "only {rejects} rejection vectors");
    // Every type has a valid vector.
    for kind in MessageType::ALL {
        assert!(
            vectors
                .iter()
                .any(|v| matches!(&v.expect, Expect::Message(m) if m.header.kind == kind)),
            "no vector of type {}",
            kind.name()
        );
    }
}

#[test]
fn every_message_vector_encodes_to_exactly_its_bytes() {
    for v in vectors() {
        let Expect::Message(m) = &v.expect else {
            continue;
        };
        assert_eq!(m.length, v.bytes.len(), "{}: stated length", v.label);
        let mut buf = [0u8; 1400];
        let n = encode(m, &mut buf);
        assert_eq!(
            hex(&buf[..n]),
            hex(&v.bytes),
            "{}: encoding differs",
            v.label
        );

        // A buffer of exactly the message's size is enough: nothing shrinks.
        let mut exact = vec![0u8; v.bytes.len()];
        let n = encode(m, &mut exact);
        assert_eq!(exact[..n], v.bytes[..], "{}: exact-size buffer", v.label);

        // And the generic re-encoder agrees.
        let msg = wire::decode(&v.bytes).unwrap();
        let n = wire::reencode(&msg, &mut buf).unwrap();
        assert_eq!(buf[..n], v.bytes[..], "{}: reencode", v.label);
    }
}

#[test]
fn every_message_vector_decodes_to_exactly_its_message() {
    for v in vectors() {
        let Expect::Message(m) = &v.expect else {
            continue;
        };
        let msg =
            wire::decode(&v.bytes).unwrap_or_else(|e| panic!("{}: decode failed: {e}", v.label));
        assert_eq!(msg.header, m.header, "{}: header", v.label);
        let got = describe(&msg, m.length);
        assert_eq!(&got, &**m, "{}: decoded message", v.label);
    }
}

#[test]
fn every_rejection_vector_is_refused_with_its_error() {
    let mut seen = 0;
    for v in vectors() {
        let Expect::Error(want) = v.expect else {
            continue;
        };
        assert_eq!(wire::decode(&v.bytes).map(|_| ()), Err(want), "{}", v.label);
        seen += 1;
    }
    assert!(seen > 0);
}

#[test]
fn a_ping_with_ten_ipv4_entries_is_under_400_bytes() {
    let v = vectors()
        .into_iter()
        .find(|v| v.label == "ping-10-ipv4")
        .expect("vector ping-10-ipv4 is in the document");
    let Expect::Message(m) = &v.expect else {
        panic!("ping-10-ipv4 is a message vector")
    };
    assert_eq!(m.header.kind, MessageType::Ping);
    assert_eq!(m.entries.len(), 10);
    assert!(m.entries.iter().all(|e| e.endpoint.ipv4().is_some()));
    assert_eq!(v.bytes.len(), HEADER_LEN + 2 + 10 * ENTRY_LEN_V4);
    assert_eq!(v.bytes.len(), 316);
    assert!(v.bytes.len() < 400);
    // Redis 7: a 2,256-byte header and 104 bytes per gossip entry.
    assert!(v.bytes.len() * 10 < 2_256 + 10 * 104);
}

#[test]
fn the_documented_constants_match_the_code() {
    assert_eq!(MAGIC, 0x4753);
    assert_eq!(&MAGIC.to_be_bytes(), b"GS");
    assert_eq!(VERSION, 1);
    assert_eq!(HEADER_LEN, 24);
    assert_eq!(ENTRY_LEN_V4, 29);
    assert_eq!(ENTRY_LEN_V6, 41);
    assert_eq!(FAIL_BODY_LEN, 12);
    assert_eq!(MAX_DATAGRAM, 65_507);
    assert_eq!(NO_PING, u32::MAX);
    assert_eq!(Config::default().max_datagram(), 1_400);
    let codes: Vec<(u8, &str)> = MessageType::ALL
        .iter()
        .map(|t| (t.code(), t.name()))
        .collect();
    assert_eq!(
        codes,
        [
            (1, "meet"),
            (2, "ping"),
            (3, "pong"),
            (4, "fail"),
            (5, "probe"),
            (6, "ack"),
            (7, "probe_req"),
            (8, "nack"),
            (9, "sync"),
            (10, "state"),
            (16, "digest"),
            (17, "push"),
            (18, "pull"),
            (19, "rumor")
        ]
    );
    assert_eq!(MessageType::COUNT, 20);
    assert_eq!(FLAG_RUMORS, 0x02);
    assert_eq!(
        (
            wire::RUMOR_BLOCK_OVERHEAD,
            wire::ACK_LEN,
            wire::DIGEST_FIXED
        ),
        (5, 8, 7)
    );
    assert_eq!(
        (
            wire::MEMBER_LEN_V4,
            wire::MEMBER_LEN_V6,
            wire::PROBE_LEN,
            wire::NACK_LEN
        ),
        (25, 37, 30, 28)
    );
    for code in (0..=255u8).filter(|c| !(1..=10).contains(c) && !(16..=19).contains(c)) {
        assert_eq!(
            MessageType::from_code(code),
            None,
            "code {code} is reserved"
        );
    }
}

#[test]
fn the_document_names_every_decode_error() {
    for e in DecodeError::ALL {
        let row = format!("| `{}` |", e.name());
        assert!(
            DOC.contains(&row),
            "docs/wire-format.md §4 lacks a row for {row}"
        );
    }
}

// ---------------------------------------------------------------------------
// Parsing the document.

#[derive(Debug)]
struct Vector {
    label: String,
    bytes: Vec<u8>,
    expect: Expect,
}

#[derive(Debug)]
enum Expect {
    Message(Box<Described>),
    Error(DecodeError),
}

#[derive(Debug, PartialEq)]
struct Described {
    header: Header,
    entries: Vec<GossipEntry>,
    fail: Option<(NodeId, Incarnation)>,
    x: Data,
    length: usize,
}

/// The data-message parts of a described message.
#[derive(Debug, Default, PartialEq)]
struct Data {
    /// DIGEST: direction, start, end.
    digest: Option<(Direction, Vec<u8>, Option<Vec<u8>>)>,
    items: Vec<(Vec<u8>, Stamp)>,
    /// Data entries of a PUSH or a rumor block.
    data: Vec<(Vec<u8>, Vec<u8>, Stamp)>,
    keys: Vec<Vec<u8>>,
    /// Rumor block flags: pull, ack wanted.
    rumors: Option<(bool, bool)>,
    acks: Vec<Ack>,
    /// swim: sequence number, PROBE_REQ's target, members, SYNC's hashes.
    seq: Option<u32>,
    target: Option<Member>,
    members: Vec<Member>,
    sync: Vec<u64>,
    sync_answer: bool,
}

/// The parts of a decoded message, as a vector describes them.
fn describe(msg: &Message<'_>, length: usize) -> Described {
    let mut d = Described {
        header: msg.header,
        entries: Vec::new(),
        fail: None,
        x: Data::default(),
        length,
    };
    let mut block = msg.rumors;
    match msg.body {
        Body::Section(s) => {
            d.entries = s.iter().collect();
            assert_eq!(d.entries.len(), s.len());
        }
        Body::Fail { id, incarnation } => d.fail = Some((id, incarnation)),
        Body::Digest(g) => {
            d.x.digest = Some((
                g.direction(),
                g.start().to_vec(),
                g.end().map(<[u8]>::to_vec),
            ));
            d.x.items = g.iter().map(|i| (i.key.to_vec(), i.stamp)).collect();
        }
        Body::Push(es) => d.x.data = es.iter().map(owned).collect(),
        Body::Pull(ks) => d.x.keys = ks.iter().map(<[u8]>::to_vec).collect(),
        Body::Rumor(b) => block = Some(b),
        Body::Swim(b) => match b {
            SwimBody::Probe { seq, updates } | SwimBody::Ack { seq, updates } => {
                d.x.seq = Some(seq);
                d.x.members = updates.iter().collect();
            }
            SwimBody::ProbeReq {
                seq,
                target,
                updates,
            } => {
                d.x.seq = Some(seq);
                d.x.target = Some(target);
                d.x.members = updates.iter().collect();
            }
            SwimBody::Nack { seq } => d.x.seq = Some(seq),
            SwimBody::Sync(g) => {
                d.x.sync = (0..g.len()).map(|i| g.bucket(i)).collect();
                d.x.sync_answer = g.answer();
            }
            SwimBody::State(ms) => d.x.members = ms.iter().collect(),
        },
        _ => panic!("a body this test does not know"),
    }
    if let Some(b) = block {
        d.x.rumors = Some((b.pull(), b.wants_ack()));
        d.x.acks = b.acks().collect();
        d.x.data = b.entries().iter().map(owned).collect();
    }
    d
}

fn owned(e: EntryRef<'_>) -> (Vec<u8>, Vec<u8>, Stamp) {
    (e.key.to_vec(), e.value.to_vec(), e.stamp)
}

fn entry((k, v, s): &(Vec<u8>, Vec<u8>, Stamp)) -> EntryRef<'_> {
    EntryRef {
        key: k,
        value: v,
        stamp: *s,
    }
}

/// Encodes a described message through the writers the node uses.
fn encode(m: &Described, buf: &mut [u8]) -> usize {
    let h = &m.header;
    let block = |r: &mut RumorWriter<'_>| {
        let (pull, ack_wanted) = m.x.rumors.expect("a rumor block");
        r.set_pull(pull);
        r.set_ack_wanted(ack_wanted);
        for a in &m.x.acks {
            assert!(r.push_ack(*a));
        }
        for e in &m.x.data {
            assert!(r.push_entry(&entry(e)));
        }
    };
    match h.kind {
        MessageType::Digest => {
            let (dir, start, end) = m.x.digest.as_ref().expect("digest fields");
            let mut w = DigestWriter::new(buf, h, *dir, start).unwrap();
            for (k, s) in &m.x.items {
                assert!(w.push(k, *s, end.as_ref().map_or(0, Vec::len)));
            }
            w.finish(end.as_deref()).unwrap()
        }
        MessageType::Push => {
            let mut w = PushWriter::new(buf, h).unwrap();
            for e in &m.x.data {
                assert!(w.push(&entry(e)));
            }
            w.finish()
        }
        MessageType::Pull => {
            let mut w = PullWriter::new(buf, h).unwrap();
            for k in &m.x.keys {
                assert!(w.push(k));
            }
            w.finish()
        }
        MessageType::Rumor => {
            let mut r = RumorWriter::standalone(buf, h).unwrap();
            block(&mut r);
            r.finish().expect("the block says something")
        }
        MessageType::Nack => wire::encode_nack(buf, h, m.x.seq.expect("seq")).unwrap(),
        MessageType::Sync => wire::encode_sync(buf, h, &m.x.sync, m.x.sync_answer).unwrap(),
        kind if kind.is_swim() => {
            let plain = Header {
                flags: h.flags & !FLAG_RUMORS,
                ..*h
            };
            let seq = m.x.seq.unwrap_or_default();
            let mut w = MembersWriter::new(buf, &plain, seq, m.x.target.as_ref()).unwrap();
            for member in &m.x.members {
                assert!(w.push(member));
            }
            match m.x.rumors {
                None => w.finish(),
                Some(_) => {
                    let mut r = RumorWriter::after_members(w);
                    block(&mut r);
                    r.finish().unwrap()
                }
            }
        }
        _ if m.x.rumors.is_some() => {
            let plain = Header {
                flags: h.flags & !FLAG_RUMORS,
                ..*h
            };
            let mut w = SectionWriter::new(buf, &plain).unwrap();
            for e in &m.entries {
                assert!(w.push(e));
            }
            let mut r = RumorWriter::after_section(w);
            block(&mut r);
            r.finish().unwrap()
        }
        _ => wire::encode(buf, h, &m.entries, m.fail)
            .unwrap_or_else(|e| panic!("encode failed: {e}")),
    }
}

/// Every `### vector: <label>` section of the document, in order.
fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let mut lines = DOC.lines();
    let mut current: Option<(String, Option<String>, Option<String>)> = None;
    while let Some(line) = lines.next() {
        if let Some(label) = line.strip_prefix("### vector: ") {
            if let Some(v) = current.take() {
                out.push(finish(v));
            }
            current = Some((label.trim().to_string(), None, None));
        } else if line.starts_with("## ") || line.starts_with("### ") {
            if let Some(v) = current.take() {
                out.push(finish(v));
            }
        } else if let Some(lang) = line.strip_prefix("```").filter(|l| !l.is_empty()) {
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            let Some((label, hex, msg)) = current.as_mut() else {
                continue;
            };
            let slot = match lang {
                "hex" => hex,
                "message" => msg,
                other => panic!("vector {label}: unexpected ```{other} block"),
            };
            assert!(slot.is_none(), "vector {label}: two ```{lang} blocks");
            *slot = Some(block.join("\n"));
        }
    }
    if let Some(v) = current.take() {
        out.push(finish(v));
    }
    assert!(!out.is_empty(), "no vectors found in docs/wire-format.md");
    out
}

fn finish((label, hex, msg): (String, Option<String>, Option<String>)) -> Vector {
    let hex = hex.unwrap_or_else(|| panic!("vector {label}: no ```hex block"));
    let msg = msg.unwrap_or_else(|| panic!("vector {label}: no ```message block"));
    let bytes = parse_hex(&label, &hex);
    let expect = parse_message(&label, &msg);
    Vector {
        label,
        bytes,
        expect,
    }
}

/// Hex digits; whitespace is insignificant and `#` comments run to the line's end.
fn parse_hex(label: &str, text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    assert!(
        digits.len() % 2 == 0,
        "vector {label}: odd number of hex digits"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).unwrap();
            u8::from_str_radix(s, 16).unwrap_or_else(|_| panic!("vector {label}: bad hex {s:?}"))
        })
        .collect()
}

fn parse_message(label: &str, text: &str) -> Expect {
    let mut fields = std::collections::BTreeMap::new();
    let mut entries = Vec::new();
    let mut fail = None;
    let mut d = Data::default();
    let text_or_empty = |v: &str| match v {
        "-" => Vec::new(),
        t => t.as_bytes().to_vec(),
    };
    let yes = |label: &str, v: &str| match v {
        "yes" => true,
        "no" => false,
        _ => panic!("vector {label}: {v:?} is not yes or no"),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("vector {label}: bad line {line:?}"));
        let value = value.trim();
        match key.trim() {
            "entry" => entries.push(parse_entry(label, value)),
            "fail" => {
                let kv = pairs(label, value, &["id", "incarnation"]);
                fail = Some((NodeId(num(label, kv[0])), num::<u32>(label, kv[1])));
            }
            "digest" => {
                let kv = pairs(label, value, &["mode", "start", "end"]);
                let dir = Direction::from_name(kv[0])
                    .unwrap_or_else(|| panic!("vector {label}: bad mode {}", kv[0]));
                let end = (kv[2] != "-").then(|| kv[2].as_bytes().to_vec());
                d.digest = Some((dir, text_or_empty(kv[1]), end));
            }
            "item" => {
                let kv = pairs(label, value, &["key", "version", "origin"]);
                let stamp = Stamp::new(num(label, kv[1]), NodeId(num(label, kv[2])));
                d.items.push((kv[0].as_bytes().to_vec(), stamp));
            }
            "data" => {
                let kv = pairs(label, value, &["key", "value", "version", "origin"]);
                let stamp = Stamp::new(num(label, kv[2]), NodeId(num(label, kv[3])));
                d.data
                    .push((kv[0].as_bytes().to_vec(), text_or_empty(kv[1]), stamp));
            }
            "key" => d.keys.push(value.as_bytes().to_vec()),
            "rumors" => {
                let kv = pairs(label, value, &["pull", "ack_wanted"]);
                d.rumors = Some((yes(label, kv[0]), yes(label, kv[1])));
            }
            "ack" => {
                let kv = pairs(label, value, &["id", "knew"]);
                d.acks.push(Ack::new(num(label, kv[0]), yes(label, kv[1])));
            }
            "seq" => d.seq = Some(num(label, value)),
            "member" => d.members.push(parse_member(label, value)),
            "target" => d.target = Some(parse_member(label, value)),
            "sync_answer" => d.sync_answer = yes(label, value),
            "sync" => {
                d.sync = value.split_whitespace().map(|h| num(label, h)).collect();
            }
            k => {
                let old = fields.insert(k.to_string(), value.to_string());
                assert!(old.is_none(), "vector {label}: {k} given twice");
            }
        }
    }
    if let Some(name) = fields.remove("error") {
        assert!(
            fields.is_empty() && entries.is_empty() && fail.is_none() && d == Data::default(),
            "vector {label}: error vectors carry only `error`"
        );
        let e = DecodeError::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .unwrap_or_else(|| panic!("vector {label}: unknown error {name:?}"));
        return Expect::Error(e);
    }
    let mut take = |k: &str| {
        fields
            .remove(k)
            .unwrap_or_else(|| panic!("vector {label}: missing {k}"))
    };
    let kind = match take("type").as_str() {
        "meet" => MessageType::Meet,
        "ping" => MessageType::Ping,
        "pong" => MessageType::Pong,
        t => MessageType::ALL
            .into_iter()
            .find(|k| k.name() == t)
            .unwrap_or_else(|| panic!("vector {label}: unknown type {t}")),
    };
    let header = Header {
        kind,
        flags: num::<u8>(label, &take("flags")),
        src_slot: num::<u16>(label, &take("src_slot")),
        dst_slot: num::<u16>(label, &take("dst_slot")),
        sender: NodeId(num(label, &take("sender"))),
        incarnation: num::<u32>(label, &take("incarnation")),
    };
    let length = num::<usize>(label, &take("length"));
    assert!(
        fields.is_empty(),
        "vector {label}: unknown fields {fields:?}"
    );
    assert_eq!(
        kind == MessageType::Fail,
        fail.is_some(),
        "vector {label}: `fail:` goes with type fail"
    );
    Expect::Message(Box::new(Described {
        header,
        entries,
        fail,
        x: d,
        length,
    }))
}

/// A swim member record: `id life refute health addr slot`, and
/// `suspecter` when suspect.
fn parse_member(label: &str, text: &str) -> Member {
    let mut keys = vec!["id", "life", "refute", "health", "addr", "slot"];
    if text.contains("health=suspect") {
        keys.push("suspecter");
    }
    let v = pairs(label, text, &keys);
    let health = match v[3] {
        "alive" => Health::Alive,
        "suspect" => Health::Suspect,
        "dead" => Health::Dead,
        h => panic!("vector {label}: unknown health {h}"),
    };
    let addr: SocketAddr = v[4]
        .parse()
        .unwrap_or_else(|_| panic!("vector {label}: bad addr {}", v[4]));
    Member {
        id: NodeId(num(label, v[0])),
        life: num(label, v[1]),
        refute: num(label, v[2]),
        health,
        endpoint: Endpoint::new(addr, num::<u16>(label, v[5])),
        suspecter: NodeId(v.get(6).map_or(0, |s| num(label, s))),
    }
}

const ENTRY_KEYS: [&str; 7] = [
    "id",
    "incarnation",
    "flags",
    "ping_age_ms",
    "pong_age_ms",
    "addr",
    "slot",
];

fn parse_entry(label: &str, text: &str) -> GossipEntry {
    let v = pairs(label, text, &ENTRY_KEYS);
    let flags = match v[2] {
        "-" => EntryFlags::default(),
        "pfail" => EntryFlags {
            pfail: true,
            fail: false,
        },
        "fail" => EntryFlags {
            pfail: false,
            fail: true,
        },
        "pfail,fail" => EntryFlags {
            pfail: true,
            fail: true,
        },
        f => panic!("vector {label}: unknown entry flags {f}"),
    };
    let ping_age_ms = match v[3] {
        "none" => NO_PING,
        n => num::<u32>(label, n),
    };
    let addr: SocketAddr = v[5]
        .parse()
        .unwrap_or_else(|_| panic!("vector {label}: bad addr {}", v[5]));
    GossipEntry {
        id: NodeId(num(label, v[0])),
        incarnation: num::<u32>(label, v[1]),
        flags,
        ping_age_ms,
        pong_age_ms: num::<u32>(label, v[4]),
        endpoint: Endpoint::new(addr, num::<u16>(label, v[6])),
    }
}

/// `key=value` pairs, exactly the keys given, in that order.
fn pairs<'t>(label: &str, text: &'t str, keys: &[&str]) -> Vec<&'t str> {
    let got: Vec<(&str, &str)> = text
        .split_whitespace()
        .map(|kv| {
            kv.split_once('=')
                .unwrap_or_else(|| panic!("vector {label}: bad pair {kv:?}"))
        })
        .collect();
    let names: Vec<&str> = got.iter().map(|(k, _)| *k).collect();
    assert_eq!(names, keys, "vector {label}: keys of {text:?}");
    got.into_iter().map(|(_, v)| v).collect()
}

/// A decimal or `0x` hexadecimal number that fits its field.
fn num<T: TryFrom<u64>>(label: &str, s: &str) -> T {
    let parsed = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    parsed
        .ok()
        .and_then(|n| T::try_from(n).ok())
        .unwrap_or_else(|| panic!("vector {label}: bad number {s:?} for its field"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
