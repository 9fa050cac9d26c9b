//! The process lock: see [`ProcessLock`].
// The `Shared` impl that `shared_struct!` generates is the only unsafe
// code here.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::owner::{self, WAITERS};

/// How long a waiter sleeps before it looks at the lock again; also how
/// often it asks again whether a holder it watches lives.
pub const SLICE: Duration = Duration::from_millis(20);

/// How long a waiter watches one holder before it first asks whether that
/// holder lives. A holder keeps the lock for microseconds: one that keeps
/// it this long has been preempted, stopped, or has died, and a read of
/// `/proc` costs little beside that wait. Short, so that waiters that come
/// and go (killed, or with short deadlines) still find a dead holder.
pub const FIRST_LOOK: Duration = Duration::from_millis(1);

#[cfg(not(loom))]
crate::shared_struct! {
    /// A process-shared lock whose shared state is plain integers.
    ///
    /// Two words live in shared memory, and nothing else: `owner`, 0 when
    /// free, else the holder's identity (its thread id in the low 32 bits,
    /// the low 32 bits of its start time, field 22 of `/proc/TID/stat`, in
    /// the high 32) with one bit that says someone may sleep waiting; and
    /// `turn`, a futex word that a release bumps when that bit is set. No
    /// pointer, nothing the C library or the kernel later dereferences, so
    /// a peer that writes these words can make the lock misbehave but never
    /// make a holder or a waiter crash.
    ///
    /// * **Taking it** is one compare-and-swap of `owner` from 0 to the
    ///   caller's identity; **releasing** is one compare-and-swap back, plus a
    ///   wake-up only if a sleeper set the waiters bit (the protocol of glibc's
    ///   low-level lock, with the sleepers' futex word beside the owner word
    ///   instead of inside it, since an identity needs 64 bits).
    /// * **Waiting** sets the waiters bit and sleeps on `turn` in slices of
    ///   at most [`SLICE`] on `CLOCK_MONOTONIC`, so every wait ends on its
    ///   deadline, and between slices looks at
    ///   [`sys::termination_signal`](crate::sys::termination_signal): a
    ///   caught SIGINT or SIGTERM ends it with [`LockError::Interrupted`].
    /// * **A dead holder** is found by a waiter that has seen the same holder
    ///   for [`FIRST_LOOK`], and then every [`SLICE`]: it reads
    ///   `/proc/TID/stat` and, if that thread is gone, a zombie, or started at
    ///   another time than the identity says (its id was reused), takes the
    ///   lock over with a compare-and-swap and is told so
    ///   ([`LockGuard::owner_died`]), to repair what the dead holder left
    ///   half-done. So a holder's death is detected within 1 ms of a waiter's
    ///   arrival, plus one read of `/proc` (within one slice, 20 ms, if it
    ///   dies while a waiter watches it); a garbage `owner` (an id no thread
    ///   has) the same way.
    /// * **A live holder** is never robbed: when liveness cannot be
    ///   established (no `/proc`, a task hidden by `hidepid`), the holder
    ///   counts as alive and the waiter's deadline ends the wait.
    /// * **Releasing a lock that is not ours** (its `owner` was overwritten)
    ///   fails with [`LockError::Stolen`] instead of freeing someone else's.
    ///
    /// Thread ids and start times are comparable only within one pid namespace
    /// and one time namespace. A user of the lock must keep peers from other
    /// namespaces out: the exchange records [`namespaces`](super::namespaces)
    /// when it is made and refuses to open from elsewhere.
    ///
    /// All-zero bytes are a free lock. It guards no data of its own (the
    /// data lives beside it, in atomics); a [`LockGuard`] proves it is held.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use shm::sync::ProcessLock;
    /// # fn main() -> Result<(), shm::sync::LockError> {
    /// // In shared memory, a view of zeroed bytes (`Segment::view`).
    /// let lock = ProcessLock::new();
    /// let g = lock.lock_timeout(Duration::from_secs(1))?;
    /// assert!(!g.owner_died());
    /// g.unlock()?;
    /// # Ok(())
    /// # }
    /// ```
    pub struct ProcessLock {
        owner: AtomicU64,
        turn: AtomicU32,
        spare: AtomicU32,
    }
}

/// A process-shared lock, on loom's atomics for model checking.
#[cfg(loom)]
pub struct ProcessLock {
    owner: AtomicU64,
    turn: AtomicU32,
    #[allow(dead_code)]
    spare: AtomicU32,
}

impl Default for ProcessLock {
    fn default() -> Self {
        ProcessLock {
            owner: AtomicU64::new(0),
            turn: AtomicU32::new(0),
            spare: AtomicU32::new(0),
        }
    }
}

