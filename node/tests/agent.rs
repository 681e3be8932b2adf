//! `gossip-node agent` as a loadgen meets it: the built binary on loopback
//! (or in a throwaway network namespace pair for faults), driven through
//! `gossip_node::agent::AgentClient` and, for bad input, raw HTTP.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use gossip_node::agent::api::{
    ClusterSpec, EventJson, EventRecord, Faults, KeyFile, LossRule, Support,
};
use gossip_node::agent::{clock_offset, AgentAddr, AgentClient};
use gossip_node::datapath::sys::monotonic_us;
use gossip_node::profile::ProfileParams;

/// An agent process of this test, killed and its files removed when dropped.
struct Agent {
    child: Child,
    addr: AgentAddr,
    token: String,
    dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts the agent (under `prefix`, e.g. `ip netns exec NS`) with
    /// `args`; `listen` is its `--listen` (port 0: the one it reports).
    fn start(tag: &str, prefix: &[&str], listen: &str, args: &[&str]) -> Agent {
        let dir = std::env::temp_dir().join(format!("gossip-agent-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let listen = listen.replace("DIR", dir.to_str().unwrap());
        let token_file = dir.join("token");
        let bin = env!("CARGO_BIN_EXE_gossip-node");
        let mut cmd = match prefix.split_first() {
            Some((p, rest)) => {
                let mut c = Command::new(p);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(["agent", "--listen", &listen, "--token-file"])
            .arg(&token_file)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gossip-node agent");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[agent] {line}");
                if let Some(at) = line.split("listening on ").nth(1) {
                    let _ = tx.send(at.split(',').next().unwrap_or_default().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let at = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the agent says where it listens");
        let token = std::fs::read_to_string(&token_file)
            .unwrap()
            .trim()
            .to_string();
        Agent {
            child,
            addr: at.parse().unwrap(),
            token,
            dir,
            log,
        }
    }

    fn client(&self) -> AgentClient {
        AgentClient::connect(&self.addr, &self.token).expect("connect to the agent")
    }

    fn logged(&self, what: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(what))
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One raw HTTP/1.1 request; the status code and body.
fn raw(agent: &Agent, head: &str, body: &[u8]) -> (u16, String) {
    let AgentAddr::Tcp(addr) = &agent.addr else {
        panic!("raw requests go over TCP")
    };
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(format!("{head}\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes());
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

fn spec(nodes: usize) -> ClusterSpec {
    ClusterSpec {
        profile: ProfileParams::default().with("node_timeout_ms", "1000"),
        nodes,
        held: 0,
        join: Vec::new(),
        datapath: "auto".into(),
        threads: 1,
        slots: 1,
        offload: false,
        rng_seed: 7,
        timer_slack_us: 0,
        event_queue: 4_096,
        ramp_ms: 0,
        keyring: None,
        join_cookies: false,
    }
}

#[test]
fn requests_without_the_token_and_bad_input_are_refused_in_one_line() {
    let agent = Agent::start("bad", &[], "127.0.0.1:0", &[]);
    let auth = format!("Authorization: Bearer {}", agent.token);
    let (code, body) = raw(&agent, "GET /v1/hello HTTP/1.1", b"");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (code, _) = raw(
        &agent,
        "GET /v1/hello HTTP/1.1\r\nAuthorization: Bearer nope",
        b"",
    );
    assert_eq!(code, 401);
    let (code, body) = raw(&agent, &format!("GET /v1/nowhere HTTP/1.1\r\n{auth}"), b"");
    assert_eq!(
        (code, body.contains("no route /v1/nowhere")),
        (404, true),
        "{body}"
    );
    let (code, _) = raw(&agent, &format!("PUT /v1/hello HTTP/1.1\r\n{auth}"), b"");
    assert_eq!(code, 405);
    let garbage = b"{\"owner\": 3";
    let (code, body) = raw(
        &agent,
        &format!(
            "POST /v1/session HTTP/1.1\r\n{auth}\r\nContent-Length: {}",
            garbage.len()
        ),
        garbage,
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("malformed JSON body") && !body.contains('\n'),
        "{body}"
    );
    let (code, _) = raw(
        &agent,
        &format!(
            "POST /v1/session HTTP/1.1\r\n{auth}\r\nContent-Length: {}",
            2 << 20
        ),
        b"{",
    );
    assert_eq!(code, 413);
    // Out of range node, wrong session, no session.
    let mut c = agent.client();
    let (code, _) = raw(
        &agent,
        &format!("POST /v1/cluster HTTP/1.1\r\n{auth}\r\nContent-Length: 2"),
        b"{}",
    );
    assert_eq!(code, 409, "no session yet");
    c.open_session("bad-input test", Duration::from_secs(30))
        .unwrap();
    c.start_cluster(&spec(1)).unwrap();
    let e = c.kill(7).unwrap_err().to_string();
    assert!(
        e.contains("node 7 is out of range: this cluster has 1 node(s)"),
        "{e}"
    );
    let (code, body) = raw(
        &agent,
        &format!("POST /v1/nodes/0/kill HTTP/1.1\r\n{auth}\r\nx-gossip-session: not-it"),
        b"",
    );
    assert_eq!(code, 403, "{body}");
    let e = c.start_cluster(&spec(1)).unwrap_err().to_string();
    assert!(e.contains("a cluster already runs"), "{e}");
    // Faults are off without --allow-faults.
    let e = c
        .set_faults(&Faults {
            loss: vec![LossRule {
                from: vec!["127.0.0.2".parse().unwrap()],
                probability: 0.5,
            }],
            ..Faults::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("--allow-faults"), "{e}");
    c.close_session().unwrap();
}

fn joined_pairs(log: &[EventRecord], ids: &[u64]) -> HashSet<(usize, usize)> {
    log.iter()
        .filter_map(|e| match e.event {
            EventJson::PeerJoined { id } => ids.iter().position(|&x| x == id).map(|x| (e.node, x)),
            _ => None,
        })
        .collect()
}

/// Reads `rx` into `log` until `done` holds or `timeout` passes.
fn collect_until(
    rx: &mpsc::Receiver<EventRecord>,
    log: &mut Vec<EventRecord>,
    timeout: Duration,
    done: impl Fn(&[EventRecord]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done(log) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if let Ok(e) = rx.recv_timeout(left.min(Duration::from_millis(100))) {
            log.push(e);
        }
    }
}

#[test]
fn a_session_runs_six_nodes_streams_their_events_and_holds_the_agent() {
    let agent = Agent::start("cluster", &[], "127.0.0.1:0", &[]);
    let mut c = agent.client();
    let before = monotonic_us();
    c.open_session("cluster test", Duration::from_secs(30))
        .unwrap();
    let started = c.start_cluster(&spec(6)).unwrap();
    assert_eq!(started.nodes.len(), 6);
    let ids: Vec<u64> = started.nodes.iter().map(|p| p.id).collect();
    let stream = c.events().unwrap();
    let e = c.events().unwrap_err().to_string();
    assert!(e.contains("an event stream is already open"), "{e}");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for e in stream {
            if tx.send(e.expect("a readable event")).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    assert!(
        collect_until(&rx, &mut log, Duration::from_secs(15), |l| joined_pairs(
            l, &ids
        )
        .len()
            == 30),
        "only {} of 30 joins streamed",
        joined_pairs(&log, &ids).len()
    );
    // Event times are on the agent's clock: this host's monotonic clock.
    let now = monotonic_us();
    assert!(
        log.iter().all(|e| e.at_us >= before && e.at_us <= now),
        "event times off the clock"
    );
    // A second loadgen is refused while this one holds the agent.
    let e = agent
        .client()
        .open_session("intruder", Duration::from_secs(5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("agent held by cluster test (session"), "{e}");
    assert_eq!(
        agent.client().hello().unwrap().session.unwrap().owner,
        "cluster test"
    );
    // Kill node 3: PFAIL then FAIL at every survivor.
    c.kill(3).unwrap();
    let seen = |l: &[EventRecord], fail: bool| -> HashSet<usize> {
        l.iter()
            .filter(|e| match e.event {
                EventJson::PeerFail { id, .. } => fail && id == ids[3],
                EventJson::PeerPfail { id } => !fail && id == ids[3],
                _ => false,
            })
            .map(|e| e.node)
            .collect()
    };
    let survivors: HashSet<usize> = [0, 1, 2, 4, 5].into();
    assert!(
        collect_until(&rx, &mut log, Duration::from_secs(15), |l| seen(l, true)
            == survivors),
        "FAIL of node 3 streamed from {:?} only",
        seen(&log, true)
    );
    // A survivor that hears of the FAIL before its own timeout skips PFAIL;
    // the FAIL needs a quorum of PFAIL reports, so some survivors saw one.
    assert!(!seen(&log, false).is_empty(), "FAIL with no PFAIL streamed");
    let counters = c.counters().unwrap();
    assert_eq!(counters.len(), 6);
    let alive = counters[0].as_ref().expect("node 0 published its counters");
    assert!(alive.running && alive.sent.iter().map(|t| t[0]).sum::<u64>() > 0);
    assert!(c.holders(ids[0]).unwrap().len() >= 4);
    let r = c.resources().unwrap();
    assert!(r.ticks > 0 && r.cpu_us > 0, "{r:?}");
    let metrics = c.metrics().unwrap();
    assert!(metrics.contains("gossip_nodes 5"), "{metrics}");
    let last = c.stop_cluster().unwrap();
    assert!(last.ticks >= r.ticks);
    // The stream ends with the cluster.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        reader.is_finished(),
        "the event stream ended with the cluster"
    );
    c.close_session().unwrap();
    assert!(agent.client().hello().unwrap().session.is_none());
}

/// Sum of `gossip_auth_refused_total` in a Prometheus text.
fn auth_refused(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("gossip_auth_refused_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_keyed_cluster_rotates_its_key_through_the_api_and_no_secret_leaks() {
    let agent = Agent::start("rekey", &[], "127.0.0.1:0", &[]);
    let mut c = agent.client();
    c.open_session("rekey test", Duration::from_secs(30))
        .unwrap();
    let (k1, k2) = ("1a".repeat(32), "2b".repeat(32));
    let keyed = |text: &str| KeyFile(format!("# test keys\n{text}"));
    let mut spec = spec(4);
    spec.keyring = Some(keyed(&format!("key 1 {k1}\n")));
    let started = c.start_cluster(&spec).unwrap();
    let ids: Vec<u64> = started.nodes.iter().map(|p| p.id).collect();
    let stream = c.events().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for e in stream {
            if tx.send(e.expect("a readable event")).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    assert!(
        collect_until(&rx, &mut log, Duration::from_secs(15), |l| joined_pairs(
            l, &ids
        )
        .len()
            == 12),
        "a keyed cluster of 4 formed only {} of 12 links",
        joined_pairs(&log, &ids).len()
    );
    // The rotation's three steps, each a whole key file: accept, switch, retire.
    let steps = [
        (
            format!("key 1 {k1}\nkey 2 {k2}\nsend 1\n"),
            1,
            vec![1, 2],
            vec![],
        ),
        (
            format!("key 1 {k1}\nkey 2 {k2}\nsend 2\n"),
            2,
            vec![2, 1],
            vec![],
        ),
        (format!("key 2 {k2}\nretired 1\n"), 2, vec![2], vec![1]),
    ];
    for (text, sending, accepted, retired) in steps {
        let set = c.set_keyring(&keyed(&text)).unwrap();
        assert_eq!(
            (set.switched, set.sending, set.accepted, set.retired),
            (4, sending, accepted, retired)
        );
        // Longer than a ping interval (node_timeout / 2): every link carries
        // datagrams under the new keyring before the next step.
        collect_until(&rx, &mut log, Duration::from_millis(700), |_| false);
    }
    collect_until(&rx, &mut log, Duration::from_millis(1_200), |_| false);
    let pfails: Vec<&EventRecord> = log
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                EventJson::PeerPfail { .. } | EventJson::PeerFail { .. }
            )
        })
        .collect();
    assert!(pfails.is_empty(), "the rotation caused {pfails:?}");
    assert_eq!(auth_refused(&c.metrics().unwrap()), 0, "datagrams refused");
    // A bad key file is refused in one line that does not repeat it.
    let e = c
        .set_keyring(&keyed(&format!("key {k2} 2\n")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && !e.contains(&k2), "{e}");
    assert!(!format!("{:?}", keyed(&k1)).contains(&k1));
    c.stop_cluster().unwrap();
    // A cluster started without a key cannot gain one.
    c.start_cluster(&self::spec(2)).unwrap();
    let e = c
        .set_keyring(&keyed(&format!("key 1 {k1}\n")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("started without a key") && !e.contains(&k1),
        "{e}"
    );
    c.stop_cluster().unwrap();
    c.close_session().unwrap();
    let log = agent.log.lock().unwrap();
    assert!(
        !log.iter().any(|l| l.contains(&k1) || l.contains(&k2)),
        "a key in the agent's log"
    );
}

#[test]
fn a_silent_loadgen_loses_the_agent_within_its_lease() {
    let agent = Agent::start("lease", &[], "127.0.0.1:0", &[]);
    let mut c = agent.client();
    c.open_session("lease test", Duration::from_secs(1))
        .unwrap();
    let started = c.start_cluster(&spec(3)).unwrap();
    drop(c);
    let silent = Instant::now();
    let mut watcher = agent.client();
    while watcher.hello().unwrap().session.is_some() {
        assert!(
            silent.elapsed() < Duration::from_secs(3),
            "the lease never ran out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        silent.elapsed() < Duration::from_millis(2_200),
        "{:?}",
        silent.elapsed()
    );
    assert!(agent.logged("lease of session"));
    for p in &started.nodes {
        UdpSocket::bind(p.addr).unwrap_or_else(|e| panic!("{} still bound: {e}", p.addr));
    }
}

#[test]
fn the_clock_offset_estimate_holds_the_injected_offset() {
    let agent = Agent::start("clock", &[], "127.0.0.1:0", &["--clock-offset-ms", "5000"]);
    let mut c = agent.client();
    let est = clock_offset(&mut c, 20).unwrap();
    eprintln!("{est:?}");
    assert!(
        est.offset_us.abs_diff(5_000_000) <= est.uncertainty_us,
        "{est:?} misses the injected 5 s"
    );
    assert!(
        est.uncertainty_us < 5_000,
        "loopback round trips are short: {est:?}"
    );
}

// ---- Faults on real packets, in a namespace pair ----

/// Two namespaces joined by a veth pair: `a` 198.18.250.1, `b` 198.18.250.2.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn create() -> Pair {
        let a = format!("gat-{}-a", std::process::id());
        let b = format!("gat-{}-b", std::process::id());
        let pair = Pair { a, b };
        for ns in [&pair.a, &pair.b] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
            run("ip", &["netns", "add", ns]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        run(
            "ip",
            &[
                "-n", &pair.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
                &pair.b,
            ],
        );
        for (ns, dev, ip) in [
            (&pair.a, "va", "198.18.250.1/30"),
            (&pair.b, "vb", "198.18.250.2/30"),
        ] {
            run("ip", &["-n", ns, "addr", "add", ip, "dev", dev]);
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    fn tables(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.a, "nft", "list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Packets counted by the commented rules of namespace `a`.
    fn counters(&self) -> (u64, u64) {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.a, "nft", "-j", "list", "table", "inet", "gatest",
            ])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut arrived = 0;
        let mut passed = 0;
        for item in json["nftables"].as_array().unwrap() {
            let rule = &item["rule"];
            let Some(comment) = rule["comment"].as_str() else {
                continue;
            };
            let packets = rule["expr"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|e| e["counter"]["packets"].as_u64())
                .unwrap();
            match comment {
                "arrived" => arrived = packets,
                "passed" => passed = packets,
                _ => {}
            }
        }
        (arrived, passed)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).output();
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("`{program}` (Debian: iproute2, nftables) and root needed: {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn netem_available() -> bool {
    std::path::Path::new("/sys/module/sch_netem").exists()
        || Command::new("modprobe")
            .args(["-n", "-q", "sch_netem"])
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn loss_from_a_peer_drops_its_share_of_real_datagrams_and_goes_with_the_agent() {
    let pair = Pair::create();
    // Counters before (priority -10) and after (10) the agent's chain (0),
    // and the table of an agent that died (no such pid) for this one to clear.
    let orphan = "gossip_agent_4194399";
    let rules = "table inet gossip_agent_4194399 {
        chain input { type filter hook input priority 0; policy accept;
            meta l4proto udp drop
        }
    }
    table inet gatest {
        chain before { type filter hook input priority -10; policy accept;
            udp dport 9 counter comment \"arrived\"
        }
        chain after { type filter hook input priority 10; policy accept;
            udp dport 9 counter comment \"passed\"
        }
    }";
    let mut nft = Command::new("ip")
        .args(["netns", "exec", &pair.a, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    nft.stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success());
    let mut agent = Agent::start(
        "faults",
        &["ip", "netns", "exec", &pair.a],
        "unix:DIR/agent.sock",
        &["--allow-faults", "--bind-ip", "198.18.250.1"],
    );
    assert!(!pair.tables().contains(orphan), "{}", pair.tables());
    let sock = agent.dir.join("agent.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the control socket is private");
    let mut c = agent.client();
    let hello = c.hello().unwrap();
    assert!(matches!(hello.faults.loss, Support::Yes(_)), "{hello:?}");
    c.open_session("faults test", Duration::from_secs(30))
        .unwrap();
    let applied = c
        .set_faults(&Faults {
            loss: vec![LossRule {
                from: vec!["198.18.250.2".parse().unwrap()],
                probability: 0.3,
            }],
            ..Faults::default()
        })
        .unwrap();
    assert!(applied.mechanisms[0].contains("nftables"), "{applied:?}");
    let table = format!("gossip_agent_{}", agent.child.id());
    assert!(pair.tables().contains(&table), "{}", pair.tables());
    let sent = Command::new("ip")
        .args(["netns", "exec", &pair.b, "bash", "-c"])
        .arg("for i in $(seq 2000); do echo x > /dev/udp/198.18.250.1/9; done 2>/dev/null; true")
        .status()
        .unwrap();
    assert!(sent.success());
    let (arrived, passed) = pair.counters();
    let rate = 1.0 - passed as f64 / arrived as f64;
    eprintln!(
        "arrived {arrived}, passed {passed}: dropped {:.1} %",
        rate * 100.0
    );
    assert!(arrived >= 1_900, "{arrived} of 2000 arrived");
    assert!(
        (0.24..=0.36).contains(&rate),
        "dropped {rate:.3}, configured 0.3"
    );
    // Latency: refused with the reason where the kernel has no netem.
    let latency = c.set_faults(&Faults {
        latency_ms: 20.0,
        ..Faults::default()
    });
    if netem_available() {
        latency.unwrap();
    } else {
        let e = latency.unwrap_err().to_string();
        assert!(
            e.contains("latency: the kernel has no sch_netem qdisc (tc netem unavailable)"),
            "{e}"
        );
        assert!(
            pair.tables().contains(&table),
            "a refused set leaves the applied one"
        );
    }
    c.clear_faults().unwrap();
    assert!(
        !pair.tables().contains(&table),
        "DELETE /v1/faults removes the table"
    );
    c.set_faults(&Faults {
        loss: vec![LossRule {
            from: vec!["198.18.250.2".parse().unwrap()],
            probability: 1.0,
        }],
        ..Faults::default()
    })
    .unwrap();
    assert!(pair.tables().contains(&table));
    assert!(agent.terminate(), "the agent exits on SIGTERM");
    assert!(
        !pair.tables().contains(&table),
        "the table goes with the agent"
    );
    assert!(!sock.exists(), "the socket file goes with the agent");
}

#[test]
fn a_stale_unix_socket_is_replaced_and_bad_agent_arguments_refused_in_one_line() {
    let stale =
        std::env::temp_dir().join(format!("gossip-agent-{}-stale.sock", std::process::id()));
    let _ = std::fs::remove_file(&stale);
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists(), "a stale socket file is left behind");
    let listen = format!("unix:{}", stale.display());
    let agent = Agent::start("stale", &[], &listen, &[]);
    assert!(agent.client().hello().unwrap().session.is_none());
    drop(agent);
    let _ = std::fs::remove_file(&stale);
    for (listen, says) in [
        ("nowhere", "neither host:port"),
        ("localhost:7070", "not a name"),
        ("127.0.0.1:0", "token file /nonexistent-dir/token"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gossip-node"))
            .args([
                "agent",
                "--listen",
                listen,
                "--token-file",
                "/nonexistent-dir/token",
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(says),
            "{listen}: {stderr}"
        );
        if listen.starts_with("127") {
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        }
    }
}
