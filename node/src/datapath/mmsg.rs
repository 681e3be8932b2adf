//! The mmsg datapath: the uring datapath's shape on classic system calls,
//! for hosts where io_uring is refused.
//!
//! Sockets are non-blocking and watched by one level-triggered epoll set. Sends
//! queued during a loop iteration go out at the next `poll`, one `sendmsg` per
//! datagram (or per GSO run with offload) so that each has its own error and
//! is tried once (why not `sendmmsg`: see `flush`); a ready socket is read
//! with `recvmmsg` in batches of [`BATCH`].

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::segment::{self, Control, Queued, CMSG_LEN, GRO_BUFFER};
use super::sockaddr::{self, RawAddr};
use super::{Datapath, DatapathCounters, DatapathKind, DatapathOptions, DATAGRAMS_PER_POLL};

/// Datagrams per recvmmsg call.
pub const BATCH: usize = 64;
/// The least a ready socket may read per poll ([`DATAGRAMS_PER_POLL`] is
/// shared among the ready sockets; level-triggered epoll reports a socket
/// again if more is waiting).
const DATAGRAMS_PER_SOCKET: usize = 4 * BATCH;
/// Messages per recvmmsg with offload: each may hold up to 64 datagrams, so
/// a few keep one call within the per-socket budget.
const GRO_BATCH: usize = 4;
/// Send buffers: more than this many queued datagrams are flushed early.
const SEND_SLOTS: usize = 1_024;

/// The mmsg datapath (recvmmsg, sendmsg, epoll) of one thread.
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
    runs: Vec<segment::Run>,
    /// epoll_pwait2 (Linux 5.11) waits with microsecond precision; without it
    /// epoll_wait rounds the timeout up to a millisecond.
    has_pwait2: bool,
    counters: DatapathCounters,
}

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
    ///
    /// One `sendmsg` per message, never `sendmmsg`: when `sendmmsg` meets a
    /// message the kernel refuses after it sent others, it returns the count
    /// sent and drops the error (net/socket.c, `__sys_sendmmsg`: "We only
    /// return an error if no datagrams were able to be sent"; `errno`,
    /// `SO_ERROR` and the message's `msg_len` stay untouched). Learning why
    /// means sending that message again: a second try, which a random
    /// firewall rule may let through, so the refusal would be counted as
    /// neither sent nor refused and the firewall would see one datagram twice
    /// (issue 17). One call per message gives every message its own error
    /// and one try, for about 2 % of node-mmsg's datagrams per CPU-second in
    /// `datapath-bench` (1.05 system calls per datagram instead of 0.06; the
    /// kernel's own work per datagram dominates).
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
        for run in &runs {
            self.send_run(&order[run.start..run.start + run.count], run.segment);
        }
        self.pending.clear();
        (self.order, self.runs) = (order, runs);
    }

    /// Sends the datagrams in send slots `members` (one socket, one
    /// destination) with one system call: `sendto` for one datagram,
    /// `sendmsg` with one iovec per datagram and a `UDP_SEGMENT` control
    /// message of `segment` bytes for several. The send is tried once and
    /// counted by [`DatapathCounters::count_send`], whatever its outcome.
    fn send_run(&mut self, members: &[u32], segment: u32) {
        let datagrams = members.len() as u64;
        let head = members[0] as usize;
        let Some(fd) = self
            .sockets
            .get(self.pending[head].socket as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.as_raw_fd())
        else {
            self.counters.stale += datagrams;
            return;
        };
        let arena = self.send_arena.as_ptr();
        let q = &self.pending[head];
        let name: *const libc::sockaddr = (&q.name as *const RawAddr).cast();
        let result = if members.len() == 1 {
            // sendto: no msghdr or iovec for the kernel to copy and import,
            // which made the mmsg cases of datapath-bench 3 to 5 % faster
            // than sendmsg.
            // SAFETY: the slot is below send_slots, so the offset is inside
            // the arena.
            let base = unsafe { arena.add(head * self.max_datagram) };
            let len = q.len as usize;
            let namelen = q.namelen;
            Self::try_once(&mut self.counters, || {
                // SAFETY: `base` holds `len` bytes of the arena and `name`
                // `namelen` bytes of a live socket name, both read only
                // during this synchronous call.
                unsafe { libc::sendto(fd, base.cast(), len, 0, name, namelen) }
            })
        } else {
            // Left uninitialised: only the entries written below are passed
            // to the kernel (a run holds at most MAX_SEGMENTS datagrams).
            let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; segment::MAX_SEGMENTS];
            for (j, &slot) in members.iter().enumerate() {
                let slot = slot as usize;
                // SAFETY: every queued datagram has a slot below send_slots,
                // so the offset is inside the arena.
                let base = unsafe { arena.add(slot * self.max_datagram) };
                iovs[j].write(libc::iovec {
                    iov_base: base.cast_mut().cast(),
                    iov_len: self.pending[slot].len as usize,
                });
            }
            // The segment size travels as a u16 (datagrams are at most
            // max_datagram <= 65,507 bytes, checked at queue time).
            let mut control = Control([0; CMSG_LEN]);
            let controllen = segment::write_cmsg(
                &mut control.0,
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                &(segment as u16).to_ne_bytes(),
            );
            // SAFETY: msghdr is plain data; all-zeroes is valid (no name, no
            // iovec, no control).
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = name.cast_mut().cast();
            h.msg_namelen = q.namelen;
            h.msg_iov = iovs[0].as_mut_ptr();
            h.msg_iovlen = members.len();
            h.msg_control = control.0.as_mut_ptr().cast();
            h.msg_controllen = controllen;
            let result = Self::try_once(&mut self.counters, || {
                // SAFETY: `h` points at a name, iovecs, a control buffer and
                // arena bytes, all read only during this synchronous call.
                unsafe { libc::sendmsg(fd, &h, 0) }
            });
            if result == Err(libc::EIO) {
                // A device without checksum offload refuses GSO sends: later
                // sends go one datagram each (this run counts as an error).
                self.gso_refused = true;
            }
            self.counters.gso_sends += u64::from(result.is_ok());
            result
        };
        self.counters.count_send(datagrams, result);
    }

    /// Makes one send system call, again only if a signal interrupted it
    /// (before the datagram was built: a non-blocking UDP send has nothing to
    /// wait for, so that is not a second try). `Ok(bytes)` or `Err(errno)`.
    fn try_once(
        counters: &mut DatapathCounters,
        mut send: impl FnMut() -> isize,
    ) -> Result<usize, i32> {
        loop {
            counters.syscalls += 1;
            if let Ok(bytes) = usize::try_from(send()) {
                return Ok(bytes);
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(errno) => return Err(errno),
                None => return Err(libc::EIO),
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
                // With offload, a truncated control message may have lost
                // the GRO segment size: the datagrams could not be told
                // apart. Without it no control message is read.
                let ctrunc = if self.offload { libc::MSG_CTRUNC } else { 0 };
                if h.msg_hdr.msg_flags & (libc::MSG_TRUNC | ctrunc) != 0 {
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
                let gro = if self.offload {
                    segment::gro_segment(&control[k].0[..controllen])
                } else {
                    None
                };
                segment::deliver(
                    bytes,
                    gro,
                    self.max_datagram,
                    &mut self.counters,
                    &mut |datagram| on_datagram(index, from, datagram),
                );
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
            segment::enable_gro(&socket)?;
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
