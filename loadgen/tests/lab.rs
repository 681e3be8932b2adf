//! The network-namespace lab (`gossip-loadgen lab up / down / status`): its
//! topology, that nothing can leave it, that it clears a stale lab, starts
//! and ends its agents, and leaves nothing behind.
//!
//! Needs root and the `ip`, `tc` (Debian: `iproute2`) and `nft` (`nftables`)
//! commands; fails loudly without them, unless GOSSIP_SKIP_ROOT_TESTS=1 is
//! set, which skips, loudly too. Each test uses its own lab name, so the
//! tests run in parallel; each removes its lab even when it fails.
//!
//! Most agent tests run a shell-script stand-in with the agents' command
//! line, and the test itself listens on the agents' sockets: they check the
//! lab's half (the command line, the namespace, the session, the wait, the
//! ending); one runs the real `gossip-node agent`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gossip_loadgen::lab::{self, Lab, UpOptions};

mod support;
use support::{
    is_running, lab_name, loadgen, stderr, stdout, wait_until, DownOnDrop, KillOnDrop, LOADGEN,
};

#[test]
fn three_host_lab_has_its_addresses_no_route_out_and_carries_udp_between_hosts() {
    let Some(name) = lab_name("to") else { return };
    let _cleanup = DownOnDrop(name.clone());
    let mut o = UpOptions::new(&name, 3);
    o.start_agents = false;
    let lab = lab::up(&o).expect("lab up");

    let prefix = format!("gossiplab-{name}-");
    let all = [
        format!("{prefix}lab"),
        format!("{prefix}h1"),
        format!("{prefix}h2"),
        format!("{prefix}h3"),
    ];
    assert_eq!(namespaces(&prefix), all, "the lab's namespaces");
    assert_eq!(Lab::load(&name).expect("lab.json"), lab);
    for (i, h) in lab.hosts().iter().enumerate() {
        assert_eq!(h.name, format!("h{}", i + 1));
        assert_eq!(h.netns, all[i + 1]);
        assert_eq!(h.addr, Ipv4Addr::new(198, 18, 0, i as u8 + 1));
        let addrs = ip(&["-n", &h.netns, "-4", "-o", "addr", "show", "dev", "eth0"]);
        assert!(
            addrs.contains(&format!("inet {}/15 ", h.addr)),
            "{}: {addrs}",
            h.name
        );
    }
    for ns in &all {
        for family in ["-4", "-6"] {
            let routes = ip(&["-n", ns, family, "route", "show"]);
            assert!(!routes.contains("default"), "{ns} {family}: {routes}");
        }
    }
    // The bridge and its ports carry no address (loopback only).
    let bridge_addrs = ip(&["-n", lab.netns(), "-o", "addr", "show"]);
    assert!(
        bridge_addrs
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("lo")),
        "{bridge_addrs}"
    );
    // Nothing in the machine's own namespace.
    let own = ip(&["-4", "-o", "addr", "show"]);
    assert!(!own.contains("198.18."), "machine namespace: {own}");

    // No route out: the kernel refuses to route to a public test address
    // (192.0.2.1, TEST-NET-1; nothing is ever sent to it).
    let out = Command::new("ip")
        .args(["-n", &lab.hosts()[0].netns, "route", "get", "192.0.2.1"])
        .output()
        .expect("run ip route get");
    assert!(
        !out.status.success(),
        "h1 has a route out: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A datagram from h1 reaches a socket bound in h3 at 198.18.0.3.
    let (h1, h3) = (&lab.hosts()[0], &lab.hosts()[2]);
    let receiver = lab::in_netns(&h3.netns, || UdpSocket::bind((h3.addr, 0)))
        .expect("enter h3")
        .expect("bind in h3");
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("read timeout");
    let to = receiver.local_addr().expect("receiver's address");
    lab::in_netns(&h1.netns, || {
        let sender = UdpSocket::bind((h1.addr, 0))?;
        sender.send_to(b"across the lab", to)
    })
    .expect("enter h1")
    .expect("send from h1");
    let mut buf = [0u8; 64];
    let (n, from) = receiver.recv_from(&mut buf).expect("h3 receives");
    assert_eq!(&buf[..n], b"across the lab");
    assert_eq!(from.ip(), std::net::IpAddr::V4(h1.addr));
    // h3's socket is not in the machine's namespace: nothing there has its address.
    assert!(UdpSocket::bind(SocketAddr::from((h3.addr, 0))).is_err());

    let token = lab.token().expect("token");
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    assert_eq!(mode(&lab.token_path()), 0o600, "token file mode");
    assert_eq!(mode(lab.run_dir()), 0o700, "run dir mode");

    let removed = lab::down(&name).expect("lab down");
    assert_eq!(removed.namespaces, all);
    assert_eq!(removed.run_dir.as_deref(), Some(lab.run_dir()));
    assert_nothing_left(&name);
}

