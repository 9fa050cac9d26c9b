//! The journal on disk, from the command line: where it goes (`init`,
//! `restore`), where it is kept (`destroy`), and `recover`, which rebuilds
//! the segment from it after a reboot.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use exchange::disk::{self, DiskError, HEADER_LEN, Identity, JournalDir, Scanner};
use exchange::{Entry, Exchange, JournalInit, OpenError, State};
use shm::SegmentId;

use super::refusal::Refusal;
use super::show::describe;
use crate::support::plural::plural;
use crate::support::time::now_ns;

/// `--journal DIR` and `--no-journal`.
#[derive(Debug, clap::Args)]
pub struct JournalFlags {
    /// Keep the journal in DIR [default: $XDG_STATE_HOME/shmex/EXCHANGE, else ~/.local/state/shmex/EXCHANGE, EXCHANGE being the exchange's name].
    #[arg(long, value_name = "DIR", conflicts_with = "no_journal")]
    pub journal: Option<PathBuf>,
    /// Keep no journal on disk: the books live in memory only and are lost at a reboot.
    #[arg(long)]
    pub no_journal: bool,
}

/// The default journal directory of the exchange `id`.
pub fn default_dir(id: &SegmentId) -> Result<PathBuf, DiskError> {
    disk::default_dir(
        id,
        std::env::var_os("XDG_STATE_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
    )
}

/// The journal directory `--journal` names, else the exchange's default.
fn journal_path(id: &SegmentId, given: Option<&PathBuf>) -> Result<PathBuf, OpenError> {
    match given {
        Some(p) => Ok(p.clone()),
        None => default_dir(id).map_err(OpenError::from),
    }
}

/// Creates the exchange `id` holding `state` and the ring records
/// `entries`, with its journal on disk unless `--no-journal`: the
/// directory, the checkpoint of `state`, the first file, then the segment
/// that records them. `force` replaces an exchange there, and the journal
/// in the directory. Returns the exchange and its journal directory.
pub fn create(
    id: &SegmentId,
    state: &State,
    entries: &[Entry],
    mode: u32,
    flags: &JournalFlags,
    force: bool,
) -> anyhow::Result<(Exchange, Option<PathBuf>)> {
    // Every refusal of the journal's place comes before anything changes
    // (an exchange replaced, a directory made).
    let path = if flags.no_journal {
        None
    } else {
        let path = journal_path(id, flags.journal.as_ref())?;
        let path = JournalDir::check_create(&path, force).map_err(occupied)?;
        let len = path.as_os_str().len();
        if len > exchange::DIR_MAX {
            return Err(OpenError::JournalPath {
                path: path.display().to_string(),
                len,
                max: exchange::DIR_MAX,
            }
            .into());
        }
        Some(path)
    };
    // An exchange there keeps its journal unless it is replaced.
    match Exchange::open(id) {
        Err(OpenError::Missing { .. }) => {}
        _ if force => super::replace(id)?,
        _ => {
            return Err(OpenError::Exists {
                what: id.to_string(),
            }
            .into());
        }
    }
    let Some(path) = path else {
        return Ok((Exchange::create(id, state, entries, mode)?, None));
    };
    let now = now_ns();
    let identity = Identity {
        exchange_id: disk::new_exchange_id().map_err(OpenError::from)?,
        segment: id.clone(),
        created_ns: now,
        capacity: state.capacity,
        mode,
        opening: state.opening,
    };
    let dir = JournalDir::create(&path, &identity, force).map_err(occupied)?;
    let made = (|| -> anyhow::Result<Exchange> {
        dir.write_checkpoint(state, now).map_err(OpenError::from)?;
        dir.create_journal(state.next_seq, now)
            .map_err(OpenError::from)?;
        let init = JournalInit {
            dir: dir.path().to_path_buf(),
            exchange_id: identity.exchange_id,
            durable_seq: state.next_seq.saturating_sub(1),
            disk_file: state.next_seq,
            disk_offset: HEADER_LEN,
            checkpoint_seq: state.next_seq.saturating_sub(1),
        };
        Ok(Exchange::create_durable(
            id,
            state,
            entries,
            mode,
            Some(&init),
        )?)
    })();
    let path = dir.path().to_path_buf();
    match made {
        Ok(ex) => Ok((ex, Some(path))),
        Err(e) => {
            // Nothing of a journal for an exchange that was not made.
            let _ = dir.purge();
            Err(e)
        }
    }
}

/// A journal directory's refusal: one that holds a journal is the
/// command's refusal, the rest the journal's errors.
fn occupied(e: DiskError) -> anyhow::Error {
    match e {
        DiskError::Occupied { path, exchange_id } => Refusal::JournalOccupied {
            path: path.display().to_string(),
            exchange_id,
        }
        .into(),
        e => OpenError::from(e).into(),
    }
}

/// What `destroy` says about the journal, after a final checkpoint; with
/// `purge`, the directory is removed.
pub fn on_destroy(ex: &Exchange, purge: bool) -> anyhow::Result<String> {
    let Some(path) = ex.journal_dir() else {
        return Ok("no journal is kept on disk: its books are gone unless you took a snapshot (bring one back with `shmex exchange restore FILE`)".to_owned());
    };
    if purge {
        let dir = JournalDir::open(&path, ex.journal_id()).map_err(OpenError::from)?;
        dir.purge().map_err(OpenError::from)?;
        return Ok(format!("removed its journal {}", path.display()));
    }
    // Books that fail the check, or a journal that cannot be written,
    // get no checkpoint; the segment goes all the same, as asked.
    let checkpointed = match ex.engine().checkpoint() {
        Ok(Some(s)) => format!(", checkpointed at record {s}"),
        Ok(None) => String::new(),
        Err(e) => format!(" without a final checkpoint ({e})"),
    };
    Ok(format!(
        "its journal is kept in {}{checkpointed} (`shmex exchange recover` brings the exchange back; `destroy --purge` removes the journal too)",
        path.display(),
    ))
}

/// `destroy --purge` of an exchange whose segment is gone: removes the
/// journal `destroy` kept in the exchange's default directory, if that
/// directory holds this exchange's journal; `None` if there is none.
pub fn purge_kept(id: &SegmentId) -> anyhow::Result<Option<PathBuf>> {
    let Ok(path) = default_dir(id) else {
        return Ok(None);
    };
    if !path.join(disk::IDENTITY).exists() {
        return Ok(None);
    }
    let dir = JournalDir::open(&path, None).map_err(OpenError::from)?;
    if dir.identity().segment != *id {
        return Ok(None);
    }
    dir.purge().map_err(OpenError::from)?;
    Ok(Some(path))
}

/// Flags of `recover`.
#[derive(Debug, clap::Args)]
pub struct RecoverArgs {
    /// The journal to recover from [default: the exchange's default directory]; it must be the named exchange's.
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// When a record in the middle of the journal is bad, keep the records before it and set
    /// the rest aside (as FILE.damaged) instead of refusing.
    #[arg(long)]
    pub keep_good_prefix: bool,
}

/// `recover`: the segment rebuilt from the newest valid checkpoint and
/// the journal's records after it. Refuses if the segment exists; a torn
/// last record is cut off and reported; a bad record in the middle stops
/// it, changing nothing, unless `--keep-good-prefix`.
pub fn recover(id: &SegmentId, a: &RecoverArgs) -> anyhow::Result<ExitCode> {
    let path = journal_path(id, a.journal.as_ref())?;
    let dir = JournalDir::open(&path, None)
        .map_err(OpenError::from)
        .with_context(|| format!("cannot recover exchange {}", describe(id)))?;
    let identity = dir.identity().clone();
    let target = &identity.segment;
    // The exchange recovered is the one named, never another one the
    // directory happens to belong to.
    if target != id {
        let flag = match target {
            SegmentId::Posix(name) => format!("--exchange {name}"),
            SegmentId::SysV(key) => format!("--key {:#x}", *key as u32),
        };
        return Err(Refusal::OthersJournal {
            path: dir.path().display().to_string(),
            found: describe(target),
            named: describe(id),
            flag,
        }
        .into());
    }
    match Exchange::open(target) {
        Err(OpenError::Missing { .. }) => {}
        _ => {
            return Err(Refusal::RecoverExists {
                what: describe(target),
            }
            .into());
        }
    }
    let refusing = || format!("refusing to recover exchange {}", describe(target));
    let rebuilt = disk::rebuild(&dir, a.keep_good_prefix)
        .map_err(OpenError::from)
        .with_context(refusing)?;
    let mut notes = Vec::new();
    for s in &rebuilt.skipped {
        notes.push(format!("skipped a damaged checkpoint: {s}"));
    }
    if let Some(t) = &rebuilt.torn {
        dir.cut_torn(t).map_err(OpenError::from)?;
        notes.push(format!("cut {t}: that record was never acknowledged"));
    }
    if let Some(c) = &rebuilt.corrupt {
        dir.cut_corrupt(c).map_err(OpenError::from)?;
        notes.push(format!(
            "kept the records before {c}; the rest is set aside as .damaged files"
        ));
    }
    let state = rebuilt.state;
    let last = state.next_seq.saturating_sub(1);
    let (disk_file, disk_offset) = match rebuilt.tail {
        Some(t) => (t.file, t.offset),
        None => {
            dir.create_journal(state.next_seq, now_ns())
                .map_err(OpenError::from)?;
            (state.next_seq, HEADER_LEN)
        }
    };
    let entries = ring_entries(&dir, &state, last)?;
    let init = JournalInit {
        dir: dir.path().to_path_buf(),
        exchange_id: identity.exchange_id,
        durable_seq: last,
        disk_file,
        disk_offset,
        checkpoint_seq: rebuilt.checkpoint,
    };
    Exchange::create_durable(target, &state, &entries, identity.mode, Some(&init))
        .with_context(refusing)?;
    println!(
        "recovered exchange {} from {}: checkpoint {} and {} after it; {}, {}, last record {last}",
        describe(target),
        dir.path().display(),
        rebuilt.checkpoint,
        plural(rebuilt.replayed, "record", "records"),
        plural(state.accounts.len() as u64, "account", "accounts"),
        plural(state.currencies.len() as u64, "currency", "currencies"),
    );
    for n in notes {
        println!("note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The last records up to `last`, as many as the ring holds, oldest
/// first.
fn ring_entries(dir: &JournalDir, state: &State, last: u64) -> anyhow::Result<Vec<Entry>> {
    let cap = state.capacity.journal as u64;
    let from = last.saturating_sub(cap) + 1;
    let mut entries = Vec::new();
    for s in Scanner::new(dir, from).map_err(OpenError::from)? {
        let s = s.map_err(OpenError::from)?;
        if s.record.seq > last {
            break;
        }
        if s.record.seq >= from
            && let Some(e) = s.record.to_entry(state)
        {
            entries.push(e);
        }
    }
    Ok(entries)
}
