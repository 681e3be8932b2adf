//! The hosts world on the network-namespace lab: real agents, real packets,
//! real faults. A crash FAILed at every node across hosts; a partition of
//! whole hosts whose FAILs are not false and whose heal restores agreement;
//! loss on the wire as configured; a killed loadgen's nodes stopped by the
//! lease; and the bad cases (an unreachable agent, an agent held by another
//! loadgen, a fault the agents cannot apply, an agent dying mid-run).
//!
//! Needs root, `ip`, `nft`; fails loudly without them unless
//! GOSSIP_SKIP_ROOT_TESTS=1. Each test has a lab of its own.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gossip_loadgen::lab::{self, Lab, UpOptions};
use gossip_node::agent::api::{Faults, LossRule, Support};
use gossip_node::agent::{AgentAddr, AgentClient};
use serde_json::Value;

mod support;
use support::{lab_name, loadgen, stderr, wait_until, DownOnDrop, KillOnDrop, LOADGEN};

/// A lab of `hosts` hosts with real agents (the `gossip-node` built beside
/// `gossip-loadgen`), removed when the guard drops.
fn lab_up(tag: &str, hosts: usize) -> Option<(Lab, DownOnDrop)> {
    let name = lab_name(tag)?;
    let mut o = UpOptions::new(&name, hosts);
    o.agent = Some(PathBuf::from(LOADGEN).with_file_name("gossip-node"));
    let lab = lab::up(&o).expect("lab up");
    Some((lab, DownOnDrop(name)))
}

fn out_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gossip-hosts-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