#[test]
fn lab_up_twice_clears_the_stale_lab_and_its_processes() {
    let Some(name) = lab_name("tw") else { return };
    let _cleanup = DownOnDrop(name.clone());
    let mut o = UpOptions::new(&name, 2);
    o.start_agents = false;
    let first = lab::up(&o).expect("first lab up");
    let token = first.token().expect("token");
    // A process left in h2 (an agent of a crashed loadgen, say) ...
    let mut stray = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &first.hosts()[1].netns, "sleep", "30"])
            .spawn()
            .expect("start a process in h2"),
    );
    wait_until("the stray process is in h2", || {
        ip(&["netns", "pids", &first.hosts()[1].netns]).contains(&stray.0.id().to_string())
    });
    fs::write(first.run_dir().join("stale"), "x").expect("mark the run dir");
    // ... and a fault rule an agent had put in h1.
    let h1 = &first.hosts()[0].netns;
    let nft = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", h1, "nft"])
            .args(args)
            .output()
            .expect("run nft");
        assert!(out.status.success(), "nft {args:?}: {}", stderr(&out));
        stdout(&out)
    };
    nft(&["add", "table", "inet", "gossipfault"]);
    assert!(nft(&["list", "tables"]).contains("gossipfault"));

    // ... and a second `lab up` of the same name ends it and starts afresh.
    let second = lab::up(&o).expect("second lab up");
    let status = stray.0.wait().expect("the stray process ends");
    assert!(!status.success(), "it was killed: {status}");
    assert!(!second.run_dir().join("stale").exists(), "fresh run dir");
    assert_ne!(second.token().expect("token"), token, "a fresh token");
    assert_eq!(namespaces(&format!("gossiplab-{name}-")).len(), 3);
    assert_eq!(nft(&["list", "tables"]), "", "h1 starts with no rules");

    let removed = lab::down(&name).expect("lab down");
    assert_eq!(removed.namespaces.len(), 3);
    assert_nothing_left(&name);
}

#[test]
fn lab_down_removes_a_lab_whose_state_file_is_damaged_or_gone() {
    let Some(name) = lab_name("dn") else { return };
    let _cleanup = DownOnDrop(name.clone());
    let up = loadgen(&["lab", "up", "--hosts", "2", "--no-agents", "--name", &name]);
    assert!(up.status.success(), "lab up: {}", stderr(&up));
    assert!(stdout(&up).contains("198.18.0.2"), "{}", stdout(&up));
    let run_dir = lab::run_dir(&name);

    fs::write(run_dir.join("lab.json"), "{\"name\": \"").expect("damage lab.json");
    let status = loadgen(&["lab", "status", "--name", &name]);
    assert!(!status.status.success());
    assert!(
        stderr(&status).contains("is damaged"),
        "{}",
        stderr(&status)
    );

    fs::remove_dir_all(&run_dir).expect("lose the run dir");
    let status = loadgen(&["lab", "status", "--name", &name]);
    assert_eq!(
        stderr(&status).trim(),
        format!(
            "gossip-loadgen: no lab named {name} is up (run `gossip-loadgen lab up --hosts H \
             --name {name}`); 3 namespace(s) of it are left (`gossip-loadgen lab down --name \
             {name}` removes them)"
        )
    );

    let down = loadgen(&["lab", "down", "--name", &name]);
    assert!(down.status.success(), "lab down: {}", stderr(&down));
    assert!(
        stdout(&down).starts_with(&format!("removed lab {name}: 3 namespace(s)")),
        "{}",
        stdout(&down)
    );
    assert_nothing_left(&name);
    let again = loadgen(&["lab", "down", "--name", &name]);
    assert!(again.status.success());
    assert_eq!(
        stdout(&again).trim(),
        format!("no lab named {name} was up; nothing to remove")
    );
}

