//! `segment rm`: by key, name or System V id, or every stale segment.

use std::process::ExitCode;

use shm::{Segment, SegmentId, SegmentInfo};

use super::ls::{backend, matches};
use crate::support::error::{BadInput, one_line};

/// What `rm` removes, parsed before anything is removed.
enum RmTarget {
    Id(SegmentId),
    Shmid(i32),
}

pub(super) fn remove(
    keys: &[String],
    names: &[String],
    ids: &[String],
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let mut targets = Vec::new();
    for k in keys {
        targets.push(RmTarget::Id(SegmentId::parse_key(k)?));
    }
    for n in names {
        targets.push(RmTarget::Id(SegmentId::posix(n.clone())?));
    }
    for i in ids {
        let shmid = i
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                BadInput(format!(
                    "invalid shmid {i:?}: expected a System V segment id such as `ipcs -m` shows"
                ))
            })?;
        targets.push(RmTarget::Shmid(shmid));
    }
    if targets.is_empty() {
        return Err(BadInput(
            "give what to remove: --key K, --name N, --id SHMID or --stale".into(),
        )
        .into());
    }
    let single = targets.len() == 1;
    let mut failed = 0;
    for t in &targets {
        let done = match t {
            RmTarget::Id(id) => {
                let r = if dry_run {
                    shm::inspect(id).map(drop)
                } else {
                    Segment::remove(id)
                };
                r.map(|()| format!("segment {id}"))
            }
            RmTarget::Shmid(shmid) => Segment::sysv_key_of(*shmid).and_then(|key| {
                if !dry_run {
                    Segment::remove_sysv_id(*shmid)?;
                }
                Ok(format!("segment shmid {shmid} (key 0x{:08x})", key as u32))
            }),
        };
        match done {
            Ok(what) if dry_run => println!("would remove {what}"),
            Ok(what) => println!("removed {what}"),
            Err(e) if single => return Err(e.into()),
            Err(e) => {
                failed += 1;
                eprintln!("shmex: {}", one_line(&e.into()));
            }
        }
    }
    if failed > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn remove_stale(patterns: &[String], dry_run: bool) -> anyhow::Result<ExitCode> {
    let stale: Vec<SegmentInfo> = shm::list()?
        .into_iter()
        .filter(|i| i.status == shm::Status::Stale)
        .filter(|i| patterns.is_empty() || patterns.iter().any(|p| matches(p, i)))
        .collect();
    if stale.is_empty() {
        println!("no stale segments");
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        for info in &stale {
            println!("would remove stale {} segment {}", backend(info), info.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    #[cfg(debug_assertions)]
    test_pause("SHMEX_TEST_RM_STALE_PAUSE");
    for info in &stale {
        // Only the very segment listed, if it is still stale.
        if shm::remove_if_stale(info)? {
            println!("removed stale {} segment {}", backend(info), info.id);
        } else {
            println!(
                "kept {} segment {}: it changed since it was listed stale",
                backend(info),
                info.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Debug builds only, for the tests: if the variable names a file, creates
/// it and waits (at most a minute) until it is removed, so that a test can
/// act in the window between the listing and the removal.
#[cfg(debug_assertions)]
fn test_pause(var: &str) {
    let Some(path) = std::env::var_os(var).map(std::path::PathBuf::from) else {
        return;
    };
    if std::fs::write(&path, b"").is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
