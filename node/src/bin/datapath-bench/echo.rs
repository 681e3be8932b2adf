//! The bench's workloads: echoes between two loopback sockets driven by one
//! thread, so that all the work, sender and receiver, kernel and user, lands
//! on one CPU clock.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result};
use gossip_core::auth::OpenCache;
use gossip_core::wire::{MessageType, FLAG_AUTH, TRAILER_LEN};
use gossip_core::{Config, Identity, Instant, Key, Keyring, Node, NodeId, PeerState};
use gossip_node::datapath::{sys, Datapath};
use gossip_node::runtime::bind;
use gossip_node::timers::Clock;
use std::sync::Arc;

/// One measured run.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub packets: u64,
    pub cpu: Duration,
    pub wall: Duration,
    pub syscalls: u64,
}

impl Run {
    pub fn per_cpu_second(&self) -> f64 {
        self.packets as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

fn loopback_pair() -> Result<(UdpSocket, SocketAddr, UdpSocket, SocketAddr)> {
    let a = bind("127.0.0.1:0".parse()?, 4 << 20)?;
    let b = bind("127.0.0.1:0".parse()?, 4 << 20)?;
    let (aa, ba) = (a.local_addr()?, b.local_addr()?);
    Ok((a, aa, b, ba))
}

/// Per-datagram blocking send_to/recv_from, `window` datagrams in flight.
pub fn std_echo(size: usize, window: usize, packets: u64, limit: Duration) -> Result<Run> {
    let (a, _, b, addr_b) = loopback_pair()?;
    a.set_read_timeout(Some(Duration::from_secs(1)))?;
    b.set_read_timeout(Some(Duration::from_secs(1)))?;
    let payload = vec![0x5au8; size];
    let mut buf = vec![0u8; 65_536];
    let (cpu0, wall0) = (sys::process_cpu_time(), StdInstant::now());
    for _ in 0..window {
        a.send_to(&payload, addr_b)?;
    }
    let mut delivered = 0u64;
    let mut syscalls = window as u64;
    while delivered < packets && wall0.elapsed() < limit {
        // B echoes one, A takes the echo and sends the next: 2 deliveries.
        let (n, from) = b.recv_from(&mut buf)?;
        b.send_to(&buf[..n], from)?;
        let (n, _) = a.recv_from(&mut buf)?;
        a.send_to(&buf[..n], addr_b)?;
        delivered += 2;
        syscalls += 4;
    }
    Ok(Run {
        packets: delivered,
        cpu: sys::process_cpu_time() - cpu0,
        wall: wall0.elapsed(),
        syscalls,
    })
}

/// Raw echo through a datapath: every datagram received is sent back out of
/// the socket it arrived on, copied, the same size.
pub fn raw_echo(
    mut dp: Box<dyn Datapath>,
    size: usize,
    window: usize,
    packets: u64,
    limit: Duration,
) -> Result<Run> {
    let (a, addr_a, b, addr_b) = loopback_pair()?;
    let ia = dp.register(a)?;
    let ib = dp.register(b)?;
    let (cpu0, wall0) = (sys::process_cpu_time(), StdInstant::now());
    let syscalls0 = dp.counters().syscalls;
    for _ in 0..window {
        let buf = dp.send_buffer().context("no send buffer")?;
        buf[..size].fill(0x5a);
        dp.queue_send(ia, addr_b, size);
    }
    let mut delivered = 0u64;
    let mut echo: Vec<(usize, Vec<u8>)> = Vec::with_capacity(window);
    let mut spare: Vec<Vec<u8>> = Vec::new();
    while delivered < packets && wall0.elapsed() < limit {
        dp.poll(Some(Duration::from_millis(100)), &mut |socket, _, bytes| {
            let mut v = spare.pop().unwrap_or_default();
            v.clear();
            v.extend_from_slice(bytes);
            echo.push((socket, v));
        })?;
        for (socket, bytes) in echo.drain(..) {
            delivered += 1;
            let to = if socket == ib { addr_a } else { addr_b };
            let Some(buf) = dp.send_buffer() else {
                anyhow::bail!("send buffers exhausted");
            };
            buf[..bytes.len()].copy_from_slice(&bytes);
            dp.queue_send(socket, to, bytes.len());
            spare.push(bytes);
        }
    }
    Ok(Run {
        packets: delivered,
        cpu: sys::process_cpu_time() - cpu0,
        wall: wall0.elapsed(),
        syscalls: dp.counters().syscalls - syscalls0,
    })
}

/// Two nodes that know each other and `cluster - 2` more peers, all alive,
/// at the addresses their sockets will have; and a PING from A to B.
pub struct NodePair {
    a: Node,
    b: Node,
}

/// The keyed variant's cluster key (a bench's; any 32 bytes do).
fn bench_keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new(&Key::new(1, [0x5a; 32])))
}

