//! Bringing servers up: spawning one, waiting until it answers (moving it
//! to a spare port if its own was taken meanwhile), and waiting for the
//! cluster to form.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::Value;

use super::process::{self, Server};
use super::text::{self, Listing};
use super::{connect, Cluster, CONNECT_TIMEOUT};

/// A server answers PING within this once it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on attempts to start a node on a port taken under our feet.
const PORT_RETRIES: usize = 3;

impl Cluster {
    /// Writes node `n`'s config and spawns its server (without waiting).
    pub(super) fn spawn(&mut self, n: usize, fresh: bool) -> Result<()> {
        let node = &mut self.nodes[n];
        let conf = process::write_config(&node.dir, node.port, self.node_timeout_ms, fresh)?;
        node.server = Some(Server::spawn(&self.bin, &conf, &node.dir)?);
        if fresh {
            node.starts = 0; // a port retry: the node has not lived yet
        }
        node.starts += 1;
        node.paused = false;
        node.conn = None;
        Ok(())
    }

    /// Waits until node `n`'s server answers, then learns (or checks) its id.
    /// On a fresh start whose port was taken meanwhile it moves the node to
    /// a spare port of the range and tries again, a few times.
    pub(super) fn ready(&mut self, n: usize, fresh: bool) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.wait_answering(n) {
                Ok(()) => break,
                Err(Exit { taken: true, .. }) if fresh && tries < PORT_RETRIES => {
                    tries += 1;
                    let Some(port) = self.spare_ports.by_ref().find(|&p| process::is_free(p))
                    else {
                        bail!("redis node {n}: its port was taken and the port range has no free pair left");
                    };
                    self.nodes[n].port = port;
                    self.spawn(n, true)?;
                }
                Err(e) => bail!("{}", e.message),
            }
        }
        let reply = self.command(n, redis::cmd("CLUSTER").arg("MYID"))?;
        let id = text::reply_text(&reply)
            .and_then(|s| text::parse_id(s.trim().as_bytes()))
            .with_context(|| format!("redis node {n}: CLUSTER MYID gave no node id"))?;
        match self.nodes[n].id {
            Some(old) if old != id => bail!(
                "redis node {n} restarted with id {} instead of {}: its nodes.conf was lost",
                text::id_str(&id),
                text::id_str(&old)
            ),
            _ => {}
        }
        self.nodes[n].id = Some(id);
        self.index.insert(id, n);
        Ok(())
    }

    fn wait_answering(&mut self, n: usize) -> Result<(), Exit> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            let node = &mut self.nodes[n];
            if let Some(status) = node.server.as_mut().and_then(Server::exited) {
                node.server = None;
                let tail = process::log_tail(&node.dir);
                return Err(Exit {
                    taken: tail.contains("Address already in use"),
                    message: format!(
                        "redis node {n} (port {}) exited at start ({status}): {tail}",
                        node.port
                    ),
                });
            }
            if let Ok(mut conn) = connect(node.port, CONNECT_TIMEOUT) {
                if redis::cmd("PING").query::<Value>(&mut conn).is_ok() {
                    node.conn = Some(conn);
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let node = &self.nodes[n];
        Err(Exit {
            taken: false,
            message: format!(
                "redis node {n} (port {}) did not answer within {START_TIMEOUT:?}: {}",
                node.port,
                process::log_tail(&node.dir)
            ),
        })
    }

    /// Waits until nodes `0..count` each list all of them (none in
    /// handshake or failing) and report cluster_state:ok.
    pub(super) fn wait_formed(
        &mut self,
        count: usize,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let (mut knowing, mut ok) = (0, 0);
        while Instant::now() < deadline {
            if stop.load(Ordering::Relaxed) {
                bail!("stopped while the redis cluster formed");
            }
            (knowing, ok) = (0, 0);
            for n in 0..count {
                let Ok(reply) = self.command(n, redis::cmd("CLUSTER").arg("NODES")) else {
                    continue;
                };
                let listing = text::reply_text(&reply).map(Listing::new);
                let full = listing.is_some_and(|l| {
                    let mut seen = 0;
                    for entry in l {
                        match self.index.get(&entry.id) {
                            Some(_) if entry.flags == 0 && !entry.handshake => seen += 1,
                            _ => return false,
                        }
                    }
                    seen == count
                });
                if !full {
                    continue;
                }
                knowing += 1;
                let Ok(info) = self.command(n, redis::cmd("CLUSTER").arg("INFO")) else {
                    continue;
                };
                if text::reply_text(&info).is_some_and(|i| i.contains("cluster_state:ok")) {
                    ok += 1;
                }
            }
            if ok == count {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "the {count}-node redis cluster did not form within {timeout:?}: {knowing} nodes know all {count}, \
             {ok} say cluster_state:ok (node_timeout {} ms; logs in {})",
            self.node_timeout_ms,
            self.nodes[0].dir.parent().unwrap_or(Path::new(".")).display()
        )
    }
}

/// A server that did not come up.
struct Exit {
    /// Its log says its port was taken.
    taken: bool,
    message: String,
}
