use std::io;

/// Why a segment operation failed.
///
/// Messages are lowercase, name the segment, and say what to do where there is
/// something to do. The errno that caused a failure is kept where there was one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No segment has that key or name.
    #[error("segment {what} does not exist")]
    NotFound {
        /// The segment, as the user would name it.
        what: String,
    },
    /// Exclusive creation found a segment already there.
    #[error("segment {what} already exists{hint}")]
    Exists {
        /// The segment.
        what: String,
        /// Extra advice, starting with `: ` or empty.
        hint: String,
    },
    /// The caller may not use the segment.
    #[error("permission denied: segment {what} belongs to {owner} with mode {mode:04o}")]
    PermissionDenied {
        /// The segment.
        what: String,
        /// Owner user name (or uid).
        owner: String,
        /// Permission bits.
        mode: u32,
    },
    /// A key, name, size, mode, offset or length that can never work.
    #[error("{0}")]
    Invalid(String),
    /// The machine has no room for a segment of that size.
    #[error("no room for segment {what} of {size} bytes: {reason}")]
    NoSpace {
        /// The segment.
        what: String,
        /// The requested size.
        size: u64,
        /// What ran out.
        reason: String,
    },
    /// The segment is not what the caller expected (another kind, type,
    /// version, architecture or size, or garbage).
    #[error("segment {what} {reason}")]
    Incompatible {
        /// The segment.
        what: String,
        /// What differs, phrased to follow the segment's name.
        reason: String,
    },
    /// The segment has no managed-segment header: another program made
    /// it, or it was made raw. Its bytes can still be read as they are.
    #[error("segment {what} {reason}")]
    Foreign {
        /// The segment.
        what: String,
        /// Why it is not one of ours, phrased to follow the segment's name.
        reason: String,
    },
    /// The segment's creator never marked it ready within the wait.
    #[error(
        "segment {what} is not ready after {waited_ms} ms: its creator may have died while creating it"
    )]
    NotReady {
        /// The segment.
        what: String,
        /// How long the opener waited.
        waited_ms: u64,
    },
    /// A read or write outside the segment, or a typed view at a misaligned
    /// offset.
    #[error("{0}")]
    OutOfBounds(String),
    /// A write, atomic byte access or typed view on a segment attached
    /// read-only.
    #[error("segment {what} is attached read-only: {op} needs a read-write attach")]
    ReadOnly {
        /// The segment.
        what: String,
        /// What was refused: `a write`, `atomic byte access` or `a typed
        /// view`.
        op: &'static str,
    },
    /// The segment belongs to another user, whom this process has not
    /// allowed (see [`allow_owner`](crate::allow_owner)): attaching to it
    /// would trust that user with this process.
    #[error(
        "segment {what} belongs to {owner}, not to you: shmex attaches to another user's segment only if that owner is allowed on purpose"
    )]
    OtherOwner {
        /// The segment.
        what: String,
        /// The owner's name (or `uid N`).
        owner: String,
        /// The owner's uid.
        uid: u32,
    },
    /// Another process held the segment's file locked exclusively for
    /// longer than an attach waits.
    #[error(
        "segment {what} is locked exclusively by another process (still after {waited_ms} ms): try again"
    )]
    Locked {
        /// The segment.
        what: String,
        /// How long the attach waited.
        waited_ms: u64,
    },
    /// The segment shrank under this process.
    #[error(transparent)]
    Truncated(#[from] crate::Truncated),
    /// Any other system call failure.
    #[error("{op} on segment {what} failed: {source}")]
    Os {
        /// The system call.
        op: &'static str,
        /// The segment.
        what: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn os(op: &'static str, what: impl ToString, source: io::Error) -> Self {
        Error::Os {
            op,
            what: what.to_string(),
            source,
        }
    }

    /// The errno behind this error, if a system call caused it.
    #[must_use]
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether this error means the segment does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
