//! `Node`: one member's protocol state machine, driven by `handle_*` and `poll_*`.
//!
//! Just over 600 lines: the dispatch of each input (a datagram by sender and
//! type, the timer, a meet) is the protocol's map and reads best as one; the
//! data calls (`node/data.rs`), the edge of keys and cookies (`node/edge.rs`)
//! and the swim profile's dispatch (`node/swim_dispatch.rs`) have files of
//! their own.

use crate::auth::{Auth, AuthError};
use crate::cookie::Cookies;
use crate::copies::Copies;
use crate::dissemination::{Cx, Epidemic};
use crate::event::{Event, Stats};
use crate::failure::{self, Failure};
use crate::ids::{Endpoint, Identity, NodeId};
use crate::membership::{self, MeetError, Membership};
use crate::outbox::{header, Outbox, Outgoing, Skip};
use crate::peers::PeerTable;
use crate::profile::{Config, CronSchedule, Membership as Protocol};
use crate::rng::Rng;
use crate::swim::{Encoded, Swim};
use crate::time::{micros, Instant};
use crate::wire::{
    self, Body, DecodeError, Header, MessageType, RumorBlock, COOKIE_LEN, FLAG_AUTH,
};

mod data;
mod edge;
mod swim_dispatch;
use edge::append_cookie;

/// A datagram ready to send: `len` bytes at the start of the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: Endpoint,
    /// Bytes written to the buffer.
    pub len: usize,
    /// What it carries.
    pub kind: MessageType,
}

/// One member's protocol state machine. Sans-io: bytes and `now` in, bytes,
/// deadlines and events out. Same inputs, same outputs, byte for byte.
#[derive(Debug)]
pub struct Node {
    /// Who we are.
    me: Identity,
    config: Config,
    /// Membership's random choices, and the cron's slack.
    rng: Rng,
    /// Every peer known: the table the sub-machines share.
    peers: PeerTable,
    /// Membership: cron, handshakes, sections (`membership/`).
    membership: Membership,
    /// Failure detection: PFAIL, reports, quorum, FAIL (`failure.rs`).
    failure: Failure,
    /// Transmit queue, event queue, counters.
    outbox: Outbox,
    /// When the cron runs next.
    next_tick: Instant,
    /// Epidemic dissemination: store, hot rumors, anti-entropy walk.
    epidemic: Epidemic,
    /// Tracked items and their copies received (`copies.rs`).
    copies: Copies,
    /// The swim profile's membership (`swim/`); idle under the others.
    swim: Swim,
    /// The cluster key state, when a keyring is set (`auth.rs`).
    auth: Option<Auth>,
    /// Join cookies, when required (`cookie.rs`).
    cookies: Option<Cookies>,
}

impl Node {
    /// A node with no peers. `seed` drives every random choice it makes; `now`
    /// places its first tick (at a random phase within one tick period, so that
    /// nodes started together do not tick in lockstep).
    pub fn new(me: Identity, config: Config, seed: u64, now: Instant) -> Self {
        let mut rng = Rng::new(seed);
        let table_key = rng.next_u64();
        let phase = rng.below(crate::time::micros(config.tick()).max(1));
        Node {
            peers: PeerTable::new(config.max_peers(), config.max_failure_reports(), table_key),
            me,
            rng,
            membership: Membership::new(),
            failure: Failure::new(),
            outbox: Outbox::new(&config),
            next_tick: Instant::from_micros(now.as_micros() + phase),
            // Its own generator, from the seed but not from `rng`: turning
            // dissemination on leaves membership's random choices unchanged.
            epidemic: Epidemic::new(&config, seed, now),
            copies: Copies::default(),
            swim: Swim::new(now),
            auth: None,
            cookies: None,
            config,
        }
    }

    /// Places this node's `Instant` zero on the wall clock the cluster shares:
    /// `at_zero` is that clock's reading (time since its epoch) when the
    /// caller's clock read `Instant::ZERO`. Only `PongGossip::WallSecond` reads
    /// it: nodes gossip PONG times as wall-clock seconds, as Redis does, and
    /// for their seconds to line up they must share the epoch. Default zero:
    /// the caller's origin is the epoch, right when every node of the cluster
    /// shares one clock (the simulator, one runtime). A real deployment
    /// passes the UNIX time at its clock's origin, as Redis reads the UNIX
    /// clock (gossip-node's runtime does); hosts then agree as far as their
    /// clocks do (NTP: milliseconds, well inside the half second the
    /// receiver's rounding allows).
    pub fn set_epoch(&mut self, at_zero: core::time::Duration) {
        self.membership.epoch = crate::time::micros(at_zero);
    }

