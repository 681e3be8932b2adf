//! Network faults on real packets: random loss and partitions from peer
//! addresses with nftables, latency and jitter with tc netem.
//!
//! Loss lives in one nftables table the agent owns, `inet gossip_agent_<pid>`
//! (the prefix lets a lab find and clear a stale one), with one input chain:
//! per rule, `ip saddr { ... } meta l4proto udp numgen random mod 100000 < K
//! drop` (0.001 % resolution), or a plain drop for a partition. Each PUT
//! replaces the whole table in one `nft -f -` transaction, so that a reader
//! never sees half a fault set. Loopback input is never touched: traffic
//! between the agent's own nodes stays whole whatever the rules name.
//!
//! Latency needs the kernel's `sch_netem` qdisc; where it is missing the
//! agent refuses latency with that reason rather than ignoring it.

use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use super::api::{self, FaultSupport, FaultsApplied, Support};

/// Prefix of every nftables table an agent makes.
pub const TABLE_PREFIX: &str = "gossip_agent_";
/// `numgen random mod` this: loss in steps of 0.001 %.
const LOSS_STEPS: u32 = 100_000;
/// Why latency is refused without the qdisc.
const NO_NETEM: &str = "the kernel has no sch_netem qdisc (tc netem unavailable)";

/// The faults an agent applies and what it has applied.
#[derive(Debug)]
pub struct FaultControl {
    allowed: bool,
    table: String,
    support: FaultSupport,
    /// The nftables table exists.
    table_made: bool,
    /// Interfaces carrying a netem root qdisc of ours.
    netem_on: Vec<String>,
}

impl FaultControl {
    /// Faults as the agent was started: refused unless `allowed`.
    pub fn new(allowed: bool) -> Self {
        let support = if allowed {
            clear_orphans();
            detect()
        } else {
            let off = || {
                Support::No("faults are off on this agent (start it with --allow-faults)".into())
            };
            FaultSupport {
                loss: off(),
                partition: off(),
                latency: off(),
            }
        };
        FaultControl {
            allowed,
            table: format!("{TABLE_PREFIX}{}", std::process::id()),
            support,
            table_made: false,
            netem_on: Vec::new(),
        }
    }

    /// What can be applied, and how.
    pub fn support(&self) -> &FaultSupport {
        &self.support
    }

    /// The nftables table's name (in family `inet`).
    #[cfg(test)]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Replaces every applied fault with `faults`.
    ///
    /// # Errors
    /// One line: the fault set is invalid, faults are off, a mechanism is
    /// missing, or a tool failed (nothing of this set is then applied).
    pub fn apply(&mut self, faults: &api::Faults) -> Result<FaultsApplied, String> {
        validate(faults)?;
        let wants_loss = faults.loss.iter().any(|r| r.probability > 0.0);
        let wants_latency = faults.latency_ms > 0.0 || faults.jitter_ms > 0.0;
        if !self.allowed && (wants_loss || wants_latency) {
            return Err("faults are off on this agent (start it with --allow-faults)".into());
        }
        if wants_latency {
            if let Support::No(why) = &self.support.latency {
                return Err(format!("latency: {why}"));
            }
        }
        let mut mechanisms = Vec::new();
        if wants_loss {
            let (script, rules) = self.nft_script(faults);
            nft(&script)?;
            self.table_made = true;
            mechanisms.push(format!(
                "nftables table inet {}: {rules} drop rule(s) on input (numgen random mod {LOSS_STEPS})",
                self.table
            ));
        } else {
            self.clear_loss()?;
        }
        self.clear_latency()?;
        if wants_latency {
            for dev in interfaces() {
                tc(&[
                    "qdisc",
                    "replace",
                    "dev",
                    &dev,
                    "root",
                    "netem",
                    "delay",
                    &format!("{}ms", faults.latency_ms),
                    &format!("{}ms", faults.jitter_ms),
                ])?;
                self.netem_on.push(dev);
            }
            mechanisms.push(format!(
                "tc netem delay {} ms jitter {} ms on {}",
                faults.latency_ms,
                faults.jitter_ms,
                self.netem_on.join(", ")
            ));
        }
        Ok(FaultsApplied { mechanisms })
    }

