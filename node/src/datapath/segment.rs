//! UDP segmentation offload: which queued datagrams can leave as one GSO send,
//! and the control messages that carry segment sizes each way.
//!
//! The kernel splits a GSO send into datagrams of `gso_size` bytes, the last
//! one possibly shorter, all from one socket to one address. So the queue of a
//! turn is ordered by (socket, destination, length, longest first) and cut
//! into runs of equal lengths, each closed by at most one shorter datagram.
//! Reordering datagrams is allowed: UDP never promised order, and the
//! protocol does not rely on it.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use super::sockaddr::RawAddr;
use super::DatapathCounters;

/// Most datagrams in one GSO send: `UDP_MAX_SEGMENTS` of every kernel since
/// 4.18 (newer ones allow 128).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO send: the IPv4 UDP limit minus headroom the
/// kernel keeps for headers.
pub(crate) const MAX_BYTES: usize = 65_000;
/// Buffer a GRO receive needs: the largest coalesced payload.
pub(crate) const GRO_BUFFER: usize = 65_536;
/// Bytes of control buffer for one `UDP_SEGMENT` or `UDP_GRO` message
/// (`CMSG_SPACE(sizeof(int))` on 64-bit Linux, rounded up).
pub(crate) const CMSG_LEN: usize = 32;

/// A control-message buffer aligned like `cmsghdr`.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(8))]
pub(crate) struct Control(pub(crate) [u8; CMSG_LEN]);

/// Turns UDP GRO on for `socket`, so that datagrams of one sender arrive as
/// one receive with a `UDP_GRO` control message.
///
/// # Errors
/// When the kernel refuses (before Linux 5.0), with the reason.
pub(crate) fn enable_gro(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is open and `on` is a live c_int whose size is
    // passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("UDP GRO refused (offload needs Linux 5.0): {e}"),
        ));
    }
    Ok(())
}

/// Hands the datagrams of one receive to `on_datagram`: `bytes` whole, or,
/// when the kernel coalesced them (`gro`: the segment size of its `UDP_GRO`
/// control message), cut into `gro`-byte datagrams, the last possibly
/// shorter. Counts what it delivers; a segment size beyond `max_datagram`
/// (longer than a peer may send) drops the receive as truncated, as it would
/// be without offload.
pub(crate) fn deliver(
    bytes: &[u8],
    gro: Option<usize>,
    max_datagram: usize,
    counters: &mut DatapathCounters,
    on_datagram: &mut dyn FnMut(&[u8]),
) {
    let segment = gro.unwrap_or(bytes.len()).max(1);
    if segment > max_datagram {
        counters.truncated += bytes.len().div_ceil(segment).max(1) as u64;
        return;
    }
    counters.gro_receives += u64::from(bytes.len() > segment);
    // An empty datagram is a datagram too (chunks() yields none).
    let mut datagrams = bytes.chunks(segment);
    let mut next = Some(datagrams.next().unwrap_or(&[]));
    while let Some(datagram) = next {
        counters.datagrams_in += 1;
        counters.bytes_in += datagram.len() as u64;
        on_datagram(datagram);
        next = datagrams.next();
    }
}

/// A queued datagram as the planner sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queued {
    pub(crate) socket: u32,
    pub(crate) len: u32,
    pub(crate) namelen: u32,
    pub(crate) name: RawAddr,
}

/// One send: `count` datagrams of `order[start..start + count]`, all of
/// `segment` bytes but the last, which may be shorter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) start: usize,
    pub(crate) count: usize,
    pub(crate) segment: u32,
}

