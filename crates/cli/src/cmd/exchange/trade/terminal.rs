//! The trade loop when a person types at a terminal: a one-line banner, a
//! prompt, line editing and history (in memory only), and empty lines
//! ignored. Only stdin and stdout both being terminals bring the loop here;
//! any other input keeps the plain loop, whose output is the same byte for
//! byte as it has always been.

use std::io::{IsTerminal as _, Write as _};

use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor};

/// Lines of history kept.
const HISTORY: usize = 1000;

/// Whether a person is at the loop: stdin and stdout are terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Shows `banner`, then reads lines after `prompt` and prints what
/// `answer` writes for each, until `answer` says the loop is done
/// (`quit`), or Ctrl-D. Ctrl-C abandons the line being typed.
///
/// # Errors
///
/// The terminal's, or stdout's.
pub fn run(
    banner: &str,
    prompt: &str,
    mut answer: impl FnMut(&[u8], &mut String) -> bool,
) -> anyhow::Result<()> {
    let config = Config::builder()
        .max_history_size(HISTORY)?
        .history_ignore_dups(true)?
        .build();
    let mut editor = DefaultEditor::with_config(config)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{banner}")?;
    out.flush()?;
    let mut text = String::with_capacity(512);
    loop {
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if line.trim().is_empty() {
            continue;
        }
        editor.add_history_entry(line.as_str())?;
        text.clear();
        let done = answer(line.as_bytes(), &mut text);
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if done {
            return Ok(());
        }
    }
}
