//! Metrics: counters each I/O thread publishes into its own atomics (one
//! writer, relaxed stores, no locks on the I/O path), summed on demand and
//! rendered in the Prometheus text format by `prometheus-client` (a collector
//! that reads the snapshots at scrape time) and served by [`crate::http`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gossip_core::event::DataStats;
use gossip_core::wire::{DecodeError, MessageType};
use gossip_core::{Drops, PeerState, Stats};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::datapath::{sys, DatapathCounters};

use crate::http::{respond, Handler, Listener, Server};

/// Serves `source` at `GET /metrics` (and `/`) on `listener` until the
/// server is stopped.
///
/// # Errors
/// The server's thread cannot start.
pub fn serve(listener: std::net::TcpListener, source: MetricsSource) -> std::io::Result<Server> {
    let handler: Handler = Arc::new(move |req: hyper::Request<hyper::body::Incoming>| {
        let source = source.clone();
        Box::pin(async move {
            use hyper::{Method, StatusCode};
            let text = "text/plain; version=0.0.4; charset=utf-8";
            // One request per connection, as the metrics endpoint always
            // answered: scrapers reconnect anyway, and a raw client reading
            // to the end gets its answer.
            let mut r = match (req.method(), req.uri().path()) {
                (&Method::GET, "/metrics" | "/") => respond(StatusCode::OK, text, source.render()),
                (&Method::GET, _) => {
                    respond(StatusCode::NOT_FOUND, text, "not found; try /metrics\n")
                }
                _ => respond(StatusCode::METHOD_NOT_ALLOWED, text, "GET only\n"),
            };
            r.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            r
        })
    });
    Server::start(Listener::Tcp(listener), handler)
}

/// Names of the `Drops` fields, in `drops` order.
pub const DROP_REASONS: [&str; 10] = [
    "unknown_sender",
    "stale_incarnation",
    "own_id",
    "wrong_slot",
    "other_profile",
    "peer_table_full",
    "report_table_full",
    "transmit_queue_full",
    "transmit_buffer_too_small",
    "event_queue_full",
];

/// Event kinds counted, in `events` order.
pub const EVENT_KINDS: [&str; 11] = [
    "peer_discovered",
    "peer_joined",
    "peer_pfail",
    "peer_fail",
    "peer_alive",
    "peer_restarted",
    "handshake_timed_out",
    "meet_timed_out",
    "update_received",
    "peer_forgotten",
    "other",
];

/// Peer states, in `peers` order.
pub const PEER_STATES: [PeerState; 4] = [
    PeerState::Handshake,
    PeerState::Alive,
    PeerState::Pfail,
    PeerState::Fail,
];

/// Help of `gossip_datapath_errors_total`: what each kind counts and what
/// became of the datagrams. The same on both datapaths, which count sends
/// through one function (`DatapathCounters::count_send`).
const ERRORS_HELP: &str = "Datagrams the datapath lost or refused, by kind: \
send_refused (EPERM/EACCES, a firewall or other policy), \
send_would_block (EAGAIN/ENOBUFS, no room in the socket buffer or kernel), \
send (any other send error): a datagram is tried once and, on these errors, dropped, never retried; \
a refused GSO send counts each datagram it carried; \
recv (receive errors), truncated (longer than a receive buffer), \
stale (for a socket already closed).";

/// Upper bounds (µs) of the timer lateness histogram buckets; +Inf follows.
pub const LATENESS_BUCKETS_US: [u64; 6] = [1_000, 5_000, 10_000, 50_000, 100_000, 1_000_000];

