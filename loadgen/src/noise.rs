//! How busy the host was while a run ran (issue 15), from `/proc`: CPU time
//! of other processes, steal, the load average, and (from the summary)
//! late ticks; a run whose host was busy enough to move its figures is
//! flagged in its report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The host while the run ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostNoise {
    /// Seconds observed.
    pub window_s: f64,
    /// CPUs the kernel counts (`/proc/stat`).
    pub cpus: usize,
    /// CPU time of every process, in cores busy on average.
    pub busy_cores: f64,
    /// Of it, this process and its descendants (nodes, servers).
    pub own_cores: f64,
    /// The rest: other processes and the kernel's interrupts.
    pub others_cores: f64,
    /// Time the hypervisor gave this machine's CPUs to others ÷ CPU time.
    pub steal_fraction: f64,
    /// Largest 1-minute load average seen (sampled every second).
    pub load_avg_max: f64,
    /// UDP and hosts worlds: late ticks ÷ ticks (from the summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_tick_fraction: Option<f64>,
    /// Busy enough to move the figures; `why` says by what.
    pub busy: bool,
    /// Each threshold crossed, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub why: Vec<String>,
}

/// Other processes using this share of the CPUs flag the run.
pub const OTHERS_BUSY: f64 = 0.2;
/// Steal above this share flags the run.
pub const STEAL_BUSY: f64 = 0.05;
/// Late ticks above this share flag the run.
pub const LATE_BUSY: f64 = 0.01;

impl HostNoise {
    /// Sets `busy` and `why` from the figures and `late_tick_fraction`.
    pub fn judge(&mut self, late_tick_fraction: Option<f64>) {
        self.late_tick_fraction = late_tick_fraction;
        self.why.clear();
        let cpus = self.cpus.max(1) as f64;
        if self.others_cores / cpus >= OTHERS_BUSY {
            self.why.push(format!(
                "other processes kept {:.2} of {} CPUs busy",
                self.others_cores, self.cpus
            ));
        }
        if self.steal_fraction >= STEAL_BUSY {
            self.why
                .push(format!("steal {:.1} %", self.steal_fraction * 100.0));
        }
        if late_tick_fraction.is_some_and(|f| f >= LATE_BUSY) {
            self.why.push(format!(
                "{:.1} % of ticks late",
                late_tick_fraction.unwrap_or(0.0) * 100.0
            ));
        }
        self.busy = !self.why.is_empty();
    }

    /// One line for the report.
    pub fn line(&self) -> String {
        let late = self.late_tick_fraction.map_or(String::new(), |f| {
            format!(", late ticks {:.2} %", f * 100.0)
        });
        let verdict = match self.busy {
            true => format!(" — BUSY: {}", self.why.join("; ")),
            false => " — quiet".into(),
        };
        format!(
            "others' CPU {:.2} of {} CPUs (this run {:.2}), steal {:.1} %, load average up to {:.2}{late}{verdict}",
            self.others_cores,
            self.cpus,
            self.own_cores,
            self.steal_fraction * 100.0,
            self.load_avg_max
        )
    }
}

/// Watches the host from `start` to `finish`.
#[derive(Debug)]
pub struct Probe {
    started: Instant,
    cpu: Option<CpuTimes>,
    /// Every process's `(ppid, ticks)` at the start.
    procs: Option<Procs>,
    stop: Arc<AtomicBool>,
    load_max: Arc<Mutex<f64>>,
    sampler: Option<JoinHandle<()>>,
}

impl Probe {
    /// Starts watching (a thread reads the load average every second).
    pub fn start() -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let load_max = Arc::new(Mutex::new(load_avg().unwrap_or(0.0)));
        let sampler = {
            let (stop, load_max) = (Arc::clone(&stop), Arc::clone(&load_max));
            std::thread::Builder::new()
                .name("noise".into())
                .spawn(move || {
                    let mut last = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        if last.elapsed() >= Duration::from_secs(1) {
                            last = Instant::now();
                            if let Some(l) = load_avg() {
                                let mut m = load_max.lock().unwrap_or_else(|p| p.into_inner());
                                *m = m.max(l);
                            }
                        }
                    }
                })
                .ok()
        };
        Probe {
            started: Instant::now(),
            cpu: read_cpu(),
            procs: processes(),
            stop,
            load_max,
            sampler,
        }
    }

    /// What the host did since `start`; `None` where `/proc` is unreadable.
    pub fn finish(mut self, late_tick_fraction: Option<f64>) -> Option<HostNoise> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
        let window_s = self.started.elapsed().as_secs_f64();
        let (a, b) = (self.cpu?, read_cpu()?);
        let own = own_ticks(self.procs.as_ref()?, &processes()?, &local_agents());
        let hz = ticks_per_s();
        let busy = b.busy.saturating_sub(a.busy);
        let total = b.total.saturating_sub(a.total).max(1);
        let cores = |ticks: u64| ticks as f64 / hz / window_s.max(1e-3);
        let mut n = HostNoise {
            window_s,
            cpus: b.cpus,
            busy_cores: cores(busy),
            own_cores: cores(own),
            others_cores: cores(busy.saturating_sub(own)),
            steal_fraction: b.steal.saturating_sub(a.steal) as f64 / total as f64,
            load_avg_max: *self.load_max.lock().unwrap_or_else(|p| p.into_inner()),
            ..HostNoise::default()
        };
        n.judge(late_tick_fraction);
        Some(n)
    }
}

