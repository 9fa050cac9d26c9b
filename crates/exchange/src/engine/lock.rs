//! Step 1: taking the lock (spinning, then yielding, then sleeping in
//! slices until the deadline), handing a dead holder's operation to
//! recovery, and the hold-time probe.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shm::sync::{LockError, LockGuard};

use super::{Engine, R};
use crate::error::{LockTimeoutError, OpError};

/// Tries at the lock while spinning (16, 32, … up to 1024 pauses between
/// tries: about 100 µs in all), then while yielding, before sleeping.
const SPIN_ROUNDS: u32 = 10;
const SPIN_FIRST: u32 = 16;
const SPIN_MAX: u32 = 1024;
const YIELD_ROUNDS: u32 = 16;

/// How long an operation waits for the lock unless `SHMEX_LOCK_TIMEOUT`
/// says otherwise.
pub(crate) const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

static LOCK_WAIT: OnceLock<Result<Duration, LockTimeoutError>> = OnceLock::new();

/// How long operations wait for the lock: `SHMEX_LOCK_TIMEOUT` (seconds,
/// such as `10` or `0.5`), read once per process, or
/// [`DEFAULT_LOCK_WAIT`].
///
/// # Errors
///
/// [`LockTimeoutError`] with the variable's value if it is not a number of
/// seconds from 0 to a million.
pub(crate) fn lock_wait() -> Result<Duration, LockTimeoutError> {
    LOCK_WAIT
        .get_or_init(|| match std::env::var("SHMEX_LOCK_TIMEOUT") {
            Err(_) => Ok(DEFAULT_LOCK_WAIT),
            Ok(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| (0.0..=1e6).contains(s))
                .map(Duration::from_secs_f64)
                .ok_or(LockTimeoutError { value: v }),
        })
        .clone()
}

pub(super) struct Probe {
    every: u32,
    n: Cell<u32>,
    samples: RefCell<Vec<u32>>,
}

impl<'a> Engine<'a> {
    /// Records how long the lock is held by every `every`-th mutation of
    /// this engine (0 stops it), for benchmarks.
    pub fn sample_hold_times(&mut self, every: u32) {
        self.probe = (every > 0).then(|| Probe {
            every,
            n: Cell::new(0),
            samples: RefCell::new(Vec::new()),
        });
    }

    /// The lock hold times recorded so far, in ns; clears them.
    pub fn take_hold_times(&self) -> Vec<u32> {
        self.probe
            .as_ref()
            .map(|p| std::mem::take(&mut *p.samples.borrow_mut()))
            .unwrap_or_default()
    }

    /// A lock error, naming the exchange; a lock taken from its holder is
    /// corruption.
    pub(super) fn lock_error(&self, e: LockError) -> OpError {
        if e.is_corruption() {
            return self.corrupt(e.to_string());
        }
        OpError::Lock {
            what: self.ex.what.clone(),
            source: e,
        }
    }

    /// Corruption of this exchange, for `reason`.
    #[cold]
    pub(super) fn corrupt(&self, reason: impl Into<String>) -> OpError {
        OpError::Corrupt {
            what: self.ex.what.clone(),
            reason: reason.into(),
        }
    }

    /// Takes the lock: tries while spinning with exponential backoff,
    /// then while yielding the CPU, then sleeps in slices until the
    /// deadline (judging, each slice, whether the holder still lives).
    ///
    /// Backing off lets the holder run several operations with its cache
    /// lines hot instead of handing the lock (and every line the operation
    /// touches) to the other core each time; yielding lets a holder that
    /// was preempted run again; and staying out of the kernel as long as
    /// that keeps unlocking cheap, since once a waiter sleeps there every
    /// unlock is a system call.
    #[inline]
    fn acquire(&self) -> Result<LockGuard<'a>, OpError> {
        let l = &self.head.lock;
        match l.try_lock() {
            Ok(g) => return Ok(g),
            Err(LockError::WouldBlock) => {}
            Err(e) => return Err(self.lock_error(e)),
        }
        self.acquire_slow()
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(&self) -> Result<LockGuard<'a>, OpError> {
        let l = &self.head.lock;
        let mut pause = SPIN_FIRST;
        for round in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            if round < SPIN_ROUNDS {
                for _ in 0..pause {
                    std::hint::spin_loop();
                }
                pause = (pause * 2).min(SPIN_MAX);
            } else {
                std::thread::yield_now();
            }
            match l.try_lock() {
                Ok(g) => return Ok(g),
                Err(LockError::WouldBlock) => {}
                Err(e) => return Err(self.lock_error(e)),
            }
        }
        l.lock_timeout(self.ex.lock_wait)
            .map_err(|e| self.lock_error(e))
    }

    /// Takes the lock and recovers what a dead holder left: its half-done
    /// operation, or a seqlock left odd.
    #[inline]
    pub(super) fn lock(&self) -> Result<LockGuard<'a>, OpError> {
        let g = self.acquire()?;
        if g.owner_died() || self.head.undo.active.load(R) != 0 || self.head.seq.is_odd() {
            self.recover(&g)?;
        }
        Ok(g)
    }

    /// Releases the lock; a lock that was taken from us is corruption, and
    /// then whatever `r` says does not count.
    #[inline]
    pub(super) fn unlock<T>(&self, g: LockGuard<'_>, r: Result<T, OpError>) -> Result<T, OpError> {
        match g.unlock() {
            Ok(()) => r,
            Err(e) => Err(self.lock_error(e)),
        }
    }

    /// Takes and releases the lock `n` times with nothing in between, and
    /// returns how long that took: the uncontended cost of the lock, for
    /// benchmarks.
    ///
    /// # Errors
    ///
    /// As any mutation's taking of the lock.
    pub fn time_lock(&self, n: u32) -> Result<Duration, OpError> {
        let t = Instant::now();
        for _ in 0..n {
            let g = std::hint::black_box(self.lock()?);
            self.unlock(g, Ok(()))?;
        }
        Ok(t.elapsed())
    }

    /// Runs a mutation under the lock.
    #[inline]
    pub(super) fn locked<T>(&self, f: impl FnOnce() -> Result<T, OpError>) -> Result<T, OpError> {
        let g = self.lock()?;
        // Books that shrank under this process read zeros: no mutation
        // starts on them, and none that ran into them is acknowledged.
        if let Err(e) = self.ex.m.check_intact() {
            return self.unlock(g, Err(e.into()));
        }
        let start = match &self.probe {
            Some(p) => {
                let n = p.n.get().wrapping_add(1);
                p.n.set(n);
                (n % p.every == 0).then(Instant::now)
            }
            None => None,
        };
        let r = f();
        if let (Some(t), Some(p)) = (start, &self.probe) {
            let ns = t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
            p.samples.borrow_mut().push(ns);
        }
        let r = self.unlock(g, r);
        self.ex.m.check_intact()?;
        r
    }
}
