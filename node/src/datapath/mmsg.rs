//! The recvmmsg/sendmmsg datapath: the uring datapath's shape on classic
//! system calls, for hosts where io_uring is refused.
//!
//! Sockets are non-blocking and watched by one level-triggered epoll set. Sends
//! queued during a loop iteration go out at the next `poll` as one `sendmmsg` per
//! run of consecutive datagrams from the same socket (the drive loop drains one
//! node at a time, so runs are long); a ready socket is read with `recvmmsg` in
//! batches of [`BATCH`].

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::segment::{self, Queued, Run, CMSG_LEN, GRO_BUFFER};
use super::sockaddr::{self, RawAddr};
use super::{Datapath, DatapathCounters, DatapathKind, DatapathOptions};

/// Datagrams per recvmmsg/sendmmsg call.
pub const BATCH: usize = 64;
/// Datagrams read per poll, shared among the ready sockets: bounds the
/// time input can hold the thread (and the deadlines waiting behind it,
/// about 2 to 6 ms of protocol work) while letting one shared socket, which
/// carries the input of many nodes, take all of it; level-triggered epoll
/// reports a socket again if more is waiting.
const DATAGRAMS_PER_POLL: usize = 2_048;
/// The least a ready socket may read per poll.
const DATAGRAMS_PER_SOCKET: usize = 4 * BATCH;
/// Messages per recvmmsg with offload: each may hold up to 64 datagrams, so
/// a few keep one call within the per-socket budget.
const GRO_BATCH: usize = 4;
/// Send buffers: more than this many queued datagrams are flushed early.
const SEND_SLOTS: usize = 1_024;
/// Iovecs per offload sendmmsg (one per datagram): bounds the stack array.
const SEND_IOVECS: usize = 1_024;

/// The recvmmsg/sendmmsg datapath of one thread.
pub struct MmsgDatapath {
    epoll: OwnedFd,
    sockets: Vec<Option<UdpSocket>>,
    free_sockets: Vec<usize>,
    max_sockets: usize,
    events: Vec<libc::epoll_event>,
    recv_arena: Vec<u8>,
    recv_len: usize,
    /// Messages per recvmmsg.
    recv_batch: usize,
    send_arena: Vec<u8>,
    pending: Vec<Queued>,
    send_slots: usize,
    max_datagram: usize,
    /// UDP GSO on send and GRO on receive ([`DatapathOptions::offload`]).
    offload: bool,
    /// The kernel refused a GSO send with EIO (a device without checksum
    /// offload): later sends go one datagram each; GRO stays on.
    gso_refused: bool,
    /// The offload send plan, kept for its allocations.
    order: Vec<u32>,
    runs: Vec<Run>,
    /// epoll_pwait2 (Linux 5.11) waits with microsecond precision; without it
    /// epoll_wait rounds the timeout up to a millisecond.
    has_pwait2: bool,
    counters: DatapathCounters,
}

/// A control-message buffer aligned like `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; CMSG_LEN]);

