//! The nodes an agent runs for its session: a [`Runtime`] started from a
//! [`ClusterSpec`], its events pumped to the session's stream, and its
//! costs read as [`Resources`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::api::{
    ClusterSpec, ClusterStarted, EventJson, EventRecord, KeyFile, KeyringSet, Peer, Resources,
};
use super::now_us;
use crate::datapath::{sys, DatapathChoice};
use crate::metrics::Snapshot;
use crate::runtime::{Runtime, RuntimeConfig};

/// How often the pump drains the runtime's event queues.
const PUMP_EVERY: Duration = Duration::from_millis(20);
/// Events a drain takes at most (the rest wait for the next one).
const PUMP_BATCH: usize = 100_000;
/// Bytes of events kept while nobody streams them (then dropped, counted).
const BACKLOG_BYTES: usize = 16 << 20;
/// Chunks in flight to a stream reader before new ones are dropped (counted).
pub const STREAM_CHUNKS: usize = 256;
/// Nodes an agent runs at most.
const MAX_NODES: usize = 100_000;

/// Where events go: a reader's channel, or a bounded backlog until one comes.
#[derive(Debug, Default)]
pub struct EventHub {
    reader: Option<mpsc::Sender<Bytes>>,
    backlog: VecDeque<Bytes>,
    backlog_bytes: usize,
    /// Events lost: backlog full, or a reader too slow.
    dropped: u64,
    /// The cluster stopped: the stream ends once drained.
    ended: bool,
}

impl EventHub {
    fn offer(&mut self, chunk: Bytes, events: u64) {
        if let Some(tx) = &self.reader {
            match tx.try_send(chunk) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.dropped += events;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(chunk)) => {
                    // The reader went away: keep events for the next one.
                    self.reader = None;
                    return self.offer(chunk, events);
                }
            }
        }
        if self.backlog_bytes + chunk.len() > BACKLOG_BYTES {
            self.dropped += events;
        } else {
            self.backlog_bytes += chunk.len();
            self.backlog.push_back(chunk);
        }
    }

    /// A new reader: the backlog to send first and the channel after it, or
    /// `None` while another reader is connected.
    pub fn subscribe(&mut self) -> Option<(VecDeque<Bytes>, Option<mpsc::Receiver<Bytes>>)> {
        if self.reader.as_ref().is_some_and(|tx| !tx.is_closed()) {
            return None;
        }
        let backlog = std::mem::take(&mut self.backlog);
        self.backlog_bytes = 0;
        if self.ended {
            return Some((backlog, None));
        }
        let (tx, rx) = mpsc::channel(STREAM_CHUNKS);
        self.reader = Some(tx);
        Some((backlog, Some(rx)))
    }
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    runtime: Runtime,
    /// Agent clock − runtime clock, µs.
    offset_us: i64,
    rcvbuf_at_start: Option<u64>,
    hub: Arc<Mutex<EventHub>>,
    started: ClusterStarted,
    /// Whether the nodes started with a keyring (only then can it change).
    keyed: bool,
}

/// A cluster and its event pump.
#[derive(Debug)]
pub struct ClusterHandle {
    /// The cluster, shared with requests in flight and the pump.
    pub cluster: Arc<Cluster>,
    pump: Option<JoinHandle<()>>,
    pump_stop: Arc<AtomicBool>,
}

