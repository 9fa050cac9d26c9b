//! Process-wide memory barriers across processes (membarrier(2)), for
//! protocols where one side's fast path must not pay for a fence: the slow
//! side runs [`global_expedited`], which makes every running thread of
//! every registered process ([`register_global_expedited`]) execute a full
//! memory barrier, so that the fast side's plain stores and loads are
//! ordered against the slow side as if the fast side had fenced.

use std::io;

// From <linux/membarrier.h>; stable kernel ABI.
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

fn membarrier(cmd: libc::c_long) -> io::Result<libc::c_long> {
    // SAFETY: membarrier takes two integers (command, flags) and a CPU id
    // that is ignored without MEMBARRIER_CMD_FLAG_CPU; it touches no
    // memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Whether this kernel offers [`global_expedited`].
#[must_use]
pub fn supported() -> bool {
    let need = MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
    membarrier(MEMBARRIER_CMD_QUERY).is_ok_and(|mask| mask & need == need)
}

/// Registers this process to take part in [`global_expedited`] barriers
/// run by any process. Idempotent.
///
/// # Errors
///
/// The errno: `ENOSYS` or `EINVAL` where the kernel lacks it, `EPERM`
/// where a seccomp filter forbids it.
pub fn register_global_expedited() -> io::Result<()> {
    membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED).map(drop)
}

/// Makes every running thread of every registered process (and the caller)
/// execute a full memory barrier before returning; threads that are not
/// running pass one when they are next scheduled. Costs about a
/// microsecond (an inter-processor interrupt per CPU that runs a registered
/// thread).
///
/// # Errors
///
/// As [`register_global_expedited`].
pub fn global_expedited() -> io::Result<()> {
    membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED).map(drop)
}