    /// Removes every fault applied.
    ///
    /// # Errors
    /// A tool failed (what it said, in one line).
    pub fn clear(&mut self) -> Result<(), String> {
        let loss = self.clear_loss();
        let latency = self.clear_latency();
        loss.and(latency)
    }

    fn clear_loss(&mut self) -> Result<(), String> {
        if self.table_made {
            // Adding first makes the delete succeed whether or not it exists.
            nft(&format!(
                "table inet {t}\ndelete table inet {t}\n",
                t = self.table
            ))?;
            self.table_made = false;
        }
        Ok(())
    }

    fn clear_latency(&mut self) -> Result<(), String> {
        let mut result = Ok(());
        for dev in std::mem::take(&mut self.netem_on) {
            if let Err(e) = tc(&["qdisc", "del", "dev", &dev, "root"]) {
                result = Err(e);
            }
        }
        result
    }

    /// The transaction replacing the table, and its rule count.
    fn nft_script(&self, faults: &api::Faults) -> (String, usize) {
        let t = &self.table;
        let mut rules = String::new();
        let mut count = 0;
        for rule in faults.loss.iter().filter(|r| r.probability > 0.0) {
            for (family, addrs) in [
                ("ip", of_family(&rule.from, true)),
                ("ip6", of_family(&rule.from, false)),
            ] {
                if addrs.is_empty() {
                    continue;
                }
                let k = (rule.probability * f64::from(LOSS_STEPS)).round() as u32;
                let chance = if k >= LOSS_STEPS {
                    String::new()
                } else {
                    format!("numgen random mod {LOSS_STEPS} < {k} ")
                };
                rules.push_str(&format!(
                    "    {family} saddr {{ {} }} meta l4proto udp {chance}counter drop\n",
                    addrs.join(", ")
                ));
                count += 1;
            }
        }
        (
            format!(
                "table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    iifname \"lo\" accept\n{rules}  }}\n}}\n"
            ),
            count,
        )
    }
}

impl Drop for FaultControl {
    fn drop(&mut self) {
        if let Err(e) = self.clear() {
            eprintln!("gossip-node agent: clearing faults: {e}");
        }
    }
}

fn of_family(addrs: &[IpAddr], want_v4: bool) -> Vec<String> {
    addrs
        .iter()
        .filter(|a| a.is_ipv4() == want_v4)
        .map(|a| a.to_string())
        .collect()
}

fn validate(faults: &api::Faults) -> Result<(), String> {
    for (i, rule) in faults.loss.iter().enumerate() {
        if !(rule.probability.is_finite() && (0.0..=1.0).contains(&rule.probability)) {
            return Err(format!(
                "loss rule {i}: probability {} is not between 0 and 1",
                rule.probability
            ));
        }
        if rule.from.is_empty() {
            return Err(format!("loss rule {i}: no peer address in `from`"));
        }
        if rule.from.len() > 4_096 {
            return Err(format!(
                "loss rule {i}: {} addresses, at most 4096",
                rule.from.len()
            ));
        }
    }
    if faults.loss.len() > 1_024 {
        return Err(format!("{} loss rules, at most 1024", faults.loss.len()));
    }
    for (name, v) in [
        ("latency_ms", faults.latency_ms),
        ("jitter_ms", faults.jitter_ms),
    ] {
        if !(v.is_finite() && (0.0..=60_000.0).contains(&v)) {
            return Err(format!("{name} {v} is not between 0 and 60000"));
        }
    }
    Ok(())
}

/// Deletes the tables of agents that died without clearing them (killed
/// with SIGKILL): their drop rules would otherwise outlive them.
fn clear_orphans() {
    let Ok(out) = Command::new("nft").args(["list", "tables"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.strip_prefix("table inet ") else {
            continue;
        };
        let Some(pid) = name.strip_prefix(TABLE_PREFIX) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            match nft(&format!("delete table inet {name}\n")) {
                Ok(()) => {
                    eprintln!("gossip-node agent: deleted {name}, left by an agent that died")
                }
                Err(e) => eprintln!("gossip-node agent: cannot delete {name}: {e}"),
            }
        }
    }
}