    /// This node's identity.
    pub fn identity(&self) -> Identity {
        self.me
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me.id
    }

    /// The parameters it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every peer it knows.
    pub fn peers(&self) -> &PeerTable {
        &self.peers
    }

    /// Its counters.
    pub fn stats(&self) -> &Stats {
        &self.outbox.stats
    }

    /// Under the swim profile: how often this node refuted a suspicion of
    /// itself in this life, and Lifeguard's local health score (0: healthy;
    /// probe periods and timeouts are stretched by score + 1).
    pub fn swim_health(&self) -> (u32, u32) {
        (self.swim.refutations(), self.swim.awareness())
    }

    /// Members known, self included (the voters for FAIL).
    pub fn members(&self) -> usize {
        self.failure.members()
    }

    /// Asks the node at `to` to let us join (Redis `CLUSTER MEET`). The MEET is
    /// resent once a random-ping period until answered, or until
    /// `handshake_timeout` passes and [`Event::MeetTimedOut`] reports it (meet
    /// again to retry). Once answered, the meet stays open until some node PINGs
    /// or MEETs us, which shows the cluster holds us; without that for a
    /// `handshake_timeout`, it starts over, as a lost datagram may have left the
    /// node unaware of us.
    ///
    /// # Errors
    /// [`MeetError::TooManyPending`] when too many meets are still open.
    pub fn meet(&mut self, now: Instant, to: Endpoint) -> Result<(), MeetError> {
        if self.config.membership() == Protocol::Swim {
            let (s, mut cx) = self.swim();
            return match s.meet(&mut cx, now, to) {
                true => Ok(()),
                false => Err(MeetError::TooManyPending),
            };
        }
        let (m, mut cx) = self.membership();
        m.meet(&mut cx, now, to)
    }

