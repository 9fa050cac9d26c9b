//! The journal directory: where it is by default, how it is created, and
//! the checks that every process makes before it trusts it.
//!
//! A peer that can write the exchange segment can rewrite the directory's
//! path there, so opening never trusts the path alone: the directory is
//! opened without following a symbolic link, must belong to the effective
//! user and must not be writable by group or others, and its identity file
//! must name the expected exchange. Every file inside is then opened
//! relative to that open directory (`openat`, `O_NOFOLLOW`), must be a
//! regular file owned by the user, and is created with mode 0600.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fs::{DirBuilder, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};
use shm::SegmentId;

use super::{DiskError, FORMAT_VERSION};
use crate::snapshot::CapacityFile;
use crate::state::Capacity;

/// The identity file's name.
pub const IDENTITY: &str = "identity.toml";
const IDENTITY_FORMAT: &str = "shmex-journal";
/// Identity files are small; anything larger is not one.
const IDENTITY_MAX: u64 = 64 << 10;

/// What a journal directory belongs to: written once when it is created,
/// read by every process that opens it, and by recovery to recreate the
/// segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Drawn at random when the exchange is made; in every file header and
    /// every record.
    pub exchange_id: u64,
    /// The exchange's segment.
    pub segment: SegmentId,
    /// Creation time, ns since the epoch.
    pub created_ns: u64,
    /// Room.
    pub capacity: Capacity,
    /// The segment's permission bits.
    pub mode: u32,
    /// Opening balance of a new account, in home minor units.
    pub opening: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    format: String,
    version: u32,
    exchange_id: String,
    backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    created_ns: u64,
    mode: String,
    opening: i64,
    capacity: CapacityFile,
}

impl Identity {
    fn to_toml(&self) -> String {
        let (backend, name, key) = match &self.segment {
            SegmentId::Posix(n) => ("posix", Some(n.clone()), None),
            SegmentId::SysV(k) => ("sysv", None, Some(format!("{:#010x}", *k as u32))),
        };
        let f = IdentityFile {
            format: IDENTITY_FORMAT.to_owned(),
            version: FORMAT_VERSION,
            exchange_id: format!("{:#018x}", self.exchange_id),
            backend: backend.to_owned(),
            name,
            key,
            created_ns: self.created_ns,
            mode: format!("{:04o}", self.mode),
            opening: self.opening,
            capacity: CapacityFile {
                currencies: self.capacity.currencies,
                accounts: self.capacity.accounts,
                journal: self.capacity.journal,
            },
        };
        format!(
            "# The identity of a shmex exchange's journal: written once, when the exchange was made.\n{}",
            toml::to_string(&f).unwrap_or_default()
        )
    }

    fn from_toml(text: &str) -> Result<Identity, String> {
        if let Ok(t) = toml::from_str::<toml::Table>(text) {
            let format = t.get("format").and_then(|f| f.as_str()).unwrap_or("");
            let version = t.get("version").and_then(toml::Value::as_integer);
            if format != IDENTITY_FORMAT || version != Some(i64::from(FORMAT_VERSION)) {
                return Err(format!(
                    "format {format:?} version {}, but this shmex reads {IDENTITY_FORMAT:?} version {FORMAT_VERSION}",
                    version.map_or_else(|| "?".to_owned(), |v| v.to_string())
                ));
            }
        }
        let f: IdentityFile =
            toml::from_str(text).map_err(|e| crate::config::one_line(&e.to_string()))?;
        let hex = |what: &str, s: &str| {
            s.strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{what} {s:?} is not a hexadecimal number such as 0x1f"))
        };
        let exchange_id = hex("exchange_id", &f.exchange_id)?;
        let segment = match (f.backend.as_str(), f.name, f.key) {
            ("posix", Some(n), None) => SegmentId::posix(n).map_err(|e| e.to_string())?,
            ("sysv", None, Some(k)) => {
                let k = hex("key", &k)?;
                let k = u32::try_from(k).map_err(|_| format!("key {k:#x} is not 32 bits"))?;
                SegmentId::sysv(k as i32).map_err(|e| e.to_string())?
            }
            (b, _, _) => {
                return Err(format!(
                    "backend {b:?} with a name or a key that does not fit it"
                ));
            }
        };
        let mode = u32::from_str_radix(&f.mode, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("mode {:?} is not octal permission bits", f.mode))?;
        Ok(Identity {
            exchange_id,
            segment,
            created_ns: f.created_ns,
            capacity: Capacity {
                currencies: f.capacity.currencies,
                accounts: f.capacity.accounts,
                journal: f.capacity.journal,
            },
            mode,
            opening: f.opening,
        })
    }
}

