//! The loadgen's side of the control API: a blocking client, one HTTP/1.1
//! connection kept open (hyper, on a small current-thread tokio runtime of
//! its own), reconnected when the agent closed it. Cloning makes a new
//! connection, so that each thread (requests, lease renewal, the event
//! stream) has its own and none waits behind another.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api::{
    self, ApiError, ClockReading, ClusterSpec, ClusterStarted, Counters, EventRecord, Faults,
    FaultsApplied, Hello, Item, KeyFile, KeyringSet, Meet, Peer, PublishReply, PublishSpec,
    Resources, Session, SessionSpec,
};
use crate::datapath::sys;

/// Connecting gives up after this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A request (other than the event stream) gives up after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A kept connection idle this long is replaced rather than reused (the
/// agent's HTTP server may close idle connections after 10 s).
const REUSE_IDLE: Duration = Duration::from_secs(5);
/// Largest answer read.
const MAX_ANSWER: usize = 256 << 20;
/// Longest event line read.
const MAX_LINE: usize = 64 << 10;

/// Where an agent listens: `host:port` or `unix:/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentAddr {
    /// `host:port` (a name or an IP).
    Tcp(String),
    /// A unix socket's path.
    Unix(PathBuf),
}

impl FromStr for AgentAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("{s:?}: unix: needs a socket path"));
            }
            return Ok(AgentAddr::Unix(path.into()));
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(format!("{s:?} is neither host:port nor unix:/path"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!(
                "{s:?} is neither host:port (port 0 to 65535) nor unix:/path"
            ));
        }
        Ok(AgentAddr::Tcp(s.into()))
    }
}

impl fmt::Display for AgentAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentAddr::Tcp(a) => write!(f, "{a}"),
            AgentAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// An agent's clock against the local one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEstimate {
    /// Agent clock − local CLOCK_MONOTONIC, µs.
    pub offset_us: i64,
    /// The true offset lies within ± this of `offset_us`, µs (half the round trip).
    pub uncertainty_us: u64,
    /// The round trip of the sample kept, µs.
    pub rtt_us: u64,
}

/// A blocking client of one agent.
pub struct AgentClient {
    addr: AgentAddr,
    token: String,
    session: Option<String>,
    rt: tokio::runtime::Runtime,
    /// The kept connection and when it was last used.
    conn: Option<(SendRequest<Full<Bytes>>, Instant)>,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("addr", &self.addr)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Clone for AgentClient {
    /// Another client of the same agent, with the same session, on a
    /// connection of its own (made at its first request).
    fn clone(&self) -> Self {
        // A runtime that cannot be built is out of threads or descriptors;
        // the clone's first request then fails with that.
        AgentClient::unconnected(self.addr.clone(), self.token.clone(), self.session.clone())
            .expect("building a current-thread tokio runtime")
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| anyhow!("cannot build the client's runtime: {e}"))
}

/// Refuses an agent speaking another API version.
///
/// # Errors
/// "agent at X speaks API vN, this loadgen vM".
pub fn check_version(addr: &AgentAddr, hello: &Hello) -> Result<()> {
    if hello.api != api::API_VERSION {
        bail!(
            "agent at {addr} speaks API v{}, this loadgen v{}",
            hello.api,
            api::API_VERSION
        );
    }
    Ok(())
}

impl AgentClient {
    fn unconnected(addr: AgentAddr, token: String, session: Option<String>) -> Result<Self> {
        Ok(AgentClient {
            addr,
            token,
            session,
            rt: runtime()?,
            conn: None,
        })
    }

    /// Connects to the agent at `addr` with `token` and checks it speaks
    /// this API version.
    ///
    /// # Errors
    /// One line: unreachable (within [`CONNECT_TIMEOUT`]), refused token,
    /// another API version.
    pub fn connect(addr: &AgentAddr, token: &str) -> Result<AgentClient> {
        let mut c = Self::unconnected(addr.clone(), token.trim().to_string(), None)?;
        let hello = c.hello()?;
        check_version(addr, &hello)?;
        Ok(c)
    }

    /// The agent's address.
    pub fn addr(&self) -> &AgentAddr {
        &self.addr
    }

    /// The session this client names, if any.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Names `id` as this client's session (another client's, shared).
    pub fn set_session(&mut self, id: Option<String>) {
        self.session = id;
    }

    /// `GET /v1/hello`.
    pub fn hello(&mut self) -> Result<Hello> {
        self.call(Method::GET, "/v1/hello", None::<&()>)
    }

    /// `GET /v1/clock`.
    pub fn clock(&mut self) -> Result<ClockReading> {
        self.call(Method::GET, "/v1/clock", None::<&()>)
    }

