//! Every call into the kernel: the two shared-memory backends, and the
//! small process-level calls the layers above need (re-exported from the
//! crate root as `shm::sys`, `shm::membarrier`, `shm::eventfd` and
//! `shm::user_name`).
#![allow(unsafe_code)]

pub mod eventfd;
pub mod membarrier;
pub(crate) mod posix;
pub(crate) mod sigbus;
pub mod sys;
pub(crate) mod sysv;
pub(crate) mod task;
pub(crate) mod users;

/// Total physical memory of this machine in bytes, or `None` if unknown.
#[must_use]
pub fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
