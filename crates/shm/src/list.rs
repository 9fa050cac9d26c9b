//! Listing segments of both backends, and finding and removing the stale
//! ones.
//!
//! A listing never blocks and never trusts a name: it reads the directory
//! of `/dev/shm` without opening what is not a regular file, opens the
//! rest without following links, and reads each header through a mapping
//! that survives the file shrinking. Removing a stale segment removes
//! exactly the segment judged stale: the same System V id (with the same
//! key and creation time) or the same POSIX file (device and inode), still
//! unheld and still owned when it goes.

use crate::header::{HeaderBytes, Lifetime};
use crate::managed::Managed;
use crate::os::posix::{self, FileType};
use crate::os::sysv;
use crate::sync::ProcessId;
use crate::{Error, Kind, Segment, SegmentId, user_name};
use std::time::{Duration, Instant};

/// Which backend a segment lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `shmget` key.
    SysV,
    /// `shm_open` name.
    Posix,
}

/// What a listing concludes about a segment: something its lifetime does
/// not say already.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Managed, and some process holds it (an owned segment's holders, or
    /// any process attached to a persistent one).
    Live,
    /// Managed, persistent, and no process is attached: it waits for its
    /// users, as it should.
    Idle,
    /// Managed, owned, and every process that held it is dead:
    /// [`remove_stale`] removes it.
    Stale,
    /// Its creator is still writing it.
    Initializing,
    /// Not made by shmex (or raw): listed for the user to judge.
    Foreign,
    /// Has a shmex magic but fails validation (or shrank while it was
    /// read); the reason.
    Invalid(String),
    /// This user may not read it.
    Unreadable,
    /// A file in `/dev/shm` that is no segment: `fifo`, `symlink`,
    /// `directory`, `socket` or `device`. Never opened.
    NotAFile(&'static str),
}

impl Status {
    /// Lowercase name for listings.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::Idle => "idle",
            Status::Stale => "stale",
            Status::Initializing => "initializing",
            Status::Foreign => "foreign",
            Status::Invalid(_) => "invalid",
            Status::Unreadable => "unreadable",
            Status::NotAFile(what) => what,
        }
    }
}

/// What a listing judged, to remove exactly that segment later.
#[derive(Clone, Debug, Default)]
enum Judged {
    #[default]
    Nothing,
    SysV {
        shmid: i32,
        ctime: i64,
    },
    Posix {
        dev: u64,
        ino: u64,
    },
}

/// One segment as [`list`] and [`inspect`] describe it.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    /// Backend.
    pub backend: Backend,
    /// Key or name.
    pub id: SegmentId,
    /// System V id.
    pub shmid: Option<i32>,
    /// Bytes, header included.
    pub size: u64,
    /// Bytes after the header, for a managed segment: what its creator
    /// asked for.
    pub payload: Option<u64>,
    /// What a managed segment holds (see [`Kind`] for how it is named);
    /// `None` for foreign ones.
    pub kind: Option<Kind>,
    /// A managed segment's lifetime.
    pub lifetime: Option<Lifetime>,
    /// Owner uid.
    pub uid: u32,
    /// Owner name.
    pub owner: String,
    /// Permission bits.
    pub mode: u32,
    /// Creator pid (header, or the kernel's for System V).
    pub creator_pid: Option<u32>,
    /// Whether the creator still runs (pid and start time).
    pub creator_alive: Option<bool>,
    /// Attached processes: the kernel's count for System V, mappings found
    /// in `/proc/*/maps` for POSIX.
    pub attached: Option<u64>,
    /// Creation time, seconds since the Unix epoch.
    pub created: Option<i64>,
    /// Creation time, nanoseconds since the Unix epoch: the header's for a
    /// managed segment, the kernel's change time otherwise.
    pub created_ns: Option<u64>,
    /// The payload's main type, as its header says (any bytes another
    /// process wrote there: escape it before printing).
    pub type_name: Option<String>,
    /// The verdict.
    pub status: Status,
    judged: Judged,
}

/// Every segment on the machine: shmex's of both backends, and foreign
/// ones (System V segments and `/dev/shm` files not made by shmex, and
/// files there that are no segment at all).
///
/// # Errors
///
/// Only if neither `/proc/sysvipc/shm` nor `/dev/shm` can be read.
pub fn list() -> Result<Vec<SegmentInfo>, Error> {
    let mut out = Vec::new();
    let sysv_all = sysv::list().map_err(|e| Error::os("read /proc/sysvipc/shm", "(all)", e))?;
    for st in sysv_all {
        if st.key == 0 {
            // IPC_PRIVATE or already removed: nobody can open it by key.
            continue;
        }
        out.push(sysv_info(&st));
    }
    let maps = posix_maps();
    for (name, file_type) in posix::list().unwrap_or_default() {
        let Ok(id) = SegmentId::posix(name.clone()) else {
            continue;
        };
        out.push(posix_info(&id, file_type, &maps));
    }
    Ok(out)
}

