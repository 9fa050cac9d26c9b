//! `shmex`: one binary, a subcommand per job.
//!
//! The modules stand in layers, each using only those below it:
//! `main` → `cli` → `demo`, `bench` and `cmd` (the demo also shows what
//! `cmd::exchange::show` prints) → `support` (errors, option parsing,
//! time, re-running this binary, scratch names, the trader worker).
// No unsafe code, but for opening LMDB (heed's `open` is unsafe), only
// with the benchmark's peers (`--features peers`), where it is denied but
// for that one function.
#![cfg_attr(not(feature = "peers"), forbid(unsafe_code))]
#![cfg_attr(feature = "peers", deny(unsafe_code))]

mod bench;
mod cli;
mod cmd;
mod demo;
mod support;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

use support::pipe;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return usage_error(&err),
    };
    // A reader of stdout that went away (`shmex … | head -1`) ends any
    // command quietly with status 0, as it does `rg`: whether a write
    // returned the error or a `println!` panicked on it.
    let Some(result) = pipe::quiet_on_closed_stdout(|| cli::run(args)) else {
        return ExitCode::SUCCESS;
    };
    match result {
        Ok(code) => code,
        Err(err) if pipe::closed_stdout(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let code = cmd::exit_code(&err);
            // Not `eprintln!`, which panics when stderr is closed too.
            let _ = writeln!(
                std::io::stderr(),
                "shmex: {}",
                support::error::one_line(&err)
            );
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
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let line = usage_line(err, &args);
    // An exchange command asked for JSON gets its failure in JSON too.
    if let Some(json) = cmd::exchange::usage_failure_json(&args, &line) {
        let _ = writeln!(std::io::stdout(), "{json}");
    }
    let _ = writeln!(std::io::stderr(), "shmex: {line}");
    ExitCode::from(2)
}

/// A usage error on one line: what is wrong, clap's suggestion if it has
/// one (`did you mean 'exchange'?`), and the `--help` that explains, of the
/// subcommand that `args` (the command line, without the program) named.
///
/// clap renders the error in paragraphs: what is wrong (it may list
/// several missing arguments on the lines that follow), its tips, the
/// usage. The first paragraph is kept; the tips come from the error's
/// context, less the internal subcommands nobody types.
fn usage_line(err: &clap::Error, args: &[String]) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = err.render().to_string();
    let first = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let mut line = first.strip_prefix("error: ").unwrap_or(&first).to_owned();
    let (path, command) = subcommand(args);
    let hidden = |name: &str| {
        command
            .find_subcommand(name)
            .is_some_and(clap::Command::is_hide_set)
    };
    for kind in [
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedArg,
        ContextKind::SuggestedValue,
    ] {
        let names: Vec<&String> = match err.get(kind) {
            Some(ContextValue::String(s)) => vec![s],
            Some(ContextValue::Strings(v)) => v.iter().collect(),
            _ => continue,
        };
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| !hidden(n))
            .map(|n| format!("'{n}'"))
            .collect();
        if !names.is_empty() {
            line.push_str(&format!("; did you mean {}?", names.join(" or ")));
        }
    }
    if let Some(ContextValue::StyledStrs(tips)) = err.get(ContextKind::Suggested) {
        for tip in tips {
            line.push_str(&format!("; {tip}"));
        }
    }
    line.push_str(&format!(" (see `{path} --help`)"));
    line
}

/// The deepest subcommand `args` names, as `shmex exchange buy`, and its
/// definition: each word that names a subcommand of the one before goes
/// down a level; options and their values name none.
fn subcommand(args: &[String]) -> (String, clap::Command) {
    use clap::CommandFactory as _;
    let mut command = cli::Cli::command();
    let mut path = vec![command.get_name().to_owned()];
    for arg in args.iter().take_while(|a| *a != "--") {
        let Some(sub) = command.find_subcommand(arg).cloned() else {
            continue;
        };
        path.push(sub.get_name().to_owned());
        command = sub;
    }
    (path.join(" "), command)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::usage_line;
    use crate::cli::Cli;

    fn line(args: &[&str]) -> String {
        let err = Cli::try_parse_from(args).expect_err("a usage error");
        let args: Vec<String> = args[1..].iter().map(|a| (*a).to_owned()).collect();
        usage_line(&err, &args)
    }

    #[test]
    fn suggestions_stay_on_the_line() {
        assert_eq!(
            line(&["shmex", "exchnage"]),
            "unrecognized subcommand 'exchnage'; did you mean 'exchange'? (see `shmex --help`)"
        );
        assert_eq!(
            line(&["shmex", "segment", "list"]),
            "unrecognized subcommand 'list'; did you mean 'ls'? (see `shmex segment --help`)"
        );
        let acount = line(&["shmex", "exchange", "buy", "--acount", "a", "DOLLAR", "1"]);
        assert!(
            acount.starts_with("unexpected argument '--acount' found; did you mean '--account'?"),
            "{acount}"
        );
        assert!(
            acount.ends_with("(see `shmex exchange buy --help`)"),
            "{acount}"
        );
    }

    #[test]
    fn values_and_missing_ones() {
        assert_eq!(
            line(&["shmex", "bench", "chanel"]),
            "invalid value 'chanel' for '[WHAT]' [possible values: channel, exchange, all]; did you mean 'channel'? (see `shmex bench --help`)"
        );
        assert_eq!(
            line(&["shmex", "segment", "rm", "--name"]),
            "a value is required for '--name <N>' but none was supplied (see `shmex segment rm --help`)"
        );
    }

    #[test]
    fn without_a_suggestion() {
        assert_eq!(
            line(&["shmex", "zzzz"]),
            "unrecognized subcommand 'zzzz' (see `shmex --help`)"
        );
        assert_eq!(
            line(&["shmex", "exchange", "--exchange", "x", "quote", "--jsn"]),
            "unexpected argument '--jsn' found; did you mean '--json'? (see `shmex exchange quote --help`)"
        );
    }
}
