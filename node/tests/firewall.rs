//! Sends refused by a firewall, counted once and never sent twice, on both
//! datapaths (issue 17).
//!
//! Each test makes its own network namespace (loopback only, deleted at the
//! end even on panic), installs an nftables table in it whose output hook
//! counts every UDP datagram and drops a random 5 % of them, runs a
//! `gossip-node` cluster inside it under `ip netns exec`, and holds the
//! binary's send accounting against the firewall's counters:
//!
//! - datagrams counted refused = datagrams the firewall dropped, exactly;
//! - datagrams the nodes handed out = datagrams that reached the output
//!   hook, exactly: each was tried once, none again after a refusal;
//! - datagrams sent = datagrams the input hook delivered.
//!
//! Needs root and the `ip` (Debian: `iproute2`) and `nft` (`nftables`)
//! commands; fails, naming the package, when one is missing.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gossip_node::datapath::probe_uring;
use serde_json::Value;

/// Percent of the nodes' UDP datagrams the firewall drops.
const DROP_PERCENT: u32 = 5;

#[test]
fn mmsg_counts_each_firewall_drop_once_as_refused_and_sends_nothing_twice() {
    check_behind_firewall("mmsg");
}

#[test]
fn uring_counts_each_firewall_drop_once_as_refused_and_sends_nothing_twice() {
    if let Err(e) = probe_uring() {
        eprintln!(
            "!!!!! SKIPPED uring_counts_each_firewall_drop_once_as_refused_...: \
             io_uring is refused here ({e}) !!!!!"
        );
        return;
    }
    check_behind_firewall("uring");
}

fn check_behind_firewall(datapath: &str) {
    require("ip", &["-V"], "iproute2");
    require("nft", &["--version"], "nftables");
    let ns = Netns::create(datapath);
    ns.nft_load(&format!(
        "table inet gossiptest {{
            chain out {{
                type filter hook output priority 0; policy accept;
                meta l4proto udp counter comment \"seen\"
                meta l4proto udp numgen random mod 100 < {DROP_PERCENT} counter drop comment \"dropped\"
            }}
            chain in {{
                type filter hook input priority 0; policy accept;
                meta l4proto udp counter comment \"delivered\"
            }}
        }}"
    ));
    // 32 nodes on one I/O thread with a 10 ms tick: a few thousand datagrams
    // a second, many per turn, so that refusals fall between sends of one
    // flush (where `sendmmsg` would have hidden them).
    let out = ns.run_for(
        env!("CARGO_BIN_EXE_gossip-node"),
        &[
            "--bind",
            "127.0.0.1:7000",
            "--nodes",
            "32",
            "--threads",
            "1",
            "--tick-ms",
            "10",
            "--node-timeout-ms",
            "2000",
            "--datapath",
            datapath,
            "--rng-seed",
            "17",
            "--duration",
            "3",
        ],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{datapath}: gossip-node exited {:?}: {stderr}",
        out.status
    );
    let sends = sends_line(&stderr);
    let firewall = ns.nft_counters();
    eprintln!("{datapath}: node {sends:?}; firewall {firewall:?}");
    let (seen, dropped, delivered) = (firewall["seen"], firewall["dropped"], firewall["delivered"]);
    assert!(
        seen > 1_000 && dropped > 0,
        "{datapath}: too little traffic to tell ({firewall:?})"
    );
    assert_eq!(
        sends["refused"], dropped,
        "{datapath}: every datagram the firewall dropped is counted refused, once"
    );
    assert_eq!(
        sends["transmits"], seen,
        "{datapath}: every datagram the nodes sent met the firewall once (none resent)"
    );
    assert_eq!(
        sends["sent"] + sends["refused"],
        seen,
        "{datapath}: what the firewall saw was sent or refused"
    );
    assert_eq!(
        sends["sent"], delivered,
        "{datapath}: what was counted sent is what arrived"
    );
    assert_eq!(
        sends["would_block"] + sends["errors"] + sends["stale"],
        0,
        "{datapath}: no other send failure on an idle loopback ({sends:?})"
    );
    // Datagrams still in a socket buffer when the thread stopped are never
    // read: at most one receive batch's worth.
    assert!(
        sends["received"] <= delivered && delivered - sends["received"] <= 64,
        "{datapath}: received {} of {delivered} delivered",
        sends["received"]
    );
}