impl Cluster {
    /// Binds and starts the nodes of `spec` on `bind_ip`.
    ///
    /// # Errors
    /// One line: the spec is impossible or the runtime could not start.
    pub fn start(
        spec: &ClusterSpec,
        bind_ip: IpAddr,
        clock_offset_us: i64,
    ) -> Result<ClusterHandle, String> {
        let node = spec
            .profile
            .config()
            .map_err(|e| format!("profile: {e:#}"))?;
        let slots = spec.slots.max(1);
        if spec.nodes == 0 || spec.nodes > MAX_NODES {
            return Err(format!("nodes: {} (between 1 and {MAX_NODES})", spec.nodes));
        }
        if slots > 65_536 || spec.nodes % slots != 0 {
            return Err(format!(
                "slots: {} must be between 1 and 65536 and divide nodes ({})",
                spec.slots, spec.nodes
            ));
        }
        let datapath: DatapathChoice = spec
            .datapath
            .parse()
            .map_err(|e: String| format!("datapath: {e}"))?;
        if spec.event_queue == 0 || spec.event_queue > 1 << 22 {
            return Err(format!(
                "event_queue: {} (between 1 and 4194304: the stream needs events)",
                spec.event_queue
            ));
        }
        if spec.ramp_ms > 3_600_000 {
            return Err(format!("ramp_ms: {} (at most an hour)", spec.ramp_ms));
        }
        if spec.timer_slack_us > 10_000 {
            return Err(format!(
                "timer_slack_us: {} (at most 10000)",
                spec.timer_slack_us
            ));
        }
        let keyring = spec
            .keyring
            .as_ref()
            .map(|k| crate::keyfile::parse(&k.0).map(Arc::new))
            .transpose()
            .map_err(|e| format!("keyring: {e}"))?;
        let sockets = spec.nodes / slots;
        let runtime = Runtime::start(RuntimeConfig {
            datapath,
            threads: spec.threads,
            node,
            binds: vec![SocketAddr::new(bind_ip, 0); sockets],
            slots,
            offload: spec.offload,
            join: spec.join.iter().map(Peer::endpoint).collect(),
            rng_seed: spec.rng_seed,
            held: spec.held,
            event_queue: spec.event_queue,
            timer_slack: Duration::from_micros(spec.timer_slack_us),
            ramp: Duration::from_millis(spec.ramp_ms),
            keyring,
            join_cookies: spec.join_cookies,
            ..RuntimeConfig::default()
        })
        .map_err(|e| e.to_string())?;
        // The runtime's clock is std's Instant (CLOCK_MONOTONIC) from its
        // own origin: read both clocks together to relate them.
        let before = now_us(clock_offset_us);
        let rt_us = runtime.clock().now().as_micros();
        let after = now_us(clock_offset_us);
        let offset_us = ((before / 2 + after / 2) as i64).wrapping_sub(rt_us as i64);
        let started = ClusterStarted {
            datapath: runtime.datapath().name().into(),
            nodes: runtime
                .ids()
                .iter()
                .zip(runtime.endpoints())
                .map(|(&id, &ep)| Peer::new(id, ep))
                .collect(),
        };
        let cluster = Arc::new(Cluster {
            runtime,
            offset_us,
            rcvbuf_at_start: crate::datapath::sys::udp_rcvbuf_errors(),
            hub: Arc::new(Mutex::new(EventHub::default())),
            started,
            keyed: spec.keyring.is_some(),
        });
        let pump_stop = Arc::new(AtomicBool::new(false));
        let pump = {
            let (cluster, stop) = (cluster.clone(), pump_stop.clone());
            std::thread::Builder::new()
                .name("gossip-agent-events".into())
                .spawn(move || cluster.pump(&stop))
                .map_err(|e| format!("event pump thread: {e}"))?
        };
        Ok(ClusterHandle {
            cluster,
            pump: Some(pump),
            pump_stop,
        })
    }

    /// Every node's id and endpoint.
    pub fn started(&self) -> &ClusterStarted {
        &self.started
    }

    /// Whether the nodes started with a keyring (only then can it change:
    /// a node cannot gain a key while its peers run without one).
    pub fn keyed(&self) -> bool {
        self.keyed
    }

