//! Model check of the seqlock protocol under every interleaving loom finds:
//! a reader never returns a pair that mixes two writes.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p shmex-shm --release --test loom_seqlock`.
#![cfg(loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use shm::sync::SeqLock;

#[test]
fn readers_never_see_a_torn_write() {
    loom::model(|| {
        let lock = Arc::new(SeqLock::new());
        let a = Arc::new(AtomicU64::new(0));
        let b = Arc::new(AtomicU64::new(0));
        let writer = {
            let (lock, a, b) = (lock.clone(), a.clone(), b.clone());
            loom::thread::spawn(move || {
                for i in 1..=2 {
                    let _w = lock.write();
                    a.store(i, Ordering::Relaxed);
                    b.store(i, Ordering::Relaxed);
                }
            })
        };
        let got = lock.read(Duration::MAX, || {
            (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed))
        });
        let (x, y) = got.expect("loom readers retry until a stable read");
        assert_eq!(x, y, "torn read");
        writer.join().unwrap();
        assert_eq!(lock.sequence() % 2, 0);
    });
}

#[test]
fn repair_releases_readers_after_a_dead_writer() {
    loom::model(|| {
        let lock = SeqLock::new();
        std::mem::forget(lock.write());
        lock.repair();
        assert_eq!(lock.read(Duration::MAX, || 7), Some(7));
    });
}
