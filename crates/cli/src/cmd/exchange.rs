//! `shmex exchange …`.

use std::process::ExitCode;

/// Flags of `shmex exchange`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}

/// Exit status for this layer's library errors, if `cause` is one.
pub fn exit_code_for(_cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    None
}

/// The exchange's part of `shmex demo`.
pub fn demo() -> anyhow::Result<()> {
    Ok(())
}
