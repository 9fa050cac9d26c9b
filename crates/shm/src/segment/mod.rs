//! One attached segment of either backend.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::os::{posix, sysv};
use crate::shrink::Watch;
use crate::{Error, SegmentId, Shared, Truncated};

mod errors;
mod removal;
#[cfg(test)]
mod tests;

use errors::{check_mode, no_space, not_a_file};

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
    SysV {
        shmid: i32,
    },
    Posix {
        fd: OwnedFd,
        /// Until [`Segment::publish`]: the directory the file is to be
        /// linked into (the file has no name yet).
        unnamed: Option<OwnedFd>,
    },
}

/// A segment attached to this process: System V or POSIX.
///
/// All access goes through atomics (or through the checked typed views of
/// [`Shared`] types), because another process may write any byte at any
/// time. Dropping it detaches; [`Segment::remove`] removes the segment.
///
/// A POSIX segment opened through this type holds a shared `flock` on its
/// file for as long as it is attached, so that [`remove_stale`](crate::remove_stale)
/// can ask the kernel whether any process still holds it. Another process
/// may also truncate its file: the mapping then reads zeros instead of
/// killing this process with `SIGBUS`, and [`Segment::check_intact`] says
/// so.
#[derive(Debug)]
pub struct Segment {
    id: SegmentId,
    ptr: NonNull<u8>,
    len: usize,
    access: Access,
    handle: Handle,
    /// The POSIX mapping's entry in the `SIGBUS` handler's table.
    watch: Option<Watch>,
}

// SAFETY: the mapping is shared memory that stays valid while `self` lives;
// every access through `Segment` is atomic or bounds-checked, so sharing it
// between threads adds nothing that sharing between processes does not.
unsafe impl Send for Segment {}
// SAFETY: as for Send.
unsafe impl Sync for Segment {}

