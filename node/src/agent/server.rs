//! The agent process: its token, the routes of [`super::api`], the
//! session and its lease watchdog, and a clean exit (nodes stopped, faults
//! cleared, socket file removed) on SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::api::{
    self, ApiError, ClusterSpec, Hello, Item, KeyFile, Meet, PublishReply, PublishSpec,
};
use super::cluster::{Cluster, ClusterHandle};
use super::faults::FaultControl;
use super::session::{random_hex, Lease, MAX_LEASE_MS, MIN_LEASE_MS};
use super::{now_us, AgentAddr};
use crate::datapath::{self, DatapathChoice};
use crate::http::{respond, Listener, Reply, Server};

/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;

/// How `gossip-node agent` was started.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Where the control channel listens.
    pub listen: AgentAddr,
    /// The shared token (created with a random one when missing).
    pub token_file: PathBuf,
    /// Where nodes bind (default: the listen IP, else 127.0.0.1).
    pub bind_ip: Option<IpAddr>,
    /// Whether `PUT /v1/faults` may touch the host's packets.
    pub allow_faults: bool,
    /// Added to the agent's clock, ms.
    pub clock_offset_ms: i64,
}

/// A refused request: its status and one line saying why.
#[derive(Debug)]
struct Refusal(StatusCode, String);

type Answer = Result<Bytes, Refusal>;

fn refuse<T>(status: StatusCode, why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(status, why.into()))
}

struct State {
    lease: Option<Lease>,
    cluster: Option<ClusterHandle>,
    faults: FaultControl,
}

/// The agent: what every request reads.
struct Agent {
    token: String,
    bind_ip: IpAddr,
    clock_offset_us: i64,
    host: String,
    datapath: String,
    state: Mutex<State>,
}

/// Runs the agent until SIGINT or SIGTERM.
///
/// # Errors
/// One line: the token file, the listen address or a thread failed.
pub fn run(opts: AgentOptions) -> Result<()> {
    let listener = match &opts.listen {
        AgentAddr::Tcp(addr) => {
            let addr = addr.parse().map_err(|_| {
                anyhow!("--listen {addr}: the agent listens on an IP:PORT, not a name")
            })?;
            Listener::tcp(addr)
        }
        AgentAddr::Unix(path) => Listener::unix(path),
    }
    .map_err(|e| anyhow!(e))?;
    let token = token(&opts.token_file)?;
    let bind_ip = opts.bind_ip.unwrap_or(match &listener {
        Listener::Tcp(l) => match l.local_addr() {
            Ok(a) if !a.ip().is_unspecified() => a.ip(),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        },
        Listener::Unix(..) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    });
    let faults = FaultControl::new(opts.allow_faults);
    let (kind, _) = datapath::resolve(DatapathChoice::Auto, datapath::probe_uring);
    let agent = Arc::new(Agent {
        token,
        bind_ip,
        clock_offset_us: opts.clock_offset_ms.saturating_mul(1_000),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        datapath: kind.name().into(),
        state: Mutex::new(State {
            lease: None,
            cluster: None,
            faults,
        }),
    });
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    let at = listener.to_string();
    let handler_agent = agent.clone();
    let server = Server::start(
        listener,
        Arc::new(move |req| Box::pin(handler_agent.clone().handle(req))),
    )
    .context("starting the HTTP server")?;
    eprintln!(
        "gossip-node agent: listening on {at}, nodes bind {bind_ip}, datapath {}, faults {}",
        agent.datapath,
        if opts.allow_faults { "allowed" } else { "off" }
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let mut state = agent.lock();
        if let Some(lease) = state.lease.as_ref().filter(|l| l.expired(Instant::now())) {
            eprintln!(
                "gossip-node agent: lease of session {} ({}) ran out after {:.1} s without a request: nodes stopped, faults cleared",
                lease.session.id,
                lease.session.owner,
                lease.idle().as_secs_f64()
            );
            end_session(&mut state);
        }
    }
    eprintln!("gossip-node agent: stopping");
    server.stop();
    let mut state = agent.lock();
    end_session(&mut state);
    Ok(())
}

/// Stops the cluster, clears the faults and forgets the session.
fn end_session(state: &mut State) {
    if let Some(c) = state.cluster.take() {
        c.stop();
    }
    if let Err(e) = state.faults.clear() {
        eprintln!("gossip-node agent: clearing faults: {e}");
    }
    state.lease = None;
}

