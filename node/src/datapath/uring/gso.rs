//! The io_uring datapath's offload sends: the turn's queued datagrams planned
//! into GSO runs, each run one `SENDMSG` (or `SENDMSG_ZC`) with a
//! `UDP_SEGMENT` control message, and their completions.

use io_uring::cqueue;
use io_uring::opcode;
use io_uring::types::{Fd, Fixed};

use super::super::segment;
use super::super::uring_mem::SendSlots;
use super::{UringDatapath, OP_GSO, OP_SHIFT, SEND_FLAGS};

/// `IORING_SEND_ZC_REPORT_USAGE`: the notification says whether the kernel
/// copied the data after all (its result carries
/// [`NOTIF_USAGE_ZC_COPIED`]).
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
const NOTIF_USAGE_ZC_COPIED: i32 = 1 << 31;
/// Pages a zero-copy send may span: the kernel lends each page of each
/// iovec to the skb as one fragment, an skb holds `MAX_SKB_FRAGS` (17 by
/// default), and a send needing more fails with EMSGSIZE. A run's datagrams
/// sit in separate send slots, so a run qualifies only if its buffers span
/// at most this many pages (with 1,000-byte datagrams, about 12 of them).
const ZEROCOPY_MAX_PAGES: usize = 16;

impl UringDatapath {
    /// Counts a GSO send's completion: its datagrams succeed or fail whole.
    ///
    /// A zero-copy send completes twice: first with its result (and
    /// `IORING_CQE_F_MORE`), then with `IORING_CQE_F_NOTIF` once the kernel
    /// no longer reads its buffers; only then are its slots free again.
    pub(super) fn complete_gso(&mut self, ud: u64, res: i32, flags: u32) {
        let run = (ud & 0xffff_ffff) as u32;
        if cqueue::notif(flags) {
            self.counters.zc_copied += u64::from(res & NOTIF_USAGE_ZC_COPIED != 0);
            self.run_headers.give_back(run, &mut self.slots);
            self.run_headers.release(run, &mut self.slots);
            return;
        }
        let (datagrams, zerocopy) = self.run_headers.of(run);
        let result = usize::try_from(res).map_err(|_| -res);
        match result {
            // A device without checksum offload refuses GSO sends: later
            // sends go one datagram each (this run counts as an error).
            Err(libc::EIO) => self.gso_refused = true,
            // A kernel that cannot send from registered vectors (before
            // 6.15) or not zero-copy at all: later sends do without.
            Err(libc::EINVAL | libc::EFAULT | libc::EOPNOTSUPP) if zerocopy => {
                if self.fixed_buffers {
                    self.fixed_buffers = false;
                } else {
                    self.zerocopy_min_bytes = None;
                }
            }
            _ => {}
        }
        self.counters.gso_sends += u64::from(result.is_ok());
        self.counters.zc_sends += u64::from(result.is_ok() && zerocopy);
        self.counters.count_send(datagrams, result);
        if zerocopy && cqueue::more(flags) {
            // The notification follows; the buffers stay lent until then.
            return;
        }
        if zerocopy {
            // A zero-copy send that failed without lending anything: no
            // notification comes, the buffers are back now.
            self.run_headers.give_back(run, &mut self.slots);
        }
        self.run_headers.release(run, &mut self.slots);
    }

    /// Pages the buffers of slots `members` (`lens` bytes each) touch.
    fn pages_spanned(&self, members: &[u32], lens: &[u32]) -> usize {
        const PAGE: usize = 4_096;
        members
            .iter()
            .zip(lens)
            .map(|(&slot, &len)| {
                let start = self.slots.buffer_ptr(slot) as usize;
                let end = start + (len as usize).max(1);
                (end - 1) / PAGE - start / PAGE + 1
            })
            .sum()
    }

    /// Registers the send slots' chunks allocated since the last call.
    pub(super) fn register_chunks(&mut self) {
        while self.fixed_buffers && self.registered_chunks < self.slots.chunks() {
            let chunk = self.registered_chunks;
            let region = [self.slots.chunk_region(chunk)];
            // SAFETY: the chunk is allocated once, never moves, and is freed
            // only after the ring is closed with nothing in flight (or leaked).
            let done = unsafe {
                self.ring
                    .submitter()
                    .register_buffers_update(chunk as u32, &region, None)
            };
            if done.is_err() {
                // RLIMIT_MEMLOCK, for one: zero-copy without registration.
                self.fixed_buffers = false;
            }
            self.registered_chunks += 1;
        }
    }

    /// Offload: plans the datagrams queued this turn into GSO runs and pushes
    /// one send per run (one `SendMsg` with a `UDP_SEGMENT` control message
    /// for several datagrams, the usual single send for one).
    pub(super) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (mut order, mut runs) = (
            std::mem::take(&mut self.order),
            std::mem::take(&mut self.runs),
        );
        if self.gso_refused {
            segment::singles(&self.pending, &mut order, &mut runs);
        } else {
            segment::plan(&self.pending, &mut order, &mut runs);
        }
        let (mut lens, mut members) = (
            std::mem::take(&mut self.lens),
            std::mem::take(&mut self.members),
        );
        for run in &runs {
            let queued = &order[run.start..run.start + run.count];
            let head = self.pending[queued[0] as usize];
            let head_slot = self.pending_slots[queued[0] as usize];
            let socket = head.socket as usize;
            if run.count == 1 {
                let p =
                    self.slots
                        .prepare_raw(head_slot, &head.name, head.namelen, head.len as usize);
                self.push_send(socket, &p, head_slot);
                continue;
            }
            lens.clear();
            members.clear();
            for &i in queued {
                lens.push(self.pending[i as usize].len);
                members.push(self.pending_slots[i as usize]);
            }
            let bytes: usize = lens.iter().map(|&l| l as usize).sum();
            let zerocopy = self.zerocopy_min_bytes.is_some_and(|min| bytes >= min)
                && self.pages_spanned(&members, &lens) <= ZEROCOPY_MAX_PAGES;
            // The segment size travels as a u16 (datagrams are at most
            // max_datagram <= 65,507 bytes).
            let (index, msg) = self.run_headers.prepare(
                &self.slots,
                &members,
                &lens,
                &head,
                run.segment as u16,
                zerocopy,
            );
            self.slots.in_flight += members.len();
            let sqe = if zerocopy {
                for &slot in &members {
                    self.slots.lend(slot);
                }
                let chunk = SendSlots::chunk_of(members[0]);
                let one_chunk = members.iter().all(|&m| SendSlots::chunk_of(m) == chunk);
                let buf_index = (self.fixed_buffers && one_chunk && chunk < self.registered_chunks)
                    .then_some(chunk as u16);
                let sqe = if self.fixed_files {
                    opcode::SendMsgZc::new(Fixed(socket as u32), msg)
                } else {
                    opcode::SendMsgZc::new(Fd(self.raw_fd(socket)), msg)
                };
                sqe.flags(SEND_FLAGS as u32)
                    .ioprio(SEND_ZC_REPORT_USAGE)
                    .buf_index(buf_index)
                    .build()
            } else {
                let sqe = if self.fixed_files {
                    opcode::SendMsg::new(Fixed(socket as u32), msg)
                } else {
                    opcode::SendMsg::new(Fd(self.raw_fd(socket)), msg)
                };
                sqe.flags(SEND_FLAGS as u32).build()
            };
            self.push(&sqe.user_data((OP_GSO << OP_SHIFT) | u64::from(index)));
        }
        self.pending.clear();
        self.pending_slots.clear();
        (self.order, self.runs) = (order, runs);
        (self.lens, self.members) = (lens, members);
    }
}
