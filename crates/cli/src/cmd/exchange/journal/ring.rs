//! The journal of a memory-only exchange: the records its ring still
//! holds, and with `--follow` the new ones as they come, until interrupted
//! or until the exchange is removed.

use std::io::{BufWriter, Write as _};
use std::process::ExitCode;

use exchange::disk::Filter;
use exchange::{Entry, Exchange, State};
use shm::SegmentId;

use super::super::codes::failure_json;
use super::super::refusal::RemovalWatch;
use super::super::show;
use super::{FOLLOW_POLL, JournalArgs};

pub fn run(id: &SegmentId, a: &JournalArgs) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let state = e.state()?;
    let filter = a.filter();
    let entries = if filter == Filter::default() {
        e.journal(a.tail)?
    } else {
        let mut all = e.journal(None)?;
        all.retain(|en| matches(&filter, &state, en));
        let skip = all.len().saturating_sub(a.tail.unwrap_or(all.len()));
        all.split_off(skip)
    };
    shm::check_mappings()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    if a.follow {
        for en in &entries {
            writeln!(out, "{}", line(&state, en, a.json))?;
        }
        out.flush()?;
        let next = entries.last().map_or(state.next_seq, |en| en.seq + 1);
        return follow(&ex, next, &filter, a.json, &mut out);
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
        if filter == Filter::default() {
            writeln!(out, "the journal is empty")?;
        } else {
            writeln!(out, "no journal record passes the filters")?;
        }
    } else {
        for en in &entries {
            writeln!(out, "{}", show::entry_text(&state, en))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Whether a ring entry passes `f`, as a record on disk would.
fn matches(f: &Filter, state: &State, en: &Entry) -> bool {
    f.seq.as_ref().is_none_or(|s| s.contains(&en.seq))
        && f.account.as_deref().is_none_or(|a| en.account == a)
        && f.code.is_none_or(|c| {
            state
                .currencies
                .get(en.currency)
                .is_some_and(|s| s.code == c)
        })
        && f.op.is_none_or(|o| en.op == o)
        && f.since_ns.is_none_or(|t| en.time_ns >= t)
        && f.until_ns.is_none_or(|t| en.time_ns <= t)
}

/// One record, as a line of text or a JSON object.
fn line(state: &State, en: &Entry, json: bool) -> String {
    if json {
        show::entry_json(state, en)
    } else {
        show::entry_text(state, en)
    }
}

/// Prints the records from `next` on that pass `filter` as they come.
/// Stops at a termination signal (exit status 0) or when the exchange is
/// removed (1).
fn follow(
    ex: &Exchange,
    mut next: u64,
    filter: &Filter,
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
                if matches(filter, &state, en) {
                    writeln!(out, "{}", line(&state, en, json))?;
                }
                next = en.seq + 1;
            }
            out.flush()?;
        }
        let _ = shm::sys::wait_for_termination(Some(FOLLOW_POLL));
    }
}