    /// Replaces every node's keyring with `file`'s (a rotation step: see
    /// `crate::keyfile`); the nodes keep their epochs and counters.
    ///
    /// # Errors
    /// The text is not a key file: one line, never the key material.
    pub fn set_keyring(&self, file: &KeyFile) -> Result<KeyringSet, String> {
        let ring = crate::keyfile::parse(&file.0).map_err(|e| format!("keyring: {e}"))?;
        let (sending, accepted, retired) = (
            ring.sending(),
            ring.accepted().collect(),
            ring.retired().to_vec(),
        );
        Ok(KeyringSet {
            switched: self.runtime.set_keyring(Arc::new(ring)),
            sending,
            accepted,
            retired,
        })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Node count.
    pub fn nodes(&self) -> usize {
        self.started.nodes.len()
    }

    /// A runtime time on the agent's clock.
    pub fn agent_us(&self, runtime_us: u64) -> u64 {
        (runtime_us as i64).saturating_add(self.offset_us).max(0) as u64
    }

    /// The event hub (for a stream reader).
    pub fn hub(&self) -> &Arc<Mutex<EventHub>> {
        &self.hub
    }

    /// What running the nodes cost since the start.
    pub fn resources(&self) -> Resources {
        resources(
            &self.runtime.metrics().total(),
            self.events_dropped(),
            self.rcvbuf_at_start,
        )
    }

    /// Events lost: by the I/O threads' full queues, and by the hub.
    fn events_dropped(&self) -> u64 {
        let hub = self
            .hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped;
        self.runtime.events_dropped().iter().sum::<u64>() + hub
    }

    /// Drains the runtime's events every [`PUMP_EVERY`] into the hub until
    /// `stop`, then once more, then ends the stream.
    fn pump(&self, stop: &AtomicBool) {
        let mut next = Instant::now();
        loop {
            let last = stop.load(Ordering::Relaxed);
            let mut chunk = Vec::new();
            let mut n = 0u64;
            self.runtime.drain_events(PUMP_BATCH, |e| {
                let Some(event) = EventJson::of(&e.event) else {
                    return;
                };
                let record = EventRecord {
                    node: e.node,
                    at_us: self.agent_us(e.at.as_micros()),
                    event,
                };
                if serde_json::to_writer(&mut chunk, &record).is_ok() {
                    chunk.push(b'\n');
                    n += 1;
                }
            });
            let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
            if n > 0 {
                hub.offer(Bytes::from(chunk), n);
            }
            if last {
                hub.ended = true;
                hub.reader = None;
                return;
            }
            drop(hub);
            next += PUMP_EVERY;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
    }
}

impl ClusterHandle {
    /// Stops the nodes and the pump, ends the event stream, and returns the
    /// final resources.
    pub fn stop(mut self) -> Resources {
        self.cluster
            .runtime
            .stop_flag()
            .store(true, Ordering::Relaxed);
        self.pump_stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
        // Requests in flight hold the cluster for at most a few seconds (a
        // runtime call times out after 2 s); wait for them so that the
        // threads are joined here, else the last reference dropped joins them.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut cluster = self.cluster;
        loop {
            match Arc::try_unwrap(cluster) {
                Ok(c) => {
                    let metrics = c.runtime.metrics();
                    let events_dropped = c.events_dropped();
                    let rcvbuf_at_start = c.rcvbuf_at_start;
                    if let Err(e) = c.runtime.shutdown() {
                        eprintln!("gossip-node agent: an I/O thread failed: {e}");
                    }
                    // The threads published their last numbers as they stopped.
                    return resources(&metrics.total(), events_dropped, rcvbuf_at_start);
                }
                Err(c) if Instant::now() < deadline => {
                    cluster = c;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(c) => return c.resources(),
            }
        }
    }
}

fn resources(s: &Snapshot, events_dropped: u64, rcvbuf_at_start: Option<u64>) -> Resources {
    let c = &s.datapath;
    Resources {
        cpu_us: s.cpu_us,
        max_rss_bytes: Some(sys::max_rss_bytes()),
        drops: c.send_drops() + c.truncated + c.recv_errors + s.stats.drops.transmit_queue_full,
        udp_rcvbuf_errors: match (rcvbuf_at_start, crate::datapath::sys::udp_rcvbuf_errors()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        events_dropped,
        ticks: s.stats.ticks,
        late_ticks: s.stats.late_ticks,
    }
}
