//! What a `shmex` process that makes things of its own (the demo, the
//! benchmarks) may leave behind: segments and temporary files whose names
//! carry its pid (`shmex-TAG-PID`, `shmex-TAG-PID-N`), its System V key,
//! and child processes.

use std::path::Path;

use super::SegmentId;

/// Whether `name` is one that process `pid` makes: `…-PID` or `…-PID-…`.
fn carries_pid(name: &str, pid: u32) -> bool {
    let tag = format!("-{pid}");
    name.match_indices(&tag).any(|(i, _)| {
        let rest = &name[i + tag.len()..];
        rest.is_empty() || rest.starts_with('-') || rest.starts_with('.')
    })
}

/// Entries of `dir` that start with `shmex-` and carry `pid`.
fn entries(dir: &Path, pid: u32) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("shmex-") && carries_pid(n, pid))
        .collect()
}

/// Everything process `pid` left: its POSIX segments, its files in the
/// temporary directory, and its System V key (the demo's and benchmarks'
/// `0x5300_0000 | pid`), named for a failure message.
pub fn left_by(pid: u32) -> Vec<String> {
    let mut left: Vec<String> = entries(Path::new("/dev/shm"), pid)
        .into_iter()
        .map(|n| format!("/dev/shm/{n}"))
        .collect();
    let tmp = std::env::temp_dir();
    left.extend(
        entries(&tmp, pid)
            .into_iter()
            .map(|n| tmp.join(n).display().to_string()),
    );
    let key = SegmentId::SysV(0x5300_0000 | (pid as i32 & 0xFFFF));
    if super::exists(&key) {
        left.push(format!("System V segment {key}"));
    }
    left
}

/// Removes what [`left_by`] finds, for a test that failed before it could
/// check.
pub fn remove_left_by(pid: u32) {
    for name in entries(Path::new("/dev/shm"), pid) {
        let _ = shm::Segment::remove(&SegmentId::Posix(name));
    }
    let tmp = std::env::temp_dir();
    for name in entries(&tmp, pid) {
        let _ = std::fs::remove_file(tmp.join(name));
    }
    let _ = shm::Segment::remove(&SegmentId::SysV(0x5300_0000 | (pid as i32 & 0xFFFF)));
}

/// The processes whose parent is `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(read) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    read.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| parent_of(*child) == Some(pid))
        .collect()
}

/// The parent of process `pid`, if it still exists.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `PID (COMM) STATE PPID …`; COMM may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Those of `pids` that still run (and are not zombies).
pub fn still_running(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let after = &s[s.rfind(')')? + 1..];
                    after.split_whitespace().next().map(|st| st != "Z")
                })
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn names_that_carry_a_pid() {
    assert!(carries_pid("shmex-demo-123", 123));
    assert!(carries_pid("shmex-bench-ex-123-4", 123));
    assert!(carries_pid("shmex-demo-channel-123-b.in", 123));
    assert!(!carries_pid("shmex-demo-1234", 123));
    assert!(!carries_pid("shmex-demo-0123", 12));
}