/// One segment, in the same form as [`list`].
///
/// # Errors
///
/// [`Error::NotFound`] if it does not exist.
pub fn inspect(id: &SegmentId) -> Result<SegmentInfo, Error> {
    match id {
        SegmentId::SysV(key) => {
            let all = sysv::list().map_err(|e| Error::os("read /proc/sysvipc/shm", id, e))?;
            let st = all
                .into_iter()
                .find(|s| s.key == *key)
                .ok_or_else(|| Error::NotFound {
                    what: id.to_string(),
                })?;
            Ok(sysv_info(&st))
        }
        SegmentId::Posix(name) => {
            let st = posix::lstat(name).map_err(|_| Error::NotFound {
                what: id.to_string(),
            })?;
            Ok(posix_info(id, st.file_type, &posix_maps()))
        }
    }
}

/// Removes exactly the stale segments: managed, owned, with no live holder.
/// Returns what it removed.
///
/// # Errors
///
/// As [`list`]; a segment that cannot be removed is skipped, not an error.
pub fn remove_stale() -> Result<Vec<SegmentInfo>, Error> {
    let mut removed = Vec::new();
    for info in list()? {
        if info.status == Status::Stale && remove_if_stale(&info).unwrap_or(false) {
            removed.push(info);
        }
    }
    Ok(removed)
}

/// Removes the segment `info` describes if it is stale and is still that
/// very segment, still unheld and still owned: the same System V id with
/// the same key and creation time, or the same POSIX file, locked
/// exclusively while its header is checked again and its name unlinked.
/// A segment that took its key or name in the meantime is never touched.
/// Returns whether it removed it.
///
/// # Errors
///
/// [`Error::PermissionDenied`] or [`Error::Os`] when the kernel refuses
/// the removal.
pub fn remove_if_stale(info: &SegmentInfo) -> Result<bool, Error> {
    if info.status != Status::Stale {
        return Ok(false);
    }
    match (&info.id, &info.judged) {
        (SegmentId::SysV(key), Judged::SysV { shmid, ctime }) => {
            let same = sysv::stat(*shmid).is_ok_and(|s| {
                s.key == *key && s.ctime == *ctime && sysv_unheld(*shmid, s.nattch, false)
            });
            if !same {
                return Ok(false);
            }
            match sysv::remove(*shmid) {
                Ok(()) => Ok(true),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => Ok(false),
                Err(e) => Err(Error::os("shmctl(IPC_RMID)", &info.id, e)),
            }
        }
        (SegmentId::Posix(name), Judged::Posix { dev, ino }) => {
            let Ok(seg) = Segment::open_observer(&info.id) else {
                return Ok(false);
            };
            let Some(st) = seg.posix_stat() else {
                return Ok(false);
            };
            // Another file under the name, or the one judged, already gone.
            if (st.dev, st.ino) != (*dev, *ino) || st.nlink == 0 {
                return Ok(false);
            }
            // From here on this process holds the file locked exclusively:
            // nobody attaches to it until it is unlinked.
            if !posix_unheld(&seg, false) {
                return Ok(false);
            }
            let m = match Managed::observe(seg) {
                Ok(m) if m.lifetime() == Some(Lifetime::Owned) && m.check_intact().is_ok() => m,
                _ => return Ok(false),
            };
            if !posix::lstat(name).is_ok_and(|now| now.same_file(&st)) {
                return Ok(false);
            }
            let r = posix::unlink(name);
            drop(m);
            match r {
                Ok(()) => Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
                Err(e) => Err(Error::os("shm_unlink", &info.id, e)),
            }
        }
        _ => Ok(false),
    }
}

