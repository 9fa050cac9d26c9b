//! `shmex`: one binary, a subcommand per job.
#![forbid(unsafe_code)]

mod bench;
mod cli;
mod cmd;
mod demo;
mod error;
mod util;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            let code = error::exit_code(&err);
            eprintln!("shmex: {}", error::one_line(&err));
            ExitCode::from(code)
        }
    }
}

fn run(args: cli::Cli) -> anyhow::Result<ExitCode> {
    use cli::Command;
    match args.command {
        Command::Demo(a) => demo::run(&a),
        Command::Segment(a) => cmd::segment::run(a),
        Command::Alphabet(a) => cmd::alphabet::run(a),
        Command::Send(a) => cmd::channel::send(a),
        Command::Recv(a) => cmd::channel::recv(a),
        Command::Exchange(a) => cmd::exchange::run(a),
        Command::Bench(a) => bench::run(&a),
        Command::ChannelWorker(a) => bench::channel::worker(&a.args),
        Command::ExchangeWorker(a) => bench::exchange::worker(&a.args),
    }
}
