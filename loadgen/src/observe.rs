//! What one trial observed, in either world: the common input of the metrics
//! pipeline. Worlds fill a [`Trial`]; `metrics` turns trials into a summary.

use serde::{Deserialize, Serialize};

/// Everything one trial measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Trial number within the run.
    pub index: usize,
    /// The seed it ran with.
    pub seed: u64,
    /// Nodes at the start.
    pub nodes: usize,
    /// Length of the measured window, s.
    pub window_s: f64,
    /// Membership upkeep in steady state, if the trial had a steady window.
    pub overhead: Option<Overhead>,
    /// Every disseminated item measured.
    pub items: Vec<Item>,
    /// One per crash on the timeline.
    pub detections: Vec<Detection>,
    /// FAILs declared about nodes that were up and reachable from the declarer.
    pub false_fails: u64,
    /// PFAILs (suspicions) of nodes that were up and reachable from the
    /// suspecting node, outside a heal's aftermath.
    #[serde(default)]
    pub false_pfails: u64,
    /// When the false PFAILs came and among whom (none: there were none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_pfail_times: Option<SuspicionTimes>,
    /// Such FAILs declared within node_timeout + report_validity after a heal:
    /// the partition's evidence, not counted as false.
    #[serde(default)]
    pub partition_fails: u64,

    /// One per heal, resume and restart on the timeline: the time until the
    /// running nodes agree again (`docs/report-schema.md`).
    #[serde(default)]
    pub recoveries: Vec<Recovery>,
    /// Membership trials: pairs of running nodes that disagree at the end
    /// (one holds the other not alive; see `recoveries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disagreeing_pairs: Option<u64>,
    /// Node-hours observed (for false FAILs per node-hour).
    pub node_hours: f64,
    /// Epidemic-only trials: Demers' figures.
    pub epidemic: Option<EpidemicTrial>,
    /// What happened when, for the timeline chart.
    pub timeline: Vec<Mark>,
    /// Wall-clock seconds the trial took.
    pub wall_s: f64,
    /// Simulator events processed (sim world).
    pub sim_events: u64,
    /// Trace hash (sim world): the same seed gives the same hash.
    pub trace_hash: Option<String>,
    /// UDP world: the datapath the nodes ran on (`uring` or `mmsg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapath: Option<String>,
    /// UDP world: what running the nodes cost (DESIGN §3, Resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Hosts world: the agents, where each node ran, clock offsets and
    /// their uncertainty, the faults applied and by what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<crate::world::hosts::HostsInfo>,
}

/// What real nodes cost over the measured window (UDP world; DESIGN §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU seconds of the I/O threads per node-second running.
    pub cpu_s_per_node_s: f64,
    /// Peak resident set size of the process (loadgen and nodes), bytes.
    pub rss_bytes: u64,
    /// Datagrams lost on the host: refused or dropped sends (full socket
    /// buffer, errors), truncated or failed receives, and transmits the
    /// nodes' queues refused.
    pub drops: u64,
    /// UDP receive-buffer overflows the kernel counted (`RcvbufErrors` in
    /// `/proc/net/snmp`, machine-wide), or `None` where unreadable.
    pub udp_rcvbuf_errors: Option<u64>,
    /// Observed events the observation channel dropped (reader too slow).
    pub events_dropped: u64,
    /// Ticks run.
    pub ticks: u64,
    /// Ticks that ran more than one tick period after their deadline.
    pub late_ticks: u64,
}

/// A statistic over nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanMax {
    /// Mean over nodes.
    pub mean: f64,
    /// Max over nodes.
    pub max: f64,
    /// 95 % interval of the mean, over trials (summaries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ci: Option<crate::stats::Ci>,
}

/// Datagrams and bytes per node per second of one message type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeRate {
    /// Message type name.
    pub kind: String,
    /// Datagrams per node per second (mean over nodes).
    pub msgs_per_node_s: f64,
    /// Payload bytes per node per second (mean over nodes); absent where
    /// the world does not tell bytes apart by type (the redis world).
    pub bytes_per_node_s: Option<f64>,
    /// Mean message size, bytes.
    pub bytes_per_msg: Option<f64>,
}

/// Ping overhead (DESIGN §3): membership datagrams (PING, PONG, MEET) per node per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// Seconds the rates were measured over.
    pub window_s: f64,
    /// Nodes measured (up for the whole window).
    pub nodes: usize,
    /// Datagrams per node per second.
    pub msgs_per_node_s: MeanMax,
    /// UDP payload bytes per node per second.
    pub bytes_per_node_s: MeanMax,
    /// Wire bytes per node per second (payload + 28 for IPv4 and UDP headers).
    pub wire_bytes_per_node_s: MeanMax,
    /// Split by type.
    pub by_type: Vec<TypeRate>,
}