#[test]
fn lab_up_starts_detached_agents_in_their_hosts_and_lab_down_ends_them() {
    let Some(name) = lab_name("ag") else { return };
    let _cleanup = DownOnDrop(name.clone());
    let stand_in = StandIn::new(&name, "exec sleep 30");
    let run_dir = lab::run_dir(&name);
    // The test listens on each agent's socket (the stand-in cannot) once
    // that agent says it is ready, as a real agent listens once it runs in
    // its namespace.
    let listeners = std::thread::spawn({
        let run_dir = run_dir.clone();
        move || {
            (1..=3)
                .map(|i| {
                    let log = run_dir.join(format!("h{i}.log"));
                    wait_until("the stand-in's log", || {
                        fs::read_to_string(&log).is_ok_and(|l| l.contains("ready"))
                    });
                    UnixListener::bind(run_dir.join(format!("h{i}.sock"))).expect("listen")
                })
                .collect::<Vec<_>>()
        }
    });
    let up = loadgen(&[
        "lab",
        "up",
        "--hosts",
        "3",
        "--name",
        &name,
        "--agent",
        stand_in.path.to_str().expect("a UTF-8 path"),
    ]);
    let _listeners = listeners.join().expect("listeners");
    assert!(up.status.success(), "lab up: {}", stderr(&up));

    // `lab up` has exited; its agents run on, each in its host's namespace
    // and in a session of its own, with the agreed command line.
    let lab = Lab::load(&name).expect("lab.json");
    let status = stdout(&loadgen(&["lab", "status", "--name", &name]));
    let mut pids = Vec::new();
    for h in lab.hosts() {
        let pid = h.agent_pid.expect("an agent pid");
        pids.push(pid);
        assert_eq!(lab.is_agent_alive(h), Some(true), "{}", h.name);
        assert!(status.contains(&format!("pid {pid} alive")), "{status}");
        assert_eq!(session_of(pid), pid, "{}: its own session", h.name);
        let inet = format!("inet {}/15", h.addr);
        let log = fs::read_to_string(&h.log).expect("the agent's log");
        let want = format!(
            "args: agent --listen unix:{} --token-file {} --bind-ip {} --allow-faults",
            h.socket.display(),
            lab.token_path().display(),
            h.addr
        );
        assert!(log.contains(&want), "{}: {log}", h.name);
        assert!(log.contains(&inet), "{}: {log}", h.name);
    }

    let down = loadgen(&["lab", "down", "--name", &name]);
    assert!(down.status.success(), "lab down: {}", stderr(&down));
    assert_agents_ended(&stdout(&down), &pids);
    for pid in pids {
        assert!(!is_running(pid), "agent {pid} still runs");
    }
    assert_nothing_left(&name);
}

