//! `shmex`: one binary, a subcommand per job.
//!
//! The modules stand in layers, each using only those below it:
//! `main` → `cli` → `demo`, `bench` and `cmd` (the demo also shows what
//! `cmd::exchange::show` prints) → `support` (errors, option parsing,
//! time, re-running this binary, scratch names, the trader worker).
#![forbid(unsafe_code)]

mod bench;
mod cli;
mod cmd;
mod demo;
mod support;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return usage_error(&err),
    };
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            let code = cmd::exit_code(&err);
            eprintln!("shmex: {}", support::error::one_line(&err));
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