impl std::fmt::Debug for MmsgDatapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmsgDatapath")
            .field("sockets", &self.sockets.len())
            .field("pending", &self.pending.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl MmsgDatapath {
    /// An empty epoll set and send/receive arenas for `options`.
    ///
    /// # Errors
    /// When epoll_create1 fails.
    pub fn new(options: DatapathOptions) -> io::Result<Self> {
        // SAFETY: plain system call with a valid flag.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let max_datagram = options.max_datagram.max(1);
        let send_slots = options.send_buffers.clamp(BATCH, SEND_SLOTS);
        // A GRO receive holds up to 64 KiB of coalesced datagrams.
        let (recv_len, recv_batch) = if options.offload {
            (GRO_BUFFER, GRO_BATCH)
        } else {
            (max_datagram, BATCH)
        };
        Ok(MmsgDatapath {
            epoll,
            sockets: Vec::new(),
            free_sockets: Vec::new(),
            max_sockets: options.max_sockets.max(1),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
            recv_arena: vec![0; recv_batch * recv_len],
            recv_len,
            recv_batch,
            send_arena: vec![0; send_slots * max_datagram],
            pending: Vec::with_capacity(send_slots),
            send_slots,
            max_datagram,
            offload: options.offload,
            gso_refused: false,
            order: Vec::new(),
            runs: Vec::new(),
            has_pwait2: true,
            counters: DatapathCounters::default(),
        })
    }

    /// Sends every queued datagram: with offload, as GSO runs planned over
    /// the whole queue; without, one message per datagram in queue order.
    /// One sendmmsg per batch of messages from the same socket (the drive
    /// loop drains one node at a time, so batches are long).
    fn flush(&mut self) {
        let (mut order, mut runs) = (
            std::mem::take(&mut self.order),
            std::mem::take(&mut self.runs),
        );
        if self.offload && !self.gso_refused {
            segment::plan(&self.pending, &mut order, &mut runs);
        } else {
            segment::singles(&self.pending, &mut order, &mut runs);
        }
        let mut first = 0;
        while first < runs.len() {
            let socket = self.pending[order[runs[first].start] as usize].socket;
            let mut end = first;
            let mut iovecs = 0;
            while end < runs.len()
                && end - first < BATCH
                && iovecs + runs[end].count <= SEND_IOVECS
                && self.pending[order[runs[end].start] as usize].socket == socket
            {
                iovecs += runs[end].count;
                end += 1;
            }
            self.send_runs(&order, &runs[first..end]);
            first = end;
        }
        self.pending.clear();
        (self.order, self.runs) = (order, runs);
    }

    /// Sends `runs` (all from one socket) with one sendmmsg: each run is one
    /// message whose iovecs point at its datagrams' send slots, with a
    /// `UDP_SEGMENT` control message when it holds more than one.
    fn send_runs(&mut self, order: &[u32], runs: &[Run]) {
        let datagrams: usize = runs.iter().map(|r| r.count).sum();
        let Some(fd) = self
            .sockets
            .get(self.pending[order[runs[0].start] as usize].socket as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.as_raw_fd())
        else {
            self.counters.stale += datagrams as u64;
            return;
        };
        // SAFETY: mmsghdr is plain data; all-zeroes is valid.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        // Left uninitialised: only the entries written below are passed to
        // the kernel, and zeroing 16 KiB per call would cost every flush.
        let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; SEND_IOVECS];
        let mut control = [Control([0; CMSG_LEN]); BATCH];
        let arena = self.send_arena.as_mut_ptr();
        let mut next_iov = 0;
        for (k, run) in runs.iter().enumerate() {
            let members = &order[run.start..run.start + run.count];
            for (j, &slot) in members.iter().enumerate() {
                let slot = slot as usize;
                // SAFETY: every queued datagram has a slot below send_slots, so
                // the offset is inside the arena.
                let base = unsafe { arena.add(slot * self.max_datagram) }.cast();
                iovs[next_iov + j].write(libc::iovec {
                    iov_base: base,
                    iov_len: self.pending[slot].len as usize,
                });
            }
            let head = &mut self.pending[members[0] as usize];
            let h = &mut hdrs[k].msg_hdr;
            h.msg_name = (&mut head.name as *mut RawAddr).cast();
            h.msg_namelen = head.namelen;
            h.msg_iov = iovs[next_iov].as_mut_ptr();
            h.msg_iovlen = run.count;
            if run.count > 1 {
                // The segment size travels as a u16 (datagrams are at most
                // max_datagram <= 65,507 bytes, checked at queue time).
                let size = run.segment as u16;
                let len = segment::write_cmsg(
                    &mut control[k].0,
                    libc::SOL_UDP,
                    libc::UDP_SEGMENT,
                    &size.to_ne_bytes(),
                );
                h.msg_control = control[k].0.as_mut_ptr().cast();
                h.msg_controllen = len;
            }
            next_iov += run.count;
        }
        let n = runs.len();
        let mut done = 0;
        while done < n {
            self.counters.syscalls += 1;
            // SAFETY: hdrs[done..n] are initialised and point at names, iovecs,
            // control buffers and arena bytes that outlive this synchronous call.
            let rc =
                unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr().add(done), (n - done) as u32, 0) };
            if rc > 0 {
                for (h, run) in hdrs[done..done + rc as usize].iter().zip(&runs[done..]) {
                    self.counters.datagrams_out += run.count as u64;
                    self.counters.bytes_out += u64::from(h.msg_len);
                    self.counters.gso_sends += u64::from(run.count > 1);
                }
                done += rc as usize;
                continue;
            }
            let lost: usize = runs[done..].iter().map(|r| r.count).sum();
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN | libc::ENOBUFS) => {
                    self.counters.send_would_block += lost as u64;
                    return;
                }
                Some(libc::EIO) if runs[done].count > 1 => {
                    self.gso_refused = true;
                    self.counters.send_errors += runs[done].count as u64;
                    done += 1;
                }
                // The first failing message is skipped with all its datagrams.
                _ => {
                    self.counters.send_errors += runs[done].count as u64;
                    done += 1;
                }
            }
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let max = self.events.len() as i32;
        self.counters.syscalls += 1;
        if self.has_pwait2 {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
            });
            let tsp = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `events` holds `max` entries the kernel may write; `tsp` is
            // null or points at a live timespec; no signal mask is passed.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.epoll.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    max,
                    tsp,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOSYS) => self.has_pwait2 = false,
                Some(libc::EINTR) => return Ok(0),
                _ => return Err(e),
            }
        }
        // Round up so a sub-millisecond wait does not become a busy loop.
        let ms = timeout.map_or(-1, |t| {
            t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
        });
        // SAFETY: `events` holds `max` entries the kernel may write.
        let rc =
            unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), self.events.as_mut_ptr(), max, ms) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        Err(e)
    }

    fn drain(
        &mut self,
        index: usize,
        budget: usize,
        on_datagram: &mut dyn FnMut(usize, SocketAddr, &[u8]),
    ) {
        let budget_end = self.counters.datagrams_in + budget as u64;
        while self.counters.datagrams_in < budget_end {
            let Some(fd) = self
                .sockets
                .get(index)
                .and_then(|s| s.as_ref())
                .map(|s| s.as_raw_fd())
            else {
                return;
            };
            // SAFETY: plain data; all-zeroes is valid.
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut names = [RawAddr::ZERO; BATCH];
            let mut control = [Control([0; CMSG_LEN]); BATCH];
            let arena = self.recv_arena.as_mut_ptr();
            for k in 0..self.recv_batch {
                // SAFETY: k < recv_batch, so the offset is inside the arena.
                iovs[k].iov_base = unsafe { arena.add(k * self.recv_len) }.cast();
                iovs[k].iov_len = self.recv_len;
                hdrs[k].msg_hdr.msg_name = (&mut names[k] as *mut RawAddr).cast();
                hdrs[k].msg_hdr.msg_namelen = sockaddr::NAME_LEN as u32;
                hdrs[k].msg_hdr.msg_iov = &mut iovs[k];
                hdrs[k].msg_hdr.msg_iovlen = 1;
                if self.offload {
                    hdrs[k].msg_hdr.msg_control = control[k].0.as_mut_ptr().cast();
                    hdrs[k].msg_hdr.msg_controllen = CMSG_LEN;
                }
            }
            self.counters.syscalls += 1;
            // SAFETY: every header points at a live name, iovec and arena slot
            // for this synchronous call; no timeout is passed.
            let rc = unsafe {
                libc::recvmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    self.recv_batch as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => {}
                    _ => self.counters.recv_errors += 1,
                }
                return;
            }
            let n = rc as usize;
            for k in 0..n {
                let h = &hdrs[k];
                if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    self.counters.truncated += 1;
                    continue;
                }
                let namelen = (h.msg_hdr.msg_namelen as usize).min(sockaddr::NAME_LEN);
                let Some(from) = sockaddr::parse(&names[k].0[..namelen]) else {
                    self.counters.recv_errors += 1;
                    continue;
                };
                let len = (h.msg_len as usize).min(self.recv_len);
                let bytes = &self.recv_arena[k * self.recv_len..k * self.recv_len + len];
                // With GRO one receive may hold several datagrams of the
                // same sender, all `segment` bytes but the last.
                let controllen = h.msg_hdr.msg_controllen.min(CMSG_LEN);
                let segment = if self.offload {
                    segment::gro_segment(&control[k].0[..controllen])
                } else {
                    None
                };
                let segment = segment.unwrap_or(len).max(1);
                if segment > self.max_datagram {
                    // Longer than the sender may send: as without offload.
                    self.counters.truncated += len.div_ceil(segment) as u64;
                    continue;
                }
                self.counters.gro_receives += u64::from(len > segment);
                // An empty datagram is a datagram too (chunks() yields none).
                let mut datagrams = bytes.chunks(segment);
                let mut next = Some(datagrams.next().unwrap_or(&[]));
                while let Some(datagram) = next {
                    self.counters.datagrams_in += 1;
                    self.counters.bytes_in += datagram.len() as u64;
                    on_datagram(index, from, datagram);
                    next = datagrams.next();
                }
            }
            if n < self.recv_batch {
                return;
            }
        }
    }
}