/// Orders `queued` into `order` (indices) and cuts it into `runs`.
pub(crate) fn plan(queued: &[Queued], order: &mut Vec<u32>, runs: &mut Vec<Run>) {
    order.clear();
    runs.clear();
    order.extend(0..queued.len() as u32);
    let key = |i: &u32| {
        let q = &queued[*i as usize];
        (q.socket, q.namelen, q.name.0, core::cmp::Reverse(q.len), *i)
    };
    order.sort_unstable_by_key(key);
    let same_path = |a: &Queued, b: &Queued| {
        a.socket == b.socket && a.namelen == b.namelen && a.name.0 == b.name.0
    };
    let mut i = 0;
    while i < order.len() {
        let first = &queued[order[i] as usize];
        let segment = first.len;
        let mut count = 1;
        let mut bytes = segment as usize;
        while i + count < order.len() && count < MAX_SEGMENTS {
            let next = &queued[order[i + count] as usize];
            if !same_path(first, next) || next.len > segment {
                break;
            }
            if bytes + next.len as usize > MAX_BYTES {
                break;
            }
            bytes += next.len as usize;
            count += 1;
            if next.len < segment {
                // A shorter datagram ends the run: the kernel reads every
                // segment but the last as exactly `segment` bytes.
                break;
            }
        }
        runs.push(Run {
            start: i,
            count,
            segment,
        });
        i += count;
    }
}

/// One run per datagram, in queue order: the plan without offload.
pub(crate) fn singles(queued: &[Queued], order: &mut Vec<u32>, runs: &mut Vec<Run>) {
    order.clear();
    runs.clear();
    order.extend(0..queued.len() as u32);
    runs.extend(queued.iter().enumerate().map(|(i, q)| Run {
        start: i,
        count: 1,
        segment: q.len,
    }));
}

/// Writes one control message (`level`, `kind`, a native `u16` or `i32`
/// payload) into `buf`; returns the length to pass as `msg_controllen`.
///
/// Written as bytes, like socket names, so no pointer casts are needed: the
/// layout is `cmsghdr { size_t len; int level; int type; }` then the data.
pub(crate) fn write_cmsg(buf: &mut [u8; CMSG_LEN], level: i32, kind: i32, data: &[u8]) -> usize {
    const HDR: usize = core::mem::size_of::<usize>() + 8;
    let len = HDR + data.len();
    buf.fill(0);
    buf[..core::mem::size_of::<usize>()].copy_from_slice(&len.to_ne_bytes());
    let at = core::mem::size_of::<usize>();
    buf[at..at + 4].copy_from_slice(&level.to_ne_bytes());
    buf[at + 4..at + 8].copy_from_slice(&kind.to_ne_bytes());
    buf[HDR..len].copy_from_slice(data);
    // CMSG_SPACE: the data rounded up to the header's alignment.
    (HDR + data.len()).next_multiple_of(core::mem::size_of::<usize>())
}

