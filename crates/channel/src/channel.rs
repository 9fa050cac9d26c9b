//! [`Sender`] and [`Receiver`]: the two ends of a channel in one managed
//! segment.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm::sync::ProcessId;
use shm::{Access, Lifetime, Managed, ManagedOptions, SegmentId};

use crate::error::{OpenError, RecvError, SendError, Side};
use crate::layout::{ChannelHeader, FLAG_BARRIER};
use crate::raw::Mapped;
use crate::ring::{self, Consumer, Peek, Producer};
use crate::wait::{self, Backoff, PARK_SLICE, Snooze, Wait};

/// Default capacity: the largest message, and about the bytes in flight.
/// Small enough for the ring to stay in a core's L2 cache.
pub const DEFAULT_CAPACITY: usize = 256 * 1024;

/// Largest capacity accepted.
const MAX_CAPACITY: u64 = 1 << 40;

/// How many times attaching starts over when the segment vanishes or turns
/// out stale under it.
const ATTACH_TRIES: u32 = 16;

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
        let p = &self.ctl().park;
        match self.side {
            Side::Sender => &p.tx_park,
            Side::Receiver => &p.rx_park,
        }
    }

    /// A fresh wait, spinning unless both sides share one CPU.
    fn backoff(&self) -> Backoff {
        let s = &self.ctl().setup;
        let peer = match self.side {
            Side::Sender => &s.rx_cpus,
            Side::Receiver => &s.tx_cpus,
        };
        Backoff::new(
            self.wait,
            wait::must_yield(self.cpus, peer.load(Ordering::Relaxed)),
        )
    }

    /// Ends a wait: lets the peer skip its fences while this side keeps
    /// finding what it waits for without parking.
    fn done(&mut self, backoff: &Backoff) {
        if backoff.no_barrier {
            self.barrier = false;
        }
        let s = &self.ctl().setup;
        let peer = match self.side {
            Side::Sender => &s.rx_flags,
            Side::Receiver => &s.tx_flags,
        };
        let covered = self.barrier && peer.load(Ordering::Acquire) & FLAG_BARRIER != 0;
        backoff.done(self.own_park(), covered);
    }

    fn peer_fields(&self) -> (&AtomicU32, &AtomicU64) {
        let s = &self.ctl().setup;
        match self.side {
            Side::Sender => (&s.rx_pid, &s.rx_start),
            Side::Receiver => (&s.tx_pid, &s.tx_start),
        }
    }

    /// The largest message the ring takes.
    fn capacity(&self) -> usize {
        ring::max_message(self.size)
    }

    /// Whether the peer has attached.
    fn peer_attached(&self) -> bool {
        self.peer_fields().0.load(Ordering::Acquire) != 0
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
        let (pid, start) = self.peer_fields();
        let peer = ProcessId {
            pid: pid.load(Ordering::Acquire),
            start_time: start.load(Ordering::Acquire),
        };
        (peer.pid != 0 && !peer.is_alive()).then_some(peer.pid)
    }

    /// Removes the name if this side created it and no peer took it away.
    fn unlink_if_unclaimed(&self) {
        if self.created {
            let _ = self.mapped.managed().remove();
        }
    }
}

fn ring_size(capacity: u64) -> Result<usize, OpenError> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(OpenError::Capacity { capacity });
    }
    usize::try_from(capacity.next_multiple_of(8) + (ring::FRAME_HEADER + ring::SLACK) as u64)
        .map_err(|_| OpenError::Capacity { capacity })
}

fn claim_fields(h: &ChannelHeader, side: Side) -> (&AtomicU32, &AtomicU64, &AtomicU32) {
    let s = &h.setup;
    match side {
        Side::Sender => (&s.tx_pid, &s.tx_start, &s.tx_state),
        Side::Receiver => (&s.rx_pid, &s.rx_start, &s.rx_state),
    }
}

/// Tells the peer where this side runs and whether heavy barriers reach
/// it.
fn describe_self(h: &ChannelHeader, side: Side, cpus: u64, barrier: bool) {
    let s = &h.setup;
    let (c, f) = match side {
        Side::Sender => (&s.tx_cpus, &s.tx_flags),
        Side::Receiver => (&s.rx_cpus, &s.rx_flags),
    };
    c.store(cpus, Ordering::Relaxed);
    f.store(if barrier { FLAG_BARRIER } else { 0 }, Ordering::Release);
}

