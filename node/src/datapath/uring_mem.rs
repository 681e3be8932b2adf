//! Memory the io_uring datapath lends the kernel: the provided-buffer ring
//! for receives and the send slots. Allocated once, never moved, and freed only
//! when nothing in flight can reference it (or leaked when that is uncertain).

use std::alloc::{self, Layout};
use std::io;
use std::net::SocketAddr;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::segment::{self, Control, Queued, CMSG_LEN, MAX_SEGMENTS};
use super::sockaddr::RawAddr;

/// Send slots are allocated in chunks of this many as traffic needs them.
const SLOT_CHUNK: usize = 256;

/// The provided-buffer ring: `entries` buffers of `buf_len` bytes, and the ring
/// of descriptors through which they are handed to the kernel.
#[derive(Debug)]
pub(super) struct BufRing {
    pub(super) ring: NonNull<BufRingEntry>,
    ring_bytes: usize,
    pub(super) entries: u16,
    bufs: NonNull<u8>,
    bufs_layout: Layout,
    buf_len: usize,
    /// Our copy of the tail; published to the kernel by `publish`.
    tail: u16,
    pub(super) leak: bool,
}

impl BufRing {
    pub(super) fn new(entries: u16, buf_len: usize) -> io::Result<Self> {
        let page = 4096;
        let ring_bytes =
            (usize::from(entries) * std::mem::size_of::<BufRingEntry>()).div_ceil(page) * page;
        // SAFETY: an anonymous private mapping with no address hint; the result
        // is checked against MAP_FAILED before use.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ring == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring =
            NonNull::new(ring.cast::<BufRingEntry>()).ok_or_else(io::Error::last_os_error)?;
        let bufs_layout = Layout::from_size_align(usize::from(entries) * buf_len, page)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: the layout has a non-zero size (entries >= 2, buf_len > 0).
        let bufs = unsafe { alloc::alloc_zeroed(bufs_layout) };
        let Some(bufs) = NonNull::new(bufs) else {
            // SAFETY: `ring` was mapped above with exactly `ring_bytes`.
            unsafe { libc::munmap(ring.as_ptr().cast(), ring_bytes) };
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        };
        let mut r = BufRing {
            ring,
            ring_bytes,
            entries,
            bufs,
            bufs_layout,
            buf_len,
            tail: 0,
            leak: false,
        };
        for bid in 0..entries {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    /// The first `len` bytes of buffer `bid`, which the kernel just filled and
    /// handed to us with a completion.
    pub(super) fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let bid = usize::from(bid) % usize::from(self.entries);
        let len = len.min(self.buf_len);
        // SAFETY: `bid` is in range, so the slice lies inside the allocation; the
        // kernel wrote it before posting the completion and will not touch it
        // again until `push` returns it, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().add(bid * self.buf_len), len) }
    }

    /// Returns buffer `bid` to the ring (visible to the kernel after `publish`).
    pub(super) fn push(&mut self, bid: u16) {
        let mask = self.entries - 1;
        let slot = usize::from(self.tail & mask);
        let addr = self.bufs.as_ptr() as u64 + u64::from(bid) * self.buf_len as u64;
        // SAFETY: `slot` < entries, inside the mapping. The kernel reads entries
        // only between its head and the published tail, and this slot is past
        // the published tail: there are exactly `entries` buffers, and this one
        // was consumed, so the kernel has moved its head past the slot.
        let e = unsafe { &mut *self.ring.as_ptr().add(slot) };
        e.set_addr(addr);
        e.set_len(self.buf_len as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every pushed buffer visible to the kernel.
    pub(super) fn publish(&self) {
        // SAFETY: the tail field overlays entry 0's reserved field inside the
        // mapping, 2-byte aligned; the kernel reads it with acquire semantics,
        // and only this thread writes it.
        let tail =
            unsafe { AtomicU16::from_ptr(BufRingEntry::tail(self.ring.as_ptr()).cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: both regions were allocated in `new` with these sizes, and the
        // io_uring that used them was closed with nothing in flight (see
        // `UringDatapath::drop`, which sets `leak` otherwise).
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_bytes);
            alloc::dealloc(self.bufs.as_ptr(), self.bufs_layout);
        }
    }
}

/// Pointers into a prepared slot, for either send operation.
pub(super) struct Prepared {
    pub(super) msg: *const libc::msghdr,
    pub(super) buf: *const u8,
    pub(super) len: u32,
    pub(super) name: *const libc::sockaddr,
    pub(super) namelen: libc::socklen_t,
}

/// What a send needs to stay put while the kernel sends it.
#[repr(C)]
struct SlotHeader {
    msg: libc::msghdr,
    iov: libc::iovec,
    name: RawAddr,
}

/// Send slots: a header and a buffer each, allocated in chunks that never move.
#[derive(Debug)]
pub(super) struct SendSlots {
    headers: Vec<NonNull<SlotHeader>>,
    buffers: Vec<NonNull<u8>>,
    buf_len: usize,
    count: usize,
    cap: usize,
    pub(super) free: Vec<u32>,
    pub(super) reserved: Option<u32>,
    pub(super) in_flight: usize,
    pub(super) leak: bool,
    /// Slots whose buffer a zero-copy send lent to the kernel and whose
    /// notification has not come: marked when the send is pushed, cleared
    /// only when its notification is handled, independently of the free
    /// list, so that (in debug builds) a slot freed or handed out again
    /// before its notification fails an assertion.
    lent: Vec<bool>,
}

impl std::fmt::Debug for SlotHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlotHeader")
    }
}

impl SendSlots {
    pub(super) fn new(buf_len: usize, cap: usize) -> Self {
        SendSlots {
            headers: Vec::new(),
            buffers: Vec::new(),
            buf_len: buf_len.max(1),
            count: 0,
            cap: cap.min(u32::MAX as usize),
            free: Vec::new(),
            reserved: None,
            in_flight: 0,
            leak: false,
            lent: Vec::new(),
        }
    }

