//! The command line: clap definitions, and which code runs each
//! subcommand. Each subcommand's own flags live in its module, beside the
//! code that runs it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::support::trader;
use crate::{bench, cmd, demo};

/// Inter-process communication through shared memory: segments, a fast
/// producer/consumer channel, and a currency exchange many processes trade on.
///
/// Exit status: 0 success, 1 the operation failed or was refused, 2 bad usage
/// or bad input.
#[derive(Debug, Parser)]
#[command(
    name = "shmex",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system on built-in defaults, start to finish, explaining each step.
    Demo(demo::Args),
    /// Create, write, read, list, inspect and remove segments (System V or POSIX).
    Segment(cmd::segment::Args),
    /// The classic producer and consumer of the alphabet (key 5678, 27 bytes, `*` answers).
    Alphabet(cmd::alphabet::Args),
    /// Stream stdin into channel NAME.
    Send(cmd::channel::SendArgs),
    /// Stream channel NAME to stdout.
    Recv(cmd::channel::RecvArgs),
    /// The currency exchange: init, quote, trade, check, journal and more.
    Exchange(cmd::exchange::Args),
    /// Measure the channel and the exchange against baselines run alongside.
    Bench(bench::Args),
    /// Internal: a benchmark's second process.
    #[command(name = "__channel-worker", hide = true)]
    ChannelWorker(WorkerArgs),
    /// Internal: a benchmark's trader process.
    #[command(name = "__exchange-worker", hide = true)]
    ExchangeWorker(WorkerArgs),
    /// Internal: a benchmark's SQLite or LMDB worker process.
    #[command(name = "__peer-worker", hide = true)]
    PeerWorker(WorkerArgs),
}

/// Raw arguments for an internal worker, parsed by its own module.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs the subcommand `args` names.
pub fn run(args: Cli) -> anyhow::Result<ExitCode> {
    // The segment layer names only its own kind; listings and errors name
    // these once registered.
    shm::register_kind(channel::KIND)?;
    shm::register_kind(exchange::KIND)?;
    let result = match args.command {
        Command::Demo(a) => demo::run(&a),
        Command::Segment(a) => cmd::segment::run(a),
        Command::Alphabet(a) => cmd::alphabet::run(a),
        Command::Send(a) => cmd::channel::send(a),
        Command::Recv(a) => cmd::channel::recv(a),
        Command::Exchange(a) => cmd::exchange::run(a),
        Command::Bench(a) => bench::run(&a),
        Command::ChannelWorker(a) => bench::channel::worker(&a.args),
        Command::ExchangeWorker(a) => trader::worker(&a.args),
        Command::PeerWorker(a) => bench::peer_worker(&a.args),
    };
    // A segment that shrank under this process (design rule 8) explains
    // whatever came after it, and no command that read zeros from it may
    // end with success. The commands check before they answer; this is
    // the net under them.
    shm::check_mappings()?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
