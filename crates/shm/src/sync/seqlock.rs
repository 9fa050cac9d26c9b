//! A sequence lock: one writer at a time (serialized by a lock), readers
//! that never block it and retry when they overlap a write.

// The `Shared` impl that `shared_struct!` generates is the only unsafe
// code here; the macro checks every field at compile time.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use super::atomic::{AtomicU64, Ordering, fence};

#[cfg(not(loom))]
crate::shared_struct! {
    /// The sequence word of a seqlock. Even: stable. Odd: a write is in
    /// progress (or its writer died mid-write; see [`SeqLock::repair`]).
    ///
    /// The data it protects must be atomics, written with `Relaxed` stores
    /// inside a write and read with `Relaxed` loads inside a read.
    pub struct SeqLock {
        seq: AtomicU64,
    }
}

/// The sequence word of a seqlock, on loom's atomics for model checking.
#[cfg(loom)]
pub struct SeqLock {
    seq: AtomicU64,
}

impl Default for SeqLock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SeqLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqLock")
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .finish()
    }
}

/// An open write; ends on drop.
#[derive(Debug)]
pub struct SeqWriteGuard<'a> {
    lock: &'a SeqLock,
}

impl SeqLock {
    /// A stable seqlock in ordinary memory. (In shared memory, zeroed bytes
    /// are a valid, stable seqlock.)
    #[must_use]
    pub fn new() -> Self {
        SeqLock {
            seq: AtomicU64::new(0),
        }
    }

    /// Begins a write. Writers must already be serialized (hold the lock).
    #[inline]
    pub fn write(&self) -> SeqWriteGuard<'_> {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s | 1, Ordering::Relaxed);
        // Order the odd sequence before the data stores that follow.
        fence(Ordering::Release);
        SeqWriteGuard { lock: self }
    }

    /// After a writer died mid-write: makes the sequence even again so that
    /// readers proceed. Call under the lock, after the data is repaired.
    pub fn repair(&self) {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 == 1 {
            self.seq.store(s.wrapping_add(1), Ordering::Release);
        }
    }

    /// The current sequence number (even when stable).
    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Whether a write is open (or its writer died, or a peer wrote an odd
    /// value): readers cannot finish until the next lock holder calls
    /// [`SeqLock::repair`].
    #[must_use]
    #[inline]
    pub fn is_odd(&self) -> bool {
        self.seq.load(Ordering::Relaxed) & 1 == 1
    }

    /// Runs `read` until it sees no concurrent write, and returns its result.
    /// Gives up after `patience` of retries, counted from the first failed
    /// attempt (a writer that died mid-write leaves the sequence odd until
    /// the next lock holder repairs it), and returns `None`; so a caller
    /// waits at most `patience` plus one pass of `read`.
    pub fn read<T>(&self, patience: Duration, mut read: impl FnMut() -> T) -> Option<T> {
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let value = read();
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return Some(value);
                }
            }
            if cfg!(loom) {
                yield_now();
                continue;
            }
            // The clock starts at the first failure: one pass of `read` may
            // itself be long (a snapshot of a million accounts).
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() > patience {
                return None;
            }
            spins = spins.saturating_add(1);
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                yield_now();
            }
        }
    }
}

#[cfg(not(loom))]
use std::thread::yield_now;

#[cfg(loom)]
use loom::thread::yield_now;

impl Drop for SeqWriteGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // A write cut short by a panic may have left the data half-changed:
        // the sequence stays odd, so readers keep away until the next lock
        // holder repairs the data and then the sequence.
        if std::thread::panicking() {
            return;
        }
        let s = self.lock.seq.load(Ordering::Relaxed);
        self.lock
            .seq
            .store((s | 1).wrapping_add(1), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn readers_never_see_a_torn_pair() {
        let lock = SeqLock {
            seq: AtomicU64::new(0),
        };
        let (a, b) = (AtomicU64::new(1), AtomicU64::new(1));
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 2..20_000u64 {
                    let _w = lock.write();
                    a.store(i, Ordering::Relaxed);
                    b.store(i, Ordering::Relaxed);
                }
            });
            for _ in 0..20_000 {
                let (x, y) = lock
                    .read(Duration::from_secs(5), || {
                        (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed))
                    })
                    .unwrap();
                assert_eq!(x, y);
            }
        });
    }

    #[test]
    fn a_panic_mid_write_leaves_the_sequence_odd() {
        let lock = SeqLock::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _w = lock.write();
            panic!("mid-write");
        }));
        assert!(r.is_err());
        assert!(lock.is_odd(), "readers must not trust a half-done write");
        assert_eq!(lock.read(Duration::from_millis(10), || 1), None);
        lock.repair();
        assert_eq!(lock.read(Duration::from_millis(10), || 1), Some(1));
    }

    #[test]
    fn patience_counts_from_the_first_failure() {
        let lock = SeqLock::new();
        let t = Instant::now();
        // Each pass takes 10 ms and overlaps a write; 64 passes before the
        // clock starts would take 640 ms.
        let r = lock.read(Duration::from_millis(20), || {
            std::thread::sleep(Duration::from_millis(10));
            drop(lock.write());
        });
        assert_eq!(r, None);
        assert!(
            t.elapsed() < Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn the_sequence_wraps_at_its_end() {
        let lock = SeqLock {
            seq: AtomicU64::new(u64::MAX),
        };
        lock.repair();
        assert_eq!(lock.sequence(), 0);
        lock.seq.store(u64::MAX - 1, Ordering::Relaxed);
        drop(lock.write());
        assert_eq!(lock.sequence(), 0);
    }

    #[test]
    fn a_dead_writer_is_repaired() {
        let lock = SeqLock {
            seq: AtomicU64::new(0),
        };
        std::mem::forget(lock.write());
        assert_eq!(lock.read(Duration::from_millis(10), || 1), None);
        lock.repair();
        assert_eq!(lock.read(Duration::from_millis(10), || 1), Some(1));
    }
}