    fn header_layout() -> Layout {
        // Invariant: SLOT_CHUNK headers of a few hundred bytes fit any layout.
        Layout::array::<SlotHeader>(SLOT_CHUNK).expect("small array layout")
    }

    fn buffer_layout(&self) -> Layout {
        // Invariant: buf_len is a datagram size (<= 64 KiB), so this cannot overflow.
        Layout::from_size_align(SLOT_CHUNK * self.buf_len, 64).expect("chunk layout")
    }

    /// Reserves a slot for the next send, allocating a chunk if needed.
    pub(super) fn reserve(&mut self) -> Option<u32> {
        if let Some(s) = self.reserved {
            return Some(s);
        }
        let slot = match self.free.pop() {
            Some(s) => {
                debug_assert!(
                    !self.lent[s as usize],
                    "send slot {s} reused before its zero-copy notification"
                );
                s
            }
            None if self.count < self.cap => {
                if self.count % SLOT_CHUNK == 0 {
                    // SAFETY: both layouts have non-zero sizes; zeroed SlotHeaders
                    // are valid (null pointers, zero lengths).
                    let (h, b) = unsafe {
                        (
                            alloc::alloc_zeroed(Self::header_layout()),
                            alloc::alloc_zeroed(self.buffer_layout()),
                        )
                    };
                    let (Some(h), Some(b)) =
                        (NonNull::new(h.cast::<SlotHeader>()), NonNull::new(b))
                    else {
                        return None;
                    };
                    self.headers.push(h);
                    self.buffers.push(b);
                }
                self.count += 1;
                self.lent.push(false);
                (self.count - 1) as u32
            }
            None => return None,
        };
        self.reserved = Some(slot);
        Some(slot)
    }

