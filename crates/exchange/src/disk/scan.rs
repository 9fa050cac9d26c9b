//! Reading the journal back: every record of every file, in order, with
//! its place; and what a damaged place means.
//!
//! A record that does not read (cut short, impossible length, checksum
//! mismatch) is one of two things:
//!
//! * **torn**: the last write never completed (a power cut mid-write).
//!   Nothing after it was ever acknowledged, since a batch is acknowledged
//!   only after its `fdatasync` and the next batch is written only after
//!   that. Reported as [`Torn`]; recovery cuts it off.
//! * **corrupt**: damage to data that had been made durable (a bad disk, a
//!   hand edit). Reported as [`DiskError::Corrupt`] with the file and
//!   offset; recovery stops.
//!
//! The two are told apart by what follows the damage in its file: if some
//! valid frame after it belongs to a batch that *started* after it (each
//! frame records how far back its batch began), the damaged batch had been
//! synced before that one was written, so the damage is corruption. If
//! nothing valid follows, or only the rest of the damaged batch itself
//! (pages of one write can reach the disk out of order), the write was
//! torn. Damage in any file but the last is corruption, and so is a frame
//! whose checksum holds but whose content is wrong (another exchange, a
//! sequence number out of order, an unknown operation).
//!
//! A record acknowledged in the last batch and later damaged on disk is
//! indistinguishable from a torn write; no log without a later write can
//! tell them apart.
#![forbid(unsafe_code)]

use std::fs::File;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use super::DiskError;
use super::dir::{How, JournalDir};
use super::file::{HEADER_LEN, JournalFile, file_name, read_full_at, size_of};
use super::record::{BODY_MAX, BODY_MIN, DiskRecord, FRAME_HEAD, FRAME_MAX, RecordError};
use crate::types::{Code, Op};

/// Bytes read at a time.
const CHUNK: usize = 1 << 20;

/// A record read from the journal, with its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scanned {
    /// The record.
    pub record: DiskRecord,
    /// The first sequence number of its file (which names the file).
    pub file: u64,
    /// Where its frame starts in that file.
    pub offset: u64,
    /// Where its frame ends.
    pub end: u64,
}

/// A torn write at the end of the journal: what recovery cuts off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Torn {
    /// The journal file.
    pub path: PathBuf,
    /// Its first sequence number.
    pub file: u64,
    /// Where the torn bytes start (0: the header itself is torn).
    pub offset: u64,
    /// The file's length when it was read.
    pub len: u64,
    /// What is wrong with the bytes.
    pub reason: String,
}

/// A bad record in the middle of the journal: where it is, and what is
/// wrong. [`DiskError::Corrupt`] says the same as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The journal file.
    pub path: PathBuf,
    /// Its first sequence number.
    pub file: u64,
    /// Where the bad record starts (0: the file's header).
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Torn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a torn record at {} offset {} ({})",
            self.path.display(),
            self.offset,
            self.reason
        )
    }
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a bad record at {} offset {} ({})",
            self.path.display(),
            self.offset,
            self.reason
        )
    }
}

impl From<Corruption> for DiskError {
    fn from(c: Corruption) -> DiskError {
        DiskError::Corrupt {
            file: c.path,
            offset: c.offset,
            reason: c.reason,
        }
    }
}

/// Where the valid records of the journal end: where the next batch goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tail {
    /// The first sequence number of the last file.
    pub file: u64,
    /// The offset after its last valid record.
    pub offset: u64,
    /// The sequence number the next record gets.
    pub next_seq: u64,
}