/// A's epoch in the keyed variant; its counter for the bench's PINGs starts
/// far above what the in-memory convergence used.
const EPOCH_A: u64 = 7 << 32;
const BENCH_COUNTER: u64 = 1 << 40;

/// Builds a converged in-memory cluster of `cluster` nodes and returns A's
/// PING to B (captured from A's cron) and the two nodes. The other nodes'
/// addresses are never sent to in the bench (no cron runs there).
///
/// `keyed`: every node authenticates with the bench's key, and the PING is
/// returned without its trailer (the bench seals each copy afresh, as A would:
/// B refuses a copy it has seen).
pub fn node_pair(cluster: usize, keyed: bool) -> Result<(Vec<u8>, NodePair)> {
    let cluster = cluster.max(3);
    let config = Config::default();
    let addr = |i: usize| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16)) };
    let keyring = bench_keyring();
    let mut nodes: Vec<Node> = (0..cluster)
        .map(|i| {
            let mut n = Node::new(
                Identity::new(NodeId(1_000 + i as u64)),
                config.clone(),
                i as u64,
                Instant::ZERO,
            );
            if keyed {
                n.set_keyring(keyring.clone(), EPOCH_A + i as u64);
            }
            n
        })
        .collect();
    let mut now = Instant::ZERO;
    for n in nodes.iter_mut().skip(1) {
        let _ = n.meet(now, addr(0).into());
    }
    let mut buf = vec![0u8; config.max_datagram()];
    let mut in_flight: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::new();
    // Step virtual time until everyone sees everyone alive (bounded).
    for _ in 0..100_000 {
        now = now + Duration::from_millis(10);
        for (i, n) in nodes.iter_mut().enumerate() {
            n.handle_timeout(now);
            while let Some(tx) = n.poll_transmit(now, &mut buf) {
                in_flight.push((
                    tx.to.port() as usize - 20_000,
                    addr(i),
                    buf[..tx.len].to_vec(),
                ));
            }
            while n.poll_event().is_some() {}
        }
        for (to, from, bytes) in in_flight.drain(..) {
            if let Some(n) = nodes.get_mut(to) {
                let _ = n.handle_datagram(now, from, &bytes);
            }
        }
        let converged = nodes.iter().all(|n| {
            n.peers().len() == cluster - 1
                && n.peers().iter().all(|p| p.state() == PeerState::Alive)
        });
        if converged {
            break;
        }
    }
    let mut b = nodes.swap_remove(1);
    let mut a = nodes.swap_remove(0);
    anyhow::ensure!(
        a.peers().len() == cluster - 1,
        "the in-memory cluster did not converge"
    );
    // Advance A until its cron pings B; keep that datagram.
    let b_port = 20_001;
    for _ in 0..100_000 {
        now = now + Duration::from_millis(10);
        a.handle_timeout(now);
        while let Some(tx) = a.poll_transmit(now, &mut buf) {
            if tx.kind == MessageType::Ping && tx.to.port() == b_port {
                while b.poll_event().is_some() {}
                let mut ping = buf[..tx.len].to_vec();
                if keyed {
                    ping.truncate(tx.len - TRAILER_LEN);
                    ping[4] &= !FLAG_AUTH;
                }
                return Ok((ping, NodePair { a, b }));
            }
        }
    }
    anyhow::bail!("A never pinged B")
}

