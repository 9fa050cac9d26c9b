//! What exists for one run of a benchmark or the demo: names that no other
//! run uses, and segments, files, exchanges and trader processes that are
//! removed when the run ends, however it ends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, bail};
use exchange::{Config, Exchange};
use serde_json::Value;
use shm::SegmentId;

use super::exe::Process;
use super::trader::{Report, TraderArgs};

/// `shmex-TAG-PID`: a name for something this process makes once.
pub fn name(tag: &str) -> String {
    format!("shmex-{tag}-{}", std::process::id())
}

/// `shmex-TAG-PID-N`: a name no other call in any process returns.
pub fn unique_name(tag: &str) -> String {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmex-{tag}-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    )
}

/// A System V key of this process's own, away from the seed's 5678.
pub fn sysv_key() -> i32 {
    0x5300_0000 | (std::process::id() as i32 & 0xFFFF)
}

/// Segments and files removed when the guard is dropped.
#[derive(Debug, Default)]
pub struct Guard {
    segments: Vec<SegmentId>,
    files: Vec<PathBuf>,
}

impl Guard {
    /// Removes `segments`, then `files`, when dropped.
    pub fn new(segments: Vec<SegmentId>, files: Vec<PathBuf>) -> Guard {
        Guard { segments, files }
    }

    /// Removes `id` when dropped.
    pub fn segment(id: SegmentId) -> Guard {
        Guard::new(vec![id], Vec::new())
    }

    /// Removes `path` too.
    pub fn file(&mut self, path: PathBuf) {
        self.files.push(path);
    }

    /// Leaves the segments and files in place after all.
    pub fn keep(mut self) {
        self.segments.clear();
        self.files.clear();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for id in &self.segments {
            let _ = shm::Segment::remove(id);
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// An exchange (and trader processes, and files) that exist for one run:
/// the traders are killed and the exchange and files removed when it is
/// dropped.
#[derive(Debug)]
pub struct Scratch {
    pub id: SegmentId,
    children: Vec<Process>,
    guard: Guard,
}

impl Scratch {
    /// A fresh exchange under a unique name, created from `config`.
    pub fn new(tag: &str, config: Config) -> anyhow::Result<(Scratch, Exchange)> {
        Scratch::at(SegmentId::posix(unique_name(tag))?, config)
    }

    /// A fresh exchange `id`, created from `config`.
    pub fn at(id: SegmentId, config: Config) -> anyhow::Result<(Scratch, Exchange)> {
        let s = Scratch {
            guard: Guard::segment(id.clone()),
            id,
            children: Vec::new(),
        };
        let ex = Exchange::create(&s.id, &config.into_state()?, &[], 0o600)?;
        Ok((s, ex))
    }

    /// The exchange's name, as `--exchange` takes it.
    pub fn name(&self) -> String {
        match &self.id {
            SegmentId::Posix(n) => n.clone(),
            SegmentId::SysV(k) => k.to_string(),
        }
    }

    /// Removes `path` with the exchange.
    pub fn file(&mut self, path: PathBuf) {
        self.guard.file(path);
    }

    /// Starts a trader process; returns its index.
    pub fn spawn_trader(&mut self, t: &TraderArgs) -> anyhow::Result<usize> {
        let child =
            Process::spawn(&mut t.command(&self.name())?).context("cannot start a trader")?;
        self.children.push(child);
        Ok(self.children.len() - 1)
    }

    /// Waits for every trader and returns their reports, in order.
    pub fn reports(&mut self) -> anyhow::Result<Vec<Report>> {
        let mut out = Vec::new();
        for child in std::mem::take(&mut self.children) {
            let o = child.output()?;
            if !o.status.success() {
                bail!(
                    "a trader process failed ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            let v: Value =
                serde_json::from_slice(&o.stdout).context("a trader process printed no report")?;
            out.push(Report::from_json(&v)?);
        }
        Ok(out)
    }
}

impl Scratch {
    /// Leaves the exchange (and files) in place; the traders are stopped.
    pub fn keep(mut self) {
        self.children.clear();
        std::mem::take(&mut self.guard).keep();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Killed before the guard removes the exchange they trade on.
        self.children.clear();
    }
}
