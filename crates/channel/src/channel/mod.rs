//! [`Sender`] and [`Receiver`]: the two ends of a channel in one managed
//! segment.
//!
//! * `mod.rs`: what both ends hold ([`End`]) and the [`Options`] they open
//!   with;
//! * `rendezvous.rs`: creating or opening the segment and claiming a side;
//! * `sender.rs`: [`Sender`] and its zero-copy [`Grant`];
//! * `receiver.rs`: [`Receiver`] and the [`Message`] it lends.
#![forbid(unsafe_code)]

mod receiver;
mod rendezvous;
mod sender;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::Side;
use crate::layout::{ChannelHeader, EndWords, FLAG_BARRIER};
use crate::raw::Mapped;
use crate::ring::{self, Control};
use crate::wait::{self, Backoff, PARK_SLICE, Wait};

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
    /// Where this side may run ([`wait::cpus_code`]).
    cpus: u64,
    /// This process takes part in heavy barriers (so may run them).
    barrier: bool,
}

impl End {
    fn ctl(&self) -> &ChannelHeader {
        self.mapped.header()
    }

    /// This side's park word.
    fn own_park(&self) -> &AtomicU32 {
        self.ctl().park(self.side)
    }

    /// The peer's setup and liveness words.
    fn peer(&self) -> &EndWords {
        self.ctl().end(self.side.other())
    }

    /// Whether the peer has not closed its end (yet).
    fn peer_open(&self) -> bool {
        self.ctl().state(self.side.other()).load(Ordering::Acquire) == ring::OPEN
    }

    /// A fresh wait, spinning unless both sides share one CPU.
    fn backoff(&self) -> Backoff {
        let peer = self.peer().cpus.load(Ordering::Relaxed);
        Backoff::new(self.wait, wait::must_yield(self.cpus, peer))
    }

    /// Ends a wait: lets the peer skip its fences while this side keeps
    /// finding what it waits for without parking.
    fn done(&mut self, backoff: &Backoff) {
        if backoff.no_barrier {
            self.barrier = false;
        }
        let peer = self.peer().flags.load(Ordering::Acquire);
        let covered = self.barrier && peer & FLAG_BARRIER != 0;
        backoff.done(self.own_park(), covered);
    }

    /// The largest message the ring takes.
    fn capacity(&self) -> usize {
        ring::max_message(self.size)
    }

    /// Whether the peer has attached.
    fn peer_attached(&self) -> bool {
        self.peer().pid.load(Ordering::Acquire) != 0
    }

    /// The peer's pid if it attached and has died since (checked at most
    /// every park slice, since reading `/proc` costs microseconds).
    fn dead_peer(&mut self, now: Instant) -> Option<u32> {
        if self
            .last_check
            .is_some_and(|t| now.duration_since(t) < PARK_SLICE)
        {
            return None;
        }
        self.last_check = Some(now);
        let peer = self.peer().holder();
        (peer.pid != 0 && !peer.is_alive()).then_some(peer.pid)
    }

    /// Removes the name if this side created it and no peer took it away.
    fn unlink_if_unclaimed(&self) {
        if self.created {
            let _ = self.mapped.managed().remove();
        }
    }
}
