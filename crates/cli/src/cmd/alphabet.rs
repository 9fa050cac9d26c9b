//! `shmex alphabet …`.

use std::process::ExitCode;

/// Flags of `shmex alphabet`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}
