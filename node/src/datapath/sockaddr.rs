//! Socket addresses to and from the kernel's `sockaddr_in`/`sockaddr_in6` bytes.
//!
//! Written and parsed as plain bytes (no pointer casts): the kernel copies names
//! with `copy_from_user`, which needs no alignment, and parsing bytes can never
//! read past what the kernel wrote.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Bytes of a `sockaddr_in6`, the larger of the two: what a receive reserves.
pub(crate) const NAME_LEN: usize = 28;

/// A raw socket address, aligned like `sockaddr_in6` so it may also be passed
/// where the kernel expects the struct.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(8))]
pub(crate) struct RawAddr(pub(crate) [u8; NAME_LEN]);

impl RawAddr {
    pub(crate) const ZERO: RawAddr = RawAddr([0; NAME_LEN]);

    /// Writes `addr`; returns the length to pass as `msg_namelen`.
    pub(crate) fn write(&mut self, addr: SocketAddr) -> u32 {
        let b = &mut self.0;
        match addr {
            SocketAddr::V4(a) => {
                b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.ip().octets());
                b[8..16].fill(0);
                16
            }
            SocketAddr::V6(a) => {
                b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
                b[8..24].copy_from_slice(&a.ip().octets());
                b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
                28
            }
        }
    }
}

/// Parses the name the kernel wrote (`name` is exactly its length).
pub(crate) fn parse(name: &[u8]) -> Option<SocketAddr> {
    if name.len() < 2 {
        return None;
    }
    let family = i32::from(u16::from_ne_bytes([name[0], name[1]]));
    if family == libc::AF_INET && name.len() >= 8 {
        let port = u16::from_be_bytes([name[2], name[3]]);
        let ip = Ipv4Addr::new(name[4], name[5], name[6], name[7]);
        return Some(SocketAddr::V4(SocketAddrV4::new(ip, port)));
    }
    if family == libc::AF_INET6 && name.len() >= NAME_LEN {
        let port = u16::from_be_bytes([name[2], name[3]]);
        let flow = u32::from_be_bytes([name[4], name[5], name[6], name[7]]);
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&name[8..24]);
        let scope = u32::from_ne_bytes([name[24], name[25], name[26], name[27]]);
        return Some(SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(ip),
            port,
            flow,
            scope,
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_kernel_bytes() {
        for s in ["127.0.0.9:7001", "[::1]:65535", "[fe80::1%3]:9"] {
            let addr: SocketAddr = s.parse().unwrap();
            let mut raw = RawAddr::ZERO;
            let len = raw.write(addr) as usize;
            assert_eq!(parse(&raw.0[..len]), Some(addr), "{s}");
        }
        assert_eq!(parse(&[0; 1]), None);
        assert_eq!(parse(&[0; 28]), None);
    }
}