/// The token in `path`, or a new random one written there (mode 0600).
fn token(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let t = t.trim().to_string();
            if t.is_empty() {
                bail!("token file {} is empty", path.display());
            }
            Ok(t)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let t = random_hex(32);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| anyhow!("cannot create token file {}: {e}", path.display()))?;
            writeln!(f, "{t}")
                .map_err(|e| anyhow!("cannot write token file {}: {e}", path.display()))?;
            eprintln!(
                "gossip-node agent: created token file {} with a random token (mode 0600); give it to the loadgen",
                path.display()
            );
            Ok(t)
        }
        Err(e) => bail!("cannot read token file {}: {e}", path.display()),
    }
}

fn json<T: Serialize>(v: &T) -> Answer {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .or_else(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}")))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).or_else(|e| {
        let line = e.to_string().replace('\n', " ");
        refuse(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON body: {line}"),
        )
    })
}

fn error_response(Refusal(status, why): Refusal) -> Response<Reply> {
    let body = serde_json::to_vec(&ApiError { error: why }).unwrap_or_default();
    respond(status, "application/json", body)
}

/// The routes: a path's pattern and the methods it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Hello,
    Clock,
    Session,
    Renew,
    Cluster,
    Node(usize, NodeAction),
    Counters,
    Holders(u64),
    Track,
    Untrack,
    Copies,
    Resources,
    Keyring,
    Faults,
    Events,
    Metrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeAction {
    Start,
    Restart,
    Kill,
    Pause,
    Resume,
    Publish,
}

impl Route {
    fn of(path: &str) -> Result<Route, Refusal> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let route = match parts.as_slice() {
            ["v1", "hello"] => Route::Hello,
            ["v1", "clock"] => Route::Clock,
            ["v1", "session"] => Route::Session,
            ["v1", "session", "renew"] => Route::Renew,
            ["v1", "cluster"] => Route::Cluster,
            ["v1", "nodes", i, action] => {
                let action = match *action {
                    "start" => NodeAction::Start,
                    "restart" => NodeAction::Restart,
                    "kill" => NodeAction::Kill,
                    "pause" => NodeAction::Pause,
                    "resume" => NodeAction::Resume,
                    "publish" => NodeAction::Publish,
                    _ => return refuse(StatusCode::NOT_FOUND, format!("no route {path}")),
                };
                let i = i.parse().or_else(|_| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        format!("node index {i:?} is not a number"),
                    )
                })?;
                Route::Node(i, action)
            }
            ["v1", "counters"] => Route::Counters,
            ["v1", "holders", id] => Route::Holders(id.parse().or_else(|_| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    format!("node id {id:?} is not a number"),
                )
            })?),
            ["v1", "track"] => Route::Track,
            ["v1", "untrack"] => Route::Untrack,
            ["v1", "copies"] => Route::Copies,
            ["v1", "resources"] => Route::Resources,
            ["v1", "keyring"] => Route::Keyring,
            ["v1", "faults"] => Route::Faults,
            ["v1", "events"] => Route::Events,
            ["metrics"] => Route::Metrics,
            _ => return refuse(StatusCode::NOT_FOUND, format!("no route {path}")),
        };
        Ok(route)
    }

    fn methods(self) -> &'static [Method] {
        match self {
            Route::Hello
            | Route::Clock
            | Route::Counters
            | Route::Holders(_)
            | Route::Resources
            | Route::Events
            | Route::Metrics => &[Method::GET],
            Route::Session | Route::Cluster => &[Method::POST, Method::DELETE],
            Route::Faults => &[Method::PUT, Method::DELETE],
            Route::Keyring => &[Method::PUT],
            Route::Renew | Route::Node(..) | Route::Track | Route::Untrack | Route::Copies => {
                &[Method::POST]
            }
        }
    }

    /// Whether the request must name the session.
    fn needs_session(self, method: &Method) -> bool {
        match self {
            Route::Session => method == Method::DELETE,
            Route::Renew
            | Route::Cluster
            | Route::Node(..)
            | Route::Track
            | Route::Untrack
            | Route::Copies
            | Route::Keyring
            | Route::Faults
            | Route::Events => true,
            _ => false,
        }
    }
}

