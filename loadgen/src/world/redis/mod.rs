//! The redis world: a real Redis (or Valkey) Cluster on loopback as the
//! system under test, acted on by the same timeline and measured with the
//! same figures as our own nodes ([`cluster`] drives the servers).
//!
//! - Nodes are `redis-server` processes in cluster mode, every slot spread
//!   over the starting ones (Redis counts only masters with slots as FAIL
//!   voters). A join starts a server without slots and MEETs it to the
//!   lowest running node (node 0 unless it is down), as ours join; a
//!   crash is SIGKILL; a restart starts the server again on its port and
//!   directory, so its nodes.conf keeps its id and peers (it meets nobody:
//!   it knows them); a pause is SIGSTOP, a resume SIGCONT.
//! - What nodes see comes from CLUSTER NODES, polled from every running
//!   server every 25 ms: a PFAIL, FAIL or discovery is timed at the round
//!   that first shows it (within one poll of the truth); a `fail?` or `fail`
//!   flag that clears is the node alive again, a node no longer listed is
//!   forgotten. A killed node's listing is forgotten with it: after a
//!   restart, what it lists (from its nodes.conf) is seen anew.
//! - Upkeep: messages by type from CLUSTER INFO's counters; bytes are the
//!   TCP payload the server's bus sockets sent (the kernel's `tcp_info`), not
//!   split by type; wire bytes add 52 bytes for every segment sent (IPv4 20,
//!   TCP 20, timestamps 12), pure ACKs included: TCP's real cost on the wire.
//! - Published updates, copies and network shaping do not exist here: a
//!   scenario asking for them is refused before anything starts.

pub mod cluster;

use std::time::Duration;

use anyhow::Result;
use gossip_core::Instant;

use self::cluster::{Cluster, Options};
use super::{Control, Extras, ItemKey, Seen, Upkeep, What, World};
use crate::scenario::Scenario;

/// How often what the servers see is read (the bound: 25 ms).
const POLL_EVERY: Duration = Duration::from_millis(25);
/// IPv4 (20) + TCP (20) + timestamp option (12) bytes per segment.
const TCP_SEGMENT_OVERHEAD: u64 = 52;

/// One trial's Redis Cluster.
#[derive(Debug)]
pub struct RedisWorld {
    cluster: Cluster,
    /// The servers' directory (configs, nodes.conf, logs): removed after a
    /// trial that ends cleanly, kept for a post-mortem otherwise.
    dir: std::path::PathBuf,
}

/// Starts one trial's servers and forms the cluster; its clock starts once
/// the cluster has formed.
///
/// # Errors
/// A server that cannot start (a missing binary names its Debian package),
/// ports taken, or a cluster that does not form.
pub fn start(s: &Scenario, trial: usize, control: &Control) -> Result<Box<dyn World>> {
    let server = (!s.redis.server.is_empty()).then(|| s.redis.server.clone().into());
    let options = Options {
        server,
        nodes: s.cluster.nodes,
        capacity: s.cluster.nodes + s.joins(),
        node_timeout_ms: s.profile.config()?.node_timeout().as_millis() as u64,
        ports: s.redis.port_first..s.redis.port_last.saturating_add(1),
        dir: std::env::temp_dir().join(format!(
            "gossip-loadgen-redis-{}-{trial}",
            std::process::id()
        )),
        ..Options::default()
    };
    let cluster = Cluster::start(&options, &control.stop)?;
    Ok(Box::new(RedisWorld {
        cluster,
        dir: options.dir,
    }))
}

impl World for RedisWorld {
    fn now(&self) -> Instant {
        Instant::from_micros(self.cluster.now().as_micros() as u64)
    }

    fn step(&self) -> Duration {
        POLL_EVERY
    }

    fn advance(&mut self, until: Instant) -> Result<()> {
        super::sleep_until(self.now(), until);
        Ok(())
    }

    fn drain(&mut self, out: &mut Vec<Seen>) -> Result<()> {
        // The first drain starts with what the nodes listed when the cluster
        // formed: every starting node holds every other as a member.
        let mut changes = self.cluster.take_formation();
        changes.extend(self.cluster.poll()?);
        for c in changes {
            let at = Instant::from_micros(c.at.as_micros() as u64);
            let what = match c.what {
                cluster::Seen::Discovered => {
                    // Listed by its real id: its handshake is over, it is a
                    // member (a handshake is listed under a temporary id).
                    out.push(Seen {
                        node: c.node,
                        at,
                        what: What::Discovered(c.about),
                    });
                    What::Joined(c.about)
                }
                cluster::Seen::Pfail => What::Pfail(c.about),
                cluster::Seen::Fail => What::Fail(c.about),
                cluster::Seen::Alive => What::Alive(c.about),
                cluster::Seen::Forgotten => What::Forgotten(c.about),
            };
            out.push(Seen {
                node: c.node,
                at,
                what,
            });
        }
        Ok(())
    }

    fn start(&mut self, n: usize, _meet: usize) -> Result<()> {
        // The driver MEETs the lowest running node: `meet`, as the timeline
        // chose it.
        self.cluster.join(n)
    }

    fn crash(&mut self, n: usize) -> Result<()> {
        self.cluster.kill(n);
        Ok(())
    }

    fn restart(&mut self, n: usize, _meet: usize) -> Result<()> {
        self.cluster.restart(n)
    }

    fn pause(&mut self, n: usize) -> Result<()> {
        self.cluster.pause(n);
        Ok(())
    }

    fn resume(&mut self, n: usize) -> Result<()> {
        self.cluster.resume(n);
        Ok(())
    }

    fn holders(&mut self, _n: usize) -> Option<Vec<usize>> {
        None
    }

    fn track(&mut self, _item: ItemKey) {}

    fn copies(&mut self, _item: ItemKey) -> Option<Vec<u32>> {
        // Counting copies would need every bus message decoded; Redis
        // counts none.
        None
    }

    fn upkeep(&mut self, nodes: usize) -> Result<Vec<Option<Upkeep>>> {
        if let Some(why) = self.cluster.bus_error() {
            anyhow::bail!("redis world: the servers' bus bytes cannot be read: {why}");
        }
        Ok(self
            .cluster
            .counters_all()?
            .into_iter()
            .take(nodes)
            .map(|c| {
                let c = c?;
                // A node whose bytes are missing is left out rather than
                // counted as sending none.
                let bus = c.bus?;
                let mut msgs = [0; crate::world::UPKEEP.len()];
                msgs[..crate::world::UPKEEP_REDIS].copy_from_slice(&[
                    c.sent.ping,
                    c.sent.pong,
                    c.sent.meet,
                ]);
                Some(Upkeep {
                    at: Instant::from_micros(c.at.as_micros() as u64),
                    life: c.life,
                    msgs,
                    bytes: None,
                    bytes_total: bus.bytes_sent,
                    wire_bytes: bus.bytes_sent + TCP_SEGMENT_OVERHEAD * bus.segments_sent,
                })
            })
            .collect())
    }

    fn finish(self: Box<Self>, _node_s: f64) -> Result<Extras> {
        let RedisWorld { cluster, dir } = *self;
        let version = cluster.version();
        cluster.shutdown()?;
        // Best effort: a leftover directory in the temp dir harms nothing.
        let _ = std::fs::remove_dir_all(&dir);
        Ok(Extras {
            datapath: Some(version),
            ..Extras::default()
        })
    }
}
