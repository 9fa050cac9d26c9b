//! A robust, process-shared mutex: `pthread_mutex_t` with
//! `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST`
//! (pthread_mutexattr_setrobust(3)).
//!
//! When the owner dies holding it, the kernel (through the robust futex list
//! that glibc registers for every thread) marks the lock word, and the next
//! locker gets `EOWNERDEAD`: it owns the lock and must repair the state it
//! guards, then call [`MutexGuard::mark_consistent`]. A guard dropped without
//! that leaves the mutex unrecoverable, as POSIX says.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const READY: u32 = 0x4d55_5458; // "MUTX"

/// A robust process-shared mutex, placed in shared memory.
///
/// It guards no data of its own (the data lives beside it in the segment,
/// in atomics); the guard proves the lock is held.
#[repr(C)]
pub struct RobustMutex {
    ready: AtomicU32,
    _pad: AtomicU32,
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

impl std::fmt::Debug for RobustMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobustMutex")
            .field("initialized", &self.is_initialized())
            .finish()
    }
}

// SAFETY: the pthread mutex is designed for concurrent use from many threads
// and processes; it is only touched through the pthread API.
unsafe impl Sync for RobustMutex {}
// SAFETY: as for Sync; it holds no thread-bound state.
unsafe impl Send for RobustMutex {}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LockError {
    /// The mutex was never initialized (or the memory is garbage).
    #[error("the lock is not initialized")]
    Uninitialized,
    /// An earlier owner died and its successor did not repair the state.
    #[error("the lock is unusable: a previous owner died and recovery did not complete")]
    NotRecoverable,
    /// The lock is held (try or timed lock).
    #[error("the lock is busy")]
    WouldBlock,
    /// This thread already holds it.
    #[error("the lock is already held by this thread")]
    Deadlock,
    /// Anything else pthread reported.
    #[error("pthread_mutex_lock failed: errno {0}")]
    Other(i32),
}

/// Proof that the lock is held; unlocks on drop.
#[derive(Debug)]
pub struct MutexGuard<'a> {
    mutex: &'a RobustMutex,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl RobustMutex {
    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.inner.get()
    }

    /// Whether [`RobustMutex::init`] has completed.
    #[must_use]
    pub fn is_initialized(&self) -> bool {
        self.ready.load(Ordering::Acquire) == READY
    }

    /// Initializes the mutex in place. Call exactly once, by the segment's
    /// creator, before the segment is marked ready; a second call is a no-op.
    ///
    /// # Errors
    ///
    /// The errno of a failing pthread call.
    pub fn init(&self) -> Result<(), LockError> {
        if self.is_initialized() {
            return Ok(());
        }
        // SAFETY: attr is plain data that pthread_mutexattr_init fills in.
        let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
        let check = |rc: i32| {
            if rc == 0 {
                Ok(())
            } else {
                Err(LockError::Other(rc))
            }
        };
        // SAFETY: `attr` is valid and writable.
        check(unsafe { libc::pthread_mutexattr_init(&mut attr) })?;
        let r = (|| {
            // SAFETY: `attr` was initialized above.
            check(unsafe {
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED)
            })?;
            // SAFETY: as above.
            check(unsafe {
                libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST)
            })?;
            // SAFETY: `raw()` points to memory owned by this struct, which
            // the creator alone touches before `ready` is published.
            check(unsafe { libc::pthread_mutex_init(self.raw(), &attr) })
        })();
        // SAFETY: `attr` was initialized.
        unsafe { libc::pthread_mutexattr_destroy(&mut attr) };
        r?;
        self.ready.store(READY, Ordering::Release);
        Ok(())
    }

    fn guard(&self, rc: i32) -> Result<MutexGuard<'_>, LockError> {
        match rc {
            0 => Ok(MutexGuard {
                mutex: self,
                owner_died: false,
                _not_send: PhantomData,
            }),
            libc::EOWNERDEAD => Ok(MutexGuard {
                mutex: self,
                owner_died: true,
                _not_send: PhantomData,
            }),
            libc::ENOTRECOVERABLE => Err(LockError::NotRecoverable),
            libc::EBUSY | libc::ETIMEDOUT => Err(LockError::WouldBlock),
            libc::EDEADLK => Err(LockError::Deadlock),
            e => Err(LockError::Other(e)),
        }
    }

    /// Takes the lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`LockError::Uninitialized`], [`LockError::NotRecoverable`], or
    /// another pthread error. A dead owner is not an error: see
    /// [`MutexGuard::owner_died`].
    pub fn lock(&self) -> Result<MutexGuard<'_>, LockError> {
        if !self.is_initialized() {
            return Err(LockError::Uninitialized);
        }
        // SAFETY: initialized (checked above), process-shared, and it lives
        // in a mapping that outlives `self`'s borrow.
        self.guard(unsafe { libc::pthread_mutex_lock(self.raw()) })
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] if it is held; otherwise as [`RobustMutex::lock`].
    pub fn try_lock(&self) -> Result<MutexGuard<'_>, LockError> {
        if !self.is_initialized() {
            return Err(LockError::Uninitialized);
        }
        // SAFETY: as in `lock`.
        self.guard(unsafe { libc::pthread_mutex_trylock(self.raw()) })
    }

    /// Takes the lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] on timeout; otherwise as [`RobustMutex::lock`].
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_>, LockError> {
        if !self.is_initialized() {
            return Err(LockError::Uninitialized);
        }
        // SAFETY: timespec is plain data; clock_gettime fills it.
        let mut now: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: valid clock id and writable buffer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
        let total_ns = i128::from(now.tv_nsec) + timeout.subsec_nanos() as i128;
        let deadline = libc::timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(timeout.as_secs() as libc::time_t)
                .saturating_add((total_ns / 1_000_000_000) as libc::time_t),
            tv_nsec: (total_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: as in `lock`; `deadline` is a valid timespec.
        self.guard(unsafe { libc::pthread_mutex_timedlock(self.raw(), &deadline) })
    }
}

