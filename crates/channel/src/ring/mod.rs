//! The ring's index protocol, apart from where the ring lives.
//!
//! A producer and a consumer share a ring of `size` bytes. A message is a
//! *frame*: an 8-byte header word, then its bytes, padded to 8. A frame is
//! always contiguous; when one does not fit before the end of the ring, the
//! producer writes a *wrap marker* header and continues at offset 0, so a
//! message of up to `size - 16` bytes always fits once the consumer has
//! caught up.
//!
//! The header word itself says whether a frame is published: 0 means "not
//! yet", anything else is a length (with [`VALID`] set, and sealed: see
//! [`header`]) or [`WRAP`]. The
//! producer writes the bytes, then zeroes the *next* frame's header slot,
//! then publishes this frame's header (release); the consumer loads the
//! header at its position (acquire) before it reads the bytes. Zeroing the
//! next slot before publishing is what makes a stale word from an earlier
//! lap (an old header or message bytes that happen to look like one)
//! impossible to mistake for a new frame. So the consumer's fast path
//! touches only the frame's own cache line: a small message costs one line
//! transfer, as close to the raw cache-line floor as a framed ring gets.
//!
//! The consumer gives space back by publishing `tail` (release), which the
//! producer reads (acquire) only when its cached copy says the ring is full.
//! The consumer publishes lazily: at least every quarter ring, whenever it
//! finds the ring empty, and at once when the producer is parked.
//!
//! Parking. Each side has a park word, [`AWAKE`], [`SLEEPY`] or [`PARKED`].
//! A side that published (a frame, its `tail`, its close) then looks at the
//! peer's word, in the same *light section* ([`Control::light`]):
//!
//! * [`AWAKE`]: nothing more to do, no fence, no system call. This is the
//!   fast path: a publish is a plain release store and a plain load.
//! * otherwise: a `SeqCst` fence, a fresh look, and if the peer is
//!   [`PARKED`], it is set back to [`SLEEPY`] and woken (`FUTEX_WAKE`).
//!
//! A side that wants to park leaves [`AWAKE`] first: it stores [`SLEEPY`]
//! and runs a *heavy barrier* ([`Control::heavy_barrier`],
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` between processes), which
//! orders it against the whole of any light section of the peer: either
//! that section's publish is visible after the barrier, or its look sees
//! [`SLEEPY`]. Then, and on every later park, it stores [`PARKED`], fences
//! (`SeqCst`) and looks once more for news before it sleeps; the peer that
//! saw [`SLEEPY`] fenced too, so one of the two sees the other (Dekker). So
//! a wake-up is never lost, and only a side that really sleeps pays for
//! it: a fence per publish while the peer may sleep, a heavy barrier when
//! it starts to. A side returns to [`AWAKE`] only while it is not about to
//! park (after a wait that ended without parking), and only when the heavy
//! barrier reaches its peer (the peer registered for it).
//!
//! If the heavy barrier fails, nothing orders the peer's fence-free looks
//! after this side's stores any more: the side never becomes [`AWAKE`]
//! again and, from then on, only naps ([`Park::Nap`]: it sleeps briefly, so
//! that a lost wake-up costs a nap, not a hang).
//!
//! Trust. Both ends validate every word they read from shared memory
//! before using it, since any process that can write the segment can
//! change any of them at any moment ([`Corruption`]): a frame header must
//! be a length that fits where it stands, or a wrap marker where a frame
//! could not fit; the consumer's position must be a multiple of 8, never
//! move back, and never pass what was sent (the producer checks), and it
//! must stay what the consumer last published (the consumer checks); a
//! state word must hold a state; and the stream ends cleanly only where
//! the producer says it closed it ([`Control::closed_at`]). So a foreign write
//! can make a side report corruption, or stall it until its timeout, but
//! never make it panic, loop, or end a stream early as if complete. It can
//! still change message bytes in flight: nothing short of a checksum of
//! every message would tell, and a peer that can write the ring can also
//! write a checksum.
//!
//! Every atomic comes from [`shm::sync::atomic`], so this module runs under
//! `loom` unchanged (the model lives in `tests/loom.rs`).
#![forbid(unsafe_code)]

use shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Corruption, Side};

mod park;

use park::announce;
pub use park::{Park, Parker};

/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 8;
/// Bytes the ring keeps beyond the largest frame: the next frame's header
/// slot, zeroed before each publish.
pub const SLACK: usize = 8;
/// Set in every published length header, so that no header is 0.
pub const VALID: u64 = 1 << 63;
/// Bits of a header that hold the length (a message is at most 1 TiB).
const LEN_BITS: u32 = 41;
const LEN_MASK: u64 = (1 << LEN_BITS) - 1;
/// Bits of a header that hold its seal, between the length and [`VALID`].
const SEAL_BITS: u32 = 63 - LEN_BITS;

/// The header word of a frame for a message of `len` bytes at stream
/// position `pos` (bytes ever committed before it): [`VALID`], the length,
/// and a seal that mixes both. The consumer accepts a header only with the
/// seal it expects where it stands, so a header that another process
/// rewrote (a length shortened within its frame, say), a word read out of
/// step, or one left from an earlier lap, is found out, not delivered
/// (unless a writer that knows this function forged it).
#[inline]
#[must_use]
pub const fn header(pos: u64, len: u64) -> u64 {
    let seal = pos.wrapping_add(len).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SEAL_BITS);
    VALID | seal << LEN_BITS | len
}
/// Header value of a wrap marker: skip to offset 0.
pub const WRAP: u64 = u64::MAX;
/// The first ring offset where a wrap marker can stand: before it, even
/// the largest frame fits.
const FIRST_WRAP: usize = FRAME_HEADER + SLACK;

/// A side's state word: the side is attached (or not yet) and running.
pub const OPEN: u32 = 0;
/// The side closed its end normally (the sender: end of stream, at the
/// position in [`Control::closed_at`]).
pub const CLOSED: u32 = 1;
/// The sender stopped before the end of its input (interrupted, failed, or
/// dropped without closing).
pub const ABORTED: u32 = 2;

/// Park word: the side may park at any moment; a publishing peer fences
/// and looks again (the value of a fresh segment).
pub const SLEEPY: u32 = 0;
/// Park word: the side sleeps (or is about to) on this futex word; a
/// publishing peer sets it back to [`SLEEPY`] and wakes it.
pub const PARKED: u32 = 1;
/// Park word: the side does not park without a heavy barrier first; a
/// publishing peer need not fence.
pub const AWAKE: u32 = 2;

/// Bytes a frame of a `len`-byte message takes in the ring.
#[must_use]
pub const fn frame_len(len: usize) -> usize {
    FRAME_HEADER + len.next_multiple_of(8)
}

/// The largest message a ring of `size` bytes takes.
#[must_use]
pub const fn max_message(size: usize) -> usize {
    size - FRAME_HEADER - SLACK
}

/// The shared words of one channel, and the barriers between its sides.
pub trait Control {
    /// The consumer's position (bytes ever released).
    fn tail(&self) -> &AtomicU64;
    /// Where the producer stood when it closed the stream (bytes ever
    /// committed, wrap markers included), stored before [`CLOSED`].
    fn closed_at(&self) -> &AtomicU64;
    /// `side`'s state, written by that side: [`OPEN`] or [`CLOSED`], or
    /// (the sender only) [`ABORTED`].
    fn state(&self, side: Side) -> &AtomicU32;
    /// `side`'s park word ([`AWAKE`], [`SLEEPY`], [`PARKED`]; a futex
    /// word).
    fn park(&self, side: Side) -> &AtomicU32;
    /// Runs `f`, a publish by `side` followed by its look at the peer's
    /// park word, as one light section: the peer's
    /// [`Control::heavy_barrier`] orders itself against it as a whole.
    /// Between processes that is simply running it, in program order.
    fn light<R>(&self, side: Side, f: impl FnOnce() -> R) -> R {
        let _ = side;
        f()
    }
    /// A barrier, run by `side`, that every light section of its peer is
    /// wholly before or wholly after (what `membarrier(2)` does to the
    /// peer's CPU). `false` if it could not be run.
    fn heavy_barrier(&self, side: Side) -> bool;
    /// Wakes `side` if it sleeps on its park word (`FUTEX_WAKE`).
    fn wake(&self, side: Side);
}

/// The ring's bytes. Offsets are always inside the ring (and 8-aligned for
/// header words), and the protocol guarantees that the peer does not touch
/// a range of message bytes while it is read or written here.
pub trait Bytes {
    /// The header word at `off`, as an atomic.
    fn header(&self, off: usize) -> &AtomicU64;
    /// Copies `src` to `off`.
    fn write(&self, off: usize, src: &[u8]);
    /// Copies from `off` into `dst`.
    fn read(&self, off: usize, dst: &mut [u8]);
}

/// `side`'s state word, if it holds a state that side can be in.
///
/// # Errors
///
/// [`Corruption::State`] for any other value.
pub fn state<C: Control + ?Sized>(ctl: &C, side: Side) -> Result<u32, Corruption> {
    let value = ctl.state(side).load(Ordering::Acquire);
    match (side, value) {
        (_, OPEN | CLOSED) | (Side::Sender, ABORTED) => Ok(value),
        _ => Err(Corruption::State { side, value }),
    }
}

/// Why [`Producer::try_reserve`] found no room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRoom {
    /// The ring is full: the message does not fit now.
    Full,
    /// The consumer's position is impossible.
    Corrupt(Corruption),
}

impl From<Corruption> for NoRoom {
    fn from(c: Corruption) -> NoRoom {
        NoRoom::Corrupt(c)
    }
}

/// The producer's private state.
#[derive(Debug)]
pub struct Producer {
    head: u64,
    off: usize,
    cached_tail: u64,
    size: usize,
}

impl Producer {
    /// Starts producing on a fresh ring of `size` bytes (a multiple of 8, at
    /// least 24). A ring has one producer in its life, so it starts at 0.
    #[must_use]
    pub fn new(size: usize) -> Producer {
        Producer {
            head: 0,
            off: 0,
            cached_tail: 0,
            size,
        }
    }

    /// The largest message the ring takes.
    #[must_use]
    pub fn max_message(&self) -> usize {
        max_message(self.size)
    }

    #[inline]
    fn free(&self) -> usize {
        self.size - (self.head - self.cached_tail) as usize
    }

    /// A fresh look at the consumer's position: a multiple of 8, not behind
    /// the last one seen, not past what was sent.
    #[inline(never)]
    fn load_tail<C: Control + ?Sized>(&self, ctl: &C) -> Result<u64, Corruption> {
        let value = ctl.tail().load(Ordering::Acquire);
        if !value.is_multiple_of(8) || value < self.cached_tail || value > self.head {
            return Err(Corruption::Tail { value });
        }
        Ok(value)
    }

    #[inline]
    fn room<C: Control + ?Sized>(&mut self, ctl: &C, n: usize) -> Result<bool, Corruption> {
        if self.free() >= n {
            return Ok(true);
        }
        self.cached_tail = self.load_tail(ctl)?;
        Ok(self.free() >= n)
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.head += n as u64;
        self.off += n;
        if self.off == self.size {
            self.off = 0;
        }
    }

    /// Finds room for a message of `len` bytes (at most
    /// [`Producer::max_message`]) and returns the ring offset where its bytes
    /// go. Nothing is visible to the consumer until [`Producer::commit`].
    ///
    /// # Errors
    ///
    /// [`NoRoom::Full`] when the consumer has not yet released enough
    /// space; [`NoRoom::Corrupt`] when its position is impossible.
    #[inline]
    pub fn try_reserve<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
        len: usize,
    ) -> Result<usize, NoRoom> {
        debug_assert!(len <= self.max_message());
        let need = frame_len(len) + SLACK;
        let to_end = self.size - self.off;
        if frame_len(len) > to_end {
            // Publish the marker on its own: a frame as large as the ring
            // only fits once the consumer has passed it.
            if !self.room(ctl, to_end + SLACK)? {
                return Err(NoRoom::Full);
            }
            bytes.header(0).store(0, Ordering::Relaxed);
            let slot = bytes.header(self.off);
            announce(ctl, Side::Sender, || slot.store(WRAP, Ordering::Release));
            self.advance(to_end);
        }
        if !self.room(ctl, need)? {
            return Err(NoRoom::Full);
        }
        Ok(self.off + FRAME_HEADER)
    }

    /// Whether a message of `len` bytes would fit now (fresh look at the
    /// consumer's position, for the decision to park); also `true` if that
    /// position is impossible, which the next [`Producer::try_reserve`]
    /// reports.
    pub fn has_room<C: Control + ?Sized>(&self, ctl: &C, len: usize) -> bool {
        let Ok(tail) = self.load_tail(ctl) else {
            return true;
        };
        let free = self.size - (self.head - tail) as usize;
        let to_end = self.size - self.off;
        if frame_len(len) > to_end {
            free >= to_end + SLACK
        } else {
            free >= frame_len(len) + SLACK
        }
    }

    /// Whether the consumer has released everything committed.
    ///
    /// # Errors
    ///
    /// [`Corruption::Tail`] if its position is impossible.
    pub fn drained<C: Control + ?Sized>(&self, ctl: &C) -> Result<bool, Corruption> {
        Ok(self.load_tail(ctl)? == self.head)
    }

    /// Publishes the message of `len` bytes written at the offset the last
    /// [`Producer::try_reserve`] returned (for `len` at most the length
    /// reserved).
    #[inline]
    pub fn commit<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
        len: usize,
    ) {
        let (here, word) = (self.off, header(self.head, len as u64));
        self.advance(frame_len(len));
        bytes.header(self.off).store(0, Ordering::Relaxed);
        let slot = bytes.header(here);
        announce(ctl, Side::Sender, || slot.store(word, Ordering::Release));
    }

    /// Marks the end of the stream ([`CLOSED`], at this position) or an
    /// abort ([`ABORTED`]) after everything committed, and wakes a parked
    /// consumer.
    pub fn close<C: Control + ?Sized>(&self, ctl: &C, state: u32) {
        ctl.closed_at().store(self.head, Ordering::Relaxed);
        announce(ctl, Side::Sender, || {
            ctl.state(Side::Sender).store(state, Ordering::Release);
        });
    }
}

/// What the consumer found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peek {
    /// A message: its bytes start at ring offset `off`.
    Message {
        /// Ring offset of the first byte.
        off: usize,
        /// Its length.
        len: usize,
    },
    /// Nothing now; the sender is still open.
    Empty,
    /// Nothing, ever again: the sender closed ([`CLOSED`], where the
    /// consumer stands) or aborted ([`ABORTED`]) after its last message.
    Ended(u32),
}

/// The consumer's private state.
#[derive(Debug)]
pub struct Consumer {
    tail: u64,
    off: usize,
    /// Bytes released but not yet published to the producer.
    unpublished: usize,
    /// The position last published (only this side writes it).
    published: u64,
    /// Corruption found where it could not be reported (while releasing).
    fault: Option<Corruption>,
    size: usize,
}

impl Consumer {
    /// Starts consuming a fresh ring of `size` bytes. A ring has one
    /// consumer in its life, so it starts at 0.
    #[must_use]
    pub fn new(size: usize) -> Consumer {
        Consumer {
            tail: 0,
            off: 0,
            unpublished: 0,
            published: 0,
            fault: None,
            size,
        }
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.tail += n as u64;
        self.off += n;
        self.unpublished += n;
        if self.off == self.size {
            self.off = 0;
        }
    }

    /// Gives every released byte back to the producer now. A position found
    /// changed since the last publish is kept as a fault, reported by the
    /// next look.
    #[inline(never)]
    pub fn publish<C: Control + ?Sized>(&mut self, ctl: &C) {
        if self.unpublished != 0 {
            self.unpublished = 0;
            let seen = ctl.tail().load(Ordering::Relaxed);
            if seen != self.published && self.fault.is_none() {
                self.fault = Some(Corruption::Tail { value: seen });
            }
            let tail = self.tail;
            self.published = tail;
            announce(ctl, Side::Receiver, || {
                ctl.tail().store(tail, Ordering::Release);
            });
        }
    }

    /// Checks the shared words that no frame shows: the consumer's
    /// position is still what it published, the sender's state is a state.
    ///
    /// # Errors
    ///
    /// The [`Corruption`] found.
    pub fn check<C: Control + ?Sized>(&self, ctl: &C) -> Result<(), Corruption> {
        self.check_tail(ctl)?;
        state(ctl, Side::Sender).map(drop)
    }

    #[inline]
    fn check_tail<C: Control + ?Sized>(&self, ctl: &C) -> Result<(), Corruption> {
        if let Some(fault) = self.fault {
            return Err(fault);
        }
        let value = ctl.tail().load(Ordering::Relaxed);
        if value != self.published {
            return Err(Corruption::Tail { value });
        }
        Ok(())
    }

    /// Looks at the next message without releasing it.
    ///
    /// # Errors
    ///
    /// The [`Corruption`] found, if a frame header or another shared word
    /// is impossible.
    #[inline]
    pub fn try_peek<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
    ) -> Result<Peek, Corruption> {
        let word = bytes.header(self.off).load(Ordering::Acquire);
        // The common case first, and small enough to inline: a message (and
        // no fault found since the last look).
        if let Some(len) = self.frame(word)
            && self.fault.is_none()
        {
            return Ok(Peek::Message {
                off: self.off + FRAME_HEADER,
                len,
            });
        }
        self.peek_slow(ctl, bytes)
    }

    /// The length in `word`, if it is the header of a message that fits
    /// where the consumer stands, sealed for this position.
    #[inline]
    fn frame(&self, word: u64) -> Option<usize> {
        let len = usize::try_from(word & LEN_MASK).ok()?;
        let fits = len <= max_message(self.size) && frame_len(len) <= self.size - self.off;
        (fits && word == header(self.tail, len as u64)).then_some(len)
    }

    #[inline(never)]
    fn peek_slow<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
    ) -> Result<Peek, Corruption> {
        if let Some(fault) = self.fault {
            return Err(fault);
        }
        // At most twice round: after a wrap marker comes offset 0, where
        // none may stand.
        loop {
            let mut word = bytes.header(self.off).load(Ordering::Acquire);
            if word == 0 {
                // Caught up: the producer may be waiting for this space.
                self.publish(ctl);
                self.check_tail(ctl)?;
                let state = state(ctl, Side::Sender)?;
                if state == OPEN {
                    return Ok(Peek::Empty);
                }
                // The state is stored after the last publish: look once more.
                word = bytes.header(self.off).load(Ordering::Acquire);
                if word == 0 {
                    let closed_at = ctl.closed_at().load(Ordering::Relaxed);
                    if state == CLOSED && closed_at != self.tail {
                        return Err(Corruption::End {
                            closed_at,
                            reached: self.tail,
                        });
                    }
                    return Ok(Peek::Ended(state));
                }
            }
            let corrupt = Corruption::Frame {
                offset: self.off,
                value: word,
            };
            if word == WRAP {
                if self.off < FIRST_WRAP {
                    return Err(corrupt);
                }
                self.advance(self.size - self.off);
                continue;
            }
            let Some(len) = self.frame(word) else {
                return Err(corrupt);
            };
            return Ok(Peek::Message {
                off: self.off + FRAME_HEADER,
                len,
            });
        }
    }

    /// Whether there is anything to look at (fresh look at the producer's
    /// latest header and state, for the decision to park).
    pub fn has_news<C: Control + ?Sized, B: Bytes + ?Sized>(&self, ctl: &C, bytes: &B) -> bool {
        bytes.header(self.off).load(Ordering::Acquire) != 0
            || ctl.state(Side::Sender).load(Ordering::Acquire) != OPEN
    }

    /// Releases the message of `len` bytes that [`Consumer::try_peek`]
    /// returned, giving its space back to the producer (at once if the
    /// producer is parked or a quarter of the ring is pending, else when the
    /// consumer next finds the ring empty).
    #[inline]
    pub fn release<C: Control + ?Sized>(&mut self, ctl: &C, len: usize) {
        self.advance(frame_len(len));
        if self.unpublished >= self.size / 4
            || ctl.park(Side::Sender).load(Ordering::Relaxed) == PARKED
        {
            self.publish(ctl);
        }
    }

    /// Publishes what was released, marks the receiver closed and wakes a
    /// parked producer.
    pub fn close<C: Control + ?Sized>(&mut self, ctl: &C) {
        self.publish(ctl);
        announce(ctl, Side::Receiver, || {
            ctl.state(Side::Receiver).store(CLOSED, Ordering::Release);
        });
    }
}
