//! UDP datapaths: how datagrams get between the kernel and the nodes of one I/O
//! thread. Two implementations share one interface, [`Datapath`]:
//!
//! - [`uring::UringDatapath`]: one io_uring per thread, a multishot `RecvMsgMulti`
//!   per socket on one provided buffer ring, every send of a loop iteration
//!   submitted with the wait in one `io_uring_enter`.
//! - [`mmsg::MmsgDatapath`]: `recvmmsg` batches, one `sendmsg` per datagram
//!   (so that each has its own error) and `epoll`, for hosts where io_uring
//!   is refused (Docker's default seccomp profile, `kernel.io_uring_disabled`).
//!
//! Both try every datagram once and count its outcome through
//! [`DatapathCounters`]' one classification: sent, refused by a policy
//! (EPERM/EACCES), no room (EAGAIN/ENOBUFS), or another error. A failed send
//! is dropped, never retried, so that a firewall's or the harness's loss
//! counts are not hidden by the datapath's own second tries.
//!
//! All of the crate's `unsafe` lives under this module (the crate root denies it
//! elsewhere); every block names its invariant in a `SAFETY:` comment.

pub mod mmsg;
mod segment;
mod sockaddr;
pub mod sys;
pub mod uring;
mod uring_mem;

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

/// A UDP datapath for the sockets of one I/O thread.
///
/// The shape is the drive loop's: the host queues every datagram of a loop
/// iteration with [`send_buffer`](Datapath::send_buffer) and
/// [`queue_send`](Datapath::queue_send), then calls [`poll`](Datapath::poll), which
/// hands the whole batch to the kernel, waits for input or the timeout, and passes
/// each received datagram to a callback that borrows it where the kernel put it.
pub trait Datapath {
    /// Which implementation this is.
    fn kind(&self) -> DatapathKind;

    /// Takes a bound UDP socket and starts receiving on it.
    ///
    /// Returns the socket's index: small, dense, and reused after
    /// [`deregister`](Datapath::deregister).
    ///
    /// # Errors
    /// When the kernel refuses to watch the socket or the datapath is full.
    fn register(&mut self, socket: UdpSocket) -> io::Result<usize>;

    /// Stops receiving on socket `index` and closes it once the kernel lets go
    /// of it. Datagrams still in flight for it are dropped.
    ///
    /// # Errors
    /// When `index` is not a registered socket.
    fn deregister(&mut self, index: usize) -> io::Result<()>;

    /// A buffer for the next outgoing datagram, at least
    /// [`max_datagram`](Datapath::max_datagram) bytes long. Calling it again
    /// without `queue_send` returns the same buffer.
    ///
    /// `None` when every send buffer is still owned by the kernel; the caller
    /// keeps its datagram and tries again after the next `poll`.
    fn send_buffer(&mut self) -> Option<&mut [u8]>;

    /// Queues the first `len` bytes of the buffer last returned by `send_buffer`,
    /// to go from socket `socket` to `to` at the next `poll`.
    fn queue_send(&mut self, socket: usize, to: SocketAddr, len: usize);

    /// Sends what is queued, waits until a datagram arrives or `timeout` passes
    /// (`None`: no limit), and calls `on_datagram(socket, from, bytes)` for every
    /// datagram received. The bytes are borrowed from the receive buffer for the
    /// call only.
    ///
    /// # Errors
    /// Only for failures of the datapath itself (a broken ring or epoll set);
    /// per-datagram errors are counted in [`counters`](Datapath::counters).
    fn poll(
        &mut self,
        timeout: Option<Duration>,
        on_datagram: &mut dyn FnMut(usize, SocketAddr, &[u8]),
    ) -> io::Result<()>;

    /// Largest datagram a send buffer holds.
    fn max_datagram(&self) -> usize;

    /// What the datapath has done so far.
    fn counters(&self) -> &DatapathCounters;
}