    pub(super) fn reserved_buffer(&mut self) -> Option<&mut [u8]> {
        let slot = self.reserved? as usize;
        let base = self.buffers[slot / SLOT_CHUNK];
        // SAFETY: the slot is reserved, not in flight: no operation references
        // its buffer, and `&mut self` makes this the only borrow.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                base.as_ptr().add((slot % SLOT_CHUNK) * self.buf_len),
                self.buf_len,
            )
        })
    }

    /// Chunks allocated so far.
    pub(super) fn chunks(&self) -> usize {
        self.buffers.len()
    }

    /// The chunk slot `slot` lies in.
    pub(super) fn chunk_of(slot: u32) -> usize {
        slot as usize / SLOT_CHUNK
    }

    /// Chunk `chunk`'s buffers as one region, for registering it.
    pub(super) fn chunk_region(&self, chunk: usize) -> libc::iovec {
        libc::iovec {
            iov_base: self.buffers[chunk].as_ptr().cast(),
            iov_len: SLOT_CHUNK * self.buf_len,
        }
    }

    /// Most chunks `cap` slots can need.
    pub(super) fn max_chunks(&self) -> usize {
        self.cap.div_ceil(SLOT_CHUNK)
    }

    /// Marks `slot`'s buffer lent to the kernel by a zero-copy send.
    pub(super) fn lend(&mut self, slot: u32) {
        self.lent[slot as usize] = true;
    }

    /// The kernel's notification gave `slot`'s buffer back.
    pub(super) fn give_back(&mut self, slot: u32) {
        self.lent[slot as usize] = false;
    }

    /// Where slot `slot`'s buffer starts.
    pub(super) fn buffer_ptr(&self, slot: u32) -> *mut u8 {
        let slot = slot as usize;
        // SAFETY: an in-bounds offset of the slot's buffer inside its chunk.
        unsafe {
            self.buffers[slot / SLOT_CHUNK]
                .as_ptr()
                .add((slot % SLOT_CHUNK) * self.buf_len)
        }
    }

    /// Fills the slot's header for a send of `len` bytes to `to`.
    pub(super) fn prepare(&mut self, slot: u32, to: SocketAddr, len: usize) -> Prepared {
        let mut name = RawAddr::ZERO;
        let namelen = name.write(to);
        self.prepare_raw(slot, &name, namelen, len)
    }

    /// [`prepare`](Self::prepare) with the destination as kernel bytes.
    pub(super) fn prepare_raw(
        &mut self,
        slot: u32,
        name: &RawAddr,
        namelen: u32,
        len: usize,
    ) -> Prepared {
        let buf = self.buffer_ptr(slot);
        let slot = slot as usize;
        // SAFETY: the slot is not in flight, so the kernel holds no reference
        // to its header; the chunk index is in range and the header inside it.
        let h = unsafe {
            &mut *self.headers[slot / SLOT_CHUNK]
                .as_ptr()
                .add(slot % SLOT_CHUNK)
        };
        h.name = *name;
        h.iov.iov_base = buf.cast();
        h.iov.iov_len = len.min(self.buf_len);
        h.msg.msg_name = (&mut h.name as *mut RawAddr).cast();
        h.msg.msg_namelen = namelen;
        h.msg.msg_iov = &mut h.iov;
        h.msg.msg_iovlen = 1;
        h.msg.msg_control = std::ptr::null_mut();
        h.msg.msg_controllen = 0;
        h.msg.msg_flags = 0;
        Prepared {
            msg: &h.msg,
            buf: h.iov.iov_base.cast_const().cast(),
            len: h.iov.iov_len as u32,
            name: h.msg.msg_name.cast_const().cast(),
            namelen: namelen as libc::socklen_t,
        }
    }

    pub(super) fn release(&mut self, slot: u32) {
        debug_assert!(
            !self.lent[slot as usize],
            "send slot {slot} freed before its zero-copy notification"
        );
        self.in_flight = self.in_flight.saturating_sub(1);
        self.free.push(slot);
    }
}

impl Drop for SendSlots {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        let bl = self.buffer_layout();
        for (h, b) in self.headers.iter().zip(&self.buffers) {
            // SAFETY: allocated in `reserve` with these layouts; nothing is in
            // flight (`UringDatapath::drop` sets `leak` otherwise).
            unsafe {
                alloc::dealloc(h.as_ptr().cast(), Self::header_layout());
                alloc::dealloc(b.as_ptr(), bl);
            }
        }
    }
}

/// What a GSO send (several send slots leaving as one `sendmsg`) needs to
/// stay put while the kernel sends it, and which slots it holds.
#[repr(C)]
struct RunHeader {
    msg: libc::msghdr,
    iovs: [libc::iovec; MAX_SEGMENTS],
    name: RawAddr,
    control: Control,
    slots: [u32; MAX_SEGMENTS],
    count: usize,
    /// Sent with SENDMSG_ZC: the slots wait for the notification.
    zerocopy: bool,
}

/// Headers of GSO sends, each allocated once and never moved; at most one per
/// two send slots is ever in use, so their number is bounded by the slots'.
#[derive(Debug, Default)]
pub(super) struct RunHeaders {
    headers: Vec<NonNull<RunHeader>>,
    free: Vec<u32>,
    pub(super) in_flight: usize,
    pub(super) leak: bool,
}