/// How long an attach waits for a POSIX segment's file to be free of an
/// exclusive `flock` (which `remove_stale` holds for an instant).
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why an opener attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// To use the segment: holds the liveness lock, and only if its owner
    /// is allowed.
    Attach,
    /// To read its header for a listing: no lock, any owner.
    Observe,
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
        Self::create_inner(id, size, mode, false)
    }

    /// As [`Segment::create`], but a POSIX segment gets its name only when
    /// [`Segment::publish`] is called: until then no other process can
    /// find it, and if this one dies first, nothing is left behind. A
    /// System V segment (whose key cannot be given later), or a POSIX one
    /// where the kernel cannot make unnamed files, is named at once, and
    /// `publish` does nothing.
    pub(crate) fn create_unnamed(id: &SegmentId, size: u64, mode: u32) -> Result<Segment, Error> {
        Self::create_inner(id, size, mode, true)
    }

    fn create_inner(id: &SegmentId, size: u64, mode: u32, unnamed: bool) -> Result<Segment, Error> {
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
                    watch: None,
                })
            }
            SegmentId::Posix(name) => {
                let create_error = |e: io::Error| match e.raw_os_error() {
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
                };
                let anonymous = if unnamed {
                    posix::create_anonymous(size, mode).map_err(create_error)?
                } else {
                    None
                };
                let (fd, unnamed) = match anonymous {
                    Some((fd, dir)) => (fd, Some(dir)),
                    None => (posix::create(name, size, mode).map_err(create_error)?, None),
                };
                let named = unnamed.is_none();
                let handle = Handle::Posix { fd, unnamed };
                match Self::map_posix(id, handle, len, Access::ReadWrite, Purpose::Attach) {
                    Ok(seg) => Ok(seg),
                    Err(e) => {
                        if named {
                            let _ = posix::unlink(name);
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    /// Maps the POSIX segment open as `handle`, and enters the mapping in
    /// the `SIGBUS` handler's table.
    fn map_posix(
        id: &SegmentId,
        handle: Handle,
        len: usize,
        access: Access,
        purpose: Purpose,
    ) -> Result<Segment, Error> {
        let Handle::Posix { fd, .. } = &handle else {
            unreachable!("a POSIX segment has a POSIX handle")
        };
        let read_only = access == Access::ReadOnly;
        let ptr = posix::map(fd, len, read_only).map_err(|e| Error::os("mmap", id, e))?;
        let mut seg = Segment {
            id: id.clone(),
            ptr,
            len,
            access,
            watch: None,
            handle,
        };
        // On error, dropping `seg` unmaps it.
        let Handle::Posix { fd, .. } = &seg.handle else {
            unreachable!()
        };
        seg.watch = Some(Watch::new(
            id,
            fd.as_raw_fd(),
            (ptr.as_ptr() as usize, len),
            !read_only,
            purpose == Purpose::Attach,
        )?);
        Ok(seg)
    }

    /// Gives a segment from [`Segment::create_unnamed`] its name,
    /// exclusively.
    ///
    /// # Errors
    ///
    /// [`Error::Exists`] if another process took the name meanwhile (this
    /// segment then stays unnamed, and goes away when dropped).
    pub(crate) fn publish(&mut self) -> Result<(), Error> {
        let Handle::Posix { fd, unnamed } = &mut self.handle else {
            return Ok(());
        };
        let (Some(dir), SegmentId::Posix(name)) = (unnamed.as_ref(), &self.id) else {
            return Ok(());
        };
        match posix::publish(fd, dir, name) {
            Ok(()) => {
                *unnamed = None;
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(Error::Exists {
                what: self.id.to_string(),
                hint: String::new(),
            }),
            // Linking refused (no /proc, a stacked mount, a security
            // module): create the name as before and move the bytes there.
            Err(_) => self.publish_by_copy(),
        }
    }

    /// Gives an unnamed segment its name by creating the name exclusively
    /// and copying the bytes into it, then mapping that file instead.
    fn publish_by_copy(&mut self) -> Result<(), Error> {
        let (Handle::Posix { fd: old, .. }, SegmentId::Posix(name)) = (&self.handle, &self.id)
        else {
            return Ok(());
        };
        let st = posix::fstat(old).map_err(|e| Error::os("fstat", &self.id, e))?;
        let fd =
            posix::create(name, self.len as u64, st.mode).map_err(|e| match e.raw_os_error() {
                Some(libc::EEXIST) => Error::Exists {
                    what: self.id.to_string(),
                    hint: String::new(),
                },
                _ => Error::os("shm_open", &self.id, e),
            })?;
        let moved = posix::copy_contents(old, &fd, self.len as u64)
            .map_err(|e| Error::os("copy", &self.id, e))
            .and_then(|()| {
                let handle = Handle::Posix { fd, unnamed: None };
                Self::map_posix(&self.id, handle, self.len, self.access, Purpose::Attach)
            });
        match moved {
            // The old mapping and file go with the old value.
            Ok(named) => {
                *self = named;
                Ok(())
            }
            Err(e) => {
                let _ = posix::unlink(name);
                Err(e)
            }
        }
    }

    /// Opens and attaches an existing segment.
    ///
    /// A POSIX segment is opened without following a symbolic link and
    /// without blocking, and anything but a regular file is refused. A
    /// segment owned by another user is refused unless that owner was
    /// allowed with [`allow_owner`](crate::allow_owner).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is none; [`Error::PermissionDenied`]
    /// naming the owner and mode if this user may not use it;
    /// [`Error::OtherOwner`] for another user's segment;
    /// [`Error::Incompatible`] for an empty POSIX segment or a file that is
    /// no segment (a FIFO, a symbolic link, …); [`Error::Locked`] if
    /// another process keeps its file locked exclusively; [`Error::Os`]
    /// otherwise.
    pub fn open(id: &SegmentId, access: Access) -> Result<Segment, Error> {
        Self::open_inner(id, access, Purpose::Attach)
    }

    /// Opens without the liveness lock and whoever owns it: for observers
    /// (`ls`, `inspect`) that must not count as holders.
    pub(crate) fn open_observer(id: &SegmentId) -> Result<Segment, Error> {
        Self::open_inner(id, Access::ReadOnly, Purpose::Observe)
    }

    fn open_inner(id: &SegmentId, access: Access, purpose: Purpose) -> Result<Segment, Error> {
        let read_only = access == Access::ReadOnly;
        match id {
            SegmentId::SysV(key) => {
                let shmid =
                    sysv::get(*key, 0, 0).map_err(|e| Self::map_open_error(id, "shmget", e))?;
                let st = sysv::stat(shmid)
                    .map_err(|e| Self::map_open_error(id, "shmctl(IPC_STAT)", e))?;
                if purpose == Purpose::Attach {
                    Self::check_owner(id, st.uid)?;
                }
                let ptr = sysv::attach(shmid, read_only)
                    .map_err(|e| Self::map_open_error(id, "shmat", e))?;
                Ok(Segment {
                    id: id.clone(),
                    ptr,
                    len: st.size as usize,
                    access,
                    handle: Handle::SysV { shmid },
                    watch: None,
                })
            }
            SegmentId::Posix(name) => {
                let fd = posix::open(name, read_only)
                    .map_err(|e| Self::map_open_error(id, "shm_open", e))?;
                let st = posix::fstat(&fd).map_err(|e| Error::os("fstat", id, e))?;
                if let Some(what) = st.file_type.describe() {
                    return Err(not_a_file(id, what));
                }
                let st = if purpose == Purpose::Attach {
                    Self::check_owner(id, st.uid)?;
                    lock_shared(id, &fd)?;
                    // It may have been removed while this waited for the lock.
                    posix::fstat(&fd).map_err(|e| Error::os("fstat", id, e))?
                } else {
                    st
                };
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
                let handle = Handle::Posix { fd, unnamed: None };
                Self::map_posix(id, handle, len, access, purpose)
            }
        }
    }

    /// Whether this segment still has all the bytes it was mapped with:
    /// `Err` once another process truncated its file under this process
    /// (the mapping then reads zeros). One atomic load; System V segments
    /// cannot shrink.
    ///
    /// # Errors
    ///
    /// [`Truncated`] naming the segment and its size now.
    #[inline]
    pub fn check_intact(&self) -> Result<(), Truncated> {
        match &self.watch {
            Some(w) => w.check(),
            None => Ok(()),
        }
    }

    /// As [`Segment::check_intact`], after asking the kernel the file's
    /// size (one `fstat`): finds a truncation before any access faults on
    /// it, for a side that waits and touches only the pages that are left.
    ///
    /// # Errors
    ///
    /// [`Truncated`] naming the segment and its size now.
    pub fn verify_intact(&self) -> Result<(), Truncated> {
        let (Some(w), Handle::Posix { fd, .. }) = (&self.watch, &self.handle) else {
            return Ok(());
        };
        if posix::fstat(fd).is_ok_and(|s| s.size < self.len as u64) {
            w.mark_lost();
        }
        w.check()
    }

    /// Whether `id` names an empty regular POSIX file (one whose creator
    /// has not sized it yet, or died first).
    pub(crate) fn posix_empty(id: &SegmentId) -> bool {
        match id {
            SegmentId::Posix(name) => posix::lstat(name)
                .is_ok_and(|s| s.file_type == posix::FileType::Regular && s.size == 0),
            SegmentId::SysV(_) => false,
        }
    }

    /// The POSIX file's identity and state now, as `fstat` gives them.
    pub(crate) fn posix_stat(&self) -> Option<posix::Stat> {
        match &self.handle {
            Handle::Posix { fd, .. } => posix::fstat(fd).ok(),
            Handle::SysV { .. } => None,
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
            Handle::Posix { fd, .. } => posix::flock(fd, posix::Lock::Exclusive).ok(),
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
        // Out of the SIGBUS handler's table before the range is unmapped
        // (and could be mapped again by something else).
        drop(self.watch.take());
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

/// Takes the shared liveness lock on a POSIX segment's file, waiting at
/// most [`LOCK_WAIT`] while another process holds it exclusively.
fn lock_shared(id: &SegmentId, fd: &OwnedFd) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        if posix::flock(fd, posix::Lock::Shared).map_err(|e| Error::os("flock", id, e))? {
            return Ok(());
        }
        if start.elapsed() >= LOCK_WAIT {
            return Err(Error::Locked {
                what: id.to_string(),
                waited_ms: start.elapsed().as_millis() as u64,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
