//! The agent's control API: what a loadgen and an agent say to each other,
//! as JSON bodies over HTTP/1.1 (TCP, or a unix socket in the lab).
//!
//! Every request carries `Authorization: Bearer <token>`; a request without
//! the agent's token gets 401. Every error is a non-2xx status with an
//! [`ApiError`] body whose message is one line saying why.
//!
//! Times (`*_us`) are on the agent's clock: µs of its monotonic clock (plus
//! the offset it was started with, `--clock-offset-ms`, which only tests
//! use). The loadgen estimates each agent's offset from [`ClockReading`]s.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/hello` | | [`Hello`] |
//! | `GET /v1/clock` | | [`ClockReading`] |
//! | `POST /v1/session` | [`SessionSpec`] | [`Session`] (409 while another session holds the agent) |
//! | `POST /v1/session/renew` | | [`Session`] |
//! | `DELETE /v1/session` | | `{}`: nodes stopped, faults cleared |
//! | `POST /v1/cluster` | [`ClusterSpec`] | [`ClusterStarted`] |
//! | `DELETE /v1/cluster` | | [`Resources`] (final) |
//! | `POST /v1/nodes/{i}/{start,restart}` | [`Meet`] | `{}` |
//! | `POST /v1/nodes/{i}/{kill,pause,resume}` | | `{}` |
//! | `POST /v1/nodes/{i}/publish` | [`PublishSpec`] | [`PublishReply`] |
//! | `GET /v1/counters` | | `Vec<Option<Counters>>` by local node index |
//! | `GET /v1/holders/{id}` | | `Vec<usize>`: local nodes holding node `id` |
//! | `POST /v1/track`, `POST /v1/untrack` | [`Item`] | `bool`: tracked / was tracked |
//! | `POST /v1/copies` | [`Item`] | `Vec<Option<u32>>` by local node index |
//! | `GET /v1/resources` | | [`Resources`] (cumulative; diff two readings) |
//! | `PUT /v1/keyring` | [`KeyFile`] | [`KeyringSet`] (409 for a cluster started without a key) |
//! | `PUT /v1/faults` | [`Faults`] | [`FaultsApplied`] |
//! | `DELETE /v1/faults` | | `{}` |
//! | `GET /v1/events` | | a stream of [`EventRecord`], one JSON object per line |
//! | `GET /metrics` | | Prometheus text exposition of the running nodes |
//!
//! Requests under `/v1/session/renew`, `/v1/cluster`, `/v1/nodes`, `/v1/track`,
//! `/v1/untrack`, `/v1/copies`, `/v1/keyring`, `/v1/faults` and `/v1/events` (and `DELETE
//! /v1/session`) carry the session's id in [`SESSION_HEADER`]; any of them
//! renews the lease.
//!
//! Refusals: 401 without the token (`/metrics` included); 404 an unknown
//! path; 405 a known path with another method; 400 a malformed body (the
//! serde error in one line), an impossible cluster spec, or a node index out
//! of range, a keyring that is not a key file (the error names the line, never
//! its secret); 413 a body over 1 MiB; 403 a session id missing or not the
//! agent's; 409 no session, another session holding the agent, a second
//! cluster or event stream, a node action the node cannot do (kill or pause
//! a node not running, resume one not paused, start one running), a keyring
//! change for a cluster started without a key; 422 a
//! fault set refused (faults off, no sch_netem for latency, `nft` missing),
//! which leaves the faults applied before in place.
//!
//! The event stream needs a running cluster; events from the cluster's
//! start wait (up to 16 MiB, then dropped and counted in
//! [`Resources::events_dropped`]) until a stream opens, and it ends when the
//! cluster stops (`DELETE /v1/cluster`, `DELETE /v1/session`, lease expiry).

use std::net::{IpAddr, SocketAddr};

use gossip_core::{Endpoint, Event, ItemId, NodeId, PeerState};
use serde::{Deserialize, Serialize};

use crate::profile::ProfileParams;

