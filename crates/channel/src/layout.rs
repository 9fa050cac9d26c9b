//! The channel segment's payload: a header of three 128-byte lines, then
//! the ring.
//!
//! The consumer's position lives on a line of its own (128 bytes: two
//! 64-byte lines, since adjacent-line prefetchers pull pairs); the producer
//! publishes through the frame headers in the ring itself (see
//! [`crate::ring`]). The park words, read on every publish, share a line
//! that is written only when a side starts or stops parking. Setup and
//! liveness fields, written once per attach, have the last line.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::ring::Control;

shm::shared_struct! {
    /// One side's position, alone on its line.
    #[repr(align(128))]
    #[derive(Debug)]
    pub(crate) struct PositionLine {
        pub(crate) pos: AtomicU64,
        pad: [AtomicU64; 15],
    }

    /// The sides' park words (futex words).
    #[repr(align(128))]
    #[derive(Debug)]
    pub(crate) struct ParkLine {
        pub(crate) tx_park: AtomicU32,
        pub(crate) rx_park: AtomicU32,
        pad: [AtomicU64; 15],
    }

    /// Who is attached, and how each side ended.
    #[repr(align(128))]
    #[derive(Debug)]
    pub(crate) struct SetupLine {
        /// Bytes of the ring after the header.
        pub(crate) ring_size: AtomicU64,
        pub(crate) tx_pid: AtomicU32,
        pub(crate) tx_state: AtomicU32,
        pub(crate) tx_start: AtomicU64,
        pub(crate) rx_pid: AtomicU32,
        pub(crate) rx_state: AtomicU32,
        pub(crate) rx_start: AtomicU64,
        /// The CPUs the sender may run on (see `crate::wait::Cpus`).
        pub(crate) tx_cpus: AtomicU64,
        pub(crate) rx_cpus: AtomicU64,
        /// `FLAG_BARRIER` if the sender takes part in heavy barriers.
        pub(crate) tx_flags: AtomicU32,
        pub(crate) rx_flags: AtomicU32,
        pad: [AtomicU64; 8],
    }

    /// The channel header at the start of the payload.
    #[derive(Debug)]
    pub(crate) struct ChannelHeader {
        pub(crate) tail: PositionLine,
        pub(crate) park: ParkLine,
        pub(crate) setup: SetupLine,
    }
}

const _: () = assert!(std::mem::size_of::<ChannelHeader>() == 384);

/// Version of the channel protocol (the meaning of the header's words and
/// of the frames). Bump it on any change that keeps the sizes: a peer of
/// another version is then refused rather than misread.
pub(crate) const PROTOCOL: u32 = 2;

/// The payload layout recorded in, and required of, a channel segment.
pub(crate) fn layout() -> shm::header::Layout {
    shm::header::Layout::of::<ChannelHeader>().versioned(PROTOCOL)
}

/// `tx_flags` / `rx_flags`: the side's process is registered for
/// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, so its peer's heavy
/// barriers reach it.
pub(crate) const FLAG_BARRIER: u32 = 1;

impl Control for ChannelHeader {
    fn tail(&self) -> &AtomicU64 {
        &self.tail.pos
    }
    fn tx_state(&self) -> &AtomicU32 {
        &self.setup.tx_state
    }
    fn rx_state(&self) -> &AtomicU32 {
        &self.setup.rx_state
    }
    fn tx_park(&self) -> &AtomicU32 {
        &self.park.tx_park
    }
    fn rx_park(&self) -> &AtomicU32 {
        &self.park.rx_park
    }
    fn heavy_barrier(&self) -> bool {
        shm::membarrier::global_expedited().is_ok()
    }
    fn wake(&self, word: &AtomicU32) {
        shm::sync::futex::wake(word, 1);
    }
}