/// Full protocol handling: B answers each PING with a PONG (section
/// included), A handles each PONG and sends the next PING.
///
/// `keyed`: the nodes authenticate every datagram; each PING copy is sealed
/// with A's next counter before it is queued (what A's own send would do).
pub fn node_echo(
    mut dp: Box<dyn Datapath>,
    cluster: usize,
    window: usize,
    packets: u64,
    limit: Duration,
    keyed: bool,
) -> Result<Run> {
    // Node is not Clone (one state machine, one owner): a fresh pair per run.
    let (ping, NodePair { mut a, mut b }) = node_pair(cluster, keyed)?;
    let ping = ping.as_slice();
    // A's own sealer, as its node keeps one: the derived key once, not per PING.
    let sealer = bench_keyring()
        .sealer(a.id(), EPOCH_A)
        .context("the bench's keyring has a sending key")?;
    let mut counter = BENCH_COUNTER;
    let mut cache = OpenCache::new(64);
    // Writes one PING into `buf`; returns its length.
    let mut next_ping = |buf: &mut [u8]| -> Result<usize> {
        buf[..ping.len()].copy_from_slice(ping);
        if !keyed {
            return Ok(ping.len());
        }
        counter += 1;
        sealer
            .seal(counter, buf, ping.len())
            .context("send buffer too small for the trailer")
    };
    let (a_sock, _, b_sock, addr_b) = loopback_pair()?;
    let ia = dp.register(a_sock)?;
    let ib = dp.register(b_sock)?;
    // The nodes' views name the in-memory addresses; the real ones differ, and
    // the core adopts a peer's new address when it hears from it (B answers
    // A's real socket from the first PING on).
    let clock = Clock::new();
    let (cpu0, wall0) = (sys::process_cpu_time(), StdInstant::now());
    let syscalls0 = dp.counters().syscalls;
    for _ in 0..window {
        let buf = dp.send_buffer().context("no send buffer")?;
        let len = next_ping(buf)?;
        dp.queue_send(ia, addr_b, len);
    }
    let mut delivered = 0u64;
    let mut pongs = 0usize;
    let base = Instant::from_micros(1 << 40);
    while delivered < packets && wall0.elapsed() < limit {
        let now = Instant::from_micros(base.as_micros() + clock.now().as_micros());
        let mut got = 0u64;
        dp.poll(
            Some(Duration::from_millis(100)),
            &mut |socket, from, bytes| {
                got += 1;
                // As a host does: one cache of derived keys for its nodes.
                let node = if socket == ib { &mut b } else { &mut a };
                let _ = node.handle_datagram_cached(now, from, bytes, &mut cache);
                pongs += usize::from(socket != ib);
            },
        )?;
        delivered += got;
        while let Some(buf) = dp.send_buffer() {
            let Some(tx) = b.poll_transmit(now, buf) else {
                break;
            };
            dp.queue_send(ib, tx.to.addr(), tx.len);
        }
        while a.poll_event().is_some() || b.poll_event().is_some() {}
        for _ in 0..pongs {
            let buf = dp.send_buffer().context("no send buffer")?;
            let len = next_ping(buf)?;
            dp.queue_send(ia, addr_b, len);
        }
        pongs = 0;
    }
    anyhow::ensure!(
        a.stats().received(MessageType::Pong).datagrams > 0,
        "no PONG reached A"
    );
    anyhow::ensure!(
        a.stats().decode_errors_total() + b.stats().decode_errors_total() == 0,
        "decode errors"
    );
    let refused = a.stats().auth.total() + b.stats().auth.total();
    anyhow::ensure!(refused == 0, "{refused} datagrams refused by the key check");
    Ok(Run {
        packets: delivered,
        cpu: sys::process_cpu_time() - cpu0,
        wall: wall0.elapsed(),
        syscalls: dp.counters().syscalls - syscalls0,
    })
}

/// One direction, one run a turn: A queues `count` datagrams of `segment`
/// bytes to B (one GSO send of `count * segment` bytes with offload), then
/// the thread polls until B has them all (or `limit` passes). Measures a send
/// of one aggregate size, for the zero-copy crossover.
pub fn burst(
    mut dp: Box<dyn Datapath>,
    segment: usize,
    count: usize,
    zerocopy: bool,
    packets: u64,
    limit: Duration,
) -> Result<Run> {
    let (a, _, b, addr_b) = loopback_pair()?;
    let ia = dp.register(a)?;
    dp.register(b)?;
    let (cpu0, wall0) = (sys::process_cpu_time(), StdInstant::now());
    let syscalls0 = dp.counters().syscalls;
    let mut delivered = 0u64;
    let mut fill = 0u8;
    while delivered < packets && wall0.elapsed() < limit {
        fill = fill.wrapping_add(1);
        let mut queued = 0;
        while queued < count && wall0.elapsed() < limit {
            match dp.send_buffer() {
                Some(buf) => {
                    buf[..segment].fill(fill);
                    dp.queue_send(ia, addr_b, segment);
                    queued += 1;
                }
                // Every buffer is still lent to the kernel (zero-copy sends
                // await their notifications): let completions in.
                None => dp.poll(Some(Duration::from_millis(1)), &mut |_, _, _| {})?,
            }
        }
        let mut got = 0usize;
        while got < queued && wall0.elapsed() < limit {
            dp.poll(Some(Duration::from_millis(100)), &mut |_, _, bytes| {
                got += usize::from(bytes.len() == segment && bytes[0] == fill);
            })?;
        }
        delivered += got as u64;
        if got < queued {
            anyhow::ensure!(
                wall0.elapsed() >= limit,
                "{got} of {queued} datagrams arrived whole"
            );
            break;
        }
    }
    let c = dp.counters();
    anyhow::ensure!(
        (c.zc_sends > 0) == zerocopy && c.gso_sends > 0,
        "zero-copy {zerocopy} asked for, but {} of {} GSO sends went zero-copy",
        c.zc_sends,
        c.gso_sends
    );
    Ok(Run {
        packets: delivered,
        cpu: sys::process_cpu_time() - cpu0,
        wall: wall0.elapsed(),
        syscalls: dp.counters().syscalls - syscalls0,
    })
}
