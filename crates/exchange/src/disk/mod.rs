//! The durable journal on disk: the truth after a reboot.
//!
//! Shared memory is the fast copy of the books; this module keeps the
//! complete history in a directory of its own, and rebuilds the books from
//! it.
//!
//! ```text
//! $XDG_STATE_HOME/shmex/<exchange>/     mode 0700, owned by the user
//!   identity.toml                       exchange id, segment, capacities…
//!   journal-<first_seq:020>.log         append-only record files, 0600
//!   checkpoint-<seq:020>.ckpt           the books after record `seq`
//! ```
//!
//! * [`record`]: a [`DiskRecord`] and its checksummed frame.
//! * [`dir`]: the directory ([`JournalDir`]): created and opened only if
//!   it is a real directory of the user's, not writable by others, holding
//!   the expected exchange; every file in it is opened relative to it,
//!   without following symbolic links.
//! * [`file`](mod@file): a journal file ([`JournalFile`]): header, writes at an
//!   offset, `fdatasync`, truncation, rotation.
//! * [`scan`]: reads every record in order ([`Scanner`]), and tells a torn
//!   last write ([`Torn`], cut off by recovery) from corruption
//!   ([`DiskError::Corrupt`], which stops it); [`Filter`] for the journal
//!   command.
//! * [`checkpoint`]: the books after a sequence number, written atomically;
//!   the newest two are kept (and the genesis one).
//! * [`replay`]: applies records to a [`State`](crate::State)
//!   ([`apply`]), and rebuilds the books from the newest checkpoint and the
//!   journal ([`rebuild`]).
//!
//! Nothing here touches shared memory: the engine decides what to write
//! and when, and publishes what is durable.
//!
//! # Examples
//!
//! ```
//! use exchange::disk::{self, Balances, DiskRecord, Identity, JournalDir, Name, HEADER_LEN};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! let (config, _notes) = exchange::Config::builtin();
//! let genesis = config.into_state()?;
//! let identity = Identity {
//!     exchange_id: disk::new_exchange_id()?,
//!     segment: shm::SegmentId::posix("shmex-doc")?,
//!     created_ns: 0,
//!     capacity: genesis.capacity,
//!     mode: 0o600,
//!     opening: genesis.opening,
//! };
//! // `init`: the directory, the genesis checkpoint, the first file.
//! let dir = JournalDir::create(&tmp.path().join("journal"), &identity, false)?;
//! dir.write_checkpoint(&genesis, 0)?;
//! let file = dir.create_journal(genesis.next_seq, 0)?;
//! // A flush: alice's account is opened, and the record made durable.
//! let open = DiskRecord {
//!     seq: 1,
//!     exchange_id: identity.exchange_id,
//!     time_ns: 0,
//!     pid: std::process::id(),
//!     op: exchange::Op::Open,
//!     undone: None,
//!     undone_seq: 0,
//!     undone_pid: 0,
//!     code: genesis.home().code,
//!     decimals: genesis.home().decimals,
//!     account: Name::new("alice")?,
//!     amount: genesis.opening,
//!     rate: 0,
//!     buy_rate: 0,
//!     total: genesis.opening,
//!     balances: Some(Balances { home: genesis.opening, code: genesis.opening }),
//! };
//! let mut batch = Vec::new();
//! disk::encode_batch([&open], &mut batch)?;
//! let end = file.append(HEADER_LEN, &batch)?;
//! // `recover`: the books from the newest checkpoint and the journal.
//! let dir = JournalDir::open(dir.path(), Some(identity.exchange_id))?;
//! let rebuilt = disk::rebuild(&dir, false)?;
//! assert_eq!(rebuilt.state.accounts[0].name, "alice");
//! assert_eq!(rebuilt.tail.unwrap().offset, end);
//! assert!(rebuilt.state.check().is_empty());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

use std::io;
use std::path::PathBuf;

pub mod checkpoint;
pub mod dir;
pub mod file;
mod header;
pub mod record;
pub mod replay;
pub mod scan;

