//! Listing segments of both backends, and finding the stale ones.

use crate::header::{HeaderBytes, Lifetime};
use crate::managed::Managed;
use crate::os::{posix, sysv};
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

/// What a listing concludes about a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Managed, owned, and some process holds it.
    Live,
    /// Managed, owned, and every process that held it is dead:
    /// [`remove_stale`] removes it.
    Stale,
    /// Managed and persistent: it outlives its creator on purpose.
    Persistent,
    /// Its creator is still writing it.
    Initializing,
    /// Not made by shmex (or raw): listed for the user to judge.
    Foreign,
    /// Has a shmex magic but fails validation; the reason.
    Invalid(String),
    /// This user may not read it.
    Unreadable,
}

impl Status {
    /// Lowercase name for listings.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::Stale => "stale",
            Status::Persistent => "persistent",
            Status::Initializing => "initializing",
            Status::Foreign => "foreign",
            Status::Invalid(_) => "invalid",
            Status::Unreadable => "unreadable",
        }
    }
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
    /// Bytes after the header, for a managed segment.
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
    /// The payload's main type.
    pub type_name: Option<String>,
    /// The verdict.
    pub status: Status,
}

/// Every segment on the machine: shmex's of both backends, and foreign
/// ones (System V segments and `/dev/shm` files not made by shmex).
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
    for name in posix::list().unwrap_or_default() {
        let Ok(id) = SegmentId::posix(name.clone()) else {
            continue;
        };
        out.push(posix_info(&id, &maps));
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
            if std::fs::symlink_metadata(format!("/dev/shm/{name}")).is_err() {
                return Err(Error::NotFound {
                    what: id.to_string(),
                });
            }
            Ok(posix_info(id, &posix_maps()))
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
        if info.status != Status::Stale {
            continue;
        }
        let ok = match &info.id {
            SegmentId::SysV(_) => {
                // Re-check by the same shmid, with the count the kernel keeps.
                let creator_alive = info.creator_alive == Some(true);
                info.shmid.is_some_and(|shmid| {
                    sysv::stat(shmid).is_ok_and(|s| sysv_unheld(shmid, s.nattch, creator_alive))
                        && sysv::remove(shmid).is_ok()
                })
            }
            SegmentId::Posix(name) => {
                // Hold the exclusive lock while unlinking, so that a process
                // opening it now finds it gone rather than half-removed.
                match Segment::open_observer(&info.id) {
                    Ok(seg) => seg.posix_unheld() == Some(true) && posix::unlink(name).is_ok(),
                    Err(_) => false,
                }
            }
        };
        if ok {
            removed.push(info);
        }
    }
    Ok(removed)
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
        type_name: None,
        status: Status::Foreign,
    };
    match Segment::open_observer(&id) {
        Ok(seg) => {
            // Only a segment that begins with our magic is ours; a raw
            // segment (the seed's, or `--raw`) is foreign.
            let (shmid, nattch) = (st.shmid, st.nattch);
            fill_managed(&mut info, seg, |m, creator_alive| {
                // Detach first: this observer must not count itself.
                drop(m);
                sysv_unheld(shmid, nattch, creator_alive)
            });
        }
        Err(Error::PermissionDenied { .. }) => info.status = Status::Unreadable,
        Err(_) => {}
    }
    info
}

fn posix_info(id: &SegmentId, maps: &[(u32, String)]) -> SegmentInfo {
    use std::os::unix::fs::MetadataExt;
    let SegmentId::Posix(name) = id else {
        unreachable!()
    };
    let meta = std::fs::metadata(format!("/dev/shm/{name}")).ok();
    let path = format!("/dev/shm/{name}");
    let me = std::process::id();
    let mut holders: Vec<u32> = maps
        .iter()
        .filter(|(pid, p)| *pid != me && *p == path)
        .map(|(pid, _)| *pid)
        .collect();
    holders.dedup();
    let mut info = SegmentInfo {
        backend: Backend::Posix,
        id: id.clone(),
        shmid: None,
        size: meta.as_ref().map_or(0, std::fs::Metadata::len),
        payload: None,
        kind: None,
        lifetime: None,
        uid: meta.as_ref().map_or(0, MetadataExt::uid),
        owner: meta
            .as_ref()
            .map_or_else(String::new, |m| user_name(m.uid())),
        mode: meta.as_ref().map_or(0, |m| m.mode() & 0o777),
        creator_pid: None,
        creator_alive: None,
        attached: Some(holders.len() as u64),
        created: meta.as_ref().map(MetadataExt::ctime),
        type_name: None,
        status: Status::Foreign,
    };
    match Segment::open_observer(id) {
        Ok(seg) => {
            fill_managed(&mut info, seg, |m, _| {
                m.segment().posix_unheld() == Some(true)
            });
        }
        Err(Error::PermissionDenied { .. }) => info.status = Status::Unreadable,
        Err(_) => {}
    }
    info
}

/// How long a System V attach count above 0 is watched for a moment at 0
/// before an owned segment whose creator is dead is believed held.
const OBSERVER_GRACE: Duration = Duration::from_millis(25);

/// Whether no process holds System V segment `shmid`, whose attach count
/// was `nattch` before this process attached to it.
///
/// A holder stays attached for its whole life, but every observer (`ls`,
/// `inspect`, `rm --stale` in other processes) attaches for a few
/// microseconds to read the header, and a killed holder's attachment goes
/// only when its memory is torn down, which a concurrent reader of its
/// `/proc/PID/maps` delays a little. So a count above 0 is not yet proof of
/// a holder. While the creator lives the segment is held (a creator of an
/// owned segment holds it, and removes it when it lets go); once it is
/// dead, the count is sampled for [`OBSERVER_GRACE`], and a single 0 shows
/// that nobody holds it. A segment that is gone in the meantime is not
/// called stale.
fn sysv_unheld(shmid: i32, nattch: u64, creator_alive: bool) -> bool {
    if nattch == 0 {
        return true;
    }
    if creator_alive {
        return false;
    }
    let deadline = Instant::now() + OBSERVER_GRACE;
    loop {
        match sysv::stat(shmid) {
            Ok(s) if s.nattch == 0 => return true,
            Ok(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(500));
            }
            _ => return false,
        }
    }
}

/// Fills in what the header of a managed segment says. `unheld` is asked,
/// only for an owned segment, whether no process holds it; it gets the
/// open segment (to drop or to use) and whether its creator is alive.
fn fill_managed(info: &mut SegmentInfo, seg: Segment, unheld: impl FnOnce(Managed, bool) -> bool) {
    if HeaderBytes::read(&seg).magic() != crate::header::MAGIC {
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
            info.created = Some((m.created_ns() / 1_000_000_000) as i64);
            info.type_name = Some(m.type_name());
            info.status = match info.lifetime {
                Some(Lifetime::Persistent) => Status::Persistent,
                _ if unheld(m, creator_alive) => Status::Stale,
                _ => Status::Live,
            };
        }
        Err((_, Error::NotReady { .. })) => info.status = Status::Initializing,
        Err((_, e)) => info.status = Status::Invalid(e.to_string()),
    }
}

/// (pid, path) of every `/dev/shm` mapping this user can see in
/// `/proc/*/maps`.
fn posix_maps() -> Vec<(u32, String)> {
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
        for line in text.lines() {
            if let Some(pos) = line.find("/dev/shm/") {
                let path = line[pos..].trim_end_matches(" (deleted)").to_owned();
                seen.insert(path);
            }
        }
        out.extend(seen.into_iter().map(|p| (pid, p)));
    }
    out
}
