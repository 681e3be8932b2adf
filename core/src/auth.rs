//! Cluster keys: every datagram authenticated, and its body optionally sealed.
//!
//! Over 600 lines because the key, the keyring, the trailer's layout, sealing
//! and opening and the replay window are one mechanism that must be read and
//! reviewed together (a forty-line tail is its tests).
//!
//! A node given a [`Keyring`] ([`Node::set_keyring`](crate::Node::set_keyring))
//! appends a trailer to each datagram it sends (`docs/wire-format.md` §8):
//! the id of the key it used, its start epoch, a counter, and the 16-byte tag
//! of XAES-256-GCM over the header and body (and the trailer's first fields).
//! The 24-byte nonce is `sender id ‖ epoch ‖ counter`: a node's id is its own,
//! its epoch is new every start and its counter counts up within the start, so
//! a nonce never repeats for a key. Nothing is drawn at random per datagram.
//!
//! A receiver with a keyring refuses, and counts in [`AuthDrops`], a datagram
//! without a trailer, one made with a key it does not hold or has retired, and
//! one whose tag does not verify; a node's replay [`Window`] per peer refuses
//! a counter it has seen, or one too old to tell. A node without a keyring
//! refuses every authenticated datagram (`no_key`). Nothing here panics on
//! input or allocates per datagram.
//!
//! What a key does not protect: traffic analysis (who talks to whom, how much,
//! which message types: the header stays clear even when the body is sealed),
//! and a member that holds the key, which can say anything a member can.

use crate::ids::NodeId;
use crate::wire::{self, trailer, FLAG_AUTH, FLAG_SEALED, HEADER_LEN, TRAILER_LEN};
use alloc::vec::Vec;
use xaes_256_gcm::aead::{inout::InOutBuf, AeadInOut, KeyInit};
use xaes_256_gcm::aes::cipher::BlockCipherEncrypt;
use xaes_256_gcm::aes::Aes256Enc;
use xaes_256_gcm::aes_gcm::aead::consts::U12;
use xaes_256_gcm::aes_gcm::AesGcm;

/// AES-256-GCM on an encryption-only AES key: GCM never decrypts a block, so
/// the decryption key schedule (240 bytes a key, and its time on every
/// derivation) is left out. The same cipher as the crate's `Aes256Gcm`.
type Aes256Gcm = AesGcm<Aes256Enc, U12>;
use xaes_256_gcm::{Nonce, Tag};

/// Bytes in a cluster key.
pub const KEY_LEN: usize = 32;
/// Most keys a keyring accepts at once (the sending key among them).
pub const MAX_KEYS: usize = 4;
/// Most retired key ids a keyring remembers, to count their use apart.
pub const MAX_RETIRED: usize = 8;
/// Counters a replay window remembers below the highest it has seen.
pub const WINDOW: u64 = 64;

/// One cluster key and the id that names it on the wire. Its `Debug` shows the
/// id alone: a key is a secret and must not reach a log or a report.
#[derive(Clone)]
pub struct Key {
    id: u8,
    secret: [u8; KEY_LEN],
}

impl Key {
    /// Key `id` with secret bytes `secret`.
    pub fn new(id: u8, secret: [u8; KEY_LEN]) -> Self {
        Key { id, secret }
    }

    /// Its id.
    pub fn id(&self) -> u8 {
        self.id
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Key {{ id: {}, .. }}", self.id)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // Best effort; the cipher's own copy is zeroised by the crate.
        self.secret = [0; KEY_LEN];
    }
}

/// Why a keyring change was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringError {
    /// [`MAX_KEYS`] keys are accepted already.
    Full,
    /// A key with that id is accepted already.
    DuplicateId,
    /// No accepted key has that id.
    UnknownKey,
    /// The sending key cannot be retired: switch senders first.
    RetiringSendingKey,
}

impl core::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            KeyringError::Full => "the keyring holds its most keys already",
            KeyringError::DuplicateId => "a key with that id is in the keyring already",
            KeyringError::UnknownKey => "no key in the keyring has that id",
            KeyringError::RetiringSendingKey => "the sending key cannot be retired",
        })
    }
}