/// Reads the records of a journal directory in sequence order, checking
/// each frame, the exchange id of each record and the continuity of the
/// sequence numbers within and across files.
///
/// It yields `Ok` records until the valid data ends, then `None`; an
/// `Err` (corruption, a gap, an I/O error) ends it for good. After `None`,
/// [`Scanner::torn`] says whether the end was a torn write, and
/// [`Scanner::tail`] where the valid data ends. Calling `next` again after
/// `None` looks for records written since (to follow a live journal); a
/// record still being written reads as torn until it is complete.
///
/// Reading changes nothing on disk; [`JournalDir::cut_torn`] and
/// [`JournalDir::cut_corrupt`] do.
#[derive(Debug)]
pub struct Scanner<'d> {
    dir: &'d JournalDir,
    files: Vec<u64>,
    idx: usize,
    file: Option<JournalFile>,
    /// Bytes of the current file from `buf_off` (the first `filled`).
    buf: Vec<u8>,
    filled: usize,
    buf_off: u64,
    buf_eof: bool,
    offset: u64,
    next_seq: Option<u64>,
    from: u64,
    torn: Option<Torn>,
    failed: bool,
}

/// How a damaged place reads.
enum Damage {
    Torn(Torn),
    Corrupt(Corruption),
}

impl<'d> Scanner<'d> {
    /// A scanner of `dir`'s journal that yields the records from sequence
    /// number `from` on (the ones before it in the same file are read and
    /// checked, not yielded; earlier files are skipped).
    ///
    /// # Errors
    ///
    /// [`DiskError::Io`] if the directory cannot be listed.
    pub fn new(dir: &'d JournalDir, from: u64) -> Result<Scanner<'d>, DiskError> {
        let files = dir.journal_files()?;
        let idx = files.partition_point(|&s| s <= from).saturating_sub(1);
        Ok(Scanner {
            dir,
            files,
            idx,
            file: None,
            buf: Vec::new(),
            filled: 0,
            buf_off: 0,
            buf_eof: false,
            offset: HEADER_LEN,
            next_seq: None,
            from,
            torn: None,
            failed: false,
        })
    }

    /// The torn write the last `None` stopped at, if any.
    #[must_use]
    pub fn torn(&self) -> Option<&Torn> {
        self.torn.as_ref()
    }

    /// Where the valid records end, once the scanner has returned `None`;
    /// `None` if there is no journal file.
    #[must_use]
    pub fn tail(&self) -> Option<Tail> {
        let file = *self.files.get(self.idx)?;
        Some(Tail {
            file,
            offset: self.offset.max(HEADER_LEN),
            next_seq: self.next_seq.unwrap_or(file),
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.file_path(&file_name(self.files[self.idx]))
    }

    fn corrupt(&self, offset: u64, reason: String) -> Damage {
        Damage::Corrupt(Corruption {
            path: self.path(),
            file: self.files[self.idx],
            offset,
            reason,
        })
    }

    /// The bytes from the current offset on, up to one frame's worth.
    fn window(&mut self) -> Result<&[u8], DiskError> {
        let want = self.offset + FRAME_MAX as u64;
        let have = self.buf_off + self.filled as u64;
        if self.buf_off > self.offset || (have < want && !self.buf_eof) {
            let Some(f) = &self.file else {
                return Ok(&[]);
            };
            if self.buf.is_empty() {
                self.buf = vec![0; CHUNK];
            }
            self.filled = f.read_at(&mut self.buf, self.offset)?;
            self.buf_off = self.offset;
            self.buf_eof = self.filled < CHUNK;
        }
        let start = usize::try_from(self.offset - self.buf_off).unwrap_or(usize::MAX);
        let start = start.min(self.filled);
        let end = (start + FRAME_MAX).min(self.filled);
        Ok(&self.buf[start..end])
    }

    fn forget_buffer(&mut self) {
        self.filled = 0;
        self.buf_eof = false;
    }

    /// Whether the current file is the last one, looking again.
    fn is_last(&mut self) -> Result<bool, DiskError> {
        self.refresh()?;
        Ok(self.idx + 1 >= self.files.len())
    }

    /// Lists the files again, to see files made since.
    fn refresh(&mut self) -> Result<(), DiskError> {
        let files = self.dir.journal_files()?;
        if files.starts_with(&self.files) {
            self.files = files;
        }
        Ok(())
    }

    /// What the unreadable bytes at `offset` of the current file are;
    /// `last`: whether the file was the last one before they were read
    /// (a later file is made only once this one is complete, so a read
    /// made after a later file appeared sees the whole file).
    fn classify(&mut self, offset: u64, reason: String, last: bool) -> Result<Damage, DiskError> {
        if !last {
            return Ok(self.corrupt(
                offset,
                format!("{reason}, in a file that later files follow"),
            ));
        }
        let name = file_name(self.files[self.idx]);
        let f = self.dir.open_file(&name, How::Read)?;
        let path = self.path();
        let len = size_of(&f, &path)?;
        Ok(
            match later_batch_after(&f, &path, offset, self.dir.exchange_id())? {
                Some(y) => self.corrupt(
                    offset,
                    format!("{reason}, and a later batch follows at offset {y}"),
                ),
                None => Damage::Torn(Torn {
                    path,
                    file: self.files[self.idx],
                    offset,
                    len,
                    reason,
                }),
            },
        )
    }

    /// Stops at `damage`: a torn write ends this pass, corruption ends the
    /// scanner.
    fn stop(&mut self, damage: Damage) -> Option<Result<Scanned, DiskError>> {
        self.forget_buffer();
        match damage {
            Damage::Torn(t) => {
                self.torn = Some(t);
                None
            }
            Damage::Corrupt(c) => {
                self.failed = true;
                Some(Err(c.into()))
            }
        }
    }

    fn fail(&mut self, e: DiskError) -> Option<Result<Scanned, DiskError>> {
        self.failed = true;
        Some(Err(e))
    }

    /// Opens the current file and checks that it continues the sequence.
    fn open_current(&mut self) -> Result<Option<Damage>, DiskError> {
        let first = self.files[self.idx];
        if let Some(want) = self.next_seq
            && want != first
        {
            return Err(DiskError::Gap {
                file: self.path(),
                expected: want,
                found: first,
            });
        }
        self.next_seq = Some(first);
        self.offset = HEADER_LEN;
        self.forget_buffer();
        match self.dir.open_journal(first, false) {
            Ok(f) => {
                self.file = Some(f);
                Ok(None)
            }
            // A file is published only once its header is synced, and
            // records follow only then: a bad header is torn only in the
            // last file and with no valid frame after it.
            Err(DiskError::Header { reason, .. }) => {
                let last = self.is_last()?;
                self.classify(0, reason, last).map(Some)
            }
            Err(e) => Err(e),
        }
    }
}

impl Iterator for Scanner<'_> {
    type Item = Result<Scanned, DiskError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.torn = None;
        loop {
            if self.idx >= self.files.len() {
                if let Err(e) = self.refresh() {
                    return self.fail(e);
                }
                if self.idx >= self.files.len() {
                    return None;
                }
            }
            if self.file.is_none() {
                match self.open_current() {
                    Ok(None) => {}
                    Ok(Some(d)) => return self.stop(d),
                    Err(e) => return self.fail(e),
                }
            }
            let at = self.offset;
            let decoded = match self.window() {
                Ok([]) => {
                    // The end of this file: on to the next, if there is one.
                    self.forget_buffer();
                    match self.is_last() {
                        Ok(true) => return None,
                        Ok(false) => {}
                        Err(e) => return self.fail(e),
                    }
                    // A later file exists only once this one is complete:
                    // read again what was added before it was made.
                    match self.window() {
                        Ok([]) => {
                            self.idx += 1;
                            self.file = None;
                        }
                        Ok(_) => {}
                        Err(e) => return self.fail(e),
                    }
                    continue;
                }
                Ok(w) => DiskRecord::decode(w),
                Err(e) => return self.fail(e),
            };
            let d = match decoded {
                Ok(d) => d,
                Err(
                    RecordError::Short { .. }
                    | RecordError::Length(_)
                    | RecordError::Checksum { .. },
                ) => {
                    // What was buffered may be a write in progress since
                    // completed: read again before judging. Whether a
                    // later file exists is asked first: once one does,
                    // this file is complete, and the read again sees it
                    // whole (asked after, a write completed in between
                    // would be taken for damage followed by a file).
                    let last = match self.is_last() {
                        Ok(last) => last,
                        Err(e) => return self.fail(e),
                    };
                    self.forget_buffer();
                    let again = match self.window() {
                        Ok(w) => DiskRecord::decode(w),
                        Err(e) => return self.fail(e),
                    };
                    match again {
                        Ok(d) => d,
                        Err(
                            e @ (RecordError::Short { .. }
                            | RecordError::Length(_)
                            | RecordError::Checksum { .. }),
                        ) => {
                            return match self.classify(at, e.to_string(), last) {
                                Ok(d) => self.stop(d),
                                Err(e) => self.fail(e),
                            };
                        }
                        Err(e) => {
                            let d = self.corrupt(at, e.to_string());
                            return self.stop(d);
                        }
                    }
                }
                Err(e) => {
                    let d = self.corrupt(at, e.to_string());
                    return self.stop(d);
                }
            };
            let r = d.record;
            let id = self.dir.exchange_id();
            let want = self.next_seq.unwrap_or(0);
            if r.exchange_id != id {
                let d = self.corrupt(
                    at,
                    format!(
                        "the record belongs to exchange {:#018x}, not {id:#018x}",
                        r.exchange_id
                    ),
                );
                return self.stop(d);
            }
            if r.seq != want {
                let d = self.corrupt(at, format!("record {} where {want} was expected", r.seq));
                return self.stop(d);
            }
            self.offset += d.len as u64;
            self.next_seq = Some(want + 1);
            if r.seq >= self.from {
                return Some(Ok(Scanned {
                    record: r,
                    file: self.files[self.idx],
                    offset: at,
                    end: self.offset,
                }));
            }
        }
    }
}

/// The offset of the first valid frame after `x` in `f` whose batch began
/// after `x`, if any.
fn later_batch_after(
    f: &File,
    path: &std::path::Path,
    x: u64,
    exchange_id: u64,
) -> Result<Option<u64>, DiskError> {
    let mut chunk = vec![0; CHUNK + FRAME_MAX];
    let mut pos = x + 1;
    loop {
        let n = read_full_at(f, &mut chunk, pos).map_err(DiskError::io("read", path))?;
        let eof = n < chunk.len();
        // Past `limit`, a frame might run beyond what was read: the next
        // chunk starts there.
        let limit = if eof { n } else { n - FRAME_MAX };
        for p in 0..limit {
            let w = &chunk[p..n];
            if w.len() < FRAME_HEAD {
                break;
            }
            let len = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize;
            if !(BODY_MIN..=BODY_MAX).contains(&len) {
                continue;
            }
            if let Ok(d) = DiskRecord::decode(w)
                && d.record.exchange_id == exchange_id
            {
                let y = pos + p as u64;
                if y.checked_sub(u64::from(d.back)).is_some_and(|b| b > x) {
                    return Ok(Some(y));
                }
            }
        }
        if eof {
            return Ok(None);
        }
        pos += limit as u64;
    }
}

impl JournalDir {
    /// Cuts off a torn write found by a [`Scanner`]: truncates its file
    /// to where the torn bytes start (a torn header is written anew), and
    /// syncs. Refused if the file changed since it was read.
    ///
    /// # Errors
    ///
    /// [`DiskError::Corrupt`] if the file's length is no longer the one
    /// read, the errors of opening and writing a file.
    pub fn cut_torn(&self, torn: &Torn) -> Result<(), DiskError> {
        let name = file_name(torn.file);
        let f = self.open_file(&name, How::Write)?;
        let len = size_of(&f, &torn.path)?;
        if len != torn.len {
            return Err(DiskError::Corrupt {
                file: torn.path.clone(),
                offset: torn.offset,
                reason: format!(
                    "the file changed while it was read ({} bytes, then {len}): is a writer still running?",
                    torn.len
                ),
            });
        }
        self.cut(torn.file, torn.offset, &f)
    }