/// Counters every datapath keeps (cumulative, owned by its I/O thread).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatapathCounters {
    /// Datagrams handed to the receive callback.
    pub datagrams_in: u64,
    /// Their bytes (UDP payload).
    pub bytes_in: u64,
    /// Datagrams the kernel accepted for sending.
    pub datagrams_out: u64,
    /// Their bytes (UDP payload).
    pub bytes_out: u64,
    /// Datagrams a policy refused: EPERM or EACCES, from a firewall rule in
    /// the output path, a cgroup BPF program, or a broadcast without
    /// SO_BROADCAST. Dropped, never retried: a second try would ask the
    /// policy again and, where the policy counts, count one datagram twice.
    pub send_refused: u64,
    /// Datagrams dropped for want of room: EAGAIN (EWOULDBLOCK), the socket's
    /// send buffer is full; ENOBUFS, the kernel is out of memory (a full
    /// device queue reports ENOBUFS only with IP_RECVERR, which these sockets
    /// leave off, so such a drop counts as sent). Dropped, never retried, on
    /// both datapaths: backpressure is loss to a UDP protocol, whose timers
    /// resend what matters.
    pub send_would_block: u64,
    /// Datagrams any other send error dropped (ENETUNREACH, EMSGSIZE, EIO
    /// from a refused GSO send, ...). Never retried.
    pub send_errors: u64,
    /// Times `send_buffer` had no buffer to give (all in flight).
    pub send_stalls: u64,
    /// Receive errors other than "nothing to read".
    pub recv_errors: u64,
    /// Datagrams longer than a receive buffer, dropped.
    pub truncated: u64,
    /// Datagrams for a socket already deregistered, dropped.
    pub stale: u64,
    /// io_uring only: multishot receives that ended because the buffer ring was
    /// empty (ENOBUFS); each is re-armed once buffers are back.
    pub enobufs: u64,
    /// io_uring only: multishot receives re-armed after they ended.
    pub rearms: u64,
    /// io_uring only: extra enters within one `poll` to take what a dry
    /// buffer ring left queued in the sockets (see [`DATAGRAMS_PER_POLL`]).
    pub drains: u64,
    /// System calls made (io_uring_enter, or epoll_wait + recvmmsg + sendmsg).
    pub syscalls: u64,
    /// Offload only: sends that carried several datagrams as one (UDP GSO).
    pub gso_sends: u64,
    /// Offload only: receives that held several datagrams (UDP GRO).
    pub gro_receives: u64,
    /// io_uring with offload: GSO sends made zero-copy (`SENDMSG_ZC`).
    pub zc_sends: u64,
    /// Of those, the ones whose notification said the kernel copied the
    /// data after all (always on loopback and veth: a page lent to the stack
    /// is copied before it reaches a local socket).
    pub zc_copied: u64,
}

impl DatapathCounters {
    /// Datagrams handed to the datapath for sending that did not leave:
    /// refused, would-block and other send errors (each send attempted once).
    pub fn send_drops(&self) -> u64 {
        self.send_refused + self.send_would_block + self.send_errors
    }

    /// Counts the outcome of one send of `datagrams` datagrams: `Ok(bytes)`
    /// when the kernel took them, `Err(errno)` when it refused.
    ///
    /// Both datapaths count through here, so that a refusal lands in the same
    /// counter whichever runs. A GSO send (a run of datagrams in one
    /// `sendmsg`) succeeds or fails whole, and every datagram of a failed run
    /// is counted: a firewall sees the run as one packet before segmentation,
    /// so with offload `send_refused` exceeds the firewall's packet count.
    pub(crate) fn count_send(&mut self, datagrams: u64, result: Result<usize, i32>) {
        match result {
            Ok(bytes) => {
                self.datagrams_out += datagrams;
                self.bytes_out += bytes as u64;
            }
            Err(errno) => match SendError::of(errno) {
                SendError::Refused => self.send_refused += datagrams,
                SendError::WouldBlock => self.send_would_block += datagrams,
                SendError::Other => self.send_errors += datagrams,
            },
        }
    }
}

/// Why a send failed, in the classes counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// EPERM, EACCES: a policy said no.
    Refused,
    /// EAGAIN (= EWOULDBLOCK on Linux), ENOBUFS: no room.
    WouldBlock,
    /// Anything else.
    Other,
}

impl SendError {
    /// The class of a send's error number.
    pub(crate) fn of(errno: i32) -> SendError {
        match errno {
            libc::EPERM | libc::EACCES => SendError::Refused,
            libc::EAGAIN | libc::ENOBUFS => SendError::WouldBlock,
            _ => SendError::Other,
        }
    }
}

/// Which datapath runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatapathKind {
    /// io_uring: multishot receive on a buffer ring, batched submission.
    Uring,
    /// recvmmsg/sendmsg with epoll.
    Mmsg,
}

impl DatapathKind {
    /// Lower-case name, as on the command line and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            DatapathKind::Uring => "uring",
            DatapathKind::Mmsg => "mmsg",
        }
    }
}

