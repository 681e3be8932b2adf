//! The lab: many hosts on one machine, each a network namespace, so that the
//! hosts world and real packet faults run on one machine and in CI
//! (DESIGN §1.1). It never touches the machine's own network namespace.
//!
//! For a lab named `N` with `H` hosts, [`up`] builds:
//! - namespace `gossiplab-N-lab`, holding bridge `br0` (no address) and one
//!   veth end `h<i>` per host, enslaved to the bridge;
//! - namespaces `gossiplab-N-h<i>` (i = 1..=H), each with loopback up and
//!   `eth0` (the veth's other end) at 198.18.0.0 + i, prefix /15;
//! - run directory `/run/gossiplab-N/` (0700): `lab.json` (the [`Lab`]),
//!   `token` (0600, random), agent sockets `h<i>.sock` and logs `h<i>.log`;
//! - one agent per host (`gossip-node agent` under `ip netns exec`), in its
//!   own session so that it outlives `lab up`, listening on its unix socket:
//!   the control channel needs no route at all.
//!
//! Devices are created inside the lab's namespaces, so their names never
//! clash with the machine's and deleting the namespaces removes them. No
//! namespace has a default route, and the bridge has no uplink: nothing sent
//! inside the lab can leave it. Everything carries the prefix
//! `gossiplab-N-`, so [`down`] finds it all by name, also after a crash left
//! no state file or half of one.
//!
//! Needs root, network namespaces and the `ip` and `tc` (Debian `iproute2`)
//! and `nft` (`nftables`) commands.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use gossip_loadgen::lab;
//! let mut up = lab::UpOptions::new("demo", 3);
//! up.start_agents = false;
//! let lab = lab::up(&up)?;
//! let h3 = &lab.hosts()[2];
//! let socket = lab::in_netns(&h3.netns, || std::net::UdpSocket::bind((h3.addr, 7000)))??;
//! # drop(socket);
//! lab::down("demo")?;
//! # Ok(())
//! # }
//! ```

mod agents;
mod topology;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};
use serde::{Deserialize, Serialize};

/// The most hosts a lab holds: a Linux bridge takes at most 1023 ports.
pub const MAX_HOSTS: usize = 1000;

/// The first address of the lab's range (RFC 2544 benchmarking,
/// 198.18.0.0/15); host i gets this + i.
const NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// The prefix length of every host address: the whole benchmarking range.
const PREFIX_LEN: u8 = 15;

/// What `lab up` builds.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The lab's name: `[a-z0-9]{1,8}`.
    pub name: String,
    /// Hosts, 1..=[`MAX_HOSTS`].
    pub hosts: usize,
    /// Start one agent per host (false: the topology alone).
    pub start_agents: bool,
    /// The `gossip-node` binary; `None`: the one beside the running executable.
    pub agent: Option<PathBuf>,
    /// How long each agent may take to listen on its socket.
    pub agent_wait: Duration,
}

impl UpOptions {
    /// `hosts` hosts named `name`, with agents from beside this executable.
    pub fn new(name: &str, hosts: usize) -> UpOptions {
        UpOptions {
            name: name.to_string(),
            hosts,
            start_agents: true,
            agent: None,
            agent_wait: Duration::from_secs(10),
        }
    }
}

/// A lab that is up, as `lab.json` describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lab {
    name: String,
    /// The namespace holding the bridge.
    netns: String,
    run_dir: PathBuf,
    hosts: Vec<LabHost>,
}

/// One host of a lab.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabHost {
    /// `h<i>`.
    pub name: String,
    /// Its network namespace, `gossiplab-<lab>-h<i>`.
    pub netns: String,
    /// Its address on `eth0`, 198.18.0.0 + i.
    pub addr: Ipv4Addr,
    /// Its agent's control socket.
    pub socket: PathBuf,
    /// Its agent's stdout and stderr.
    pub log: PathBuf,
    /// Its agent's pid (`None` when started without agents).
    pub agent_pid: Option<u32>,
}

