//! The demo's third part: the channel, through `shmex send` and `shmex
//! recv` running as two separate processes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use shm::SegmentId;

use super::step::step;
use crate::support::exe;
use crate::support::scratch::{self, Guard};

/// The alphabet, then a bulk transfer, each `send FILE_IN | recv >
/// FILE_OUT` with each end its own process.
pub fn run() -> anyhow::Result<()> {
    let base = scratch::name("demo-channel");
    step(
        "The channel: the producer hands the alphabet to the consumer through a ring in shared memory.",
    );
    println!("    $ shmex recv {base}-a > out &  shmex send {base}-a < alphabet");
    let (got, _) = pair(&format!("{base}-a"), b"abcdefghijklmnopqrstuvwxyz")?;
    println!("      recv wrote: {}", String::from_utf8_lossy(&got));
    anyhow::ensure!(
        got == b"abcdefghijklmnopqrstuvwxyz",
        "the alphabet did not arrive whole"
    );

    const BULK: usize = 256 << 20;
    step(
        "The same pair moves a 256 MiB file: no system call per message, no copy through the kernel.",
    );
    let data: Vec<u8> = (0..BULK as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    let (got, took) = pair(&format!("{base}-b"), &data)?;
    anyhow::ensure!(got == data, "the file arrived changed");
    println!(
        "      {} MiB arrived intact in {:.0} ms, process start-up and file reads and writes included ({:.2} GiB/s)",
        BULK >> 20,
        took.as_secs_f64() * 1e3,
        BULK as f64 / took.as_secs_f64() / f64::from(1u32 << 30)
    );
    println!(
        "      the channel's segment went away when both ends were done; `shmex bench channel` measures the ring alone"
    );
    Ok(())
}

/// Sends `data` through channel `name` from one process to another, by
/// way of two files; returns what arrived and how long it took.
fn pair(name: &str, data: &[u8]) -> anyhow::Result<(Vec<u8>, Duration)> {
    let dir = std::env::temp_dir();
    let (src, dst) = (
        dir.join(format!("{name}.in")),
        dir.join(format!("{name}.out")),
    );
    // Removes the channel (if a step fails before both ends attach) and
    // the files.
    let _guard = Guard::new(
        vec![SegmentId::posix(name.to_owned())?],
        vec![src.clone(), dst.clone()],
    );
    std::fs::write(&src, data)?;
    let started = Instant::now();
    let mut recv = exe::command()?
        .args(["recv", name, "--timeout", "10"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dst)?)
        .spawn()?;
    let sent = exe::command()?
        .args(["send", name, "--timeout", "10"])
        .stdin(std::fs::File::open(&src)?)
        .status()?;
    let received = recv.wait()?;
    let took = started.elapsed();
    anyhow::ensure!(
        sent.success() && received.success(),
        "shmex send or recv failed"
    );
    Ok((std::fs::read(&dst)?, took))
}