impl fmt::Display for DatapathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the user asked for: a datapath, or `auto` (io_uring where it works).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum DatapathChoice {
    /// io_uring when the probe succeeds, mmsg otherwise (logged once).
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// recvmmsg/sendmsg.
    Mmsg,
}

impl FromStr for DatapathChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DatapathChoice::Auto),
            "uring" => Ok(DatapathChoice::Uring),
            "mmsg" => Ok(DatapathChoice::Mmsg),
            _ => Err(format!(
                "unknown datapath {s:?} (expected auto, uring or mmsg)"
            )),
        }
    }
}

/// Datagrams one `poll` reads at most (both datapaths; the last receive
/// may take it past by one batch): bounds the time input can hold the
/// thread (and the deadlines waiting behind it, about 2 to 6 ms of protocol
/// work) while letting one shared socket, which carries the input of many
/// nodes, take all of it. What is left waits in the socket's buffer for the
/// next `poll`.
pub const DATAGRAMS_PER_POLL: usize = 2_048;

/// Sizes shared by both datapaths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatapathOptions {
    /// Largest datagram sent or received whole; longer ones are dropped and
    /// counted as truncated. The node's `Config::max_datagram` belongs here.
    pub max_datagram: usize,
    /// Most sockets registered at once (io_uring sizes its file table by it).
    pub max_sockets: usize,
    /// Receive buffers (io_uring: buffer ring entries, rounded up to a power of
    /// two, at most 32,768). More absorbs bigger bursts at 2 KiB each.
    pub recv_buffers: usize,
    /// Most datagrams queued or in flight for sending at once.
    pub send_buffers: usize,
    /// UDP segmentation offload: datagrams of one turn from the same socket
    /// to the same address and of the same length leave as one GSO send, and
    /// sockets receive with UDP GRO, so that many datagrams cross the stack
    /// as one. Worth it when many datagrams share a destination socket (the
    /// shared-socket mode). Both datapaths: mmsg with `sendmsg` and
    /// `recvmmsg`, io_uring with `IORING_OP_SENDMSG` and multishot receives
    /// into 64 KiB buffers.
    pub offload: bool,
    /// io_uring with offload: GSO sends of at least this many bytes go
    /// zero-copy (`SENDMSG_ZC` from registered send buffers, each buffer kept
    /// until the kernel's notification that it is done with it); smaller ones
    /// and every send when `None` are copied. See [`ZEROCOPY_MIN_BYTES`].
    pub zerocopy_min_bytes: Option<usize>,
}

/// The default for [`DatapathOptions::zerocopy_min_bytes`]: never, because
/// no crossover was found. In `datapath-bench` (2026-12-06, Xeon, 6.18)
/// zero-copy GSO sends of 1, 4 and 8 KB ran at 0.87-0.90x the datagrams per
/// CPU-second of copied ones: on loopback (and veth) the kernel copies lent
/// pages before local delivery anyway (every notification says so,
/// `zc_copied`), so zero-copy only adds the pinning and a second completion.
/// Larger sends cannot go zero-copy at all (see the uring datapath's
/// `ZEROCOPY_MAX_PAGES`). A NIC that transmits from user pages is where it
/// could pay; measure there before setting it.
pub const ZEROCOPY_MIN_BYTES: Option<usize> = None;

impl Default for DatapathOptions {
    fn default() -> Self {
        DatapathOptions {
            max_datagram: 1_400,
            max_sockets: 1_024,
            recv_buffers: 4_096,
            send_buffers: 16_384,
            offload: false,
            zerocopy_min_bytes: ZEROCOPY_MIN_BYTES,
        }
    }
}

/// Environment variable that makes the io_uring probe fail, so that tests and
/// operators can see the fallback without a seccomp profile.
pub const FORCE_PROBE_FAIL_ENV: &str = "GOSSIP_FORCE_URING_PROBE_FAIL";