    /// `POST /v1/session`: holds the agent; later requests name the session.
    pub fn open_session(&mut self, owner: &str, lease: Duration) -> Result<Session> {
        let spec = SessionSpec {
            owner: owner.into(),
            lease_ms: lease.as_millis() as u64,
        };
        let s: Session = self.call(Method::POST, "/v1/session", Some(&spec))?;
        self.session = Some(s.id.clone());
        Ok(s)
    }

    /// `POST /v1/session/renew`.
    pub fn renew(&mut self) -> Result<Session> {
        let s: Option<Session> = self.call(Method::POST, "/v1/session/renew", None::<&()>)?;
        s.ok_or_else(|| anyhow!("agent at {}: the session ended", self.addr))
    }

    /// `DELETE /v1/session`: nodes stopped, faults cleared.
    pub fn close_session(&mut self) -> Result<()> {
        let _: serde_json::Value = self.call(Method::DELETE, "/v1/session", None::<&()>)?;
        self.session = None;
        Ok(())
    }

    /// `POST /v1/cluster`.
    pub fn start_cluster(&mut self, spec: &ClusterSpec) -> Result<ClusterStarted> {
        self.call(Method::POST, "/v1/cluster", Some(spec))
    }

    /// `DELETE /v1/cluster`: the final resources.
    pub fn stop_cluster(&mut self) -> Result<Resources> {
        self.call(Method::DELETE, "/v1/cluster", None::<&()>)
    }

    fn node(&mut self, i: usize, action: &str, meet: Option<Peer>) -> Result<()> {
        let path = format!("/v1/nodes/{i}/{action}");
        let _: serde_json::Value = match meet {
            Some(meet) => self.call(Method::POST, &path, Some(&Meet { meet }))?,
            None => self.call(Method::POST, &path, None::<&()>)?,
        };
        Ok(())
    }

    /// Starts held node `i`, meeting `meet`.
    pub fn start_node(&mut self, i: usize, meet: Peer) -> Result<()> {
        self.node(i, "start", Some(meet))
    }

    /// Restarts node `i` (next incarnation), meeting `meet`.
    pub fn restart_node(&mut self, i: usize, meet: Peer) -> Result<()> {
        self.node(i, "restart", Some(meet))
    }

    /// Kills node `i`.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.node(i, "kill", None)
    }

    /// Pauses node `i`.
    pub fn pause(&mut self, i: usize) -> Result<()> {
        self.node(i, "pause", None)
    }

    /// Resumes node `i`.
    pub fn resume(&mut self, i: usize) -> Result<()> {
        self.node(i, "resume", None)
    }

    /// Node `i` publishes `value` under `key`.
    pub fn publish(&mut self, i: usize, key: &[u8], value: &[u8]) -> Result<PublishReply> {
        let spec = PublishSpec {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        self.call(Method::POST, &format!("/v1/nodes/{i}/publish"), Some(&spec))
    }

    /// Every node's counters, by local index.
    pub fn counters(&mut self) -> Result<Vec<Option<Counters>>> {
        self.call(Method::GET, "/v1/counters", None::<&()>)
    }

    /// Local nodes holding node `id` as a member.
    pub fn holders(&mut self, id: u64) -> Result<Vec<usize>> {
        self.call(Method::GET, &format!("/v1/holders/{id}"), None::<&()>)
    }

    /// Every node counts copies of `item`; false when a thread refused.
    pub fn track(&mut self, item: Item) -> Result<bool> {
        self.call(Method::POST, "/v1/track", Some(&item))
    }

    /// No node counts `item` any more; whether one did.
    pub fn untrack(&mut self, item: Item) -> Result<bool> {
        self.call(Method::POST, "/v1/untrack", Some(&item))
    }

    /// Copies of `item` per node.
    pub fn copies(&mut self, item: Item) -> Result<Vec<Option<u32>>> {
        self.call(Method::POST, "/v1/copies", Some(&item))
    }

    /// Resources so far.
    pub fn resources(&mut self) -> Result<Resources> {
        self.call(Method::GET, "/v1/resources", None::<&()>)
    }

    /// Replaces the agent's faults.
    pub fn set_faults(&mut self, faults: &Faults) -> Result<FaultsApplied> {
        self.call(Method::PUT, "/v1/faults", Some(faults))
    }

    /// Replaces every node's keyring with `file`'s (a rotation step). The
    /// agent answers with key ids only; an error never repeats the file.
    pub fn set_keyring(&mut self, file: &KeyFile) -> Result<KeyringSet> {
        self.call(Method::PUT, "/v1/keyring", Some(file))
    }

    /// Removes the agent's faults.
    pub fn clear_faults(&mut self) -> Result<()> {
        let _: serde_json::Value = self.call(Method::DELETE, "/v1/faults", None::<&()>)?;
        Ok(())
    }

    /// The Prometheus text of the running nodes.
    pub fn metrics(&mut self) -> Result<String> {
        let res = self.send(Method::GET, "/metrics", Bytes::new())?;
        let body = read_answer(&self.addr, "/metrics", res, &self.rt)?;
        String::from_utf8(body.to_vec())
            .map_err(|e| anyhow!("agent at {}: /metrics: {e}", self.addr))
    }

    /// The event stream (a new connection of its own; read it from any thread).
    pub fn events(&self) -> Result<EventStream> {
        let mut c = self.clone();
        let res = c.send(Method::GET, "/v1/events", Bytes::new())?;
        if !res.status().is_success() {
            let status = res.status();
            let body =
                c.rt.block_on(Limited::new(res.into_body(), MAX_LINE).collect())
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
            bail!(
                "agent at {}: /v1/events: {}",
                c.addr,
                api_error(status, &body)
            );
        }
        Ok(EventStream {
            addr: c.addr.clone(),
            rt: c.rt,
            body: Some(res.into_body()),
            buf: BytesMut::new(),
        })
    }

    fn call<B: Serialize, T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let bytes = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        let res = self.send(method, path, bytes)?;
        let body = read_answer(&self.addr, path, res, &self.rt)?;
        serde_json::from_slice(&body)
            .map_err(|e| anyhow!("agent at {}: {path}: unreadable answer: {e}", self.addr))
    }

