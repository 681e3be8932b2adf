//! The `gossip-node` binary as a user runs it: the fallback line, clear errors
//! with a failure exit, the metrics endpoint, and a clean stop on SIGTERM.
//! Traffic stays on 127.0.0.1; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn binary_falls_back_with_one_log_line_when_the_probe_is_forced_to_fail() {
    let out = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--nodes",
            "2",
            "--datapath",
            "auto",
            "--duration",
            "1",
        ])
        .env("GOSSIP_FORCE_URING_PROBE_FAIL", "1")
        .output()
        .expect("run gossip-node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("falling back to the mmsg datapath"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one fallback line in: {stderr}");
    assert!(
        lines[0].contains("GOSSIP_FORCE_URING_PROBE_FAIL"),
        "{}",
        lines[0]
    );
}

#[test]
fn binary_refuses_a_port_in_use_with_one_line_and_a_failure_exit() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .args(["--bind", &addr, "--datapath", "mmsg", "--duration", "1"])
        .output()
        .expect("run gossip-node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&addr) && stderr.to_lowercase().contains("in use"),
        "{stderr}"
    );
}

#[test]
fn binary_refuses_a_bad_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .args(["--bind", "127.0.0.1:notaport", "--duration", "1"])
        .output()
        .expect("run gossip-node");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1:notaport"), "{stderr}");
}

#[test]
fn metrics_answer_and_sigterm_stops_the_binary_cleanly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--nodes",
            "4",
            "--datapath",
            "mmsg",
            "--metrics",
            "127.0.0.1:0",
        ])
        .args(["--node-timeout-ms", "2000", "--duration", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gossip-node");
    // Read stderr on a thread, so that waiting for a line is bounded.
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let metrics_at = loop {
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => {
                seen.push(line.clone());
                if let Some(rest) = line.split("metrics at http://").nth(1) {
                    break rest.trim_end_matches("/metrics").to_string();
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no metrics line; stderr so far: {seen:?}");
            }
        }
    };
    // The nodes find each other; the endpoint shows it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut body = String::new();
    while Instant::now() < deadline {
        body = get(&metrics_at, "/metrics");
        if body.contains("gossip_peers{state=\"alive\"} 12\n") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    assert!(body.contains("gossip_nodes 4\n"), "{body}");
    assert!(
        body.contains("gossip_datapath_info{datapath=\"mmsg\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("gossip_peers{state=\"alive\"} 12\n"),
        "four nodes never saw each other: {body}"
    );
    assert!(get(&metrics_at, "/nope").starts_with("HTTP/1.1 404"));
    // SIGTERM: the stop flag is set, the threads finish, the summary is printed.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    assert!(exit.success(), "{exit:?}: {seen:?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("stopped after") && l.contains("4 node(s)")),
        "{seen:?}"
    );
}

fn get(at: &str, path: &str) -> String {
    let mut s = TcpStream::connect(at).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {at}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    out
}

#[test]
fn binary_refuses_bad_slots_and_join_endpoints_with_one_line() {
    for (args, says) in [
        (&["--nodes", "10", "--slots", "3"][..], "--slots"),
        (&["--nodes", "4", "--slots", "0"][..], "--slots"),
        (&["--join", "127.0.0.1:7000#70000"][..], "slot"),
        (&["--join", "localhost#1"][..], "localhost"),
        (&["--seed", "127.0.0.1:7000#70000"][..], "slot"),
        (&["--timer-slack", "20"][..], "--timer-slack"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
            .args(["--bind", "127.0.0.1:0", "--duration", "1"])
            .args(args)
            .output()
            .expect("run gossip-node");
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn binary_runs_shared_sockets_with_offload_on_uring() {
    if let Err(e) = gossip_node::datapath::probe_uring() {
        eprintln!("!!!!! SKIPPED binary_runs_shared_sockets_with_offload_on_uring: io_uring is refused here ({e}) !!!!!");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .args(["--bind", "127.0.0.1:0", "--duration", "1"])
        .args([
            "--slots",
            "4",
            "--nodes",
            "8",
            "--offload",
            "--datapath",
            "uring",
        ])
        .output()
        .expect("run gossip-node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("datapath uring with GSO/GRO"), "{stderr}");
}

#[test]
fn seed_is_a_deprecated_spelling_of_join_with_a_warning() {
    // A node meets a node that is not there: both spellings run, only --seed warns.
    let run = |flag: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--duration",
                "0.2",
                "--datapath",
                "mmsg",
            ])
            .args([flag, "127.0.0.1:9"])
            .output()
            .expect("run gossip-node");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{flag}: exit {:?}: {stderr}",
            out.status
        );
        stderr
    };
    let old = run("--seed");
    assert!(old.contains("--seed is deprecated, use --join"), "{old}");
    let new = run("--join");
    assert!(!new.contains("deprecated"), "{new}");
}
