//! The io_uring datapath: one ring per I/O thread, one multishot `RecvMsgMulti`
//! per socket on a shared provided-buffer ring, sends pushed as `Send` entries
//! with a destination address (or `SendMsg`, see [`SendOp`]) and submitted
//! together with the wait in one `io_uring_enter`; while a round of
//! receives was capped (ring dry, or the kernel's per-socket batch) `poll`
//! enters again at once, up to [`DATAGRAMS_PER_POLL`].
//!
//! With offload ([`DatapathOptions::offload`]) sends wait for the next `poll`,
//! are cut into GSO runs by the planner the mmsg datapath uses, and leave as
//! one `SendMsg` with `UDP_SEGMENT` per run (`gso.rs`; zero-copy
//! `SendMsgZc` above [`DatapathOptions::zerocopy_min_bytes`]); receives take
//! GRO aggregates into 64 KiB buffers and cut them at the `UDP_GRO` segment
//! size.
//!
//! Needs Linux 6.0 (multishot recvmsg; buffer rings since 5.19). Uses
//! SINGLE_ISSUER + DEFER_TASKRUN (6.1) and registered files where the kernel
//! has them and falls back to plain setup and plain descriptors otherwise.
//!
//! Memory the kernel may touch (receive buffers, the buffer ring, send slots and
//! their `msghdr`s, GSO run headers, the receive `msghdr`) is allocated once, never moves, and is
//! freed only after every operation that references it has completed; if
//! shutdown cannot confirm that in time, it is leaked rather than freed.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant as StdInstant};