/// Creates the channel, or opens it if it exists (waiting for its creator to
/// finish), and claims `side` of it.
fn attach(id: &SegmentId, side: Side, opts: &Options) -> Result<End, OpenError> {
    let size = ring_size(opts.capacity as u64)?;
    let layout = crate::layout::layout();
    let header = std::mem::size_of::<ChannelHeader>();
    let me = ProcessId::current();
    let name = id.to_string();
    let cpus = wait::cpus_code();
    // Registered before the flag that says so is published.
    let barrier = shm::membarrier::register_global_expedited().is_ok();
    for _ in 0..ATTACH_TRIES {
        let mopts = ManagedOptions {
            kind: crate::KIND,
            lifetime: Lifetime::Owned,
            mode: opts.mode,
            layout: layout.clone(),
            payload_size: (header + size) as u64,
        };
        let created = Managed::create(id, &mopts, |m| {
            let h = m.payload_view::<ChannelHeader>(0)?;
            h.setup.ring_size.store(size as u64, Ordering::Relaxed);
            let (pid, start, _) = claim_fields(h, side);
            pid.store(me.pid, Ordering::Relaxed);
            start.store(me.start_time, Ordering::Relaxed);
            describe_self(h, side, cpus, barrier);
            Ok::<(), shm::Error>(())
        });
        match created {
            Ok(m) => {
                return Ok(End {
                    mapped: Mapped::new(m, size)?,
                    name,
                    side,
                    size,
                    wait: opts.wait,
                    created: true,
                    last_check: None,
                    cpus,
                    barrier,
                });
            }
            Err(shm::Error::Exists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let m = match Managed::open(id, Access::ReadWrite, crate::KIND, &layout, opts.ready_wait) {
            Ok(m) => m,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let h = m.payload_view::<ChannelHeader>(0)?;
        let their_size = h.setup.ring_size.load(Ordering::Acquire);
        if their_size % 8 != 0
            || their_size < 24
            || (header as u64).checked_add(their_size) != Some(m.payload_len() as u64)
        {
            return Err(OpenError::Corrupt {
                channel: name,
                reason: format!(
                    "ring of {their_size} bytes in a payload of {} bytes",
                    m.payload_len()
                ),
            });
        }
        let size = their_size as usize;
        let (pid, start, _) = claim_fields(h, side);
        let (their_pid, their_start, their_state) = claim_fields(h, side.other());
        let peer = ProcessId {
            pid: their_pid.load(Ordering::Acquire),
            start_time: their_start.load(Ordering::Acquire),
        };
        // A receiver left by a crash will never read: start afresh. A sender
        // left by a crash may have left messages: the receiver takes them.
        if side == Side::Sender
            && peer.pid != 0
            && (!peer.is_alive() || their_state.load(Ordering::Acquire) != ring::OPEN)
        {
            let _ = m.remove();
            continue;
        }
        match pid.compare_exchange(0, me.pid, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                start.store(me.start_time, Ordering::Release);
                describe_self(h, side, cpus, barrier);
            }
            Err(holder) => {
                let holder = ProcessId {
                    pid: holder,
                    start_time: start.load(Ordering::Acquire),
                };
                if holder.is_alive() {
                    return Err(OpenError::Busy {
                        channel: name,
                        side,
                        pid: holder.pid,
                    });
                }
                // Its creator died before any peer came: stale.
                let _ = m.remove();
                continue;
            }
        }
        // Both ends are attached: nobody else needs the name, and with it
        // gone a crash of either end cannot leak the segment.
        let _ = m.remove();
        return Ok(End {
            mapped: Mapped::new(m, size)?,
            name,
            side,
            size,
            wait: opts.wait,
            created: false,
            last_check: None,
            cpus,
            barrier,
        });
    }
    Err(OpenError::Unstable { channel: name })
}

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
/// tx.close();
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
        let core = Producer::new(end.ctl(), end.size);
        Ok(Sender {
            end,
            core,
            done: false,
        })
    }

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

    /// Whether the receiver has attached.
    #[must_use]
    pub fn peer_attached(&self) -> bool {
        self.end.peer_attached()
    }

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
            if let Ok(off) = self.core.try_reserve(end.ctl(), &end.mapped, len) {
                self.end.done(&backoff);
                return Ok(off);
            }
            let channel = || end.name.clone();
            if end.ctl().setup.rx_state.load(Ordering::Acquire) != ring::OPEN {
                return Err(SendError::ReceiverClosed { channel: channel() });
            }
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
                &ctl.park.tx_park,
                || {
                    core.has_room(ctl, len)
                        || ctl.setup.rx_state.load(Ordering::Acquire) != ring::OPEN
                },
                limit,
            );
            if snooze == Snooze::Waited {
                if let Some(signal) = shm::sys::termination_signal() {
                    return Err(SendError::Interrupted {
                        channel: channel(),
                        signal,
                    });
                }
                if let Some(pid) = self.end.dead_peer(Instant::now()) {
                    // A receiver that closed, then exited, did not die on
                    // us: the next look reports it closed.
                    if self.end.ctl().setup.rx_state.load(Ordering::Acquire) != ring::OPEN {
                        continue;
                    }
                    return Err(SendError::PeerGone {
                        channel: self.end.name.clone(),
                        pid,
                    });
                }
            }
        }
    }

    /// Reserves `len` bytes for one message, waiting for room.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`], [`SendError::ReceiverClosed`],
    /// [`SendError::PeerGone`] (within about 100 ms of the receiver's
    /// death), [`SendError::Interrupted`] on a termination signal (see
    /// [`shm::sys::catch_termination`]).
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
    /// [`SendError::Timeout`].
    pub fn flush(&mut self, timeout: Option<Duration>) -> Result<(), SendError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut backoff = self.end.backoff();
        loop {
            let ctl = self.end.ctl();
            let head = self.core.position();
            let drained = || ctl.tail.pos.load(Ordering::Acquire) == head;
            if drained() {
                self.end.done(&backoff);
                return Ok(());
            }
            let channel = || self.end.name.clone();
            if ctl.setup.rx_state.load(Ordering::Acquire) != ring::OPEN {
                return Err(SendError::ReceiverClosed { channel: channel() });
            }
            let limit = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if limit.is_some_and(|l| l.is_zero()) {
                return Err(SendError::Timeout {
                    channel: channel(),
                    after: timeout.unwrap_or_default(),
                });
            }
            if backoff.snooze(ctl, &ctl.park.tx_park, drained, limit) == Snooze::Waited {
                if let Some(signal) = shm::sys::termination_signal() {
                    return Err(SendError::Interrupted {
                        channel: channel(),
                        signal,
                    });
                }
                if let Some(pid) = self.end.dead_peer(Instant::now()) {
                    // A receiver that closed, then exited, did not die on
                    // us: the next look reports it closed.
                    if self.end.ctl().setup.rx_state.load(Ordering::Acquire) != ring::OPEN {
                        continue;
                    }
                    return Err(SendError::PeerGone {
                        channel: self.end.name.clone(),
                        pid,
                    });
                }
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
    /// of the stream. Dropping the sender does the same.
    pub fn close(mut self) {
        self.finish(ring::CLOSED);
    }

    /// Ends the stream as incomplete: the receiver gets every message sent,
    /// then [`RecvError::Aborted`] (for a sender that was interrupted).
    pub fn abort(mut self) {
        self.finish(ring::ABORTED);
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.finish(ring::CLOSED);
    }
}

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
    /// As [`Sender::open`].
    pub fn open(id: &SegmentId, opts: &Options) -> Result<Receiver, OpenError> {
        let end = attach(id, Side::Receiver, opts)?;
        let core = Consumer::new(end.ctl(), end.size);
        Ok(Receiver {
            end,
            core,
            done: false,
        })
    }

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

    /// Whether the sender has attached.
    #[must_use]
    pub fn peer_attached(&self) -> bool {
        self.end.peer_attached()
    }

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
            match self.core.try_peek(end.ctl(), &end.mapped) {
                Ok(Peek::Message { off, len }) => {
                    if let Some(b) = &backoff {
                        self.end.done(b);
                    }
                    return Ok(Some((off, len)));
                }
                Ok(Peek::Ended(ring::CLOSED)) => return Ok(None),
                Ok(Peek::Ended(_)) => return Err(RecvError::Aborted { channel: channel() }),
                Ok(Peek::Empty) => {}
                Err(c) => {
                    return Err(RecvError::Corrupt {
                        channel: channel(),
                        offset: c.offset,
                        value: c.value,
                    });
                }
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
            if backoff.snooze(
                ctl,
                &ctl.park.rx_park,
                || core.has_news(ctl, &end.mapped),
                limit,
            ) == Snooze::Waited
            {
                if let Some(signal) = shm::sys::termination_signal() {
                    return Err(RecvError::Interrupted {
                        channel: channel(),
                        signal,
                    });
                }
                if let Some(pid) = self.end.dead_peer(Instant::now()) {
                    // Whatever it committed before dying is still delivered.
                    if self.core.has_news(self.end.ctl(), &self.end.mapped) {
                        continue;
                    }
                    return Err(RecvError::PeerGone {
                        channel: self.end.name.clone(),
                        pid,
                    });
                }
            }
        }
    }

    fn lend(&mut self, next: Option<(usize, usize)>) -> Option<Message<'_>> {
        next.map(|(off, len)| Message { rx: self, off, len })
    }

    /// Waits for the next message and lends it; `Ok(None)` is the end of
    /// the stream (the sender closed, or was dropped, after its last
    /// message).
    ///
    /// # Errors
    ///
    /// [`RecvError::PeerGone`] (within about 100 ms of the sender's death,
    /// after the messages it committed), [`RecvError::Aborted`],
    /// [`RecvError::Interrupted`] on a termination signal,
    /// [`RecvError::Corrupt`].
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
    /// later, gets [`SendError::ReceiverClosed`]. Dropping does the same.
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
