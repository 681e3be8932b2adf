//! What the runtime runs ([`RuntimeConfig`]), why it may not start
//! ([`NodeError`]), and how a node's socket is bound.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use gossip_core::{Config, Endpoint, Keyring};
use socket2::{Domain, Protocol, Socket, Type};
use std::sync::Arc;

use crate::datapath::{DatapathChoice, DatapathKind};

/// What to run.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Datapath wanted (`auto`: io_uring where the probe succeeds).
    pub datapath: DatapathChoice,
    /// I/O threads; 0 means one per available core (never more than nodes).
    pub threads: usize,
    /// Pin I/O thread i to CPU i (modulo the CPUs available).
    pub pin: bool,
    /// Protocol parameters of every node.
    pub node: Config,
    /// One address per socket (port 0 lets the kernel choose).
    pub binds: Vec<SocketAddr>,
    /// Nodes per socket. 1: every node has a socket of its own (slot 0).
    /// More: shared-socket mode, socket `s` carries nodes `s * slots ..`
    /// in slots `0..slots`, demultiplexed by the header's `dst_slot`, so
    /// that the datagrams of a turn between two sockets can travel together
    /// (see `offload`).
    pub slots: usize,
    /// UDP GSO/GRO ([`DatapathOptions::offload`](crate::datapath::DatapathOptions::offload)), on
    /// either datapath; `auto` then chooses mmsg without probing io_uring
    /// (measured no cheaper with offload; see `Runtime::start`).
    pub offload: bool,
    /// Endpoints every node MEETs at start; when empty, nodes 1.. meet node 0.
    pub join: Vec<Endpoint>,
    /// Seed for node ids and PRNG seeds (same seed, same ids).
    pub rng_seed: u64,
    /// Start the nodes over this long (node i at i/n of it) instead of all at
    /// once: a thousand simultaneous joins are a handshake storm that a
    /// real cluster, whose nodes join over time, never sees.
    pub ramp: Duration,
    /// SO_RCVBUF and SO_SNDBUF per node, bytes (a shared socket asks for
    /// this times its slots, at most 64 MiB). Bigger absorbs bursts (a FAIL
    /// broadcast, a join storm) at the cost of kernel memory per node.
    pub socket_buffer_bytes: usize,
    /// The last `held` nodes of `binds` are bound (their ports reserved) but
    /// not started; [`Runtime::start_node`](super::Runtime::start_node) starts them later (joins).
    /// Must leave node 0 started.
    pub held: usize,
    /// Observation channel: events each I/O thread's queue holds (0: no
    /// channel, nothing observed). See [`crate::observe`].
    pub event_queue: usize,
    /// How far past the earliest deadline an I/O thread may sleep, so that
    /// nearby deadlines of many nodes fire in one turn ([`crate::host::Host::set_timer_slack`]).
    pub timer_slack: Duration,
    /// The cluster keyring every node authenticates its datagrams with
    /// ([`crate::keyfile`]); `None`: no key, datagrams as without one.
    pub keyring: Option<Arc<Keyring>>,
    /// Every node requires proven joins: a MEET is answered with a stateless
    /// cookie, and only a PING returning it admits the sender
    /// (`gossip_core::cookie`).
    pub join_cookies: bool,
}

impl RuntimeConfig {
    /// `n` nodes on `ip`, ports from `first_port` up (0: kernel-chosen ports).
    pub fn consecutive(ip: IpAddr, first_port: u16, n: usize) -> Vec<SocketAddr> {
        Self::spread(ip, first_port, n, 1).unwrap_or_default()
    }