impl Lab {
    /// The lab named `name`, from its `lab.json`.
    ///
    /// # Errors
    /// A bad name; no lab of that name is up; an unreadable state file.
    pub fn load(name: &str) -> Result<Lab> {
        check_name(name)?;
        let path = run_dir(name).join("lab.json");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut msg = format!(
                    "no lab named {name} is up (run `gossip-loadgen lab up --hosts H{}`)",
                    name_flag(name)
                );
                // A crash can leave a lab's namespaces without its state file.
                let stale = stale_namespaces(name).unwrap_or_default();
                if !stale.is_empty() {
                    msg.push_str(&format!(
                        "; {} namespace(s) of it are left (`gossip-loadgen lab down{}` removes them)",
                        stale.len(),
                        name_flag(name)
                    ));
                }
                bail!("{msg}")
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                bail!("lab: needs root to read {}", path.display())
            }
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        let lab: Lab = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; `gossip-loadgen lab down{}` removes the lab",
                path.display(),
                name_flag(name)
            )
        })?;
        if lab.name != name {
            bail!("{} names lab {}, not {name}", path.display(), lab.name);
        }
        Ok(lab)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace holding the bridge.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Its run directory, `/run/gossiplab-<name>/`.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Its hosts, h1 first.
    pub fn hosts(&self) -> &[LabHost] {
        &self.hosts
    }

    /// The file holding the agents' token.
    pub fn token_path(&self) -> PathBuf {
        self.run_dir.join("token")
    }

    /// The token every agent of this lab demands.
    ///
    /// # Errors
    /// The token file is unreadable or empty.
    pub fn token(&self) -> Result<String> {
        let path = self.token_path();
        let token = fs::read_to_string(&path)
            .with_context(|| format!("cannot read the lab's token {}", path.display()))?;
        let token = token.trim();
        if token.is_empty() {
            bail!("the lab's token file {} is empty", path.display());
        }
        Ok(token.to_string())
    }

    /// Whether `host`'s agent is running: its pid still lives in the host's
    /// namespace (so neither a dead agent nor a reused pid counts). `None`
    /// when the lab was started without agents.
    pub fn is_agent_alive(&self, host: &LabHost) -> Option<bool> {
        let pid = host.agent_pid?;
        Some(topology::netns_inode(&host.netns).is_some_and(|ns| topology::is_in_netns(pid, ns)))
    }

    /// What `lab status` prints: one line for the lab, one per host.
    pub fn status(&self) -> String {
        let mut s = format!(
            "lab {}: {} hosts on bridge br0 in {}, {}/{PREFIX_LEN}; run dir {}\n",
            self.name,
            self.hosts.len(),
            self.netns,
            NET,
            self.run_dir.display()
        );
        s.push_str(&format!(
            "{:<6} {:<22} {:<14} {:<28} agent\n",
            "host", "netns", "address", "socket"
        ));
        for h in &self.hosts {
            let netns = if topology::netns_inode(&h.netns).is_some() {
                h.netns.clone()
            } else {
                format!("{} (gone)", h.netns)
            };
            let agent = match (h.agent_pid, self.is_agent_alive(h)) {
                (Some(pid), Some(true)) => format!("pid {pid} alive"),
                (Some(pid), _) => format!("pid {pid} not running (log {})", h.log.display()),
                (None, _) => "none (started with --no-agents)".to_string(),
            };
            let socket = if h.socket.exists() {
                h.socket.display().to_string()
            } else {
                "-".to_string()
            };
            s.push_str(&format!(
                "{:<6} {:<22} {:<14} {:<28} {agent}\n",
                h.name, netns, h.addr, socket
            ));
        }
        s
    }

    fn write(&self) -> Result<()> {
        // Written whole and renamed, so a reader never sees half a file.
        let path = self.run_dir.join("lab.json");
        let tmp = self.run_dir.join("lab.json.tmp");
        fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Builds the lab `o` describes, clearing a stale lab of the same name
/// first, and starts its agents. On failure it removes what it made.
///
/// # Errors
/// Not root; no network namespaces; `ip`, `nft` or `tc` missing (naming the
/// Debian package); a bad name or host count; an `ip` command failed; an
/// agent did not listen in time (naming the host, with its log's tail).
pub fn up(o: &UpOptions) -> Result<Lab> {
    check_name(&o.name)?;
    if o.hosts == 0 || o.hosts > MAX_HOSTS {
        bail!("lab: --hosts must be 1 to {MAX_HOSTS}, not {}", o.hosts);
    }
    check_can_run()?;
    let agent = if o.start_agents {
        Some(agents::resolve(o.agent.as_deref())?)
    } else {
        None
    };
    down(&o.name)?;
    match build(o, agent.as_deref()) {
        Ok(lab) => Ok(lab),
        Err(e) => {
            // What is left of a half-built lab is ours alone; removing it
            // must not hide why the build failed.
            if let Err(d) = down(&o.name) {
                return Err(e.context(format!("and removing the half-built lab failed: {d:#}")));
            }
            Err(e)
        }
    }
}

fn build(o: &UpOptions, agent: Option<&Path>) -> Result<Lab> {
    let name = &o.name;
    let dir = run_dir(name);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let prefix = netns_prefix(name);
    let hosts: Vec<LabHost> = (1..=o.hosts)
        .map(|i| LabHost {
            name: format!("h{i}"),
            netns: format!("{prefix}h{i}"),
            addr: host_addr(i),
            socket: dir.join(format!("h{i}.sock")),
            log: dir.join(format!("h{i}.log")),
            agent_pid: None,
        })
        .collect();
    let mut lab = Lab {
        name: name.clone(),
        netns: format!("{prefix}lab"),
        run_dir: dir,
        hosts,
    };
    topology::build(&lab.netns, &lab.hosts, PREFIX_LEN)?;
    write_token(&lab.token_path())?;
    lab.write()?;
    if let Some(agent) = agent {
        let pids = agents::start(&lab, agent, o.agent_wait)?;
        for (h, pid) in lab.hosts.iter_mut().zip(pids) {
            h.agent_pid = Some(pid);
        }
        lab.write()?;
    }
    Ok(lab)
}

/// What [`down`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// The lab's name.
    pub name: String,
    /// Namespaces deleted (with every device and nftables table in them).
    pub namespaces: Vec<String>,
    /// Processes ended that ran in those namespaces.
    pub processes: Vec<u32>,
    /// The run directory, if there was one.
    pub run_dir: Option<PathBuf>,
}

