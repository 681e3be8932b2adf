//! What a node refuses and adds at its edge: the cluster key (keyring,
//! sealing, replay windows; `crate::auth`) and join cookies
//! (`crate::cookie`). Kept apart from `node.rs`'s dispatch: without a key
//! or cookies none of it runs, and the wire is byte for byte as before.

use alloc::sync::Arc;

use super::Node;
use crate::auth::{Auth, AuthError, Keyring, Window};
use crate::cookie::Cookies;
use crate::ids::Endpoint;
use crate::outbox::{Outgoing, Skip};
use crate::time::Instant;
use crate::wire::{self, DecodeError, Header, MessageType, COOKIE_LEN, FLAG_COOKIE};

impl Node {
    /// Requires proven joins from now on (see [`crate::cookie`]): a MEET is
    /// answered with a stateless cookie and nothing is kept for it; only a
    /// PING that returns the cookie admits its sender. This node's MEETs
    /// carry room for the answer's cookie, and it returns the cookies it is
    /// given. `secret` is node-local (gossip-node draws it from the OS);
    /// every node of a cluster should require cookies, or none.
    pub fn require_cookies(&mut self, secret: [u8; 32]) {
        self.cookies = Some(Cookies::new(&secret));
    }

    /// Authenticates every datagram from now on with `keyring` (see
    /// [`crate::auth`]): sends with its sending key, accepts its accepted
    /// keys, refuses the rest. `epoch` names this start of the node in every
    /// nonce: it must never repeat for this node's id and a key, and should
    /// grow from one start to the next (peers refuse an older start's
    /// datagrams as replays). gossip-node uses the UNIX time in its high
    /// 32 bits and random bits below.
    ///
    /// Called again with the same epoch (a key rotation), the counter goes
    /// on; with another, it starts over. The replay windows are kept.
    pub fn set_keyring(&mut self, keyring: Arc<Keyring>, epoch: u64) {
        match &mut self.auth {
            Some(a) => {
                a.keyring = keyring;
                a.sealer = None;
                if a.epoch != epoch {
                    a.epoch = epoch;
                    a.counter = 0;
                }
            }
            None => {
                self.auth = Some(Auth {
                    keyring,
                    epoch,
                    counter: 0,
                    windows: alloc::vec::Vec::new(),
                    scratch: alloc::vec![0; self.config.max_datagram()],
                    sealer: None,
                })
            }
        }
    }

    /// Replaces the keyring of a node that has one (a rotation step): epoch,
    /// counter and replay windows go on. Returns false, changing nothing,
    /// when the node has no keyring (use [`set_keyring`](Node::set_keyring)).
    pub fn update_keyring(&mut self, keyring: Arc<Keyring>) -> bool {
        match &mut self.auth {
            Some(a) => {
                a.keyring = keyring;
                a.sealer = None;
                true
            }
            None => false,
        }
    }

    /// The keyring this node authenticates with, if any.
    pub fn keyring(&self) -> Option<&Arc<Keyring>> {
        self.auth.as_ref().map(|a| &a.keyring)
    }

    /// A stranger whose PING returned a good cookie joins as a member at
    /// once; its index, unless the table had no room.
    pub(super) fn admit(&mut self, now: Instant, from: Endpoint, h: &Header) -> Option<usize> {
        let (m, mut cx) = self.membership();
        let i = m.discover(&mut cx, now, h.sender, from, h.incarnation, true)?;
        m.complete_handshake(&mut cx, now, i);
        Some(i)
    }

    /// Counts an authentication refusal: a drop, not a decode error.
    pub(super) fn refuse(&mut self, e: AuthError) -> Result<(), DecodeError> {
        self.outbox.stats.auth.count(e);
        Ok(())
    }

    /// Whether an authenticated datagram (`trailer`: its epoch and counter)
    /// from peer `i` is new, by the peer's replay window; recorded if so.
    /// Unauthenticated datagrams reach here only without a keyring.
    pub(super) fn fresh(&mut self, i: usize, h: &Header, trailer: Option<(u64, u64)>) -> bool {
        let (Some(a), Some((epoch, counter))) = (&mut self.auth, trailer) else {
            return true;
        };
        // Indexed like the peer table, so it never outgrows it.
        if a.windows.len() <= i {
            a.windows.resize(i + 1, Window::default());
        }
        a.windows[i].accept(h.sender, h.incarnation, epoch, counter)
    }

    /// Bytes a datagram's trailer takes: none without a keyring.
    pub(super) fn trailer_len(&self) -> usize {
        match self.auth {
            Some(_) => wire::TRAILER_LEN,
            None => 0,
        }
    }

    /// The cookie a message carries under join cookies: zeros in a MEET (room
    /// for the answer's), a fresh one in a PONG answering a MEET, the one
    /// `to` gave us in a PING.
    pub(super) fn cookie_for(&mut self, now: Instant, out: &Outgoing) -> Option<[u8; COOKIE_LEN]> {
        let jar = self.cookies.as_mut()?;
        match out.kind {
            MessageType::Meet => Some([0; COOKIE_LEN]),
            MessageType::Pong if out.cookie => Some(jar.make(out.to, now)),
            MessageType::Ping => jar.for_endpoint(out.to, now),
            _ => None,
        }
    }

    /// Appends the trailer to the message of `len` bytes, with a keyring.
    pub(super) fn seal(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Skip> {
        let Some(a) = &mut self.auth else {
            return Ok(len);
        };
        let counter = a.counter;
        a.counter += 1;
        if a.sealer.is_none() {
            a.sealer = a.keyring.sealer(self.me.id, a.epoch);
        }
        a.sealer
            .as_ref()
            .and_then(|s| s.seal(counter, buf, len))
            .ok_or(Skip::TooSmall)
    }
}

/// Appends `cookie` (if any) to the message of `len` bytes and flags it.
pub(super) fn append_cookie(
    buf: &mut [u8],
    len: usize,
    cookie: Option<[u8; COOKIE_LEN]>,
) -> Result<usize, Skip> {
    let Some(c) = cookie else {
        return Ok(len);
    };
    let end = len + COOKIE_LEN;
    buf.get_mut(len..end)
        .ok_or(Skip::TooSmall)?
        .copy_from_slice(&c);
    buf[wire::FLAGS_AT] |= FLAG_COOKIE;
    Ok(end)
}
