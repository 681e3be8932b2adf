//! One agent per host: `ip netns exec <host netns> gossip-node agent ...`,
//! detached so that it outlives `lab up`, and waited for until its control
//! socket accepts a connection.

use std::fs::{self, OpenOptions};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{Lab, LabHost};

/// The agent binary: `given`, else `gossip-node` beside the running executable.
pub(super) fn resolve(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("lab: cannot find the running executable")?
            .parent()
            .context("lab: the running executable has no directory")?
            .join("gossip-node"),
    };
    if !path.is_file() {
        bail!(
            "lab: agent binary {} not found (build gossip-node, or give --agent PATH, or --no-agents)",
            path.display()
        );
    }
    // `ip netns exec` runs it from another directory: a relative path would break.
    fs::canonicalize(&path).with_context(|| format!("lab: cannot resolve {}", path.display()))
}

/// Starts every host's agent and waits, at most `wait` in all, until each
/// socket accepts a connection. Returns their pids, in host order.
///
/// On failure the agents it started are killed; the caller removes the rest.
pub(super) fn start(lab: &Lab, agent: &Path, wait: Duration) -> Result<Vec<u32>> {
    let mut children = Vec::with_capacity(lab.hosts().len());
    let started = lab
        .hosts()
        .iter()
        .try_for_each(|h| spawn(lab, h, agent).map(|c| children.push(c)));
    let result = started.and_then(|()| wait_listening(lab.hosts(), &mut children, wait));
    match result {
        Ok(()) => {
            let pids = children.iter().map(Child::id).collect();
            for mut child in children {
                // Reaped when it ends, should this process still run then
                // (a test, the hosts world); after `lab up` exits, init does.
                std::thread::spawn(move || child.wait());
            }
            Ok(pids)
        }
        Err(e) => {
            for child in &mut children {
                let _ = child.kill();
                let _ = child.wait();
            }
            Err(e)
        }
    }
}

fn spawn(lab: &Lab, h: &LabHost, agent: &Path) -> Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&h.log)
        .with_context(|| format!("lab: cannot open {}", h.log.display()))?;
    let err = log
        .try_clone()
        .context("lab: cannot duplicate a file handle")?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &h.netns])
        .arg(agent)
        .arg("agent")
        .arg("--listen")
        .arg(format!("unix:{}", h.socket.display()))
        .arg("--token-file")
        .arg(lab.token_path())
        .arg("--bind-ip")
        .arg(h.addr.to_string())
        .arg("--allow-faults")
        .current_dir(lab.run_dir())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: the closure runs in the forked child before exec and calls
    // only setsid(2), which is async-signal-safe; it allocates nothing.
    unsafe {
        // A session of its own: no terminal's Ctrl-C or hangup reaches it,
        // and it outlives `lab up`. `lab down` ends it.
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    cmd.spawn()
        .with_context(|| format!("lab: cannot start the agent of {}", h.name))
}

fn wait_listening(hosts: &[LabHost], children: &mut [Child], wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    let mut pending: Vec<usize> = (0..hosts.len()).collect();
    while !pending.is_empty() {
        let mut still = Vec::with_capacity(pending.len());
        for i in pending {
            let h = &hosts[i];
            if let Ok(Some(status)) = children[i].try_wait() {
                bail!(
                    "lab: the agent of {} exited ({status}) before listening on {}: {}",
                    h.name,
                    h.socket.display(),
                    log_tail(&h.log)
                );
            }
            // A connection we drop at once: the agent must take it and its
            // end without harm, as from any client that gives up.
            if UnixStream::connect(&h.socket).is_err() {
                still.push(i);
            }
        }
        pending = still;
        if let Some(&i) = pending.first() {
            if Instant::now() >= deadline {
                let h = &hosts[i];
                bail!(
                    "lab: the agent of {} did not listen on {} within {:?}: {}",
                    h.name,
                    h.socket.display(),
                    wait,
                    log_tail(&h.log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// The last lines of an agent's log, on one line, for an error message.
fn log_tail(log: &Path) -> String {
    let text = fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return format!("its log {} is empty", log.display());
    }
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    // A runaway line (a panic's backtrace) must not swamp the message.
    let skip = tail.chars().count().saturating_sub(400);
    let tail: String = tail.chars().skip(skip).collect();
    format!("{} says: {tail}", log.display())
}