/// One disseminated item (a join, a FAIL, an update) at every live node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// `join`, `fail` or `update`.
    pub kind: String,
    /// The node it is about (joins and FAILs).
    pub about: Option<usize>,
    /// When it was injected, s after the warm-up.
    pub injected_s: f64,
    /// Live nodes that should get it.
    pub live: usize,
    /// Of those, how many did.
    pub reached: usize,
    /// Per reached node: time from injection to first reception, µs.
    pub latencies_us: Vec<u64>,
    /// Copies received, per node reached by dissemination (a node that
    /// produced the item itself, such as a FAIL by its own quorum, has none).
    pub receptions: Vec<u32>,
    /// Tick or round length, µs (latency in rounds = latency / round).
    pub round_us: u64,
    /// Updates in the sim world: Demers' traffic m, update-carrying datagrams
    /// delivered per node running (messages sent per node without loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<f64>,
}

impl Item {
    /// Fraction of live nodes never reached.
    pub fn residue(&self) -> f64 {
        if self.live == 0 {
            return 0.0;
        }
        (self.live - self.reached.min(self.live)) as f64 / self.live as f64
    }

    /// Receptions per node reached.
    pub fn redundancy(&self) -> Option<f64> {
        let reached = self.receptions.len();
        (reached > 0)
            .then(|| self.receptions.iter().map(|&r| f64::from(r)).sum::<f64>() / reached as f64)
    }

    /// Time until `fraction` of the live nodes had it, s.
    pub fn time_to_fraction(&self, fraction: f64) -> Option<f64> {
        let need = ((self.live as f64) * fraction).ceil() as usize;
        if need == 0 {
            return Some(0.0);
        }
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        l.get(need - 1).map(|&us| us as f64 / 1e6)
    }
}

/// Failure detection for one crash (DESIGN §3), s after the crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The crashed node.
    pub node: usize,
    /// When it crashed, s after the warm-up.
    pub crashed_s: f64,
    /// First PFAIL anywhere.
    pub first_pfail_s: Option<f64>,
    /// First FAIL anywhere.
    pub first_fail_s: Option<f64>,
    /// FAIL at every live node.
    pub all_fail_s: Option<f64>,
}

impl Detection {
    /// The detection's moments as timeline marks (those that happened).
    pub fn marks(&self) -> impl Iterator<Item = Mark> + '_ {
        [
            ("first PFAIL", self.first_pfail_s),
            ("first FAIL", self.first_fail_s),
            ("FAIL everywhere", self.all_fail_s),
        ]
        .into_iter()
        .filter_map(move |(label, t)| {
            t.map(|t| Mark {
                t_s: self.crashed_s + t,
                what: format!("{label} of node {}", self.node),
            })
        })
    }
}

/// From a heal, a resume or a restart until agreement: every running node
/// holds every other running node alive (with partial views: no running
/// node holds a running node PFAIL or FAIL).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// The action: `heal`, `resume` or `restart`.
    pub after: String,
    /// The node resumed or restarted.
    pub node: Option<usize>,
    /// When, s after the warm-up.
    pub at_s: f64,
    /// Seconds until agreement; null if it did not come (interrupted, or
    /// not by the end of the run).
    pub recover_s: Option<f64>,
    /// Another action came before agreement: not measured.
    pub interrupted: bool,
}

impl Recovery {
    /// The action, with its node.
    pub fn label(&self) -> String {
        match self.node {
            Some(n) => format!("{} of node {n}", self.after),
            None => self.after.clone(),
        }
    }

    /// The moment agreement came back, as a timeline mark.
    pub fn mark(&self) -> Option<Mark> {
        self.recover_s.map(|s| Mark {
            t_s: self.at_s + s,
            what: format!("agreement restored after {}: {s:.2} s", self.label()),
        })
    }
}

/// One epidemic-only trial (Demers 1987's figures).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpidemicTrial {
    /// Fraction never reached.
    pub residue: f64,
    /// Update-carrying messages per node.
    pub traffic: f64,
    /// Mean reception round over the nodes reached.
    pub t_ave: f64,
    /// Round of the last reception.
    pub t_last: u32,
    /// Rounds until every node had it, if all did.
    pub rounds_to_all: Option<u32>,
    /// Receptions per node reached.
    pub redundancy: f64,
    /// Most receptions at one node.
    pub receptions_max: u32,
}

/// When a trial's false suspicions came, in seconds after the warm-up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SuspicionTimes {
    /// The first.
    pub first_s: f64,
    /// The last.
    pub last_s: f64,
    /// Nodes suspected.
    pub suspected: usize,
    /// Nodes that suspected them.
    pub suspecters: usize,
    /// When the trial began (negative: the warm-up's length).
    pub start_s: f64,
    /// How many in each second since the trial began.
    pub per_second: Vec<u32>,
}

/// A point on a trial's timeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// Seconds after the warm-up (negative: during it).
    pub t_s: f64,
    /// What happened.
    pub what: String,
}
