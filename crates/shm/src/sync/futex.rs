//! Futex wait and wake on a 32-bit word in shared memory (futex(2)).
//!
//! Always the shared (non-`FUTEX_PRIVATE_FLAG`) operations: the kernel keys
//! the waiters by the page behind the address, so a wake in one process
//! reaches a waiter in another.
#![allow(unsafe_code)]

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// How a [`wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Woken by [`wake`], or spuriously: re-check the condition.
    Woken,
    /// The word did not hold the expected value when the call began.
    Changed,
    /// The timeout passed.
    TimedOut,
    /// A signal interrupted the wait.
    Interrupted,
}

/// Sleeps while `*word == expected`, at most `timeout` (forever if `None`).
///
/// The check and the sleep are atomic with respect to [`wake`], so a wake
/// that follows a store to `word` is never lost.
#[must_use = "the caller must re-check its condition"]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned 32-bit word for the whole call;
    // FUTEX_WAIT only reads it; `ts_ptr` is null or points to a live timespec.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0,
        )
    };
    if rc == 0 {
        return Wake::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Wake::Changed,
        Some(libc::ETIMEDOUT) => Wake::TimedOut,
        Some(libc::EINTR) => Wake::Interrupted,
        _ => Wake::Woken,
    }
}

/// Wakes up to `count` waiters on `word`; returns how many woke.
pub fn wake(word: &AtomicU32, count: u32) -> usize {
    let n = i32::try_from(count).unwrap_or(i32::MAX);
    // SAFETY: `word` is a valid, aligned 32-bit word; FUTEX_WAKE does not
    // access it beyond using its address as a key.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<u32>(),
            std::ptr::null::<u32>(),
            0,
        )
    };
    usize::try_from(rc).unwrap_or(0)
}

/// Wakes every waiter on `word`.
pub fn wake_all(word: &AtomicU32) -> usize {
    wake(word, u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    #[test]
    fn wait_returns_when_value_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(wait(&w, 0, None), Wake::Changed);
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        let t = Instant::now();
        assert_eq!(wait(&w, 0, Some(Duration::from_millis(20))), Wake::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(15));
    }

    /// The calling thread's `/proc` directory.
    fn this_thread() -> std::path::PathBuf {
        let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        std::path::Path::new("/proc").join(link)
    }

    /// Whether the thread at `dir` sleeps in a futex wait on `word`: its
    /// state is `S` and it is inside `futex(2)` with `word`'s address as
    /// the first argument.
    fn waits_on(dir: &std::path::Path, word: &AtomicU32) -> bool {
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        let call = std::fs::read_to_string(dir.join("syscall")).unwrap_or_default();
        let mut f = call.split_whitespace();
        let nr = f.next().and_then(|n| n.parse::<libc::c_long>().ok());
        let arg0 = f
            .next()
            .and_then(|a| usize::from_str_radix(a.trim_start_matches("0x"), 16).ok());
        state == Some('S') && nr == Some(libc::SYS_futex) && arg0 == Some(word.as_ptr() as usize)
    }

    /// The waiter is asleep in the kernel on the word before the wake is
    /// sent; the wake reaches it (it returns `Woken`, not after its
    /// timeout), and the wake counts it.
    #[test]
    fn wake_reaches_a_waiter() {
        const TIMEOUT: Duration = Duration::from_secs(30);
        let w = std::sync::Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            tx.send(this_thread()).unwrap();
            let t = Instant::now();
            let r = wait(&w2, 0, Some(TIMEOUT));
            tx.send(std::path::PathBuf::new()).unwrap();
            (r, t.elapsed())
        });
        let dir = rx.recv().unwrap();
        let asleep = Instant::now();
        while !waits_on(&dir, &w) {
            assert!(
                asleep.elapsed() < Duration::from_secs(10),
                "the waiter never slept in futex(2) on the word"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        w.store(1, Ordering::Release);
        assert_eq!(wake_all(&w), 1, "the wake found no waiter");
        // Bounded: a lost wake fails here, long before the waiter's timeout.
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the waiter did not return within 10 s of the wake");
        let (r, took) = h.join().unwrap();
        assert_eq!(r, Wake::Woken);
        assert!(took < TIMEOUT / 2, "{took:?}");
    }
}
