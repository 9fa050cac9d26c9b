//! `shmex demo`: the whole system on built-in defaults.

use std::process::ExitCode;

/// Flags of `shmex demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    crate::cmd::channel::demo()?;
    crate::cmd::exchange::demo()?;
    Ok(ExitCode::SUCCESS)
}