/// Everything one I/O thread reports, as plain numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Node counters summed over the thread's nodes (removed nodes included).
    pub stats: Stats,
    /// Nodes running.
    pub nodes: u64,
    /// Nodes whose delayed start failed (the datapath refused the socket).
    pub nodes_failed: u64,
    /// Peers by state (`PEER_STATES` order), summed over running nodes.
    pub peers: [u64; 4],
    /// Failure reports held, summed over running nodes.
    pub failure_reports: u64,
    /// Heap bytes of the running nodes' peer tables (reports included).
    pub peer_table_bytes: u64,
    /// Events by kind (`EVENT_KINDS` order).
    pub events: [u64; EVENT_KINDS.len()],
    /// Timers fired.
    pub timers_fired: u64,
    /// Timers fired more than [`crate::host::HOST_LATE_US`] after their deadline.
    pub timers_late: u64,
    /// Lateness histogram: counts per `LATENESS_BUCKETS_US` bucket, then +Inf.
    pub lateness_buckets: [u64; 7],
    /// Sum of lateness, µs.
    pub lateness_sum_us: u64,
    /// Drive-loop iterations.
    pub loop_iterations: u64,
    /// Datagrams on a shared socket for a slot with no running node
    /// (or too short to name one), dropped.
    pub unknown_slot: u64,
    /// Datapath counters.
    pub datapath: DatapathCounters,
    /// CPU time of the I/O threads, µs.
    pub cpu_us: u64,
    /// Events the observation channel dropped because its queue was full
    /// (zero while nobody observes).
    pub events_dropped: u64,
}

impl Snapshot {
    /// Visits every number in a fixed order (the layout of [`ThreadMetrics`]).
    fn visit(&mut self, mut f: impl FnMut(&mut u64)) {
        let s = &mut self.stats;
        for t in s.sent.iter_mut().chain(s.received.iter_mut()) {
            f(&mut t.datagrams);
            f(&mut t.bytes);
        }
        s.decode_errors.iter_mut().for_each(&mut f);
        let d = &mut s.drops;
        for v in [
            &mut d.unknown_sender,
            &mut d.stale_incarnation,
            &mut d.own_id,
            &mut d.wrong_slot,
            &mut d.other_profile,
            &mut d.peer_table_full,
            &mut d.report_table_full,
            &mut d.transmit_queue_full,
            &mut d.transmit_buffer_too_small,
            &mut d.event_queue_full,
        ] {
            f(v);
        }
        let a = &mut s.auth;
        for v in [
            &mut a.no_key,
            &mut a.unauthenticated,
            &mut a.unknown_key,
            &mut a.retired_key,
            &mut a.bad_tag,
            &mut a.replay,
            &mut a.cookie,
        ] {
            f(v);
        }
        f(&mut s.ticks);
        f(&mut s.late_ticks);
        for (_, v) in data_fields(&mut s.data) {
            f(v);
        }
        f(&mut self.nodes);
        f(&mut self.nodes_failed);
        self.peers.iter_mut().for_each(&mut f);
        f(&mut self.failure_reports);
        f(&mut self.peer_table_bytes);
        self.events.iter_mut().for_each(&mut f);
        f(&mut self.timers_fired);
        f(&mut self.timers_late);
        self.lateness_buckets.iter_mut().for_each(&mut f);
        f(&mut self.lateness_sum_us);
        f(&mut self.loop_iterations);
        f(&mut self.unknown_slot);
        let c = &mut self.datapath;
        for v in [
            &mut c.datagrams_in,
            &mut c.bytes_in,
            &mut c.datagrams_out,
            &mut c.bytes_out,
            &mut c.send_refused,
            &mut c.send_would_block,
            &mut c.send_errors,
            &mut c.send_stalls,
            &mut c.recv_errors,
            &mut c.truncated,
            &mut c.stale,
            &mut c.enobufs,
            &mut c.rearms,
            &mut c.drains,
            &mut c.syscalls,
            &mut c.gso_sends,
            &mut c.gro_receives,
            &mut c.zc_sends,
            &mut c.zc_copied,
        ] {
            f(v);
        }
        f(&mut self.cpu_us);
        f(&mut self.events_dropped);
    }

    fn len() -> usize {
        let mut n = 0;
        Snapshot::default().visit(|_| n += 1);
        n
    }

    /// Adds `other` into `self`, number by number.
    pub fn add(&mut self, other: &Snapshot) {
        let mut theirs = Vec::with_capacity(Snapshot::len());
        other.clone().visit(|v| theirs.push(*v));
        let mut i = 0;
        self.visit(|v| {
            *v += theirs[i];
            i += 1;
        });
    }
}

