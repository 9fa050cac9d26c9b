//! `shmex send` and `shmex recv`.

use std::process::ExitCode;

/// Flags of `shmex send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Channel name.
    pub name: String,
}

/// Flags of `shmex recv`.
#[derive(Debug, clap::Args)]
pub struct RecvArgs {
    /// Channel name.
    pub name: String,
}

pub fn send(_args: SendArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}

pub fn recv(_args: RecvArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet implemented")
}

/// Exit status for this layer's library errors, if `cause` is one.
pub fn exit_code_for(_cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    None
}

/// The channel's part of `shmex demo`.
pub fn demo() -> anyhow::Result<()> {
    Ok(())
}