/// The API version this build speaks; a loadgen refuses an agent with another.
/// 2: `ClusterSpec::join` (was `seeds`), `Hello::process`.
/// 3: `ClusterSpec::profile` by the core's flat parameter names.
/// 4: cluster keys: `ClusterSpec::keyring` and `join_cookies`, `PUT /v1/keyring`.
pub const API_VERSION: u32 = 4;

/// The header that names the caller's session.
pub const SESSION_HEADER: &str = "x-gossip-session";

/// Every error answer's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// One line: what was refused and why.
    pub error: String,
}

/// Who the agent is and what it can do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`API_VERSION`] of the agent.
    pub api: u32,
    /// The agent's crate version.
    pub version: String,
    /// The agent's host name.
    pub host: String,
    /// The address its nodes bind.
    pub bind_ip: IpAddr,
    /// The datapath `auto` chooses there (`uring` or `mmsg`).
    pub datapath: String,
    /// Faults the agent can apply, and those it cannot with the reason.
    pub faults: FaultSupport,
    /// The session holding the agent, if any.
    pub session: Option<Session>,
    /// The agent's process id and its machine's boot id
    /// (`/proc/sys/kernel/random/boot_id`): a loadgen on the same machine
    /// counts that process's CPU as the run's own, not as other load.
    #[serde(default)]
    pub process: Option<AgentProcess>,
}

/// Where an agent runs, to tell whether it shares the loadgen's machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProcess {
    /// Its pid.
    pub pid: u32,
    /// The machine's boot id.
    pub boot_id: String,
}

impl AgentProcess {
    /// This process, or `None` where the boot id cannot be read.
    pub fn this() -> Option<AgentProcess> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(AgentProcess {
            pid: std::process::id(),
            boot_id: boot_id.trim().to_owned(),
        })
    }
}

/// Which network faults an agent applies to real packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSupport {
    /// Random loss per peer address (nftables).
    pub loss: Support,
    /// Partitions: total loss per peer address (nftables).
    pub partition: Support,
    /// Latency and jitter (tc netem).
    pub latency: Support,
}

/// Whether a fault can be applied, and by what or why not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Applied by this mechanism (e.g. "nftables numgen random drop").
    Yes(String),
    /// Refused, saying why in one line (e.g. "the kernel has no sch_netem qdisc").
    No(String),
}

/// One reading of the agent's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockReading {
    /// The agent's clock when it answered, µs.
    pub agent_us: u64,
}

/// A loadgen asks to hold the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// Who asks (host and pid), shown to a second loadgen that is refused.
    pub owner: String,
    /// Without a request for this long, the agent stops its nodes, clears
    /// its faults and ends the session, ms.
    pub lease_ms: u64,
}

/// A session holding the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its id (random), sent back in [`SESSION_HEADER`].
    pub id: String,
    /// Who holds it.
    pub owner: String,
    /// Its lease, ms.
    pub lease_ms: u64,
}

/// The nodes to run on the agent (one cluster per session at a time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// Protocol parameters.
    pub profile: ProfileParams,
    /// Nodes bound on the agent.
    pub nodes: usize,
    /// The last `held` of them are bound but not started (joiners).
    pub held: usize,
    /// Endpoints every started node MEETs (empty: nodes 1.. meet node 0).
    /// Read as `seeds` too, its name before `join`, for one release.
    #[serde(alias = "seeds")]
    pub join: Vec<Peer>,
    /// `auto`, `uring` or `mmsg`.
    pub datapath: String,
    /// I/O threads (0: one per core).
    pub threads: usize,
    /// Nodes per socket.
    pub slots: usize,
    /// UDP GSO/GRO.
    pub offload: bool,
    /// Seed of the node ids and PRNGs (distinct per agent).
    pub rng_seed: u64,
    /// Timer slack, µs.
    pub timer_slack_us: u64,
    /// Events each I/O thread's queue holds.
    pub event_queue: usize,
    /// Start the started nodes over this long (node i at i/n of it), ms;
    /// 0: all at once.
    #[serde(default)]
    pub ramp_ms: u64,
    /// The cluster keyring every node authenticates with; `None`: no key.
    #[serde(default)]
    pub keyring: Option<KeyFile>,
    /// Nodes require proven joins (`gossip_core::cookie`).
    #[serde(default)]
    pub join_cookies: bool,
}

