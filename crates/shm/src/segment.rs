//! One attached segment of either backend.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::os::{posix, sysv};
use crate::{Error, SegmentId, Shared, user_name};

/// How a segment is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read and write.
    ReadWrite,
    /// Read only: enough to read, inspect and list a segment, and all that
    /// a segment of mode `0644` grants to others.
    ReadOnly,
}

#[derive(Debug)]
enum Handle {
    SysV { shmid: i32 },
    Posix { fd: OwnedFd },
}

/// A segment attached to this process: System V or POSIX.
///
/// All access goes through atomics (or through the checked typed views of
/// [`Shared`] types), because another process may write any byte at any
/// time. Dropping it detaches; [`Segment::remove`] removes the segment.
///
/// A POSIX segment opened through this type holds a shared `flock` on its
/// file for as long as it is attached, so that [`remove_stale`](crate::remove_stale)
/// can ask the kernel whether any process still holds it.
#[derive(Debug)]
pub struct Segment {
    id: SegmentId,
    ptr: NonNull<u8>,
    len: usize,
    access: Access,
    handle: Handle,
}

// SAFETY: the mapping is shared memory that stays valid while `self` lives;
// every access through `Segment` is atomic or bounds-checked, so sharing it
// between threads adds nothing that sharing between processes does not.
unsafe impl Send for Segment {}
// SAFETY: as for Send.
unsafe impl Sync for Segment {}

fn check_mode(mode: u32) -> Result<(), Error> {
    if mode & !0o777 != 0 {
        return Err(Error::Invalid(format!(
            "invalid mode {mode:o}: only permission bits (at most 0777) are allowed"
        )));
    }
    Ok(())
}

fn no_space(id: &SegmentId, size: u64, reason: impl Into<String>) -> Error {
    Error::NoSpace {
        what: id.to_string(),
        size,
        reason: reason.into(),
    }
}

impl Segment {
    /// Creates a new segment of `size` bytes, exclusively, with permission
    /// bits `mode` exactly (the umask does not narrow them), zero-filled, and
    /// attaches it read-write.
    ///
    /// # Errors
    ///
    /// [`Error::Exists`] if the key or name is taken; [`Error::Invalid`] for
    /// size 0 or a mode with bits beyond 0777; [`Error::NoSpace`] when the
    /// machine or `/dev/shm` cannot hold it; [`Error::Os`] otherwise.
    pub fn create(id: &SegmentId, size: u64, mode: u32) -> Result<Segment, Error> {
        check_mode(mode)?;
        if size == 0 {
            return Err(Error::Invalid(
                "invalid size 0: a segment holds at least 1 byte".into(),
            ));
        }
        if let Some(total) = crate::total_memory()
            && size > total
        {
            return Err(no_space(
                id,
                size,
                format!("it is larger than this machine's memory ({total} bytes)"),
            ));
        }
        let len =
            usize::try_from(size).map_err(|_| no_space(id, size, "too large for this machine"))?;
        match id {
            SegmentId::SysV(key) => {
                let flags = libc::IPC_CREAT | libc::IPC_EXCL | mode as i32;
                let shmid = sysv::get(*key, len, flags).map_err(|e| match e.raw_os_error() {
                    Some(libc::EEXIST) => Error::Exists {
                        what: id.to_string(),
                        hint: String::new(),
                    },
                    Some(libc::EINVAL) => {
                        no_space(id, size, "larger than the kernel's limit (kernel.shmmax)")
                    }
                    Some(libc::ENOMEM | libc::ENOSPC) => no_space(id, size, e.to_string()),
                    _ => Error::os("shmget", id, e),
                })?;
                let ptr = sysv::attach(shmid, false).map_err(|e| {
                    let _ = sysv::remove(shmid);
                    Error::os("shmat", id, e)
                })?;
                Ok(Segment {
                    id: id.clone(),
                    ptr,
                    len,
                    access: Access::ReadWrite,
                    handle: Handle::SysV { shmid },
                })
            }
            SegmentId::Posix(name) => {
                let fd = posix::create(name, size, mode).map_err(|e| match e.raw_os_error() {
                    Some(libc::EEXIST) => Error::Exists {
                        what: id.to_string(),
                        hint: String::new(),
                    },
                    Some(libc::ENOSPC | libc::EFBIG) => {
                        no_space(id, size, "/dev/shm is full or too small")
                    }
                    Some(libc::EACCES) => Error::PermissionDenied {
                        what: id.to_string(),
                        owner: "the directory /dev/shm".into(),
                        mode: 0,
                    },
                    _ => Error::os("shm_open", id, e),
                })?;
                let setup = (|| {
                    let ptr = posix::map(&fd, len, false).map_err(|e| Error::os("mmap", id, e))?;
                    posix::flock(&fd, posix::Lock::Shared)
                        .map_err(|e| Error::os("flock", id, e))?;
                    Ok(ptr)
                })();
                match setup {
                    Ok(ptr) => Ok(Segment {
                        id: id.clone(),
                        ptr,
                        len,
                        access: Access::ReadWrite,
                        handle: Handle::Posix { fd },
                    }),
                    Err(e) => {
                        let _ = posix::unlink(name);
                        Err(e)
                    }
                }
            }
        }
    }

