//! `shmex`: one binary, a subcommand per job.
#![forbid(unsafe_code)]

mod bench;
mod cli;
mod cmd;
mod demo;
mod error;
mod table;
mod util;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return usage_error(&err),
    };
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            let code = error::exit_code(&err);
            eprintln!("shmex: {}", error::one_line(&err));
            ExitCode::from(code)
        }
    }
}

/// Help and version go out as clap writes them; a usage error becomes one
/// line, like every other error, with exit status 2.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
    }
    // The first paragraph says what is wrong (it may list several missing
    // arguments on the lines that follow); the usage that comes after is
    // what `--help` is for.
    let text = err.render().to_string();
    let first = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    eprintln!("shmex: {first} (see `--help`)");
    ExitCode::from(2)
}

fn run(args: cli::Cli) -> anyhow::Result<ExitCode> {
    use cli::Command;
    // The segment layer names only its own kind; listings and errors name
    // these once registered.
    shm::register_kind(channel::KIND)?;
    shm::register_kind(exchange::KIND)?;
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