impl core::error::Error for KeyringError {}

/// Why an authenticated (or unauthenticated) datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// It carries a trailer, and this node has no keyring.
    NoKey,
    /// This node has a keyring, and the datagram carries no trailer.
    Unauthenticated,
    /// Its key id names no key the keyring holds or remembers.
    UnknownKey,
    /// Its key id names a key the keyring has retired.
    RetiredKey,
    /// The tag does not verify (a flipped bit, a forgery, another key under
    /// the same id), or the datagram is too short to hold a trailer.
    BadTag,
    /// Its counter was seen already from that sender, or is too old to tell.
    Replay,
    /// Join cookies required (`crate::cookie`): a MEET without room for a
    /// cookie, or a PING from an unknown sender with a wrong or old one.
    Cookie,
}

impl AuthError {
    /// Snake-case name, as used in metrics and `docs/wire-format.md`.
    pub fn name(self) -> &'static str {
        match self {
            AuthError::NoKey => "no_key",
            AuthError::Unauthenticated => "unauthenticated",
            AuthError::UnknownKey => "unknown_key",
            AuthError::RetiredKey => "retired_key",
            AuthError::BadTag => "bad_tag",
            AuthError::Replay => "replay",
            AuthError::Cookie => "cookie",
        }
    }
}

impl core::fmt::Display for AuthError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::error::Error for AuthError {}

/// Datagrams refused by the cluster key or join cookie checks, by reason
/// (without a keyring or cookies, all zero but `no_key`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthDrops {
    /// [`AuthError::NoKey`].
    pub no_key: u64,
    /// [`AuthError::Unauthenticated`].
    pub unauthenticated: u64,
    /// [`AuthError::UnknownKey`].
    pub unknown_key: u64,
    /// [`AuthError::RetiredKey`].
    pub retired_key: u64,
    /// [`AuthError::BadTag`].
    pub bad_tag: u64,
    /// [`AuthError::Replay`].
    pub replay: u64,
    /// [`AuthError::Cookie`].
    pub cookie: u64,
}

impl AuthDrops {
    /// Counts one refusal.
    pub fn count(&mut self, e: AuthError) {
        *match e {
            AuthError::NoKey => &mut self.no_key,
            AuthError::Unauthenticated => &mut self.unauthenticated,
            AuthError::UnknownKey => &mut self.unknown_key,
            AuthError::RetiredKey => &mut self.retired_key,
            AuthError::BadTag => &mut self.bad_tag,
            AuthError::Replay => &mut self.replay,
            AuthError::Cookie => &mut self.cookie,
        } += 1;
    }

    /// Every refusal.
    pub fn total(&self) -> u64 {
        self.no_key
            + self.unauthenticated
            + self.unknown_key
            + self.retired_key
            + self.bad_tag
            + self.replay
            + self.cookie
    }

    /// `(name, count)` pairs in a fixed order, for metrics.
    pub fn named(&self) -> [(&'static str, u64); 7] {
        [
            (AuthError::NoKey.name(), self.no_key),
            (AuthError::Unauthenticated.name(), self.unauthenticated),
            (AuthError::UnknownKey.name(), self.unknown_key),
            (AuthError::RetiredKey.name(), self.retired_key),
            (AuthError::BadTag.name(), self.bad_tag),
            (AuthError::Replay.name(), self.replay),
            (AuthError::Cookie.name(), self.cookie),
        ]
    }
}

/// The keys a cluster shares: one that signs what this node sends and a few
/// that it accepts (the sending key among them), and the ids of keys it has
/// retired. Rotation: accept the new key everywhere, switch every sender to
/// it, retire the old one. Many nodes may share one keyring (an `Arc`): it
/// holds no per-node state.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(u8, Derive)>,
    sending: u8,
    retired: Vec<u8>,
    sealed: bool,
}

impl core::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|k| k.0).collect();
        f.debug_struct("Keyring")
            .field("accepted", &ids)
            .field("sending", &self.sending)
            .field("retired", &self.retired)
            .field("sealed", &self.sealed)
            .finish()
    }
}