/// The directory name of an exchange's journal: its POSIX name, or
/// `key-0x<8 hex digits>` for a System V key.
#[must_use]
pub fn dir_name(segment: &SegmentId) -> String {
    match segment {
        SegmentId::Posix(n) => n.clone(),
        SegmentId::SysV(k) => format!("key-{:#010x}", *k as u32),
    }
}

/// Where an exchange's journal lives by default:
/// `$XDG_STATE_HOME/shmex/<exchange>/`, else
/// `$HOME/.local/state/shmex/<exchange>/`, given those two variables'
/// values. As the XDG base directory specification says, a value that is
/// empty or not an absolute path is ignored.
///
/// # Errors
///
/// [`DiskError::NoStateDir`] if neither gives an absolute path.
pub fn default_dir(
    segment: &SegmentId,
    xdg_state_home: Option<&OsStr>,
    home: Option<&OsStr>,
) -> Result<PathBuf, DiskError> {
    fn absolute(v: Option<&OsStr>) -> Option<&Path> {
        v.map(Path::new).filter(|p| p.is_absolute())
    }
    let base = match (absolute(xdg_state_home), absolute(home)) {
        (Some(x), _) => x.to_path_buf(),
        (None, Some(h)) => h.join(".local/state"),
        (None, None) => return Err(DiskError::NoStateDir),
    };
    Ok(base.join("shmex").join(dir_name(segment)))
}

/// A new exchange id: 64 random bits from the kernel, never 0.
///
/// # Errors
///
/// [`DiskError::Io`] if `/dev/urandom` cannot be read.
pub fn new_exchange_id() -> Result<u64, DiskError> {
    let path = "/dev/urandom";
    let mut f = File::open(path).map_err(DiskError::io("open", path))?;
    loop {
        let mut b = [0; 8];
        f.read_exact(&mut b).map_err(DiskError::io("read", path))?;
        let id = u64::from_le_bytes(b);
        if id != 0 {
            return Ok(id);
        }
    }
}

/// Whether a directory entry is one the journal makes.
fn is_ours(name: &str) -> bool {
    let base = name
        .strip_suffix(".damaged")
        .or_else(|| name.rsplit_once(".tmp.").map(|(b, _)| b))
        .unwrap_or(name);
    base == IDENTITY
        || JOURNAL_NAMES.parse(base).is_some()
        || CHECKPOINT_NAMES.parse(base).is_some()
}

/// How the files of one kind are named: `<prefix><20 digits><suffix>`,
/// the digits a sequence number.
pub(crate) struct SeqNames {
    prefix: &'static str,
    suffix: &'static str,
}

/// Journal files, by their first record: `journal-<seq>.log`.
pub(crate) const JOURNAL_NAMES: SeqNames = SeqNames {
    prefix: "journal-",
    suffix: ".log",
};

/// Checkpoints, by their last record: `checkpoint-<seq>.ckpt`.
pub(crate) const CHECKPOINT_NAMES: SeqNames = SeqNames {
    prefix: "checkpoint-",
    suffix: ".ckpt",
};

impl SeqNames {
    /// The name of number `seq`.
    pub(crate) fn name(&self, seq: u64) -> String {
        format!("{}{seq:020}{}", self.prefix, self.suffix)
    }

    /// The number of a name of this kind.
    pub(crate) fn parse(&self, name: &str) -> Option<u64> {
        let digits = name.strip_prefix(self.prefix)?.strip_suffix(self.suffix)?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

/// How a file in the directory is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    /// Read an existing file.
    Read,
    /// Read and write an existing file.
    Write,
    /// Create it or, if it exists, open it for writing as it is.
    Create,
}

/// An open, validated journal directory.
#[derive(Debug)]
pub struct JournalDir {
    fd: File,
    path: PathBuf,
    identity: Identity,
}

/// Opens `path` as a directory without following a final symbolic link,
/// and checks it: a directory, owned by the effective user, not writable
/// by group or others.
fn open_dir(path: &Path) -> Result<File, DiskError> {
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32)
        .open(path)
        .map_err(|e| open_error(e, path, "open"))?;
    let meta = fd.metadata().map_err(DiskError::io("stat", path))?;
    if !meta.is_dir() {
        return Err(DiskError::NotADirectory { path: path.into() });
    }
    check_owner(path, meta.uid(), meta.mode())?;
    Ok(fd)
}

fn open_error(e: io::Error, path: &Path, what: &'static str) -> DiskError {
    let errno = e.raw_os_error();
    let is = |n: rustix::io::Errno| errno == Some(n.raw_os_error());
    // With O_DIRECTORY, Linux reports a symbolic link as ENOTDIR: look.
    let link = || std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is(rustix::io::Errno::LOOP) || (is(rustix::io::Errno::NOTDIR) && link()) {
        DiskError::Symlink { path: path.into() }
    } else if is(rustix::io::Errno::NOTDIR) {
        DiskError::NotADirectory { path: path.into() }
    } else if e.kind() == io::ErrorKind::NotFound {
        DiskError::Missing { path: path.into() }
    } else {
        DiskError::io(what, path)(e)
    }
}

