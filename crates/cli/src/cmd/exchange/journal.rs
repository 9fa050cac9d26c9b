//! `shmex exchange journal`: the records the ring still holds, and with
//! `--follow` the new ones as they come, until interrupted or until the
//! exchange is removed.

use std::io::{BufWriter, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use exchange::{Entry, Exchange, State};
use shm::SegmentId;

use super::codes::failure_json;
use super::refusal::RemovalWatch;
use super::show;

/// How often a follower looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// Flags of `journal`.
#[derive(Debug, clap::Args)]
pub struct JournalArgs {
    /// Only the last N records (0: none, e.g. to follow only new ones).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Keep printing new records as they come, until interrupted (or the
    /// exchange is removed); with --json, one object a line.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print JSON: an array, or with --follow one object a line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(id: &SegmentId, a: &JournalArgs) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let state = e.state()?;
    let entries = e.journal(a.tail)?;
    shm::check_mappings()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if a.follow {
        for en in &entries {
            writeln!(out, "{}", line(&state, en, a.json))?;
        }
        out.flush()?;
        let next = entries.last().map_or(state.next_seq, |en| en.seq + 1);
        return follow(&ex, next, a.json, &mut out);
    }
    if a.json {
        out.write_all(b"[")?;
        for (i, en) in entries.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(show::entry_json(&state, en).as_bytes())?;
        }
        out.write_all(b"]\n")?;
    } else if entries.is_empty() && a.tail != Some(0) {
        writeln!(out, "the journal is empty")?;
    } else {
        for en in &entries {
            writeln!(out, "{}", show::entry_text(&state, en))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// One record, as a line of text or a JSON object.
fn line(state: &State, en: &Entry, json: bool) -> String {
    if json {
        show::entry_json(state, en)
    } else {
        show::entry_text(state, en)
    }
}

/// Prints the records from `next` on as they come. Stops at a termination
/// signal (exit status 0) or when the exchange is removed (1).
fn follow(
    ex: &Exchange,
    mut next: u64,
    json: bool,
    out: &mut impl std::io::Write,
) -> anyhow::Result<ExitCode> {
    shm::sys::catch_termination();
    let e = ex.engine();
    let mut removal = RemovalWatch::new(ex, "journal follower");
    loop {
        if shm::sys::termination_signal().is_some() {
            return Ok(ExitCode::SUCCESS);
        }
        removal.check()?;
        if e.info().next_seq > next {
            // Decimals and codes never change; the state only names them.
            let state = e.state()?;
            let new = e.journal_from(next)?;
            shm::check_mappings()?;
            if let Some(first) = new.first()
                && first.seq > next
            {
                let msg = format!(
                    "records {next} to {} were overwritten in the ring before they could be read",
                    first.seq - 1
                );
                if json {
                    writeln!(out, "{}", failure_json("journal_overrun", &msg))?;
                } else {
                    writeln!(out, "note: {msg}")?;
                }
            }
            for en in &new {
                writeln!(out, "{}", line(&state, en, json))?;
                next = en.seq + 1;
            }
            out.flush()?;
        }
        let _ = shm::sys::wait_for_termination(Some(FOLLOW_POLL));
    }
}
