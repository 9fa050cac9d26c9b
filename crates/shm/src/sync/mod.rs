//! Synchronization on shared memory: futexes, a process-shared lock whose
//! holder's death is detected and handed to recovery (with only plain
//! integers in shared memory), a seqlock, and process liveness.
//!
//! Lock and ring algorithms take their atomics from [`atomic`], which is
//! `loom`'s under `--cfg loom`, so that their index protocols can be
//! model-checked.

pub mod futex;
mod lock;
#[cfg_attr(loom, allow(dead_code))]
mod owner;
mod process;
mod seqlock;

pub use lock::{FIRST_LOOK, LockError, LockGuard, ProcessLock, SLICE};
pub use owner::namespaces;
pub use process::ProcessId;
pub use seqlock::{SeqLock, SeqWriteGuard};

/// The atomics that lock and ring algorithms use: `std`'s, or `loom`'s when
/// model checking.
pub mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{
        AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
    #[cfg(not(loom))]
    pub use std::sync::atomic::{
        AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
    };
}
