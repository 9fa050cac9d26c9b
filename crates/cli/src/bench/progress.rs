//! What a benchmark shows while it runs, on stderr: on a terminal, one
//! line rewritten in place and cleared at the end; anywhere else (a file,
//! a pipe), one plain line a step, with no escape codes. Each step also
//! looks for a termination signal, so that the benchmark stops between
//! steps.

use std::cell::Cell;
use std::io::{IsTerminal as _, Write as _};

use crate::support::error::Interrupted;

/// The progress of one benchmark; clears its line when dropped.
pub struct Progress {
    name: &'static str,
    terminal: bool,
    shown: Cell<bool>,
}

impl Progress {
    /// The progress of benchmark `name` (`bench exchange`).
    pub fn new(name: &'static str) -> Progress {
        Progress {
            name,
            terminal: std::io::stderr().is_terminal(),
            shown: Cell::new(false),
        }
    }

    /// Shows that `what` runs now; fails once a termination signal came.
    pub fn step(&self, what: &str) -> Result<(), Interrupted> {
        Interrupted::check("the benchmark")?;
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[K{}: {what}…", self.name)
        } else {
            writeln!(err, "{}: {what}", self.name)
        };
        let _ = err.flush();
        self.shown.set(true);
        Ok(())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.terminal && self.shown.get() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
