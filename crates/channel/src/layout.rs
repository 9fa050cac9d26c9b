//! The channel segment's payload: a header of three 128-byte lines, then
//! the ring.
//!
//! The consumer's position lives on a line of its own (128 bytes: two
//! 64-byte lines, since adjacent-line prefetchers pull pairs); the producer
//! publishes through the frame headers in the ring itself (see
//! [`crate::ring`]). The park words, read on every publish, share a line
//! that is written only when a side starts or stops parking. Setup and
//! liveness words, written once per attach, have the last line.
//!
//! Every word that each side has one of comes as a pair, `[T; 2]`, the
//! sender's first and the receiver's second ([`Side::index`]): code picks a
//! side's word by indexing with the side, and its peer's with
//! [`Side::other`], instead of naming `tx_…` and `rx_…` fields.
//!
//! ```text
//! offset  line      words
//!      0  position  tail (u64: bytes the consumer released), padding
//!    128  park      park[sender], park[receiver] (u32 futex words), padding
//!    256  setup     ring_size (u64),
//!                   ends[sender], ends[receiver]: pid (u32), state (u32),
//!                     start (u64), cpus (u64), flags (u32), spare (u32),
//!                   closed_at (u64: where the sender closed the stream),
//!                   padding
//!    384  ring      frames (see `crate::ring`)
//! ```
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use shm::sync::ProcessId;

use crate::error::Side;
use crate::ring::Control;

shm::shared_struct! {
    /// One side's position, alone on its line.
    #[repr(align(128))]
    #[derive(Debug)]
    pub(crate) struct PositionLine {
        pub(crate) pos: AtomicU64,
        pad: [AtomicU64; 15],
    }

    /// The sides' park words (futex words), by [`Side::index`].
    #[repr(align(128))]
    #[derive(Debug)]
    pub(crate) struct ParkLine {
        pub(crate) words: [AtomicU32; 2],
        pad: [AtomicU64; 15],
    }

    /// Who holds one side, and how that side ended.
    #[derive(Debug)]
    pub(crate) struct EndWords {
        /// The holder's pid, 0 while the side is free.
        pub(crate) pid: AtomicU32,
        /// [`crate::ring::OPEN`], [`crate::ring::CLOSED`] or (the sender
        /// only) [`crate::ring::ABORTED`].
        pub(crate) state: AtomicU32,
        /// The holder's start time, which rules out pid reuse.
        pub(crate) start: AtomicU64,
        /// The CPUs the holder may run on (see `crate::wait::cpus_code`).
        pub(crate) cpus: AtomicU64,
        /// [`FLAG_BARRIER`] if the holder takes part in heavy barriers.
        pub(crate) flags: AtomicU32,
        spare: AtomicU32,
    }

    /// Who is attached, and how each side ended.
    #[repr(align(128))]
    #[derive(Debug)]
    pub(crate) struct SetupLine {
        /// Bytes of the ring after the header.
        pub(crate) ring_size: AtomicU64,
        /// Each side's words, by [`Side::index`].
        pub(crate) ends: [EndWords; 2],
        /// Bytes the sender had committed when it closed the stream.
        pub(crate) closed_at: AtomicU64,
        pad: [AtomicU64; 6],
    }

    /// The channel header at the start of the payload.
    #[derive(Debug)]
    pub(crate) struct ChannelHeader {
        pub(crate) tail: PositionLine,
        pub(crate) park: ParkLine,
        pub(crate) setup: SetupLine,
    }
}

const _: () = assert!(std::mem::size_of::<EndWords>() == 32);
const _: () = assert!(std::mem::size_of::<ChannelHeader>() == 384);

/// Version of the channel protocol (the meaning of the header's words and
/// of the frames). Bump it on any change that keeps the sizes: a peer of
/// another version is then refused rather than misread.
///
/// 3: the per-side words became pairs indexed by side (the setup line's
/// words moved).
/// 4: the sender records where it closed the stream (`closed_at`), and a
/// sender dropped without closing is aborted, not closed.
pub(crate) const PROTOCOL: u32 = 4;

/// The payload layout recorded in, and required of, a channel segment.
pub(crate) fn layout() -> shm::header::Layout {
    shm::header::Layout::of::<ChannelHeader>().versioned(PROTOCOL)
}

/// [`EndWords::flags`]: the side's process is registered for
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, so its peer's heavy
/// barriers reach it.
pub(crate) const FLAG_BARRIER: u32 = 1;

impl EndWords {
    /// The process that holds this side (pid 0: none yet).
    pub(crate) fn holder(&self) -> ProcessId {
        ProcessId {
            pid: self.pid.load(Ordering::Acquire),
            start_time: self.start.load(Ordering::Acquire),
        }
    }
}

impl ChannelHeader {
    /// `side`'s setup and liveness words.
    #[inline]
    pub(crate) fn end(&self, side: Side) -> &EndWords {
        &self.setup.ends[side.index()]
    }
}

impl Control for ChannelHeader {
    #[inline]
    fn tail(&self) -> &AtomicU64 {
        &self.tail.pos
    }
    #[inline]
    fn closed_at(&self) -> &AtomicU64 {
        &self.setup.closed_at
    }
    #[inline]
    fn state(&self, side: Side) -> &AtomicU32 {
        &self.end(side).state
    }
    #[inline]
    fn park(&self, side: Side) -> &AtomicU32 {
        &self.park.words[side.index()]
    }
    fn heavy_barrier(&self, _side: Side) -> bool {
        shm::membarrier::global_expedited().is_ok()
    }
    fn wake(&self, side: Side) {
        shm::sync::futex::wake(self.park(side), 1);
    }
}

#[cfg(test)]
mod tests {
    use shm::header::Layout;
    use shm::{Lifetime, Managed, ManagedOptions, SegmentId};

    use super::{ChannelHeader, PROTOCOL};
    use crate::{OpenError, Options, Receiver};

    /// A channel laid out by the previous protocol (sizes unchanged, words
    /// elsewhere) is refused with both versions named, not misread.
    #[test]
    fn a_channel_of_the_previous_protocol_is_refused() {
        let name = format!("shmex-test-chan-v{}-{}", PROTOCOL - 1, std::process::id());
        let id = SegmentId::posix(name).unwrap();
        let old = ManagedOptions {
            kind: crate::KIND,
            lifetime: Lifetime::Owned,
            mode: 0o600,
            layout: Layout::of::<ChannelHeader>().versioned(PROTOCOL - 1),
            payload_size: (size_of::<ChannelHeader>() + 64) as u64,
        };
        let seg = Managed::create(&id, &old, |_| Ok::<(), shm::Error>(())).unwrap();
        let opened = Receiver::open(&id, &Options::default());
        let _ = seg.remove();
        match opened {
            Err(OpenError::Segment(shm::Error::Incompatible { reason, .. })) => {
                let (old, new) = (format!("@v{}", PROTOCOL - 1), format!("@v{PROTOCOL}"));
                assert!(reason.contains(&old) && reason.contains(&new), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
