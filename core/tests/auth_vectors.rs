//! The authentication trailer's test vectors in `docs/wire-format.md` §8,
//! checked in both directions: sealing the plain message with the stated key,
//! epoch and counter gives exactly the datagram, and opening the datagram gives
//! back the message (or, for a refusal vector, the stated error).

use gossip_core::auth::{Key, Keyring};
use gossip_core::wire::{self, FLAG_AUTH, FLAG_SEALED, HEADER_LEN, TRAILER_LEN};
use gossip_core::NodeId;
use std::collections::BTreeMap;

const DOC: &str = include_str!("../../docs/wire-format.md");

#[derive(Debug)]
struct Vector {
    label: String,
    bytes: Vec<u8>,
    fields: BTreeMap<String, String>,
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let mut lines = DOC.lines();
    let mut label = None::<String>;
    let (mut hex, mut fields) = (None, None);
    while let Some(line) = lines.next() {
        if line.starts_with("## ") || line.starts_with("### ") {
            if let Some(l) = label.take() {
                out.push(finish(l, hex.take(), fields.take()));
            }
            label = line
                .strip_prefix("### auth vector: ")
                .map(|l| l.trim().to_string());
        } else if let Some(lang) = line.strip_prefix("```").filter(|l| !l.is_empty()) {
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            if label.is_none() {
                continue;
            }
            match lang {
                "hex" => hex = Some(parse_hex(&block.join("\n"))),
                "auth" => {
                    fields = Some(
                        block
                            .iter()
                            .filter_map(|l| l.split_once(": "))
                            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                            .collect(),
                    )
                }
                other => panic!("auth vector: unexpected ```{other} block"),
            }
        }
    }
    if let Some(l) = label {
        out.push(finish(l, hex, fields));
    }
    out
}

fn finish(label: String, hex: Option<Vec<u8>>, fields: Option<BTreeMap<String, String>>) -> Vector {
    Vector {
        bytes: hex.unwrap_or_else(|| panic!("auth vector {label}: no ```hex block")),
        fields: fields.unwrap_or_else(|| panic!("auth vector {label}: no ```auth block")),
        label,
    }
}

fn parse_hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.bytes().filter(|b| !b.is_ascii_whitespace()))
        .collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn num(v: &Vector, field: &str) -> u64 {
    let s = &v.fields[field];
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

fn keyring(v: &Vector) -> Keyring {
    let secret: [u8; 32] = parse_hex(&v.fields["key"]).try_into().unwrap();
    let mut ring = Keyring::new(&Key::new(num(v, "key_id") as u8, secret));
    ring.set_sealed(v.fields["sealed"] == "yes");
    ring
}

#[test]
fn the_document_holds_sealed_and_clear_vectors_and_refusals() {
    let vs = vectors();
    let labels: Vec<&str> = vs.iter().map(|v| v.label.as_str()).collect();
    for want in [
        "auth-ping-empty",
        "auth-fail-sealed",
        "auth-reject-bad-tag",
        "auth-reject-unknown-key",
    ] {
        assert_eq!(labels.iter().filter(|l| **l == want).count(), 1, "{want}");
    }
}

#[test]
fn every_auth_vector_seals_to_its_bytes_and_opens_to_its_message() {
    for v in vectors() {
        let ring = keyring(&v);
        let mut scratch = vec![0u8; v.bytes.len()];
        if let Some(error) = v.fields.get("error") {
            let got = ring.open(&v.bytes, &mut scratch).map(|_| ()).unwrap_err();
            assert_eq!(got.name(), error, "{}", v.label);
            continue;
        }
        let plain = parse_hex(&v.fields["plain"]);
        let sender = NodeId(num(&v, "sender"));
        let (epoch, counter) = (num(&v, "epoch"), num(&v, "counter"));
        let mut buf = plain.clone();
        buf.resize(plain.len() + TRAILER_LEN, 0);
        let len = ring
            .seal(sender, epoch, counter, &mut buf, plain.len())
            .unwrap();
        assert_eq!(hex(&buf[..len]), hex(&v.bytes), "{}: sealed bytes", v.label);
        let opened = ring.open(&v.bytes, &mut scratch).unwrap();
        assert_eq!((opened.epoch, opened.counter), (epoch, counter));
        let mut flagged = plain.clone();
        flagged[4] |= FLAG_AUTH | if ring.sealed() { FLAG_SEALED } else { 0 };
        assert_eq!(hex(opened.message), hex(&flagged), "{}: opened", v.label);
        let msg = wire::decode_opened(opened.message).unwrap();
        assert_eq!(msg.header.sender, sender);
        assert_eq!(wire::decode(&plain).unwrap().body, msg.body);
        assert_eq!(v.bytes.len(), plain.len() + TRAILER_LEN);
        assert!(plain.len() >= HEADER_LEN);
    }
}