fn sysv_info(st: &sysv::Stat) -> SegmentInfo {
    let id = SegmentId::SysV(st.key);
    let mut info = SegmentInfo {
        backend: Backend::SysV,
        id: id.clone(),
        shmid: Some(st.shmid),
        size: st.size,
        payload: None,
        kind: None,
        lifetime: None,
        uid: st.uid,
        owner: user_name(st.uid),
        mode: st.mode,
        creator_pid: u32::try_from(st.cpid).ok(),
        creator_alive: u32::try_from(st.cpid).ok().map(|p| {
            ProcessId {
                pid: p,
                start_time: 0,
            }
            .is_alive()
        }),
        attached: Some(st.nattch),
        created: Some(st.ctime),
        created_ns: u64::try_from(st.ctime)
            .ok()
            .map(|s| s.saturating_mul(1_000_000_000)),
        type_name: None,
        status: Status::Foreign,
        judged: Judged::SysV {
            shmid: st.shmid,
            ctime: st.ctime,
        },
    };
    match Segment::open_observer(&id) {
        // The key may name a newer segment by now: judge only the one
        // listed.
        Ok(seg) if seg.sysv_id() == Some(st.shmid) => {
            // Only a segment that begins with our magic is ours; a raw
            // segment (the seed's, or `--raw`) is foreign.
            let (shmid, nattch) = (st.shmid, st.nattch);
            fill_managed(&mut info, seg, |m, creator_holds| {
                // Detach first: this observer must not count itself.
                drop(m);
                sysv_unheld(shmid, nattch, creator_holds)
            });
        }
        Ok(_) => {}
        Err(Error::PermissionDenied { .. }) => info.status = Status::Unreadable,
        Err(_) => {}
    }
    info
}

fn posix_info(id: &SegmentId, file_type: FileType, maps: &[Mapping]) -> SegmentInfo {
    let SegmentId::Posix(name) = id else {
        unreachable!("a POSIX listing names POSIX segments")
    };
    let me = std::process::id();
    let mut info = SegmentInfo {
        backend: Backend::Posix,
        id: id.clone(),
        shmid: None,
        size: 0,
        payload: None,
        kind: None,
        lifetime: None,
        uid: 0,
        owner: String::new(),
        mode: 0,
        creator_pid: None,
        creator_alive: None,
        attached: None,
        created: None,
        created_ns: None,
        type_name: None,
        status: Status::Foreign,
        judged: Judged::Nothing,
    };
    let describe = |info: &mut SegmentInfo, st: &posix::Stat| {
        let holders = maps
            .iter()
            .filter(|m| m.pid != me && (m.dev, m.ino) == (st.dev, st.ino))
            .count();
        info.attached = Some(holders as u64);
        info.size = st.size;
        info.uid = st.uid;
        info.owner = user_name(st.uid);
        info.mode = st.mode;
        info.created_ns = u64::try_from(st.ctime_ns).ok();
        info.created = Some(st.ctime_ns.div_euclid(1_000_000_000));
        info.judged = Judged::Posix {
            dev: st.dev,
            ino: st.ino,
        };
    };
    let not_a_file = |info: &mut SegmentInfo| {
        // Never opened: a FIFO would block, a link would lead elsewhere.
        if let Ok(st) = posix::lstat(name) {
            describe(info, &st);
            info.status = Status::NotAFile(not_a_file_word(st.file_type));
        }
        info.judged = Judged::Nothing;
        info.attached = None;
    };
    if file_type != FileType::Regular {
        not_a_file(&mut info);
        return info;
    }
    match Segment::open_observer(id) {
        Ok(seg) => {
            if let Some(st) = seg.posix_stat() {
                describe(&mut info, &st);
            }
            fill_managed(&mut info, seg, |m, creator_holds| {
                posix_unheld(m.segment(), creator_holds)
            });
        }
        Err(e) => {
            let st = posix::lstat(name);
            if st.as_ref().is_ok_and(|s| s.file_type != FileType::Regular) {
                // It was replaced since the directory was read.
                not_a_file(&mut info);
                return info;
            }
            if let Ok(st) = st {
                describe(&mut info, &st);
            }
            if matches!(e, Error::PermissionDenied { .. }) {
                info.status = Status::Unreadable;
            }
        }
    }
    info
}

/// The status word for a file in `/dev/shm` that is no segment.
fn not_a_file_word(t: FileType) -> &'static str {
    match t {
        FileType::Regular => "file",
        FileType::Fifo => "fifo",
        FileType::Symlink => "symlink",
        FileType::Directory => "directory",
        FileType::Socket => "socket",
        FileType::Device => "device",
    }
}

/// How long a System V attach count above 0 is watched for a moment at 0,
/// or a POSIX segment's exclusive lock tried again, before a segment
/// nobody is known to hold is believed held.
const OBSERVER_GRACE: Duration = Duration::from_millis(25);

/// Whether no process holds the POSIX segment `seg`: whether its
/// exclusive `flock` can be had (and then this process has it, until it
/// drops `seg`).
///
/// A holder keeps a shared lock for its whole life, but every observer
/// (`ls`, `inspect`, `rm --stale` in other processes) takes the exclusive
/// one for a moment to ask the same question. So a refusal is not yet
/// proof of a holder: unless the creator of an owned segment is known to
/// hold it, the lock is tried again for [`OBSERVER_GRACE`], and a single
/// success shows that nobody holds it.
fn posix_unheld(seg: &Segment, creator_holds: bool) -> bool {
    match seg.posix_unheld() {
        Some(true) => true,
        Some(false) if !creator_holds => unheld_within_grace(|| seg.posix_unheld()),
        _ => false,
    }
}

