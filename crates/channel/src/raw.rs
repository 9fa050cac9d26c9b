//! The channel's only `unsafe` code: a handle on the mapped header and ring
//! that copies bytes in and out with `ptr::copy_nonoverlapping` and lends
//! slices of the ring.
//!
//! Soundness rests on two facts. Bounds: every offset and length is checked
//! against the ring here, so no access leaves the mapping. Exclusion: the
//! index protocol of [`crate::ring`] hands a range of the ring to exactly one
//! side at a time (the producer between reserve and commit, the consumer
//! between peek and release), and the callers in this crate touch only the
//! ranges it handed them. A peer process that broke the protocol could make
//! the bytes change under a lent slice, as with any shared memory; it could
//! not make an access leave the mapping.
#![allow(unsafe_code)]

use std::ptr::NonNull;

use shm::Managed;

use crate::layout::ChannelHeader;
use shm::sync::atomic::AtomicU64;

use crate::ring::Bytes;

/// An attached channel segment: the header and the ring behind it.
#[derive(Debug)]
pub(crate) struct Mapped {
    seg: Managed,
    header: NonNull<ChannelHeader>,
    ring: NonNull<u8>,
    size: usize,
}

// SAFETY: `Mapped` owns the mapping its pointers point into; moving it to
// another thread moves that ownership, and every access through it is either
// atomic (the header) or confined by the index protocol (the ring).
unsafe impl Send for Mapped {}

impl Mapped {
    /// Wraps an attached segment whose payload holds a [`ChannelHeader`]
    /// followed by a ring of `size` bytes.
    pub(crate) fn new(seg: Managed, size: usize) -> Result<Mapped, shm::Error> {
        let header = NonNull::from(seg.payload_view::<ChannelHeader>(0)?);
        let ring_start = std::mem::size_of::<ChannelHeader>();
        // Checks that the ring lies inside the mapping (and is 8-aligned).
        let ring = seg.payload_slice::<shm::sync::atomic::AtomicU64>(ring_start, size / 8)?;
        let ring = NonNull::from(ring).cast::<u8>();
        Ok(Mapped {
            seg,
            header,
            ring,
            size,
        })
    }

    /// The segment.
    pub(crate) fn managed(&self) -> &Managed {
        &self.seg
    }

    /// The shared header.
    #[inline]
    pub(crate) fn header(&self) -> &ChannelHeader {
        // SAFETY: `header` came from `payload_view` of `self.seg`, which
        // checked bounds and alignment; the mapping lives as long as `self`;
        // `ChannelHeader` is `Shared` (all atomics), so shared access from
        // several processes is sound.
        unsafe { self.header.as_ref() }
    }

    #[inline]
    fn check(&self, off: usize, len: usize) {
        assert!(
            off <= self.size && len <= self.size - off,
            "ring access {off}+{len} outside a ring of {} bytes",
            self.size
        );
    }

    /// The ring bytes `off..off + len`, lent to the consumer until it
    /// releases them.
    #[inline]
    pub(crate) fn slice(&self, off: usize, len: usize) -> &[u8] {
        self.check(off, len);
        let p = self.ring.as_ptr().wrapping_add(off);
        // SAFETY: in bounds (checked); the producer does not write this
        // range until the consumer publishes a tail past it, which it does
        // only after the borrow of `self` that this slice holds has ended
        // (the lending `Message` releases on drop).
        unsafe { std::slice::from_raw_parts(p, len) }
    }

    /// The ring bytes `off..off + len`, granted to the producer until it
    /// commits them.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) fn slice_mut(&self, off: usize, len: usize) -> &mut [u8] {
        self.check(off, len);
        let p = self.ring.as_ptr().wrapping_add(off);
        // SAFETY: in bounds (checked); the consumer does not read this range
        // until the producer publishes a head past it, which happens only in
        // `commit`, after the `Grant` holding this slice is consumed; the
        // `Grant` borrows the sender mutably, so no second slice of the ring
        // exists in this process meanwhile.
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }
}

impl Bytes for Mapped {
    #[inline]
    fn header(&self, off: usize) -> &AtomicU64 {
        self.check(off, 8);
        assert_eq!(off % 8, 0, "unaligned header offset {off}");
        let p = self.ring.as_ptr().wrapping_add(off).cast::<AtomicU64>();
        // SAFETY: in bounds (checked) and 8-aligned (checked; the ring
        // starts 128-aligned), inside the mapping that lives as long as
        // `self`. An `AtomicU64` accepts every bit pattern, and header slots
        // are only accessed atomically while either side may touch them (the
        // producer writes message bytes over a slot only after the consumer
        // released it, and the consumer reads a slot as bytes only after
        // acquiring the header that published them).
        unsafe { &*p }
    }

    #[inline]
    fn write(&self, off: usize, src: &[u8]) {
        self.check(off, src.len());
        let dst = self.ring.as_ptr().wrapping_add(off);
        let n = src.len();
        // Small messages (the latency case) as one or two word stores,
        // overlapping when `n` is not a multiple of the word, rather than a
        // call to memcpy.
        if (8..=16).contains(&n) {
            let (a, b) = (word::<8>(src, 0), word::<8>(src, n - 8));
            // SAFETY: bytes `off..off + 8` are in bounds (checked, n >= 8)
            // and reserved to the producer; unaligned stores are allowed.
            unsafe { dst.cast::<[u8; 8]>().write_unaligned(a) };
            // SAFETY: as above, for bytes `off + n - 8..off + n`.
            unsafe { dst.wrapping_add(n - 8).cast::<[u8; 8]>().write_unaligned(b) };
            return;
        }
        // SAFETY: in bounds (checked); `src` is private memory, so the ranges
        // do not overlap; the range was reserved to the producer.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, n);
        }
    }

    #[inline]
    fn read(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len());
        let src = self.ring.as_ptr().wrapping_add(off);
        let n = dst.len();
        if (8..=16).contains(&n) {
            // SAFETY: bytes `off..off + 8` are in bounds (checked, n >= 8),
            // published to the consumer and not reused until it releases
            // them; unaligned loads are allowed.
            let a = unsafe { src.cast::<[u8; 8]>().read_unaligned() };
            // SAFETY: as above, for bytes `off + n - 8..off + n`.
            let b = unsafe { src.wrapping_add(n - 8).cast::<[u8; 8]>().read_unaligned() };
            dst[..8].copy_from_slice(&a);
            dst[n - 8..].copy_from_slice(&b);
            return;
        }
        // SAFETY: in bounds (checked); `dst` is private memory; the range was
        // published to the consumer and is not reused until it releases it.
        unsafe {
            std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), n);
        }
    }
}

/// The `N` bytes of `src` at `at`.
#[inline]
fn word<const N: usize>(src: &[u8], at: usize) -> [u8; N] {
    let mut w = [0; N];
    w.copy_from_slice(&src[at..at + N]);
    w
}
