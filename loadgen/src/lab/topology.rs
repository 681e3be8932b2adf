//! The lab's namespaces, bridge, veths and addresses, made and removed with
//! `ip` (iproute2), and the processes inside them found and ended.
//!
//! Each step is one `ip -batch` per namespace, so a lab of H hosts costs
//! H + 2 `ip` processes to build and one to delete.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::LabHost;

/// How long processes get to end after SIGTERM, and after SIGKILL.
const TERM_WAIT: Duration = Duration::from_secs(3);
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Makes namespace `bridge_ns` with bridge `br0`, and one namespace per
/// host joined to it by a veth pair, each host's `eth0` at its address.
///
/// No device gets an IPv6 link-local address (`addrgenmode none`): the
/// lab's wires carry only what the hosts send, which fault rules count.
pub(super) fn build(bridge_ns: &str, hosts: &[LabHost], prefix_len: u8) -> Result<()> {
    let mut script = format!("netns add {bridge_ns}\n");
    for h in hosts {
        script.push_str(&format!("netns add {}\n", h.netns));
    }
    ip(None, &script).context("lab: cannot create the namespaces")?;

    let mut script = String::from(
        "link set lo up\n\
         link add br0 type bridge\n\
         link set br0 addrgenmode none\n\
         link set br0 up\n",
    );
    for h in hosts {
        // The host end is made straight inside the host's namespace, so
        // neither end ever exists in the machine's namespace.
        script.push_str(&format!(
            "link add {0} type veth peer name eth0 netns {1}\n\
             link set {0} addrgenmode none\n\
             link set {0} master br0 up\n",
            h.name, h.netns
        ));
    }
    ip(Some(bridge_ns), &script).context("lab: cannot build the bridge")?;

    for h in hosts {
        let script = format!(
            "link set lo up\n\
             link set eth0 addrgenmode none\n\
             addr add {}/{prefix_len} dev eth0\n\
             link set eth0 up\n",
            h.addr
        );
        ip(Some(&h.netns), &script).with_context(|| format!("lab: cannot set up {}", h.name))?;
    }
    Ok(())
}

/// Namespaces whose names start with `prefix`.
pub(super) fn list_netns(prefix: &str) -> Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("cannot run `ip netns list`")?;
    if !out.status.success() {
        bail!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // Lines are `name` or `name (id: N)`, newest first.
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect();
    // The bridge's namespace, then h1, h2, ... (numbers, not text, order them).
    names.sort_by_key(|n| {
        let host = n[prefix.len()..]
            .strip_prefix('h')
            .and_then(|i| i.parse::<u64>().ok());
        (host.is_some(), host, n.clone())
    });
    Ok(names)
}

/// Ends every process in `namespaces` (never this process): SIGTERM, then
/// SIGKILL for those still there after [`TERM_WAIT`]. Returns their pids.
pub(super) fn end_processes(namespaces: &[String]) -> Result<Vec<u32>> {
    let me = std::process::id();
    let mut procs: Vec<(u32, u64)> = Vec::new();
    for ns in namespaces {
        let Some(inode) = netns_inode(ns) else {
            continue;
        };
        let out = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .with_context(|| format!("cannot run `ip netns pids {ns}`"))?;
        procs.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .filter(|&p| p != me && p > 1)
                .map(|p| (p, inode)),
        );
    }
    let pids: Vec<u32> = procs.iter().map(|&(p, _)| p).collect();
    signal_all(&procs, Signal::SIGTERM);
    if !wait_gone(&procs, TERM_WAIT) {
        signal_all(&procs, Signal::SIGKILL);
        if !wait_gone(&procs, KILL_WAIT) {
            let left: Vec<String> = procs
                .iter()
                .filter(|&&(p, ns)| is_in_netns(p, ns))
                .map(|(p, _)| p.to_string())
                .collect();
            bail!(
                "lab down: processes still running after SIGKILL: {}",
                left.join(" ")
            );
        }
    }
    Ok(pids)
}

/// Deletes the namespaces by name; the kernel frees each (and its devices
/// and nftables tables) once no process or socket holds it.
pub(super) fn delete_netns(namespaces: &[String]) -> Result<()> {
    if namespaces.is_empty() {
        return Ok(());
    }
    let script: String = namespaces
        .iter()
        .map(|ns| format!("netns delete {ns}\n"))
        .collect();
    // -force: one that fails does not keep the rest; the caller lists what is left.
    let mut c = Command::new("ip");
    c.arg("-force");
    run_batch(c, &script).context("lab down: cannot delete the namespaces")
}

/// The inode of namespace `netns` (`/run/netns/<netns>`), if it exists.
pub(super) fn netns_inode(netns: &str) -> Option<u64> {
    fs::metadata(Path::new("/run/netns").join(netns))
        .ok()
        .map(|m| m.ino())
}

/// Whether `pid` is a live process in the namespace with `inode` (a zombie
/// has left its namespaces; a reused pid lives elsewhere).
pub(super) fn is_in_netns(pid: u32, inode: u64) -> bool {
    fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == inode)
}

/// Fails with the Debian package to install when `program` cannot be run.
pub(super) fn require_tool(program: &str, version_arg: &str, package: &str) -> Result<()> {
    match Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "lab: `{program}` not found; install the Debian package {package} \
             (apt-get install {package})"
        ),
        Err(e) => bail!("lab: cannot run `{program}` (Debian package {package}): {e}"),
    }
}

fn signal_all(procs: &[(u32, u64)], signal: Signal) {
    for &(pid, ns) in procs {
        // Checked just before, so a pid reused since it was listed is spared.
        if is_in_netns(pid, ns) {
            // Linux pids fit in i32 (pid_max ≤ 2^22); ESRCH means it just went.
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }
}

/// Whether every process left its namespace within `limit`.
fn wait_gone(procs: &[(u32, u64)], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !procs.iter().any(|&(p, ns)| is_in_netns(p, ns)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ip [-n netns] -batch -` fed `script`.
fn ip(netns: Option<&str>, script: &str) -> Result<()> {
    let mut c = Command::new("ip");
    if let Some(ns) = netns {
        c.args(["-n", ns]);
    }
    run_batch(c, script)
}

fn run_batch(mut c: Command, script: &str) -> Result<()> {
    let mut child = c
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `ip`")?;
    let written = child
        .stdin
        .take()
        .context("ip's stdin")? // piped just above
        .write_all(script.as_bytes());
    let out = child.wait_with_output().context("cannot wait for `ip`")?;
    if !out.status.success() {
        bail!("`ip -batch` failed: {}", one_line(&out.stderr));
    }
    written.context("cannot write to `ip -batch`")
}

/// `ip`'s complaint on one line; with -force there may be one per command,
/// so it is cut to its start.
fn one_line(bytes: &[u8]) -> String {
    let line = String::from_utf8_lossy(bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}