    fn cut(&self, file: u64, offset: u64, f: &File) -> Result<(), DiskError> {
        let path = self.file_path(&file_name(file));
        if offset < HEADER_LEN {
            f.set_len(0).map_err(DiskError::io("truncate", &path))?;
            let created = f
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64);
            self.create_journal(file, created)?;
            return Ok(());
        }
        f.set_len(offset)
            .map_err(DiskError::io("truncate", &path))?;
        f.sync_data().map_err(DiskError::io("fdatasync", &path))
    }

    /// Keeps what comes before a bad record, when the operator asks for
    /// it: the damaged file is copied to `<name>.damaged`, then cut at the
    /// bad record; every later journal file is renamed to
    /// `<name>.damaged`. Nothing is deleted.
    ///
    /// # Errors
    ///
    /// The errors of opening, reading, writing and renaming files.
    pub fn cut_corrupt(&self, bad: &Corruption) -> Result<(), DiskError> {
        let name = file_name(bad.file);
        let f = self.open_file(&name, How::Write)?;
        let len = size_of(&f, &bad.path)?;
        let mut copy = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        let n = read_full_at(&f, &mut copy, 0).map_err(DiskError::io("read", &bad.path))?;
        copy.truncate(n);
        self.write_atomic(&format!("{name}.damaged"), &copy)?;
        for later in self.journal_files()?.into_iter().filter(|&s| s > bad.file) {
            let n = file_name(later);
            self.rename(&n, &format!("{n}.damaged"))?;
        }
        self.cut(bad.file, bad.offset, &f)?;
        self.sync()
    }
}