/// What this host can apply.
fn detect() -> FaultSupport {
    let loss = match Command::new("nft").arg("--version").output() {
        Ok(o) if o.status.success() => Support::Yes("nftables numgen random drop on input".into()),
        Ok(o) => Support::No(format!(
            "nft --version failed: {}",
            one_line(&String::from_utf8_lossy(&o.stderr))
        )),
        Err(e) => Support::No(missing("nft", "nftables", &e)),
    };
    let partition = match &loss {
        Support::Yes(_) => Support::Yes("nftables drop on input".into()),
        no => no.clone(),
    };
    let latency = if !netem_available() {
        Support::No(NO_NETEM.into())
    } else {
        match Command::new("tc").arg("-V").output() {
            Ok(_) => Support::Yes("tc netem on the outgoing interfaces".into()),
            Err(e) => Support::No(missing("tc", "iproute2", &e)),
        }
    };
    FaultSupport {
        loss,
        partition,
        latency,
    }
}

/// Whether the kernel has sch_netem: loaded, or loadable as a module.
fn netem_available() -> bool {
    Path::new("/sys/module/sch_netem").exists()
        || Command::new("modprobe")
            .args(["-n", "-q", "sch_netem"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Interfaces that carry traffic off the host: every one but loopback.
fn interfaces() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "lo")
        .collect();
    out.sort();
    out
}

fn missing(program: &str, package: &str, e: &std::io::Error) -> String {
    if e.kind() == ErrorKind::NotFound {
        format!("`{program}` not found: install the Debian package `{package}`")
    } else {
        format!("cannot run `{program}`: {e}")
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs one nftables transaction.
fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing("nft", "nftables", &e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("writing to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the rules: {}",
            one_line(&String::from_utf8_lossy(&out.stderr))
        ))
    }
}

fn tc(args: &[&str]) -> Result<(), String> {
    let out = Command::new("tc")
        .args(args)
        .output()
        .map_err(|e| missing("tc", "iproute2", &e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "tc {}: {}",
            args.join(" "),
            one_line(&String::from_utf8_lossy(&out.stderr))
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::LossRule;

    #[test]
    fn the_script_replaces_the_table_with_one_rule_per_family_and_probability() {
        let f = FaultControl::new(false);
        let faults = api::Faults {
            loss: vec![
                LossRule {
                    from: vec!["198.18.0.2".parse().unwrap(), "::2".parse().unwrap()],
                    probability: 0.3,
                },
                LossRule {
                    from: vec!["198.18.0.3".parse().unwrap()],
                    probability: 1.0,
                },
            ],
            ..api::Faults::default()
        };
        let (script, rules) = f.nft_script(&faults);
        assert_eq!(rules, 3);
        let t = f.table();
        assert!(script.starts_with(&format!("table inet {t}\ndelete table inet {t}\n")));
        assert!(script.contains("ip saddr { 198.18.0.2 } meta l4proto udp numgen random mod 100000 < 30000 counter drop"), "{script}");
        assert!(script.contains(
            "ip6 saddr { ::2 } meta l4proto udp numgen random mod 100000 < 30000 counter drop"
        ));
        assert!(script.contains("ip saddr { 198.18.0.3 } meta l4proto udp counter drop"));
    }

    #[test]
    fn bad_fault_sets_and_disallowed_faults_are_refused_in_one_line() {
        let mut f = FaultControl::new(false);
        let loss = |p: f64| api::Faults {
            loss: vec![LossRule {
                from: vec!["198.18.0.2".parse().unwrap()],
                probability: p,
            }],
            ..api::Faults::default()
        };
        for (faults, want) in [
            (loss(1.5), "between 0 and 1"),
            (loss(f64::NAN), "between 0 and 1"),
            (loss(0.5), "--allow-faults"),
        ] {
            let e = f.apply(&faults).unwrap_err();
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        }
        // An empty set (or zero loss) is accepted: nothing to apply.
        assert_eq!(f.apply(&loss(0.0)).unwrap().mechanisms.len(), 0);
    }
}