impl Removed {
    /// Whether there was nothing to remove.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.processes.is_empty() && self.run_dir.is_none()
    }
}

impl fmt::Display for Removed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "no lab named {} was up; nothing to remove", self.name);
        }
        write!(
            f,
            "removed lab {}: {} namespace(s)",
            self.name,
            self.namespaces.len()
        )?;
        match self.namespaces.as_slice() {
            [] => {}
            // A big lab's list would fill the screen: its ends say enough.
            [first, second, .., last] if self.namespaces.len() > 4 => {
                write!(f, " ({first} {second} … {last})")?
            }
            all => write!(f, " ({})", all.join(" "))?,
        }
        write!(f, ", {} process(es)", self.processes.len())?;
        if (1..=8).contains(&self.processes.len()) {
            let pids: Vec<String> = self.processes.iter().map(u32::to_string).collect();
            write!(f, " (pids {})", pids.join(" "))?;
        }
        match &self.run_dir {
            Some(d) => write!(f, ", {}", d.display()),
            None => Ok(()),
        }
    }
}

/// Removes every namespace named `gossiplab-<name>-*` (and so every device
/// and nftables table in them) after ending the processes in them (SIGTERM,
/// then SIGKILL after a bound), and the run directory. Needs no state file;
/// removing nothing is not an error.
///
/// # Errors
/// A bad name; not root; `ip` missing; a namespace or process that would not go.
pub fn down(name: &str) -> Result<Removed> {
    check_name(name)?;
    check_root()?;
    topology::require_tool("ip", "-V", "iproute2")?;
    let namespaces = topology::list_netns(&netns_prefix(name))?;
    let processes = topology::end_processes(&namespaces)?;
    topology::delete_netns(&namespaces)?;
    let left = topology::list_netns(&netns_prefix(name))?;
    if !left.is_empty() {
        bail!("lab down: namespaces still there: {}", left.join(" "));
    }
    let dir = run_dir(name);
    let run_dir = match fs::remove_dir_all(&dir) {
        Ok(()) => Some(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("lab down: cannot remove {}: {e}", dir.display()),
    };
    Ok(Removed {
        name: name.to_string(),
        namespaces,
        processes,
        run_dir,
    })
}

/// Namespaces named `gossiplab-<name>-*` that exist now (for a lab whose
/// state file is gone).
///
/// # Errors
/// A bad name; `ip netns list` failed.
pub fn stale_namespaces(name: &str) -> Result<Vec<String>> {
    check_name(name)?;
    topology::list_netns(&netns_prefix(name))
}

/// Runs `f` on a fresh thread that has entered network namespace `netns`
/// (`/run/netns/<netns>`), and returns what it returns. Sockets `f` opens stay
/// in that namespace, whichever thread uses them later. A panic in `f`
/// propagates.
///
/// # Errors
/// No such namespace; `setns` refused (needs CAP_SYS_ADMIN).
pub fn in_netns<T, F>(netns: &str, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    if netns.is_empty() || netns.contains('/') || netns.starts_with('.') {
        bail!("not a network namespace name: {netns:?}");
    }
    let path = Path::new("/run/netns").join(netns);
    let file = File::open(&path)
        .with_context(|| format!("no network namespace {netns} ({})", path.display()))?;
    std::thread::scope(|s| {
        let thread = s.spawn(move || -> Result<T> {
            // Only this thread moves; it ends with `f`.
            setns(&file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter network namespace {netns}"))?;
            Ok(f())
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Refuses a name that is not `[a-z0-9]{1,8}`: it goes into namespace and
/// path names.
///
/// # Errors
/// Says what a name may be.
pub fn check_name(name: &str) -> Result<()> {
    let ok = (1..=8).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        bail!("lab: bad name {name:?}: 1 to 8 characters, a-z and 0-9 only");
    }
    Ok(())
}

/// Host `i`'s address: 198.18.0.0 + i.
pub fn host_addr(i: usize) -> Ipv4Addr {
    // i ≤ MAX_HOSTS, far inside the /15.
    Ipv4Addr::from(u32::from(NET) + i as u32)
}

/// The prefix of every namespace of lab `name`: `gossiplab-<name>-`.
pub fn netns_prefix(name: &str) -> String {
    format!("gossiplab-{name}-")
}

/// The run directory of lab `name`: `/run/gossiplab-<name>`.
pub fn run_dir(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/gossiplab-{name}"))
}

fn name_flag(name: &str) -> String {
    if name == "lab" {
        String::new()
    } else {
        format!(" --name {name}")
    }
}

/// Root, network namespaces, and the commands the lab (and the agents'
/// faults, later) call.
fn check_can_run() -> Result<()> {
    check_root()?;
    if !Path::new("/proc/self/ns/net").exists() {
        bail!("lab: this kernel has no network namespaces (no /proc/self/ns/net)");
    }
    topology::require_tool("ip", "-V", "iproute2")?;
    topology::require_tool("tc", "-V", "iproute2")?;
    topology::require_tool("nft", "--version", "nftables")
}

fn check_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("lab: needs root (network namespaces, nftables)");
    }
    Ok(())
}

/// 32 random bytes from /dev/urandom, hex, readable by root only.
fn write_token(path: &Path) -> Result<()> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the lab's token")?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{hex}\n").as_bytes()))
        .with_context(|| format!("cannot write the lab's token {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_alphanumerics() {
        for good in ["lab", "a", "x1y2z3w4", "0"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "toolongname", "Lab", "a-b", "a/b", "..", "a b", "é"] {
            let e = check_name(bad).expect_err(bad).to_string();
            assert!(e.contains("1 to 8 characters"), "{bad}: {e}");
        }
    }

    #[test]
    fn host_addresses_count_up_from_the_benchmarking_range() {
        assert_eq!(host_addr(1), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(host_addr(250), Ipv4Addr::new(198, 18, 0, 250));
        assert_eq!(host_addr(256), Ipv4Addr::new(198, 18, 1, 0));
        assert_eq!(host_addr(MAX_HOSTS), Ipv4Addr::new(198, 18, 3, 232));
    }

    #[test]
    fn removed_says_what_went() {
        let none = Removed {
            name: "x".into(),
            ..Removed::default()
        };
        assert_eq!(none.to_string(), "no lab named x was up; nothing to remove");
        let some = Removed {
            name: "x".into(),
            namespaces: vec!["gossiplab-x-lab".into(), "gossiplab-x-h1".into()],
            processes: vec![42],
            run_dir: Some(run_dir("x")),
        };
        assert_eq!(
            some.to_string(),
            "removed lab x: 2 namespace(s) (gossiplab-x-lab gossiplab-x-h1), \
             1 process(es) (pids 42), /run/gossiplab-x"
        );
    }
}
