//! The consuming end: [`Receiver`], and [`Message`], a message lent from
//! the ring.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use shm::SegmentId;

use super::End;
use super::Options;
use super::rendezvous::attach;
use crate::error::{OpenError, RecvError, Side};
use crate::ring::{self, Consumer, Peek};
use crate::wait::{Backoff, Snooze};

/// The consuming end of a channel.
#[derive(Debug)]
pub struct Receiver {
    end: End,
    core: Consumer,
    done: bool,
}

/// A received message, lent from the ring: it derefs to `&[u8]`, and its
/// space goes back to the sender when it is dropped.
#[derive(Debug)]
pub struct Message<'a> {
    rx: &'a mut Receiver,
    off: usize,
    len: usize,
}

impl std::ops::Deref for Message<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.rx.end.mapped.slice(self.off, self.len)
    }
}

impl Drop for Message<'_> {
    #[inline]
    fn drop(&mut self) {
        let rx = &mut *self.rx;
        rx.core.release(rx.end.mapped.header(), self.len);
    }
}

impl Receiver {
    /// Creates channel `id`, or opens it if its sender created it first, and
    /// attaches as its receiver.
    ///
    /// # Errors
    ///
    /// As [`Sender::open`](crate::Sender::open).
    pub fn open(id: &SegmentId, opts: &Options) -> Result<Receiver, OpenError> {
        let end = attach(id, Side::Receiver, opts)?;
        let core = Consumer::new(end.size);
        Ok(Receiver {
            end,
            core,
            done: false,
        })
    }

    end_accessors!("sender");

    /// The next message's offset and length, `None` at the end of the
    /// stream.
    #[inline(never)]
    fn next(
        &mut self,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Option<(usize, usize)>, RecvError> {
        let mut backoff: Option<Backoff> = None;
        loop {
            let end = &self.end;
            let channel = || end.name.clone();
            let peek = self.core.try_peek(end.ctl(), &end.mapped);
            if !matches!(peek, Ok(Peek::Message { .. } | Peek::Empty)) {
                // Zeros read from a segment that shrank end nothing.
                end.mapped.managed().check_intact()?;
            }
            match peek {
                Ok(Peek::Message { off, len }) => {
                    if let Some(b) = &backoff {
                        self.end.done(b);
                    }
                    return Ok(Some((off, len)));
                }
                Ok(Peek::Ended(ring::CLOSED)) => return Ok(None),
                Ok(Peek::Ended(_)) => return Err(RecvError::Aborted { channel: channel() }),
                Ok(Peek::Empty) => {}
                Err(what) => return Err(end.corrupted(what)),
            }
            let limit = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if limit.is_some_and(|l| l.is_zero()) {
                return Err(if timeout.is_zero() {
                    RecvError::Empty { channel: channel() }
                } else {
                    RecvError::Timeout {
                        channel: channel(),
                        after: timeout,
                    }
                });
            }
            let core = &self.core;
            let ctl = end.ctl();
            let backoff = backoff.get_or_insert_with(|| end.backoff());
            if backoff.snooze(ctl, &end.parker, || core.has_news(ctl, &end.mapped), limit)
                == Snooze::Waited
            {
                let core = &self.core;
                if let Err(what) = core.check(self.end.ctl()) {
                    return Err(self.end.corrupted(what));
                }
                // Whatever a dead sender committed is still delivered.
                self.end
                    .after_wait::<RecvError>(|end| core.has_news(end.ctl(), &end.mapped))?;
            }
        }
    }

    fn lend(&mut self, next: Option<(usize, usize)>) -> Option<Message<'_>> {
        next.map(|(off, len)| Message { rx: self, off, len })
    }

    /// Waits for the next message and lends it; `Ok(None)` is the end of
    /// the stream (the sender closed after its last message).
    ///
    /// # Errors
    ///
    /// [`RecvError::PeerGone`] (within about 100 ms of the sender's death,
    /// after the messages it committed), [`RecvError::Aborted`] (the sender
    /// aborted, or was dropped without closing), [`RecvError::Interrupted`]
    /// on a termination signal, [`RecvError::Corrupted`] if the channel's
    /// shared state is impossible (found at once while it waits, within a
    /// park slice).
    #[inline]
    pub fn recv(&mut self) -> Result<Option<Message<'_>>, RecvError> {
        let end = &self.end;
        if let Ok(Peek::Message { off, len }) = self.core.try_peek(end.ctl(), &end.mapped) {
            return Ok(Some(Message { rx: self, off, len }));
        }
        let next = self.next(None, Duration::ZERO)?;
        Ok(self.lend(next))
    }

    /// As [`Receiver::recv`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`], and [`RecvError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message<'_>>, RecvError> {
        let next = self.next(
            Some(Instant::now() + timeout),
            timeout.max(Duration::from_nanos(1)),
        )?;
        Ok(self.lend(next))
    }

    /// As [`Receiver::recv`], without waiting.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`], and [`RecvError::Empty`].
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, RecvError> {
        let next = self.next(Some(Instant::now()), Duration::ZERO)?;
        Ok(self.lend(next))
    }

    /// Receives the next message into `buf` (cleared first); `Ok(false)` at
    /// the end of the stream.
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`].
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, RecvError> {
        buf.clear();
        match self.next(None, Duration::ZERO)? {
            Some((off, len)) => {
                buf.resize(len, 0);
                ring::Bytes::read(&self.end.mapped, off, buf);
                self.core.release(self.end.ctl(), len);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Closes the receiving end: a sender waiting for room, or sending
    /// later, gets [`SendError::ReceiverClosed`](crate::SendError::ReceiverClosed). Dropping does the same.
    pub fn close(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.core.close(self.end.ctl());
            self.end.unlink_if_unclaimed();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.finish();
    }
}
