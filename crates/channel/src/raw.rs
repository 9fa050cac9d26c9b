//! The channel's only `unsafe` code: [`Mapped`], a handle on the mapped
//! header and ring that copies bytes in and out with plain (non-atomic)
//! loads and stores and lends slices of the ring.
//!
//! The design notes allow `unsafe` above the segment and sync layers in one
//! named module per crate, where a view over shared bytes needs it: zero-copy
//! is the channel's point, and a `&[u8]` / `&mut [u8]` over the ring cannot
//! be had from `shm`'s safe, atomic views. Everything else in this crate is
//! `#![forbid(unsafe_code)]`.
//!
//! # Soundness
//!
//! Every pointer dereference here rests on five facts. The first four hold
//! whatever the callers do; the fifth rests on the index protocol and on
//! one rule the callers in this crate keep.
//!
//! 1. **Lifetime.** [`Mapped`] owns the [`Managed`] segment whose mapping
//!    its pointers point into; the mapping stays at its address until the
//!    segment is dropped with the `Mapped`, and every reference handed out
//!    borrows the `Mapped`. Removing the segment's name
//!    ([`Mapped::managed`]`().remove()`) does not unmap it.
//! 2. **Bounds.** [`Mapped::new`] gets the header and the ring from `shm`'s
//!    checked views (bounds, alignment, read-write access), and every ring
//!    access checks `off + len` against the ring's size first (`check`, a
//!    panic if the crate ever asked for more). No access leaves the ring.
//! 3. **Alignment and validity.** The header is a [`shm::Shared`] type
//!    (atomics only, every bit pattern valid); ring header words are viewed
//!    as `AtomicU64` only at offsets checked to be multiples of 8 in a ring
//!    that starts 128-aligned; message bytes are `u8`, valid whatever they
//!    hold; the small-copy path uses unaligned loads and stores.
//! 4. **Provenance.** Both pointers come from shared references to atomics,
//!    whose `UnsafeCell`s allow writes through them.
//! 5. **Exclusion.** Within this mapping: a lent `&mut [u8]`
//!    ([`Mapped::slice_mut`]) borrows the `Mapped` mutably, so the compiler
//!    rules out any other reference into it meanwhile. A lent `&[u8]`
//!    ([`Mapped::slice`]) borrows it shared, and the rule the callers keep
//!    is that every write through a shared `Mapped` ([`Bytes::write`], the
//!    ring's header stores, the consumer's release) happens in a method of
//!    the [`crate::Sender`] or [`crate::Receiver`] that owns it and holds
//!    it mutably, which cannot run while a [`crate::Grant`] or
//!    [`crate::Message`] borrows that end, or in the commit of a `Grant` or
//!    the drop of a `Message`, after its slices are gone. `Mapped` is
//!    `Send` but not `Sync`, so no borrow of it is shared with another
//!    thread. Between this mapping and every other one of the segment (the
//!    peer's, in this process or another): the index protocol of
//!    [`crate::ring`] hands each range of message bytes to one side at a
//!    time (the producer from reserve to commit, the consumer from peek to
//!    release), with a release store and an acquire load ordering every
//!    hand-over; the loom model in `tests/loom.rs` checks that neither side
//!    touches bytes the other holds. Header words are only touched
//!    atomically while both sides may touch them.
//!
//! What a peer that breaks the protocol can do: it can write any byte of
//! the segment at any moment. Facts 1 to 4 do not depend on the peer, so it
//! can never steer an access outside the mapping: every offset and length
//! this crate reads from shared memory comes from an atomic load and is
//! validated ([`crate::ring`] refuses impossible frame headers, and
//! derives every offset from its own private positions) before it reaches
//! this module, and the bounds check backs that up. Fact 5 does
//! depend on the peer: its writes to bytes lent here as a slice are a data
//! race that the Rust memory model does not define, so the slice's
//! contents may change under its holder. This crate never lets such bytes
//! decide an offset or a length; code that re-reads a received message
//! expecting the same bytes (a check, then a use) must copy it first
//! ([`crate::Receiver::recv_into`]). This is the caveat of every
//! zero-copy view over memory another process may write (as for a memory
//! map of a file another process may change).
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
        // Checks that the whole ring, `size` bytes rounded up to a word,
        // lies inside the mapping (and is 8-aligned).
        let ring = seg.payload_slice::<AtomicU64>(ring_start, size.div_ceil(8))?;
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
    #[inline]
    pub(crate) fn slice_mut(&mut self, off: usize, len: usize) -> &mut [u8] {
        self.check(off, len);
        let p = self.ring.as_ptr().wrapping_add(off);
        // SAFETY: in bounds (checked); the consumer does not read this range
        // until the producer publishes a frame header for it, which happens
        // only in `commit`, after the `Grant` holding this slice is
        // consumed; the slice borrows `self` mutably, so no other reference
        // into the ring or header exists in this process meanwhile.
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
