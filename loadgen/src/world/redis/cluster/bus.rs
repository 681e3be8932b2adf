//! Bytes each server sends on the cluster bus, read from the kernel's TCP
//! socket table (sock_diag / inet_diag over netlink).
//!
//! Redis's CLUSTER INFO counts messages, never bytes. The kernel counts bytes
//! per TCP socket (`tcpi_bytes_sent`, RFC 4898 HCDataOctetsOut, Linux ≥ 4.19),
//! so one dump of the socket table gives, for every bus socket, what its
//! server has handed to TCP and TCP has sent. A socket is a server's bus
//! socket when its local port is that server's bus port (a link the server
//! accepted) or when its remote port is a bus port and the server's fd table
//! holds its inode (a link the server opened; `/proc/<pid>/fd` is read only
//! when such an unknown socket appears). Our own client connections use the
//! client ports and are never counted.
//!
//! A socket's counters die with it, and Redis drops and redials links (a
//! peer's death, no PONG for node_timeout/2). Totals are therefore kept per
//! socket (by its kernel cookie, never reused) and a closed socket's last
//! reading is carried into its server's total: counts survive reconnects,
//! less what a link sent between the last dump and its close.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::constants::{AF_INET, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

/// Byte counts of one server's cluster bus sockets (TCP payload, both link
/// directions Redis uses: the links it opened and those it accepted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusBytes {
    /// Payload bytes sent (retransmissions included; loopback has next to
    /// none, see `bytes_retransmitted`).
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Of `bytes_sent`, bytes sent again.
    pub bytes_retransmitted: u64,
    /// TCP segments sent, pure ACKs included. On the wire each costs 52 bytes
    /// of IPv4 + TCP headers (20 + 20 + 12 of timestamps, which Linux
    /// negotiates by default), so wire bytes ≈ `bytes_sent + 52 × segments_sent`.
    pub segments_sent: u64,
    /// Of `segments_sent`, those carrying payload (pure ACKs excluded):
    /// wire bytes of the messages alone ≈ `bytes_sent + 52 × data_segments_sent`.
    pub data_segments_sent: u64,
    /// Bus sockets open now.
    pub links: usize,
}

impl BusBytes {
    fn add(&mut self, t: &Totals) {
        self.bytes_sent += t.bytes_sent;
        self.bytes_received += t.bytes_received;
        self.bytes_retransmitted += t.bytes_retransmitted;
        self.segments_sent += t.segments_sent;
        self.data_segments_sent += t.data_segments_sent;
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    bytes_sent: u64,
    bytes_received: u64,
    bytes_retransmitted: u64,
    segments_sent: u64,
    data_segments_sent: u64,
}

#[derive(Clone, Copy, Debug)]
struct Sock {
    node: usize,
    totals: Totals,
}

/// One bus socket of the dump before it is attributed.
#[derive(Debug)]
struct Row {
    cookie: u64,
    inode: u32,
    local_port: u16,
    totals: Totals,
}

/// The running byte totals of every server's bus sockets.
#[derive(Debug)]
pub(super) struct BusTable {
    socket: Option<Socket>,
    /// Why the table cannot be read, once it has failed.
    error: Option<String>,
    /// Socket inode → owning node, None for a socket that is none of ours.
    owner: HashMap<u32, Option<usize>>,
    /// Sockets open at the last dump, by cookie.
    open: HashMap<u64, Sock>,
    /// Per node: totals of its sockets that have closed since it started.
    closed: Vec<Totals>,
    buf: Vec<u8>,
}

/// A dump stops here whatever happens (a table of 96 servers holds about
/// 18,000 bus sockets; each recv carries dozens).
const DUMP_BOUND: Duration = Duration::from_secs(5);
const DUMP_RECVS_MAX: usize = 1_000_000;

/// `tcp_info` offsets (linux/tcp.h). `tcpi_bytes_sent` and
/// `tcpi_bytes_retrans` arrived in Linux 4.19, the last ones read here.
const TCPI_BYTES_RECEIVED: usize = 128;
const TCPI_SEGS_OUT: usize = 136;
const TCPI_DATA_SEGS_OUT: usize = 156;
const TCPI_BYTES_SENT: usize = 200;
const TCPI_BYTES_RETRANS: usize = 208;
const TCPI_LEN_MIN: usize = 216;

impl BusTable {
    pub(super) fn new(capacity: usize) -> BusTable {
        BusTable {
            socket: None,
            error: None,
            owner: HashMap::new(),
            open: HashMap::new(),
            closed: vec![Totals::default(); capacity],
            buf: vec![0; 1 << 17],
        }
    }

