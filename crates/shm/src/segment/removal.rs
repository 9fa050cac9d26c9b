//! Removing segments (by key or name, by System V id, or this very one),
//! and asking whether one was removed under its users.
#![forbid(unsafe_code)]

use super::{Handle, Segment};
use crate::os::{posix, sysv};
use crate::{Error, SegmentId};

impl Segment {
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

    /// The key of the System V segment with id `shmid` (0 for one made
    /// `IPC_PRIVATE`), as `ipcs -m` lists them.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if no segment has that id;
    /// [`Error::PermissionDenied`] if this user may not read it.
    pub fn sysv_key_of(shmid: i32) -> Result<i32, Error> {
        sysv::stat(shmid)
            .map(|s| s.key)
            .map_err(|e| Self::shmid_error(shmid, "shmctl(IPC_STAT)", e))
    }

    /// Removes the System V segment with id `shmid`, as `ipcrm -m` does
    /// (also one made `IPC_PRIVATE`, which no key names).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if no segment has that id;
    /// [`Error::PermissionDenied`] if this user may not remove it.
    pub fn remove_sysv_id(shmid: i32) -> Result<(), Error> {
        sysv::remove(shmid).map_err(|e| Self::shmid_error(shmid, "shmctl(IPC_RMID)", e))
    }

    /// Removes this very segment (by its System V id, not its key, so a
    /// newer segment that reuses the key is never hit; for POSIX, only if
    /// its name still refers to this file). Idempotent: a segment already
    /// removed is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] or [`Error::Os`] from the kernel.
    pub fn remove_this(&self) -> Result<(), Error> {
        let r = match &self.handle {
            Handle::SysV { shmid } => sysv::remove(*shmid),
            Handle::Posix {
                unnamed: Some(_), ..
            } => return Ok(()),
            Handle::Posix { fd, unnamed: None } => {
                let SegmentId::Posix(name) = &self.id else {
                    unreachable!("a POSIX handle has a POSIX name")
                };
                match (posix::fstat(fd), posix::lstat(name)) {
                    (Ok(mine), Ok(named)) if mine.same_file(&named) => posix::unlink(name),
                    _ => return Ok(()),
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
            Handle::Posix { fd, .. } => posix::fstat(fd)
                .map(|st| st.nlink == 0)
                .map_err(|e| Error::os("fstat", &self.id, e)),
        }
    }
}
