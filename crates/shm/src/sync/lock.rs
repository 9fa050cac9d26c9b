//! A process-shared lock whose shared state is plain integers.
//!
//! Three words live in shared memory, and nothing else: `owner` (0 when
//! free, else the holder's identity, see [`owner`](super::owner)), `turn`
//! (a futex word every release with sleepers bumps) and `waiters` (how many
//! may sleep on `turn`). No pointer, nothing the C library or the kernel
//! later dereferences, so a peer that writes these words can make the lock
//! misbehave but never make a holder or a waiter crash.
//!
//! * **Taking it** is one compare-and-swap of `owner` from 0 to the
//!   caller's identity; **releasing** is one compare-and-swap back, and a
//!   wake-up only if `waiters` says someone sleeps.
//! * **Waiting** sleeps on `turn` in slices of at most [`SLICE`] on
//!   `CLOCK_MONOTONIC`, so every wait ends on its deadline, and between
//!   slices looks at [`sys::termination_signal`](crate::sys::termination_signal):
//!   a caught SIGINT or SIGTERM ends it with [`LockError::Interrupted`].
//! * **A dead holder** is found by a waiter that has seen the same holder
//!   for one [`SLICE`]: it reads `/proc/TID/stat` and, if that thread is
//!   gone, a zombie, or started at another time than the identity says (its
//!   id was reused), takes the lock over with a compare-and-swap and is
//!   told so ([`LockGuard::owner_died`]), to repair what the dead holder
//!   left half-done. So a holder's death is detected within one slice
//!   (20 ms) of a waiter's arrival, plus one read of `/proc`; a garbage
//!   `owner` (an id no thread has) the same way.
//! * **A live holder** is never robbed: when liveness cannot be
//!   established (no `/proc`, a task hidden by `hidepid`), the holder
//!   counts as alive and the waiter's deadline ends the wait.
//! * **Releasing a lock that is not ours** (its `owner` was overwritten)
//!   fails with [`LockError::Stolen`] instead of freeing someone else's.
//!
//! Thread ids and start times are comparable only within one pid namespace
//! and one time namespace. A user of the lock must keep peers from other
//! namespaces out: the exchange records [`namespaces`](super::namespaces)
//! when it is made and refuses to open from elsewhere.
// The `Shared` impl that `shared_struct!` generates is the only unsafe
// code here.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::owner;

/// How long a waiter sleeps before it looks at the lock again; also how
/// long it watches one holder before it asks whether that holder lives.
pub const SLICE: Duration = Duration::from_millis(20);

#[cfg(not(loom))]
crate::shared_struct! {
    /// A process-shared lock in shared memory; see the [module](self).
    ///
    /// All-zero bytes are a free lock. It guards no data of its own (the
    /// data lives beside it, in atomics); a [`LockGuard`] proves it is held.
    pub struct ProcessLock {
        owner: AtomicU64,
        turn: AtomicU32,
        waiters: AtomicU32,
    }
}

/// A process-shared lock, on loom's atomics for model checking.
#[cfg(loom)]
pub struct ProcessLock {
    owner: AtomicU64,
    turn: AtomicU32,
    waiters: AtomicU32,
}

impl Default for ProcessLock {
    fn default() -> Self {
        ProcessLock {
            owner: AtomicU64::new(0),
            turn: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
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
            if o == me {
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
        // The holder being watched, and since when.
        let (mut watched, mut since) = (0u64, start);
        loop {
            let o = match self.try_as(me) {
                Ok(g) => return Ok(g),
                Err(o) => o,
            };
            if o == me {
                return Err(LockError::Deadlock);
            }
            if let Some(sig) = crate::sys::termination_signal() {
                return Err(LockError::Interrupted(sig));
            }
            let now = Instant::now();
            if o != watched {
                (watched, since) = (o, now);
            } else if now.duration_since(since) >= SLICE {
                if owner::is_dead(o) {
                    if let Ok(g) = self.steal(o, me) {
                        return Ok(g);
                    }
                    continue;
                }
                since = now;
            }
            let mut nap = (since + SLICE).saturating_duration_since(now);
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(now);
                if left.is_zero() {
                    return Err(LockError::Timeout {
                        pid: owner::tid_of(o),
                        waited: now.duration_since(start),
                    });
                }
                nap = nap.min(left);
            }
            self.park(nap.max(Duration::from_micros(100)));
        }
    }

    /// Takes the lock from the dead holder `observed`, unless someone else
    /// changed it first.
    fn steal(&self, observed: u64, me: u64) -> Result<LockGuard<'_>, u64> {
        self.owner
            .compare_exchange(observed, me, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| self.guard(me, true))
    }

    /// Sleeps on `turn` for at most `nap`, unless the lock is free by then.
    /// A sleeper counts itself in `waiters` first, so that a release that
    /// follows either sees it (and wakes it) or happened before the sleeper
    /// looked at `owner` (which it then finds free).
    #[cfg(not(loom))]
    fn park(&self, nap: Duration) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let t = self.turn.load(Ordering::SeqCst);
        if self.owner.load(Ordering::SeqCst) != 0 {
            let _ = super::futex::wait(&self.turn, t, Some(nap));
        }
        // A peer may have zeroed the count: never wrap it around.
        let _ = self
            .waiters
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| {
                Some(w.saturating_sub(1))
            });
    }

    /// Releases the lock held as `me`; wakes a sleeper if there is one.
    #[inline]
    fn release(&self, me: u64) -> Result<(), LockError> {
        if self
            .owner
            .compare_exchange(me, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Err(LockError::Stolen);
        }
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.wake();
        }
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
    /// dead, waiting by yielding.
    pub fn model_lock(&self, me: u64, dead: impl Fn(u64) -> bool) -> LockGuard<'_> {
        loop {
            match self.try_as(me) {
                Ok(g) => return g,
                Err(o) if dead(o) => {
                    if let Ok(g) = self.steal(o, me) {
                        return g;
                    }
                }
                Err(_) => {
                    self.waiters.fetch_add(1, Ordering::SeqCst);
                    loom::thread::yield_now();
                    let _ = self
                        .waiters
                        .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |w| {
                            Some(w.saturating_sub(1))
                        });
                }
            }
        }
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
    pub fn unlock(self) -> Result<(), LockError> {
        let r = self.lock.release(self.me);
        std::mem::forget(self);
        r
    }
}

impl Drop for LockGuard<'_> {
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
        assert_eq!(l.waiters.load(Ordering::Relaxed), 0);
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
    fn scribbled_counters_cost_at_most_a_wake() {
        let l = ProcessLock::new();
        l.waiters.store(u32::MAX, Ordering::Relaxed);
        l.turn.store(u32::MAX, Ordering::Relaxed);
        for _ in 0..3 {
            l.try_lock().unwrap().unlock().unwrap();
        }
        drop(l.lock_timeout(Duration::from_secs(1)).unwrap());
    }
}
