//! `shmex bench channel`.

/// Runs the benchmark; prints its table unless `args.json`; returns the
/// figures as JSON.
pub fn run(_args: &super::Args) -> anyhow::Result<serde_json::Value> {
    anyhow::bail!("bench channel is not yet implemented")
}

/// Entry point of a worker process started by this benchmark.
pub fn worker(_args: &[String]) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("no such worker")
}
