//! Model check of the process lock's word protocol under every
//! interleaving loom finds: taking, releasing, sleeping behind the waiters
//! bit, and taking over from a dead holder never lets two threads in at
//! once, and a release never frees a lock that was taken from its holder.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmex-shm --release --test loom_lock`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use shm::sync::{LockError, ProcessLock};

/// An identity no live thread has.
const DEAD: u64 = 7 | (9 << 32);

fn alive(_: u64) -> bool {
    false
}

/// Increments `n` under the lock as `me`, with a load and a store, so that
/// two threads inside at once could lose an increment.
fn add_one(lock: &ProcessLock, n: &AtomicU64, me: u64) -> bool {
    let g = lock.model_lock(me, |o| o == DEAD || alive(o));
    let died = g.owner_died();
    let v = n.load(Ordering::Relaxed);
    n.store(v + 1, Ordering::Relaxed);
    g.unlock().expect("our own lock");
    died
}

#[test]
fn two_threads_exclude_each_other() {
    loom::model(|| {
        let lock = Arc::new(ProcessLock::new());
        let n = Arc::new(AtomicU64::new(0));
        let t = {
            let (lock, n) = (lock.clone(), n.clone());
            loom::thread::spawn(move || add_one(&lock, &n, 1))
        };
        add_one(&lock, &n, 2);
        t.join().unwrap();
        assert_eq!(n.load(Ordering::Relaxed), 2);
        assert_eq!(lock.model_owner(), 0, "free, the waiters bit cleared");
    });
}

#[test]
fn one_waiter_takes_over_from_a_dead_holder() {
    loom::model(|| {
        let lock = Arc::new(ProcessLock::new());
        lock.model_scribble(DEAD);
        let n = Arc::new(AtomicU64::new(0));
        let t = {
            let (lock, n) = (lock.clone(), n.clone());
            loom::thread::spawn(move || add_one(&lock, &n, 1))
        };
        let mine = add_one(&lock, &n, 2);
        let theirs = t.join().unwrap();
        assert_eq!(n.load(Ordering::Relaxed), 2);
        assert!(mine ^ theirs, "exactly one was told the holder died");
        assert_eq!(lock.model_owner(), 0);
    });
}

#[test]
fn a_release_after_a_theft_fails_and_frees_nothing() {
    loom::model(|| {
        let lock = ProcessLock::new();
        let g = lock.model_try_lock(1).expect("free");
        lock.model_scribble(DEAD);
        assert_eq!(g.unlock(), Err(LockError::Stolen));
        assert_eq!(lock.model_owner(), DEAD);
    });
}
