//! The session holding an agent, and its lease: a loadgen that stops asking
//! (crashed, killed, cut off) loses the agent after `lease_ms`, so that no
//! orphan cluster keeps running on a host.

use std::time::{Duration, Instant};

use super::api::Session;

/// Shortest lease an agent grants (a shorter one would expire between two
/// requests of a busy but healthy loadgen).
pub const MIN_LEASE_MS: u64 = 200;
/// Longest lease (a day): an orphan must end some time.
pub const MAX_LEASE_MS: u64 = 86_400_000;

/// The live session and when a request last named it.
#[derive(Debug)]
pub struct Lease {
    /// The session.
    pub session: Session,
    last: Instant,
}

impl Lease {
    /// A new session for `owner` with a random id.
    pub fn new(owner: String, lease_ms: u64) -> Self {
        Lease {
            session: Session {
                id: random_hex(16),
                owner,
                lease_ms,
            },
            last: Instant::now(),
        }
    }

    /// A request named the session.
    pub fn renew(&mut self) {
        self.last = Instant::now();
    }

    /// Whether no request named it for longer than its lease.
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) > Duration::from_millis(self.session.lease_ms)
    }

    /// How long since a request named it.
    pub fn idle(&self) -> Duration {
        self.last.elapsed()
    }
}

/// `bytes` random bytes from the OS, as lowercase hex.
///
/// # Panics
/// When the OS has no random source (getrandom fails only on a broken system;
/// an agent must not hand out guessable tokens or ids there).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source (getrandom) failed"); // invariant: Linux always has one
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_only_after_its_time_without_a_request() {
        let mut l = Lease::new("me".into(), 1_000);
        let now = Instant::now();
        assert!(!l.expired(now));
        assert!(l.expired(now + Duration::from_millis(1_100)));
        l.renew();
        assert!(!l.expired(Instant::now() + Duration::from_millis(900)));
        assert_eq!(l.session.id.len(), 32);
        assert_ne!(l.session.id, Lease::new("me".into(), 1).session.id);
    }
}