    /// Why bus bytes are unavailable, if they are.
    pub(super) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Node `n` has a new process: its counts start again from zero, like
    /// its CLUSTER INFO counters.
    pub(super) fn forget(&mut self, n: usize) {
        self.closed[n] = Totals::default();
        self.open.retain(|_, s| s.node != n);
    }

    /// Reads the socket table and returns every node's totals (None for all
    /// when the table cannot be read; the reason is kept in `error`).
    /// `bus_ports[n]` is node n's bus port, `pids[n]` its process if running.
    pub(super) fn read(
        &mut self,
        bus_ports: &[u16],
        pids: &[Option<u32>],
    ) -> Option<Vec<BusBytes>> {
        if self.error.is_some() {
            return None;
        }
        match self.try_read(bus_ports, pids) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error = Some(format!("{e:#}"));
                None
            }
        }
    }

    fn try_read(&mut self, bus_ports: &[u16], pids: &[Option<u32>]) -> Result<Vec<BusBytes>> {
        let by_port: HashMap<u16, usize> =
            bus_ports.iter().enumerate().map(|(n, &p)| (p, n)).collect();
        let rows = self.dump(&by_port)?;
        let mut open = HashMap::with_capacity(rows.len());
        let mut unknown = Vec::new();
        for row in rows {
            let node = match self.open.get(&row.cookie) {
                Some(s) => Some(s.node),
                None => match by_port.get(&row.local_port) {
                    Some(&n) => Some(n),
                    None => match self.owner.get(&row.inode) {
                        Some(&owner) => owner,
                        None => {
                            unknown.push(row);
                            continue;
                        }
                    },
                },
            };
            if let Some(node) = node {
                open.insert(
                    row.cookie,
                    Sock {
                        node,
                        totals: row.totals,
                    },
                );
            }
        }
        if !unknown.is_empty() {
            // Links the servers opened since the last scan: find their inodes.
            self.scan_fds(pids);
            for row in unknown {
                let owner = *self.owner.entry(row.inode).or_insert(None);
                if let Some(node) = owner {
                    open.insert(
                        row.cookie,
                        Sock {
                            node,
                            totals: row.totals,
                        },
                    );
                }
            }
        }
        for (cookie, gone) in &self.open {
            if !open.contains_key(cookie) {
                let c = &mut self.closed[gone.node];
                c.bytes_sent += gone.totals.bytes_sent;
                c.bytes_received += gone.totals.bytes_received;
                c.bytes_retransmitted += gone.totals.bytes_retransmitted;
                c.segments_sent += gone.totals.segments_sent;
                c.data_segments_sent += gone.totals.data_segments_sent;
            }
        }
        self.open = open;
        let mut out = vec![BusBytes::default(); self.closed.len()];
        for (n, c) in self.closed.iter().enumerate() {
            out[n].add(c);
        }
        for s in self.open.values() {
            out[s.node].add(&s.totals);
            out[s.node].links += 1;
        }
        Ok(out)
    }

    /// Maps the socket inodes in each running server's fd table to it.
    fn scan_fds(&mut self, pids: &[Option<u32>]) {
        // Inodes of closed sockets go; inode numbers can be reused.
        self.owner.clear();
        for (n, pid) in pids.iter().enumerate() {
            let Some(pid) = pid else { continue };
            let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue; // it just died: its sockets are gone too
            };
            for fd in dir.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let Some(target) = target.to_str() else {
                    continue;
                };
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    if let Ok(inode) = inode.parse() {
                        self.owner.insert(inode, Some(n));
                    }
                }
            }
        }
    }

    /// One dump of the IPv4 TCP table: the sockets with a bus port at either
    /// end that still belong to a process.
    fn dump(&mut self, by_port: &HashMap<u16, usize>) -> Result<Vec<Row>> {
        if self.socket.is_none() {
            let mut s =
                Socket::new(NETLINK_SOCK_DIAG).context("cannot open a sock_diag netlink socket")?;
            s.bind_auto()
                .context("cannot bind a sock_diag netlink socket")?;
            s.connect(&SocketAddr::new(0, 0))
                .context("cannot connect a sock_diag netlink socket")?;
            // The kernel builds each part of a dump while we read: nothing
            // ever needs waiting for, and a read that would block means the
            // dump is broken, not slow.
            s.set_non_blocking(true)
                .context("sock_diag: set_non_blocking")?;
            self.socket = Some(s);
        }
        let Some(socket) = self.socket.as_ref() else {
            unreachable!("set above")
        };
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        // Every state with a full socket behind it; LISTEN carries no data,
        // TIME_WAIT and SYN_RECV are mini sockets without tcp_info.
        let states =
            StateFlags::all() - StateFlags::LISTEN - StateFlags::TIME_WAIT - StateFlags::SYN_RECV;
        let mut request = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family: AF_INET,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::INFO,
                states,
                socket_id: SocketId::new_v4(),
            })
            .into(),
        );
        request.finalize();
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        socket.send(&bytes, 0).context("sock_diag: send")?;

        let started = Instant::now();
        let mut rows = Vec::new();
        for _ in 0..DUMP_RECVS_MAX {
            if started.elapsed() > DUMP_BOUND {
                break;
            }
            let len = socket
                .recv(&mut &mut self.buf[..], 0)
                .context("sock_diag: the socket table dump stopped short")?;
            let mut off = 0;
            while off < len {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&self.buf[off..len])
                    .context("sock_diag: bad message")?;
                let msg_len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(rows),
                    NetlinkPayload::Error(e) => bail!("sock_diag: {e}"),
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        let id = &r.header.socket_id;
                        let ours = by_port.contains_key(&id.source_port)
                            || by_port.contains_key(&id.destination_port);
                        // Inode 0: its process has closed it (orphaned, e.g.
                        // by a kill); its counts were taken at the last dump.
                        if ours && r.header.inode != 0 {
                            if let Some(totals) = r.nlas.iter().find_map(|nla| match nla {
                                Nla::TcpInfo(info) => totals(info),
                                _ => None,
                            }) {
                                rows.push(Row {
                                    cookie: u64::from_ne_bytes(id.cookie),
                                    inode: r.header.inode,
                                    local_port: id.source_port,
                                    totals,
                                });
                            }
                        }
                    }
                    _ => {}
                }
                if msg_len == 0 {
                    break;
                }
                off += msg_len;
            }
        }
        bail!("sock_diag: the socket table dump did not end within {DUMP_BOUND:?}")
    }
}

