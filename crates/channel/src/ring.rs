//! The ring's index protocol, apart from where the ring lives.
//!
//! A producer and a consumer share two monotonically increasing byte
//! positions, `head` (written only by the producer) and `tail` (written only
//! by the consumer), and a ring of `size` bytes. A message is a *frame*: an
//! 8-byte header holding its length, then its bytes, padded to 8. A frame is
//! always contiguous; when one does not fit before the end of the ring, the
//! producer writes a *wrap marker* in the header slot and continues at offset
//! 0, so a message of up to `size - 8` bytes always fits once the consumer has
//! caught up.
//!
//! Ordering: the producer writes a frame with plain stores, then publishes
//! `head` (release); the consumer loads `head` (acquire) before it reads the
//! frame. The consumer releases a frame by publishing `tail` (release); the
//! producer loads `tail` (acquire) before it overwrites that space. Each side
//! caches the other's position and reloads it only when its cached copy says
//! there is nothing to do, so the other side's cache line moves only when
//! needed.
//!
//! Publishing is a `SeqCst` swap and the peer's "parked" word is read with
//! `SeqCst`: with the parker's `SeqCst` store of its flag and `SeqCst` load
//! of the position, one of the two always sees the other, so a wake-up is
//! never lost, yet no system call is made unless the peer is parked.
//!
//! Every atomic comes from [`shm::sync::atomic`], so this module runs under
//! `loom` unchanged (the model lives in `tests/loom.rs`).
#![forbid(unsafe_code)]

use shm::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 8;
/// Header value of a wrap marker: skip to offset 0.
pub const WRAP: u64 = u64::MAX;

/// `tx_state` / `rx_state`: the side is attached (or not yet) and running.
pub const OPEN: u32 = 0;
/// The side closed its end normally (the sender: end of stream).
pub const CLOSED: u32 = 1;
/// The sender stopped before the end of its input (interrupted).
pub const ABORTED: u32 = 2;

/// Bytes a frame of a `len`-byte message takes in the ring.
#[must_use]
pub const fn frame_len(len: usize) -> usize {
    FRAME_HEADER + len.next_multiple_of(8)
}

/// The shared words of one channel.
pub trait Control {
    /// The producer's position (bytes ever published).
    fn head(&self) -> &AtomicU64;
    /// The consumer's position (bytes ever released).
    fn tail(&self) -> &AtomicU64;
    /// [`OPEN`], [`CLOSED`] or [`ABORTED`], written by the sender.
    fn tx_state(&self) -> &AtomicU32;
    /// [`OPEN`] or [`CLOSED`], written by the receiver.
    fn rx_state(&self) -> &AtomicU32;
    /// Non-zero while the sender is parked (futex word).
    fn tx_parked(&self) -> &AtomicU32;
    /// Non-zero while the receiver is parked (futex word).
    fn rx_parked(&self) -> &AtomicU32;
}

/// The ring's bytes. Offsets are always inside the ring, 8-aligned for
/// words, and the index protocol guarantees that the peer does not touch a
/// range while it is read or written here.
pub trait Bytes {
    /// Reads the 8-byte word at `off`.
    fn read_word(&self, off: usize) -> u64;
    /// Writes the 8-byte word at `off`.
    fn write_word(&self, off: usize, value: u64);
    /// Copies `src` to `off`.
    fn write(&self, off: usize, src: &[u8]);
    /// Copies from `off` into `dst`.
    fn read(&self, off: usize, dst: &mut [u8]);
}

/// Wakes whoever is parked on `word` (a futex wake; nothing under loom).
fn wake(word: &AtomicU32) {
    #[cfg(not(loom))]
    {
        shm::sync::futex::wake(word, 1);
    }
    #[cfg(loom)]
    {
        let _ = word;
    }
}

