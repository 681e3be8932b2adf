//! Who a node is (`NodeId`, `Incarnation`) and where it listens (`Endpoint`).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A node's name: 64 random bits chosen once and kept across restarts.
///
/// Redis names nodes with 160 random bits as 40 hex characters; 64 bits keep the
/// collision odds below 1e-9 for clusters of 100,000 nodes and fit a register.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub u64);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The counter a node bumps each time it restarts, so that peers can tell its new
/// life from stale datagrams of the old one and clear a FAIL at once.
pub type Incarnation = u32;

/// Where a node receives datagrams: an IP address, a UDP port and a slot.
///
/// The slot tells apart several nodes behind one shared socket (the host
/// demultiplexes on it); nodes with a socket of their own use slot 0. The address is
/// kept as 16 bytes (IPv4 as v4-mapped IPv6) so that an endpoint is 20 bytes, not
/// the 32 of a `SocketAddr`: it sits in every peer entry.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    ip: [u8; 16],
    port: u16,
    slot: u16,
}

impl Endpoint {
    /// An endpoint for `addr` with the given slot.
    pub fn new(addr: SocketAddr, slot: u16) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        Endpoint {
            ip,
            port: addr.port(),
            slot,
        }
    }

    /// The socket address (IPv4 again where it was IPv4).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip(), self.port)
    }

    /// The IP address, IPv4 where it is v4-mapped.
    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.ip);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }

    /// The IPv4 address, if this is one.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        Ipv6Addr::from(self.ip).to_ipv4_mapped()
    }

    /// The raw 16 bytes of the address (v4-mapped for IPv4).
    pub fn ip_octets(&self) -> [u8; 16] {
        self.ip
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node slot behind a shared socket (0 for a socket of its own).
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// The same address with another slot.
    pub fn with_slot(self, slot: u16) -> Self {
        Endpoint { slot, ..self }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::new(addr, 0)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.slot == 0 {
            write!(f, "{}", self.addr())
        } else {
            write!(f, "{}#{}", self.addr(), self.slot)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_round_trip_through_an_endpoint() {
        let v4: SocketAddr = "127.0.0.3:7000".parse().unwrap();
        let v6: SocketAddr = "[::1]:7001".parse().unwrap();
        assert_eq!(Endpoint::from(v4).addr(), v4);
        assert_eq!(Endpoint::from(v6).addr(), v6);
        assert_eq!(Endpoint::new(v4, 9).to_string(), "127.0.0.3:7000#9");
        assert_eq!(core::mem::size_of::<Endpoint>(), 20);
    }
}

/// Who a node is: its id, its incarnation, and the slot it answers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The node's id, kept across restarts.
    pub id: NodeId,
    /// Bumped on every restart (the caller persists it, or derives it from a clock).
    pub incarnation: Incarnation,
    /// Slot behind a shared socket; 0 for a socket of its own.
    pub slot: u16,
}

impl Identity {
    /// A first incarnation with its own socket.
    pub fn new(id: NodeId) -> Self {
        Identity {
            id,
            incarnation: 0,
            slot: 0,
        }
    }
}