    /// Sends one request on the kept connection (made or remade as needed).
    fn send(&mut self, method: Method, path: &str, body: Bytes) -> Result<Response<Incoming>> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "agent")
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            );
        if !body.is_empty() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        if let Some(s) = &self.session {
            req = req.header(api::SESSION_HEADER, s.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| anyhow!("agent at {}: {path}: {e}", self.addr))?;
        // Timers are made outside `block_on`: they need the runtime entered.
        let _entered = self.rt.enter();
        // The connection task runs only inside `block_on`, so a kept
        // connection may have been closed by the agent unnoticed: reuse it
        // only while recently used, and resend on a new one a request the old
        // one gave back unsent.
        let mut req = req;
        if let Some((mut conn, used)) = self.conn.take() {
            if used.elapsed() < REUSE_IDLE
                && !conn.is_closed()
                && self.rt.block_on(conn.ready()).is_ok()
            {
                let res = self.rt.block_on(tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    conn.try_send_request(req),
                ));
                match res {
                    Ok(Err(mut e)) => match e.take_message() {
                        Some(back) => req = back,
                        None => return self.finish(path, Ok(Err(e.into_error()))),
                    },
                    res => {
                        self.conn = Some((conn, Instant::now()));
                        return self.finish(path, res.map(|r| r.map_err(|e| e.into_error())));
                    }
                }
            }
        }
        let mut conn = self.rt.block_on(connect(&self.addr))?;
        let res = self.rt.block_on(tokio::time::timeout(
            REQUEST_TIMEOUT,
            conn.send_request(req),
        ));
        self.conn = Some((conn, Instant::now()));
        self.finish(path, res)
    }

    fn finish(
        &mut self,
        path: &str,
        res: Result<hyper::Result<Response<Incoming>>, tokio::time::error::Elapsed>,
    ) -> Result<Response<Incoming>> {
        match res {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.conn = None;
                bail!("agent at {}: {path}: {e}", self.addr)
            }
            Err(_) => {
                self.conn = None;
                bail!(
                    "agent at {}: {path}: no answer within {} s",
                    self.addr,
                    REQUEST_TIMEOUT.as_secs()
                )
            }
        }
    }
}