/// A cluster keyring as the text of a key file (`crate::keyfile`: `key ID
/// HEX` lines, `send ID`, `retired ID…`, `sealed`). It holds secrets: its
/// `Debug` shows its length alone, and no answer or error repeats it. The
/// API carries it in the clear, so an agent's address must be one only the
/// loadgen reaches (the lab's namespaces, loopback, a unix socket).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyFile(pub String);

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFile({} bytes, secret)", self.0.len())
    }
}

/// What a keyring change did: the running nodes that switched to it and the
/// keyring's key ids now (no key material).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringSet {
    /// Running nodes now authenticating with the new keyring.
    pub switched: usize,
    /// The sending key's id.
    pub sending: u8,
    /// The accepted keys' ids.
    pub accepted: Vec<u8>,
    /// The retired ids the keyring remembers.
    pub retired: Vec<u8>,
}

/// A node as others reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Its id.
    pub id: u64,
    /// Its socket's address.
    pub addr: SocketAddr,
    /// Its slot on a shared socket.
    pub slot: u16,
}

/// What a started cluster is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStarted {
    /// The datapath the nodes run on.
    pub datapath: String,
    /// Every node (started or held), by local index.
    pub nodes: Vec<Peer>,
}

/// A node to MEET when (re)starting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meet {
    /// The node met.
    pub meet: Peer,
}

/// An update to publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishSpec {
    /// Its key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
}

/// What a publish did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishReply {
    /// Taken as this version, at this time (agent clock, µs, just before the call).
    Item {
        /// The version the node gave it.
        version: u64,
        /// When.
        at_us: u64,
    },
    /// The node refused it, saying why.
    Refused(String),
    /// The node is not running.
    NotRunning,
}

/// One node's traffic counters as its I/O thread last published them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// When they were published (agent clock, µs).
    pub at_us: u64,
    /// Whether the node was running.
    pub running: bool,
    /// Its incarnation.
    pub incarnation: u32,
    /// Sent `[datagrams, bytes]` by message type code.
    pub sent: Vec<[u64; 2]>,
    /// Received `[datagrams, bytes]` by message type code.
    pub received: Vec<[u64; 2]>,
}

/// Something whose copies are counted, by node ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// "Node X exists".
    Join(u64),
    /// "Node X is FAIL".
    Fail(u64),
    /// A published update.
    Update {
        /// The publisher's id.
        origin: u64,
        /// The key's id.
        key: u64,
        /// Its version.
        version: u64,
    },
}

/// What running the nodes cost, cumulative since the cluster started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU time of the I/O threads, µs.
    pub cpu_us: u64,
    /// The agent's peak resident set, bytes.
    pub max_rss_bytes: Option<u64>,
    /// Datagrams the datapath dropped (send drops, truncated, receive errors,
    /// full transmit queues).
    pub drops: u64,
    /// The kernel's UDP receive-buffer errors in the agent's network
    /// namespace, if readable.
    pub udp_rcvbuf_errors: Option<u64>,
    /// Events lost from full observation queues.
    pub events_dropped: u64,
    /// Ticks run.
    pub ticks: u64,
    /// Ticks run late.
    pub late_ticks: u64,
}

/// Network faults on the agent's host, replacing any applied before.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Datagrams from these peers are dropped on arrival with this
    /// probability (1.0: a partition). Traffic between the agent's own
    /// nodes is never touched.
    pub loss: Vec<LossRule>,
    /// One-way latency added to every datagram leaving, ms (0: none).
    pub latency_ms: f64,
    /// Uniform jitter on that latency, ms.
    pub jitter_ms: f64,
}

/// Loss from a set of peer addresses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossRule {
    /// The peers' addresses.
    pub from: Vec<IpAddr>,
    /// Probability that a datagram from them is dropped, 0 to 1.
    pub probability: f64,
}

/// What applying faults did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultsApplied {
    /// Each mechanism used, in words (e.g. "nftables table inet gossip_agent:
    /// 2 numgen drop rules").
    pub mechanisms: Vec<String>,
}