#[test]
fn lab_up_starts_real_agents_that_lab_down_ends() {
    let Some(name) = lab_name("ra") else { return };
    // `lab up` takes the gossip-node beside gossip-loadgen, as the
    // workspace's build leaves it (`cargo test --workspace` builds it).
    let agent = Path::new(LOADGEN).with_file_name("gossip-node");
    let has_agent = Command::new(&agent)
        .args(["agent", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_agent,
        "{} is missing or stale (no `agent` subcommand): build it with cargo build -p gossip-node",
        agent.display()
    );
    let _cleanup = DownOnDrop(name.clone());
    let up = loadgen(&["lab", "up", "--hosts", "3", "--name", &name]);
    assert!(up.status.success(), "lab up: {}", stderr(&up));
    let lab = Lab::load(&name).expect("lab.json");
    let mut pids = Vec::new();
    for h in lab.hosts() {
        assert_eq!(lab.is_agent_alive(h), Some(true), "{}", h.name);
        assert_eq!(mode(&h.socket) & 0o077, 0, "{}: root's socket only", h.name);
        pids.push(h.agent_pid.expect("an agent pid"));
    }
    let down = loadgen(&["lab", "down", "--name", &name]);
    assert!(down.status.success(), "lab down: {}", stderr(&down));
    assert_agents_ended(&stdout(&down), &pids);
    for pid in pids {
        assert!(!is_running(pid), "agent {pid} still runs");
    }
    assert_nothing_left(&name);
}

#[test]
fn an_agent_that_never_listens_fails_lab_up_naming_its_host_and_leaves_nothing() {
    let Some(name) = lab_name("nl") else { return };
    let _cleanup = DownOnDrop(name.clone());
    let stand_in = StandIn::new(&name, "echo 'no socket today'; exec sleep 30");
    let mut o = UpOptions::new(&name, 2);
    o.agent = Some(stand_in.path.clone());
    o.agent_wait = Duration::from_millis(500);
    let e = lab::up(&o).expect_err("no agent listens").to_string();
    assert!(
        e.starts_with("lab: the agent of h1 did not listen on") && e.contains("no socket today"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    for pid in stand_in.pids() {
        assert!(!is_running(pid), "agent {pid} still runs");
    }
    assert_nothing_left(&name);
}

#[test]
fn lab_refuses_bad_names_and_host_counts_in_one_line() {
    for args in [
        &["lab", "up", "--hosts", "3", "--name", "Nope"][..],
        &["lab", "up", "--hosts", "3", "--name", "toolongname"],
        &["lab", "up", "--hosts", "0", "--name", "ok"],
        &["lab", "up", "--hosts", "1001", "--name", "ok"],
        &["lab", "down", "--name", "a/b"],
        &["lab", "status", "--name", ""],
    ] {
        let out = loadgen(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("gossip-loadgen: lab: "), "{args:?}: {err}");
    }
}

#[test]
fn lab_up_names_the_debian_package_of_a_missing_tool() {
    let Some(name) = lab_name("mt") else { return };
    // A PATH holding `ip` and `tc` but not `nft`.
    let dir = std::env::temp_dir().join(format!("gossiplab-test-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a PATH dir");
    for tool in ["ip", "tc"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("`{tool}` is on PATH (checked above)"));
        std::os::unix::fs::symlink(found, dir.join(tool)).expect("link a tool");
    }
    let out = Command::new(LOADGEN)
        .args(["lab", "up", "--hosts", "1", "--no-agents", "--name", &name])
        .env("PATH", &dir)
        .output()
        .expect("run gossip-loadgen");
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "gossip-loadgen: lab: `nft` not found; install the Debian package nftables \
         (apt-get install nftables)\n"
    );
    assert_nothing_left(&name);
}

/// A stand-in agent: a shell script that logs its arguments, its
/// namespace's addresses and its pid (to a file outside the run dir), says
/// `ready`, then runs `tail`.
struct StandIn {
    dir: PathBuf,
    path: PathBuf,
}

impl StandIn {
    fn new(name: &str, tail: &str) -> StandIn {
        let dir = std::env::temp_dir().join(format!("gossiplab-test-{name}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("stand-in dir");
        let path = dir.join("agent");
        fs::write(
            &path,
            format!(
                "#!/bin/sh\n\
                 echo \"args: $*\"\n\
                 ip -4 -o addr show dev eth0\n\
                 echo $$ >> {}\n\
                 echo ready\n\
                 {tail}\n",
                dir.join("pids").display()
            ),
        )
        .expect("write the stand-in");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        StandIn { dir, path }
    }

    fn pids(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("pids"))
            .unwrap_or_default()
            .split_whitespace()
            .map(|p| p.parse().expect("a pid"))
            .collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        for pid in self.pids() {
            if is_running(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn assert_nothing_left(name: &str) {
    let prefix = format!("gossiplab-{name}-");
    assert_eq!(namespaces(&prefix), Vec::<String>::new(), "namespaces left");
    assert!(!lab::run_dir(name).exists(), "run dir left");
}

/// Namespaces named `prefix*`, the lab's first, then h1, h2, ...
fn namespaces(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect();
    names.sort_by_key(|n| (n.len(), n.clone()));
    names.sort_by_key(|n| !n.ends_with("-lab"));
    names
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
    stdout(&out)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// The session id of `pid` (field 6 of /proc/<pid>/stat).
fn session_of(pid: u32) -> u32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // The command name (field 2) may hold spaces; fields after it do not.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    after
        .split_whitespace()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .expect("a session id")
}

/// Every agent's pid is among the processes `lab down` says it ended (an
/// agent just started may still have a child of its own there, e.g. the
/// `nft` that clears stale tables, which is ended too: "5 process(es)" once
/// under CI load).
fn assert_agents_ended(said: &str, agents: &[u32]) {
    let ended: Vec<u32> = said
        .split_once("(pids ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list.split(' ').filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    for pid in agents {
        assert!(
            ended.contains(pid),
            "agent {pid} not among those ended: {said}"
        );
    }
}
