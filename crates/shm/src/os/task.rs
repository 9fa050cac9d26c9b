//! The calls behind the process lock's owner identity: the calling
//! thread's id, whether a task exists, and a hook run in the child of a
//! `fork`.

use std::io;

/// The calling thread's id (gettid(2)): the pid of a single-threaded
/// process, in this pid namespace.
pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    u32::try_from(tid).unwrap_or(0)
}

/// Whether a task (thread or process) with id `tid` exists in this pid
/// namespace, asked with signal 0 (kill(2)): `Some(false)` only when the
/// kernel says there is none (`ESRCH`); `Some(true)` when it exists, even
/// if we may not signal it; `None` when the call failed otherwise.
pub(crate) fn task_exists(tid: u32) -> Option<bool> {
    let Ok(pid) = libc::pid_t::try_from(tid) else {
        return Some(false);
    };
    if pid <= 0 {
        return Some(false);
    }
    // SAFETY: signal 0 only checks for existence and permission; no signal
    // is sent.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return Some(true);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ESRCH) => Some(false),
        Some(libc::EPERM) => Some(true),
        _ => None,
    }
}

/// Runs `child` in the child process after every `fork` (pthread_atfork(3)).
/// Call once per handler.
pub(crate) fn at_fork_child(child: extern "C" fn()) {
    // SAFETY: the handler is a plain function that lives for the whole
    // program; pthread_atfork only records it.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}