fn check_owner(path: &Path, owner: u32, mode: u32) -> Result<(), DiskError> {
    let euid = shm::sys::euid();
    if owner != euid {
        return Err(DiskError::Owner {
            path: path.into(),
            owner,
            euid,
        });
    }
    if mode & 0o022 != 0 {
        return Err(DiskError::Writable {
            path: path.into(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Opens the file `name` in the directory, relative to it and without
/// following a symbolic link, and checks that it is a regular file
/// owned by the effective user. Created files get mode 0600.
fn open_at(dir: &File, dir_path: &Path, name: &str, how: How) -> Result<File, DiskError> {
    let path = dir_path.join(name);
    let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let flags = match how {
        How::Read => base | OFlags::RDONLY,
        How::Write => base | OFlags::RDWR,
        How::Create => base | OFlags::RDWR | OFlags::CREATE,
    };
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))
        .map_err(|e| open_error(e.into(), &path, "open"))?;
    let f = File::from(fd);
    let meta = f.metadata().map_err(DiskError::io("stat", &path))?;
    if !meta.is_file() {
        return Err(DiskError::NotAFile { path });
    }
    check_owner(&path, meta.uid(), meta.mode())?;
    Ok(f)
}

fn read_identity(dir: &File, dir_path: &Path) -> Result<Identity, DiskError> {
    let path = dir_path.join(IDENTITY);
    let bad = |reason: String| DiskError::Identity {
        path: path.clone(),
        reason,
    };
    let f = open_at(dir, dir_path, IDENTITY, How::Read)?;
    let mut text = String::new();
    f.take(IDENTITY_MAX)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    Identity::from_toml(&text).map_err(bad)
}

/// Makes `path` absolute (without resolving symbolic links), so that what
/// the segment records means the same in every process.
/// The entries of the directory `fd` (at `path`), sorted.
fn list_names(fd: &File, path: &Path) -> Result<Vec<String>, DiskError> {
    let err = |e: rustix::io::Errno| DiskError::io("list", path)(e.into());
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(fd).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_string_lossy();
        if name != "." && name != ".." {
            out.push(name.into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// The entries of the existing directory `fd` (at `path`) that a new
/// journal there replaces, or the refusal: an entry that is no journal's,
/// or a journal when `replace` is not set.
fn refuse_or_list(fd: &File, path: &Path, replace: bool) -> Result<Vec<String>, DiskError> {
    let names = list_names(fd, path)?;
    if let Some(other) = names.iter().find(|n| !is_ours(n)) {
        return Err(DiskError::NotOurs {
            path: path.into(),
            entry: other.clone(),
        });
    }
    if !names.is_empty() && !replace {
        let exchange_id = read_identity(fd, path).map_or(0, |i| i.exchange_id);
        return Err(DiskError::Occupied {
            path: path.into(),
            exchange_id,
        });
    }
    Ok(names)
}

fn absolute(path: &Path) -> Result<PathBuf, DiskError> {
    std::path::absolute(path).map_err(DiskError::io("resolve", path))
}

impl JournalDir {
    /// Creates the journal directory `path` for the exchange `identity`
    /// (its parents too, mode 0700 as XDG asks), writes the identity file
    /// atomically and makes both durable.
    ///
    /// An existing directory is used if it passes the checks of
    /// [`JournalDir::open`] and is empty; if it holds a journal (and
    /// nothing else), that journal is removed first when `replace` is
    /// set, and refused otherwise.
    ///
    /// # Errors
    ///
    /// [`DiskError::NotOurs`] for a non-empty directory that holds other
    /// files, [`DiskError::Occupied`] for one with a journal (without
    /// `replace`), the checks of [`JournalDir::open`], and
    /// [`DiskError::Io`].
    pub fn create(
        path: &Path,
        identity: &Identity,
        replace: bool,
    ) -> Result<JournalDir, DiskError> {
        let path = absolute(path)?;
        let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        // The deepest directory that exists already: every entry made
        // below it must be synced to survive a power cut.
        let existing = parent
            .ancestors()
            .find(|a| a.is_dir())
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .map_err(DiskError::io("create", &parent))?;
        let created = match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(DiskError::io("create", &path)(e)),
        };
        let fd = open_dir(&path)?;
        let mut dir = JournalDir {
            fd,
            path,
            identity: identity.clone(),
        };
        if !created {
            for n in &refuse_or_list(&dir.fd, &dir.path, replace)? {
                dir.remove(n)?;
            }
        }
        dir.write_atomic(IDENTITY, identity.to_toml().as_bytes())?;
        dir.identity = identity.clone();
        for a in parent.ancestors() {
            let p = File::open(a).map_err(DiskError::io("open", a))?;
            p.sync_all().map_err(DiskError::io("fsync", a))?;
            if a == existing {
                break;
            }
        }
        Ok(dir)
    }

    /// The refusals of [`JournalDir::create`] with `path` and `replace`,
    /// judged without creating or removing anything: for a caller that
    /// must change nothing else before a refusal. Returns `path` made
    /// absolute.
    ///
    /// # Errors
    ///
    /// As [`JournalDir::create`] would refuse an existing directory.
    pub fn check_create(path: &Path, replace: bool) -> Result<PathBuf, DiskError> {
        let path = absolute(path)?;
        let fd = match open_dir(&path) {
            Ok(fd) => fd,
            Err(DiskError::Missing { .. }) => return Ok(path),
            Err(e) => return Err(e),
        };
        refuse_or_list(&fd, &path, replace)?;
        Ok(path)
    }

    /// Opens the journal directory `path`: a real directory (not a
    /// symbolic link), owned by the effective user, not writable by group
    /// or others, whose identity file is valid and, if `expected` is
    /// given, names that exchange.
    ///
    /// # Errors
    ///
    /// [`DiskError::Missing`], [`DiskError::Symlink`],
    /// [`DiskError::NotADirectory`], [`DiskError::Owner`],
    /// [`DiskError::Writable`], [`DiskError::Identity`],
    /// [`DiskError::Foreign`], [`DiskError::Io`].
    pub fn open(path: &Path, expected: Option<u64>) -> Result<JournalDir, DiskError> {
        let path = absolute(path)?;
        let fd = open_dir(&path)?;
        let identity = read_identity(&fd, &path)?;
        if let Some(want) = expected
            && want != identity.exchange_id
        {
            return Err(DiskError::Foreign {
                path,
                expected: want,
                found: identity.exchange_id,
            });
        }
        Ok(JournalDir { fd, path, identity })
    }

    /// The directory's absolute path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What it belongs to.
    #[must_use]
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The exchange it belongs to.
    #[must_use]
    pub fn exchange_id(&self) -> u64 {
        self.identity.exchange_id
    }

    /// The path of the entry `name`, for messages.
    #[must_use]
    pub fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Removes every file the journal made and the directory itself
    /// (`destroy --purge`). Files it did not make are left, and then the
    /// directory too.
    ///
    /// # Errors
    ///
    /// [`DiskError::NotOurs`] if other files are there (after the
    /// journal's were removed), [`DiskError::Io`].
    pub fn purge(self) -> Result<(), DiskError> {
        let names = self.names()?;
        for n in names.iter().filter(|n| is_ours(n)) {
            self.remove(n)?;
        }
        if let Some(other) = names.into_iter().find(|n| !is_ours(n)) {
            return Err(DiskError::NotOurs {
                path: self.path,
                entry: other,
            });
        }
        std::fs::remove_dir(&self.path).map_err(DiskError::io("remove", &self.path))?;
        if let Some(parent) = self.path.parent()
            && let Ok(p) = File::open(parent)
        {
            let _ = p.sync_all();
        }
        Ok(())
    }

    /// Opens the file `name` in the directory, as [`open_at`].
    pub(crate) fn open_file(&self, name: &str, how: How) -> Result<File, DiskError> {
        open_at(&self.fd, &self.path, name, how)
    }

    /// Writes `name` atomically: a temporary file written and synced,
    /// renamed over `name`, and the directory synced.
    pub(crate) fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), DiskError> {
        let tmp = format!("{name}.tmp.{}", std::process::id());
        let tmp_path = self.file_path(&tmp);
        let mut f = self.open_file(&tmp, How::Create)?;
        f.set_len(0).map_err(DiskError::io("truncate", &tmp_path))?;
        f.write_all(bytes)
            .map_err(DiskError::io("write", &tmp_path))?;
        f.sync_all().map_err(DiskError::io("fsync", &tmp_path))?;
        drop(f);
        rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)
            .map_err(|e| DiskError::io("rename", &tmp_path)(e.into()))?;
        self.sync()
    }

    /// Makes the directory's entries durable.
    pub(crate) fn sync(&self) -> Result<(), DiskError> {
        self.fd
            .sync_all()
            .map_err(DiskError::io("fsync", &self.path))
    }

    /// Removes the entry `name` (a missing one is not an error).
    pub(crate) fn remove(&self, name: &str) -> Result<(), DiskError> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(DiskError::io("remove", self.file_path(name))(e.into())),
        }
    }

    /// Renames the entry `from` to `to`.
    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<(), DiskError> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .map_err(|e| DiskError::io("rename", self.file_path(from))(e.into()))
    }

    /// The names in the directory (not `.` and `..`), sorted.
    pub(crate) fn names(&self) -> Result<Vec<String>, DiskError> {
        list_names(&self.fd, &self.path)
    }
}

#[cfg(test)]
mod tests;
