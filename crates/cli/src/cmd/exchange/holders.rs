//! Which processes have an exchange's segment attached, from their memory
//! maps: what `destroy` names before it refuses.

use std::fmt;
use std::os::unix::fs::MetadataExt as _;

use shm::SegmentId;

/// A process that has the segment attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command line, shortened.
    pub command: String,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.command)
    }
}

/// The processes other than this one that have segment `id` attached, and
/// how many more are attached that this user cannot see (known for System
/// V, whose attach count the kernel keeps; 0 for POSIX).
///
/// Each process's `/proc/PID/maps` names what it maps: a POSIX segment as
/// its file in `/dev/shm` (matched by inode, so an older file of the same
/// name, already removed, does not count), a System V one as `/SYSV…`
/// with its shmid in the inode column.
pub fn holders(id: &SegmentId) -> (Vec<Holder>, u64) {
    let (inode, path, attached) = match id {
        SegmentId::Posix(name) => {
            let path = format!("/dev/shm/{name}");
            match std::fs::metadata(&path) {
                Ok(m) => (m.ino(), Some(path), None),
                Err(_) => return (Vec::new(), 0),
            }
        }
        SegmentId::SysV(_) => match shm::inspect(id) {
            Ok(info) => match info.shmid {
                Some(shmid) => (shmid as u64, None, info.attached),
                None => return (Vec::new(), 0),
            },
            Err(_) => return (Vec::new(), 0),
        },
    };
    let me = std::process::id();
    let mut found = 0u64;
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (out, 0);
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            continue;
        };
        let maps_it = maps.lines().any(|line| {
            let mut f = line.split_ascii_whitespace();
            let ino = f.nth(4).and_then(|s| s.parse::<u64>().ok());
            let file = f.next().unwrap_or("");
            ino == Some(inode)
                && match &path {
                    Some(p) => file == p,
                    None => file.starts_with("/SYSV"),
                }
        });
        if !maps_it {
            continue;
        }
        found += 1;
        if pid != me {
            out.push(Holder {
                pid,
                command: command_line(pid),
            });
        }
    }
    let unseen = attached.map_or(0, |n| n.saturating_sub(found));
    (out, unseen)
}

/// A process's command line, its program as a bare name, at most 80
/// characters.
fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut words = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned());
    let Some(prog) = words.next() else {
        return "?".into();
    };
    let prog = prog.rsplit('/').next().unwrap_or(&prog).to_owned();
    let line = std::iter::once(prog)
        .chain(words)
        .collect::<Vec<_>>()
        .join(" ");
    match line.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}