/// Which records the journal command shows. Every condition given must
/// hold; times are ns since the epoch, both bounds inclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Sequence numbers.
    pub seq: Option<RangeInclusive<u64>>,
    /// The account.
    pub account: Option<String>,
    /// The currency.
    pub code: Option<Code>,
    /// The operation.
    pub op: Option<Op>,
    /// Not before.
    pub since_ns: Option<u64>,
    /// Not after.
    pub until_ns: Option<u64>,
}

impl Filter {
    /// Whether `r` is shown.
    #[must_use]
    pub fn matches(&self, r: &DiskRecord) -> bool {
        self.seq.as_ref().is_none_or(|s| s.contains(&r.seq))
            && self
                .account
                .as_deref()
                .is_none_or(|a| r.account.as_str() == a)
            && self.code.is_none_or(|c| r.code == c)
            && self.op.is_none_or(|o| r.op == o)
            && self.since_ns.is_none_or(|t| r.time_ns >= t)
            && self.until_ns.is_none_or(|t| r.time_ns <= t)
    }

    /// The first sequence number that can match: where to start a
    /// [`Scanner`].
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.seq.as_ref().map_or(1, |s| *s.start())
    }

    /// Whether no record from `r` on can match (the sequence range is
    /// past).
    #[must_use]
    pub fn is_past(&self, r: &DiskRecord) -> bool {
        self.seq.as_ref().is_some_and(|s| r.seq > *s.end())
    }

    /// The records of `scanned` that match, ending once the sequence range
    /// is past; errors are passed on.
    pub fn apply<I>(self, scanned: I) -> impl Iterator<Item = Result<Scanned, DiskError>>
    where
        I: Iterator<Item = Result<Scanned, DiskError>>,
    {
        let past = self.clone();
        scanned
            .take_while(move |s| s.as_ref().map_or(true, |s| !past.is_past(&s.record)))
            .filter(move |s| s.as_ref().map_or(true, |s| self.matches(&s.record)))
    }
}

#[cfg(test)]
mod tests;