impl Agent {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Reply> {
        match self.answer(req).await {
            Ok(r) => r,
            Err(refusal) => error_response(refusal),
        }
    }

    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Reply>, Refusal> {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        if !bool::from(given.ct_eq(self.token.as_bytes())) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send Authorization: Bearer <the agent's token>",
            );
        }
        let method = req.method().clone();
        let route = Route::of(req.uri().path())?;
        if !route.methods().contains(&method) {
            let allowed: Vec<&str> = route.methods().iter().map(Method::as_str).collect();
            return refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{} takes {}, not {method}",
                    req.uri().path(),
                    allowed.join(" or ")
                ),
            );
        }
        let session = req
            .headers()
            .get(api::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if route == Route::Clock {
            // Answered at once: the loadgen's offset estimate wants the
            // shortest round trip.
            let reading = api::ClockReading {
                agent_us: now_us(self.clock_offset_us),
            };
            return Ok(respond(StatusCode::OK, "application/json", json(&reading)?));
        }
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            );
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {MAX_BODY} bytes"),
                )
            }
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        };
        if route == Route::Events {
            return self.events(session.as_deref());
        }
        let agent = self.clone();
        let answer = tokio::task::spawn_blocking(move || {
            agent.route(route, &method, session.as_deref(), &body)
        })
        .await
        .or_else(|e| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("handler failed: {e}"),
            )
        })??;
        let content_type = if route == Route::Metrics {
            "text/plain; version=0.0.4; charset=utf-8"
        } else {
            "application/json"
        };
        Ok(respond(StatusCode::OK, content_type, answer))
    }

    /// Checks that `given` names the live session, and renews its lease.
    fn check_session(state: &mut State, given: Option<&str>) -> Result<(), Refusal> {
        let Some(lease) = state.lease.as_mut() else {
            return refuse(
                StatusCode::CONFLICT,
                "no session holds the agent: open one with POST /v1/session",
            );
        };
        let Some(given) = given else {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "this request needs the session id in the {} header",
                    api::SESSION_HEADER
                ),
            );
        };
        if !bool::from(given.as_bytes().ct_eq(lease.session.id.as_bytes())) {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "session {given:?} does not hold the agent (held by {})",
                    lease.session.owner
                ),
            );
        }
        lease.renew();
        Ok(())
    }

    fn cluster(state: &State) -> Result<Arc<Cluster>, Refusal> {
        match &state.cluster {
            Some(c) => Ok(c.cluster.clone()),
            None => refuse(
                StatusCode::CONFLICT,
                "no cluster runs: start one with POST /v1/cluster",
            ),
        }
    }

    fn events(&self, session: Option<&str>) -> Result<Response<Reply>, Refusal> {
        let mut state = self.lock();
        Self::check_session(&mut state, session)?;
        let cluster = Self::cluster(&state)?;
        drop(state);
        let subscribed = cluster
            .hub()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribe();
        let Some((backlog, rx)) = subscribed else {
            return refuse(
                StatusCode::CONFLICT,
                "an event stream is already open for this session",
            );
        };
        let mut r = Response::new(Reply::stream(backlog, rx));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/x-ndjson"),
        );
        Ok(r)
    }

    /// Answers a request (on the blocking pool: runtime calls wait).
    fn route(&self, route: Route, method: &Method, session: Option<&str>, body: &[u8]) -> Answer {
        let mut state = self.lock();
        if route.needs_session(method) {
            Self::check_session(&mut state, session)?;
        }
        match (route, method) {
            (Route::Hello, _) => json(&Hello {
                api: api::API_VERSION,
                version: env!("CARGO_PKG_VERSION").into(),
                host: self.host.clone(),
                bind_ip: self.bind_ip,
                datapath: self.datapath.clone(),
                faults: state.faults.support().clone(),
                session: state.lease.as_ref().map(|l| l.session.clone()),
                process: api::AgentProcess::this(),
            }),
            (Route::Session, &Method::POST) => {
                let spec: api::SessionSpec = parse(body)?;
                if let Some(l) = &state.lease {
                    return refuse(
                        StatusCode::CONFLICT,
                        format!(
                            "agent held by {} (session {}, lease {} ms, idle {:.1} s)",
                            l.session.owner,
                            l.session.id,
                            l.session.lease_ms,
                            l.idle().as_secs_f64()
                        ),
                    );
                }
                if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&spec.lease_ms) {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "lease_ms {} (between {MIN_LEASE_MS} and {MAX_LEASE_MS})",
                            spec.lease_ms
                        ),
                    );
                }
                let owner: String = spec
                    .owner
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                let lease = Lease::new(owner, spec.lease_ms);
                eprintln!(
                    "gossip-node agent: session {} opened by {} (lease {} ms)",
                    lease.session.id, lease.session.owner, lease.session.lease_ms
                );
                let answer = json(&lease.session);
                state.lease = Some(lease);
                answer
            }
            (Route::Session, _) => {
                end_session(&mut state);
                eprintln!("gossip-node agent: session closed by its owner");
                json(&serde_json::json!({}))
            }
            (Route::Renew, _) => json(&state.lease.as_ref().map(|l| l.session.clone())),
            (Route::Cluster, &Method::POST) => {
                let spec: ClusterSpec = parse(body)?;
                if state.cluster.is_some() {
                    return refuse(
                        StatusCode::CONFLICT,
                        "a cluster already runs in this session: DELETE /v1/cluster first",
                    );
                }
                let handle = Cluster::start(&spec, self.bind_ip, self.clock_offset_us)
                    .or_else(|e| refuse(StatusCode::BAD_REQUEST, e))?;
                let answer = json(handle.cluster.started());
                state.cluster = Some(handle);
                answer
            }
            (Route::Cluster, _) => match state.cluster.take() {
                Some(c) => json(&c.stop()),
                None => refuse(StatusCode::CONFLICT, "no cluster runs"),
            },
            (Route::Node(i, action), _) => {
                let cluster = Self::cluster(&state)?;
                drop(state);
                node_action(&cluster, i, action, body)
            }
            (Route::Counters, _) => {
                let cluster = Self::cluster(&state)?;
                drop(state);
                let counters: Vec<Option<api::Counters>> = (0..cluster.nodes())
                    .map(|i| {
                        cluster.runtime().node_counters(i).map(|c| api::Counters {
                            at_us: cluster.agent_us(c.at.as_micros()),
                            running: c.running,
                            incarnation: c.incarnation,
                            sent: c.sent.iter().map(|t| [t.datagrams, t.bytes]).collect(),
                            received: c.received.iter().map(|t| [t.datagrams, t.bytes]).collect(),
                        })
                    })
                    .collect();
                json(&counters)
            }
            (Route::Holders(id), _) => {
                let cluster = Self::cluster(&state)?;
                drop(state);
                json(&cluster.runtime().holders(gossip_core::NodeId(id)))
            }
            (Route::Track | Route::Untrack | Route::Copies, _) => {
                let item: Item = parse(body)?;
                let cluster = Self::cluster(&state)?;
                drop(state);
                let rt = cluster.runtime();
                match route {
                    Route::Track => json(&rt.track(item.into())),
                    Route::Untrack => json(&rt.untrack(item.into())),
                    _ => json(&rt.copies(item.into())),
                }
            }
            (Route::Resources, _) => json(&Self::cluster(&state)?.resources()),
            (Route::Keyring, _) => {
                let file: KeyFile = parse(body)?;
                let cluster = Self::cluster(&state)?;
                drop(state);
                if !cluster.keyed() {
                    return refuse(
                        StatusCode::CONFLICT,
                        "the cluster started without a key: its nodes cannot gain one",
                    );
                }
                match cluster.set_keyring(&file) {
                    Ok(set) => json(&set),
                    Err(e) => refuse(StatusCode::BAD_REQUEST, e),
                }
            }
            (Route::Faults, &Method::PUT) => {
                let faults: api::Faults = parse(body)?;
                match state.faults.apply(&faults) {
                    Ok(applied) => json(&applied),
                    Err(e) => refuse(StatusCode::UNPROCESSABLE_ENTITY, e),
                }
            }
            (Route::Faults, _) => match state.faults.clear() {
                Ok(()) => json(&serde_json::json!({})),
                Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            (Route::Metrics, _) => Ok(Bytes::from(match &state.cluster {
                Some(c) => c.cluster.runtime().metrics().render(),
                None => String::new(),
            })),
            (Route::Clock | Route::Events, _) => {
                refuse(StatusCode::INTERNAL_SERVER_ERROR, "routed elsewhere")
            }
        }
    }
}

