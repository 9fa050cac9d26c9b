//! `shmex bench`: figures measured against baselines run in the same
//! invocation, on the same machine, reported as percentiles and ratios.

mod args;
pub mod channel;
mod exchange;
mod stats;

use std::process::ExitCode;

pub use args::Args;
use args::What;

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
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