impl Keyring {
    /// A keyring that sends with `key` and accepts only it; authentication
    /// only (bodies stay clear).
    pub fn new(key: &Key) -> Self {
        Keyring {
            keys: alloc::vec![entry(key)],
            sending: key.id,
            retired: Vec::new(),
            sealed: false,
        }
    }

    /// Whether bodies are encrypted as well as authenticated. Receivers read
    /// it from each datagram's header, so nodes may differ.
    pub fn set_sealed(&mut self, sealed: bool) {
        self.sealed = sealed;
    }

    /// Whether bodies are encrypted.
    pub fn sealed(&self) -> bool {
        self.sealed
    }

    /// Accepts `key` as well (it leaves the retired list if it was there).
    ///
    /// # Errors
    /// [`KeyringError::Full`], [`KeyringError::DuplicateId`].
    pub fn accept(&mut self, key: &Key) -> Result<(), KeyringError> {
        if self.keys.iter().any(|k| k.0 == key.id) {
            return Err(KeyringError::DuplicateId);
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyringError::Full);
        }
        self.retired.retain(|&id| id != key.id);
        self.keys.push(entry(key));
        Ok(())
    }

    /// Sends with accepted key `id` from now on.
    ///
    /// # Errors
    /// [`KeyringError::UnknownKey`].
    pub fn set_sending(&mut self, id: u8) -> Result<(), KeyringError> {
        if !self.keys.iter().any(|k| k.0 == id) {
            return Err(KeyringError::UnknownKey);
        }
        self.sending = id;
        Ok(())
    }

    /// Stops accepting key `id`; its use is counted as `retired_key` from now
    /// on (for the last [`MAX_RETIRED`] retired).
    ///
    /// # Errors
    /// [`KeyringError::UnknownKey`], [`KeyringError::RetiringSendingKey`].
    pub fn retire(&mut self, id: u8) -> Result<(), KeyringError> {
        if id == self.sending {
            return Err(KeyringError::RetiringSendingKey);
        }
        let at = self
            .keys
            .iter()
            .position(|k| k.0 == id)
            .ok_or(KeyringError::UnknownKey)?;
        self.keys.remove(at);
        if self.retired.len() >= MAX_RETIRED {
            self.retired.remove(0);
        }
        self.retired.push(id);
        Ok(())
    }

    /// The sending key's id.
    pub fn sending(&self) -> u8 {
        self.sending
    }

    /// Ids of the accepted keys, in the order accepted.
    pub fn accepted(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().map(|k| k.0)
    }

    /// Ids of the retired keys it remembers, oldest first.
    pub fn retired(&self) -> &[u8] {
        &self.retired
    }

    fn derive(&self, id: u8) -> Result<&Derive, AuthError> {
        match self.keys.iter().find(|k| k.0 == id) {
            Some((_, d)) => Ok(d),
            None if self.retired.contains(&id) => Err(AuthError::RetiredKey),
            None => Err(AuthError::UnknownKey),
        }
    }

    /// Seals the message of `len` bytes at the start of `buf` in place: sets
    /// [`FLAG_AUTH`] (and [`FLAG_SEALED`]), encrypts the body if sealed and
    /// appends the trailer. Returns the datagram's length, or `None` when
    /// `buf` has no room for the trailer (nothing is to be sent then).
    pub fn seal(
        &self,
        sender: NodeId,
        epoch: u64,
        counter: u64,
        buf: &mut [u8],
        len: usize,
    ) -> Option<usize> {
        self.sealer(sender, epoch)?.seal(counter, buf, len)
    }

    /// What seals `sender`'s datagrams of `epoch` with the sending key: the
    /// XAES-256-GCM key derived from the nonce's first half (sender id and
    /// the epoch's high 32 bits) once, instead of once a datagram. `None`
    /// only if the sending key is missing (it never is).
    pub fn sealer(&self, sender: NodeId, epoch: u64) -> Option<Sealer> {
        let (id, derive) = self.keys.iter().find(|k| k.0 == self.sending)?;
        let n = nonce(sender, epoch, 0);
        Some(Sealer {
            id: *id,
            sender,
            epoch,
            sealed: self.sealed,
            gcm: alloc::boxed::Box::new(derive.derive(&n[..12])),
        })
    }

    /// Checks the trailer of authenticated datagram `bytes` (its header says
    /// [`FLAG_AUTH`]) and returns the message without it: a prefix of `bytes`,
    /// or for a sealed body the message decrypted into `scratch` (which must
    /// hold `bytes.len()` bytes; shorter is a `BadTag`). Derives the sender's
    /// AES-256-GCM key afresh; [`open_cached`](Keyring::open_cached) keeps it.
    ///
    /// # Errors
    /// [`AuthError::UnknownKey`], [`AuthError::RetiredKey`], [`AuthError::BadTag`].
    pub fn open<'a>(
        &self,
        bytes: &'a [u8],
        scratch: &'a mut [u8],
    ) -> Result<Opened<'a>, AuthError> {
        self.open_in(bytes, scratch, None)
    }

    /// As [`open`](Keyring::open), looking the sender's derived key up in
    /// `cache` first, and keeping it there once a datagram verified with it.
    ///
    /// # Errors
    /// As [`open`](Keyring::open).
    pub fn open_cached<'a>(
        &self,
        bytes: &'a [u8],
        scratch: &'a mut [u8],
        cache: &mut OpenCache,
    ) -> Result<Opened<'a>, AuthError> {
        self.open_in(bytes, scratch, Some(cache))
    }

    fn open_in<'a>(
        &self,
        bytes: &'a [u8],
        scratch: &'a mut [u8],
        cache: Option<&mut OpenCache>,
    ) -> Result<Opened<'a>, AuthError> {
        let Some(len) = bytes
            .len()
            .checked_sub(TRAILER_LEN)
            .filter(|&l| l >= HEADER_LEN)
        else {
            return Err(AuthError::BadTag);
        };
        let (msg, t) = bytes.split_at(len);
        let derive = self.derive(t[trailer::KEY_ID])?;
        let epoch = wire::be_u64(t, trailer::EPOCH.start);
        let counter = wire::be_u64(t, trailer::COUNTER.start);
        let sender = NodeId(wire::be_u64(msg, wire::SENDER_AT));
        let n = nonce(sender, epoch, counter);
        let (n1, n2) = n.split_at(12);
        let n2 = xaes_256_gcm::aes_gcm::Nonce::try_from(n2).map_err(|_| AuthError::BadTag)?;
        let tag = Tag::try_from(&t[trailer::TAG]).map_err(|_| AuthError::BadTag)?;
        let sealed = msg[wire::FLAGS_AT] & FLAG_SEALED != 0;
        let mut id = [0u8; 28];
        id[..16].copy_from_slice(&derive.k1);
        id[16..].copy_from_slice(n1);
        let plain = match cache {
            Some(c) => match c.find(&id) {
                Some(gcm) => verify(gcm, &n2, bytes, len, &tag, sealed, scratch)?,
                None => {
                    // Kept only once it verified: a forger cycling sender ids
                    // pays a derivation a datagram and evicts nothing.
                    let gcm = derive.derive(n1);
                    let plain = verify(&gcm, &n2, bytes, len, &tag, sealed, scratch)?;
                    c.keep(id, gcm);
                    plain
                }
            },
            None => verify(&derive.derive(n1), &n2, bytes, len, &tag, sealed, scratch)?,
        };
        Ok(Opened {
            message: plain,
            epoch,
            counter,
        })
    }
}

