//! `shmex segment …`.

use std::process::ExitCode;

/// Flags of `shmex segment`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