    /// Opens and attaches an existing segment.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is none; [`Error::PermissionDenied`]
    /// naming the owner and mode if this user may not use it;
    /// [`Error::Incompatible`] for an empty POSIX segment; [`Error::Os`]
    /// otherwise.
    pub fn open(id: &SegmentId, access: Access) -> Result<Segment, Error> {
        Self::open_inner(id, access, true)
    }

    /// Opens without the liveness lock: for observers (`ls`, `inspect`) that
    /// must not count as holders.
    pub(crate) fn open_observer(id: &SegmentId) -> Result<Segment, Error> {
        Self::open_inner(id, Access::ReadOnly, false)
    }

    fn denied(id: &SegmentId) -> Error {
        let (uid, mode) = match id {
            SegmentId::SysV(key) => sysv::list()
                .ok()
                .and_then(|all| all.into_iter().find(|s| s.key == *key))
                .map_or((u32::MAX, 0), |s| (s.uid, s.mode)),
            SegmentId::Posix(name) => {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(format!("/dev/shm/{name}"))
                    .map_or((u32::MAX, 0), |m| (m.uid(), m.mode() & 0o777))
            }
        };
        let owner = if uid == u32::MAX {
            "another user".to_owned()
        } else {
            user_name(uid)
        };
        Error::PermissionDenied {
            what: id.to_string(),
            owner,
            mode,
        }
    }

