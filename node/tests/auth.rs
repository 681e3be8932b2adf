//! Cluster keys on real UDP (127.0.0.1): a keyed cluster forms on both
//! datapaths and behind shared sockets with GSO/GRO; a sender without the key
//! (MEET, PING, a forged FAIL) and one with a wrong key are refused, counted
//! and never answered, and membership stays whole; a three-step key rotation
//! on the running nodes causes no PFAIL and no refusal.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gossip_core::auth::{Key, Keyring};
use gossip_core::wire::{self, Header, MessageType};
use gossip_core::{Config, NodeId, PeerState};
use gossip_node::datapath::{probe_uring, DatapathChoice};
use gossip_node::runtime::{Runtime, RuntimeConfig};

const NODES: usize = 8;
const NODE_TIMEOUT: Duration = Duration::from_millis(1_500);
const WITHIN: Duration = Duration::from_secs(30);

fn ring(id: u8) -> Keyring {
    Keyring::new(&Key::new(id, [id; 32]))
}

fn start(datapath: DatapathChoice, slots: usize, offload: bool, seed: u64) -> Runtime {
    start_with(datapath, slots, offload, seed, false)
}

fn start_with(
    datapath: DatapathChoice,
    slots: usize,
    offload: bool,
    seed: u64,
    join_cookies: bool,
) -> Runtime {
    Runtime::start(RuntimeConfig {
        datapath,
        threads: 2,
        node: Config::builder()
            .node_timeout(NODE_TIMEOUT)
            .build()
            .unwrap(),
        binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 0, NODES / slots),
        slots,
        offload,
        rng_seed: seed,
        keyring: Some(Arc::new(ring(1))),
        join_cookies,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !check() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Every node sees every other alive, and none suspects anyone.
fn whole(rt: &Runtime) -> bool {
    (0..NODES).all(|i| {
        rt.with_node(i, |n| {
            n.peers().len() == NODES - 1 && n.peers().iter().all(|p| p.state() == PeerState::Alive)
        }) == Some(true)
    })
}

fn any_suspected(rt: &Runtime) -> bool {
    (0..NODES).any(|i| {
        rt.with_node(i, |n| {
            n.peers()
                .iter()
                .any(|p| matches!(p.state(), PeerState::Pfail | PeerState::Fail))
        }) != Some(false)
    })
}

/// Forms, is attacked, stays whole, shuts down.
fn keyed_cluster_refuses_strangers(rt: Runtime) {
    assert!(eventually(WITHIN, || whole(&rt)), "no full membership");
    let member = rt.with_node(1, |n| n.id()).unwrap();
    let victim = rt.with_node(2, |n| n.id()).unwrap();
    let endpoints = rt.endpoints().to_vec();
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 256];
    let (mut clear, mut forged, mut bytes_in) = (0u64, 0u64, 0usize);
    // The cluster's key id, other secret bytes.
    let wrong = Keyring::new(&Key::new(1, [0xee; 32]));
    for (k, e) in endpoints.iter().enumerate() {
        for kind in [MessageType::Meet, MessageType::Ping, MessageType::Fail] {
            let h = Header {
                kind,
                flags: 0,
                src_slot: 0,
                dst_slot: e.slot(),
                // A FAIL claims to come from a member; the rest from a stranger.
                sender: if kind == MessageType::Fail {
                    member
                } else {
                    NodeId(0xbad0 + k as u64)
                },
                incarnation: 0,
            };
            let len = wire::encode(&mut buf, &h, &[], Some((victim, 0))).unwrap();
            attacker.send_to(&buf[..len], e.addr()).unwrap();
            clear += 1;
            bytes_in += len;
            let sealed = wrong
                .seal(h.sender, 1 << 40, k as u64, &mut buf, len)
                .unwrap();
            attacker.send_to(&buf[..sealed], e.addr()).unwrap();
            forged += 1;
            bytes_in += sealed;
        }
    }
    let metrics = rt.metrics();
    let counted = eventually(Duration::from_secs(5), || {
        let a = metrics.total().stats.auth;
        a.unauthenticated == clear && a.bad_tag == forged
    });
    let a = metrics.total().stats.auth;
    assert!(
        counted,
        "sent {clear} clear and {forged} forged, counted {a:?}"
    );
    let mut got = 0usize;
    while let Ok((n, _)) = attacker.recv_from(&mut [0u8; 2048]) {
        got += n;
    }
    assert_eq!(got, 0, "{bytes_in} bytes in drew {got} bytes out");
    assert!(!any_suspected(&rt), "a forged FAIL took hold");
    assert!(whole(&rt));
    assert_eq!(metrics.total().stats.decode_errors_total(), 0);
    rt.shutdown().unwrap();
}

fn uring_available(test: &str) -> bool {
    match probe_uring() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("!!!!! SKIPPED {test}: io_uring is refused here ({e}) !!!!!");
            false
        }
    }
}

#[test]
fn a_keyed_cluster_refuses_strangers_on_mmsg() {
    keyed_cluster_refuses_strangers(start(DatapathChoice::Mmsg, 1, false, 11));
}

#[test]
fn a_keyed_cluster_refuses_strangers_on_uring() {
    if uring_available("a_keyed_cluster_refuses_strangers_on_uring") {
        keyed_cluster_refuses_strangers(start(DatapathChoice::Uring, 1, false, 12));
    }
}

#[test]
fn a_keyed_cluster_behind_shared_sockets_with_gso_gro_refuses_strangers() {
    keyed_cluster_refuses_strangers(start(DatapathChoice::Mmsg, NODES / 2, true, 13));
}

