//! [`Sender`] and [`Receiver`]: the two ends of a channel in one managed
//! segment.
//!
//! * `mod.rs`: what both ends hold ([`End`]) and the [`Options`] they open
//!   with;
//! * `rendezvous.rs`: creating or opening the segment and claiming a side;
//! * `sender.rs`: [`Sender`] and its zero-copy [`Grant`];
//! * `receiver.rs`: [`Receiver`] and the [`Message`] it lends;
//! * `waiting.rs`: what an end does around a wait for its peer, and the
//!   checks after it (signal? peer dead?) that every waiting call shares.
#![forbid(unsafe_code)]

/// The accessors both ends have, over their [`End`] (`peer`: what the
/// other end is called).
macro_rules! end_accessors {
    ($peer:literal) => {
        /// The largest message this channel takes.
        #[must_use]
        pub fn capacity(&self) -> usize {
            self.end.capacity()
        }

        /// The channel's key or name, for messages.
        #[must_use]
        pub fn name(&self) -> &str {
            &self.end.name
        }

        #[doc = concat!("Whether the ", $peer, " has attached.")]
        #[must_use]
        pub fn peer_attached(&self) -> bool {
            self.end.peer_attached()
        }
    };
}

mod receiver;
mod rendezvous;
mod sender;
mod waiting;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::error::{Corruption, Side};
use crate::layout::{ChannelHeader, EndWords};
use crate::raw::Mapped;
use crate::ring::{self, Control, Parker};
use crate::wait::Wait;

pub use receiver::{Message, Receiver};
pub use sender::{Grant, Sender};

/// Default capacity: the largest message, and about the bytes in flight.
/// Small enough for the ring to stay in a core's L2 cache.
pub const DEFAULT_CAPACITY: usize = 256 * 1024;

/// How to create or open a channel.
#[derive(Clone, Debug)]
pub struct Options {
    /// Largest message, in bytes, if this side creates the channel (an
    /// existing channel keeps its own). The ring holds this plus an 8-byte
    /// frame header and 8 bytes of slack, rounded up to 8.
    pub capacity: usize,
    /// Permission bits of a channel this side creates.
    pub mode: u32,
    /// How long to wait for a channel's creator to finish setting it up.
    pub ready_wait: Duration,
    /// How this side waits for its peer.
    pub wait: Wait,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: DEFAULT_CAPACITY,
            mode: 0o600,
            ready_wait: shm::DEFAULT_READY_WAIT,
            wait: Wait::Adaptive,
        }
    }
}

/// What both ends hold.
#[derive(Debug)]
struct End {
    mapped: Mapped,
    name: String,
    side: Side,
    size: usize,
    wait: Wait,
    created: bool,
    last_check: Option<Instant>,
    /// Where this side may run ([`crate::wait::cpus_code`]).
    cpus: u64,
    /// This process takes part in heavy barriers (so may run them).
    barrier: bool,
    /// How this side parks, across its waits.
    parker: Parker,
}

impl End {
    fn ctl(&self) -> &ChannelHeader {
        self.mapped.header()
    }

    /// The peer's setup and liveness words.
    fn peer(&self) -> &EndWords {
        self.ctl().end(self.side.other())
    }

    /// Whether the peer has not closed its end (yet): a quick look, for
    /// the decision to park ([`End::peer_state`] validates).
    fn peer_open(&self) -> bool {
        self.ctl().state(self.side.other()).load(Ordering::Acquire) == ring::OPEN
    }

    /// The peer's state.
    ///
    /// # Errors
    ///
    /// [`Corruption::State`] if its word holds no state.
    fn peer_state(&self) -> Result<u32, Corruption> {
        ring::state(self.ctl(), self.side.other())
    }

    /// The largest message the ring takes.
    fn capacity(&self) -> usize {
        ring::max_message(self.size)
    }

    /// Whether the peer has attached.
    fn peer_attached(&self) -> bool {
        self.peer().pid.load(Ordering::Acquire) != 0
    }

    /// Removes the name if this side created it and no peer took it away.
    fn unlink_if_unclaimed(&self) {
        if self.created {
            let _ = self.mapped.managed().remove();
        }
    }
}
