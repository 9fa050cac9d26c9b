//! Small process-level system calls the programs above need: CPU pinning
//! (for benchmarks) and termination signals (for clean-up on Ctrl-C).

use std::io;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Pins the calling thread to CPU `cpu` (sched_setaffinity(2)).
///
/// # Errors
///
/// The errno, e.g. `EINVAL` for a CPU that does not exist.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cpu` is within the set's capacity (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs this process may run on.
#[must_use]
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is writable.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } < 0 {
        return vec![0];
    }
    (0..8 * std::mem::size_of::<libc::cpu_set_t>())
        // SAFETY: `i` is within the set's capacity.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// The effective uid.
#[must_use]
pub fn euid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() }
}

static TERMINATED: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work: an atomic store and a futex wake.
    TERMINATED.store(sig as u32, Ordering::SeqCst);
    crate::sync::futex::wake_all(&TERMINATED);
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that record the signal
/// instead of killing the process, so that it can remove what it owns and
/// exit. Blocking system calls are interrupted (no `SA_RESTART`). Idempotent.
pub fn catch_termination() {
    INSTALL.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: sigaction is plain data; all-zero is a valid start.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            // SAFETY: `sa.sa_mask` is a valid sigset_t.
            unsafe { libc::sigemptyset(&mut sa.sa_mask) };
            // SAFETY: `sa` is fully initialized and the handler is
            // async-signal-safe.
            unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        }
    });
}

/// The termination signal received since [`catch_termination`], if any.
#[must_use]
pub fn termination_signal() -> Option<i32> {
    match TERMINATED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    }
}

/// Sleeps until a termination signal arrives or `timeout` passes; returns
/// the signal, if one came. Uses no CPU while waiting.
#[must_use]
pub fn wait_for_termination(timeout: Option<Duration>) -> Option<i32> {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        if let Some(s) = termination_signal() {
            return Some(s);
        }
        let left = match deadline {
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return None,
            },
            None => None,
        };
        let _ = crate::sync::futex::wait(&TERMINATED, 0, left);
    }
}

/// Waits until `fd` is readable (or, with `write`, writable), at most
/// `timeout` (poll(2)). Returns whether it is ready; an interrupted wait
/// returns `Ok(false)`, so the caller can look at
/// [`termination_signal`] and wait again.
///
/// A blocking read or write entered just after a termination signal
/// arrived would wait for data that may never come; polling with a short
/// timeout first bounds that.
///
/// # Errors
///
/// The errno of poll(2), other than `EINTR`.
pub fn poll_fd(
    fd: std::os::fd::BorrowedFd<'_>,
    write: bool,
    timeout: Duration,
) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: if write { libc::POLLOUT } else { libc::POLLIN },
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    // Ready, or hung up / in error: either way the next read or write
    // returns at once.
    Ok(rc > 0)
}
