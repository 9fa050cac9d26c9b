//! The journal read from disk: every record of every file, in order,
//! those that pass the filters; with `--follow`, the records made durable
//! since, also in files made by rotation. A torn last write (one still
//! being written, or cut by a crash) is not shown, and is no error;
//! damage in the middle stops the command, naming the file and offset.

use std::collections::VecDeque;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::process::ExitCode;

use exchange::disk::{DiskRecord, Filter, JournalDir, Scanner};
use exchange::{Exchange, OpenError};
use shm::SegmentId;

use super::super::refusal::RemovalWatch;
use super::format::{Books, Widths};
use super::{FOLLOW_POLL, JournalArgs};

pub fn run(path: &Path, a: &JournalArgs) -> anyhow::Result<ExitCode> {
    let dir = JournalDir::open(path, None)?;
    let books = Books(currencies(&dir)?);
    let filter = a.filter();
    // The history is read from the directory alone, with or without the
    // segment; the segment, where there is one, says how far the records
    // are durable, and a follower notices its removal. The journal names
    // its own segment (`--journal DIR` may be another exchange's).
    let segment = &dir.identity().segment;
    let ex = match open_if_present(segment) {
        Ok(ex) => ex,
        Err(e) if a.follow => return Err(e),
        // Reading needs no segment: a damaged one is the other commands' to report.
        Err(_) => None,
    };
    // The segment's own journal, checked to be this one, says how far
    // the records are durable; a segment by that name that keeps another
    // journal (or none) says nothing about this one (but its removal still
    // ends a follower).
    let own = ex
        .as_ref()
        .filter(|ex| ex.journal_id() == Some(dir.exchange_id()));
    let durable = || durable_end(own);
    let found = first_pass(&dir, &books, &filter, a.tail, !a.json, durable())?;
    let mut out = Out {
        out: BufWriter::new(std::io::stdout().lock()),
        books: &books,
        json: a.json,
        follow: a.follow,
        widths: if a.follow {
            let mut w = Widths::following();
            w.grow(&found.widths);
            w
        } else {
            found.widths
        },
        printed: 0,
    };
    if !a.json && (a.follow || found.shown() > 0) {
        let headings = out.widths.headings_line();
        writeln!(out.out, "{headings}")?;
    } else if a.json && !a.follow {
        out.out.write_all(b"[")?;
    }
    match &found.tail {
        Some(records) => {
            for r in records {
                out.record(r)?;
            }
        }
        None => {
            if let Some(last) = found.last_matched {
                let again = Filter {
                    seq: Some(filter.first_seq()..=last),
                    ..filter.clone()
                };
                for s in again.clone().apply(Scanner::new(&dir, again.first_seq())?) {
                    out.record(&s?.record)?;
                }
            }
        }
    }
    if a.follow {
        out.out.flush()?;
        let from = found.scanned.map_or(filter.first_seq(), |s| s + 1);
        return follow(&dir, &filter, from, ex.as_ref(), &durable, &mut out);
    }
    if a.json {
        out.out.write_all(b"]\n")?;
    } else if found.shown() == 0 && a.tail != Some(0) {
        if filter == Filter::default() {
            writeln!(out.out, "the journal is empty")?;
        } else {
            writeln!(out.out, "no journal record passes the filters")?;
        }
    }
    out.out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The currencies of the journal's exchange, from its oldest checkpoint
/// that reads (the genesis one written at `init`, which is small).
fn currencies(dir: &JournalDir) -> anyhow::Result<exchange::State> {
    let mut last = None;
    for seq in dir.checkpoints()? {
        match dir.read_checkpoint(seq) {
            Ok(c) => return Ok(c.state),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| exchange::disk::DiskError::NoCheckpoint {
            path: dir.path().to_path_buf(),
            reasons: Vec::new(),
        })
        .into())
}

/// The last record made durable, as the segment says; `None` when every
/// complete record on disk counts (no segment: what is on disk is all
/// there is). A flush leader writes a batch, syncs it, then publishes it:
/// a record read before that is not yet shown.
fn durable_end(ex: Option<&Exchange>) -> Option<u64> {
    ex.map(|ex| ex.engine().durable_seq())
}

fn open_if_present(id: &SegmentId) -> anyhow::Result<Option<Exchange>> {
    match Exchange::open(id) {
        Ok(ex) => Ok(Some(ex)),
        Err(OpenError::Missing { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a first pass over the journal found, before anything is printed
/// (so that damage stops the command before any output).
struct Found {
    /// The records that pass.
    matched: u64,
    /// The last of them.
    last_matched: Option<u64>,
    /// The last record read.
    scanned: Option<u64>,
    /// With `--tail N`, the last N records that pass.
    tail: Option<VecDeque<DiskRecord>>,
    /// The widths of the rows to print.
    widths: Widths,
}

impl Found {
    /// How many records will print.
    fn shown(&self) -> u64 {
        self.tail.as_ref().map_or(self.matched, |t| t.len() as u64)
    }
}

fn first_pass(
    dir: &JournalDir,
    books: &Books,
    filter: &Filter,
    tail: Option<usize>,
    text: bool,
    durable: Option<u64>,
) -> anyhow::Result<Found> {
    let mut found = Found {
        matched: 0,
        last_matched: None,
        scanned: None,
        tail: tail.map(|n| VecDeque::with_capacity(n.min(1 << 16))),
        widths: Widths::headings(),
    };
    for s in Scanner::new(dir, filter.first_seq())? {
        let r = s?.record;
        if filter.is_past(&r) || durable.is_some_and(|d| r.seq > d) {
            break;
        }
        found.scanned = Some(r.seq);
        if !filter.matches(&r) {
            continue;
        }
        found.matched += 1;
        found.last_matched = Some(r.seq);
        match (&mut found.tail, tail) {
            (Some(q), Some(n)) if n > 0 => {
                if q.len() == n {
                    q.pop_front();
                }
                q.push_back(r);
            }
            (Some(_), _) => {}
            _ if text => found.widths.fit(&books.row(&r)),
            _ => {}
        }
    }
    if text && let Some(q) = &found.tail {
        for r in q {
            found.widths.fit(&books.row(r));
        }
    }
    Ok(found)
}

/// Where the records go, and how.
struct Out<'b, W: std::io::Write> {
    out: W,
    books: &'b Books,
    json: bool,
    follow: bool,
    widths: Widths,
    printed: u64,
}

impl<W: std::io::Write> Out<'_, W> {
    fn record(&mut self, r: &DiskRecord) -> anyhow::Result<()> {
        if self.json {
            if self.printed > 0 && !self.follow {
                self.out.write_all(b",")?;
            }
            self.out.write_all(self.books.json(r)?.as_bytes())?;
            if self.follow {
                self.out.write_all(b"\n")?;
            }
        } else {
            let line = self.widths.line(&self.books.row(r));
            writeln!(self.out, "{line}")?;
        }
        self.printed += 1;
        Ok(())
    }
}

/// Prints the records from `from` on that pass `filter`, as they become
/// durable, until a termination signal (exit status 0), the end of the
/// sequence range (0), or the removal of the exchange (1, once the
/// records written before it are printed).
fn follow<W: std::io::Write>(
    dir: &JournalDir,
    filter: &Filter,
    from: u64,
    ex: Option<&Exchange>,
    durable: &dyn Fn() -> Option<u64>,
    out: &mut Out<'_, W>,
) -> anyhow::Result<ExitCode> {
    shm::sys::catch_termination();
    let mut removal = ex.map(|ex| RemovalWatch::new(ex, "journal follower"));
    let mut new = New {
        scanner: Scanner::new(dir, from)?,
        held: None,
    };
    let mut removed = None;
    loop {
        let past = match new.print(filter, durable(), out) {
            Ok(past) => past,
            // `destroy --purge` took the files with the exchange.
            Err(_) if removed.is_some() => false,
            Err(e) => return Err(e),
        };
        out.out.flush()?;
        if past {
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(gone) = removed {
            return Err(gone);
        }
        if shm::sys::termination_signal().is_some() {
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(Err(gone)) = removal.as_mut().map(RemovalWatch::check) {
            // Once more: what was made durable before the removal.
            removed = Some(gone);
            continue;
        }
        let _ = shm::sys::wait_for_termination(Some(FOLLOW_POLL));
    }
}

/// The records a follower has not printed yet.
struct New<'d> {
    scanner: Scanner<'d>,
    /// A record read before it was durable, held until it is.
    held: Option<DiskRecord>,
}

impl New<'_> {
    /// Prints the records read since, up to the durable end `end`, that
    /// pass `filter`. True once no later record can pass it.
    fn print<W: std::io::Write>(
        &mut self,
        filter: &Filter,
        end: Option<u64>,
        out: &mut Out<'_, W>,
    ) -> anyhow::Result<bool> {
        loop {
            let r = match self.held.take() {
                Some(r) => r,
                None => match self.scanner.next() {
                    None => return Ok(false),
                    Some(s) => s?.record,
                },
            };
            if end.is_some_and(|d| r.seq > d) {
                self.held = Some(r);
                return Ok(false);
            }
            if filter.is_past(&r) {
                return Ok(true);
            }
            if filter.matches(&r) {
                out.record(&r)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use exchange::disk::{self, Balances, Identity, Name};
    use exchange::{Code, Op};

    use super::*;

    /// A journal of `n` deposits of 1.00 TRY by alice, one batch each.
    fn journal(n: u64) -> (tempfile::TempDir, JournalDir, exchange::State) {
        let tmp = tempfile::tempdir().unwrap();
        let (config, _) = exchange::Config::builtin();
        let genesis = config.into_state().unwrap();
        let identity = Identity {
            exchange_id: 7,
            segment: SegmentId::posix("shmex-unit-journal").unwrap(),
            created_ns: 0,
            capacity: genesis.capacity,
            mode: 0o600,
            opening: genesis.opening,
        };
        let dir = JournalDir::create(&tmp.path().join("j"), &identity, false).unwrap();
        dir.write_checkpoint(&genesis, 0).unwrap();
        let file = dir.create_journal(1, 0).unwrap();
        let mut end = disk::HEADER_LEN;
        for seq in 1..=n {
            let r = DiskRecord {
                seq,
                exchange_id: 7,
                time_ns: seq,
                pid: 1,
                op: Op::Deposit,
                undone: None,
                undone_seq: 0,
                undone_pid: 0,
                code: Code::new("TRY").unwrap(),
                decimals: 2,
                account: Name::new("alice").unwrap(),
                amount: 100,
                rate: 0,
                buy_rate: 0,
                total: 100,
                balances: Some(Balances {
                    home: 100 * seq as i64,
                    code: 100 * seq as i64,
                }),
            };
            let mut buf = Vec::new();
            disk::encode_batch([&r], &mut buf).unwrap();
            end = file.append(end, &buf).unwrap();
        }
        (tmp, dir, genesis)
    }

    #[test]
    fn records_past_the_durable_end_wait_until_it_moves() {
        let (_tmp, dir, genesis) = journal(6);
        let books = Books(genesis);
        let filter = Filter::default();
        let found = first_pass(&dir, &books, &filter, None, false, Some(3)).unwrap();
        assert_eq!((found.matched, found.scanned), (3, Some(3)));
        let mut out = Out {
            out: Vec::new(),
            books: &books,
            json: true,
            follow: true,
            widths: Widths::headings(),
            printed: 0,
        };
        let mut new = New {
            scanner: Scanner::new(&dir, 4).unwrap(),
            held: None,
        };
        let seqs = |out: &Out<'_, Vec<u8>>| -> Vec<u64> {
            String::from_utf8_lossy(&out.out)
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        assert!(!new.print(&filter, Some(3), &mut out).unwrap());
        assert_eq!(seqs(&out), Vec::<u64>::new());
        assert!(!new.print(&filter, Some(5), &mut out).unwrap());
        assert_eq!(seqs(&out), [4, 5]);
        assert!(!new.print(&filter, None, &mut out).unwrap());
        assert_eq!(seqs(&out), [4, 5, 6]);
        // The end of a sequence range ends the follower.
        let range = Filter {
            seq: Some(1..=2),
            ..Filter::default()
        };
        let mut again = New {
            scanner: Scanner::new(&dir, 1).unwrap(),
            held: None,
        };
        assert!(again.print(&range, None, &mut out).unwrap());
        assert_eq!(seqs(&out), [4, 5, 6, 1, 2]);
    }
}