/// Fails with the package to install when `program` cannot be run.
fn require(program: &str, version_args: &[&str], package: &str) {
    match Command::new(program).args(version_args).output() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{program}` not found: this test needs the Debian package `{package}` \
             (apt-get install -y iproute2 nftables) and root"
        ),
        Err(e) => panic!("cannot run `{program}` (Debian package `{package}`): {e}"),
    }
}

/// The `key value` pairs of the binary's `gossip-node: sends:` line.
fn sends_line(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("gossip-node: sends:"))
        .unwrap_or_else(|| panic!("no sends line in: {stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .chunks(2)
        .map(|pair| {
            let value = pair
                .get(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("bad sends line: {line}"));
            (pair[0].to_string(), value)
        })
        .collect()
}

/// A network namespace of this test, deleted when dropped.
#[derive(Debug)]
struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace named after this process and `tag`, loopback up.
    fn create(tag: &str) -> Netns {
        let name = format!("gossiptest-{}-{tag}", std::process::id());
        // A leftover of an earlier run that had this pid: its counters would
        // not be ours.
        let _ = Command::new("ip").args(["netns", "delete", &name]).output();
        check(
            Command::new("ip").args(["netns", "add", &name]).output(),
            "ip netns add (needs root)",
        );
        let ns = Netns { name };
        check(
            Command::new("ip")
                .args(["-n", &ns.name, "link", "set", "lo", "up"])
                .output(),
            "ip link set lo up",
        );
        ns
    }

    /// `ip netns exec <name> program args...`.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).args(args);
        c
    }

    /// Loads an nftables ruleset into the namespace.
    fn nft_load(&self, rules: &str) {
        let mut child = self
            .command("nft", &["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        child
            .stdin
            .take()
            .expect("stdin was piped") // invariant: Stdio::piped above
            .write_all(rules.as_bytes())
            .expect("write the ruleset to nft");
        check(child.wait_with_output(), "nft -f (the test's ruleset)");
    }

    /// Packets of each commented counter rule in the namespace's ruleset.
    fn nft_counters(&self) -> BTreeMap<String, u64> {
        let out = check(
            self.command("nft", &["-j", "list", "ruleset"]).output(),
            "nft -j list ruleset",
        );
        let json: Value = serde_json::from_slice(&out.stdout).expect("nft's JSON");
        let mut counters = BTreeMap::new();
        for item in json["nftables"].as_array().expect("an nftables array") {
            let rule = &item["rule"];
            let (Some(comment), Some(exprs)) = (rule["comment"].as_str(), rule["expr"].as_array())
            else {
                continue;
            };
            for e in exprs {
                if let Some(packets) = e["counter"]["packets"].as_u64() {
                    counters.insert(comment.to_string(), packets);
                }
            }
        }
        counters
    }

    /// Runs `program` in the namespace to its end, killing it past `limit`.
    fn run_for(&self, program: &str, args: &[&str], limit: Duration) -> Output {
        let child = self
            .command(program, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec");
        let mut guard = KillOnDrop(Some(child));
        let deadline = Instant::now() + limit;
        loop {
            let child = guard.0.as_mut().expect("taken only below"); // invariant
            if child.try_wait().expect("wait for gossip-node").is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{program} still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let child = guard.0.take().expect("still held"); // invariant: loop above
        child.wait_with_output().expect("gossip-node's output")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

/// A child process killed if the test panics while it runs.
#[derive(Debug)]
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The output of a command that must succeed.
fn check(out: std::io::Result<Output>, what: &str) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
