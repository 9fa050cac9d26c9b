//! POSIX shared memory: `shm_open`, `O_TMPFILE` and `linkat`,
//! `posix_fallocate`, `mmap`, `flock` (see shm_open(3), open(2), linkat(2),
//! posix_fallocate(3), mmap(2), flock(2)).
//!
//! A POSIX segment is a file in `/dev/shm`, and any local user can put
//! any kind of file there under any free name: every open here refuses to
//! follow a symbolic link and never blocks (a FIFO would block an open
//! without `O_NONBLOCK` until a writer came), and [`Stat`] says what kind
//! of file it found, for the caller to refuse anything but a regular file.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// Where the kernel keeps POSIX segments (glibc's `shm_open` opens
/// `/dev/shm/NAME`).
const DIR: &str = "/dev/shm";

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}")).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn c_str(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Gives a new segment's file its exact mode (the umask does not narrow
/// it), then reserves all its bytes, so that a full `/dev/shm` fails here
/// rather than with `SIGBUS` on first touch.
fn size_up(fd: &OwnedFd, size: u64, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    if unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = libc::off_t::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: plain syscall on a valid fd; it returns the errno itself.
    let rc = unsafe { libc::posix_fallocate(fd.as_raw_fd(), 0, len) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// `shm_open` with `O_CREAT | O_EXCL`, the shared `flock` taken at once
/// (so that from the moment the name exists a holder is seen), then the
/// exact mode and the whole size reserved. On any failure after creation
/// the name is unlinked again.
pub(crate) fn create(name: &str, size: u64, mode: u32) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let fd = owned(unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::mode_t,
        )
    })?;
    let result = lock_new(&fd).and_then(|()| size_up(&fd, size, mode));
    match result {
        Ok(()) => Ok(fd),
        Err(e) => {
            let _ = unlink(name);
            Err(e)
        }
    }
}

/// Takes the shared lock on a file this process just created: busy only if
/// another process opened it at once and locked it exclusively (`EAGAIN`).
fn lock_new(fd: &OwnedFd) -> io::Result<()> {
    if flock(fd, Lock::Shared)? {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EWOULDBLOCK))
    }
}

/// A new segment file that has no name yet (`O_TMPFILE` in `/dev/shm`),
/// sized, with its mode, and its shared `flock` taken, and the directory it
/// will be linked into by [`publish`]. `Ok(None)` where this kernel or
/// file system cannot make such files: the caller then creates the name at
/// once.
pub(crate) fn create_anonymous(size: u64, mode: u32) -> io::Result<Option<(OwnedFd, OwnedFd)>> {
    let (fd, dir) = match open_anonymous(mode) {
        Ok(pair) => pair,
        Err(e) if unsupported(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    lock_new(&fd)?;
    size_up(&fd, size, mode)?;
    Ok(Some((fd, dir)))
}

/// Errors that say `O_TMPFILE` is not available here.
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT)
    )
}

