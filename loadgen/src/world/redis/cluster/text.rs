//! Reading Redis's text replies: CLUSTER NODES listings and CLUSTER INFO.

use std::collections::HashMap;

use redis::Value;

use super::Seen;

/// A Redis node id: 40 lowercase hex digits.
pub(super) type Id = [u8; 40];

/// `view` bits: listed at least once, flagged `fail?`, flagged `fail`.
pub(super) const KNOWN: u8 = 1;
pub(super) const PFAIL: u8 = 2;
pub(super) const FAIL: u8 = 4;

/// An id as text.
pub(super) fn id_str(id: &Id) -> &str {
    // parse_id admits hex digits only, which are ASCII.
    std::str::from_utf8(id).expect("an Id holds ASCII hex digits")
}

/// The id at the start of `bytes` if it is exactly 40 hex digits.
pub(super) fn parse_id(bytes: &[u8]) -> Option<Id> {
    let id: Id = bytes.get(..40)?.try_into().ok()?;
    (id.iter().all(u8::is_ascii_hexdigit) && bytes.len() == 40).then_some(id)
}

/// A reply's text: a bulk, simple or verbatim string that is UTF-8.
pub(super) fn reply_text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s),
        _ => None,
    }
}

/// One line of CLUSTER NODES:
/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <epoch> <link> <slots…>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub id: Id,
    /// `PFAIL` and/or `FAIL`.
    pub flags: u8,
    /// In handshake: the id is a random placeholder until the handshake ends.
    pub handshake: bool,
}

/// The entries of a CLUSTER NODES reply; malformed lines are skipped.
#[derive(Debug)]
pub(super) struct Listing<'a> {
    lines: std::str::Lines<'a>,
}

impl<'a> Listing<'a> {
    pub(super) fn new(text: &'a str) -> Listing<'a> {
        Listing {
            lines: text.lines(),
        }
    }
}

impl Iterator for Listing<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        for line in self.lines.by_ref() {
            let mut fields = line.split(' ');
            let (Some(id), Some(_addr), Some(flag_field)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Some(id) = parse_id(id.as_bytes()) else {
                continue;
            };
            let mut entry = Entry {
                id,
                flags: 0,
                handshake: false,
            };
            for flag in flag_field.split(',') {
                match flag {
                    "fail?" => entry.flags |= PFAIL,
                    "fail" => entry.flags |= FAIL,
                    "handshake" => entry.handshake = true,
                    _ => {}
                }
            }
            return Some(entry);
        }
        None
    }
}

/// Diffs node `n`'s CLUSTER NODES `listing` against `row`, what it listed
/// last (`KNOWN | PFAIL | FAIL` by node index, from `index`), and updates
/// it: `saw(about, what)` for each change. Handshake entries (a temporary
/// id), unknown ids and `n` itself are skipped; a node listed before and
/// missing now is forgotten.
pub(super) fn diff(
    row: &mut [u8],
    index: &HashMap<Id, usize>,
    n: usize,
    listing: &str,
    mut saw: impl FnMut(usize, Seen),
) {
    // Set on the entries of this listing while it is read.
    const LISTED: u8 = 8;
    for entry in Listing::new(listing) {
        if entry.handshake {
            continue;
        }
        let Some(&about) = index.get(&entry.id) else {
            continue;
        };
        let Some(old) = row.get(about).copied() else {
            continue;
        };
        if about == n || old & LISTED != 0 {
            continue;
        }
        let new = KNOWN | entry.flags;
        row[about] = new | LISTED;
        if old & KNOWN == 0 {
            saw(about, Seen::Discovered);
        }
        let gained = new & !old;
        if gained & FAIL != 0 {
            saw(about, Seen::Fail);
        } else if gained & PFAIL != 0 {
            saw(about, Seen::Pfail);
        } else if old & (PFAIL | FAIL) != 0 && new & (PFAIL | FAIL) == 0 {
            saw(about, Seen::Alive);
        }
    }
    for (about, was) in row.iter_mut().enumerate() {
        if *was & LISTED != 0 {
            *was &= !LISTED;
        } else if *was & KNOWN != 0 {
            *was = 0;
            saw(about, Seen::Forgotten);
        }
    }
}

/// Cluster bus messages by type, from CLUSTER INFO's
/// `cluster_stats_messages_<type>_{sent,received}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Messages {
    /// PING.
    pub ping: u64,
    /// PONG (answers to PING and MEET, and broadcasts).
    pub pong: u64,
    /// MEET.
    pub meet: u64,
    /// FAIL.
    pub fail: u64,
    /// Every other type (PUBLISH, UPDATE, AUTH-REQ/ACK, MFSTART, MODULE, …).
    pub other: u64,
    /// All types (`cluster_stats_messages_{sent,received}`).
    pub total: u64,
}