impl RunHeaders {
    /// Fills a free header for a send of slots `members` (their lengths in
    /// `lens`, all `segment` bytes but the last) to `to`'s destination, and
    /// returns its index and `msghdr`. The iovecs point into `slots`' buffers.
    pub(super) fn prepare(
        &mut self,
        slots: &SendSlots,
        members: &[u32],
        lens: &[u32],
        to: &Queued,
        segment: u16,
        zerocopy: bool,
    ) -> (u32, *const libc::msghdr) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                // SAFETY: RunHeader is plain data; all-zeroes is valid (null
                // pointers, zero lengths).
                let h: Box<RunHeader> = Box::new(unsafe { std::mem::zeroed() });
                self.headers.push(NonNull::from(Box::leak(h)));
                (self.headers.len() - 1) as u32
            }
        };
        // SAFETY: the header is free, so no operation in flight references it,
        // and `&mut self` makes this the only borrow.
        let h = unsafe { &mut *self.headers[index as usize].as_ptr() };
        let count = members.len().min(MAX_SEGMENTS);
        for j in 0..count {
            h.iovs[j] = libc::iovec {
                iov_base: slots.buffer_ptr(members[j]).cast(),
                iov_len: lens[j] as usize,
            };
            h.slots[j] = members[j];
        }
        h.count = count;
        h.zerocopy = zerocopy;
        h.name = to.name;
        let controllen = segment::write_cmsg(
            &mut h.control.0,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            &segment.to_ne_bytes(),
        );
        h.msg.msg_name = (&mut h.name as *mut RawAddr).cast();
        h.msg.msg_namelen = to.namelen;
        h.msg.msg_iov = h.iovs.as_mut_ptr();
        h.msg.msg_iovlen = count;
        h.msg.msg_control = h.control.0.as_mut_ptr().cast();
        h.msg.msg_controllen = controllen.min(CMSG_LEN);
        h.msg.msg_flags = 0;
        self.in_flight += 1;
        (index, &h.msg)
    }

    /// The datagrams of send `index` and whether it went zero-copy
    /// (`(0, false)` for an unknown index).
    pub(super) fn of(&self, index: u32) -> (u64, bool) {
        self.headers.get(index as usize).map_or((0, false), |h| {
            // SAFETY: only plain fields are read; the kernel reads, never
            // writes, a send's header.
            let h = unsafe { h.as_ref() };
            (h.count as u64, h.zerocopy)
        })
    }

    /// Send `index`'s notification came: the kernel gave its buffers back.
    /// Kept apart from [`release`](Self::release) so that the slot pool's
    /// check on reuse does not depend on the release being in the right place.
    pub(super) fn give_back(&self, index: u32, slots: &mut SendSlots) {
        if let Some(h) = self.headers.get(index as usize) {
            // SAFETY: the kernel no longer reads the header.
            let h = unsafe { h.as_ref() };
            for &slot in &h.slots[..h.count] {
                slots.give_back(slot);
            }
        }
    }

    /// Frees header `index` once the kernel is done with it (its completion,
    /// or for a zero-copy send its notification), returning its slots to
    /// `slots`.
    pub(super) fn release(&mut self, index: u32, slots: &mut SendSlots) {
        let Some(h) = self.headers.get(index as usize) else {
            return;
        };
        // SAFETY: the kernel no longer reads the header or its buffers.
        let h = unsafe { h.as_ref() };
        for &slot in &h.slots[..h.count] {
            slots.release(slot);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.free.push(index);
    }
}

impl Drop for RunHeaders {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        for h in &self.headers {
            // SAFETY: each came from Box::leak in `prepare`; nothing is in flight
            // (`UringDatapath::drop` sets `leak` otherwise).
            drop(unsafe { Box::from_raw(h.as_ptr()) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard the zero-copy test relies on: a slot lent to the kernel is
    /// caught when it is freed before its notification.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "freed before its zero-copy notification")]
    fn a_lent_slot_freed_before_its_notification_is_caught() {
        let mut slots = SendSlots::new(100, 4);
        let slot = slots.reserve().unwrap();
        slots.reserved = None;
        slots.in_flight += 1;
        slots.lend(slot);
        slots.release(slot);
    }

    /// And when a slot still lent is handed out (were it on the free list by
    /// another way than `release`).
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "reused before its zero-copy notification")]
    fn a_lent_slot_handed_out_again_is_caught() {
        let mut slots = SendSlots::new(100, 4);
        let slot = slots.reserve().unwrap();
        slots.reserved = None;
        slots.lend(slot);
        slots.free.push(slot);
        let _ = slots.reserve();
    }

    #[test]
    fn a_slot_given_back_is_reused() {
        let mut slots = SendSlots::new(100, 1);
        let slot = slots.reserve().unwrap();
        slots.reserved = None;
        slots.in_flight += 1;
        slots.lend(slot);
        slots.give_back(slot);
        slots.release(slot);
        assert_eq!(slots.reserve(), Some(slot));
    }
}
