//! How a kernel error, or a file that is no segment, becomes an [`Error`]
//! that names the segment, its owner and what to do.
#![forbid(unsafe_code)]

use std::io;

use super::Segment;
use crate::os::{posix, sysv};
use crate::{Error, SegmentId, user_name};

pub(super) fn check_mode(mode: u32) -> Result<(), Error> {
    if mode & !0o777 != 0 {
        return Err(Error::Invalid(format!(
            "invalid mode {mode:o}: only permission bits (at most 0777) are allowed"
        )));
    }
    Ok(())
}

pub(super) fn no_space(id: &SegmentId, size: u64, reason: impl Into<String>) -> Error {
    Error::NoSpace {
        what: id.to_string(),
        size,
        reason: reason.into(),
    }
}

/// A file under a segment's name that is no segment (a FIFO, a symbolic
/// link, …): refused before anything could block on it.
pub(super) fn not_a_file(id: &SegmentId, what: &str) -> Error {
    Error::Incompatible {
        what: id.to_string(),
        reason: format!(
            "is a {what}, not a shared-memory file: some process put it in /dev/shm; remove it if it should not be there"
        ),
    }
}

impl Segment {
    fn denied(id: &SegmentId) -> Error {
        let (uid, mode) = match id {
            SegmentId::SysV(key) => sysv::list()
                .ok()
                .and_then(|all| all.into_iter().find(|s| s.key == *key))
                .map_or((u32::MAX, 0), |s| (s.uid, s.mode)),
            SegmentId::Posix(name) => posix::lstat(name).map_or((u32::MAX, 0), |s| (s.uid, s.mode)),
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

    pub(super) fn map_open_error(id: &SegmentId, op: &'static str, e: io::Error) -> Error {
        // Whatever the errno (glibc's `shm_open` says EINVAL for a
        // directory), a name that is no regular file is refused as such.
        if let SegmentId::Posix(name) = id
            && let Ok(st) = posix::lstat(name)
            && let Some(what) = st.file_type.describe()
        {
            return not_a_file(id, what);
        }
        match e.raw_os_error() {
            Some(libc::ENOENT) => Error::NotFound {
                what: id.to_string(),
            },
            Some(libc::EACCES | libc::EPERM) => Self::denied(id),
            // O_NOFOLLOW met a symbolic link (that is gone by now).
            Some(libc::ELOOP) => not_a_file(id, "symbolic link"),
            _ => Error::os(op, id, e),
        }
    }

    /// Refuses a segment whose owner this process has not allowed.
    pub(super) fn check_owner(id: &SegmentId, uid: u32) -> Result<(), Error> {
        if crate::owner_allowed(uid) {
            return Ok(());
        }
        let name = user_name(uid);
        let owner = if name.starts_with("uid ") {
            name
        } else {
            format!("user {name} (uid {uid})")
        };
        Err(Error::OtherOwner {
            what: id.to_string(),
            owner,
            uid,
        })
    }

    pub(super) fn shmid_error(shmid: i32, op: &'static str, e: io::Error) -> Error {
        let what = format!("with shmid {shmid}");
        match e.raw_os_error() {
            Some(libc::EINVAL | libc::EIDRM) => Error::NotFound { what },
            Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied {
                what,
                owner: sysv::list()
                    .ok()
                    .and_then(|all| all.into_iter().find(|s| s.shmid == shmid))
                    .map_or_else(|| "another user".into(), |s| user_name(s.uid)),
                mode: 0,
            },
            _ => Error::os(op, what, e),
        }
    }
}
