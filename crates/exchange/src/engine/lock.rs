//! Step 1: taking the mutex (spinning, then yielding, then blocking),
//! handing a dead owner's operation to recovery, and the hold-time probe.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use shm::sync::{LockError, MutexGuard};

use super::{Engine, R};
use crate::error::OpError;

/// Tries at the mutex while spinning (16, 32, … up to 1024 pauses between
/// tries: about 100 µs in all), then while yielding, before blocking.
const SPIN_ROUNDS: u32 = 10;
const SPIN_FIRST: u32 = 16;
const SPIN_MAX: u32 = 1024;
const YIELD_ROUNDS: u32 = 16;

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

    /// Takes the mutex: tries while spinning with exponential backoff,
    /// then while yielding the CPU, then blocks in the kernel.
    ///
    /// Backing off lets the holder run several operations with its cache
    /// lines hot instead of handing the lock (and every line the operation
    /// touches) to the other core each time; yielding lets a holder that
    /// was preempted run again; and staying out of the kernel as long as
    /// that keeps unlocking cheap, since once a waiter sleeps there every
    /// unlock is a system call.
    fn acquire(&self) -> Result<MutexGuard<'a>, LockError> {
        let m = &self.head.lock;
        let mut pause = SPIN_FIRST;
        for round in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            match m.try_lock() {
                Err(LockError::WouldBlock) => {}
                r => return r,
            }
            if round < SPIN_ROUNDS {
                for _ in 0..pause {
                    std::hint::spin_loop();
                }
                pause = (pause * 2).min(SPIN_MAX);
            } else {
                std::thread::yield_now();
            }
        }
        m.lock()
    }

    fn lock(&self) -> Result<MutexGuard<'a>, OpError> {
        let mut g = self.acquire().map_err(OpError::Lock)?;
        if g.owner_died() || self.head.undo.active.load(R) != 0 {
            self.recover(&mut g)?;
        }
        Ok(g)
    }

    /// Runs a mutation under the lock.
    #[inline]
    pub(super) fn locked<T>(&self, f: impl FnOnce() -> Result<T, OpError>) -> Result<T, OpError> {
        let g = self.lock()?;
        // Books that shrank under this process read zeros: no mutation
        // starts on them, and none that ran into them is acknowledged.
        self.ex.m.check_intact()?;
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
        drop(g);
        self.ex.m.check_intact()?;
        r
    }
}
