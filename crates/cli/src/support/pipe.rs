//! A closed stdout ends a command quietly. When the reader of stdout goes
//! away (`shmex exchange journal | head -1`), the command stops with exit
//! status 0 and prints nothing more, as `rg` does: the reader took what it
//! wanted. (A command killed by SIGPIPE, as `cat` is, would skip the
//! clean-up of what it owns, and a shell with `pipefail` would call the
//! pipeline failed.)
//!
//! Rust ignores SIGPIPE, so a write to such a stdout fails with `EPIPE`.
//! That error reaches `main` by one of two ways, and both are handled
//! here, once for every command:
//! - a write whose error is handed up with `?` ([`closed_stdout`]);
//! - a `print!` or `println!`, which panics on it; the panic unwinds
//!   (dropping what the command owns) to [`quiet_on_closed_stdout`].
//!
//! Either way an `EPIPE` counts only when stdout itself is the pipe whose
//! reader is gone, so that a benchmark's broken pipe to a worker process
//! is still reported as the failure it is.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

/// Set when a print to stdout panicked because its reader is gone.
static PRINT_FAILED: AtomicBool = AtomicBool::new(false);

/// Runs `f`. A `print!` to a stdout whose reader is gone panics; that
/// panic is kept silent and ends `f` (unwinding it, so its destructors
/// remove what it owns), and this returns `None`. Any other panic goes on
/// as usual.
pub fn quiet_on_closed_stdout<T>(f: impl FnOnce() -> T) -> Option<T> {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        if message.is_some_and(is_print_to_closed_stdout) && reader_gone() {
            PRINT_FAILED.store(true, Ordering::SeqCst);
            return;
        }
        default_hook(info);
    }));
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) if PRINT_FAILED.load(Ordering::SeqCst) => None,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Whether `err` comes from a write to a stdout whose reader is gone (or
/// from a thread whose `print!` panicked on it).
pub fn closed_stdout(err: &anyhow::Error) -> bool {
    if PRINT_FAILED.load(Ordering::SeqCst) {
        return true;
    }
    let epipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    });
    epipe && reader_gone()
}

/// The message std's `print!` panics with on `EPIPE`.
fn is_print_to_closed_stdout(message: &str) -> bool {
    let epipe = io::Error::from_raw_os_error(rustix::io::Errno::PIPE.raw_os_error());
    message
        .strip_prefix("failed printing to stdout: ")
        .is_some_and(|rest| rest == epipe.to_string())
}

/// Whether stdout is a pipe or socket with no reader left: poll(2) says
/// `POLLERR` (a pipe) or `POLLHUP` (a socket) at once.
fn reader_gone() -> bool {
    let out = io::stdout();
    let mut fds = [PollFd::new(&out, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok()
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

#[cfg(test)]
mod tests {
    use super::is_print_to_closed_stdout;

    #[test]
    fn the_print_panic_is_recognized() {
        let epipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let os = std::io::Error::from_raw_os_error(rustix::io::Errno::PIPE.raw_os_error());
        assert_eq!(os.kind(), epipe.kind());
        assert!(is_print_to_closed_stdout(&format!(
            "failed printing to stdout: {os}"
        )));
        assert!(!is_print_to_closed_stdout(&format!(
            "failed printing to stderr: {os}"
        )));
        assert!(!is_print_to_closed_stdout(
            "failed printing to stdout: No space left on device (os error 28)"
        ));
    }
}