/// Publishes `pos` to `slot` and wakes the peer if it is parked on `parked`.
fn publish(slot: &AtomicU64, pos: u64, parked: &AtomicU32) {
    slot.swap(pos, Ordering::SeqCst);
    if parked.load(Ordering::SeqCst) != 0 && parked.swap(0, Ordering::SeqCst) != 0 {
        wake(parked);
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
    /// Starts producing on a ring of `size` bytes (a multiple of 8, at least
    /// 16) whose positions are now as `ctl` says.
    pub fn new<C: Control + ?Sized>(ctl: &C, size: usize) -> Producer {
        let head = ctl.head().load(Ordering::Acquire);
        Producer {
            head,
            off: (head % size as u64) as usize,
            cached_tail: ctl.tail().load(Ordering::Acquire),
            size,
        }
    }

    /// The largest message the ring takes.
    #[must_use]
    pub fn max_message(&self) -> usize {
        self.size - FRAME_HEADER
    }

    fn free(&self) -> usize {
        self.size - (self.head - self.cached_tail) as usize
    }

    fn room<C: Control + ?Sized>(&mut self, ctl: &C, n: usize) -> bool {
        if self.free() >= n {
            return true;
        }
        self.cached_tail = ctl.tail().load(Ordering::Acquire);
        self.free() >= n
    }

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
    pub fn try_reserve<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
        len: usize,
    ) -> Result<usize, Full> {
        debug_assert!(len <= self.max_message());
        let need = frame_len(len);
        let to_end = self.size - self.off;
        if need > to_end {
            // Publish the marker on its own: a frame as large as the ring
            // only fits once the consumer has passed it.
            if !self.room(ctl, to_end) {
                return Err(Full);
            }
            bytes.write_word(self.off, WRAP);
            self.advance(to_end);
            publish(ctl.head(), self.head, ctl.rx_parked());
        }
        if !self.room(ctl, need) {
            return Err(Full);
        }
        Ok(self.off + FRAME_HEADER)
    }

    /// Whether a message of `len` bytes would fit now (fresh look at the
    /// consumer's position, for the decision to park).
    pub fn has_room<C: Control + ?Sized>(&self, ctl: &C, len: usize) -> bool {
        let tail = ctl.tail().load(Ordering::SeqCst);
        let free = self.size - (self.head - tail) as usize;
        let to_end = self.size - self.off;
        let need = frame_len(len);
        if need > to_end {
            free >= to_end
        } else {
            free >= need
        }
    }

    /// Publishes the message of `len` bytes written at the offset the last
    /// [`Producer::try_reserve`] returned (for `len` at most the length
    /// reserved).
    pub fn commit<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
        len: usize,
    ) {
        bytes.write_word(self.off, len as u64);
        self.advance(frame_len(len));
        publish(ctl.head(), self.head, ctl.rx_parked());
    }

    /// Marks the end of the stream ([`CLOSED`]) or an abort ([`ABORTED`])
    /// after everything committed, and wakes a parked consumer.
    pub fn close<C: Control + ?Sized>(&self, ctl: &C, state: u32) {
        ctl.tx_state().swap(state, Ordering::SeqCst);
        let parked = ctl.rx_parked();
        if parked.load(Ordering::SeqCst) != 0 {
            parked.store(0, Ordering::SeqCst);
            wake(parked);
        }
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
    cached_head: u64,
    size: usize,
}

impl Consumer {
    /// Starts consuming a ring of `size` bytes whose positions are now as
    /// `ctl` says.
    pub fn new<C: Control + ?Sized>(ctl: &C, size: usize) -> Consumer {
        let tail = ctl.tail().load(Ordering::Acquire);
        Consumer {
            tail,
            off: (tail % size as u64) as usize,
            cached_head: ctl.head().load(Ordering::Acquire),
            size,
        }
    }

    fn advance(&mut self, n: usize) {
        self.tail += n as u64;
        self.off += n;
        if self.off == self.size {
            self.off = 0;
        }
    }

    /// Looks at the next message without releasing it.
    ///
    /// # Errors
    ///
    /// [`Corrupt`] if a frame header is impossible.
    pub fn try_peek<C: Control + ?Sized, B: Bytes + ?Sized>(
        &mut self,
        ctl: &C,
        bytes: &B,
    ) -> Result<Peek, Corrupt> {
        loop {
            if self.tail == self.cached_head {
                self.cached_head = ctl.head().load(Ordering::Acquire);
                if self.tail == self.cached_head {
                    let state = ctl.tx_state().load(Ordering::Acquire);
                    if state == OPEN {
                        return Ok(Peek::Empty);
                    }
                    // The state is stored after the last publish: look once more.
                    self.cached_head = ctl.head().load(Ordering::Acquire);
                    if self.tail == self.cached_head {
                        return Ok(Peek::Ended(state));
                    }
                }
            }
            let word = bytes.read_word(self.off);
            let avail = (self.cached_head - self.tail) as usize;
            if word == WRAP {
                let skip = self.size - self.off;
                if skip > avail {
                    return Err(Corrupt {
                        offset: self.off,
                        value: word,
                    });
                }
                self.advance(skip);
                // The producer may be waiting for exactly this space.
                publish(ctl.tail(), self.tail, ctl.tx_parked());
                continue;
            }
            let len = usize::try_from(word).unwrap_or(usize::MAX);
            if len > self.size - FRAME_HEADER || frame_len(len) > avail.min(self.size - self.off) {
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
    /// position and state, for the decision to park).
    pub fn has_news<C: Control + ?Sized>(&self, ctl: &C) -> bool {
        ctl.head().load(Ordering::SeqCst) != self.tail
            || ctl.tx_state().load(Ordering::SeqCst) != OPEN
    }

    /// Releases the message of `len` bytes that [`Consumer::try_peek`]
    /// returned, giving its space back to the producer.
    pub fn release<C: Control + ?Sized>(&mut self, ctl: &C, len: usize) {
        self.advance(frame_len(len));
        publish(ctl.tail(), self.tail, ctl.tx_parked());
    }

    /// Marks the receiver closed and wakes a parked producer.
    pub fn close<C: Control + ?Sized>(&self, ctl: &C) {
        ctl.rx_state().swap(CLOSED, Ordering::SeqCst);
        let parked = ctl.tx_parked();
        if parked.load(Ordering::SeqCst) != 0 {
            parked.store(0, Ordering::SeqCst);
            wake(parked);
        }
    }
}