/// One event of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The node's local index.
    pub node: usize,
    /// When its I/O thread drained it (agent clock, µs).
    pub at_us: u64,
    /// What happened.
    pub event: EventJson,
}

/// A core [`Event`], as JSON (ids as numbers, endpoints as [`Peer`]-like
/// address and slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventJson {
    /// [`Event::PeerDiscovered`].
    PeerDiscovered {
        id: u64,
        addr: SocketAddr,
        slot: u16,
    },
    /// [`Event::PeerJoined`].
    PeerJoined { id: u64 },
    /// [`Event::PeerPfail`].
    PeerPfail { id: u64 },
    /// [`Event::PeerFail`].
    PeerFail { id: u64, by_quorum: bool },
    /// [`Event::PeerAlive`].
    PeerAlive { id: u64, was: StateJson },
    /// [`Event::PeerRestarted`].
    PeerRestarted { id: u64, incarnation: u32 },
    /// [`Event::HandshakeTimedOut`].
    HandshakeTimedOut { id: u64 },
    /// [`Event::PeerForgotten`].
    PeerForgotten { id: u64 },
    /// [`Event::MeetTimedOut`].
    MeetTimedOut { addr: SocketAddr, slot: u16 },
    /// [`Event::UpdateReceived`].
    UpdateReceived {
        origin: u64,
        key: u64,
        version: u64,
        from: u64,
    },
}

/// A [`PeerState`], as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateJson {
    /// [`PeerState::Handshake`].
    Handshake,
    /// [`PeerState::Alive`].
    Alive,
    /// [`PeerState::Pfail`].
    Pfail,
    /// [`PeerState::Fail`].
    Fail,
}

impl Peer {
    /// The core endpoint.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.addr, self.slot)
    }

    /// The peer at `endpoint` with id `id`.
    pub fn new(id: NodeId, endpoint: Endpoint) -> Self {
        Peer {
            id: id.0,
            addr: endpoint.addr(),
            slot: endpoint.slot(),
        }
    }
}

impl Item {
    /// The JSON form of a core item id (`None` for a kind this API version
    /// does not carry).
    pub fn of(item: ItemId) -> Option<Self> {
        Some(match item {
            ItemId::Join(id) => Item::Join(id.0),
            ItemId::Fail(id) => Item::Fail(id.0),
            ItemId::Update {
                origin,
                key,
                version,
            } => Item::Update {
                origin: origin.0,
                key,
                version,
            },
            _ => return None,
        })
    }
}

impl From<Item> for ItemId {
    fn from(item: Item) -> Self {
        match item {
            Item::Join(id) => ItemId::Join(NodeId(id)),
            Item::Fail(id) => ItemId::Fail(NodeId(id)),
            Item::Update {
                origin,
                key,
                version,
            } => ItemId::Update {
                origin: NodeId(origin),
                key,
                version,
            },
        }
    }
}

impl From<PeerState> for StateJson {
    fn from(s: PeerState) -> Self {
        match s {
            PeerState::Handshake => StateJson::Handshake,
            PeerState::Alive => StateJson::Alive,
            PeerState::Pfail => StateJson::Pfail,
            PeerState::Fail => StateJson::Fail,
        }
    }
}

impl From<StateJson> for PeerState {
    fn from(s: StateJson) -> Self {
        match s {
            StateJson::Handshake => PeerState::Handshake,
            StateJson::Alive => PeerState::Alive,
            StateJson::Pfail => PeerState::Pfail,
            StateJson::Fail => PeerState::Fail,
        }
    }
}

