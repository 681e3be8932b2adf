//! The agents of one trial: whom to call (addresses and token, or the lab),
//! sessions held under a lease that a thread per agent renews, each
//! agent's clock offset, and one thread per agent reading its event stream.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use gossip_node::agent::api::{EventRecord, Hello};
use gossip_node::agent::client::{clock_offset, AgentAddr, AgentClient, OffsetEstimate};

use crate::scenario::HostsParams;

/// Round trips per clock-offset estimate (the fastest is kept).
const CLOCK_SAMPLES: usize = 16;

/// Where the agents are and the token they share.
#[derive(Clone, Debug)]
pub struct Targets {
    /// Each agent's control address, in host order.
    pub addrs: Vec<AgentAddr>,
    /// The shared token.
    pub token: String,
}

impl Targets {
    /// Resolves `[hosts]`: addresses as given, or every host of a lab.
    ///
    /// # Errors
    /// An address that does not parse, a lab that is not up, a token file
    /// that cannot be read.
    pub fn resolve(p: &HostsParams) -> Result<Targets> {
        if let [only] = p.agents.as_slice() {
            if let Some(name) = lab_name(only) {
                let lab = crate::lab::Lab::load(name)?;
                return Ok(Targets {
                    addrs: lab
                        .hosts()
                        .iter()
                        .map(|h| AgentAddr::Unix(h.socket.clone()))
                        .collect(),
                    token: lab.token()?,
                });
            }
        }
        if p.agents.iter().any(|a| lab_name(a).is_some()) {
            bail!("hosts.agents: `lab` stands alone (it names every host of the lab)");
        }
        let addrs = p
            .agents
            .iter()
            .map(|a| {
                a.parse::<AgentAddr>()
                    .map_err(|e| anyhow!("hosts.agents: {a:?}: {e}"))
            })
            .collect::<Result<Vec<_>>>()?;
        if p.token_file.is_empty() {
            bail!("hosts.token_file: the agents' token is needed (--token-file PATH, the file each agent was started with)");
        }
        let token = std::fs::read_to_string(&p.token_file)
            .with_context(|| format!("hosts.token_file: cannot read {}", p.token_file))?
            .trim()
            .to_string();
        Ok(Targets { addrs, token })
    }
}

/// `lab` → the default lab, `lab:NAME` → that one.
fn lab_name(agent: &str) -> Option<&str> {
    match agent.trim() {
        "lab" => Some("lab"),
        a => a.strip_prefix("lab:"),
    }
}

/// One agent held for a trial.
#[derive(Debug)]
pub struct Agent {
    /// Where it listens.
    pub addr: AgentAddr,
    /// Its client (the session's id inside).
    pub client: AgentClient,
    /// What it said it is.
    pub hello: Hello,
    /// Its clock's offset from ours when the trial started.
    pub offset: OffsetEstimate,
}

impl Agent {
    /// The address its nodes bind.
    pub fn ip(&self) -> IpAddr {
        self.hello.bind_ip
    }
}

/// The agents of a trial, their lease and their event streams.
#[derive(Debug)]
pub struct Agents {
    /// In host order.
    pub list: Vec<Agent>,
    stop: Arc<AtomicBool>,
    renew: Vec<JoinHandle<()>>,
    streams: Vec<JoinHandle<()>>,
    /// (host, record) from every stream.
    events: Receiver<(usize, Result<EventRecord>)>,
    events_tx: Sender<(usize, Result<EventRecord>)>,
}

impl Agents {
    /// Connects to every agent, opens a session on each under `lease`, and
    /// estimates each agent's clock offset. Sessions opened before a failure
    /// are closed again.
    ///
    /// # Errors
    /// An agent unreachable, of another API version, or held by someone else.
    pub fn hold(targets: &Targets, lease: Duration) -> Result<Agents> {
        let owner = format!(
            "gossip-loadgen pid {} on {}",
            std::process::id(),
            crate::machine::hostname()
        );
        let (events_tx, events) = mpsc::channel();
        let mut held = Agents {
            list: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            renew: Vec::new(),
            streams: Vec::new(),
            events,
            events_tx,
        };
        for addr in &targets.addrs {
            let mut client = AgentClient::connect(addr, &targets.token)
                .map_err(|e| anyhow!("agent {addr}: {e:#}"))?;
            let hello = client.hello().map_err(|e| anyhow!("agent {addr}: {e:#}"))?;
            if held
                .list
                .iter()
                .any(|a| a.hello.host == hello.host && a.ip() == hello.bind_ip)
            {
                bail!(
                    "agent {addr}: the same host ({}, {}) is named twice",
                    hello.host,
                    hello.bind_ip
                );
            }
            client
                .open_session(&owner, lease)
                .map_err(|e| anyhow!("agent {addr}: {e:#}"))?;
            if let Some(pid) = local_pid(&hello) {
                crate::noise::count_as_own(pid);
            }
            let offset = clock_offset(&mut client, CLOCK_SAMPLES)
                .map_err(|e| anyhow!("agent {addr}: clock: {e:#}"))?;
            // Renewed from now on, whatever the other agents take to answer.
            held.renew.push(renew(
                addr.clone(),
                client.clone(),
                lease,
                held.stop.clone(),
            )?);
            // Held from here: a later failure drops `held`, closing it.
            held.list.push(Agent {
                addr: addr.clone(),
                client,
                hello,
                offset,
            });
        }
        Ok(held)
    }

