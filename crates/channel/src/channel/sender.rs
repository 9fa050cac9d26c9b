//! The producing end: [`Sender`], and [`Grant`], space reserved in the
//! ring for one message.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use shm::SegmentId;

use super::End;
use super::Options;
use super::rendezvous::attach;
use crate::error::{OpenError, SendError, Side};
use crate::ring::{self, NoRoom, Producer};
use crate::wait::Snooze;

/// The producing end of a channel.
///
/// # Examples
///
/// ```
/// use channel::{Options, Receiver, Sender};
/// use shm::SegmentId;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let id = SegmentId::posix(format!("shmex-doc-chan-{}", std::process::id()))?;
/// let mut tx = Sender::open(&id, &Options::default())?;
/// let mut rx = Receiver::open(&id, &Options::default())?;
/// tx.send(b"hello")?;
/// {
///     let mut grant = tx.reserve(5)?;
///     grant.copy_from_slice(b"world");
///     grant.commit();
/// }
/// tx.close(); // dropped without `close`, the stream would end as aborted
/// assert_eq!(&*rx.recv()?.unwrap(), b"hello");
/// assert_eq!(&*rx.recv()?.unwrap(), b"world");
/// assert!(rx.recv()?.is_none()); // end of stream
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Sender {
    end: End,
    core: Producer,
    done: bool,
}

/// Space reserved in the ring for one message; write into it (it derefs to
/// `&mut [u8]`), then [`Grant::commit`]. Dropped without a commit, nothing
/// is sent.
#[derive(Debug)]
pub struct Grant<'a> {
    tx: &'a mut Sender,
    off: usize,
    len: usize,
}

impl Grant<'_> {
    /// Sends the whole grant.
    pub fn commit(self) {
        let len = self.len;
        self.commit_len(len);
    }

    /// Sends the first `len` bytes of the grant.
    ///
    /// # Panics
    ///
    /// If `len` is larger than the grant.
    pub fn commit_len(self, len: usize) {
        assert!(
            len <= self.len,
            "commit of {len} bytes in a grant of {}",
            self.len
        );
        let end = &self.tx.end;
        self.tx.core.commit(end.ctl(), &end.mapped, len);
    }
}

impl std::ops::Deref for Grant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.tx.end.mapped.slice(self.off, self.len)
    }
}

impl std::ops::DerefMut for Grant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.tx.end.mapped.slice_mut(self.off, self.len)
    }
}

impl Sender {
    /// Creates channel `id`, or opens it if its receiver created it first,
    /// and attaches as its sender.
    ///
    /// # Errors
    ///
    /// [`OpenError::Busy`] if it has a live sender already;
    /// [`OpenError::Capacity`]; [`OpenError::Segment`] for the segment
    /// layer's refusals (a foreign segment by that name, permissions, …).
    pub fn open(id: &SegmentId, opts: &Options) -> Result<Sender, OpenError> {
        let end = attach(id, Side::Sender, opts)?;
        let core = Producer::new(end.size);
        Ok(Sender {
            end,
            core,
            done: false,
        })
    }

    end_accessors!("receiver");

    fn too_large(&self, len: usize) -> Result<(), SendError> {
        if len > self.capacity() {
            return Err(SendError::TooLarge {
                channel: self.end.name.clone(),
                len,
                max: self.capacity(),
            });
        }
        Ok(())
    }

    /// Finds room for `len` bytes: `Ok(offset)`, or why not. `deadline`
    /// `None` waits forever; `Some(now)` does not wait.
    #[inline(never)]
    fn room(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<usize, SendError> {
        self.too_large(len)?;
        let mut backoff = self.end.backoff();
        loop {
            let end = &self.end;
            match self.core.try_reserve(end.ctl(), &end.mapped, len) {
                Ok(off) => {
                    end.done(&backoff);
                    return Ok(off);
                }
                Err(NoRoom::Corrupt(what)) => return Err(end.corrupted(what)),
                Err(NoRoom::Full) => {}
            }
            self.receiver_open()?;
            let channel = || end.name.clone();
            let limit = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if limit.is_some_and(|l| l.is_zero()) {
                return Err(if timeout.is_zero() {
                    SendError::Full { channel: channel() }
                } else {
                    SendError::Timeout {
                        channel: channel(),
                        after: timeout,
                    }
                });
            }
            let core = &self.core;
            let ctl = end.ctl();
            let snooze = backoff.snooze(
                ctl,
                &end.parker,
                || core.has_room(ctl, len) || !end.peer_open(),
                limit,
            );
            if snooze == Snooze::Waited {
                self.after_wait()?;
            }
        }
    }

    /// The checks after a wait for the receiver that took time.
    fn after_wait(&mut self) -> Result<(), SendError> {
        // A receiver that closed, then exited, did not die on us: the next
        // look reports it closed.
        self.end.after_wait(|end| !end.peer_open())
    }

    /// `Ok` while the receiver's end is open (or not attached yet).
    fn receiver_open(&self) -> Result<(), SendError> {
        match self.end.peer_state() {
            Ok(ring::OPEN) => Ok(()),
            Ok(_) => Err(SendError::ReceiverClosed {
                channel: self.end.name.clone(),
            }),
            Err(what) => Err(self.end.corrupted(what)),
        }
    }

    /// Looks at the receiver without waiting for anything: whether it
    /// closed its end or died, and whether the shared state it writes is
    /// possible. A sender that waits for something else (its own input)
    /// calls this now and then, to stop as soon as nothing it sends would be
    /// read, as a pipe's writer gets `EPIPE`. Before the receiver attached,
    /// there is nothing to report.
    ///
    /// # Errors
    ///
    /// [`SendError::ReceiverClosed`], [`SendError::PeerGone`],
    /// [`SendError::Corrupted`], and [`SendError::Interrupted`] if a
    /// termination signal has arrived (see [`shm::sys::catch_termination`]).
    pub fn check(&mut self) -> Result<(), SendError> {
        if let Err(what) = self.core.drained(self.end.ctl()) {
            return Err(self.end.corrupted(what));
        }
        self.receiver_open()?;
        self.after_wait()
    }

    /// Reserves `len` bytes for one message, waiting for room.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`], [`SendError::ReceiverClosed`],
    /// [`SendError::PeerGone`] (within about 100 ms of the receiver's
    /// death), [`SendError::Interrupted`] on a termination signal (see
    /// [`shm::sys::catch_termination`]), [`SendError::Corrupted`] if the
    /// receiver's position is impossible.
    pub fn reserve(&mut self, len: usize) -> Result<Grant<'_>, SendError> {
        let off = self.room(len, None, Duration::ZERO)?;
        Ok(Grant { tx: self, off, len })
    }