fn open_anonymous(mode: u32) -> io::Result<(OwnedFd, OwnedFd)> {
    let d = c_str(DIR)?;
    // SAFETY: `d` is a valid NUL-terminated string.
    let dir = owned(unsafe {
        libc::open(
            d.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // The file and its future name must be reached through the same
    // directory descriptor: on a stacked mount, `/dev/shm/NAME` as a path
    // and a file opened through `/dev/shm` can be on different mounts, and
    // `linkat` refuses to link across them.
    // SAFETY: `dir` is an open directory and "." a valid C string.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    Ok((fd, dir))
}

/// Gives the anonymous file `fd` (from [`create_anonymous`]) its name in
/// `dir`, exclusively: `EEXIST` if the name is taken.
pub(crate) fn publish(fd: &OwnedFd, dir: &OwnedFd, name: &str) -> io::Result<()> {
    let from = c_str(&format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    let to = c_str(name)?;
    // SAFETY: valid C strings and descriptors; linking an O_TMPFILE file
    // through its /proc link is what open(2) documents for it.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copies the first `len` bytes of `from` into `to` (both files this
/// process alone writes).
pub(crate) fn copy_contents(from: &OwnedFd, to: &OwnedFd, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let (from, to) = (
        std::fs::File::from(from.try_clone()?),
        std::fs::File::from(to.try_clone()?),
    );
    let mut buf = vec![0u8; 1 << 16];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at).map_or(buf.len(), |l| l.min(buf.len()));
        let n = from.read_at(&mut buf[..want], at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Opens an existing segment without blocking and without following a
/// symbolic link (`ELOOP` for one). The caller checks with [`fstat`] that
/// it is a regular file before using it.
pub(crate) fn open(name: &str, read_only: bool) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let access = if read_only {
        libc::O_RDONLY
    } else {
        libc::O_RDWR
    };
    let flags = access | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated string.
    owned(unsafe { libc::shm_open(c.as_ptr(), flags, 0) })
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

/// What a file in `/dev/shm` is, for anything but a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileType {
    Regular,
    Fifo,
    Symlink,
    Directory,
    Socket,
    Device,
}

impl FileType {
    fn of(mode: libc::mode_t) -> FileType {
        match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::Regular,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::Device,
        }
    }

    /// What the file is, after "is a", for messages; `None` for a regular
    /// file.
    pub(crate) fn describe(self) -> Option<&'static str> {
        match self {
            FileType::Regular => None,
            FileType::Fifo => Some("FIFO"),
            FileType::Symlink => Some("symbolic link"),
            FileType::Directory => Some("directory"),
            FileType::Socket => Some("socket"),
            FileType::Device => Some("device"),
        }
    }
}

/// What `fstat` or `lstat` says about a segment's file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stat {
    pub size: u64,
    pub nlink: u64,
    pub file_type: FileType,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub mode: u32,
    /// Status change time, ns since the epoch.
    pub ctime_ns: i64,
}

impl Stat {
    fn from(st: &libc::stat) -> Stat {
        Stat {
            size: st.st_size as u64,
            nlink: st.st_nlink,
            file_type: FileType::of(st.st_mode),
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
            mode: st.st_mode & 0o777,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        }
    }

    /// Whether `other` is the same file.
    pub(crate) fn same_file(&self, other: &Stat) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

pub(crate) fn fstat(fd: &OwnedFd) -> io::Result<Stat> {
    fstat_raw(fd.as_raw_fd())
}

/// `fstat` of a descriptor some other owner keeps open.
pub(crate) fn fstat_raw(fd: libc::c_int) -> io::Result<Stat> {
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a writable stat buffer; a bad fd gives EBADF.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Stat::from(&st))
}

/// `lstat("/dev/shm/NAME")`: what the name refers to now, without opening
/// it (and without following a symbolic link).
pub(crate) fn lstat(name: &str) -> io::Result<Stat> {
    let c = c_str(&format!("{DIR}/{name}"))?;
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a writable stat buffer.
    if unsafe { libc::lstat(c.as_ptr(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Stat::from(&st))
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

/// How [`flock`] locks. Never blocking: a process that holds an
/// exclusive lock forever must not hang every other.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lock {
    /// Held by every process attached to a segment.
    Shared,
    /// Taken only to prove that nobody holds the shared lock.
    Exclusive,
}

/// `flock(fd, op | LOCK_NB)`: returns `Ok(false)` when the lock is busy.
pub(crate) fn flock(fd: &OwnedFd, lock: Lock) -> io::Result<bool> {
    let op = match lock {
        Lock::Shared => libc::LOCK_SH | libc::LOCK_NB,
        Lock::Exclusive => libc::LOCK_EX | libc::LOCK_NB,
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

/// The names in `/dev/shm`, except glibc's named semaphores, with the kind
/// of file each is (from the directory, without opening anything).
pub(crate) fn list() -> io::Result<Vec<(String, FileType)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(DIR)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with("sem.") {
            continue;
        }
        let Ok(t) = entry.file_type() else { continue };
        use std::os::unix::fs::FileTypeExt;
        let file_type = if t.is_file() {
            FileType::Regular
        } else if t.is_fifo() {
            FileType::Fifo
        } else if t.is_symlink() {
            FileType::Symlink
        } else if t.is_dir() {
            FileType::Directory
        } else if t.is_socket() {
            FileType::Socket
        } else {
            FileType::Device
        };
        out.push((name, file_type));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
