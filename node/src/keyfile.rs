//! The cluster key file (`gossip-node --cluster-key-file PATH`): a keyring in
//! a few lines of text, and the start epochs nodes put in their nonces.
//!
//! ```text
//! # gossip cluster keyring: one directive a line; '#' starts a comment.
//! key 2 9f1c…(64 hex digits)…   # key id 0..=255 and its 32 secret bytes
//! key 3 41aa…(64 hex digits)…
//! send 3                        # which key signs what we send (default: the first)
//! retired 1                     # ids no longer accepted, counted apart
//! sealed                        # also encrypt bodies (default: authenticate only)
//! ```
//!
//! At most [`MAX_KEYS`] `key` lines. A rotation edits the file in three steps,
//! each reaching every node before the next (the agent's and the runtime's
//! keyring update, `Runtime::set_keyring`): add the new `key`; point `send`
//! at it; drop the old `key` and list it under `retired`. The file is a
//! secret: gossip-node warns when others can read it.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use gossip_core::auth::{Key, Keyring, KEY_LEN, MAX_KEYS};

/// Parses a key file's text.
///
/// # Errors
/// A one-line message naming the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Keyring, String> {
    let mut keys: Vec<Key> = Vec::new();
    let (mut send, mut retired, mut sealed) = (None, Vec::new(), false);
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let at = |what: &str| format!("line {}: {what}", n + 1);
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["key", id, secret] => {
                let id = key_id(id).map_err(|e| at(&e))?;
                if keys.iter().any(|k| k.id() == id) {
                    return Err(at(&format!("key {id} appears twice")));
                }
                if keys.len() == MAX_KEYS {
                    return Err(at(&format!("more than {MAX_KEYS} keys")));
                }
                keys.push(Key::new(id, secret_bytes(secret).map_err(|e| at(&e))?));
            }
            ["send", id] => send = Some(key_id(id).map_err(|e| at(&e))?),
            ["retired", ids @ ..] if !ids.is_empty() => {
                for id in ids {
                    retired.push(key_id(id).map_err(|e| at(&e))?);
                }
            }
            ["sealed"] => sealed = true,
            _ => {
                return Err(at(
                    "expected 'key ID HEX', 'send ID', 'retired ID...' or 'sealed'",
                ))
            }
        }
    }
    let first = keys.first().ok_or("no 'key' line")?;
    let send = send.unwrap_or(first.id());
    let sending = keys
        .iter()
        .find(|k| k.id() == send)
        .ok_or(format!("'send {send}' names no key of the file"))?;
    let mut ring = Keyring::new(sending);
    for k in keys.iter().filter(|k| k.id() != send) {
        ring.accept(k).map_err(|e| e.to_string())?;
    }
    for id in retired {
        if keys.iter().any(|k| k.id() == id) {
            return Err(format!("key {id} is both a key and retired"));
        }
        // Accept then retire: the keyring remembers only ids it retired.
        ring.accept(&Key::new(id, [0; KEY_LEN]))
            .and_then(|()| ring.retire(id))
            .map_err(|e| format!("retired {id}: {e}"))?;
    }
    ring.set_sealed(sealed);
    Ok(ring)
}

/// Reads and parses a key file; warns on stderr when it is readable by
/// others than its owner.
///
/// # Errors
/// A one-line message with the path: unreadable, or what [`parse`] says.
pub fn load(path: &Path) -> Result<Arc<Keyring>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cluster key file {}: {e}", path.display()))?;
    let ring = parse(&text).map_err(|e| format!("cluster key file {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "gossip-node: warning: cluster key file {} is readable by others (chmod 600)",
                    path.display()
                );
            }
        }
    }
    Ok(Arc::new(ring))
}

fn key_id(s: &str) -> Result<u8, String> {
    s.parse().map_err(|_| match s.len() {
        // A secret in the id's place (a swapped line) is not repeated.
        0..=8 => format!("key id {s:?} is not a number 0..=255"),
        _ => "a key id is a number 0..=255".to_owned(),
    })
}