impl MutexGuard<'_> {
    /// Whether the previous owner died holding the lock: the guarded state
    /// may be half-changed and must be repaired before
    /// [`MutexGuard::mark_consistent`].
    #[must_use]
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Declares the guarded state repaired after an owner's death.
    ///
    /// # Errors
    ///
    /// The pthread errno, if any.
    pub fn mark_consistent(&mut self) -> Result<(), LockError> {
        if !self.owner_died {
            return Ok(());
        }
        // SAFETY: this thread holds the mutex after EOWNERDEAD, which is
        // exactly when pthread_mutex_consistent may be called.
        let rc = unsafe { libc::pthread_mutex_consistent(self.mutex.raw()) };
        if rc != 0 {
            return Err(LockError::Other(rc));
        }
        self.owner_died = false;
        Ok(())
    }
}

impl Drop for MutexGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this thread holds the mutex (the guard is !Send and exists
        // only after a successful lock).
        unsafe { libc::pthread_mutex_unlock(self.mutex.raw()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Box<RobustMutex> {
        // SAFETY: an all-zero RobustMutex is its uninitialized state.
        let m: Box<RobustMutex> = Box::new(unsafe { std::mem::zeroed() });
        m
    }

    #[test]
    fn uninitialized_is_refused() {
        let m = fresh();
        assert_eq!(m.lock().unwrap_err(), LockError::Uninitialized);
    }

    #[test]
    fn lock_try_lock_and_dead_owner() {
        let m: &'static RobustMutex = Box::leak(fresh());
        m.init().unwrap();
        {
            let g = m.lock().unwrap();
            assert!(!g.owner_died());
            std::thread::scope(|s| {
                s.spawn(|| assert_eq!(m.try_lock().unwrap_err(), LockError::WouldBlock));
            });
        }
        // A thread that exits holding the lock: the next locker is told.
        std::thread::spawn(|| std::mem::forget(m.lock().unwrap()))
            .join()
            .unwrap();
        let mut g = m.lock().unwrap();
        assert!(g.owner_died());
        g.mark_consistent().unwrap();
        drop(g);
        assert!(!m.lock().unwrap().owner_died());
        assert_eq!(m.lock_timeout(Duration::from_millis(1)).map(|_| ()), Ok(()));
    }

    #[test]
    fn unrepaired_death_makes_it_unrecoverable() {
        let m: &'static RobustMutex = Box::leak(fresh());
        m.init().unwrap();
        std::thread::spawn(|| std::mem::forget(m.lock().unwrap()))
            .join()
            .unwrap();
        drop(m.lock().unwrap());
        assert_eq!(m.lock().unwrap_err(), LockError::NotRecoverable);
    }
}