/// Why io_uring cannot be used here.
#[derive(Debug)]
pub enum ProbeError {
    /// `kernel.io_uring_disabled` is 2 (or 1 and we are not in the allowed group).
    Disabled(u8),
    /// `io_uring_setup` failed (EPERM from seccomp, ENOSYS from an old kernel...).
    Setup(io::Error),
    /// Forced by [`FORCE_PROBE_FAIL_ENV`].
    Forced,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Disabled(v) => write!(f, "kernel.io_uring_disabled = {v}"),
            ProbeError::Setup(e) => write!(f, "io_uring_setup failed: {e}"),
            ProbeError::Forced => write!(f, "probe forced to fail by {FORCE_PROBE_FAIL_ENV}=1"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Checks once whether io_uring works here: the sysctl, then a real
/// `io_uring_setup` with the features the uring datapath needs (multishot
/// receive and buffer rings need Linux 6.0).
///
/// # Errors
/// Why it does not.
pub fn probe_uring() -> Result<(), ProbeError> {
    if std::env::var_os(FORCE_PROBE_FAIL_ENV).is_some_and(|v| v == "1") {
        return Err(ProbeError::Forced);
    }
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        // 1 allows members of kernel.io_uring_group; the setup below tells.
        if s.trim() == "2" {
            return Err(ProbeError::Disabled(2));
        }
    }
    uring::probe().map_err(ProbeError::Setup)
}

/// Resolves a choice to a datapath. `auto` runs `probe` and, when it fails,
/// returns mmsg with the one line to log; an explicit `uring` is never
/// downgraded (creating it fails instead).
pub fn resolve(
    choice: DatapathChoice,
    probe: impl FnOnce() -> Result<(), ProbeError>,
) -> (DatapathKind, Option<String>) {
    match choice {
        DatapathChoice::Uring => (DatapathKind::Uring, None),
        DatapathChoice::Mmsg => (DatapathKind::Mmsg, None),
        DatapathChoice::Auto => match probe() {
            Ok(()) => (DatapathKind::Uring, None),
            Err(e) => (
                DatapathKind::Mmsg,
                Some(format!(
                    "io_uring unavailable ({e}); falling back to the mmsg datapath"
                )),
            ),
        },
    }
}

/// Creates a datapath of the given kind for the calling thread (an io_uring
/// with SINGLE_ISSUER belongs to the thread that creates it).
///
/// # Errors
/// When the kernel refuses the ring, the buffer ring or the epoll set.
pub fn create(kind: DatapathKind, options: DatapathOptions) -> io::Result<Box<dyn Datapath>> {
    Ok(match kind {
        DatapathKind::Uring => Box::new(uring::UringDatapath::new(options)?),
        DatapathKind::Mmsg => Box::new(mmsg::MmsgDatapath::new(options)?),
    })
}

/// Bytes a receive buffer needs for `max_datagram`, with room for io_uring's
/// `recvmsg_out` header and the source address, rounded to a cache line.
pub(crate) fn recv_buffer_len(max_datagram: usize) -> usize {
    (max_datagram + 16 + sockaddr::NAME_LEN + 63) & !63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_mmsg_with_one_line_when_the_probe_fails() {
        let (kind, line) = resolve(DatapathChoice::Auto, || Err(ProbeError::Forced));
        assert_eq!(kind, DatapathKind::Mmsg);
        let line = line.expect("a fallback is logged");
        assert!(line.contains("falling back to the mmsg datapath"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn explicit_choices_are_never_probed() {
        let probe = || -> Result<(), ProbeError> { panic!("probed") };
        assert_eq!(
            resolve(DatapathChoice::Mmsg, probe),
            (DatapathKind::Mmsg, None)
        );
        assert_eq!(
            resolve(DatapathChoice::Uring, probe),
            (DatapathKind::Uring, None)
        );
    }

    #[test]
    fn sends_count_by_outcome_and_a_failed_gso_run_counts_each_datagram() {
        let mut c = DatapathCounters::default();
        c.count_send(1, Ok(100));
        c.count_send(3, Ok(300));
        c.count_send(1, Err(libc::EPERM));
        c.count_send(1, Err(libc::EACCES));
        c.count_send(4, Err(libc::EPERM));
        c.count_send(1, Err(libc::EAGAIN));
        c.count_send(1, Err(libc::EWOULDBLOCK));
        c.count_send(1, Err(libc::ENOBUFS));
        c.count_send(2, Err(libc::ENETUNREACH));
        c.count_send(1, Err(libc::EMSGSIZE));
        assert_eq!((c.datagrams_out, c.bytes_out), (4, 400));
        assert_eq!(
            (c.send_refused, c.send_would_block, c.send_errors),
            (6, 3, 3)
        );
        assert_eq!(c.send_drops(), 12);
    }

    #[test]
    fn choices_parse_from_their_names() {
        assert_eq!("auto".parse(), Ok(DatapathChoice::Auto));
        assert_eq!("uring".parse(), Ok(DatapathChoice::Uring));
        assert_eq!("mmsg".parse(), Ok(DatapathChoice::Mmsg));
        assert!("epoll".parse::<DatapathChoice>().is_err());
    }
}
