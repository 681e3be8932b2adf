//! Proven joins: a stateless cookie answers a MEET, and only a PING that
//! returns it makes its sender a member ([`Node::require_cookies`](crate::Node::require_cookies)).
//!
//! Without cookies a MEET puts its sender in the peer table (in handshake)
//! and any PING from it then completes the handshake: a blind spoofer, who
//! never sees an answer, can join from an address it does not own. With
//! cookies a node keeps nothing for a MEET: it answers with a PONG carrying a
//! 16-byte cookie, the CMAC (AES-256) under a node-local secret of the
//! sender's address, port and slot and a 10-second time bucket. The MEET
//! itself carries 16 zero bytes in the cookie's place, so that the answer is
//! no larger than the question. A PING that returns a cookie of this bucket
//! or the previous one admits its sender as a member; one with a wrong or
//! old cookie is refused and counted ([`AuthDrops::cookie`](crate::auth::AuthDrops)).
//! Before that, an unknown address gets no more bytes than it sent.
//!
//! The joining side keeps the cookies it receives in a small jar, by the
//! endpoint that sent them, and returns each in its PINGs to that endpoint
//! until it expires.

use crate::ids::Endpoint;
use crate::time::Instant;
use aes::Aes256;
use alloc::vec::Vec;
use cmac::{Cmac, KeyInit, Mac};

/// Bytes of a cookie on the wire.
pub use crate::wire::COOKIE_LEN;
/// A cookie's time bucket: it is good in its bucket and the next.
pub const BUCKET_MICROS: u64 = 10_000_000;
/// Cookies a node holds for endpoints it is joining.
const JAR: usize = 16;

/// A node's cookie state: its secret and the cookies it was given.
pub(crate) struct Cookies {
    mac: Cmac<Aes256>,
    jar: Vec<(Endpoint, [u8; COOKIE_LEN], Instant)>,
}

impl core::fmt::Debug for Cookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cookies")
            .field("jar", &self.jar.len())
            .finish_non_exhaustive()
    }
}

impl Cookies {
    pub(crate) fn new(secret: &[u8; 32]) -> Self {
        Cookies {
            mac: <Cmac<Aes256> as KeyInit>::new(secret.into()),
            jar: Vec::new(),
        }
    }

    /// The cookie for `to` in `now`'s bucket.
    pub(crate) fn make(&self, to: Endpoint, now: Instant) -> [u8; COOKIE_LEN] {
        self.at(to, now.as_micros() / BUCKET_MICROS)
    }

    /// Whether `cookie` is `from`'s, of this bucket or the previous one.
    pub(crate) fn check(&self, from: Endpoint, cookie: &[u8], now: Instant) -> bool {
        let b = now.as_micros() / BUCKET_MICROS;
        [b, b.wrapping_sub(1)].iter().any(|&b| {
            let want = self.at(from, b);
            // Constant time: a cookie is a secret's output.
            want.len() == cookie.len()
                && want.iter().zip(cookie).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
        })
    }

    fn at(&self, to: Endpoint, bucket: u64) -> [u8; COOKIE_LEN] {
        let addr = to.addr();
        let ip = match addr.ip() {
            core::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            core::net::IpAddr::V6(v6) => v6.octets(),
        };
        let mut mac = self.mac.clone();
        mac.update(&ip);
        mac.update(&addr.port().to_be_bytes());
        mac.update(&to.slot().to_be_bytes());
        mac.update(&bucket.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Keeps the cookie `from` gave us (the oldest goes when the jar is full).
    pub(crate) fn keep(&mut self, from: Endpoint, cookie: [u8; COOKIE_LEN], now: Instant) {
        self.jar.retain(|(e, ..)| *e != from);
        if self.jar.len() >= JAR {
            self.jar.remove(0);
        }
        self.jar.push((from, cookie, now));
    }

    /// The cookie to return to `to`, if one is kept and still good.
    pub(crate) fn for_endpoint(&mut self, to: Endpoint, now: Instant) -> Option<[u8; COOKIE_LEN]> {
        self.jar
            .retain(|(_, _, at)| now.as_micros().saturating_sub(at.as_micros()) < BUCKET_MICROS);
        self.jar.iter().find(|(e, ..)| *e == to).map(|(_, c, _)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_good_for_its_endpoint_and_two_buckets_only() {
        let c = Cookies::new(&[7; 32]);
        let a = Endpoint::new("127.0.0.1:7000".parse().unwrap(), 0);
        let b = Endpoint::new("127.0.0.1:7000".parse().unwrap(), 1);
        let t = Instant::from_micros(5 * BUCKET_MICROS + 3);
        let k = c.make(a, t);
        assert!(c.check(a, &k, t));
        assert!(c.check(a, &k, Instant::from_micros(6 * BUCKET_MICROS + 9)));
        assert!(!c.check(a, &k, Instant::from_micros(7 * BUCKET_MICROS)));
        assert!(!c.check(b, &k, t));
        assert!(!c.check(a, &k[..15], t));
        assert!(!Cookies::new(&[8; 32]).check(a, &k, t));
    }
}