/// Asks `unheld` again every half millisecond for [`OBSERVER_GRACE`]:
/// true at its first `Some(true)`; false at the deadline, or at `None` (the
/// segment gone, or the question failed).
fn unheld_within_grace(mut unheld: impl FnMut() -> Option<bool>) -> bool {
    let deadline = Instant::now() + OBSERVER_GRACE;
    loop {
        match unheld() {
            Some(true) => return true,
            Some(false) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(500));
            }
            _ => return false,
        }
    }
}

/// Whether no process holds System V segment `shmid`, whose attach count
/// was `nattch` before this process attached to it.
///
/// A holder stays attached for its whole life, but every observer (`ls`,
/// `inspect`, `rm --stale` in other processes) attaches for a few
/// microseconds to read the header, and a killed holder's attachment goes
/// only when its memory is torn down, which a concurrent reader of its
/// `/proc/PID/maps` delays a little. So a count above 0 is not yet proof of
/// a holder. While the creator of an owned segment lives the segment is
/// held (it holds it, and removes it when it lets go); otherwise the count
/// is sampled for [`OBSERVER_GRACE`], and a single 0 shows that nobody
/// holds it. A segment that is gone in the meantime is not called unheld.
fn sysv_unheld(shmid: i32, nattch: u64, creator_holds: bool) -> bool {
    if nattch == 0 {
        return true;
    }
    if creator_holds {
        return false;
    }
    unheld_within_grace(|| sysv::stat(shmid).ok().map(|s| s.nattch == 0))
}

/// Fills in what the header of a managed segment says. `unheld` is asked
/// whether no process holds it; it gets the open segment (to drop or to
/// use) and whether the creator of an owned segment still runs (it holds
/// it then).
fn fill_managed(info: &mut SegmentInfo, seg: Segment, unheld: impl FnOnce(Managed, bool) -> bool) {
    let magic = HeaderBytes::read(&seg).magic();
    if seg.check_intact().is_err() {
        info.status =
            Status::Invalid("it shrank while it was read: another process truncated it".into());
        return;
    }
    if magic != crate::header::MAGIC {
        // A raw segment (the seed's, or `--raw`), or another program's.
        return;
    }
    match Managed::observe(seg) {
        Ok(m) => {
            info.kind = Some(m.kind());
            info.payload = Some(m.payload_len() as u64);
            info.lifetime = m.lifetime();
            let creator = m.creator();
            let creator_alive = creator.is_alive();
            info.creator_pid = Some(creator.pid);
            info.creator_alive = Some(creator_alive);
            info.created_ns = Some(m.created_ns());
            info.created = Some((m.created_ns() / 1_000_000_000) as i64);
            info.type_name = Some(m.type_name());
            let owned = info.lifetime == Some(Lifetime::Owned);
            let held = !unheld(m, owned && creator_alive);
            info.status = match (owned, held) {
                (_, true) => Status::Live,
                (true, false) => Status::Stale,
                (false, false) => Status::Idle,
            };
        }
        Err(Error::NotReady { .. }) => info.status = Status::Initializing,
        Err(e) => info.status = Status::Invalid(e.to_string()),
    }
}

/// One process's mapping of a `/dev/shm` file, as `/proc/PID/maps` shows
/// it: by device and inode, since a path there can be stale (a file
/// removed and another made under its name) or not the name at all (a
/// segment made unnamed and named later shows as `/dev/shm/#INODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Mapping {
    pid: u32,
    dev: u64,
    ino: u64,
}

/// Every `/dev/shm` mapping this user can see in `/proc/*/maps`, once per
/// process and file.
fn posix_maps() -> Vec<Mapping> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        for line in text.lines().filter(|l| l.contains(" /dev/shm/")) {
            // address perms offset dev inode path
            let mut f = line.split_whitespace().skip(3);
            let (Some(dev), Some(ino)) = (f.next(), f.next()) else {
                continue;
            };
            let Some((major, minor)) = dev.split_once(':') else {
                continue;
            };
            let (Ok(major), Ok(minor), Ok(ino)) = (
                u32::from_str_radix(major, 16),
                u32::from_str_radix(minor, 16),
                ino.parse::<u64>(),
            ) else {
                continue;
            };
            seen.insert(Mapping {
                pid,
                dev: libc::makedev(major, minor),
                ino,
            });
        }
        out.extend(seen);
    }
    out
}