    /// Feeds one received datagram.
    ///
    /// # Errors
    /// The [`DecodeError`] when the datagram is not a well-formed message; it is
    /// also counted in [`Stats::decode_errors`]. Other drops (unknown sender, stale
    /// incarnation) are not errors and are counted in [`Stats::drops`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: core::net::SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DecodeError> {
        self.handle_datagram_with(now, from, bytes, None)
    }

    /// As [`handle_datagram`](Node::handle_datagram), with a keyring looking
    /// the sender's derived key up in `cache` (shared by the nodes of a host:
    /// see [`OpenCache`](crate::auth::OpenCache)) instead of deriving it for
    /// every datagram. Without a keyring the cache is not used.
    ///
    /// # Errors
    /// As [`handle_datagram`](Node::handle_datagram).
    pub fn handle_datagram_cached(
        &mut self,
        now: Instant,
        from: core::net::SocketAddr,
        bytes: &[u8],
        cache: &mut crate::auth::OpenCache,
    ) -> Result<(), DecodeError> {
        self.handle_datagram_with(now, from, bytes, Some(cache))
    }

    fn handle_datagram_with(
        &mut self,
        now: Instant,
        from: core::net::SocketAddr,
        bytes: &[u8],
        cache: Option<&mut crate::auth::OpenCache>,
    ) -> Result<(), DecodeError> {
        // With a keyring, sealed bodies are decrypted into its scratch buffer:
        // moved out for the call, so that the message borrows no part of self.
        let mut scratch = match &mut self.auth {
            Some(a) => core::mem::take(&mut a.scratch),
            None => alloc::vec::Vec::new(),
        };
        let result = self.handle_datagram_in(now, from, bytes, &mut scratch, cache);
        if let Some(a) = &mut self.auth {
            a.scratch = scratch;
        }
        result
    }

    fn handle_datagram_in(
        &mut self,
        now: Instant,
        from: core::net::SocketAddr,
        bytes: &[u8],
        scratch: &mut [u8],
        cache: Option<&mut crate::auth::OpenCache>,
    ) -> Result<(), DecodeError> {
        // Only a datagram that is ours in all but the key is an auth matter;
        // anything else goes to the decoder, which names what is wrong.
        let authenticated = bytes.len() >= wire::HEADER_LEN
            && bytes[..2] == wire::MAGIC.to_be_bytes()
            && bytes[wire::FLAGS_AT] & FLAG_AUTH != 0;
        let (message, trailer) = match (&self.auth, authenticated) {
            (None, true) => return self.refuse(AuthError::NoKey),
            (_, false) => (bytes, None),
            (Some(a), true) => {
                let opened = match cache {
                    Some(c) => a.keyring.open_cached(bytes, scratch, c),
                    None => a.keyring.open(bytes, scratch),
                };
                match opened {
                    Ok(o) => (o.message, Some((o.epoch, o.counter))),
                    Err(e) => return self.refuse(e),
                }
            }
        };
        let (message, cookie) = wire::split_cookie(message);
        let decoded = match trailer.is_some() || cookie.is_some() {
            true => wire::decode_opened(message),
            false => wire::decode(message),
        };
        if self.auth.is_some() && trailer.is_none() && decoded.is_ok() {
            return self.refuse(AuthError::Unauthenticated);
        }
        let msg = match decoded {
            Ok(m) => m,
            Err(e) => {
                self.outbox.stats.decode_errors[e.index()] += 1;
                self.copies.count_undecoded(bytes);
                return Err(e);
            }
        };
        self.outbox.stats.received[usize::from(msg.header.kind.code())].add(bytes.len());
        let h = msg.header;
        // Copies are counted for every datagram handed to the node, whatever
        // it then makes of it: what the simulator's observer counts.
        self.copies.count_sender(h.sender);
        if h.sender == self.me.id {
            self.outbox.stats.drops.own_id += 1;
            self.copies.count_unread(msg.body, msg.rumors);
            return Ok(());
        }
        if h.dst_slot != self.me.slot {
            self.outbox.stats.drops.wrong_slot += 1;
            self.copies.count_unread(msg.body, msg.rumors);
            return Ok(());
        }
        if self.config.membership() == Protocol::Swim {
            // A keyed member's datagrams pass its replay window, as below.
            let known = self.peers.find(h.sender);
            if known.is_some_and(|i| !self.fresh(i, &h, trailer)) {
                return self.refuse(AuthError::Replay);
            }
            let from = Endpoint::new(from, h.src_slot);
            self.handle_swim(now, from, known, &h, msg.body, msg.rumors);
            return Ok(());
        }
        let meets = &mut self.membership.meets;
        if matches!(h.kind, MessageType::Ping | MessageType::Meet) && !meets.is_empty() {
            // Nodes PING only members and MEET only nodes a member told them
            // of: some member holds us, so answered meets are done.
            meets.retain(|m| !m.answered);
        }
        let from = Endpoint::new(from, h.src_slot);
        let mut known = self.peers.find(h.sender);
        if let (Some(jar), Some(c)) = (&mut self.cookies, cookie) {
            match (h.kind, known) {
                // The answer to our MEET: keep its cookie for our PINGs.
                (MessageType::Pong, _) => {
                    let mut kept = [0u8; COOKIE_LEN];
                    kept.copy_from_slice(c);
                    jar.keep(from, kept, now);
                }
                // A stranger returning our cookie has proven its address.
                (MessageType::Ping, None) => match jar.check(from, c, now) {
                    true => known = self.admit(now, from, &h),
                    false => return self.refuse(AuthError::Cookie),
                },
                _ => {}
            }
        }
        match known {
            Some(i) if !self.fresh(i, &h, trailer) => return self.refuse(AuthError::Replay),
            Some(i) => self.handle_known(now, i, from, &h, msg.body, msg.rumors),
            None => {
                self.copies.count_unread(msg.body, msg.rumors);
                self.handle_unknown(now, from, &h, bytes.len(), cookie.is_some());
            }
        }
        Ok(())
    }

    /// Runs the cron if its deadline has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        let tick = self.config.tick();
        // A tick more than one period late (a paused process, an overloaded host)
        // is counted; the schedule restarts from now rather than bursting.
        let late = now - self.next_tick > tick;
        if late {
            self.outbox.stats.late_ticks += 1;
        }
        self.next_tick = match self.config.cron() {
            CronSchedule::Grid if !late => self.next_tick + tick,
            CronSchedule::Grid => now + tick,
            CronSchedule::AfterRun { slack } => {
                now + tick + core::time::Duration::from_micros(self.rng.below(micros(slack).max(1)))
            }
        };
        self.outbox.stats.ticks += 1;
        if self.config.pfail_counted_at_cron() {
            self.failure.count_pfail_for_cron();
        }
        // Messages the cron queues from here on may carry rumors.
        let mark = self.outbox.transmits.len();
        if self.config.membership() == Protocol::Swim {
            let hot = self.config.dissemination().rumors() && !self.epidemic.rumors().is_idle();
            let (s, mut cx) = self.swim();
            s.tick(&mut cx, now, late, hot);
        } else {
            let (m, mut cx) = self.membership();
            m.cron(&mut cx, now);
        }
        let (epidemic, mut cx) = self.dissemination();
        epidemic.round(&mut cx, now, mark);
    }

    /// When `handle_timeout` wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_tick)
    }

    /// Encodes the next queued datagram into `buf`.
    ///
    /// `buf` should hold `Config::max_datagram` bytes; a shorter one makes
    /// sections shrink. A message that cannot fit at all is dropped and counted.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while let Some(out) = self.outbox.transmits.pop_front() {
            let cookie = self.cookie_for(now, &out);
            let reserve = self.trailer_len() + cookie.map_or(0, |_| COOKIE_LEN);
            let sealed = self
                .encode(now, &out, buf, reserve)
                .and_then(|len| append_cookie(buf, len, cookie))
                .and_then(|len| self.seal(buf, len));
            match sealed {
                Ok(len) => {
                    self.outbox.stats.sent[usize::from(out.kind.code())].add(len);
                    return Some(Transmit {
                        to: out.to,
                        len,
                        kind: out.kind,
                    });
                }
                Err(Skip::TooSmall) => self.outbox.stats.drops.transmit_buffer_too_small += 1,
                Err(Skip::Nothing) => {}
            }
        }
        None
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outbox.events.pop_front()
    }

    /// Datagrams waiting in the transmit queue.
    pub fn pending_transmits(&self) -> usize {
        self.outbox.transmits.len()
    }

    fn handle_known(
        &mut self,
        now: Instant,
        i: usize,
        from: Endpoint,
        h: &Header,
        body: Body<'_>,
        rumors: Option<RumorBlock<'_>>,
    ) {
        // A newer datagram time and an address only put off what the cron
        // does about the peer: its due time stands.
        let p = self.peers.postpone_mut(i);
        if h.incarnation < p.incarnation {
            self.outbox.stats.drops.stale_incarnation += 1;
            self.copies.count_unread(body, rumors);
            return;
        }
        p.data_received = now;
        if p.endpoint != from {
            // Redis nodeUpdateAddressIfNeeded: the node answers from a new address.
            p.endpoint = from;
        }
        if h.incarnation > p.incarnation {
            let (m, mut cx) = self.membership();
            m.restart_peer(&mut cx, i, h.incarnation);
        }
        match (h.kind, body) {
            (MessageType::Ping | MessageType::Meet, Body::Section(section)) => {
                if h.kind == MessageType::Ping && !self.peers.get(i).is_member() {
                    // The PING a MEET's sender sends once our PONG reached it
                    // (see `handle_unknown`) completes the handshake on our side.
                    let (m, mut cx) = self.membership();
                    m.complete_handshake(&mut cx, now, i);
                }
                let bare = !self.peers.get(i).is_member();
                // Acks and a pull's answer ride the PONG.
                let rumor: u8 = match rumors {
                    Some(block) => {
                        let (epidemic, mut cx) = self.dissemination();
                        epidemic.handle_rumor_block(&mut cx, i, from, block)
                    }
                    None => 0,
                };
                self.outbox.queue_outgoing(Outgoing {
                    rumor: if bare { 0 } else { rumor },
                    ..Outgoing::new(from, MessageType::Pong, bare)
                });
                let (m, mut cx) = self.membership();
                m.handle_section(&mut cx, now, i, section);
            }
            (MessageType::Pong, Body::Section(section)) => {
                let (m, mut cx) = self.membership();
                m.handle_pong(&mut cx, now, i);
                m.answer_meet(&mut cx, now, i, from);
                m.handle_section(&mut cx, now, i, section);
                if let Some(block) = rumors {
                    let (epidemic, mut cx) = self.dissemination();
                    let rumor = epidemic.handle_rumor_block(&mut cx, i, from, block);
                    epidemic.queue_rumor_reply(&mut cx, from, rumor);
                }
            }
            (kind, body) if kind.is_swim() => {
                self.outbox.stats.drops.other_profile += 1;
                self.copies.count_unread(body, rumors);
            }
            (kind, body) if kind.is_data() => {
                let (epidemic, mut cx) = self.dissemination();
                epidemic.handle_data(&mut cx, i, from, body);
            }
            // Redis: a FAIL counts only from a known node (not one in handshake).
            (MessageType::Fail, Body::Fail { id, incarnation })
                if self.peers.get(i).is_member() =>
            {
                let (f, mut cx) = self.failure();
                f.handle_fail_message(&mut cx, id, incarnation);
            }
            // A FAIL from a node in handshake; otherwise the decoder pairs each
            // type with its body, so nothing else reaches here.
            (_, body) => self.copies.count_unread(body, None),
        }
    }

    /// A message from a sender we do not hold; `cookie`: it carried one (a
    /// MEET: room for ours).
    fn handle_unknown(
        &mut self,
        now: Instant,
        from: Endpoint,
        h: &Header,
        len: usize,
        cookie: bool,
    ) {
        match h.kind {
            // No swim machine runs here (yet): not ours to answer.
            MessageType::Probe
            | MessageType::Ack
            | MessageType::ProbeReq
            | MessageType::Nack
            | MessageType::Sync
            | MessageType::State => self.outbox.stats.drops.other_profile += 1,
            // Proven joins: a cookie answers, and nothing is kept. A MEET
            // without room for one gets nothing: the answer would be larger.
            MessageType::Meet if self.cookies.is_some() => match cookie {
                true => {
                    self.outbox.queue_outgoing(Outgoing {
                        cookie: true,
                        ..Outgoing::new(from, MessageType::Pong, true)
                    });
                }
                false => self.outbox.stats.auth.count(AuthError::Cookie),
            },
            // Redis clusterProcessPacket: a MEET adds its sender (in handshake);
            // any PING is answered. Both get an empty section: never more bytes
            // to an unproven address than it sent us (DESIGN §4).
            //
            // Redis then opens a link of its own to the MEET's sender and PINGs
            // it, and that PING's PONG completes the handshake. Over UDP that
            // PING goes to an address nobody has proven: one spoofed 26-byte MEET
            // would draw 52 bytes at once and a MEET resend every second until
            // the handshake timed out. So we send only the PONG; the MEET's
            // sender, which that PONG reached, PINGs us at once (`handle_pong`),
            // and its PING completes our side (`handle_known`). Same four
            // datagrams as Redis, none of them unsolicited.
            MessageType::Meet => {
                self.outbox.queue(from, MessageType::Pong, true);
                let (m, mut cx) = self.membership();
                if let Some(i) = m.discover(&mut cx, now, h.sender, from, h.incarnation, true) {
                    let p = self.peers.get_mut(i);
                    p.data_received = now;
                    p.inbound = true;
                }
            }
            // A partial view holds few of the nodes that hold it; a node it
            // dropped still PINGs it and would learn nothing from an empty
            // PONG (it may have nobody else left who holds it). So the PONG
            // carries a section, in no more bytes than the PING had.
            MessageType::Ping if self.config.partial_view() => {
                self.outbox.queue_outgoing(Outgoing {
                    limit: u16::try_from(len).unwrap_or(u16::MAX),
                    ..Outgoing::new(from, MessageType::Pong, false)
                });
            }
            MessageType::Ping => self.outbox.queue(from, MessageType::Pong, true),
            MessageType::Pong => {
                if !self.membership.meets.iter().any(|m| m.endpoint == from) {
                    self.outbox.stats.drops.unknown_sender += 1;
                    return;
                }
                let (m, mut cx) = self.membership();
                if let Some(i) = m.discover(&mut cx, now, h.sender, from, h.incarnation, true) {
                    cx.peers.get_mut(i).data_received = now;
                    m.handle_pong(&mut cx, now, i);
                    m.answer_meet(&mut cx, now, i, from);
                }
            }
            MessageType::Fail => self.outbox.stats.drops.unknown_sender += 1,
            // Data only from members: an unknown sender gets nothing back.
            MessageType::Digest | MessageType::Push | MessageType::Pull | MessageType::Rumor => {
                self.outbox.stats.drops.unknown_sender += 1
            }
        }
    }

    pub(crate) fn header(&self, kind: MessageType, to: Endpoint) -> Header {
        header(&self.me, kind, to)
    }

    /// The membership machine and its context: disjoint borrows of self.
    pub(crate) fn membership(&mut self) -> (&mut Membership, membership::Cx<'_>) {
        let cx = membership::Cx {
            config: &self.config,
            me: &self.me,
            rng: &mut self.rng,
            peers: &mut self.peers,
            outbox: &mut self.outbox,
            copies: &mut self.copies,
            failure: &mut self.failure,
        };
        (&mut self.membership, cx)
    }

    /// The failure detection machine and its context.
    fn failure(&mut self) -> (&mut Failure, failure::Cx<'_>) {
        let cx = failure::Cx {
            config: &self.config,
            peers: &mut self.peers,
            outbox: &mut self.outbox,
            copies: &mut self.copies,
        };
        (&mut self.failure, cx)
    }

    /// The dissemination machine and its context: disjoint borrows of self.
    fn dissemination(&mut self) -> (&mut Epidemic, Cx<'_>) {
        let cx = Cx {
            config: &self.config,
            me: &self.me,
            peers: &self.peers,
            pfail: self.failure.pfail().len(),
            payload: self.config.max_datagram() - self.trailer_len(),
            outbox: &mut self.outbox,
            copies: &mut self.copies,
        };
        (&mut self.epidemic, cx)
    }

    /// Encodes `out` into `buf`, leaving `reserve` bytes (cookie, trailer)
    /// within the datagram's limit.
    fn encode(
        &mut self,
        now: Instant,
        out: &Outgoing,
        buf: &mut [u8],
        reserve: usize,
    ) -> Result<usize, Skip> {
        let header = self.header(out.kind, out.to);
        let mut limit = buf.len().min(self.config.max_datagram());
        if out.limit > 0 {
            limit = limit.min(usize::from(out.limit));
        }
        // `limit` counts the whole datagram: cookie and trailer come out of it.
        let limit = limit.saturating_sub(reserve);
        let buf = &mut buf[..limit];
        match out.kind {
            MessageType::Fail => wire::encode_fail(buf, &header, out.about, out.about_incarnation)
                .map_err(|_| Skip::TooSmall),
            MessageType::Digest | MessageType::Push | MessageType::Pull => {
                self.epidemic.take_datagram(buf).ok_or(Skip::TooSmall)
            }
            MessageType::Probe
            | MessageType::Ack
            | MessageType::ProbeReq
            | MessageType::Nack
            | MessageType::Sync
            | MessageType::State => {
                // What the rumor block would fill, for the datagrams that
                // carry one (a SYNC, a NACK, a SYNC's answer do not).
                let carries = out.kind.carries_rumors()
                    && !(out.kind == MessageType::State && out.about_incarnation != 0);
                let want = match out.bare || !carries {
                    true => 0,
                    false => {
                        let (epidemic, cx) = self.dissemination();
                        epidemic.block_wants(&cx, out.to, buf.len())
                    }
                };
                let (s, mut cx) = self.swim();
                match s.encode(&mut cx, out, buf, &header, want)? {
                    Encoded::Done(len) => Ok(len),
                    Encoded::Members(w) => {
                        let members = w.count();
                        let (epidemic, mut cx) = self.dissemination();
                        match epidemic.append_after_members(&mut cx, out, w) {
                            // A gossip round's STATE with nothing in it.
                            (_, false) if members == 0 && out.kind == MessageType::State => {
                                Err(Skip::Nothing)
                            }
                            (len, _) => Ok(len),
                        }
                    }
                }
            }
            MessageType::Rumor => {
                let (epidemic, mut cx) = self.dissemination();
                epidemic.encode_rumor(&mut cx, out, buf, &header)
            }
            MessageType::Meet | MessageType::Ping | MessageType::Pong => {
                let mut w = wire::SectionWriter::new(buf, &header).map_err(|_| Skip::TooSmall)?;
                if out.bare {
                    return Ok(w.finish());
                }
                let (m, mut cx) = self.membership();
                m.write_section(&mut cx, now, &mut w);
                match self.config.dissemination().rumors() && out.kind != MessageType::Meet {
                    true => {
                        let (epidemic, mut cx) = self.dissemination();
                        Ok(epidemic.append_rumor_block(&mut cx, out, w))
                    }
                    false => Ok(w.finish()),
                }
            }
        }
    }
}