impl Datapath for MmsgDatapath {
    fn kind(&self) -> DatapathKind {
        DatapathKind::Mmsg
    }

    fn register(&mut self, socket: UdpSocket) -> io::Result<usize> {
        socket.set_nonblocking(true)?;
        if self.offload {
            let on: libc::c_int = 1;
            // SAFETY: the descriptor is open and `on` is a live c_int whose
            // size is passed.
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
        }
        let index = match self.free_sockets.pop() {
            Some(i) => i,
            None if self.sockets.len() < self.max_sockets => {
                self.sockets.push(None);
                self.sockets.len() - 1
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "mmsg datapath: socket table full",
                ))
            }
        };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: index as u64,
        };
        // SAFETY: both descriptors are open and `ev` is a valid event.
        let rc = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                socket.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            self.free_sockets.push(index);
            return Err(io::Error::last_os_error());
        }
        self.sockets[index] = Some(socket);
        Ok(index)
    }

    fn deregister(&mut self, index: usize) -> io::Result<()> {
        // Datagrams queued from it go first, while its descriptor is still open.
        self.flush();
        let Some(socket) = self.sockets.get_mut(index).and_then(Option::take) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such socket"));
        };
        // SAFETY: both descriptors are open; DEL ignores the event argument.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                socket.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
        drop(socket);
        self.free_sockets.push(index);
        Ok(())
    }

    fn send_buffer(&mut self) -> Option<&mut [u8]> {
        if self.pending.len() == self.send_slots {
            self.flush();
        }
        let at = self.pending.len() * self.max_datagram;
        Some(&mut self.send_arena[at..at + self.max_datagram])
    }

    fn queue_send(&mut self, socket: usize, to: SocketAddr, len: usize) {
        let mut name = RawAddr::ZERO;
        let namelen = name.write(to);
        self.pending.push(Queued {
            socket: socket as u32,
            len: len.min(self.max_datagram) as u32,
            namelen,
            name,
        });
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_datagram: &mut dyn FnMut(usize, SocketAddr, &[u8]),
    ) -> io::Result<()> {
        self.flush();
        let n = self.wait(timeout)?;
        let budget = (DATAGRAMS_PER_POLL / n.max(1)).max(DATAGRAMS_PER_SOCKET);
        for i in 0..n {
            let index = self.events[i].u64 as usize;
            self.drain(index, budget, on_datagram);
        }
        Ok(())
    }

    fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    fn counters(&self) -> &DatapathCounters {
        &self.counters
    }
}