pub use checkpoint::{Checkpoint, CheckpointRead};
pub use dir::{IDENTITY, Identity, JournalDir, default_dir, dir_name, new_exchange_id};
pub use file::{DEFAULT_ROTATE_BYTES, HEADER_LEN, JournalFile};
pub use record::{Balances, Decoded, DiskRecord, Name, RecordError, encode_batch};
pub use replay::{Rebuilt, ReplayError, apply, rebuild};
pub use scan::{Corruption, Filter, Scanned, Scanner, Tail, Torn};

/// The version of the journal format as a whole (directory, files,
/// checkpoints), kept in the identity file.
pub const FORMAT_VERSION: u32 = 1;

/// Why the journal directory or one of its files cannot be used.
///
/// Every message names the path, and the offset where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// A system call failed.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `open` or `fdatasync`.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error, with its errno.
        source: io::Error,
    },
    /// The directory or a file that must be there is not.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// A symbolic link where a directory or file must be.
    #[error("{} is a symbolic link: the journal follows none", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// Not a directory where one must be.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Not a regular file where one must be.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Owned by another user.
    #[error("{} belongs to uid {owner}, not to this user (uid {euid})", path.display())]
    Owner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The effective uid.
        euid: u32,
    },
    /// Writable by group or others.
    #[error("{} is writable by others (mode {mode:04o}): run `chmod go-w {}`", path.display(), path.display())]
    Writable {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A directory to create a journal in holds something else.
    #[error("{} is not empty and holds no shmex journal ({entry:?} is there): choose another directory", path.display())]
    NotOurs {
        /// The directory.
        path: PathBuf,
        /// One entry that is not the journal's.
        entry: String,
    },
    /// A directory to create a journal in holds another exchange's.
    #[error("{} already holds the journal of exchange {exchange_id:#018x}: remove it with `shmex exchange destroy --purge`, or choose another directory", path.display())]
    Occupied {
        /// The directory.
        path: PathBuf,
        /// The exchange whose journal is there.
        exchange_id: u64,
    },
    /// The identity file is missing, unreadable or of another version.
    #[error("bad journal identity {}: {reason}", path.display())]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A directory or file of another exchange.
    #[error("{} belongs to exchange {found:#018x}, not to exchange {expected:#018x}", path.display())]
    Foreign {
        /// The path.
        path: PathBuf,
        /// The exchange expected.
        expected: u64,
        /// The exchange found.
        found: u64,
    },
    /// A journal file's header is not valid.
    #[error("bad journal file header in {}: {reason}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A journal file with records where a new one was to be made.
    #[error("{} already holds records: refusing to overwrite them", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// An offset a journal file cannot be written or cut at.
    #[error("offset {offset} is inside the header of {}", path.display())]
    Offset {
        /// The file.
        path: PathBuf,
        /// The offset.
        offset: u64,
    },
    /// A bad record with valid records after it: not a torn write.
    #[error("corrupt journal record in {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The journal file.
        file: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Records missing between two places.
    #[error("the journal has a gap in {}: record {found} where {expected} was expected", file.display())]
    Gap {
        /// The journal file where the gap shows.
        file: PathBuf,
        /// The sequence number expected.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A checkpoint file is not valid.
    #[error("bad checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No checkpoint can be read.
    #[error("no valid checkpoint in {}{}", path.display(), if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join("; ")) })]
    NoCheckpoint {
        /// The directory.
        path: PathBuf,
        /// Why each checkpoint there was refused.
        reasons: Vec<String>,
    },
    /// A record that cannot be applied to the books.
    #[error("cannot replay the journal record in {} at offset {offset}: {source}", file.display())]
    Replay {
        /// The journal file.
        file: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// Why.
        source: replay::ReplayError,
    },
    /// The journal ends before the checkpoint.
    #[error("the journal in {} ends at record {last}, before checkpoint {checkpoint}", path.display())]
    Behind {
        /// The directory.
        path: PathBuf,
        /// The last record.
        last: u64,
        /// The checkpoint's sequence number.
        checkpoint: u64,
    },
    /// No default place for the journal.
    #[error(
        "neither XDG_STATE_HOME nor HOME is an absolute path: choose a journal directory with --journal DIR"
    )]
    NoStateDir,
}

impl DiskError {
    /// An [`DiskError::Io`] maker for `map_err`.
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| DiskError::Io { what, path, source }
    }
}

#[cfg(test)]
pub(crate) mod testutil;
