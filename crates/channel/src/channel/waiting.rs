//! What an end does around a wait for its peer ([`crate::wait`] holds the
//! wait itself: spin, yield, park): the backoff it starts with, the checks
//! after each wait that took time (a termination signal, the peer's
//! death), and how a finished wait lets the peer skip its fences.
#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::End;
use crate::error::{Corruption, RecvError, SendError};
use crate::layout::FLAG_BARRIER;
use crate::wait::{self, Backoff, PARK_SLICE};

/// The error of an operation that waits for the peer, for the reasons any
/// such wait ends early.
pub(super) trait WaitError: From<shm::Truncated> {
    /// A termination signal arrived while waiting on `channel`.
    fn interrupted(channel: String, signal: i32) -> Self;
    /// The peer, process `pid`, died.
    fn peer_gone(channel: String, pid: u32) -> Self;
    /// The channel's shared state is impossible.
    fn corrupted(channel: String, what: Corruption) -> Self;
}

impl WaitError for SendError {
    fn interrupted(channel: String, signal: i32) -> Self {
        SendError::Interrupted { channel, signal }
    }
    fn peer_gone(channel: String, pid: u32) -> Self {
        SendError::PeerGone { channel, pid }
    }
    fn corrupted(channel: String, what: Corruption) -> Self {
        SendError::Corrupted { channel, what }
    }
}

impl WaitError for RecvError {
    fn interrupted(channel: String, signal: i32) -> Self {
        RecvError::Interrupted { channel, signal }
    }
    fn peer_gone(channel: String, pid: u32) -> Self {
        RecvError::PeerGone { channel, pid }
    }
    fn corrupted(channel: String, what: Corruption) -> Self {
        RecvError::Corrupted { channel, what }
    }
}

impl End {
    /// A fresh wait, spinning unless both sides share one CPU.
    pub(super) fn backoff(&self) -> Backoff {
        let peer = self.peer().cpus.load(Ordering::Relaxed);
        Backoff::new(self.wait, wait::must_yield(self.cpus, peer))
    }

    /// Ends a wait: lets the peer skip its fences while this side keeps
    /// finding what it waits for without parking.
    pub(super) fn done(&self, backoff: &Backoff) {
        let peer = self.peer().flags.load(Ordering::Acquire);
        let covered = self.barrier && peer & FLAG_BARRIER != 0;
        backoff.done(self.ctl(), &self.parker, covered);
    }

    /// `what`, as the error of an operation on this channel.
    pub(super) fn corrupted<E: WaitError>(&self, what: Corruption) -> E {
        E::corrupted(self.name.clone(), what)
    }

    /// The checks after a wait that took time ([`wait::Snooze::Waited`]):
    /// a termination signal ends the wait, and so does the peer's death,
    /// unless `excused` finds that the peer left something this side must
    /// see first (the caller's next look then finds it).
    ///
    /// # Errors
    ///
    /// [`shm::Truncated`], [`WaitError::interrupted`],
    /// [`WaitError::peer_gone`].
    pub(super) fn after_wait<E: WaitError>(
        &mut self,
        excused: impl FnOnce(&End) -> bool,
    ) -> Result<(), E> {
        if let Some(signal) = shm::sys::termination_signal() {
            return Err(E::interrupted(self.name.clone(), signal));
        }
        let dead = self.dead_peer(Instant::now());
        // A segment that shrank reads zeros: no peer state to trust.
        self.mapped.managed().check_intact()?;
        if let Some(pid) = dead
            && !excused(self)
        {
            return Err(E::peer_gone(self.name.clone(), pid));
        }
        Ok(())
    }

    /// The peer's pid if it attached and has died since (checked at most
    /// every park slice, since reading `/proc` costs microseconds), and
    /// whether the segment kept its size.
    fn dead_peer(&mut self, now: Instant) -> Option<u32> {
        if self
            .last_check
            .is_some_and(|t| now.duration_since(t) < PARK_SLICE)
        {
            return None;
        }
        self.last_check = Some(now);
        // Also asks the kernel whether the segment shrank: a waiting side
        // may touch only pages that are left, and never fault.
        let _ = self.mapped.managed().segment().verify_intact();
        let peer = self.peer().holder();
        (peer.pid != 0 && !peer.is_alive()).then_some(peer.pid)
    }
}
