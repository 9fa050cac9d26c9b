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
//! yet", anything else is a length (with [`VALID`] set) or [`WRAP`]. The
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
//! Every atomic comes from [`shm::sync::atomic`], so this module runs under
//! `loom` unchanged (the model lives in `tests/loom.rs`).
#![forbid(unsafe_code)]

use std::sync::atomic::compiler_fence;

use shm::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crate::error::Side;

/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 8;
/// Bytes the ring keeps beyond the largest frame: the next frame's header
/// slot, zeroed before each publish.
pub const SLACK: usize = 8;
/// Set in every published length header, so that no header is 0.
pub const VALID: u64 = 1 << 63;
/// Header value of a wrap marker: skip to offset 0.
pub const WRAP: u64 = u64::MAX;

/// A side's state word: the side is attached (or not yet) and running.
pub const OPEN: u32 = 0;
/// The side closed its end normally (the sender: end of stream).
pub const CLOSED: u32 = 1;
/// The sender stopped before the end of its input (interrupted).
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
    /// `side`'s state, written by that side: [`OPEN`] or [`CLOSED`], or
    /// (the sender only) [`ABORTED`].
    fn state(&self, side: Side) -> &AtomicU32;
    /// `side`'s park word ([`AWAKE`], [`SLEEPY`], [`PARKED`]; a futex
    /// word).
    fn park(&self, side: Side) -> &AtomicU32;
    /// Runs `f`, a publish followed by a look at the peer's park word, as
    /// one light section: the peer's [`Control::heavy_barrier`] orders
    /// itself against it as a whole. Between processes that is simply
    /// running it, in program order.
    fn light<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
    /// A barrier that every light section of the peer is wholly before or
    /// wholly after (what `membarrier(2)` does to the peer's CPU). `false`
    /// if it could not be run; the caller must then not sleep.
    fn heavy_barrier(&self) -> bool;
    /// Wakes the side sleeping on park word `word` (`FUTEX_WAKE`).
    fn wake(&self, word: &AtomicU32);
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

/// Runs `store` (a release store that gives the peer something to do),
/// then wakes the peer if it is parked on `peer`.
#[inline]
fn announce<C: Control + ?Sized>(ctl: &C, store: impl FnOnce(), peer: &AtomicU32) {
    let state = ctl.light(|| {
        store();
        // The look must follow the store in the instruction stream, for the
        // peer's heavy barrier to split them in that order.
        compiler_fence(Ordering::SeqCst);
        peer.load(Ordering::Relaxed)
    });
    if state != AWAKE {
        wake_if_parked(ctl, peer);
    }
}

#[inline(never)]
fn wake_if_parked<C: Control + ?Sized>(ctl: &C, peer: &AtomicU32) {
    fence(Ordering::SeqCst);
    if peer.load(Ordering::Relaxed) == PARKED
        && peer
            .compare_exchange(PARKED, SLEEPY, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        ctl.wake(peer);
    }
}

/// What [`park_begin`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Park {
    /// Sleep on the park word while it holds [`PARKED`], then call
    /// [`park_end`].
    Sleep,
    /// There is news after all: do not sleep.
    News,
    /// The heavy barrier failed: do not sleep (and do not become
    /// [`AWAKE`] again).
    NoBarrier,
}