/// The text of a key file holding `keys` (id and secret), sending with key
/// `send`, remembering `retired` ids, sealing bodies if `sealed`: what
/// [`parse`] reads back. It holds the secrets: write it only where a key
/// file may be (a 0600 file, the agent API's body), never to a log.
pub fn render(keys: &[(u8, [u8; KEY_LEN])], send: u8, retired: &[u8], sealed: bool) -> String {
    use std::fmt::Write;
    let mut out = String::from("# gossip cluster keyring\n");
    for (id, secret) in keys {
        let _ = write!(out, "key {id} ");
        for b in secret {
            let _ = write!(out, "{b:02x}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "send {send}");
    if !retired.is_empty() {
        let ids: Vec<String> = retired.iter().map(u8::to_string).collect();
        let _ = writeln!(out, "retired {}", ids.join(" "));
    }
    if sealed {
        out.push_str("sealed\n");
    }
    out
}

fn secret_bytes(hex: &str) -> Result<[u8; KEY_LEN], String> {
    let bad = || format!("a key is {} hex digits ({KEY_LEN} bytes)", 2 * KEY_LEN);
    if hex.len() != 2 * KEY_LEN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; KEY_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// A start epoch for a node's nonces (`Node::set_keyring`): the UNIX time in
/// seconds in the high 32 bits, so that a later process's epochs are higher,
/// and below it a number drawn at random once per process and counted up
/// for every start, so that no two starts in one process share one and two
/// processes started in the same second almost surely do not.
pub fn next_epoch() -> u64 {
    static START: std::sync::OnceLock<(u64, u32)> = std::sync::OnceLock::new();
    static STARTS: AtomicU32 = AtomicU32::new(0);
    let (secs, base) = *START.get_or_init(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut b = [0u8; 4];
        // No OS randomness: the time's nanoseconds still separate processes.
        if getrandom::fill(&mut b).is_err() {
            b = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
                .to_be_bytes();
        }
        // Below 2^31, so that 2^31 starts count up without wrapping.
        (secs, u32::from_be_bytes(b) >> 1)
    });
    let n = STARTS.fetch_add(1, Ordering::Relaxed);
    (secs << 32) | u64::from(base.wrapping_add(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_file_names_keys_the_sender_retired_ids_and_sealing() {
        let ring = parse(&format!(
            "# comment\nkey 2 {K1}\n\nkey 3 {}  # the new one\nsend 3\nretired 1 0\nsealed\n",
            "ab".repeat(32)
        ))
        .unwrap();
        assert_eq!(ring.sending(), 3);
        assert_eq!(ring.accepted().collect::<Vec<_>>(), [3, 2]);
        assert_eq!(ring.retired(), &[1, 0]);
        assert!(ring.sealed());
        assert_eq!(parse(&format!("key 7 {K1}")).unwrap().sending(), 7);
    }

    #[test]
    fn a_bad_file_says_which_line_and_why_in_one_line() {
        for (text, want) in [
            ("", "no 'key' line"),
            ("key 1 abcd", "line 1: a key is 64 hex digits"),
            (&format!("key 300 {K1}"), "line 1: key id \"300\""),
            (
                &format!("key 1 {K1}\nkey 1 {K1}"),
                "line 2: key 1 appears twice",
            ),
            (&format!("key 1 {K1}\nsend 2"), "'send 2' names no key"),
            (&format!("key 1 {K1}\nretired 1"), "key 1 is both"),
            (&format!("key 1 {K1}\nsecret"), "line 2: expected"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'));
        }
        let five: String = (0..5).map(|i| format!("key {i} {K1}\n")).collect();
        assert!(parse(&five)
            .unwrap_err()
            .contains("line 5: more than 4 keys"));
    }

    #[test]
    fn a_rendered_file_parses_to_its_keyring_and_errors_keep_secrets() {
        let text = render(&[(2, [7; KEY_LEN]), (3, [9; KEY_LEN])], 3, &[1], true);
        let ring = parse(&text).unwrap();
        assert_eq!(ring.sending(), 3);
        assert_eq!(ring.accepted().collect::<Vec<_>>(), [3, 2]);
        assert_eq!((ring.retired(), ring.sealed()), (&[1][..], true));
        // A line with its id and secret swapped: the error names the line only.
        let e = parse(&format!("key {K1} 2")).unwrap_err();
        assert!(!e.contains(K1) && e.starts_with("line 1:"), "{e}");
    }

    #[test]
    fn epochs_grow_within_a_process_and_carry_the_time() {
        let a = next_epoch();
        let b = next_epoch();
        assert!(b > a);
        assert!(a >> 32 > 1_700_000_000);
    }
}
