//! One redis-server (or valkey-server) process: finding the binary, writing
//! its config, spawning it so that it never outlives us, and killing it by
//! its pid.
//!
//! Three layers keep servers from being orphaned:
//! - every owner (`Server`) kills and reaps its child when dropped;
//! - every spawned pid sits in a process-wide registry until it is reaped, so
//!   [`kill_all`] can SIGKILL them all from a Ctrl-C handler just before
//!   `std::process::exit`, which runs no destructors;
//! - each child gets `PR_SET_PDEATHSIG(SIGKILL)`, so the kernel kills it when
//!   the thread that spawned it exits, whatever the cause (a panic that aborts,
//!   `exit`, SIGKILL of the loadgen). Linux ties this signal to the spawning
//!   *thread*, not the process: spawn, restart and join a cluster from a
//!   thread that outlives it.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Pids spawned and not yet reaped. A pid leaves this set, under its lock,
/// before it is reaped, so a pid in it can never be another process's:
/// an unreaped child keeps its pid, even as a zombie.
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn live() -> MutexGuard<'static, BTreeSet<u32>> {
    // A panic while holding the lock leaves the set itself consistent (every
    // update is one insert or remove), so a poisoned lock is still usable.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGKILLs every server any [`super::Cluster`] in this process has started and
/// not yet reaped. For a Ctrl-C handler that is about to call
/// `std::process::exit`; the killed servers are reaped by init after we exit
/// (or by their owners' `Drop` if we go on).
pub fn kill_all() {
    for &pid in live().iter() {
        // ESRCH cannot happen (unreaped); anything else is not ours to fix.
        let _ = kill(pid_of(pid), Signal::SIGKILL);
    }
}

/// Pids of the servers started in this process and not yet reaped (for
/// tests and diagnostics).
pub fn live_pids() -> Vec<u32> {
    live().iter().copied().collect()
}

fn pid_of(pid: u32) -> Pid {
    // Linux pids fit in i32 (pid_max ≤ 2^22).
    Pid::from_raw(pid as i32)
}

/// A running server process that we spawned and have not yet reaped.
#[derive(Debug)]
pub(super) struct Server {
    child: Child,
}