#[test]
fn a_keyed_cluster_requiring_join_cookies_forms_and_refuses_strangers() {
    keyed_cluster_refuses_strangers(start_with(DatapathChoice::Mmsg, 1, false, 15, true));
}

#[test]
fn a_key_rotation_on_running_nodes_suspects_no_one_and_refuses_nothing() {
    let rt = start(DatapathChoice::Mmsg, 1, false, 14);
    assert!(eventually(WITHIN, || whole(&rt)), "no full membership");
    let mut step = ring(1);
    let steps: [&dyn Fn(&mut Keyring); 3] = [
        &|k| k.accept(&Key::new(2, [2; 32])).unwrap(),
        &|k| k.set_sending(2).unwrap(),
        &|k| k.retire(1).unwrap(),
    ];
    for change in steps {
        change(&mut step);
        assert_eq!(rt.set_keyring(Arc::new(step.clone())), NODES);
        // Two node timeouts' worth of traffic under each step.
        let until = Instant::now() + 2 * NODE_TIMEOUT;
        while Instant::now() < until {
            assert!(!any_suspected(&rt), "a PFAIL during the rotation");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let a = rt.metrics().total().stats.auth;
    assert_eq!(a.total(), 0, "{a:?}");
    assert!(whole(&rt));
    for i in 0..NODES {
        let sending = rt.with_node(i, |n| n.keyring().map(|k| k.sending()));
        assert_eq!(sending, Some(Some(2)));
    }
    rt.shutdown().unwrap();
}

#[test]
fn a_sender_address_is_never_answered_with_more_bytes_than_it_sent() {
    // Unkeyed and keyed alike: a blind spoofer's MEETs and PINGs (from an
    // address it does not own: here, a socket that only counts) draw at most
    // as many bytes as they carried.
    for keyed in [false, true] {
        let rt = Runtime::start(RuntimeConfig {
            datapath: DatapathChoice::Mmsg,
            threads: 1,
            binds: RuntimeConfig::consecutive("127.0.0.1".parse().unwrap(), 0, 2),
            keyring: keyed.then(|| Arc::new(ring(1))),
            ..RuntimeConfig::default()
        })
        .unwrap();
        let victim = UdpSocket::bind("127.0.0.1:0").unwrap();
        victim
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let to: SocketAddr = rt.addrs()[0];
        let mut buf = [0u8; 128];
        let mut bytes_in = 0;
        for i in 0..50u64 {
            let kind = if i % 2 == 0 {
                MessageType::Meet
            } else {
                MessageType::Ping
            };
            let h = Header {
                kind,
                flags: 0,
                src_slot: 0,
                dst_slot: 0,
                sender: NodeId(0x5000 + i),
                incarnation: 0,
            };
            let len = wire::encode(&mut buf, &h, &[], None).unwrap();
            victim.send_to(&buf[..len], to).unwrap();
            bytes_in += len;
        }
        let mut bytes_out = 0;
        let deadline = Instant::now() + Duration::from_millis(1_500);
        while Instant::now() < deadline {
            if let Ok((n, _)) = victim.recv_from(&mut [0u8; 2048]) {
                bytes_out += n;
            }
        }
        assert!(
            bytes_out <= bytes_in,
            "keyed {keyed}: {bytes_in} bytes in, {bytes_out} out"
        );
        if keyed {
            assert_eq!(bytes_out, 0);
        }
        eprintln!("keyed {keyed}: blind spoofer sent {bytes_in} bytes, drew {bytes_out}");
        rt.shutdown().unwrap();
    }
}

const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const K2: &str = "0202020202020202020202020202020202020202020202020202020202020202";

fn key_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("gossip-auth-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn the_binary_refuses_a_bad_key_file_with_one_line_and_a_failure_exit() {
    let missing = std::env::temp_dir().join("gossip-auth-no-such-file");
    for (path, want) in [
        (
            key_file("short", "key 1 abcd\n"),
            "line 1: a key is 64 hex digits",
        ),
        (key_file("empty", "# nothing\n"), "no 'key' line"),
        (missing, "gossip-auth-no-such-file"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gossip-node"))
            .args([
                "--bind",
                "127.0.0.1:0",
                "--duration",
                "1",
                "--cluster-key-file",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(want) && stderr.contains("cluster key file"),
            "{stderr}"
        );
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn the_binary_runs_keyed_and_rotates_on_sighup() {
    let path = key_file("rotate", &format!("key 1 {K1}\n"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gossip-node"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--nodes",
            "3",
            "--datapath",
            "mmsg",
        ])
        .args([
            "--duration",
            "4",
            "--node-timeout-ms",
            "1500",
            "--cluster-key-file",
        ])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A rotation in its two steps, a SIGHUP each: every node accepts key 2,
    // then every node sends with it. (Both in one file raced: the nodes of
    // one I/O thread could send with key 2 before the other thread's nodes
    // accepted it, and one datagram was refused under load.)
    let hup = |contents: String| {
        std::thread::sleep(Duration::from_millis(1_000));
        std::fs::write(&path, contents).unwrap();
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    hup(format!("key 1 {K1}\nkey 2 {K2}\nsend 1\n"));
    hup(format!("key 1 {K1}\nkey 2 {K2}\nsend 2\n"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cluster keyring reloaded: 3 node(s) now send with key 2"),
        "{stderr}"
    );
    assert!(stderr.contains("pfail 0 fail 0"), "{stderr}");
    assert!(stderr.contains("auth refused 0"), "{stderr}");
    let _ = std::fs::remove_file(path);
}