    /// `n` nodes over `ips` consecutive IPv4 addresses from `ip` (127.0.0.1,
    /// 127.0.0.2, ... on loopback, where all of 127.0.0.0/8 is local): node i
    /// gets address `ip + i % ips` and port `first_port + i / ips`. Spreading
    /// makes nodes look like separate hosts and keeps port ranges short.
    ///
    /// `None` when the addresses or ports run out (or `ips` > 1 on IPv6).
    pub fn spread(ip: IpAddr, first_port: u16, n: usize, ips: usize) -> Option<Vec<SocketAddr>> {
        let ips = ips.max(1);
        let ports = n.div_ceil(ips);
        if first_port != 0
            && usize::from(first_port) + ports.saturating_sub(1) > usize::from(u16::MAX)
        {
            return None;
        }
        let base = match ip {
            IpAddr::V4(v4) => u32::from(v4),
            IpAddr::V6(_) if ips == 1 => 0,
            IpAddr::V6(_) => return None,
        };
        base.checked_add(u32::try_from(ips - 1).ok()?)?;
        Some(
            (0..n)
                .map(|i| {
                    let port = if first_port == 0 {
                        0
                    } else {
                        first_port + (i / ips) as u16
                    };
                    let ip = match ip {
                        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(base + (i % ips) as u32)),
                        v6 => v6,
                    };
                    SocketAddr::new(ip, port)
                })
                .collect(),
        )
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            datapath: DatapathChoice::Auto,
            threads: 0,
            pin: false,
            node: Config::default(),
            binds: Vec::new(),
            slots: 1,
            offload: false,
            join: Vec::new(),
            rng_seed: 0x5eed,
            ramp: Duration::ZERO,
            socket_buffer_bytes: 256 * 1024,
            held: 0,
            event_queue: 0,
            timer_slack: Duration::ZERO,
            keyring: None,
            join_cookies: false,
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// A node's address could not be bound (in use, not local, no permission).
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The datapath could not be created or refused a socket.
    Datapath {
        /// Which datapath.
        kind: DatapathKind,
        /// What failed.
        source: io::Error,
    },
    /// An I/O thread could not be spawned or died while starting.
    Thread(io::Error),
    /// The configuration asks for something impossible.
    Config(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            NodeError::Datapath { kind, source } => write!(f, "{kind} datapath: {source}"),
            NodeError::Thread(e) => write!(f, "I/O thread: {e}"),
            NodeError::Config(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NodeError::Bind { source, .. } | NodeError::Datapath { source, .. } => Some(source),
            NodeError::Thread(e) => Some(e),
            NodeError::Config(_) => None,
        }
    }
}

/// A UDP socket bound to `addr`: no SO_REUSEADDR (a second node on the same
/// port must fail, not share it), buffers of `buffer` bytes each way.
///
/// # Errors
/// The kernel's refusal (in use, not a local address, no permission).
pub fn bind(addr: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(false)?;
    // The buffer absorbs a burst while the I/O thread is busy: a shared
    // socket's GSO aggregates from a thousand nodes' ticks overflow the
    // kernel's default cap (net.core.rmem_max) and are dropped whole
    // (reports/shared-socket/README.md, 2026-12-06). With CAP_NET_ADMIN the
    // FORCE options pass the cap; without it the kernel caps the request,
    // which is still correct, just less tolerant of bursts.
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    if crate::datapath::sys::force_buffer(fd, true, buffer).is_err() {
        let _ = socket.set_recv_buffer_size(buffer);
    }
    if crate::datapath::sys::force_buffer(fd, false, buffer).is_err() {
        let _ = socket.set_send_buffer_size(buffer);
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_spread_over_addresses_then_ports() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let addrs = RuntimeConfig::spread(ip, 7000, 5, 2).unwrap();
        let want = [
            "127.0.0.1:7000",
            "127.0.0.2:7000",
            "127.0.0.1:7001",
            "127.0.0.2:7001",
            "127.0.0.1:7002",
        ];
        assert_eq!(addrs, want.map(|a| a.parse::<SocketAddr>().unwrap()));
        assert_eq!(RuntimeConfig::consecutive(ip, 65_535, 1).len(), 1);
        assert!(
            RuntimeConfig::spread(ip, 65_535, 2, 1).is_none(),
            "past the last port"
        );
        assert!(RuntimeConfig::spread("255.255.255.255".parse().unwrap(), 1, 2, 2).is_none());
        assert!(RuntimeConfig::spread("::1".parse().unwrap(), 1, 2, 2).is_none());
        assert_eq!(RuntimeConfig::consecutive(ip, 0, 3)[2].port(), 0);
    }
}
