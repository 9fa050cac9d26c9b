//! `shmex demo`: the whole system on built-in defaults, start to finish,
//! in real separate processes, leaving nothing behind. Each part is a file
//! of its own; they share [`step`]'s way of showing and running a step.

mod alphabet;
mod channel;
mod exchange;
mod segment;
mod step;

use std::process::ExitCode;

/// Flags of `shmex demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    println!("shmex demo: every step below runs in its own process, as separate programs would.");
    segment::run()?;
    alphabet::run()?;
    channel::run()?;
    exchange::run()?;
    step::step(
        "done: nothing is left behind (check with `shmex segment ls`, `ipcs -m`, `ls /dev/shm`).",
    );
    Ok(ExitCode::SUCCESS)
}