impl Server {
    /// Starts `bin conf` in `dir`, stdout and stderr appended to
    /// `dir/stdout.log` (a restart keeps what the previous process said).
    pub(super) fn spawn(bin: &Path, conf: &Path, dir: &Path) -> Result<Server> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stdout.log"))
            .with_context(|| format!("cannot open {}", dir.join("stdout.log").display()))?;
        let err = out.try_clone().context("cannot duplicate a file handle")?;
        let parent = std::process::id();
        let mut cmd = Command::new(bin);
        cmd.arg(conf)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: a terminal's Ctrl-C (SIGINT to the
            // foreground group) must reach the loadgen only, which then stops
            // the servers itself; Redis would otherwise shut down on its own
            // mid-run and look like a crash.
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and calls
        // only prctl(2) and getppid(2), both async-signal-safe; it allocates
        // nothing (an Errno converts to io::Error without allocating).
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The parent may have died between fork and prctl, in which
                // case no signal will ever come: refuse to exec.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(nix::errno::Errno::ESRCH.into());
                }
                Ok(())
            });
        }
        // Held across spawn so that kill_all never misses a fresh child.
        let mut live = live();
        let child = cmd.spawn().map_err(|e| spawn_error(bin, &e))?;
        live.insert(child.id());
        Ok(Server { child })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (SIGSTOP, SIGCONT); false if it could not be sent.
    pub(super) fn signal(&self, signal: Signal) -> bool {
        kill(pid_of(self.pid()), signal).is_ok()
    }

    /// Its exit status if it has exited (then reaped), else None.
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        let mut live = live();
        match self.child.try_wait() {
            Ok(Some(status)) => {
                live.remove(&self.child.id());
                Some(status)
            }
            _ => None,
        }
    }

    /// SIGKILLs and reaps it (SIGCONT is not needed: SIGKILL ends a stopped
    /// process too).
    pub(super) fn kill(mut self) {
        self.kill_and_reap();
    }

    fn kill_and_reap(&mut self) {
        {
            let mut live = live();
            if !live.contains(&self.child.id()) {
                return; // already reaped by `exited`
            }
            let _ = self.child.kill();
            live.remove(&self.child.id());
        }
        // SIGKILL cannot be caught: this returns as soon as the kernel has
        // torn the process down.
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

fn spawn_error(bin: &Path, e: &io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::NotFound {
        anyhow::anyhow!("{}", missing(&bin.display().to_string()))
    } else {
        anyhow::anyhow!("cannot run {}: {e}", bin.display())
    }
}

fn missing(what: &str) -> String {
    format!(
        "redis server binary {what} not found: install the Debian package `redis-server` \
         (or `valkey-server`), or give the path of a redis-server/valkey-server binary"
    )
}

/// The server binary: `server` if given (a path, or a name looked up on
/// PATH), else `redis-server` on PATH, else `valkey-server`.
pub(super) fn resolve(server: Option<&Path>) -> Result<PathBuf> {
    match server {
        Some(p) if p.components().count() > 1 || p.is_absolute() => {
            if p.is_file() {
                Ok(p.to_path_buf())
            } else {
                bail!("{}", missing(&p.display().to_string()))
            }
        }
        Some(name) => on_path(name.as_os_str()).ok_or_else(|| {
            anyhow::anyhow!("{}", missing(&format!("{} (on PATH)", name.display())))
        }),
        None => on_path("redis-server".as_ref())
            .or_else(|| on_path("valkey-server".as_ref()))
            .ok_or_else(|| {
                anyhow::anyhow!("{}", missing("redis-server or valkey-server (on PATH)"))
            }),
    }
}

fn on_path(name: &std::ffi::OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// "redis 7.0.15" or "valkey 8.0.2", from `bin --version`
/// ("Redis server v=7.0.15 sha=…").
pub(super) fn version(bin: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(bin, &e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let (name, kind, v) = (words.next(), words.next(), words.next());
    match (name, kind, v.and_then(|v| v.strip_prefix("v="))) {
        (Some(name), Some("server"), Some(v)) if out.status.success() => {
            Ok(format!("{} {v}", name.to_ascii_lowercase()))
        }
        _ => bail!(
            "{} is not a redis-server or valkey-server: `--version` printed {:?}",
            bin.display(),
            text.lines().next().unwrap_or("nothing")
        ),
    }
}

/// Whether client port `port` and its bus port (`port + 10000`) are both
/// free on 127.0.0.1. Binding is the only honest test; std sets
/// SO_REUSEADDR like Redis does, so a TIME_WAIT leftover does not count as
/// taken.
pub(super) fn is_free(port: u16) -> bool {
    let Some(bus) = port.checked_add(BUS_PORT_OFFSET) else {
        return false;
    };
    TcpListener::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", bus)).is_ok()
}

/// Redis's cluster bus listens on the client port + 10000 unless
/// `cluster-port` says otherwise; we leave it at that.
pub(super) const BUS_PORT_OFFSET: u16 = 10_000;

/// Writes `dir/redis.conf` and clears what a previous run left in `dir` (a
/// stale nodes.conf would rejoin an old cluster). Returns the config path.
pub(super) fn write_config(
    dir: &Path,
    port: u16,
    node_timeout_ms: u64,
    fresh: bool,
) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if fresh {
        for f in ["nodes.conf", "redis.log", "stdout.log"] {
            match fs::remove_file(dir.join(f)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    bail!("cannot remove {}: {e}", dir.join(f).display())
                }
                _ => {}
            }
        }
    }
    let q = |p: &Path| quote(&p.display().to_string());
    let conf = format!(
        "# Written by gossip-loadgen (the redis world) for one run.\n\
         port {port}\n\
         bind 127.0.0.1\n\
         daemonize no\n\
         dir {dir}\n\
         logfile {log}\n\
         cluster-enabled yes\n\
         cluster-config-file nodes.conf\n\
         cluster-node-timeout {node_timeout_ms}\n\
         # Coverage gates only client commands and cluster_state, never the bus:\n\
         # with `no`, cluster_state keeps meaning \"in the majority\" after a crash.\n\
         cluster-require-full-coverage no\n\
         save \"\"\n\
         appendonly no\n",
        dir = q(dir),
        log = q(&dir.join("redis.log")),
    );
    let path = dir.join("redis.conf");
    fs::write(&path, conf).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A Redis config string: double-quoted, `\` and `"` escaped.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The last lines of the server's log and of its stdout/stderr (config
/// errors go there before the log is open), joined into one line.
pub(super) fn log_tail(dir: &Path) -> String {
    let mut parts = Vec::new();
    for f in ["stdout.log", "redis.log"] {
        let text = fs::read_to_string(dir.join(f)).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        parts.extend(
            lines[lines.len().saturating_sub(3)..]
                .iter()
                .map(|l| l.to_string()),
        );
    }
    if parts.is_empty() {
        "its log is empty".into()
    } else {
        parts.join(" | ")
    }
}
