//! Memory the io_uring datapath lends the kernel: the provided-buffer ring
//! for receives and the send slots. Allocated once, never moved, and freed only
//! when nothing in flight can reference it (or leaked when that is uncertain).

use std::alloc::{self, Layout};
use std::io;
use std::net::SocketAddr;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::segment::{self, Control, CMSG_LEN, MAX_SEGMENTS};
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
            Some(s) => s,
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
    /// `lens`, all `segment` bytes but the last) to `name`, and returns its
    /// index and `msghdr`. The iovecs point into `slots`' buffers.
    pub(super) fn prepare(
        &mut self,
        slots: &SendSlots,
        members: &[u32],
        lens: &[u32],
        name: &RawAddr,
        namelen: u32,
        segment: u16,
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
        h.name = *name;
        let controllen = segment::write_cmsg(
            &mut h.control.0,
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            &segment.to_ne_bytes(),
        );
        h.msg.msg_name = (&mut h.name as *mut RawAddr).cast();
        h.msg.msg_namelen = namelen;
        h.msg.msg_iov = h.iovs.as_mut_ptr();
        h.msg.msg_iovlen = count;
        h.msg.msg_control = h.control.0.as_mut_ptr().cast();
        h.msg.msg_controllen = controllen.min(CMSG_LEN);
        h.msg.msg_flags = 0;
        self.in_flight += 1;
        (index, &h.msg)
    }

    /// Frees header `index` after its send completed, returning its slots to
    /// `slots`; the number of datagrams it carried (0 for an unknown index).
    pub(super) fn release(&mut self, index: u32, slots: &mut SendSlots) -> u64 {
        let Some(h) = self.headers.get(index as usize) else {
            return 0;
        };
        // SAFETY: the send completed: the kernel no longer reads the header.
        let h = unsafe { h.as_ref() };
        for &slot in &h.slots[..h.count] {
            slots.release(slot);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.free.push(index);
        h.count as u64
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