/// Checks datagram `bytes` (its message the first `len` bytes) against `tag`
/// with the sender's derived key `gcm` and returns the message: a prefix of
/// `bytes`, or for a `sealed` body decrypted into `scratch`.
fn verify<'a>(
    gcm: &Aes256Gcm,
    n2: &xaes_256_gcm::aes_gcm::Nonce<xaes_256_gcm::aes_gcm::aead::consts::U12>,
    bytes: &'a [u8],
    len: usize,
    tag: &Tag,
    sealed: bool,
    scratch: &'a mut [u8],
) -> Result<&'a [u8], AuthError> {
    let msg = &bytes[..len];
    if !sealed {
        let aad = &bytes[..bytes.len() - trailer::TAG.len()];
        gcm.decrypt_inout_detached(n2, aad, InOutBuf::from(&mut [][..]), tag)
            .map_err(|_| AuthError::BadTag)?;
        return Ok(msg);
    }
    let out = scratch.get_mut(..len).ok_or(AuthError::BadTag)?;
    let (header, body) = msg.split_at(HEADER_LEN);
    out[..HEADER_LEN].copy_from_slice(header);
    let io = InOutBuf::new(body, &mut out[HEADER_LEN..]).map_err(|_| AuthError::BadTag)?;
    gcm.decrypt_inout_detached(n2, header, io, tag)
        .map_err(|_| AuthError::BadTag)?;
    Ok(&*out)
}

