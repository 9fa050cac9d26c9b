//! The demo's first part: a segment's life, Process A and Process B.

use super::step::{shmex, step};
use super::{Names, posix_name};
use crate::support::scratch::Guard;

/// Returns the guard that removes the segment: kept with `--keep`, it
/// leaves it in place once the whole demo went well.
pub fn run(names: &Names) -> anyhow::Result<Guard> {
    let name = posix_name(&names.segment);
    let guard = Guard::segment(names.segment.clone());
    step("A segment's life. Process A creates a 4 KiB POSIX segment (mode 0600, exclusive):");
    shmex(&["segment", "create", "--name", &name, "--size", "4K"])?;
    step("Process A writes into it and exits; the segment stays (it is persistent):");
    shmex(&["segment", "write", "--name", &name, "hello from process A"])?;
    step("Process B, a different process, attaches and reads the same bytes:");
    let got = shmex(&["segment", "read", "--name", &name, "--len", "20"])?;
    anyhow::ensure!(got == "hello from process A", "process B read {got:?}");
    step("Every segment has a header shmex validates; `inspect` shows it:");
    shmex(&["segment", "inspect", "--name", &name])?;
    if names.keep {
        step("With --keep, the segment stays for you to explore once the demo ends.");
    } else {
        step("A segment nobody needs any more is removed; nothing leaks:");
        shmex(&["segment", "rm", "--name", &name])?;
    }
    Ok(guard)
}