/// The counters we keep from a raw `tcp_info`; None before Linux 4.19.
fn totals(info: &[u8]) -> Option<Totals> {
    if info.len() < TCPI_LEN_MIN {
        return None;
    }
    let u64_at =
        |o: usize| u64::from_ne_bytes(info[o..o + 8].try_into().expect("8 bytes, length checked"));
    let u32_at =
        |o: usize| u32::from_ne_bytes(info[o..o + 4].try_into().expect("4 bytes, length checked"));
    Some(Totals {
        bytes_sent: u64_at(TCPI_BYTES_SENT),
        bytes_received: u64_at(TCPI_BYTES_RECEIVED),
        bytes_retransmitted: u64_at(TCPI_BYTES_RETRANS),
        segments_sent: u64::from(u32_at(TCPI_SEGS_OUT)),
        data_segments_sent: u64::from(u32_at(TCPI_DATA_SEGS_OUT)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn dump_sees_the_bytes_a_loopback_socket_sent() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("bound").port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect loopback");
        let (mut server, _) = listener.accept().expect("accept");
        server.write_all(&[7; 1000]).expect("write");
        let mut buf = [0; 1000];
        client.read_exact(&mut buf).expect("read");
        // Node 0 "listens" on `port`: the accepted socket is its.
        let mut table = BusTable::new(1);
        let pid = std::process::id();
        let v = table
            .read(&[port], &[Some(pid)])
            .unwrap_or_else(|| panic!("{:?}", table.error()));
        // Both ends match the port; the client end is ours (this process's
        // fd table) too, so both count for node 0.
        assert_eq!(v[0].links, 2);
        assert_eq!(v[0].bytes_sent, 1000);
        assert_eq!(v[0].bytes_received, 1000);
        assert!(v[0].data_segments_sent >= 1 && v[0].segments_sent >= v[0].data_segments_sent);
        // The accepted end closes: its bytes stay counted.
        drop(server);
        let v = table.read(&[port], &[Some(pid)]).expect("read again");
        assert_eq!(v[0].bytes_sent, 1000);
    }
}