/// The `UDP_GRO` segment size among the control messages the kernel wrote
/// (`control` is exactly `msg_controllen` bytes); `None` when absent.
pub(crate) fn gro_segment(control: &[u8]) -> Option<usize> {
    const WORD: usize = core::mem::size_of::<usize>();
    const HDR: usize = WORD + 8;
    let mut at = 0;
    while at + HDR <= control.len() {
        let mut len = [0u8; WORD];
        len.copy_from_slice(&control[at..at + WORD]);
        let len = usize::from_ne_bytes(len);
        if len < HDR || at + len > control.len() {
            return None;
        }
        let level = i32::from_ne_bytes(control[at + WORD..at + WORD + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(control[at + WORD + 4..at + HDR].try_into().ok()?);
        if level == libc::SOL_UDP && kind == libc::UDP_GRO && len >= HDR + 4 {
            let size = i32::from_ne_bytes(control[at + HDR..at + HDR + 4].try_into().ok()?);
            return usize::try_from(size).ok().filter(|&s| s > 0);
        }
        at += len.next_multiple_of(WORD);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn q(socket: u32, to: &str, len: u32) -> Queued {
        let mut name = RawAddr::ZERO;
        let namelen = name.write(to.parse::<SocketAddr>().unwrap());
        Queued {
            socket,
            len,
            namelen,
            name,
        }
    }

    fn runs_of(queued: &[Queued]) -> Vec<(Vec<u32>, u32)> {
        let (mut order, mut runs) = (Vec::new(), Vec::new());
        plan(queued, &mut order, &mut runs);
        let covered: usize = runs.iter().map(|r| r.count).sum();
        assert_eq!(covered, queued.len(), "every datagram in exactly one run");
        runs.iter()
            .map(|r| (order[r.start..r.start + r.count].to_vec(), r.segment))
            .collect()
    }

    #[test]
    fn equal_datagrams_to_one_address_make_one_run() {
        let queued: Vec<_> = (0..10).map(|_| q(0, "127.0.0.1:7000", 200)).collect();
        assert_eq!(runs_of(&queued), vec![((0..10).collect(), 200)]);
    }

    #[test]
    fn runs_split_by_socket_and_address_and_end_at_a_shorter_datagram() {
        let queued = [
            q(0, "127.0.0.1:7000", 200), // 0
            q(0, "127.0.0.1:7001", 200), // 1: other address
            q(1, "127.0.0.1:7000", 200), // 2: other socket
            q(0, "127.0.0.1:7000", 150), // 3: shorter, closes 0's run
            q(0, "127.0.0.1:7000", 200), // 4
            q(0, "127.0.0.1:7000", 100), // 5: shorter still, its own run
        ];
        let runs = runs_of(&queued);
        assert_eq!(
            runs,
            vec![
                (vec![0, 4, 3], 200),
                (vec![5], 100),
                (vec![1], 200),
                (vec![2], 200),
            ]
        );
    }

    #[test]
    fn runs_respect_the_segment_and_byte_limits() {
        let queued: Vec<_> = (0..150).map(|_| q(0, "[::1]:7000", 100)).collect();
        let runs = runs_of(&queued);
        assert_eq!(
            runs.iter().map(|r| r.0.len()).collect::<Vec<_>>(),
            [64, 64, 22]
        );
        let big: Vec<_> = (0..60).map(|_| q(0, "127.0.0.1:1", 1_400)).collect();
        for (members, segment) in runs_of(&big) {
            assert!(members.len() * segment as usize <= MAX_BYTES);
        }
    }

    #[test]
    fn a_receive_is_cut_at_the_gro_segment_size_and_an_oversized_one_dropped() {
        let mut c = DatapathCounters::default();
        let bytes: Vec<u8> = (0..250u8).collect();
        let mut got = Vec::new();
        deliver(&bytes, Some(100), 1_400, &mut c, &mut |d| {
            got.push(d.to_vec())
        });
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        assert_eq!(got.concat(), bytes);
        assert_eq!((c.datagrams_in, c.bytes_in, c.gro_receives), (3, 250, 1));
        deliver(&bytes, None, 1_400, &mut c, &mut |d| got.push(d.to_vec()));
        deliver(&[], Some(100), 1_400, &mut c, &mut |d| got.push(d.to_vec()));
        assert_eq!((c.datagrams_in, c.gro_receives), (5, 1));
        deliver(&bytes, Some(200), 150, &mut c, &mut |_| panic!("delivered"));
        assert_eq!((c.datagrams_in, c.truncated), (5, 2));
    }

    #[test]
    fn control_messages_round_trip_and_garbage_is_refused() {
        let mut buf = [0u8; CMSG_LEN];
        let len = write_cmsg(
            &mut buf,
            libc::SOL_UDP,
            libc::UDP_GRO,
            &1_400i32.to_ne_bytes(),
        );
        assert_eq!(len, 24);
        assert_eq!(gro_segment(&buf[..len]), Some(1_400));
        let other = write_cmsg(
            &mut buf,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            &7u16.to_ne_bytes(),
        );
        assert_eq!(gro_segment(&buf[..other]), None);
        assert_eq!(gro_segment(&[]), None);
        assert_eq!(gro_segment(&[0xff; 24]), None);
        assert_eq!(gro_segment(&[0; 24]), None);
    }
}