impl Messages {
    fn add(&mut self, kind: &str, count: u64) {
        match kind {
            "ping" => self.ping += count,
            "pong" => self.pong += count,
            "meet" => self.meet += count,
            "fail" => self.fail += count,
            _ => self.other += count,
        }
    }
}

/// (sent, received) from a CLUSTER INFO reply. Redis lists a type only once
/// its count is non-zero.
pub(super) fn messages(info: &str) -> (Messages, Messages) {
    let (mut sent, mut received) = (Messages::default(), Messages::default());
    for line in info.lines() {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let Some(rest) = key.strip_prefix("cluster_stats_messages_") else {
            continue;
        };
        let Ok(count) = value.parse::<u64>() else {
            continue;
        };
        match rest {
            "sent" => sent.total = count,
            "received" => received.total = count,
            _ => {
                if let Some(kind) = rest.strip_suffix("_sent") {
                    sent.add(kind, count);
                } else if let Some(kind) = rest.strip_suffix("_received") {
                    received.add(kind, count);
                }
            }
        }
    }
    (sent, received)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "07c37dfeb235213a872192d90877d0cd55635b91";
    const B: &str = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1";

    #[test]
    fn a_listing_yields_ids_and_failure_flags() {
        let text = format!(
            "{A} 127.0.0.1:30004@31004 myself,master - 0 0 1 connected 0-5460\r\n\
             {B} 127.0.0.1:30002@31002 master,fail? - 1426238316232 1426238311000 2 connected 5461-10922\r\n\
             e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30003@31003 master,fail - 1 1 3 disconnected\r\n\
             292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f :0@0 handshake,noaddr - 0 0 0 disconnected\r\n\
             garbage\r\n"
        );
        let entries: Vec<Entry> = Listing::new(&text).collect();
        assert_eq!(entries.len(), 4);
        assert_eq!(id_str(&entries[0].id), A);
        assert_eq!(entries[0].flags, 0);
        assert_eq!(entries[1].flags, PFAIL);
        assert_eq!(entries[2].flags, FAIL);
        assert!(entries[3].handshake);
    }

    #[test]
    fn a_listing_diffed_against_the_last_says_what_changed() {
        let (a, b, c) = (
            parse_id(A.as_bytes()).unwrap(),
            parse_id(B.as_bytes()).unwrap(),
            [b'c'; 40],
        );
        let index: HashMap<Id, usize> = [(a, 0), (b, 1), (c, 2)].into_iter().collect();
        let line =
            |id: &str, flags: &str| format!("{id} 127.0.0.1:1@2 {flags} - 0 0 1 connected\r\n");
        let c_str = std::str::from_utf8(&c).unwrap();
        let mut row = [0u8; 3];
        let mut diff_of = |listing: String| {
            let mut out = Vec::new();
            diff(&mut row, &index, 0, &listing, |about, what| {
                out.push((about, what))
            });
            out
        };
        let first = line(A, "myself,master") + &line(B, "master,fail?") + &line(c_str, "master");
        assert_eq!(
            diff_of(first),
            [
                (1, Seen::Discovered),
                (1, Seen::Pfail),
                (2, Seen::Discovered)
            ],
            "itself is skipped"
        );
        let second = line(B, "master,fail") + &line(c_str, "master,handshake");
        assert_eq!(
            diff_of(second),
            [(1, Seen::Fail), (2, Seen::Forgotten)],
            "a handshake entry is no listing of the node"
        );
        let third = line(B, "master") + &line(B, "master");
        assert_eq!(
            diff_of(third),
            [(1, Seen::Alive)],
            "a repeated line counts once"
        );
        assert_eq!(diff_of(line(B, "master")), [], "nothing changed");
    }

    #[test]
    fn ids_are_exactly_forty_hex_digits() {
        assert!(parse_id(A.as_bytes()).is_some());
        assert!(parse_id(&A.as_bytes()[..39]).is_none());
        assert!(parse_id(format!("{A}0").as_bytes()).is_none());
        assert!(parse_id(A.replace('7', "z").as_bytes()).is_none());
    }

    #[test]
    fn cluster_info_counts_messages_by_type() {
        let info = "cluster_state:ok\r\ncluster_stats_messages_ping_sent:10\r\n\
                    cluster_stats_messages_pong_sent:12\r\ncluster_stats_messages_meet_sent:1\r\n\
                    cluster_stats_messages_update_sent:2\r\ncluster_stats_messages_sent:25\r\n\
                    cluster_stats_messages_ping_received:11\r\ncluster_stats_messages_fail_received:3\r\n\
                    cluster_stats_messages_received:14\r\n";
        let (sent, received) = messages(info);
        assert_eq!(
            sent,
            Messages {
                ping: 10,
                pong: 12,
                meet: 1,
                fail: 0,
                other: 2,
                total: 25
            }
        );
        assert_eq!(
            received,
            Messages {
                ping: 11,
                fail: 3,
                total: 14,
                ..Messages::default()
            }
        );
    }
}