/// The AES-256-GCM keys derived for recent senders (XAES-256-GCM's first
/// step, per key, sender id and epoch's high half), so that a datagram from
/// a sender seen before costs AES-GCM alone. A direct-mapped table of a fixed
/// number of slots: a slot's key is allocated once, when a datagram first
/// verifies with it, and overwritten in place after; it never grows past its
/// slots, and a datagram that does not verify changes nothing. A slot is
/// named by the cluster key's fingerprint (`L`'s double, not the key), so a
/// keyring change never finds a stale key. One is shared by every node of a
/// host (the derived key depends on the sender, not the receiver).
pub struct OpenCache {
    slots: Vec<Option<alloc::boxed::Box<Slot>>>,
    hits: u64,
    misses: u64,
}

struct Slot {
    /// Key fingerprint ‖ the nonce's first 12 bytes.
    id: [u8; 28],
    gcm: Aes256Gcm,
}

impl core::fmt::Debug for OpenCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenCache")
            .field("slots", &self.slots.len())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

impl OpenCache {
    /// A cache of `slots` slots (rounded up to a power of two, at least 1).
    /// Each costs a pointer until a sender's key fills it, then about 420 bytes.
    pub fn new(slots: usize) -> Self {
        let n = slots.max(1).next_power_of_two();
        OpenCache {
            slots: (0..n).map(|_| None).collect(),
            hits: 0,
            misses: 0,
        }
    }

    /// Lookups that found the sender's key, and those that derived it.
    pub fn hits_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Slots holding a sender's key.
    pub fn filled(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    fn index(&self, id: &[u8; 28]) -> usize {
        // Sender id and epoch: the nonce's first 12 bytes. Which slot a sender
        // takes needs no secrecy: only verified datagrams fill one.
        let sender = u64::from_be_bytes(id[16..24].try_into().unwrap_or_default());
        let epoch = u32::from_be_bytes(id[24..28].try_into().unwrap_or_default());
        let h = (sender ^ u64::from(epoch).rotate_left(32) ^ u64::from(id[0]))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as usize & (self.slots.len() - 1)
    }

    fn find(&mut self, id: &[u8; 28]) -> Option<&Aes256Gcm> {
        let i = self.index(id);
        match &self.slots[i] {
            Some(s) if s.id == *id => {
                self.hits += 1;
                self.slots[i].as_deref().map(|s| &s.gcm)
            }
            _ => {
                self.misses += 1;
                None
            }
        }
    }

    fn keep(&mut self, id: [u8; 28], gcm: Aes256Gcm) {
        let i = self.index(&id);
        match &mut self.slots[i] {
            Some(s) => {
                s.id = id;
                s.gcm = gcm;
            }
            empty => *empty = Some(alloc::boxed::Box::new(Slot { id, gcm })),
        }
    }
}

/// A datagram whose trailer verified.
#[derive(Debug)]
pub struct Opened<'a> {
    /// Header and plain body, for [`wire::decode_opened`].
    pub message: &'a [u8],
    /// The sender's epoch.
    pub epoch: u64,
    /// The sender's counter.
    pub counter: u64,
}