use io_uring::types::{Fd, Fixed, RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::segment::{self, Queued, CMSG_LEN, GRO_BUFFER};
use super::sockaddr::{self, RawAddr};
use super::uring_mem::{BufRing, Prepared, RunHeaders, SendSlots};
use super::{Datapath, DatapathCounters, DatapathKind, DatapathOptions, DATAGRAMS_PER_POLL};

mod gso;

/// Buffer group id of the receive buffer ring (one ring per io_uring).
const BGID: u16 = 0;
/// Operation tag in the top byte of `user_data`.
const OP_SHIFT: u32 = 56;
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CANCEL: u64 = 3;
/// A GSO send: several send slots as one `sendmsg` (offload only).
const OP_GSO: u64 = 4;
/// Receive buffers with offload: each holds a 64 KiB GRO aggregate. Few,
/// because the kernel takes them in ring order, so every buffer is written
/// once per trip round the ring: with 512 (34 MiB) each receive landed in
/// memory long gone from the cache, and uring-gso ran at 0.93x mmsg-gso in
/// datapath-bench (whose recvmmsg reuses four); with 64 (4 MiB) 1.00x, with
/// 16 about 1.04x. When they run out the multishot receive ends with
/// ENOBUFS (counted in `enobufs`), the datagrams wait in the socket's
/// buffer, and `poll` re-arms the receive and enters again at once, so a
/// burst of any size is read within the poll's budget (a PING wave's
/// uncoalesced datagrams take a buffer each). Memory: 64 buffers of
/// 65,632 bytes (aggregate, `recvmsg_out` header, name, `UDP_GRO`
/// control), 4.0 MiB per I/O thread, plus one page of ring.
const OFFLOAD_RECV_BUFFERS: usize = 64;
/// Receives the kernel makes from one socket in one go before it requeues a
/// multishot receive behind other work (`MULTISHOT_MAX_RETRY` in
/// io_uring/net.c, Linux 6.7 on; with DEFER_TASKRUN the requeued receive
/// runs at the next enter). UDP sets no IORING_CQE_F_SOCK_NONEMPTY, so a
/// socket with this many receives in one round is taken as "maybe more
/// waiting".
const MULTISHOT_RETRIES: usize = 32;
/// Submission queue entries; the completion queue gets four times as many,
/// since every socket's multishot receive can post many completions per enter.
const SQ_ENTRIES: u32 = 4_096;
/// Message flags of every send. MSG_DONTWAIT: on a full socket buffer
/// io_uring would otherwise park the send and retry it once the buffer
/// drains (poll-driven retry); with it the completion reports EAGAIN and the
/// datagram is dropped and counted in `send_would_block`, as the mmsg
/// datapath does, so that backpressure counts the same on both.
const SEND_FLAGS: i32 = libc::MSG_DONTWAIT;

/// Checks that an io_uring with the operations this datapath uses can be set up.
///
/// # Errors
/// The setup error (EPERM under seccomp, ENOSYS on old kernels), or EINVAL
/// when SendMsg/RecvMsg are missing.
pub(crate) fn probe() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if !probe.is_supported(opcode::RecvMsgMulti::CODE) || !probe.is_supported(opcode::SendMsg::CODE)
    {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

/// Whether `ring`'s kernel knows operation `code`.
fn supports(ring: &IoUring, code: u8) -> bool {
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok() && probe.is_supported(code)
}

/// Which operation carries a datagram out.
///
/// `SendTo` is the default because it measured faster: about 5 % more
/// datagrams per CPU-second than `SendMsg` on a loopback echo, which brings
/// the io_uring datapath level with the mmsg datapath (`datapath-bench`,
/// `uring-sendto/uring`). Both need nothing beyond Linux 6.0, which the
/// multishot receive needs anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SendOp {
    /// `IORING_OP_SENDMSG`: a `msghdr` with the address and one iovec.
    SendMsg,
    /// `IORING_OP_SEND` with a destination address (Linux 6.0): no `msghdr`
    /// or iovec for the kernel to copy and import.
    #[default]
    SendTo,
}

/// The io_uring datapath of one thread. Create it on the thread that uses it:
/// with SINGLE_ISSUER the ring belongs to its creator.
pub struct UringDatapath {
    // Declared first so that nothing below is freed while the ring could still
    // use it (see `Drop`).
    ring: IoUring,
    setup: &'static str,
    fixed_files: bool,
    sockets: Vec<SocketEntry>,
    free_sockets: Vec<usize>,
    max_sockets: usize,
    /// The `msghdr` every multishot receive was prepared with: only its name and
    /// control lengths matter, and `RecvMsgOut::parse` needs the same values.
    recv_hdr: Box<libc::msghdr>,
    bufs: BufRing,
    slots: SendSlots,
    /// Sockets whose multishot receive ended and must be re-armed.
    rearm: Vec<usize>,
    /// The current round of `poll` (one enter and its reaping), to count
    /// receives per socket and round; see `poll`.
    round: u32,
    /// A socket had [`MULTISHOT_RETRIES`] receives this round.
    batch_full: bool,
    /// Scratch: completions copied out of the ring before they are handled.
    cqes: Vec<(u64, i32, u32)>,
    /// Cancels submitted and not yet completed.
    cancels_in_flight: usize,
    counters: DatapathCounters,
    max_datagram: usize,
    send_op: SendOp,
    /// UDP GSO on send and GRO on receive ([`DatapathOptions::offload`]).
    offload: bool,
    /// The kernel refused a GSO send with EIO (a device without checksum
    /// offload): later sends go one datagram each; GRO stays on.
    gso_refused: bool,
    /// Offload: datagrams queued this turn and their send slots, planned
    /// into GSO runs by [`segment::plan`] at the next `poll`.
    pending: Vec<Queued>,
    pending_slots: Vec<u32>,
    /// The send plan and a run's lengths, kept for their allocations.
    order: Vec<u32>,
    runs: Vec<segment::Run>,
    lens: Vec<u32>,
    members: Vec<u32>,
    run_headers: RunHeaders,
    /// GSO sends of at least this many bytes go zero-copy
    /// ([`DatapathOptions::zerocopy_min_bytes`]; `None` also where the kernel
    /// lacks SENDMSG_ZC or refused it).
    zerocopy_min_bytes: Option<usize>,
    /// The send slots' chunks are registered buffers (a sparse table of
    /// `max_chunks` entries), registered as they are allocated; zero-copy
    /// sends whose datagrams lie in one registered chunk name it, so that
    /// the kernel does not pin and unpin their pages on every send.
    fixed_buffers: bool,
    registered_chunks: usize,
}

#[derive(Debug)]
struct SocketEntry {
    socket: Option<UdpSocket>,
    state: SocketState,
    /// Bumped on every reuse of the index, carried in the receive's user_data.
    generation: u16,
    armed: bool,
    /// Receives in round `round` of `poll`.
    round: u32,
    round_receives: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SocketState {
    Free,
    Active,
    /// Deregistered; its receive is being cancelled.
    Closing,
}

impl std::fmt::Debug for UringDatapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDatapath")
            .field("setup", &self.setup)
            .field("fixed_files", &self.fixed_files)
            .field("sockets", &self.sockets.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl UringDatapath {
    /// A ring with SINGLE_ISSUER, DEFER_TASKRUN and COOP_TASKRUN where the
    /// kernel accepts them, a buffer ring of `options.recv_buffers` entries and
    /// a sparse file table of `options.max_sockets` slots where allowed.
    ///
    /// # Errors
    /// When no ring can be set up or the buffer ring is refused.
    pub fn new(options: DatapathOptions) -> io::Result<Self> {
        // No registered ring fd: the crate keeps it per `Submitter`, and
        // `IoUring::submitter()` makes a fresh one for every call.
        let (ring, setup) = setup_ring()?;
        let max_sockets = options.max_sockets.max(1);
        // The sparse table is sized once; RLIMIT_NOFILE caps it, and plain
        // descriptors work everywhere, so a refusal only costs the lookups.
        let fixed_files = u32::try_from(max_sockets)
            .ok()
            .is_some_and(|n| ring.submitter().register_files_sparse(n).is_ok());
        let slots = SendSlots::new(options.max_datagram, options.send_buffers.max(1));
        // Zero-copy applies to GSO sends, so to offload only; it needs
        // SENDMSG_ZC (Linux 6.1).
        let zerocopy_min_bytes = options
            .zerocopy_min_bytes
            .filter(|_| options.offload && supports(&ring, opcode::SendMsgZc::CODE));
        let fixed_buffers = zerocopy_min_bytes.is_some()
            && u32::try_from(slots.max_chunks())
                .ok()
                .is_some_and(|n| ring.submitter().register_buffers_sparse(n).is_ok());
        // With offload a receive buffer holds a GRO aggregate and its
        // `UDP_GRO` control message after the header and the name.
        let (entries, buf_len) = if options.offload {
            (
                options.recv_buffers.clamp(2, OFFLOAD_RECV_BUFFERS),
                super::recv_buffer_len(GRO_BUFFER) + CMSG_LEN,
            )
        } else {
            (
                options.recv_buffers.clamp(2, 32_768),
                super::recv_buffer_len(options.max_datagram),
            )
        };
        let bufs = BufRing::new(entries.next_power_of_two() as u16, buf_len)?;
        // SAFETY: the ring memory is page-aligned, `entries` long, and lives in
        // `bufs` until the io_uring is closed (the ring is dropped first).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.ring.as_ptr() as u64,
                bufs.entries,
                BGID,
                0,
            )?;
        }
        // SAFETY: msghdr is plain data; all-zeroes means no name, no iovec, no control.
        let mut recv_hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        recv_hdr.msg_namelen = sockaddr::NAME_LEN as u32;
        if options.offload {
            recv_hdr.msg_controllen = CMSG_LEN;
        }
        Ok(UringDatapath {
            ring,
            setup,
            fixed_files,
            sockets: Vec::new(),
            free_sockets: Vec::new(),
            max_sockets,
            recv_hdr,
            bufs,
            slots,
            rearm: Vec::new(),
            round: 0,
            batch_full: false,
            cqes: Vec::with_capacity(1024),
            cancels_in_flight: 0,
            counters: DatapathCounters::default(),
            max_datagram: options.max_datagram,
            send_op: SendOp::default(),
            offload: options.offload,
            gso_refused: false,
            pending: Vec::new(),
            pending_slots: Vec::new(),
            order: Vec::new(),
            runs: Vec::new(),
            lens: Vec::new(),
            members: Vec::new(),
            run_headers: RunHeaders::default(),
            zerocopy_min_bytes,
            fixed_buffers,
            registered_chunks: 0,
        })
    }

    /// The setup flags the kernel accepted, for logs.
    pub fn setup(&self) -> &'static str {
        self.setup
    }

    /// Chooses the send operation (for measuring one against the other).
    pub fn set_send_op(&mut self, op: SendOp) {
        self.send_op = op;
    }

    /// Whether sockets are registered files.
    pub fn uses_fixed_files(&self) -> bool {
        self.fixed_files
    }

    fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: every entry pushed references memory owned by `self` that
            // stays valid until its completion arrives (send slots, `recv_hdr`,
            // the buffer ring) or no memory at all (cancels).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return;
            }
            // The submission queue is full: hand it to the kernel and retry.
            self.counters.syscalls += 1;
            if let Err(e) = self.ring.submit() {
                if !matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EINTR)) {
                    // Nothing sane to do but keep trying; the entry is not lost.
                    std::thread::yield_now();
                }
            }
        }
    }

    fn arm(&mut self, index: usize) {
        let entry = &self.sockets[index];
        let fd = entry.socket.as_ref().map_or(-1, |s| s.as_raw_fd());
        let ud = recv_user_data(index, entry.generation);
        let hdr: *const libc::msghdr = &*self.recv_hdr;
        let sqe = if self.fixed_files {
            opcode::RecvMsgMulti::new(Fixed(index as u32), hdr, BGID).build()
        } else {
            opcode::RecvMsgMulti::new(Fd(fd), hdr, BGID).build()
        };
        self.sockets[index].armed = true;
        self.push(&sqe.user_data(ud));
    }

    fn finish_close(&mut self, index: usize) {
        if self.fixed_files {
            let _ = self
                .ring
                .submitter()
                .register_files_update(index as u32, &[-1]);
        }
        let e = &mut self.sockets[index];
        e.socket = None;
        e.state = SocketState::Free;
        e.generation = e.generation.wrapping_add(1);
        self.free_sockets.push(index);
    }

    /// Handles every completion in the queue.
    fn reap(&mut self, on_datagram: &mut dyn FnMut(usize, SocketAddr, &[u8])) {
        let mut cqes = std::mem::take(&mut self.cqes);
        loop {
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            if cqes.is_empty() {
                break;
            }
            for &(ud, res, flags) in &cqes {
                match ud >> OP_SHIFT {
                    OP_RECV => self.complete_recv(ud, res, flags, on_datagram),
                    OP_SEND => self.complete_send(ud, res),
                    OP_GSO => self.complete_gso(ud, res, flags),
                    OP_CANCEL => self.cancels_in_flight = self.cancels_in_flight.saturating_sub(1),
                    _ => {}
                }
            }
            // Buffers consumed by this batch go back to the kernel in one store.
            self.bufs.publish();
        }
        self.cqes = cqes;
        let mut rearm = std::mem::take(&mut self.rearm);
        for index in rearm.drain(..) {
            let e = &self.sockets[index];
            if e.state == SocketState::Active && !e.armed {
                self.counters.rearms += 1;
                self.arm(index);
            }
        }
        self.rearm = rearm;
    }

    fn complete_recv(
        &mut self,
        ud: u64,
        res: i32,
        flags: u32,
        on_datagram: &mut dyn FnMut(usize, SocketAddr, &[u8]),
    ) {
        let index = (ud & 0xffff_ffff) as usize;
        let generation = ((ud >> 32) & 0xffff) as u16;
        let Some(entry) = self
            .sockets
            .get(index)
            .filter(|e| e.generation == generation)
        else {
            return;
        };
        let active = entry.state == SocketState::Active;
        if let Some(bid) = cqueue::buffer_select(flags) {
            let e = &mut self.sockets[index];
            if e.round == self.round {
                e.round_receives += 1;
            } else {
                (e.round, e.round_receives) = (self.round, 1);
            }
            self.batch_full |= e.round_receives as usize >= MULTISHOT_RETRIES;
            if res > 0 {
                let buf = self.bufs.buffer(bid, res as usize);
                match RecvMsgOut::parse(buf, &self.recv_hdr) {
                    // A truncated name, payload or, with offload, control
                    // message (the GRO segment size): the datagrams cannot
                    // be told apart. Without offload no control is read.
                    Ok(out)
                        if out.is_payload_truncated()
                            || out.is_name_data_truncated()
                            || (self.offload && out.is_control_data_truncated()) =>
                    {
                        self.counters.truncated += 1
                    }
                    Ok(_) if !active => self.counters.stale += 1,
                    Ok(out) => match sockaddr::parse(out.name_data()) {
                        Some(from) => {
                            let gro = if self.offload {
                                segment::gro_segment(out.control_data())
                            } else {
                                None
                            };
                            segment::deliver(
                                out.payload_data(),
                                gro,
                                self.max_datagram,
                                &mut self.counters,
                                &mut |datagram| on_datagram(index, from, datagram),
                            );
                        }
                        None => self.counters.recv_errors += 1,
                    },
                    Err(()) => self.counters.recv_errors += 1,
                }
            }
            self.bufs.push(bid);
        }
        if cqueue::more(flags) {
            return;
        }
        // The multishot receive ended: out of buffers, cancelled, or an error.
        self.sockets[index].armed = false;
        if res < 0 {
            match -res {
                libc::ENOBUFS => self.counters.enobufs += 1,
                libc::ECANCELED => {}
                _ => self.counters.recv_errors += 1,
            }
        }
        match self.sockets[index].state {
            SocketState::Active => self.rearm.push(index),
            SocketState::Closing => self.finish_close(index),
            SocketState::Free => {}
        }
    }

    /// Counts a send's completion: one datagram, tried once (see
    /// [`SEND_FLAGS`] for why a full buffer fails it instead of parking it).
    fn complete_send(&mut self, ud: u64, res: i32) {
        let slot = (ud & 0xffff_ffff) as u32;
        self.slots.release(slot);
        let result = usize::try_from(res).map_err(|_| -res);
        self.counters.count_send(1, result);
    }

    fn raw_fd(&self, socket: usize) -> i32 {
        self.sockets
            .get(socket)
            .and_then(|e| e.socket.as_ref())
            .map_or(-1, |s| s.as_raw_fd())
    }

    /// Pushes the send of one datagram in slot `slot`, prepared as `p`, on
    /// socket `socket` with the configured [`SendOp`].
    fn push_send(&mut self, socket: usize, p: &Prepared, slot: u32) {
        let fd = self.raw_fd(socket);
        let sqe = match (self.send_op, self.fixed_files) {
            (SendOp::SendMsg, true) => opcode::SendMsg::new(Fixed(socket as u32), p.msg)
                .flags(SEND_FLAGS as u32)
                .build(),
            (SendOp::SendMsg, false) => opcode::SendMsg::new(Fd(fd), p.msg)
                .flags(SEND_FLAGS as u32)
                .build(),
            (SendOp::SendTo, true) => opcode::Send::new(Fixed(socket as u32), p.buf, p.len)
                .dest_addr(p.name)
                .dest_addr_len(p.namelen)
                .flags(SEND_FLAGS)
                .build(),
            (SendOp::SendTo, false) => opcode::Send::new(Fd(fd), p.buf, p.len)
                .dest_addr(p.name)
                .dest_addr_len(p.namelen)
                .flags(SEND_FLAGS)
                .build(),
        };
        self.slots.in_flight += 1;
        self.push(&sqe.user_data((OP_SEND << OP_SHIFT) | u64::from(slot)));
    }

    /// One `io_uring_enter`: submits what is queued (sends, re-arms) and
    /// waits for one completion or `wait`; with completions already waiting
    /// it only submits and runs deferred task work (GETEVENTS with a zero
    /// timeout). `want` stays 1: counting our own sends in it (to sleep
    /// through their completions) would sleep the whole timeout whenever a
    /// send's completion is late, leaving input unread meanwhile. The cost is
    /// one extra enter in a turn whose sends complete at once.
    fn enter(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let ready = !self.ring.completion().is_empty();
        self.counters.syscalls += 1;
        let wait = if ready { Some(Duration::ZERO) } else { wait };
        let result = match wait {
            Some(t) => {
                let ts = Timespec::from(t);
                self.ring
                    .submitter()
                    .submit_with_args(1, &SubmitArgs::new().timespec(&ts))
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match result {
            Ok(_) => Ok(()),
            // ETIME: the timeout passed; EINTR: a signal; EBUSY: completions
            // are backed up and reaping them is the cure.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Operations the kernel still holds references for.
    fn in_flight(&self) -> usize {
        self.slots.in_flight
            + self.run_headers.in_flight
            + self.sockets.iter().filter(|e| e.armed).count()
            + self.cancels_in_flight
    }
}

impl Datapath for UringDatapath {
    fn kind(&self) -> DatapathKind {
        DatapathKind::Uring
    }

    fn register(&mut self, socket: UdpSocket) -> io::Result<usize> {
        if self.offload {
            segment::enable_gro(&socket)?;
        }
        let index = match self.free_sockets.pop() {
            Some(i) => i,
            None if self.sockets.len() < self.max_sockets => {
                self.sockets.push(SocketEntry {
                    socket: None,
                    state: SocketState::Free,
                    generation: 0,
                    armed: false,
                    round: 0,
                    round_receives: 0,
                });
                self.sockets.len() - 1
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "io_uring datapath: socket table full",
                ))
            }
        };
        if self.fixed_files {
            if let Err(e) = self
                .ring
                .submitter()
                .register_files_update(index as u32, &[socket.as_raw_fd()])
            {
                self.free_sockets.push(index);
                return Err(e);
            }
        }
        let e = &mut self.sockets[index];
        e.socket = Some(socket);
        e.state = SocketState::Active;
        self.arm(index);
        Ok(index)
    }

    fn deregister(&mut self, index: usize) -> io::Result<()> {
        // Datagrams queued from it go first, while it is still registered:
        // submitted now, since a socket closed below at once would leave
        // them to fail (or, with plain descriptors, to leave on whatever
        // socket reuses the number).
        self.flush();
        let _ = self.ring.submit();
        let Some(e) = self
            .sockets
            .get_mut(index)
            .filter(|e| e.state == SocketState::Active)
        else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such socket"));
        };
        e.state = SocketState::Closing;
        if !e.armed {
            self.finish_close(index);
            return Ok(());
        }
        let target = recv_user_data(index, e.generation);
        self.cancels_in_flight += 1;
        let sqe = opcode::AsyncCancel::new(target)
            .build()
            .user_data(OP_CANCEL << OP_SHIFT);
        self.push(&sqe);
        Ok(())
    }

    fn send_buffer(&mut self) -> Option<&mut [u8]> {
        if self.slots.reserve().is_none() {
            self.counters.send_stalls += 1;
            return None;
        }
        self.register_chunks();
        self.slots.reserved_buffer()
    }

    fn queue_send(&mut self, socket: usize, to: SocketAddr, len: usize) {
        let Some(slot) = self.slots.reserved.take() else {
            return;
        };
        let active = self
            .sockets
            .get(socket)
            .is_some_and(|e| e.state == SocketState::Active);
        if !active {
            self.slots.free.push(slot);
            self.counters.stale += 1;
            return;
        }
        let len = len.min(self.max_datagram);
        if self.offload {
            let mut name = RawAddr::ZERO;
            let namelen = name.write(to);
            self.pending.push(Queued {
                socket: socket as u32,
                len: len as u32,
                namelen,
                name,
            });
            self.pending_slots.push(slot);
            return;
        }
        let p = self.slots.prepare(slot, to, len);
        self.push_send(socket, &p, slot);
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_datagram: &mut dyn FnMut(usize, SocketAddr, &[u8]),
    ) -> io::Result<()> {
        self.flush();
        let budget_end = self.counters.datagrams_in + DATAGRAMS_PER_POLL as u64;
        let mut wait = timeout;
        loop {
            self.enter(wait)?;
            let (before, dry_before) = (self.counters.datagrams_in, self.counters.enobufs);
            self.round = self.round.wrapping_add(1);
            self.batch_full = false;
            self.reap(on_datagram);
            // One enter takes at most a ring's worth of receives, and the
            // kernel at most MULTISHOT_RETRIES from one socket before it
            // requeues the receive for the next enter; either way the
            // socket may hold more (in a PING wave, thousands). Left for the
            // next turn they pile up in the socket's buffer, one ring or 33
            // receives a turn, where a wave overflows it. So enter again at
            // once, without waiting: `reap` gave every buffer back and
            // re-armed receives that ran dry. Up to the poll's budget, as
            // the mmsg datapath reads, and only while each round delivers,
            // so the loop ends.
            let capped = self.counters.enobufs > dry_before || self.batch_full;
            let delivered = self.counters.datagrams_in > before;
            if !capped || !delivered || self.counters.datagrams_in >= budget_end {
                return Ok(());
            }
            self.counters.drains += 1;
            wait = Some(Duration::ZERO);
        }
    }

    fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    fn counters(&self) -> &DatapathCounters {
        &self.counters
    }
}

