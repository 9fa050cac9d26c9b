//! Who holds a [`ProcessLock`](super::ProcessLock): a thread named by its
//! id *and* its start time, so that a recycled id is not mistaken for the
//! thread that used it before, and how a waiter judges whether that thread
//! still lives.
//!
//! The identity is one `u64`: the thread id in the low 32 bits, the low 32
//! bits of its start time (clock ticks after boot, field 22 of
//! `/proc/TID/stat`) in the high 32. Ids and start times mean something
//! only within one pid namespace and one time namespace: [`namespaces`]
//! names the caller's, so that a user of the lock can refuse peers from
//! others.

use std::cell::Cell;
use std::sync::Once;

use crate::os::task;

/// The largest thread id Linux hands out (`PID_MAX_LIMIT` on 64-bit
/// kernels); an identity with a larger one is garbage.
const TID_MAX: u32 = 1 << 22;

thread_local! {
    /// This thread's identity, once computed (0: not yet).
    static ME: Cell<u64> = const { Cell::new(0) };
}

static FORK_HOOK: Once = Once::new();

/// After a `fork` the child's thread has a new id: forget the old one.
extern "C" fn forget_identity() {
    ME.with(|c| c.set(0));
}

/// The calling thread's identity (never 0). Computed once per thread,
/// which reads `/proc`; afterwards a thread-local load.
#[inline]
pub(crate) fn identity() -> u64 {
    let v = ME.with(Cell::get);
    if v != 0 {
        return v;
    }
    compute_identity()
}

#[cold]
fn compute_identity() -> u64 {
    FORK_HOOK.call_once(|| task::at_fork_child(forget_identity));
    let tid = task::gettid().max(1);
    let start = match task_stat(tid) {
        Stat::Found { start, .. } => start,
        Stat::Missing | Stat::Unknown => 0,
    };
    let v = pack(tid, start);
    ME.with(|c| c.set(v));
    v
}

/// The identity of thread `tid` started at `start` (clock ticks).
pub(crate) fn pack(tid: u32, start: u64) -> u64 {
    u64::from(tid.min(TID_MAX)) | (u64::from(start as u32) << 32)
}

/// The thread id in an identity (or an owner word: without its
/// [`WAITERS`] bit).
pub(crate) fn tid_of(owner: u64) -> u32 {
    (owner & !WAITERS) as u32
}

/// The bit of an owner word that says threads may sleep waiting for the
/// lock; no thread id has it (they are below `TID_MAX`).
pub(crate) const WAITERS: u64 = 1 << 31;

/// What `/proc/TID/stat` says of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stat {
    /// It exists: its state letter and its start time.
    Found { state: char, start: u64 },
    /// The kernel says there is no such file (`ENOENT`, `ESRCH`).
    Missing,
    /// It could not be read or parsed (no `/proc`, no memory, …).
    Unknown,
}

fn task_stat(tid: u32) -> Stat {
    let text = match std::fs::read_to_string(format!("/proc/{tid}/stat")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Stat::Missing,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Stat::Missing,
        Err(_) => return Stat::Unknown,
    };
    // The command name may hold spaces and parentheses: skip to the last ')'.
    let Some(close) = text.rfind(')') else {
        return Stat::Unknown;
    };
    let mut fields = text[close + 1..].split_whitespace();
    let state = fields.next().and_then(|s| s.chars().next());
    let start = fields.nth(18).and_then(|s| s.parse().ok());
    match (state, start) {
        (Some(state), Some(start)) => Stat::Found { state, start },
        _ => Stat::Unknown,
    }
}

/// Whether the holder named by `owner` is certainly gone: an identity no
/// thread can have, a thread id with no task, a zombie, or a task whose
/// start time differs (the id was reused). When liveness cannot be
/// established either way (no `/proc`, or a task hidden from us), the
/// holder counts as alive: a live holder must never lose its lock, and a
/// waiter's own deadline bounds what that costs.
pub(crate) fn is_dead(owner: u64) -> bool {
    let owner = owner & !WAITERS;
    let tid = tid_of(owner);
    let start = (owner >> 32) as u32;
    if tid == 0 || tid > TID_MAX {
        return true;
    }
    match task_stat(tid) {
        Stat::Found { state, start: s } => {
            matches!(state, 'Z' | 'X' | 'x') || (start != 0 && s as u32 != start)
        }
        // Gone, or hidden from us (`hidepid`): ask the kernel directly.
        Stat::Missing => task::task_exists(tid) == Some(false),
        Stat::Unknown => false,
    }
}

/// The caller's pid namespace and time namespace, as the inode numbers of
/// `/proc/self/ns/pid` and `/proc/self/ns/time` (0 where unknown, e.g. a
/// kernel without time namespaces). Thread ids and start times are
/// comparable only between processes whose namespaces are both equal.
#[must_use]
pub fn namespaces() -> [u64; 2] {
    use std::os::unix::fs::MetadataExt as _;
    let ino = |p: &str| std::fs::metadata(p).map_or(0, |m| m.ino());
    [ino("/proc/self/ns/pid"), ino("/proc/self/ns/time")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn my_identity_is_alive_and_a_reused_id_is_not() {
        let me = identity();
        assert_eq!(tid_of(me), task::gettid());
        assert_ne!(me >> 32, 0, "start time known");
        assert!(!is_dead(me));
        // The same id with another start time: a reused id.
        assert!(is_dead(me ^ (1 << 40)));
        // Ids no thread can have.
        assert!(is_dead(0));
        assert!(is_dead(u64::from(TID_MAX) + 1));
        assert!(is_dead(u64::MAX));
        // Each thread has its own.
        let other = std::thread::spawn(identity).join().unwrap();
        assert_ne!(other, me);
        assert!(is_dead(other), "a thread that ended is dead");
    }

    #[test]
    fn a_zombie_and_a_reaped_child_are_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let tid = child.id();
        let start = match task_stat(tid) {
            Stat::Found { start, .. } => start,
            _ => 0,
        };
        let id = pack(tid, start);
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(is_dead(id), "a zombie counts as dead");
        child.wait().unwrap();
        assert!(is_dead(id));
    }

    #[test]
    fn pid_1_is_alive_with_its_start_time() {
        let Stat::Found { start, .. } = task_stat(1) else {
            return;
        };
        assert!(!is_dead(pack(1, start)));
        assert!(is_dead(pack(1, start + 1)));
    }

    #[test]
    fn namespaces_are_known() {
        assert_ne!(namespaces()[0], 0);
        assert_eq!(namespaces(), namespaces());
    }
}