/// The first half of parking on `own`, this side's park word: announces it
/// (leaving [`AWAKE`] through a heavy barrier), then looks for `news` (the
/// peer's publishes that would end the wait) once more.
pub fn park_begin<C: Control + ?Sized>(
    ctl: &C,
    own: &AtomicU32,
    news: impl FnOnce() -> bool,
) -> Park {
    if own.load(Ordering::Relaxed) == AWAKE {
        own.store(SLEEPY, Ordering::Relaxed);
        if !ctl.heavy_barrier() {
            return Park::NoBarrier;
        }
    }
    own.store(PARKED, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    if news() {
        own.store(SLEEPY, Ordering::Relaxed);
        return Park::News;
    }
    Park::Sleep
}

/// The second half of parking: after the sleep (woken, timed out or
/// interrupted).
pub fn park_end(own: &AtomicU32) {
    let _ = own.compare_exchange(PARKED, SLEEPY, Ordering::Relaxed, Ordering::Relaxed);
}

/// Lets the peer skip its fence from now on, while this side does not park
/// (call only between waits, never while parked). `peer_covered`: the
/// heavy barrier reaches the peer.
pub fn stay_awake(own: &AtomicU32, peer_covered: bool) {
    if peer_covered && own.load(Ordering::Relaxed) == SLEEPY {
        own.store(AWAKE, Ordering::Relaxed);
    }
}

/// The ring is full: the message does not fit now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A frame header that cannot be: the segment was overwritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    /// Ring offset of the header.
    pub offset: usize,
    /// What it held.
    pub value: u64,
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
    /// least 24) whose consumer position is now as `ctl` says.
    pub fn new<C: Control + ?Sized>(ctl: &C, size: usize) -> Producer {
        let tail = ctl.tail().load(Ordering::Acquire);
        Producer {
            head: tail,
            off: (tail % size as u64) as usize,
            cached_tail: tail,
            size,
        }
    }

    /// The largest message the ring takes.
    #[must_use]
    pub fn max_message(&self) -> usize {
        max_message(self.size)
    }

    /// Bytes ever committed (wrap markers included).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.head
    }

    #[inline]
    fn free(&self) -> usize {
        self.size - (self.head - self.cached_tail) as usize
    }

    #[inline]
    fn room<C: Control + ?Sized>(&mut self, ctl: &C, n: usize) -> bool {
        if self.free() >= n {
            return true;
        }
        self.cached_tail = ctl.tail().load(Ordering::Acquire);
        self.free() >= n
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
    /// [`Full`] when the consumer has not yet released enough space.
    #[inline]
    pub fn try_reserve<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
        len: usize,
    ) -> Result<usize, Full> {
        debug_assert!(len <= self.max_message());
        let need = frame_len(len) + SLACK;
        let to_end = self.size - self.off;
        if frame_len(len) > to_end {
            // Publish the marker on its own: a frame as large as the ring
            // only fits once the consumer has passed it.
            if !self.room(ctl, to_end + SLACK) {
                return Err(Full);
            }
            bytes.header(0).store(0, Ordering::Relaxed);
            let slot = bytes.header(self.off);
            announce(
                ctl,
                || slot.store(WRAP, Ordering::Release),
                ctl.park(Side::Receiver),
            );
            self.advance(to_end);
        }
        if !self.room(ctl, need) {
            return Err(Full);
        }
        Ok(self.off + FRAME_HEADER)
    }

    /// Whether a message of `len` bytes would fit now (fresh look at the
    /// consumer's position, for the decision to park).
    pub fn has_room<C: Control + ?Sized>(&self, ctl: &C, len: usize) -> bool {
        let tail = ctl.tail().load(Ordering::Acquire);
        let free = self.size - (self.head - tail) as usize;
        let to_end = self.size - self.off;
        if frame_len(len) > to_end {
            free >= to_end + SLACK
        } else {
            free >= frame_len(len) + SLACK
        }
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
        let here = self.off;
        self.advance(frame_len(len));
        bytes.header(self.off).store(0, Ordering::Relaxed);
        let slot = bytes.header(here);
        announce(
            ctl,
            || slot.store(len as u64 | VALID, Ordering::Release),
            ctl.park(Side::Receiver),
        );
    }

    /// Marks the end of the stream ([`CLOSED`]) or an abort ([`ABORTED`])
    /// after everything committed, and wakes a parked consumer.
    pub fn close<C: Control + ?Sized>(&self, ctl: &C, state: u32) {
        announce(
            ctl,
            || ctl.state(Side::Sender).store(state, Ordering::Release),
            ctl.park(Side::Receiver),
        );
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
    /// Nothing, ever again: the sender closed ([`CLOSED`]) or aborted
    /// ([`ABORTED`]) after its last message.
    Ended(u32),
}

/// The consumer's private state.
#[derive(Debug)]
pub struct Consumer {
    tail: u64,
    off: usize,
    /// Bytes released but not yet published to the producer.
    unpublished: usize,
    size: usize,
}

impl Consumer {
    /// Starts consuming a ring of `size` bytes whose consumer position is
    /// now as `ctl` says.
    pub fn new<C: Control + ?Sized>(ctl: &C, size: usize) -> Consumer {
        let tail = ctl.tail().load(Ordering::Acquire);
        Consumer {
            tail,
            off: (tail % size as u64) as usize,
            unpublished: 0,
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

    /// Gives every released byte back to the producer now.
    #[inline(never)]
    pub fn publish<C: Control + ?Sized>(&mut self, ctl: &C) {
        if self.unpublished != 0 {
            self.unpublished = 0;
            let tail = self.tail;
            announce(
                ctl,
                || ctl.tail().store(tail, Ordering::Release),
                ctl.park(Side::Sender),
            );
        }
    }

    /// Looks at the next message without releasing it.
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if a frame header is impossible.
    #[inline]
    pub fn try_peek<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
    ) -> Result<Peek, Corrupt> {
        let word = bytes.header(self.off).load(Ordering::Acquire);
        // The common case first, and small enough to inline: a message.
        if word & VALID != 0 && word != WRAP {
            let len = (word & !VALID) as usize;
            if len <= max_message(self.size) && frame_len(len) <= self.size - self.off {
                return Ok(Peek::Message {
                    off: self.off + FRAME_HEADER,
                    len,
                });
            }
        }
        self.peek_slow(ctl, bytes)
    }

    #[inline(never)]
    fn peek_slow<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
    ) -> Result<Peek, Corrupt> {
        loop {
            let mut word = bytes.header(self.off).load(Ordering::Acquire);
            if word == 0 {
                // Caught up: the producer may be waiting for this space.
                self.publish(ctl);
                let state = ctl.state(Side::Sender).load(Ordering::Acquire);
                if state == OPEN {
                    return Ok(Peek::Empty);
                }
                // The state is stored after the last publish: look once more.
                word = bytes.header(self.off).load(Ordering::Acquire);
                if word == 0 {
                    return Ok(Peek::Ended(state));
                }
            }
            if word == WRAP {
                self.advance(self.size - self.off);
                continue;
            }
            let len = usize::try_from(word & !VALID).unwrap_or(usize::MAX);
            if word & VALID == 0
                || len > max_message(self.size)
                || frame_len(len) > self.size - self.off
            {
                return Err(Corrupt {
                    offset: self.off,
                    value: word,
                });
            }
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
        announce(
            ctl,
            || ctl.state(Side::Receiver).store(CLOSED, Ordering::Release),
            ctl.park(Side::Sender),
        );
    }
}