impl fmt::Debug for ProcessLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessLock")
            .field("holder", &self.holder())
            .finish()
    }
}

/// Why the lock could not be taken or released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    /// Held by another thread (from [`ProcessLock::try_lock`]).
    #[error("the lock is busy")]
    WouldBlock,
    /// The calling thread holds it already.
    #[error("the lock is already held by this thread")]
    Deadlock,
    /// The deadline passed while live holders kept it.
    #[error("could not take the lock in {}: it is held by pid {pid}, which is alive", Secs(*.waited))]
    Timeout {
        /// The thread id that held it last.
        pid: u32,
        /// How long the caller waited.
        waited: Duration,
    },
    /// A caught termination signal ended the wait.
    #[error("interrupted by signal {0} while waiting for the lock")]
    Interrupted(i32),
    /// At release, the lock was not ours: its owner word was overwritten
    /// while we held it.
    #[error("the lock was taken from its holder: its owner word was overwritten")]
    Stolen,
}

impl LockError {
    /// Whether the error means that the lock's shared state was tampered
    /// with (rather than that it was busy, or the wait was cut short).
    #[must_use]
    pub fn is_corruption(&self) -> bool {
        matches!(self, LockError::Stolen)
    }
}

/// A duration for messages: `10 s`, `0.5 s`.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs_f64();
        if s.fract() == 0.0 {
            write!(f, "{s:.0} s")
        } else {
            write!(f, "{s:.1} s")
        }
    }
}

/// Proof that the lock is held; releases it when dropped.
///
/// Prefer [`LockGuard::unlock`], which reports a lock that was taken from
/// its holder; dropping ignores that.
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a ProcessLock,
    me: u64,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("owner_died", &self.owner_died)
            .finish_non_exhaustive()
    }
}

impl ProcessLock {
    /// A free lock in ordinary memory. (In shared memory, zeroed bytes are
    /// a free lock.)
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The thread id of the holder, if it is held.
    #[must_use]
    pub fn holder(&self) -> Option<u32> {
        match self.owner.load(Ordering::Relaxed) {
            0 => None,
            o => Some(owner::tid_of(o)),
        }
    }

