//! `shmex exchange journal`: the exchange's history, filtered. With a
//! journal on disk, the complete history read from its files ([`disk`]);
//! for a memory-only exchange, the records its ring still holds
//! ([`ring`]). `--follow` prints new records as they come.

mod disk;
mod format;
mod parse;
mod ring;

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use exchange::{Code, Op};
use shm::SegmentId;

/// How often a follower looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// Flags of `journal`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "With a journal on disk (the default since `init` keeps one), the complete history is read from its files: every record made durable, however old; a record still being written is not shown yet. A memory-only exchange shows the records its ring still holds.\n\nFilters combine: a record is shown if it passes every one given. --tail counts the records that pass."
)]
pub struct JournalArgs {
    /// Only the last N records that pass the filters (0: none, e.g. to follow only new ones).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only sequence numbers A to B, both included (also A.., ..B, or one number N).
    #[arg(long, value_name = "A..B", value_parser = parse::seq_range)]
    pub seq: Option<RangeInclusive<u64>>,
    /// Only the records of this account.
    #[arg(long, value_name = "NAME", value_parser = parse::account)]
    pub account: Option<String>,
    /// Only the records in this currency (open records are in the home currency).
    #[arg(long, value_name = "CODE", value_parser = parse::code)]
    pub code: Option<Code>,
    /// Only this operation.
    #[arg(long, value_name = "OP", value_parser = parse::op())]
    pub op: Option<Op>,
    /// Only records at or after this RFC 3339 time (2026-01-02T03:04:05Z, or with an offset: +03:00).
    #[arg(long, value_name = "TIME", value_parser = parse::time)]
    pub since: Option<u64>,
    /// Only records at or before this RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = parse::time)]
    pub until: Option<u64>,
    /// Keep printing new records as they come, until interrupted (or the
    /// exchange is removed); with --json, one object a line.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print JSON: an array, or with --follow one object a line.
    #[arg(long)]
    pub json: bool,
    /// Read the journal in DIR instead of the exchange's own; works without the exchange's segment (after a reboot).
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
}

impl JournalArgs {
    /// The filters given.
    fn filter(&self) -> exchange::disk::Filter {
        exchange::disk::Filter {
            seq: self.seq.clone(),
            account: self.account.clone(),
            code: self.code,
            op: self.op,
            since_ns: self.since,
            until_ns: self.until,
        }
    }
}

pub fn run(id: &SegmentId, a: &JournalArgs) -> anyhow::Result<ExitCode> {
    match journal_dir_for(id, a.journal.as_deref())? {
        // The journal's damage names the exchange as well as the file.
        Some(dir) => disk::run(&dir, a).map_err(|e| {
            if e.chain().any(|c| c.is::<exchange::disk::DiskError>()) {
                e.context(format!("the journal of exchange {id}"))
            } else {
                e
            }
        }),
        None => ring::run(id, a),
    }
}

/// The journal directory to read: `flag` if given; else the one the
/// exchange's segment records, or `None` (read the ring) for an exchange
/// that keeps no journal on disk; else, with no segment (after a reboot,
/// say), the exchange's default directory if it exists.
fn journal_dir_for(id: &SegmentId, flag: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if let Some(dir) = flag {
        return Ok(Some(dir.to_path_buf()));
    }
    match exchange::Exchange::open(id) {
        Ok(ex) => return Ok(ex.journal_dir()),
        Err(exchange::OpenError::Missing { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let dir = match exchange::disk::default_dir(
        id,
        std::env::var_os("XDG_STATE_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    ) {
        Ok(dir) => dir,
        Err(exchange::disk::DiskError::NoStateDir) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // A symbolic link there is the journal's, and opening it says why it
    // is refused.
    Ok(std::fs::symlink_metadata(&dir).is_ok().then_some(dir))
}
