//! This very binary, run again: as a benchmark's or the demo's worker, or
//! as a separate `shmex` process.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;

/// This very binary, to re-execute: `/proc/self/exe` still names it when
/// a rebuild has replaced the file on disk.
pub fn self_exe() -> anyhow::Result<PathBuf> {
    let proc = PathBuf::from("/proc/self/exe");
    if proc.exists() {
        return Ok(proc);
    }
    std::env::current_exe().context("cannot find the shmex binary to re-execute")
}

/// A command that runs this binary again, under the name it was started
/// with (so that it calls itself what this process does).
pub fn command() -> anyhow::Result<Command> {
    use std::os::unix::process::CommandExt as _;

    let mut cmd = Command::new(self_exe()?);
    if let Some(name) = std::env::args_os().next() {
        cmd.arg0(name);
    }
    Ok(cmd)
}