fn node_action(cluster: &Cluster, i: usize, action: NodeAction, body: &[u8]) -> Answer {
    if i >= cluster.nodes() {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "node {i} is out of range: this cluster has {} node(s)",
                cluster.nodes()
            ),
        );
    }
    let rt = cluster.runtime();
    let done = |ok: bool, what: &str| {
        if ok {
            json(&serde_json::json!({}))
        } else {
            refuse(StatusCode::CONFLICT, format!("node {i} {what}"))
        }
    };
    match action {
        NodeAction::Start | NodeAction::Restart => {
            let meet: Meet = parse(body)?;
            let meet = [meet.meet.endpoint()];
            let r = if action == NodeAction::Start {
                rt.start_node(i, &meet)
            } else {
                rt.restart(i, &meet)
            };
            r.or_else(|e| refuse(StatusCode::CONFLICT, format!("node {i}: {e}")))?;
            json(&serde_json::json!({}))
        }
        NodeAction::Kill => done(rt.kill(i), "was not running"),
        NodeAction::Pause => done(rt.pause(i), "was not running or already paused"),
        NodeAction::Resume => done(rt.resume(i), "was not paused"),
        NodeAction::Publish => {
            let spec: PublishSpec = parse(body)?;
            let at_us = cluster.agent_us(rt.clock().now().as_micros());
            json(&match rt.publish(i, &spec.key, &spec.value) {
                None => PublishReply::NotRunning,
                Some(Ok(stamp)) => PublishReply::Item {
                    version: stamp.version,
                    at_us,
                },
                Some(Err(e)) => PublishReply::Refused(e.to_string()),
            })
        }
    }
}