    /// As [`Sender::reserve`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Sender::reserve`], and [`SendError::Timeout`].
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Grant<'_>, SendError> {
        let off = self.room(
            len,
            Some(Instant::now() + timeout),
            timeout.max(Duration::from_nanos(1)),
        )?;
        Ok(Grant { tx: self, off, len })
    }

    /// As [`Sender::reserve`], without waiting.
    ///
    /// # Errors
    ///
    /// As [`Sender::reserve`], and [`SendError::Full`].
    pub fn try_reserve(&mut self, len: usize) -> Result<Grant<'_>, SendError> {
        let off = self.room(len, Some(Instant::now()), Duration::ZERO)?;
        Ok(Grant { tx: self, off, len })
    }

    #[inline]
    fn put(&mut self, msg: &[u8], off: usize) {
        let end = &self.end;
        ring::Bytes::write(&end.mapped, off, msg);
        self.core.commit(end.ctl(), &end.mapped, msg.len());
    }

    /// Sends one message (a copy of `msg`), waiting for room.
    ///
    /// # Errors
    ///
    /// As [`Sender::reserve`].
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        let end = &self.end;
        let fast = if msg.len() <= self.core.max_message() {
            self.core
                .try_reserve(end.ctl(), &end.mapped, msg.len())
                .ok()
        } else {
            None
        };
        let off = match fast {
            Some(off) => off,
            None => self.room(msg.len(), None, Duration::ZERO)?,
        };
        self.put(msg, off);
        Ok(())
    }

    /// As [`Sender::send`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Sender::reserve_timeout`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        let off = self.room(
            msg.len(),
            Some(Instant::now() + timeout),
            timeout.max(Duration::from_nanos(1)),
        )?;
        self.put(msg, off);
        Ok(())
    }

    /// As [`Sender::send`], without waiting.
    ///
    /// # Errors
    ///
    /// As [`Sender::try_reserve`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        let off = self.room(msg.len(), Some(Instant::now()), Duration::ZERO)?;
        self.put(msg, off);
        Ok(())
    }

    /// Waits until the receiver has taken every message sent so far (or
    /// until `timeout`). A sender that exits right after sending should call
    /// this first: if it created the channel and no receiver attached yet,
    /// its exit removes the channel with the messages in it.
    ///
    /// # Errors
    ///
    /// [`SendError::ReceiverClosed`] if it closed with messages left,
    /// [`SendError::PeerGone`], [`SendError::Interrupted`],
    /// [`SendError::Timeout`], [`SendError::Corrupted`].
    pub fn flush(&mut self, timeout: Option<Duration>) -> Result<(), SendError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut backoff = self.end.backoff();
        loop {
            let (end, core) = (&self.end, &self.core);
            let ctl = end.ctl();
            match core.drained(ctl) {
                Ok(true) => {
                    end.done(&backoff);
                    return Ok(());
                }
                Ok(false) => {}
                Err(what) => return Err(end.corrupted(what)),
            }
            self.receiver_open()?;
            let limit = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if limit.is_some_and(|l| l.is_zero()) {
                return Err(SendError::Timeout {
                    channel: end.name.clone(),
                    after: timeout.unwrap_or_default(),
                });
            }
            // A receiver that closes is news as much as one that drains.
            let news = || core.drained(ctl) != Ok(false) || !end.peer_open();
            if backoff.snooze(ctl, &end.parker, news, limit) == Snooze::Waited {
                self.after_wait()?;
            }
        }
    }

    fn finish(&mut self, state: u32) {
        if !self.done {
            self.done = true;
            self.core.close(self.end.ctl(), state);
            self.end.unlink_if_unclaimed();
        }
    }

    /// Ends the stream: the receiver gets every message sent, then the end
    /// of the stream. Only this ends a stream cleanly: a sender dropped
    /// without it aborts the stream.
    pub fn close(mut self) {
        self.finish(ring::CLOSED);
    }

    /// Ends the stream as incomplete: the receiver gets every message sent,
    /// then [`RecvError::Aborted`](crate::RecvError::Aborted) (for a sender
    /// that was interrupted or failed). Dropping the sender without
    /// [`Sender::close`] does the same, so that a sender that returns early
    /// on an error, or panics, never looks like a complete stream.
    pub fn abort(mut self) {
        self.finish(ring::ABORTED);
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.finish(ring::ABORTED);
    }
}