fn read_answer(
    addr: &AgentAddr,
    path: &str,
    res: Response<Incoming>,
    rt: &tokio::runtime::Runtime,
) -> Result<Bytes> {
    let status = res.status();
    let _entered = rt.enter();
    let body = rt
        .block_on(tokio::time::timeout(
            REQUEST_TIMEOUT,
            Limited::new(res.into_body(), MAX_ANSWER).collect(),
        ))
        .map_err(|_| {
            anyhow!(
                "agent at {addr}: {path}: answer not read within {} s",
                REQUEST_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| anyhow!("agent at {addr}: {path}: reading the answer: {e}"))?
        .to_bytes();
    if !status.is_success() {
        bail!("agent at {addr}: {path}: {}", api_error(status, &body));
    }
    Ok(body)
}

fn api_error(status: hyper::StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => format!("{} ({status})", e.error),
        Err(_) => format!("{status}"),
    }
}

async fn connect(addr: &AgentAddr) -> Result<SendRequest<Full<Bytes>>> {
    let unreachable = |e: &dyn fmt::Display| anyhow!("agent at {addr} is unreachable: {e}");
    let handshake = async {
        match addr {
            AgentAddr::Tcp(a) => {
                let addrs: Vec<SocketAddr> =
                    a.to_socket_addrs().map_err(|e| unreachable(&e))?.collect();
                let first = addrs
                    .first()
                    .ok_or_else(|| unreachable(&"the name has no address"))?;
                let s = tokio::net::TcpStream::connect(first)
                    .await
                    .map_err(|e| unreachable(&e))?;
                let _ = s.set_nodelay(true);
                spawn_conn(TokioIo::new(s)).await
            }
            AgentAddr::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| unreachable(&e))?;
                spawn_conn(TokioIo::new(s)).await
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            unreachable(&format_args!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
}

async fn spawn_conn<S>(io: TokioIo<S>) -> Result<SendRequest<Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| anyhow!("HTTP handshake: {e}"))?;
    // Driven whenever the client's runtime runs (during its requests).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// The agent's events, one per item, until the cluster stops (then `None`).
pub struct EventStream {
    addr: AgentAddr,
    rt: tokio::runtime::Runtime,
    body: Option<Incoming>,
    buf: BytesMut,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Iterator for EventStream {
    type Item = Result<EventRecord>;

    fn next(&mut self) -> Option<Result<EventRecord>> {
        loop {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(nl + 1);
                return Some(
                    serde_json::from_slice(&line[..nl])
                        .map_err(|e| anyhow!("agent at {}: unreadable event: {e}", self.addr)),
                );
            }
            if self.buf.len() > MAX_LINE {
                self.body = None;
                return Some(Err(anyhow!(
                    "agent at {}: an event line over {MAX_LINE} bytes",
                    self.addr
                )));
            }
            let body = self.body.as_mut()?;
            match self.rt.block_on(body.frame()) {
                None => {
                    self.body = None;
                    return None;
                }
                Some(Err(e)) => {
                    self.body = None;
                    return Some(Err(anyhow!(
                        "agent at {}: the event stream broke: {e}",
                        self.addr
                    )));
                }
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }
}

/// Estimates the agent's clock offset from `samples` clock readings (at
/// least one), keeping the one with the shortest round trip.
///
/// # Errors
/// A reading failed.
pub fn clock_offset(client: &mut AgentClient, samples: usize) -> Result<OffsetEstimate> {
    let mut best: Option<OffsetEstimate> = None;
    // The first request may pay for a connection: warm it.
    client.clock()?;
    for _ in 0..samples.max(1) {
        let sent = sys::monotonic_us();
        let reading = client.clock()?;
        let received = sys::monotonic_us();
        let rtt_us = received.saturating_sub(sent);
        let mid = sent + rtt_us / 2;
        let estimate = OffsetEstimate {
            offset_us: reading.agent_us as i64 - mid as i64,
            uncertainty_us: rtt_us.div_ceil(2),
            rtt_us,
        };
        if best.is_none_or(|b| estimate.rtt_us < b.rtt_us) {
            best = Some(estimate);
        }
    }
    best.ok_or_else(|| anyhow!("no clock sample"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_from_host_port_or_a_unix_path() {
        assert_eq!(
            "127.0.0.1:7070".parse::<AgentAddr>(),
            Ok(AgentAddr::Tcp("127.0.0.1:7070".into()))
        );
        assert_eq!(
            "unix:/run/a.sock".parse::<AgentAddr>(),
            Ok(AgentAddr::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            "[::1]:7070".parse::<AgentAddr>().unwrap().to_string(),
            "[::1]:7070"
        );
        for bad in ["", "host", "host:port", ":7070", "h:70000", "unix:"] {
            let e = bad.parse::<AgentAddr>().unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn another_api_version_is_refused_in_one_line() {
        let addr: AgentAddr = "127.0.0.1:7070".parse().unwrap();
        let mut hello = Hello {
            api: api::API_VERSION,
            version: "0".into(),
            host: "h".into(),
            bind_ip: "127.0.0.1".parse().unwrap(),
            datapath: "mmsg".into(),
            faults: api::FaultSupport {
                loss: api::Support::No("x".into()),
                partition: api::Support::No("x".into()),
                latency: api::Support::No("x".into()),
            },
            session: None,
            process: None,
        };
        assert!(check_version(&addr, &hello).is_ok());
        hello.api = api::API_VERSION + 1;
        let e = check_version(&addr, &hello).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "agent at 127.0.0.1:7070 speaks API v{}, this loadgen v{}",
                api::API_VERSION + 1,
                api::API_VERSION
            )
        );
    }

    #[test]
    fn an_unreachable_agent_is_named_within_the_connect_timeout() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: AgentAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let started = std::time::Instant::now();
        let e = AgentClient::connect(&addr, "t").unwrap_err().to_string();
        assert!(started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(1));
        assert!(
            e.contains(&format!("agent at 127.0.0.1:{port} is unreachable")),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }
}