impl EventJson {
    /// The JSON form of a core event (`None` for a kind this API version
    /// does not carry).
    pub fn of(event: &Event) -> Option<Self> {
        Some(match *event {
            Event::PeerDiscovered { id, endpoint } => EventJson::PeerDiscovered {
                id: id.0,
                addr: endpoint.addr(),
                slot: endpoint.slot(),
            },
            Event::PeerJoined { id } => EventJson::PeerJoined { id: id.0 },
            Event::PeerPfail { id } => EventJson::PeerPfail { id: id.0 },
            Event::PeerFail { id, by_quorum } => EventJson::PeerFail {
                id: id.0,
                by_quorum,
            },
            Event::PeerAlive { id, was } => EventJson::PeerAlive {
                id: id.0,
                was: was.into(),
            },
            Event::PeerRestarted { id, incarnation } => EventJson::PeerRestarted {
                id: id.0,
                incarnation,
            },
            Event::HandshakeTimedOut { id } => EventJson::HandshakeTimedOut { id: id.0 },
            Event::PeerForgotten { id } => EventJson::PeerForgotten { id: id.0 },
            Event::MeetTimedOut { endpoint } => EventJson::MeetTimedOut {
                addr: endpoint.addr(),
                slot: endpoint.slot(),
            },
            Event::UpdateReceived {
                origin,
                key,
                version,
                from,
            } => EventJson::UpdateReceived {
                origin: origin.0,
                key,
                version,
                from: from.0,
            },
            _ => return None,
        })
    }

    /// The core event it carries.
    pub fn event(&self) -> Event {
        match *self {
            EventJson::PeerDiscovered { id, addr, slot } => Event::PeerDiscovered {
                id: NodeId(id),
                endpoint: Endpoint::new(addr, slot),
            },
            EventJson::PeerJoined { id } => Event::PeerJoined { id: NodeId(id) },
            EventJson::PeerPfail { id } => Event::PeerPfail { id: NodeId(id) },
            EventJson::PeerFail { id, by_quorum } => Event::PeerFail {
                id: NodeId(id),
                by_quorum,
            },
            EventJson::PeerAlive { id, was } => Event::PeerAlive {
                id: NodeId(id),
                was: was.into(),
            },
            EventJson::PeerRestarted { id, incarnation } => Event::PeerRestarted {
                id: NodeId(id),
                incarnation,
            },
            EventJson::HandshakeTimedOut { id } => Event::HandshakeTimedOut { id: NodeId(id) },
            EventJson::PeerForgotten { id } => Event::PeerForgotten { id: NodeId(id) },
            EventJson::MeetTimedOut { addr, slot } => Event::MeetTimedOut {
                endpoint: Endpoint::new(addr, slot),
            },
            EventJson::UpdateReceived {
                origin,
                key,
                version,
                from,
            } => Event::UpdateReceived {
                origin: NodeId(origin),
                key,
                version,
                from: NodeId(from),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_round_trips_through_json() {
        let ep = Endpoint::new("198.18.0.2:7000".parse().unwrap(), 3);
        let events = [
            Event::PeerDiscovered {
                id: NodeId(u64::MAX),
                endpoint: ep,
            },
            Event::PeerJoined { id: NodeId(1) },
            Event::PeerPfail { id: NodeId(2) },
            Event::PeerFail {
                id: NodeId(3),
                by_quorum: true,
            },
            Event::PeerAlive {
                id: NodeId(4),
                was: PeerState::Pfail,
            },
            Event::PeerRestarted {
                id: NodeId(5),
                incarnation: 7,
            },
            Event::HandshakeTimedOut { id: NodeId(6) },
            Event::PeerForgotten { id: NodeId(7) },
            Event::MeetTimedOut { endpoint: ep },
            Event::UpdateReceived {
                origin: NodeId(8),
                key: 9,
                version: 10,
                from: NodeId(11),
            },
        ];
        for e in events {
            let json = serde_json::to_string(&EventJson::of(&e).unwrap()).unwrap();
            let back: EventJson = serde_json::from_str(&json).unwrap();
            assert_eq!(back.event(), e, "{json}");
        }
    }

    #[test]
    fn items_round_trip_through_the_core_id() {
        let items = [
            ItemId::Join(NodeId(1)),
            ItemId::Fail(NodeId(u64::MAX)),
            ItemId::Update {
                origin: NodeId(2),
                key: 3,
                version: 4,
            },
        ];
        for i in items {
            let json = serde_json::to_string(&Item::of(i).unwrap()).unwrap();
            let back: Item = serde_json::from_str(&json).unwrap();
            assert_eq!(ItemId::from(back), i);
        }
    }
}