    fn map_open_error(id: &SegmentId, op: &'static str, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound {
                what: id.to_string(),
            },
            Some(libc::EACCES | libc::EPERM) => Self::denied(id),
            _ => Error::os(op, id, e),
        }
    }

    fn open_inner(id: &SegmentId, access: Access, lock: bool) -> Result<Segment, Error> {
        let read_only = access == Access::ReadOnly;
        match id {
            SegmentId::SysV(key) => {
                let shmid =
                    sysv::get(*key, 0, 0).map_err(|e| Self::map_open_error(id, "shmget", e))?;
                let ptr = sysv::attach(shmid, read_only)
                    .map_err(|e| Self::map_open_error(id, "shmat", e))?;
                let len = match sysv::stat(shmid) {
                    Ok(st) => st.size as usize,
                    Err(e) => {
                        // SAFETY: `ptr` was just attached and is not used again.
                        unsafe { sysv::detach(ptr) };
                        return Err(Self::map_open_error(id, "shmctl(IPC_STAT)", e));
                    }
                };
                Ok(Segment {
                    id: id.clone(),
                    ptr,
                    len,
                    access,
                    handle: Handle::SysV { shmid },
                })
            }
            SegmentId::Posix(name) => {
                let fd = posix::open(name, read_only)
                    .map_err(|e| Self::map_open_error(id, "shm_open", e))?;
                if lock {
                    // Waits only while `rm --stale` holds the exclusive lock
                    // for the instant it takes to unlink.
                    posix::flock(&fd, posix::Lock::Shared)
                        .map_err(|e| Error::os("flock", id, e))?;
                }
                let st = posix::fstat(&fd).map_err(|e| Error::os("fstat", id, e))?;
                if st.nlink == 0 {
                    return Err(Error::NotFound {
                        what: id.to_string(),
                    });
                }
                if st.size == 0 {
                    return Err(Error::Incompatible {
                        what: id.to_string(),
                        reason:
                            "is empty (0 bytes): its creator has not sized it yet, or died first"
                                .into(),
                    });
                }
                let len = usize::try_from(st.size)
                    .map_err(|_| Error::Invalid("segment too large".into()))?;
                let ptr = posix::map(&fd, len, read_only).map_err(|e| Error::os("mmap", id, e))?;
                Ok(Segment {
                    id: id.clone(),
                    ptr,
                    len,
                    access,
                    handle: Handle::Posix { fd },
                })
            }
        }
    }

    /// Removes the segment named by `id`. Processes still attached keep
    /// using it until they detach; then the kernel frees it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is none; [`Error::PermissionDenied`] if
    /// this user may not remove it.
    pub fn remove(id: &SegmentId) -> Result<(), Error> {
        match id {
            SegmentId::SysV(key) => {
                let shmid =
                    sysv::get(*key, 0, 0).map_err(|e| Self::map_open_error(id, "shmget", e))?;
                sysv::remove(shmid).map_err(|e| Self::map_open_error(id, "shmctl(IPC_RMID)", e))
            }
            SegmentId::Posix(name) => {
                posix::unlink(name).map_err(|e| Self::map_open_error(id, "shm_unlink", e))
            }
        }
    }

    /// Removes this very segment (by its System V id, not its key, so a
    /// newer segment that reuses the key is never hit). Idempotent: a segment
    /// already removed is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] or [`Error::Os`] from the kernel.
    pub fn remove_this(&self) -> Result<(), Error> {
        let r = match &self.handle {
            Handle::SysV { shmid } => sysv::remove(*shmid),
            Handle::Posix { fd } => {
                // Unlink only if the name still refers to our file.
                let SegmentId::Posix(name) = &self.id else {
                    unreachable!()
                };
                match (
                    posix::fstat(fd),
                    std::fs::metadata(format!("/dev/shm/{name}")),
                ) {
                    (Ok(st), Ok(_)) if st.nlink == 0 => return Ok(()),
                    (_, Err(_)) => return Ok(()),
                    _ => posix::unlink(name),
                }
            }
        };
        match r {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::EINVAL | libc::EIDRM)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(Self::map_open_error(&self.id, "remove", e)),
        }
    }

    /// Whether this segment has been removed (its name unlinked, or its
    /// System V id marked for destruction) while this process is still
    /// attached to it: whatever is written to it now reaches nobody who
    /// opens it by name later. One system call.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the kernel cannot say.
    pub fn is_removed(&self) -> Result<bool, Error> {
        match &self.handle {
            // Once IPC_RMID marks it for destruction the kernel sets its
            // key to IPC_PRIVATE; a segment already gone is removed too.
            Handle::SysV { shmid } => match sysv::stat(*shmid) {
                Ok(st) => Ok(st.key == libc::IPC_PRIVATE),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EIDRM | libc::EINVAL)) => Ok(true),
                Err(e) => Err(Error::os("shmctl(IPC_STAT)", &self.id, e)),
            },
            Handle::Posix { fd } => posix::fstat(fd)
                .map(|st| st.nlink == 0)
                .map_err(|e| Error::os("fstat", &self.id, e)),
        }
    }

    /// The key or name.
    #[must_use]
    pub fn id(&self) -> &SegmentId {
        &self.id
    }

    /// Size in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: segments hold at least one byte.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How it is attached.
    #[must_use]
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether some *other* process holds this POSIX segment (its shared
    /// flock), for stale detection. `None` for System V, or when this
    /// handle is itself a holder.
    pub(crate) fn posix_unheld(&self) -> Option<bool> {
        match &self.handle {
            Handle::Posix { fd } => posix::flock(fd, posix::Lock::ExclusiveNonBlocking).ok(),
            Handle::SysV { .. } => None,
        }
    }

    /// The System V segment id (`shmid`), for System V segments.
    #[must_use]
    pub fn sysv_id(&self) -> Option<i32> {
        match &self.handle {
            Handle::SysV { shmid } => Some(*shmid),
            Handle::Posix { .. } => None,
        }
    }

    /// The whole segment as atomic bytes, for a read-write attach.
    ///
    /// # Errors
    ///
    /// [`Error::ReadOnly`] for a read-only attach: a store through the
    /// slice would fault. Use [`Segment::read_at`] there.
    pub fn bytes(&self) -> Result<&[AtomicU8], Error> {
        if self.access == Access::ReadOnly {
            return Err(self.read_only("atomic byte access"));
        }
        Ok(self.atomic_bytes())
    }

    /// Every byte as an atomic, whatever the access: only loads may go
    /// through it on a read-only attach.
    fn atomic_bytes(&self) -> &[AtomicU8] {
        // SAFETY: the mapping is `len` bytes, valid and aligned for u8 while
        // `self` lives; AtomicU8 has u8's layout and accepts every value, and
        // concurrent writes by other processes are atomic byte accesses.
        // Atomic loads on a read-only mapping are allowed; the callers that
        // store (`write_at`, `bytes`) refuse read-only attaches first.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU8>(), self.len) }
    }

    fn read_only(&self, op: &'static str) -> Error {
        Error::ReadOnly {
            what: self.id.to_string(),
            op,
        }
    }

    fn range(&self, offset: usize, len: usize) -> Result<std::ops::Range<usize>, Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(offset..end),
            _ => Err(Error::OutOfBounds(format!(
                "offset {offset} + length {len} is past the end of segment {} ({} bytes)",
                self.id, self.len
            ))),
        }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if the range passes the end.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        let r = self.range(offset, buf.len())?;
        for (dst, src) in buf.iter_mut().zip(&self.atomic_bytes()[r]) {
            *dst = src.load(Ordering::Relaxed);
        }
        std::sync::atomic::fence(Ordering::Acquire);
        Ok(())
    }

    /// Copies `data` to `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if the range passes the end;
    /// [`Error::ReadOnly`] if the segment is attached read-only.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        if self.access == Access::ReadOnly {
            return Err(self.read_only("a write"));
        }
        let r = self.range(offset, data.len())?;
        std::sync::atomic::fence(Ordering::Release);
        for (dst, src) in self.atomic_bytes()[r].iter().zip(data) {
            dst.store(*src, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A typed view of a [`Shared`] value at `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if it does not fit or is misaligned;
    /// [`Error::ReadOnly`] if the segment is attached read-only (a typed
    /// view could store into it).
    pub fn view<T: Shared>(&self, offset: usize) -> Result<&T, Error> {
        Ok(&self.view_slice::<T>(offset, 1)?[0])
    }

    /// A typed view of `count` consecutive [`Shared`] values at `offset`.
    ///
    /// # Errors
    ///
    /// As for [`Segment::view`].
    pub fn view_slice<T: Shared>(&self, offset: usize, count: usize) -> Result<&[T], Error> {
        if self.access == Access::ReadOnly {
            return Err(self.read_only("a typed view"));
        }
        let bytes = count.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
            Error::OutOfBounds(format!("{count} elements overflow the address space"))
        })?;
        let r = self.range(offset, bytes)?;
        let addr = self.ptr.as_ptr().wrapping_add(r.start);
        if addr.align_offset(std::mem::align_of::<T>()) != 0 {
            return Err(Error::OutOfBounds(format!(
                "offset {offset} of segment {} is not aligned for {}",
                self.id,
                std::any::type_name::<T>()
            )));
        }
        // SAFETY: the range is inside the mapping (checked), the address is
        // aligned for T (checked), T accepts every bit pattern and is only
        // mutated through atomics (T: Shared), and the mapping outlives the
        // returned borrow of `self`.
        Ok(unsafe { std::slice::from_raw_parts(addr.cast::<T>(), count) })
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        match &self.handle {
            // SAFETY: `ptr` came from shmat in `create`/`open` and no borrow
            // of the mapping outlives `self`.
            Handle::SysV { .. } => unsafe { sysv::detach(self.ptr) },
            // SAFETY: `ptr`/`len` came from one mmap and no borrow of the
            // mapping outlives `self`. The fd (and its flock) closes after.
            Handle::Posix { .. } => unsafe { posix::unmap(self.ptr, self.len) },
        }
    }
}