/// A keyring entry: id and what derives a per-sender AES-256-GCM key.
fn entry(key: &Key) -> (u8, Derive) {
    let aes = Aes256Enc::new(&key.secret.into());
    // C2SP XAES-256-GCM step 1 and 2: L = AES-256_K(0^128), K1 = L << 1 in
    // GF(2^128) (xor 0x87 when a bit falls off).
    let mut l = [0u8; 16].into();
    aes.encrypt_block(&mut l);
    let l: [u8; 16] = l.into();
    let v = u128::from_be_bytes(l);
    let k1 = (v << 1) ^ if v >> 127 == 1 { 0x87 } else { 0 };
    (
        key.id,
        Derive {
            aes,
            k1: k1.to_be_bytes(),
        },
    )
}

/// XAES-256-GCM's key derivation for one cluster key (C2SP steps 3 to 5):
/// the AES-256-GCM key for a nonce's first 12 bytes. Sealing with it and the
/// nonce's last 12 bytes is XAES-256-GCM exactly (`core/tests/auth.rs` holds
/// it to the crate on random keys and nonces).
#[derive(Clone)]
struct Derive {
    aes: Aes256Enc,
    k1: [u8; 16],
}

impl Derive {
    fn derive(&self, n1: &[u8]) -> Aes256Gcm {
        let mut k = [0u8; 32];
        for (half, prefix) in k
            .chunks_exact_mut(16)
            .zip([[0, 1, b'X', 0], [0, 2, b'X', 0]])
        {
            let mut m = [0u8; 16];
            m[..4].copy_from_slice(&prefix);
            m[4..].copy_from_slice(n1);
            for (b, k1) in m.iter_mut().zip(self.k1) {
                *b ^= k1;
            }
            let mut block = m.into();
            self.aes.encrypt_block(&mut block);
            half.copy_from_slice(&<[u8; 16]>::from(block));
        }
        let gcm = Aes256Gcm::new(&k.into());
        k = [0; 32];
        let _ = k;
        gcm
    }
}

/// Seals one node's datagrams of one start with one key: the derived
/// AES-256-GCM key kept, so that a datagram costs AES-GCM alone. A node
/// keeps one ([`Node`](crate::Node) makes a new one when its keyring or
/// sending key changes).
pub struct Sealer {
    id: u8,
    sender: NodeId,
    epoch: u64,
    sealed: bool,
    gcm: alloc::boxed::Box<Aes256Gcm>,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.id)
            .field("sender", &self.sender)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Which key it seals with.
    pub fn key_id(&self) -> u8 {
        self.id
    }

    /// As [`Keyring::seal`], for this sealer's sender and epoch.
    pub fn seal(&self, counter: u64, buf: &mut [u8], len: usize) -> Option<usize> {
        let total = len.checked_add(TRAILER_LEN)?;
        if len < HEADER_LEN || buf.len() < total {
            return None;
        }
        buf[wire::FLAGS_AT] |= FLAG_AUTH | if self.sealed { FLAG_SEALED } else { 0 };
        let t = &mut buf[len..total];
        t[trailer::KEY_ID] = self.id;
        t[trailer::EPOCH].copy_from_slice(&self.epoch.to_be_bytes());
        t[trailer::COUNTER].copy_from_slice(&counter.to_be_bytes());
        let n = nonce(self.sender, self.epoch, counter);
        let n2 = xaes_256_gcm::aes_gcm::Nonce::try_from(&n[12..]).ok()?;
        let tag = match self.sealed {
            true => {
                let (header, body) = buf[..len].split_at_mut(HEADER_LEN);
                self.gcm
                    .encrypt_inout_detached(&n2, header, InOutBuf::from(body))
            }
            false => {
                let aad = &buf[..total - trailer::TAG.len()];
                self.gcm
                    .encrypt_inout_detached(&n2, aad, InOutBuf::from(&mut [][..]))
            }
        }
        .ok()?;
        buf[len + trailer::TAG.start..total].copy_from_slice(&tag);
        Some(total)
    }
}