fn report(dir: &Path) -> Value {
    let text = fs::read_to_string(dir.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("a JSON report")
}

fn client(lab: &Lab, host: usize) -> AgentClient {
    let addr = AgentAddr::Unix(lab.hosts()[host].socket.clone());
    AgentClient::connect(&addr, &lab.token().expect("token")).expect("connect")
}

#[test]
fn a_partition_of_one_host_heals_into_agreement_and_a_crash_is_failed_everywhere() {
    let Some((lab, _down)) = lab_up("hp", 3) else {
        return;
    };
    let dir = out_dir("partition");
    let scenario = dir.with_extension("toml");
    fs::write(
        &scenario,
        r#"
name = "lab-partition"
[cluster]
nodes = 15
[profile]
node_timeout_ms = 1000
[run]
warmup_s = 3
duration_s = 14
[[timeline]]
at_s = 0.5
action = "partition"
fraction = 0.34
[[timeline]]
at_s = 3.5
action = "heal"
[[timeline]]
at_s = 8.0
action = "crash"
node = 7
"#,
    )
    .unwrap();
    let out = loadgen(&[
        "run",
        "--scenario",
        scenario.to_str().unwrap(),
        "--hosts",
        &format!("lab:{}", lab.name()),
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&dir);
    let t = &r["trials"][0];
    // Placement: three hosts of five nodes, each its own address.
    let agents = t["hosts"]["agents"].as_array().expect("hosts.agents");
    let nodes: Vec<&str> = agents
        .iter()
        .map(|a| a["nodes"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["0-4", "5-9", "10-14"]);
    assert_eq!(agents[1]["bind_ip"], "198.18.0.2");
    // The cut was made of nftables rules on every host.
    let faults = t["hosts"]["faults"].as_array().unwrap();
    assert!(
        faults
            .iter()
            .any(|f| f.as_str().unwrap().contains("nftables")),
        "{faults:?}"
    );
    // FAILs across the cut are the partition's, not false ones.
    assert_eq!(r["summary"]["false_fails"], 0, "{}", r["summary"]);
    let fails_across = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "fail")
        .count();
    assert!(fails_across >= 2, "no FAIL across the cut: {}", t["items"]);
    // The heal restores agreement: every running node holds every other alive.
    let heal = t["recoveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["after"] == "heal")
        .expect("a recovery after the heal");
    let s = heal["recover_s"].as_f64().expect("agreement restored");
    assert!(s > 0.0 && s < 8.0, "recover_s {s}");
    assert_eq!(t["disagreeing_pairs"], 0);
    // The crash on host 1 is FAILed at every live node, across hosts.
    let d = &t["detections"][0];
    assert!(d["all_fail_s"].as_f64().is_some(), "{d}");
    // Clocks on one machine: offsets within their (small) uncertainty.
    for a in agents {
        let (off, unc) = (
            a["offset_ms"].as_f64().unwrap(),
            a["uncertainty_ms"].as_f64().unwrap(),
        );
        assert!(off.abs() <= unc + 0.05, "offset {off} ± {unc}");
    }
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(&scenario);
}

#[test]
fn a_key_rotated_across_two_hosts_loses_no_update_and_suspects_no_one() {
    let Some((lab, _down)) = lab_up("hr", 2) else {
        return;
    };
    let dir = out_dir("keyrot");
    let mut args = vec!["run", "--scenario", "key-rotation", "--hosts"];
    let hosts = format!("lab:{}", lab.name());
    args.push(&hosts);
    let sets = [
        "cluster.nodes=10",
        "profile.node_timeout_ms=1500",
        "profile.anti_entropy_period_ms=500",
        "run.warmup_s=3",
        "run.duration_s=9",
        "timeline=[{at_s=0.5,action=\"publish\",count=10,rate=2.0},{at_s=1.5,action=\"key-add\"},{at_s=3.0,action=\"key-switch\"},{at_s=4.5,action=\"key-retire\"}]",
    ];
    for s in &sets {
        args.extend(["--set", s]);
    }
    args.extend(["--out", dir.to_str().unwrap()]);
    let out = loadgen(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&dir);
    assert_eq!(r["world"], "hosts");
    let t = &r["trials"][0];
    let marks = t["timeline"].to_string();
    for step in [
        "every node accepts key 2 (10 running)",
        "every node sends with key 2 (10 running)",
        "every node retires key(s) [1] (10 running)",
    ] {
        assert!(marks.contains(step), "{step} not in {marks}");
    }
    let updates: Vec<&Value> = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "update")
        .collect();
    assert_eq!(updates.len(), 10);
    for u in &updates {
        assert_eq!(u["reached"], 9, "an update was lost: {u}");
    }
    assert_eq!(r["summary"]["false_fails"], 0, "{}", r["summary"]);
    assert_eq!(r["summary"]["false_pfails"], 0, "{}", r["summary"]);
    // No key material in what the run leaves behind.
    let text = fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(!text.contains("key 1 ") && !stderr(&out).contains("key 1 "));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn loss_from_another_host_is_the_configured_rate_on_real_datagrams() {
    let Some((lab, _down)) = lab_up("hl", 2) else {
        return;
    };
    let (h1, h2) = (&lab.hosts()[0], &lab.hosts()[1]);
    let mut c = client(&lab, 1);
    c.open_session("loss test", Duration::from_secs(30))
        .unwrap();
    let applied = c
        .set_faults(&Faults {
            loss: vec![LossRule {
                from: vec![h1.addr.into()],
                probability: 0.25,
            }],
            ..Faults::default()
        })
        .expect("faults");
    assert!(!applied.mechanisms.is_empty());
    let rx = lab::in_netns(&h2.netns, || {
        let s = UdpSocket::bind(SocketAddr::from((h2.addr, 0))).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    })
    .unwrap();
    let to = rx.local_addr().unwrap();
    let tx = lab::in_netns(&h1.netns, || {
        UdpSocket::bind(SocketAddr::from((h1.addr, 0))).unwrap()
    })
    .unwrap();
    let sent = 4_000;
    let mut got = 0;
    let mut buf = [0u8; 64];
    // In bursts the receive buffer holds, read between them.
    for burst in 0..sent / 200 {
        for i in 0..200 {
            tx.send_to(&[(burst + i) as u8; 32], to).unwrap();
        }
        while rx.recv(&mut buf).is_ok() {
            got += 1;
        }
    }
    let lost = 1.0 - f64::from(got) / f64::from(sent);
    assert!(
        (0.20..=0.30).contains(&lost),
        "lost {lost:.3} of {sent} with 25 % configured ({got} arrived)"
    );
    c.clear_faults().unwrap();
    c.close_session().unwrap();
}

#[test]
fn a_killed_loadgen_leaves_its_nodes_stopped_within_the_lease() {
    let Some((lab, _down)) = lab_up("hk", 1) else {
        return;
    };
    let dir = out_dir("killed");
    let child = Command::new(LOADGEN)
        .args([
            "run",
            "--scenario",
            "steady",
            "--hosts",
            &format!("lab:{}", lab.name()),
            "--nodes",
            "4",
            "--set",
            "hosts.lease_ms=1500",
            "--set",
            "run.warmup_s=1",
            "--duration",
            "60",
            "--out",
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut c = client(&lab, 0);
    let pid = lab.hosts()[0].agent_pid.unwrap();
    wait_until("the loadgen's nodes", || udp_sockets(pid) == 4);
    assert!(c.hello().unwrap().session.is_some());
    child.0.kill().unwrap();
    let _ = child.0.wait();
    let killed = Instant::now();
    wait_until("the lease to run out", || {
        c.hello().unwrap().session.is_none() && udp_sockets(pid) == 0
    });
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(1_500 + 1_000),
        "nodes ran {took:?} after the loadgen died (lease 1.5 s)"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// The error a failed run ends with: its last line on stderr, one line
/// (the lines before it say what the run was).
fn error_line(out: &std::process::Output) -> String {
    let e = stderr(out);
    let last = e.trim().lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("gossip-loadgen: "), "{e}");
    last
}

/// UDP sockets bound in `pid`'s network namespace (its nodes').
fn udp_sockets(pid: u32) -> usize {
    fs::read_to_string(format!("/proc/{pid}/net/udp"))
        .map(|t| t.lines().skip(1).count())
        .unwrap_or(0)
}

#[test]
fn an_unreachable_agent_is_one_line() {
    let token = std::env::temp_dir().join(format!("gossip-hosts-token-{}", std::process::id()));
    fs::write(&token, "t").unwrap();
    // Port 9 (discard) on loopback: nobody listens there.
    let out = loadgen(&[
        "run",
        "--scenario",
        "steady",
        "--hosts",
        "127.0.0.1:9",
        "--token-file",
        token.to_str().unwrap(),
        "--nodes",
        "3",
    ]);
    let _ = fs::remove_file(&token);
    assert!(!out.status.success());
    let e = error_line(&out);
    assert!(
        e.contains("127.0.0.1:9") && e.contains("unreachable"),
        "{e}"
    );
}

#[test]
fn an_agent_held_by_another_loadgen_or_unable_to_shape_is_refused_in_one_line() {
    let Some((lab, _down)) = lab_up("hb", 1) else {
        return;
    };
    let hosts = format!("lab:{}", lab.name());
    // Latency: applied where the kernel has netem, refused with why otherwise.
    let mut c = client(&lab, 0);
    let latency = c.hello().unwrap().faults.latency;
    let out = loadgen(&[
        "run",
        "--scenario",
        "steady",
        "--hosts",
        &hosts,
        "--nodes",
        "3",
        "--duration",
        "1",
        "--set",
        "run.warmup_s=1",
        "--set",
        "network.latency_ms=5",
        "--set",
        "network.jitter_ms=0",
        "--out",
        out_dir("latency").to_str().unwrap(),
    ]);
    match latency {
        Support::No(why) => {
            assert!(!out.status.success());
            let e = error_line(&out);
            assert!(e.contains("latency") && e.contains(&why), "{e}");
        }
        Support::Yes(_) => assert!(out.status.success(), "{}", stderr(&out)),
    }
    // Another loadgen holds the agent.
    c.open_session("the other loadgen", Duration::from_secs(30))
        .unwrap();
    let out = loadgen(&[
        "run",
        "--scenario",
        "steady",
        "--hosts",
        &hosts,
        "--nodes",
        "3",
    ]);
    assert!(!out.status.success());
    let e = error_line(&out);
    assert!(e.contains("held by the other loadgen"), "{e}");
    c.close_session().unwrap();
}

#[test]
fn an_agent_dying_mid_run_leaves_a_marked_report_with_the_finished_trials() {
    let Some((lab, _down)) = lab_up("hd", 2) else {
        return;
    };
    let dir = out_dir("dies");
    let child = Command::new(LOADGEN)
        .args([
            "run",
            "--scenario",
            "steady",
            "--hosts",
            &format!("lab:{}", lab.name()),
            "--nodes",
            "4",
            "--trials",
            "3",
            "--set",
            "run.warmup_s=1",
            "--duration",
            "2",
            "--out",
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // The first trial ends by closing its session on every agent.
    let h2 = &lab.hosts()[1];
    wait_until("the first trial's end", || {
        fs::read_to_string(&h2.log).is_ok_and(|l| l.contains("session closed by its owner"))
    });
    let pid = h2.agent_pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success(), "the run went on without an agent");
    let e = stderr(&out);
    assert!(e.contains("broke off"), "{e}");
    let r = report(&dir);
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["trials_done"], 1, "{}", r["interruption"]);
    assert!(
        r["interruption"].as_str().unwrap().contains("agent"),
        "{}",
        r["interruption"]
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn one_agent_on_loopback_over_tcp_runs_a_crash_as_a_smoke_test() {
    // No root needed: one agent, its nodes on 127.0.0.1, no faults.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let token = std::env::temp_dir().join(format!("gossip-smoke-token-{}", std::process::id()));
    let _ = fs::remove_file(&token);
    let agent = Command::new(PathBuf::from(LOADGEN).with_file_name("gossip-node"))
        .args(["agent", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--token-file")
        .arg(&token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _agent = KillOnDrop(agent);
    wait_until("the agent's token and port", || {
        token.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let dir = out_dir("smoke");
    let out = loadgen(&[
        "run",
        "--scenario",
        "crash",
        "--hosts",
        &format!("127.0.0.1:{port}"),
        "--token-file",
        token.to_str().unwrap(),
        "--nodes",
        "6",
        "--set",
        "profile.node_timeout_ms=1000",
        "--set",
        "run.warmup_s=2",
        "--duration",
        "12",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&dir);
    assert_eq!(r["world"], "hosts");
    let t = &r["trials"][0];
    assert_eq!(t["hosts"]["agents"][0]["nodes"], "0-5");
    assert!(
        t["detections"][0]["all_fail_s"].as_f64().is_some(),
        "{}",
        t["detections"]
    );
    assert_eq!(r["summary"]["false_fails"], 0);
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(&token);
}
