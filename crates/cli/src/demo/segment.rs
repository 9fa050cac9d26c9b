//! The demo's first part: a segment's life, the seed's Process A and
//! Process B.

use shm::SegmentId;

use super::step::{shmex, step};
use crate::support::scratch::{self, Guard};

pub fn run() -> anyhow::Result<()> {
    let name = scratch::name("demo");
    let _guard = Guard::segment(SegmentId::posix(name.clone())?);
    step("A segment's life. Process A creates a 4 KiB POSIX segment (mode 0600, exclusive):");
    shmex(&["segment", "create", "--name", &name, "--size", "4K"])?;
    step("Process A writes into it and exits; the segment stays, as in the seed:");
    shmex(&["segment", "write", "--name", &name, "hello from process A"])?;
    step("Process B, a different process, attaches and reads the same bytes:");
    let got = shmex(&["segment", "read", "--name", &name, "--len", "20"])?;
    anyhow::ensure!(got == "hello from process A", "process B read {got:?}");
    step("Every segment has a header shmex validates; `inspect` shows it:");
    shmex(&["segment", "inspect", "--name", &name])?;
    step("Unlike the seed, shmex removes what it made:");
    shmex(&["segment", "rm", "--name", &name])?;
    Ok(())
}