impl Drop for UringDatapath {
    fn drop(&mut self) {
        // The kernel tears a closed ring down asynchronously, so memory an
        // operation references must outlive the operation: cancel every receive,
        // wait (bounded) until nothing is in flight, and leak the memory if that
        // cannot be confirmed.
        for index in 0..self.sockets.len() {
            if self.sockets[index].state == SocketState::Active {
                let _ = self.deregister(index);
            }
        }
        let deadline = StdInstant::now() + Duration::from_secs(2);
        while self.in_flight() > 0 && StdInstant::now() < deadline {
            let ts = Timespec::from(Duration::from_millis(10));
            let _ = self
                .ring
                .submitter()
                .submit_with_args(1, &SubmitArgs::new().timespec(&ts));
            self.reap(&mut |_, _, _| {});
        }
        if self.in_flight() > 0 {
            self.bufs.leak = true;
            self.slots.leak = true;
            self.run_headers.leak = true;
            std::mem::forget(std::mem::replace(
                &mut self.recv_hdr,
                Box::new(zeroed_msghdr()),
            ));
        }
    }
}

fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain data; all-zeroes is a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

fn recv_user_data(index: usize, generation: u16) -> u64 {
    (OP_RECV << OP_SHIFT) | (u64::from(generation) << 32) | index as u64
}

/// Tries setups from the most to the least capable.
fn setup_ring() -> io::Result<(IoUring, &'static str)> {
    let cq = SQ_ENTRIES * 4;
    let mut last = None;
    for (name, level) in [
        ("single_issuer+defer_taskrun+coop_taskrun", 3),
        ("single_issuer+defer_taskrun", 2),
        ("coop_taskrun", 1),
        ("plain", 0),
    ] {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq);
        if level >= 1 {
            // Keep submitting after one bad entry (5.18); COOP avoids IPIs.
            b.setup_submit_all();
        }
        match level {
            3 => {
                b.setup_single_issuer()
                    .setup_defer_taskrun()
                    .setup_coop_taskrun();
            }
            2 => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
            1 => {
                b.setup_coop_taskrun();
            }
            _ => {}
        }
        match b.build(SQ_ENTRIES) {
            Ok(ring) => return Ok((ring, name)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::ENOSYS)))
}