    /// Starts reading every agent's event stream (after its cluster started).
    ///
    /// # Errors
    /// A stream an agent refused.
    pub fn stream_events(&mut self) -> Result<()> {
        for (h, a) in self.list.iter().enumerate() {
            let stream = a
                .client
                .events()
                .map_err(|e| anyhow!("agent {}: events: {e:#}", a.addr))?;
            let tx = self.events_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("agent-events-{h}"))
                .spawn(move || {
                    for record in stream {
                        let end = record.is_err();
                        if tx.send((h, record)).is_err() || end {
                            return;
                        }
                    }
                })
                .map_err(|e| anyhow!("cannot spawn an event thread: {e}"))?;
            self.streams.push(handle);
        }
        Ok(())
    }

    /// Every event received so far, by host.
    ///
    /// # Errors
    /// A stream that broke while the trial runs (its agent died).
    pub fn drain(&self, mut f: impl FnMut(usize, EventRecord)) -> Result<()> {
        while let Ok((h, record)) = self.events.try_recv() {
            match record {
                Ok(r) => f(h, r),
                Err(e) if !self.stop.load(Ordering::Relaxed) => {
                    bail!("agent {}: event stream broke: {e:#}", self.list[h].addr)
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Ends every session (stopping its nodes and clearing its faults) and
    /// the threads; the first error is returned after all were tried.
    ///
    /// # Errors
    /// An agent that did not answer.
    pub fn release(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let mut first = None;
        for a in &mut self.list {
            if let Err(e) = a.client.close_session() {
                first.get_or_insert(anyhow!("agent {}: {e:#}", a.addr));
            }
        }
        for t in self.renew.drain(..) {
            let _ = t.join();
        }
        // Each stream ends when its agent stops the cluster; one whose agent
        // no longer answers is left to end on its own rather than waited for.
        self.streams.clear();
        first.map_or(Ok(()), Err)
    }

    /// Each agent's clock offset now (for the drift over the trial).
    pub fn offsets_now(&mut self) -> Vec<Option<OffsetEstimate>> {
        self.list
            .iter_mut()
            .map(|a| clock_offset(&mut a.client, CLOCK_SAMPLES).ok())
            .collect()
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        // An error path that never reached `release`: the lease stops the
        // nodes anyway, but say goodbye where we can.
        if !self.stop.swap(true, Ordering::Relaxed) {
            for a in &mut self.list {
                let _ = a.client.close_session();
            }
        }
    }
}

/// Renews one agent's session four times a lease until `stop`, on a thread
/// and connection of its own: a slow or dead agent delays no other's lease.
fn renew(
    addr: AgentAddr,
    mut client: AgentClient,
    lease: Duration,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let every = lease / 4;
    std::thread::Builder::new()
        .name("agent-renew".into())
        .spawn(move || {
            let step = Duration::from_millis(50);
            let mut waited = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                waited += step;
                if waited < every {
                    continue;
                }
                waited = Duration::ZERO;
                // A failed renewal shows up as the trial's next request's
                // error; the lease still bounds the nodes' life.
                if let Err(e) = client.renew() {
                    eprintln!("gossip-loadgen: agent {addr}: lease renewal failed: {e:#}");
                }
            }
        })
        .map_err(|e| anyhow!("cannot spawn a lease thread: {e}"))
}

/// The agent's pid when it runs on this machine (same boot id, and that pid
/// is a `gossip-node` here: an agent in another pid namespace is not).
fn local_pid(hello: &Hello) -> Option<u32> {
    let p = hello.process.as_ref()?;
    let here = gossip_node::agent::api::AgentProcess::this()?;
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", p.pid)).ok()?;
    (p.boot_id == here.boot_id && comm.trim() == "gossip-node").then_some(p.pid)
}