fn nonce(sender: NodeId, epoch: u64, counter: u64) -> Nonce {
    let mut n = Nonce::default();
    n[..8].copy_from_slice(&sender.0.to_be_bytes());
    n[8..16].copy_from_slice(&epoch.to_be_bytes());
    n[16..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// One peer's replay window: the newest `(incarnation, epoch)` life seen from
/// it, the highest counter of that life and a bitmap of the [`WINDOW`]
/// counters below it (bit `k`: counter `top - k` seen).
///
/// A datagram from a newer life (higher incarnation, or the same with a
/// higher epoch) starts a new window; one from an older life is a replay, as
/// is a counter seen already or [`WINDOW`] or more below the top. Reordering
/// within the window is accepted, but a new window counts every counter up
/// to its first as seen: a window starts over when its slot changes hands
/// (the peer table moves its last peer into a freed index), and a peer's
/// recent datagrams must not pass again then.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    id: NodeId,
    life: (u32, u64),
    top: u64,
    bits: u64,
}

impl Window {
    /// Whether datagram `counter` of life `(incarnation, epoch)` from `id` is
    /// new; records it if so. A window holding another id starts over.
    pub fn accept(&mut self, id: NodeId, incarnation: u32, epoch: u64, counter: u64) -> bool {
        let life = (incarnation, epoch);
        if id != self.id || life > self.life || self.bits == 0 {
            *self = Window {
                id,
                life,
                top: counter,
                bits: u64::MAX,
            };
            return true;
        }
        if life < self.life {
            return false;
        }
        if counter > self.top {
            let shift = counter - self.top;
            self.bits = if shift >= WINDOW {
                0
            } else {
                self.bits << shift
            };
            self.bits |= 1;
            self.top = counter;
            return true;
        }
        let back = self.top - counter;
        if back >= WINDOW || self.bits & (1 << back) != 0 {
            return false;
        }
        self.bits |= 1 << back;
        true
    }
}

/// A node's authentication state: the keyring, its own epoch and counter, and
/// a replay window per peer-table index.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) keyring: alloc::sync::Arc<Keyring>,
    pub(crate) epoch: u64,
    pub(crate) counter: u64,
    /// Indexed like the peer table; grows to its size, never past it.
    pub(crate) windows: Vec<Window>,
    /// Where sealed bodies are decrypted: one datagram, allocated once.
    pub(crate) scratch: Vec<u8>,
    /// Seals this node's datagrams; made afresh when the keyring changes.
    pub(crate) sealer: Option<Sealer>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_each_counter_once_and_refuses_old_lives() {
        let id = NodeId(5);
        let mut w = Window::default();
        assert!(w.accept(id, 0, 7, 10));
        assert!(!w.accept(id, 0, 7, 10));
        assert!(!w.accept(id, 0, 7, 9), "below a new window's first counter");
        assert!(w.accept(id, 0, 7, 12));
        assert!(w.accept(id, 0, 7, 11), "reordered within the window");
        assert!(!w.accept(id, 0, 7, 11));
        assert!(w.accept(id, 0, 7, 100));
        assert!(!w.accept(id, 0, 7, 36), "64 below the top: too old");
        assert!(w.accept(id, 0, 7, 37));
        assert!(w.accept(id, 0, 8, 0), "a later start");
        assert!(!w.accept(id, 0, 7, 101), "the earlier start is over");
        assert!(w.accept(id, 1, 0, 0), "a higher incarnation");
        assert!(!w.accept(id, 0, 9, 0));
        assert!(w.accept(NodeId(6), 0, 0, 0), "another peer at this index");
    }

    #[test]
    fn keyring_refuses_what_it_cannot_hold() {
        let mut k = Keyring::new(&Key::new(1, [1; 32]));
        assert_eq!(
            k.accept(&Key::new(1, [2; 32])),
            Err(KeyringError::DuplicateId)
        );
        for id in 2..=4 {
            k.accept(&Key::new(id, [id; 32])).unwrap();
        }
        assert_eq!(k.accept(&Key::new(5, [5; 32])), Err(KeyringError::Full));
        assert_eq!(k.retire(1), Err(KeyringError::RetiringSendingKey));
        assert_eq!(k.set_sending(9), Err(KeyringError::UnknownKey));
        k.set_sending(2).unwrap();
        k.retire(1).unwrap();
        assert_eq!(k.retired(), &[1]);
        assert_eq!(k.accepted().collect::<Vec<_>>(), [2, 3, 4]);
        assert!(!alloc::format!("{:?}", Key::new(3, [0xab; 32])).contains("171"));
    }
}
