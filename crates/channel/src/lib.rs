//! The shmex producer/consumer channel: a bounded single-producer,
//! single-consumer ring of framed messages in one managed shared-memory
//! segment.
//!
//! * Either end may start first: [`Sender::open`] and [`Receiver::open`]
//!   create the channel exclusively, or open the one the other end created
//!   (waiting, bounded, for it to be ready). Once both ends are attached the
//!   segment's name is removed, so no crash can leak it; an end that exits
//!   before its peer came removes it.
//! * Messages of 0 bytes up to the channel's capacity; a larger one is
//!   [`SendError::TooLarge`]. Copying ([`Sender::send`]) or zero-copy
//!   ([`Sender::reserve`] → write → [`Grant::commit`]; [`Receiver::recv`]
//!   lends a [`Message`] that releases its space on drop). Blocking, with a
//!   timeout, or non-blocking (`try_…`).
//! * Waiting spins briefly, then yields, then parks on a futex word in the
//!   segment ([`Wait`]); a side issues `FUTEX_WAKE` only when its peer is
//!   parked. While the peer is not about to park, a publish is a plain
//!   release store and a plain load: no system call, no fence, no locked
//!   instruction (a side that starts to park first runs
//!   `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`; see the `ring` module).
//! * End of stream when the sender closes ([`Sender::close`]); a sender
//!   that aborts, or is dropped without closing (an early return, a
//!   panic), ends it as [`RecvError::Aborted`]. A peer that dies (even by
//!   `SIGKILL`) is noticed by a blocked side within about 100 ms
//!   ([`RecvError::PeerGone`], [`SendError::PeerGone`]), with pid reuse
//!   ruled out by the process start time.
//! * Any process that can write the segment can change any of its bytes:
//!   every word read from it is validated before use, and what cannot be
//!   is [`RecvError::Corrupted`] / [`SendError::Corrupted`], never a panic
//!   or an endless loop (see the `ring` module).
//!
//! The index protocol is in its own module, written against
//! [`shm::sync::atomic`] so that `loom` checks it (`tests/loom.rs`).
//!
//! Unsafe code: denied here, allowed in one private module, `raw`, which
//! copies bytes in and out of the ring and lends slices of it, and whose
//! module doc argues its soundness. Every other module, the public layer
//! (`channel/`) included, is `#![forbid(unsafe_code)]`.
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(not(loom))]
mod channel;
mod error;
#[cfg(not(loom))]
mod layout;
#[cfg(not(loom))]
mod raw;
#[cfg(loom)]
pub mod ring;
#[cfg(not(loom))]
mod ring;
#[cfg(not(loom))]
mod wait;

#[cfg(not(loom))]
pub use channel::{DEFAULT_CAPACITY, Grant, Message, Options, Receiver, Sender};
pub use error::{Corruption, OpenError, RecvError, SendError, Side};

/// What a channel's segment holds, as its header records it. A program
/// that lists segments registers it ([`shm::register_kind`]) so that
/// listings and errors call such segments channels.
pub const KIND: shm::Kind = shm::Kind::new(2, "channel");
#[cfg(not(loom))]
pub use wait::Wait;