    #[inline]
    fn guard(&self, me: u64, owner_died: bool) -> LockGuard<'_> {
        LockGuard {
            lock: self,
            me,
            owner_died,
            _not_send: PhantomData,
        }
    }

    /// One attempt at the lock as `me`: the fast path.
    #[inline]
    fn try_as(&self, me: u64) -> Result<LockGuard<'_>, u64> {
        match self
            .owner
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(self.guard(me, false)),
            Err(o) => Err(o),
        }
    }

    /// Takes the lock if it is free now. Never waits, and never judges
    /// whether the holder lives.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] if another thread holds it,
    /// [`LockError::Deadlock`] if this one does.
    #[cfg(not(loom))]
    #[inline]
    pub fn try_lock(&self) -> Result<LockGuard<'_>, LockError> {
        let me = owner::identity();
        self.try_as(me).map_err(|o| {
            if o & !WAITERS == me {
                LockError::Deadlock
            } else {
                LockError::WouldBlock
            }
        })
    }

    /// Takes the lock, waiting at most `timeout`; takes it over from a
    /// holder that died (see [`LockGuard::owner_died`]).
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`] when the time is up, [`LockError::Interrupted`]
    /// when a termination signal caught by
    /// [`sys::catch_termination`](crate::sys::catch_termination) arrives,
    /// [`LockError::Deadlock`] if this thread holds it already.
    #[cfg(not(loom))]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockGuard<'_>, LockError> {
        let me = owner::identity();
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        // After a sleep, take it with the waiters bit set: others may
        // still sleep, and the next release must wake one of them.
        let mut take = me;
        // The holder being watched, since when (or since it was last
        // judged alive), and how long until it is judged (again).
        let (mut watched, mut since, mut look) = (0u64, start, FIRST_LOOK);
        loop {
            let o = match self
                .owner
                .compare_exchange(0, take, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(self.guard(take, false)),
                Err(o) => o,
            };
            let holder = o & !WAITERS;
            if holder == me {
                return Err(LockError::Deadlock);
            }
            if let Some(sig) = crate::sys::termination_signal() {
                return Err(LockError::Interrupted(sig));
            }
            let now = Instant::now();
            let left = deadline.map(|d| d.saturating_duration_since(now));
            if holder != watched {
                (watched, since, look) = (holder, now, FIRST_LOOK);
            }
            // Judge the holder once it has kept the lock that long, and
            // before giving up.
            if now.duration_since(since) >= look || left.is_some_and(|l| l.is_zero()) {
                if owner::is_dead(holder) {
                    if let Ok(g) = self.steal(o, me) {
                        return Ok(g);
                    }
                    // The word changed under us: look again, unless the
                    // time is up.
                    if left.is_none_or(|l| !l.is_zero()) {
                        continue;
                    }
                }
                (since, look) = (now, SLICE);
            }
            let mut nap = (since + look).saturating_duration_since(now);
            if let Some(left) = left {
                if left.is_zero() {
                    return Err(LockError::Timeout {
                        pid: owner::tid_of(holder),
                        waited: now.duration_since(start),
                    });
                }
                nap = nap.min(left);
            }
            if self.park(o, nap.max(Duration::from_micros(100))) {
                take = me | WAITERS;
            }
        }
    }

    /// Takes the lock from the dead holder whose owner word is `observed`,
    /// unless someone changed the word first. The waiters bit is set: the
    /// dead holder's sleepers must be woken at release.
    fn steal(&self, observed: u64, me: u64) -> Result<LockGuard<'_>, u64> {
        self.owner
            .compare_exchange(observed, me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| self.guard(me | WAITERS, true))
    }

    /// Sleeps on `turn` for at most `nap` while the owner word is still
    /// `o`, with the waiters bit set in it, so that its release wakes a
    /// sleeper. Returns whether it slept (or tried to); `false` if the
    /// owner word changed first.
    ///
    /// `turn` is read before the owner word is confirmed: a release that
    /// follows the confirmation sees the bit and bumps `turn`, so the
    /// sleep either does not begin or is woken.
    #[cfg(not(loom))]
    fn park(&self, o: u64, nap: Duration) -> bool {
        let t = self.turn.load(Ordering::SeqCst);
        let flagged = if o & WAITERS != 0 {
            self.owner.load(Ordering::SeqCst) == o
        } else {
            self.owner
                .compare_exchange(o, o | WAITERS, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        };
        if flagged {
            let _ = super::futex::wait(&self.turn, t, Some(nap));
        }
        flagged
    }

    /// Releases the lock held with owner word `mine`; wakes a sleeper if
    /// the waiters bit was set.
    #[inline]
    fn release(&self, mine: u64) -> Result<(), LockError> {
        match self
            .owner
            .compare_exchange(mine, 0, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) if mine & WAITERS == 0 => Ok(()),
            Ok(_) => {
                self.wake();
                Ok(())
            }
            Err(o) if o == mine | WAITERS => self.release_flagged(o),
            Err(_) => Err(LockError::Stolen),
        }
    }

    /// Releases a lock whose waiters bit a sleeper set, and wakes one.
    #[cold]
    fn release_flagged(&self, o: u64) -> Result<(), LockError> {
        if self
            .owner
            .compare_exchange(o, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Err(LockError::Stolen);
        }
        self.wake();
        Ok(())
    }

    #[cold]
    fn wake(&self) {
        self.turn.fetch_add(1, Ordering::SeqCst);
        #[cfg(not(loom))]
        super::futex::wake(&self.turn, 1);
    }
}

/// The model checker's way in: explicit identities, and a judge of
/// liveness in place of `/proc`. Waiting yields instead of sleeping.
#[cfg(loom)]
impl ProcessLock {
    /// One attempt as `me`.
    pub fn model_try_lock(&self, me: u64) -> Option<LockGuard<'_>> {
        self.try_as(me).ok()
    }

    /// Takes the lock as `me`, taking it over from holders `dead` judges
    /// dead; waits by setting the waiters bit and yielding.
    pub fn model_lock(&self, me: u64, dead: impl Fn(u64) -> bool) -> LockGuard<'_> {
        let mut take = me;
        loop {
            let o = match self
                .owner
                .compare_exchange(0, take, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return self.guard(take, false),
                Err(o) => o,
            };
            if dead(o & !WAITERS) {
                if let Ok(g) = self.steal(o, me) {
                    return g;
                }
                continue;
            }
            let _ = self.turn.load(Ordering::SeqCst);
            if o & WAITERS != 0
                || self
                    .owner
                    .compare_exchange(o, o | WAITERS, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            {
                take = me | WAITERS;
                loom::thread::yield_now();
            }
        }
    }

    /// The owner word, as a peer may read it.
    pub fn model_owner(&self) -> u64 {
        self.owner.load(Ordering::Relaxed)
    }

    /// Overwrites the owner word, as a peer may.
    pub fn model_scribble(&self, owner: u64) {
        self.owner.store(owner, Ordering::Relaxed);
    }
}

impl LockGuard<'_> {
    /// Whether the lock was taken over from a holder that died holding it
    /// (or from an owner word no thread has): the state it guards may be
    /// half-changed and must be repaired before the guard is released.
    #[must_use]
    #[inline]
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Releases the lock.
    ///
    /// # Errors
    ///
    /// [`LockError::Stolen`] if the lock was no longer ours: its owner word
    /// was overwritten while we held it, so whatever we did under it may
    /// have overlapped another holder.
    #[inline]
    pub fn unlock(self) -> Result<(), LockError> {
        let r = self.lock.release(self.me);
        std::mem::forget(self);
        r
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = self.lock.release(self.me);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn lock_unlock_and_busy() {
        let l = ProcessLock::new();
        let g = l.try_lock().unwrap();
        assert!(!g.owner_died());
        assert_eq!(l.holder(), Some(crate::os::task::gettid()));
        assert_eq!(l.try_lock().unwrap_err(), LockError::Deadlock);
        assert_eq!(
            l.lock_timeout(Duration::from_secs(1)).unwrap_err(),
            LockError::Deadlock
        );
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(l.try_lock().unwrap_err(), LockError::WouldBlock));
        });
        g.unlock().unwrap();
        assert_eq!(l.holder(), None);
        drop(l.lock_timeout(Duration::ZERO).unwrap());
    }

    #[test]
    fn threads_exclude_each_other() {
        let l = Arc::new(ProcessLock::new());
        let inside = Arc::new(AtomicBool::new(false));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (l, inside) = (l.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let g = l.lock_timeout(Duration::from_secs(60)).unwrap();
                        assert!(!inside.swap(true, Ordering::Relaxed));
                        inside.store(false, Ordering::Relaxed);
                        g.unlock().unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(l.owner.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_thread_that_died_holding_it_is_found_out() {
        let l = Arc::new(ProcessLock::new());
        let l2 = l.clone();
        std::thread::spawn(move || std::mem::forget(l2.try_lock().unwrap()))
            .join()
            .unwrap();
        let t = Instant::now();
        let g = l.lock_timeout(Duration::from_secs(10)).unwrap();
        assert!(g.owner_died());
        assert!(t.elapsed() < SLICE * 10, "{:?}", t.elapsed());
        g.unlock().unwrap();
        assert!(!l.try_lock().unwrap().owner_died());
    }

    #[test]
    fn garbage_is_taken_over_and_a_live_holder_is_not() {
        let l = ProcessLock::new();
        for garbage in [u64::MAX, 1 << 40, owner::identity() ^ (1 << 33)] {
            l.owner.store(garbage, Ordering::Relaxed);
            let g = l.lock_timeout(Duration::from_secs(10)).unwrap();
            assert!(g.owner_died(), "{garbage:#x}");
            g.unlock().unwrap();
        }
        // Another live thread of ours holds it: a timeout, not a theft.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let l = Arc::new(l);
        let l2 = l.clone();
        let h = std::thread::spawn(move || {
            let g = l2.try_lock().unwrap();
            tx.send(()).unwrap();
            done_rx.recv().unwrap();
            g.unlock().unwrap();
        });
        rx.recv().unwrap();
        let t = Instant::now();
        let e = l.lock_timeout(Duration::from_millis(100)).unwrap_err();
        assert!(
            matches!(e, LockError::Timeout { waited, .. } if waited >= Duration::from_millis(100)),
            "{e:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(
            e.to_string()
                .starts_with("could not take the lock in 0.1 s"),
            "{e}"
        );
        done_tx.send(()).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn releasing_a_lock_that_is_not_ours_fails() {
        let l = ProcessLock::new();
        let g = l.try_lock().unwrap();
        l.owner.store(12345, Ordering::Relaxed);
        assert_eq!(g.unlock().unwrap_err(), LockError::Stolen);
        assert_eq!(l.owner.load(Ordering::Relaxed), 12345, "not freed");
    }

    #[test]
    fn a_scribbled_turn_or_waiters_bit_costs_at_most_a_wake() {
        let l = ProcessLock::new();
        l.turn.store(u32::MAX, Ordering::Relaxed);
        l.spare.store(u32::MAX, Ordering::Relaxed);
        for _ in 0..3 {
            l.try_lock().unwrap().unlock().unwrap();
        }
        let g = l.try_lock().unwrap();
        l.owner.fetch_or(WAITERS, Ordering::Relaxed);
        assert_eq!(l.try_lock().unwrap_err(), LockError::Deadlock);
        g.unlock().unwrap();
        assert_eq!(l.owner.load(Ordering::Relaxed), 0);
        // A bit with no holder: garbage, taken over.
        l.owner.store(WAITERS, Ordering::Relaxed);
        assert!(l.lock_timeout(Duration::from_secs(1)).unwrap().owner_died());
    }
}
