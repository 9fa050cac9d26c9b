//! POSIX shared memory: `shm_open`, `posix_fallocate`, `mmap`, `flock`
//! (see shm_open(3), posix_fallocate(3), mmap(2), flock(2)).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}")).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `shm_open` with `O_CREAT | O_EXCL`, then the exact mode (the umask does
/// not narrow it) and `posix_fallocate` of the whole size, so that a full
/// `/dev/shm` fails here rather than with `SIGBUS` on first touch. On any
/// failure after creation the name is unlinked again.
pub(crate) fn create(name: &str, size: u64, mode: u32) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let fd = unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            mode as libc::mode_t,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let result = (|| {
        // SAFETY: plain syscall on a valid fd.
        if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let len =
            libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: plain syscall on a valid fd; it returns the errno itself.
        let rc = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(fd),
        Err(e) => {
            let _ = unlink(name);
            Err(e)
        }
    }
}

/// `shm_open` of an existing segment.
pub(crate) fn open(name: &str, read_only: bool) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let flags = if read_only {
        libc::O_RDONLY
    } else {
        libc::O_RDWR
    };
    // SAFETY: `c` is a valid NUL-terminated string.
    let fd = unsafe { libc::shm_open(c.as_ptr(), flags | libc::O_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `shm_unlink`.
pub(crate) fn unlink(name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    if unsafe { libc::shm_unlink(c.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Size and link count of an open segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    pub size: u64,
    pub nlink: u64,
}

pub(crate) fn fstat(fd: &OwnedFd) -> io::Result<Stat> {
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and a writable stat buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Stat {
        size: st.st_size as u64,
        nlink: st.st_nlink,
    })
}

/// `mmap(NULL, len, …, MAP_SHARED, fd, 0)`.
pub(crate) fn map(fd: &OwnedFd, len: usize, read_only: bool) -> io::Result<NonNull<u8>> {
    let prot = if read_only {
        libc::PROT_READ
    } else {
        libc::PROT_READ | libc::PROT_WRITE
    };
    // SAFETY: a null hint lets the kernel choose; the result is checked
    // against MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// `munmap`.
///
/// # Safety
///
/// `addr` and `len` came from one [`map`] call and the mapping is not used
/// after this call.
pub(crate) unsafe fn unmap(addr: NonNull<u8>, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { libc::munmap(addr.as_ptr().cast(), len) };
}

/// How [`flock`] locks.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lock {
    /// Held by every process attached to a segment.
    Shared,
    /// Taken only to prove that nobody holds the shared lock.
    ExclusiveNonBlocking,
}

/// `flock(fd, op)`: returns `Ok(false)` when a non-blocking lock is busy.
pub(crate) fn flock(fd: &OwnedFd, lock: Lock) -> io::Result<bool> {
    let op = match lock {
        Lock::Shared => libc::LOCK_SH,
        Lock::ExclusiveNonBlocking => libc::LOCK_EX | libc::LOCK_NB,
    };
    loop {
        // SAFETY: plain syscall on a valid fd.
        if unsafe { libc::flock(fd.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// The names in `/dev/shm`, except glibc's named semaphores.
pub(crate) fn list() -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with("sem.") || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        out.push(name);
    }
    out.sort();
    Ok(out)
}