/// One I/O thread's published numbers: written by that thread only, read by
/// anyone. Relaxed atomics: a reader may see one counter a publish ahead of
/// another, never a torn value.
#[derive(Debug)]
pub struct ThreadMetrics {
    values: Box<[AtomicU64]>,
}

impl Default for ThreadMetrics {
    fn default() -> Self {
        ThreadMetrics {
            values: (0..Snapshot::len()).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl ThreadMetrics {
    /// Publishes a snapshot (the owning I/O thread only).
    pub fn publish(&self, snapshot: &Snapshot) {
        let mut i = 0;
        snapshot.clone().visit(|v| {
            self.values[i].store(*v, Ordering::Relaxed);
            i += 1;
        });
    }

    /// The last published snapshot.
    pub fn read(&self) -> Snapshot {
        let mut s = Snapshot::default();
        let mut i = 0;
        s.visit(|v| {
            *v = self.values[i].load(Ordering::Relaxed);
            i += 1;
        });
        s
    }
}

/// What the metrics endpoint reads: every thread's numbers and the labels.
#[derive(Clone, Debug)]
pub struct MetricsSource {
    /// One per I/O thread.
    pub threads: Vec<Arc<ThreadMetrics>>,
    /// Datapath in use.
    pub datapath: &'static str,
}

impl MetricsSource {
    /// All threads' snapshots summed.
    pub fn total(&self) -> Snapshot {
        let mut total = Snapshot::default();
        for t in &self.threads {
            total.add(&t.read());
        }
        total
    }

    /// The Prometheus text exposition (format 0.0.4), rendered by
    /// `prometheus-client` from the threads' snapshots read now.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// A sample's labels.
type Labels = Vec<(&'static str, String)>;

/// A sample's value.
#[derive(Clone, Copy, Debug)]
enum Num {
    U(u64),
    F(f64),
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|&(k, v)| (k, v.to_string())).collect()
}

/// One metric family: `name` as exposed (a counter's ends in `_total`,
/// which the encoder adds back).
fn family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    kind: MetricType,
    help: &str,
    samples: Vec<(Labels, Num)>,
) -> fmt::Result {
    let base = match kind {
        MetricType::Counter => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    let mut m = enc.encode_descriptor(base, help, None, kind)?;
    for (l, v) in samples {
        if l.is_empty() {
            value(&mut m, kind, v)?;
        } else {
            value(&mut m.encode_family(&l)?, kind, v)?;
        }
    }
    Ok(())
}

fn value(m: &mut MetricEncoder<'_>, kind: MetricType, v: Num) -> fmt::Result {
    match (kind, v) {
        (MetricType::Counter, Num::U(v)) => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (MetricType::Counter, Num::F(v)) => m.encode_counter::<NoLabelSet, _, f64>(&v, None),
        (_, Num::U(v)) => m.encode_gauge(&v),
        (_, Num::F(v)) => m.encode_gauge(&v),
    }
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: Vec<(Labels, Num)>,
) -> fmt::Result {
    family(enc, name, MetricType::Counter, help, samples)
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: Vec<(Labels, Num)>,
) -> fmt::Result {
    family(enc, name, MetricType::Gauge, help, samples)
}

/// One unlabelled sample.
fn one(v: u64) -> Vec<(Labels, Num)> {
    vec![(Vec::new(), Num::U(v))]
}

impl Collector for MetricsSource {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let per_thread: Vec<Snapshot> = self.threads.iter().map(|t| t.read()).collect();
        let mut s = Snapshot::default();
        for t in &per_thread {
            s.add(t);
        }
        let dp = self.datapath;
        let e = &mut enc;
        let by_type = |f: &dyn Fn(MessageType) -> u64| -> Vec<(Labels, Num)> {
            MessageType::ALL
                .iter()
                .map(|&k| (labels(&[("type", k.name())]), Num::U(f(k))))
                .collect()
        };
        counter(
            e,
            "gossip_datagrams_sent_total",
            "Datagrams sent by the nodes, by message type.",
            by_type(&|k| s.stats.sent(k).datagrams),
        )?;
        counter(
            e,
            "gossip_bytes_sent_total",
            "UDP payload bytes sent by the nodes, by message type.",
            by_type(&|k| s.stats.sent(k).bytes),
        )?;
        counter(
            e,
            "gossip_datagrams_received_total",
            "Datagrams decoded by the nodes, by message type.",
            by_type(&|k| s.stats.received(k).datagrams),
        )?;
        counter(
            e,
            "gossip_bytes_received_total",
            "UDP payload bytes decoded by the nodes, by message type.",
            by_type(&|k| s.stats.received(k).bytes),
        )?;
        counter(
            e,
            "gossip_decode_errors_total",
            "Datagrams refused by the decoder, by reason.",
            DecodeError::ALL
                .iter()
                .map(|d| {
                    (
                        labels(&[("kind", d.name())]),
                        Num::U(s.stats.decode_errors[d.index()]),
                    )
                })
                .collect(),
        )?;
        counter(
            e,
            "gossip_drops_total",
            "Input or output dropped by the nodes, by reason.",
            DROP_REASONS
                .iter()
                .zip(drop_values(&s.stats.drops))
                .map(|(r, v)| (labels(&[("reason", r)]), Num::U(v)))
                .collect(),
        )?;
        counter(
            e,
            "gossip_auth_refused_total",
            "Datagrams refused by the cluster key or join cookie checks, by reason.",
            s.stats
                .auth
                .named()
                .iter()
                .map(|&(r, v)| (labels(&[("reason", r)]), Num::U(v)))
                .collect(),
        )?;
        counter(
            e,
            "gossip_ticks_total",
            "Cron ticks run by the nodes.",
            one(s.stats.ticks),
        )?;
        counter(
            e,
            "gossip_late_ticks_total",
            "Ticks run more than one tick period after their deadline (counted by the core).",
            one(s.stats.late_ticks),
        )?;
        gauge(e, "gossip_nodes", "Nodes running.", one(s.nodes))?;
        counter(
            e,
            "gossip_nodes_failed_total",
            "Nodes whose delayed start failed.",
            one(s.nodes_failed),
        )?;
        gauge(
            e,
            "gossip_peers",
            "Peers by state, summed over the running nodes.",
            PEER_STATES
                .iter()
                .zip(s.peers)
                .map(|(st, v)| (labels(&[("state", st.name())]), Num::U(v)))
                .collect(),
        )?;
        let mut data = s.stats.data;
        counter(
            e,
            "gossip_data_total",
            "Epidemic dissemination counters, summed over the nodes.",
            data_fields(&mut data)
                .into_iter()
                .map(|(name, v)| (labels(&[("counter", name)]), Num::U(*v)))
                .collect(),
        )?;
        gauge(
            e,
            "gossip_failure_reports",
            "Failure reports held, summed over the running nodes.",
            one(s.failure_reports),
        )?;
        gauge(
            e,
            "gossip_peer_table_bytes",
            "Heap bytes of the running nodes' peer tables.",
            one(s.peer_table_bytes),
        )?;
        counter(
            e,
            "gossip_events_total",
            "Events reported by the nodes, by kind.",
            EVENT_KINDS
                .iter()
                .zip(s.events)
                .map(|(k, v)| (labels(&[("kind", k)]), Num::U(v)))
                .collect(),
        )?;
        counter(
            e,
            "gossip_observed_events_dropped_total",
            "Events the observation channel dropped because a reader fell behind.",
            one(s.events_dropped),
        )?;
        {
            let mut m = e.encode_descriptor(
                "gossip_timer_lateness_seconds",
                "How late node deadlines fired on the host.",
                None,
                MetricType::Histogram,
            )?;
            let mut buckets: Vec<(f64, u64)> = LATENESS_BUCKETS_US
                .iter()
                .zip(s.lateness_buckets)
                .map(|(&le, n)| (le as f64 / 1e6, n))
                .collect();
            buckets.push((f64::INFINITY, s.lateness_buckets[6]));
            m.encode_histogram::<NoLabelSet>(
                s.lateness_sum_us as f64 / 1e6,
                s.timers_fired,
                &buckets,
                None,
            )?;
        }
        counter(
            e,
            "gossip_host_late_timers_total",
            "Deadlines fired more than 10 ms late on the host.",
            one(s.timers_late),
        )?;
        counter(
            e,
            "gossip_loop_iterations_total",
            "Drive-loop iterations of the I/O threads.",
            one(s.loop_iterations),
        )?;
        counter(
            e,
            "gossip_unknown_slot_total",
            "Datagrams on a shared socket for a slot with no running node, dropped.",
            one(s.unknown_slot),
        )?;
        gauge(
            e,
            "gossip_datapath_info",
            "The datapath in use.",
            vec![(labels(&[("datapath", dp)]), Num::U(1))],
        )?;
        let c = &s.datapath;
        let on_dp = |pairs: &[(&'static str, &str)], v: u64| {
            let mut l = labels(&[("datapath", dp)]);
            l.extend(labels(pairs));
            (l, Num::U(v))
        };
        counter(
            e,
            "gossip_datapath_datagrams_total",
            "Datagrams through the datapath.",
            vec![
                on_dp(&[("direction", "in")], c.datagrams_in),
                on_dp(&[("direction", "out")], c.datagrams_out),
            ],
        )?;
        counter(
            e,
            "gossip_datapath_bytes_total",
            "UDP payload bytes through the datapath.",
            vec![
                on_dp(&[("direction", "in")], c.bytes_in),
                on_dp(&[("direction", "out")], c.bytes_out),
            ],
        )?;
        counter(
            e,
            "gossip_datapath_errors_total",
            ERRORS_HELP,
            [
                ("send_refused", c.send_refused),
                ("send_would_block", c.send_would_block),
                ("send", c.send_errors),
                ("recv", c.recv_errors),
                ("truncated", c.truncated),
                ("stale", c.stale),
            ]
            .iter()
            .map(|&(kind, v)| on_dp(&[("kind", kind)], v))
            .collect(),
        )?;
        counter(
            e,
            "gossip_datapath_send_stalls_total",
            "Times every send buffer was in flight.",
            vec![on_dp(&[], c.send_stalls)],
        )?;
        counter(
            e,
            "gossip_datapath_enobufs_total",
            "Multishot receives ended by an empty buffer ring (io_uring).",
            vec![on_dp(&[], c.enobufs)],
        )?;
        counter(
            e,
            "gossip_datapath_rearms_total",
            "Multishot receives re-armed (io_uring).",
            vec![on_dp(&[], c.rearms)],
        )?;
        counter(
            e,
            "gossip_datapath_drains_total",
            "Extra enters within one poll to read what an empty buffer ring left in the sockets (io_uring).",
            vec![on_dp(&[], c.drains)],
        )?;
        counter(
            e,
            "gossip_datapath_offload_total",
            "Sends and receives that carried several datagrams as one (UDP GSO, GRO).",
            vec![
                on_dp(&[("kind", "gso_send")], c.gso_sends),
                on_dp(&[("kind", "gro_receive")], c.gro_receives),
                on_dp(&[("kind", "zc_send")], c.zc_sends),
                on_dp(&[("kind", "zc_copied")], c.zc_copied),
            ],
        )?;
        counter(
            e,
            "gossip_datapath_syscalls_total",
            "System calls made by the datapath.",
            vec![on_dp(&[], c.syscalls)],
        )?;
        counter(
            e,
            "gossip_thread_cpu_seconds_total",
            "CPU time of each I/O thread.",
            per_thread
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    (
                        vec![("thread", i.to_string())],
                        Num::F(t.cpu_us as f64 / 1e6),
                    )
                })
                .collect(),
        )?;
        gauge(
            e,
            "gossip_process_max_rss_bytes",
            "Peak resident set size of the process.",
            one(sys::max_rss_bytes()),
        )
    }
}

/// The epidemic dissemination counters with their metric names.
pub fn data_fields(d: &mut DataStats) -> [(&'static str, &mut u64); 17] {
    [
        ("published", &mut d.published),
        ("entries_received", &mut d.entries_received),
        ("updates_received", &mut d.updates_received),
        ("entries_known", &mut d.entries_known),
        ("entries_rejected", &mut d.entries_rejected),
        ("entries_sent", &mut d.entries_sent),
        ("rumors_sent", &mut d.rumors_sent),
        ("rumor_blocks_piggybacked", &mut d.rumor_blocks_piggybacked),
        ("acks_sent", &mut d.acks_sent),
        ("acks_received", &mut d.acks_received),
        ("exchanges", &mut d.exchanges),
        ("digests_sent", &mut d.digests_sent),
        ("keys_requested", &mut d.keys_requested),
        ("from_non_member", &mut d.from_non_member),
        ("disabled", &mut d.disabled),
        ("data_queue_full", &mut d.data_queue_full),
        ("ack_queue_full", &mut d.ack_queue_full),
    ]
}

/// The `Drops` fields in `DROP_REASONS` order.
pub fn drop_values(d: &Drops) -> [u64; 10] {
    [
        d.unknown_sender,
        d.stale_incarnation,
        d.own_id,
        d.wrong_slot,
        d.other_profile,
        d.peer_table_full,
        d.report_table_full,
        d.transmit_queue_full,
        d.transmit_buffer_too_small,
        d.event_queue_full,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossip_core::auth::AuthDrops;

    #[test]
    fn every_core_counter_is_carried() {
        // The core's counter structs are all u64s; when one grows a field, this
        // fails until the field is published here too.
        assert_eq!(std::mem::size_of::<Drops>(), 8 * DROP_REASONS.len());
        let mut d = DataStats::default();
        assert_eq!(
            std::mem::size_of::<DataStats>(),
            8 * data_fields(&mut d).len()
        );
        assert_eq!(
            std::mem::size_of::<AuthDrops>(),
            8 * AuthDrops::default().named().len()
        );
        let traffic = 2 * 16 * MessageType::COUNT;
        let counted = traffic
            + 8 * DecodeError::COUNT
            + std::mem::size_of::<Drops>()
            + std::mem::size_of::<AuthDrops>()
            + 16
            + std::mem::size_of::<DataStats>();
        assert_eq!(std::mem::size_of::<Stats>(), counted);
    }

    #[test]
    fn published_snapshots_read_back_and_sum() {
        let t = ThreadMetrics::default();
        let mut s = Snapshot::default();
        s.stats.ticks = 7;
        s.stats.drops.event_queue_full = 3;
        s.peers[1] = 15;
        s.datapath.syscalls = 9;
        s.cpu_us = 11;
        t.publish(&s);
        assert_eq!(t.read(), s);
        let mut sum = s.clone();
        sum.add(&s);
        assert_eq!(sum.stats.ticks, 14);
        assert_eq!(sum.cpu_us, 22);
    }

    #[test]
    fn rendering_labels_the_datapath_and_every_drop_reason() {
        let t = Arc::new(ThreadMetrics::default());
        let mut s = Snapshot::default();
        s.stats.drops.wrong_slot = 5;
        s.peers[3] = 2;
        t.publish(&s);
        let text = MetricsSource {
            threads: vec![t],
            datapath: "mmsg",
        }
        .render();
        assert!(
            text.contains("gossip_drops_total{reason=\"wrong_slot\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("gossip_peers{state=\"fail\"} 2\n"));
        assert!(text.contains("gossip_failure_reports 0\n"));
        assert!(text.contains("gossip_datapath_info{datapath=\"mmsg\"} 1\n"));
        assert!(text.contains("gossip_timer_lateness_seconds_bucket{le=\"+Inf\"} 0\n"));
    }

    #[test]
    fn send_outcomes_render_as_kinds_of_one_errors_family() {
        let t = Arc::new(ThreadMetrics::default());
        let mut s = Snapshot::default();
        s.datapath.send_refused = 3;
        s.datapath.send_would_block = 2;
        s.datapath.send_errors = 1;
        t.publish(&s);
        assert_eq!(t.read().datapath.send_drops(), 6);
        for datapath in ["mmsg", "uring"] {
            let text = MetricsSource {
                threads: vec![t.clone()],
                datapath,
            }
            .render();
            for (kind, v) in [("send_refused", 3), ("send_would_block", 2), ("send", 1)] {
                let line = format!(
                    "gossip_datapath_errors_total{{datapath=\"{datapath}\",kind=\"{kind}\"}} {v}\n"
                );
                assert!(text.contains(&line), "{line} in {text}");
            }
            assert!(text.contains("never retried"), "{text}");
        }
    }
}
