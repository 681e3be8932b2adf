//! A keyed trial's cluster keys and their rotation steps, one for every
//! world: the udp world hands the keyring to its runtime, the hosts world
//! sends it to each agent as key-file text (`gossip_node::keyfile`).
//!
//! The secrets are random bytes from the OS, held here only: `Debug` shows
//! ids alone, and nothing here writes them to a report, a log or an error.

use anyhow::{anyhow, bail, Result};
use gossip_core::auth::{Keyring, KEY_LEN};
use gossip_node::keyfile;

use crate::scenario::ActionKind;

/// The keys a trial's nodes hold, the sending one, the retired ids.
pub struct ClusterKeys {
    keys: Vec<(u8, [u8; KEY_LEN])>,
    send: u8,
    retired: Vec<u8>,
    sealed: bool,
}

impl std::fmt::Debug for ClusterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|k| k.0).collect();
        f.debug_struct("ClusterKeys")
            .field("accepted", &ids)
            .field("sending", &self.send)
            .field("retired", &self.retired)
            .field("sealed", &self.sealed)
            .finish()
    }
}

/// A fresh cluster key's secret: random bytes from the OS.
fn fresh_secret() -> Result<[u8; KEY_LEN]> {
    let mut secret = [0u8; KEY_LEN];
    getrandom::fill(&mut secret).map_err(|e| anyhow!("no OS randomness for a cluster key: {e}"))?;
    Ok(secret)
}

impl ClusterKeys {
    /// One fresh key, id 1, sending; bodies sealed if `sealed`.
    ///
    /// # Errors
    /// No OS randomness.
    pub fn new(sealed: bool) -> Result<Self> {
        Ok(ClusterKeys {
            keys: vec![(1, fresh_secret()?)],
            send: 1,
            retired: Vec::new(),
            sealed,
        })
    }

    /// The keys as a key file's text (secret: for the agents' API only).
    pub fn file(&self) -> String {
        keyfile::render(&self.keys, self.send, &self.retired, self.sealed)
    }

    /// The keyring the nodes run with.
    ///
    /// # Errors
    /// Never for keys made here (the text is `keyfile::parse`d, as an
    /// agent does).
    pub fn keyring(&self) -> Result<Keyring> {
        keyfile::parse(&self.file()).map_err(|e| anyhow!("cluster keys: {e}"))
    }

    /// Takes rotation step `step`: `key-add` accepts a fresh key (the next
    /// id), `key-switch` sends with the newest, `key-retire` retires every
    /// other. Says what it did, by key ids.
    ///
    /// # Errors
    /// Not a key step, or one the keyring refuses (a fifth key; an id past 255).
    pub fn step(&mut self, step: ActionKind) -> Result<String> {
        let newest = self.keys.iter().map(|k| k.0).max().unwrap_or(0);
        match step {
            ActionKind::KeyAdd => {
                let Some(id) = newest.checked_add(1) else {
                    bail!("key-add: key ids are used up (255)");
                };
                if self.keys.len() >= gossip_core::auth::MAX_KEYS {
                    bail!("key-add: the keyring holds its most keys already");
                }
                self.retired.retain(|&r| r != id);
                self.keys.push((id, fresh_secret()?));
                Ok(format!("every node accepts key {id}"))
            }
            ActionKind::KeySwitch => {
                self.send = newest;
                Ok(format!("every node sends with key {newest}"))
            }
            ActionKind::KeyRetire => {
                let send = self.send;
                let old: Vec<u8> = self
                    .keys
                    .iter()
                    .map(|k| k.0)
                    .filter(|&id| id != send)
                    .collect();
                self.keys.retain(|k| k.0 == send);
                self.retired.extend(&old);
                let keep = self
                    .retired
                    .len()
                    .saturating_sub(gossip_core::auth::MAX_RETIRED);
                self.retired.drain(..keep);
                Ok(format!("every node retires key(s) {old:?}"))
            }
            other => bail!("{}: not a key rotation step", other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_adds_switches_and_retires_and_shows_no_secret() {
        let mut k = ClusterKeys::new(false).unwrap();
        k.step(ActionKind::KeyAdd).unwrap();
        let ring = k.keyring().unwrap();
        assert_eq!((ring.sending(), ring.accepted().count()), (1, 2));
        k.step(ActionKind::KeySwitch).unwrap();
        assert_eq!(k.keyring().unwrap().sending(), 2);
        assert_eq!(
            k.step(ActionKind::KeyRetire).unwrap(),
            "every node retires key(s) [1]"
        );
        let ring = k.keyring().unwrap();
        assert_eq!(ring.accepted().collect::<Vec<_>>(), [2]);
        assert_eq!(ring.retired(), &[1]);
        let secret: String = k.keys[0].1.iter().map(|b| format!("{b:02x}")).collect();
        assert!(k.file().contains(&secret));
        assert!(!format!("{k:?}").contains(&secret[..8]));
        assert!(k.step(ActionKind::Crash).is_err());
    }
}
