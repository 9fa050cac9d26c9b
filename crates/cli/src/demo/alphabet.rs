//! The demo's second part: the classic producer and consumer of the
//! alphabet, each its own process.

use std::process::Stdio;

use anyhow::Context as _;
use shm::SegmentId;

use super::step::{shmex, step};
use crate::support::exe;
use crate::support::exe::Process;
use crate::support::scratch::{self, Guard};

pub fn run() -> anyhow::Result<()> {
    // A key of our own, so the demo never collides with a classic program
    // running on 5678.
    let key = scratch::sysv_key();
    let key_text = key.to_string();
    let _guard = Guard::segment(SegmentId::sysv(key)?);
    step(&format!(
        "The producer and consumer of the alphabet, wire-compatible with the classic C programs (which use key 5678), here on System V key {key}: the consumer starts first and waits for the whole alphabet."
    ));
    println!("    $ shmex alphabet consume --key {key} &");
    let consumer = Process::spawn(
        exe::command()?
            .args(["alphabet", "consume", "--key", &key_text, "--timeout", "10"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped()),
    )
    .context("starting the consumer")?;
    shmex(&["alphabet", "produce", "--key", &key_text, "--timeout", "10"])?;
    let out = consumer.output()?;
    let letters = String::from_utf8_lossy(&out.stdout);
    println!("      consumer printed: {}", letters.trim_end());
    anyhow::ensure!(out.status.success(), "the consumer failed");
    anyhow::ensure!(
        letters.trim_end() == "abcdefghijklmnopqrstuvwxyz",
        "the consumer printed {letters:?}"
    );
    println!(
        "    all 26 letters arrived, the producer saw '*' without spinning, and removed the segment."
    );
    Ok(())
}
