//! `shmex bench`: figures measured against baselines run in the same
//! invocation, on the same machine, reported as percentiles and ratios.

//!
//! A termination signal (Ctrl-C, SIGTERM, SIGHUP) stops the benchmark
//! between steps or in a wait: its worker processes are killed and what it
//! made is removed, and it exits with status 128 + the signal.

mod args;
pub mod channel;
mod exchange;
mod progress;
mod stats;

use std::process::ExitCode;

pub use args::Args;
use args::What;
pub use exchange::peer_worker;

use crate::support::error::Interrupted;

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    shm::sys::catch_termination();
    Interrupted::or_signal("the benchmark", measure(args))
}

fn measure(args: &Args) -> anyhow::Result<ExitCode> {
    let mut out = serde_json::Map::new();
    if matches!(args.what, What::Channel | What::All) {
        out.insert("channel".into(), channel::run(args)?);
    }
    if matches!(args.what, What::Exchange | What::All) {
        out.insert("exchange".into(), exchange::run(args)?);
    }
    if args.json {
        println!("{}", serde_json::Value::Object(out));
    }
    Ok(ExitCode::SUCCESS)
}