/// `/proc/stat`'s first line, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CpuTimes {
    busy: u64,
    steal: u64,
    total: u64,
    cpus: usize,
}

fn read_cpu() -> Option<CpuTimes> {
    parse_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Busy is user + nice + system + irq + softirq; total adds idle, iowait
/// and steal (guest time is inside user already).
fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let f = |i: usize| v.get(i).copied().unwrap_or(0);
    let (user, nice, system, idle, iowait, irq, softirq, steal) =
        (f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7));
    let busy = user + nice + system + irq + softirq;
    Some(CpuTimes {
        busy,
        steal,
        total: busy + idle + iowait + steal,
        cpus: text
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count(),
    })
}

fn load_avg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `pid -> (ppid, utime + stime + cutime + cstime)` of every process.
type Procs = HashMap<u32, (u32, u64)>;

/// Agents on this machine whose CPU is the run's own (the lab's, or one on
/// loopback): the hosts world names them as it holds them. They are not
/// this process's descendants, yet without them a lab run would count its
/// own nodes as another process's load.
static LOCAL_AGENTS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Counts process `pid` (an agent on this machine) as the run's own from now on.
pub fn count_as_own(pid: u32) {
    let mut v = LOCAL_AGENTS.lock().unwrap_or_else(|p| p.into_inner());
    if !v.contains(&pid) {
        v.push(pid);
    }
}

fn local_agents() -> Vec<u32> {
    LOCAL_AGENTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

fn processes() -> Option<Procs> {
    let mut procs = Procs::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // A process may end between listing and reading: skip it.
        if let Some(stat) = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| parse_pid_stat(&s))
        {
            procs.insert(pid, stat);
        }
    }
    Some(procs)
}

/// CPU ticks between two snapshots of this process, its reaped children and
/// its live descendants (the nodes' threads, the redis world's servers),
/// and of the `local` agents and theirs. A process that started in between
/// counts whole.
fn own_ticks(before: &Procs, now: &Procs, local: &[u32]) -> u64 {
    let me = std::process::id();
    let roots: Vec<u32> = std::iter::once(me).chain(local.iter().copied()).collect();
    let mut sum = 0;
    for (&pid, &(_, t)) in now {
        // Walk up to init; bounded by the process count (no cycles in /proc,
        // but a hostile or racing read must not loop forever).
        let mut p = pid;
        for _ in 0..=now.len() {
            if roots.contains(&p) {
                let was = before.get(&pid).map_or(0, |&(_, t)| t);
                sum += t.saturating_sub(was);
                break;
            }
            match now.get(&p) {
                Some(&(pp, _)) if pp > 1 => p = pp,
                _ => break,
            }
        }
    }
    sum
}

/// `(ppid, utime + stime + cutime + cstime)` from `/proc/<pid>/stat`; the
/// command name may hold spaces and parentheses, so fields count from the
/// last `)`.
fn parse_pid_stat(s: &str) -> Option<(u32, u64)> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let ppid = f.get(1)?.parse().ok()?;
    let t = (11..=14)
        .map(|i| {
            f.get(i)
                .and_then(|x| x.parse::<i64>().ok())
                .unwrap_or(0)
                .max(0) as u64
        })
        .sum();
    Some((ppid, t))
}

/// USER_HZ, the unit of `/proc`'s CPU times: 100 in the kernel's ABI on
/// every architecture Linux ships with a `/proc/stat` for users.
fn ticks_per_s() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_and_pid_stat_parse() {
        let stat = "cpu  100 5 50 1000 10 3 2 40 0 0\ncpu0 50 2 25 500 5 1 1 20 0 0\ncpu1 50 3 25 500 5 2 1 20 0 0\nintr 1\n";
        let c = parse_stat(stat).unwrap();
        assert_eq!((c.busy, c.steal, c.total, c.cpus), (160, 40, 1210, 2));
        let pid = "42 (a (weird) name) S 7 42 42 0 -1 4194560 1 0 0 0 30 12 4 1 20 0 1 0";
        assert_eq!(parse_pid_stat(pid), Some((7, 47)));
        assert_eq!(parse_pid_stat("garbage"), None);
    }

    #[test]
    fn own_ticks_count_descendants_and_local_agents_between_snapshots() {
        let me = std::process::id();
        let (child, agent, its_node, stranger) = (me + 1, me + 2, me + 3, me + 4);
        let before: Procs = [
            (me, (1, 10)),
            (child, (me, 5)),
            (agent, (1, 100)),
            (stranger, (1, 7)),
        ]
        .into_iter()
        .collect();
        let now: Procs = [
            (me, (1, 15)),
            (child, (me, 9)),
            (agent, (1, 130)),
            (its_node, (agent, 6)),
            (stranger, (1, 70)),
        ]
        .into_iter()
        .collect();
        assert_eq!(own_ticks(&before, &now, &[]), 5 + 4);
        assert_eq!(own_ticks(&before, &now, &[agent]), 5 + 4 + 30 + 6);
    }

    #[test]
    fn a_host_shared_with_a_busy_process_is_flagged() {
        let mut n = HostNoise {
            cpus: 2,
            others_cores: 0.9,
            ..HostNoise::default()
        };
        n.judge(Some(0.0));
        assert!(n.busy && n.why[0].contains("0.90 of 2 CPUs"), "{n:?}");
        n.others_cores = 0.1;
        n.judge(Some(0.02));
        assert!(n.busy && n.why[0].contains("ticks late"), "{n:?}");
        n.judge(None);
        assert!(!n.busy, "{}", n.line());
    }
}
