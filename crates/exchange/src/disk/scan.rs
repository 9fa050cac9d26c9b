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

    /// What the unreadable bytes at `offset` of the current file are.
    fn classify(&mut self, offset: u64, reason: String) -> Result<Damage, DiskError> {
        if !self.is_last()? {
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
            Err(DiskError::Header { reason, .. }) => self.classify(0, reason).map(Some),
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
                    // completed: read again before judging.
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
                            return match self.classify(at, e.to_string()) {
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
mod tests {
    use std::path::Path;

    use super::*;
    use crate::disk::record::Name;
    use crate::disk::record::tests::buy;
    use crate::disk::testutil::{identity, tempdir, write_records};

    const ID: u64 = 0xfeed;

    /// Records 1..=n, of several lengths.
    fn records(n: u64) -> Vec<DiskRecord> {
        (1..=n)
            .map(|s| {
                let mut r = buy(s, ID);
                r.account = Name::new(&"x".repeat(1 + (s as usize * 7) % 32)).unwrap();
                r
            })
            .collect()
    }

    fn setup(n: u64, batch: usize, rotate: u64) -> (tempfile::TempDir, JournalDir) {
        let t = tempdir();
        let d = JournalDir::create(&t.path().join("j"), &identity(ID), false).unwrap();
        write_records(&d, &records(n), batch, rotate);
        (t, d)
    }

    /// Scans everything from 1: the records read, and the error if any.
    fn scan(d: &JournalDir) -> (Vec<Scanned>, Option<DiskError>, Option<Torn>, Option<Tail>) {
        let mut s = Scanner::new(d, 1).unwrap();
        let mut out = Vec::new();
        let mut err = None;
        for r in s.by_ref() {
            match r {
                Ok(r) => out.push(r),
                Err(e) => err = Some(e),
            }
        }
        (out, err, s.torn().cloned(), s.tail())
    }

    fn last_file(d: &JournalDir) -> (u64, std::path::PathBuf) {
        let f = *d.journal_files().unwrap().last().unwrap();
        (f, d.file_path(&file_name(f)))
    }

    fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
        let mut b = std::fs::read(path).unwrap();
        f(&mut b);
        std::fs::write(path, &b).unwrap();
    }

    #[test]
    fn every_record_is_read_in_order_across_files() {
        let (_t, d) = setup(50, 4, 1000);
        let files = d.journal_files().unwrap();
        assert!(files.len() > 3, "{files:?}");
        let (got, err, torn, tail) = scan(&d);
        assert!(err.is_none() && torn.is_none());
        assert_eq!(
            got.iter().map(|s| s.record).collect::<Vec<_>>(),
            records(50)
        );
        for w in got.windows(2) {
            if w[0].file == w[1].file {
                assert_eq!(w[0].end, w[1].offset);
            } else {
                assert_eq!(w[1].offset, HEADER_LEN);
                assert_eq!(w[1].file, w[1].record.seq);
            }
        }
        let (last, path) = last_file(&d);
        let len = std::fs::metadata(path).unwrap().len();
        assert_eq!(
            tail,
            Some(Tail {
                file: last,
                offset: len,
                next_seq: 51
            })
        );
        // Starting later skips whole files.
        let from: Vec<u64> = Scanner::new(&d, 30)
            .unwrap()
            .map(|r| r.unwrap().record.seq)
            .collect();
        assert_eq!(from, (30..=50).collect::<Vec<_>>());
        let mut s = Scanner::new(&d, 99).unwrap();
        assert!(s.next().is_none());
        assert_eq!(s.tail().unwrap().next_seq, 51);
    }

    #[test]
    fn a_cut_anywhere_in_the_last_record_is_torn_and_cut() {
        let (_t, d) = setup(20, 3, u64::MAX);
        let (file, path) = last_file(&d);
        let full = std::fs::read(&path).unwrap();
        let start = (full.len() - records(20)[19].frame_len()) as u64;
        for cut in start..full.len() as u64 {
            std::fs::write(&path, &full[..cut as usize]).unwrap();
            let (got, err, torn, tail) = scan(&d);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(got.len(), 19, "cut at {cut}");
            assert_eq!(tail.unwrap().offset, start);
            if cut == start {
                assert_eq!(torn, None);
                continue;
            }
            let torn = torn.unwrap_or_else(|| panic!("cut at {cut}: not torn"));
            assert_eq!((torn.file, torn.offset, torn.len), (file, start, cut));
            assert_eq!(torn.path, path);
            assert!(
                torn.to_string().starts_with(&format!(
                    "a torn record at {} offset {start} (",
                    path.display()
                )),
                "{torn}"
            );
            d.cut_torn(&torn).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), start);
            let (got, err, torn, _) = scan(&d);
            assert_eq!((got.len(), err.is_none(), torn), (19, true, None));
        }
        // Extra zeros past the end (space allocated, never written) too.
        let mut z = full.clone();
        z.extend_from_slice(&[0; 4096]);
        std::fs::write(&path, &z).unwrap();
        let (got, _, torn, _) = scan(&d);
        assert_eq!(got.len(), 20);
        assert_eq!(torn.unwrap().offset, full.len() as u64);
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_corruption_at_its_offset() {
        // One file, and several files (the record then in an earlier one).
        for rotate in [u64::MAX, 900] {
            let (_t, d) = setup(30, 3, rotate);
            let (good, ..) = scan(&d);
            let victim = good[10];
            let path = d.file_path(&file_name(victim.file));
            let full = std::fs::read(&path).unwrap();
            for i in victim.offset..victim.end {
                for bit in [0x01, 0x80] {
                    edit(&path, |b| b[i as usize] ^= bit);
                    let (got, err, torn, _) = scan(&d);
                    assert_eq!(got.len(), 10);
                    assert_eq!(torn, None);
                    match err {
                        Some(DiskError::Corrupt { file, offset, .. }) => {
                            assert_eq!((file.as_path(), offset), (path.as_path(), victim.offset));
                        }
                        e => panic!("byte {i}: {e:?}"),
                    }
                    std::fs::write(&path, &full).unwrap();
                }
            }
            let e = {
                edit(&path, |b| b[victim.offset as usize + 30] ^= 1);
                scan(&d).1.unwrap()
            };
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "corrupt journal record in {} at offset {}: checksum mismatch",
                    path.display(),
                    victim.offset
                )),
                "{text}"
            );
        }
    }

    #[test]
    fn damage_in_the_last_batch_is_torn() {
        // Batches of 5: the last batch is records 26..=30.
        let (_t, d) = setup(30, 5, u64::MAX);
        let (good, ..) = scan(&d);
        let (_, path) = last_file(&d);
        let full = std::fs::read(&path).unwrap();
        // A page of the last write never reached the disk: zeros, with the
        // rest of the batch after them.
        let hole = good[26];
        edit(&path, |b| {
            b[hole.offset as usize..hole.end as usize].fill(0);
        });
        let (got, err, torn, _) = scan(&d);
        assert!(err.is_none());
        assert_eq!(got.len(), 26);
        let torn = torn.unwrap();
        assert_eq!(torn.offset, hole.offset);
        d.cut_torn(&torn).unwrap();
        assert_eq!(scan(&d).0.len(), 26);
        // The same hole in an earlier batch, with later batches after it,
        // is corruption.
        std::fs::write(&path, &full).unwrap();
        let hole = good[12];
        edit(&path, |b| {
            b[hole.offset as usize..hole.end as usize].fill(0);
        });
        let (got, err, torn, _) = scan(&d);
        assert_eq!((got.len(), torn), (12, None));
        let e = err.unwrap();
        assert!(
            matches!(e, DiskError::Corrupt { offset, .. } if offset == hole.offset),
            "{e}"
        );
        assert!(
            e.to_string().contains("a later batch follows at offset"),
            "{e}"
        );
    }

    #[test]
    fn valid_frames_with_wrong_content_are_corruption_even_at_the_end() {
        let (_t, d) = setup(5, 2, u64::MAX);
        let (file, path) = last_file(&d);
        let end = std::fs::metadata(&path).unwrap().len();
        let f = d.open_journal(file, true).unwrap();
        let mut buf = Vec::new();
        crate::disk::encode_batch(&[buy(6, ID + 1)], &mut buf).unwrap();
        f.append(end, &buf).unwrap();
        let e = scan(&d).1.unwrap();
        assert!(e.to_string().contains("belongs to exchange"), "{e}");
        f.truncate(end).unwrap();
        buf.clear();
        crate::disk::encode_batch(&[buy(8, ID)], &mut buf).unwrap();
        f.append(end, &buf).unwrap();
        let e = scan(&d).1.unwrap();
        assert!(
            matches!(&e, DiskError::Corrupt { offset, reason, .. }
            if *offset == end && reason == "record 8 where 6 was expected"),
            "{e}"
        );
    }

    #[test]
    fn headers_torn_and_corrupt() {
        let (_t, d) = setup(12, 3, 600);
        let files = d.journal_files().unwrap();
        // A new last file whose header never reached the disk.
        let next = 13;
        let f = d.create_journal(next, 0).unwrap();
        let path = f.path().to_path_buf();
        drop(f);
        for junk in [vec![0; 64], vec![0; 10], vec![0; 8192], Vec::new()] {
            std::fs::write(&path, &junk).unwrap();
            let (got, err, torn, tail) = scan(&d);
            assert!(err.is_none(), "{err:?}");
            assert_eq!(got.len(), 12);
            let torn = torn.unwrap();
            assert_eq!((torn.file, torn.offset), (next, 0));
            assert_eq!(tail.unwrap().next_seq, 13);
            d.cut_torn(&torn).unwrap();
            let (got, err, torn, tail) = scan(&d);
            assert_eq!((got.len(), err.is_none(), torn), (12, true, None));
            assert_eq!(
                tail,
                Some(Tail {
                    file: next,
                    offset: HEADER_LEN,
                    next_seq: 13
                })
            );
        }
        // A bad header with records after it, or in an earlier file, is
        // corruption.
        write_records(&d, &records(14)[12..], 1, u64::MAX);
        for f in [next, files[1]] {
            let p = d.file_path(&file_name(f));
            let full = std::fs::read(&p).unwrap();
            edit(&p, |b| b[20] ^= 1);
            let e = scan(&d).1.unwrap();
            assert!(
                matches!(&e, DiskError::Corrupt { offset: 0, reason, .. }
                if reason.contains("header checksum")),
                "{e}"
            );
            std::fs::write(&p, &full).unwrap();
        }
        assert!(scan(&d).1.is_none());
    }

    #[test]
    fn a_missing_file_is_a_gap() {
        let (_t, d) = setup(20, 2, 400);
        let files = d.journal_files().unwrap();
        std::fs::remove_file(d.file_path(&file_name(files[1]))).unwrap();
        let (got, err, ..) = scan(&d);
        assert_eq!(got.len() as u64, files[1] - 1);
        let e = err.unwrap();
        assert!(
            matches!(e, DiskError::Gap { expected, found, .. }
            if expected == files[1] && found == files[2]),
            "{e}"
        );
    }

    #[test]
    fn a_live_journal_can_be_followed() {
        let (_t, d) = setup(5, 2, 700);
        let mut s = Scanner::new(&d, 1).unwrap();
        let mut seen = Vec::new();
        let mut drain = |s: &mut Scanner<'_>| {
            for r in s.by_ref() {
                seen.push(r.unwrap().record.seq);
            }
        };
        drain(&mut s);
        let all = records(40);
        write_records(&d, &all[5..9], 2, 700);
        drain(&mut s);
        // A record half written reads as torn, and then as itself.
        let (file, path) = last_file(&d);
        let end = std::fs::metadata(&path).unwrap().len();
        let mut buf = Vec::new();
        crate::disk::encode_batch(&all[9..10], &mut buf).unwrap();
        let f = d.open_journal(file, true).unwrap();
        f.write_at(end, &buf[..7]).unwrap();
        drain(&mut s);
        assert_eq!(s.torn().map(|t| t.offset), Some(end));
        f.write_at(end, &buf).unwrap();
        drain(&mut s);
        assert!(s.torn().is_none());
        write_records(&d, &all[10..], 3, 700);
        drain(&mut s);
        assert_eq!(seen, (1..=40).collect::<Vec<_>>());
        assert!(d.journal_files().unwrap().len() > 2);
    }

    #[test]
    fn a_follower_reads_what_was_added_before_a_rotation() {
        let (_t, d) = setup(5, 5, u64::MAX);
        let mut s = Scanner::new(&d, 1).unwrap();
        assert_eq!(s.by_ref().count(), 5);
        let all = records(7);
        let (file, path) = last_file(&d);
        let end = std::fs::metadata(&path).unwrap().len();
        let mut buf = Vec::new();
        crate::disk::encode_batch(&all[5..6], &mut buf).unwrap();
        // Half of record 6 is there when the follower looks.
        let f = d.open_journal(file, true).unwrap();
        f.write_at(end, &buf[..50]).unwrap();
        assert_eq!(s.next().map(|r| r.is_ok()), None);
        assert!(s.torn().is_some());
        // Then it is completed, and the next file made.
        f.append(end, &buf).unwrap();
        let g = d.create_journal(7, 0).unwrap();
        buf.clear();
        crate::disk::encode_batch(&all[6..], &mut buf).unwrap();
        g.append(HEADER_LEN, &buf).unwrap();
        let seqs: Vec<u64> = s.by_ref().map(|r| r.unwrap().record.seq).collect();
        assert_eq!(seqs, [6, 7]);
    }

    #[test]
    fn the_good_prefix_can_be_kept() {
        let (_t, d) = setup(30, 3, 900);
        let files = d.journal_files().unwrap();
        assert!(files.len() >= 3, "{files:?}");
        let (good, ..) = scan(&d);
        let victim = good
            .iter()
            .find(|s| s.file == files[1] && s.offset > HEADER_LEN)
            .unwrap();
        let path = d.file_path(&file_name(victim.file));
        edit(&path, |b| b[victim.offset as usize + 40] ^= 4);
        let bad = match scan(&d).1 {
            Some(DiskError::Corrupt {
                file,
                offset,
                reason,
            }) => Corruption {
                path: file,
                file: victim.file,
                offset,
                reason,
            },
            e => panic!("{e:?}"),
        };
        d.cut_corrupt(&bad).unwrap();
        let (got, err, torn, tail) = scan(&d);
        assert!(err.is_none() && torn.is_none());
        assert_eq!(got.len() as u64, victim.record.seq - 1);
        assert_eq!(tail.unwrap().offset, victim.offset);
        let names = d.names().unwrap();
        for f in &files[1..] {
            assert!(
                names.contains(&format!("{}.damaged", file_name(*f))),
                "{names:?}"
            );
        }
        assert_eq!(d.journal_files().unwrap(), files[..2]);
    }

    #[test]
    fn filters_select_and_stop() {
        let (_t, d) = setup(40, 4, 1500);
        let mut all = records(40);
        all[3].op = Op::Sell;
        let scan_with = |f: Filter| -> Vec<u64> {
            let from = f.first_seq();
            f.apply(Scanner::new(&d, from).unwrap())
                .map(|r| r.unwrap().record.seq)
                .collect()
        };
        let f = Filter {
            seq: Some(1..=10),
            ..Filter::default()
        };
        assert_eq!(scan_with(f), (1..=10).collect::<Vec<_>>());
        let name = records(40)[6].account.to_string();
        let f = Filter {
            account: Some(name.clone()),
            ..Filter::default()
        };
        let want: Vec<u64> = records(40)
            .iter()
            .filter(|r| r.account.as_str() == name)
            .map(|r| r.seq)
            .collect();
        assert!(want.len() > 1);
        assert_eq!(scan_with(f), want);
        let t0 = records(1)[0].time_ns;
        let f = Filter {
            since_ns: Some(t0 + 5),
            until_ns: Some(t0 + 7),
            code: Some(crate::types::Code::new("DOLLAR").unwrap()),
            op: Some(Op::Buy),
            seq: Some(3..=100),
            ..Filter::default()
        };
        assert_eq!(scan_with(f.clone()), [6, 7, 8]);
        assert!(!f.matches(&all[3]));
        let f = Filter {
            code: Some(crate::types::Code::new("EURO").unwrap()),
            ..Filter::default()
        };
        assert!(scan_with(f).is_empty());
        // A bounded range stops reading once it is past.
        let f = Filter {
            seq: Some(2..=3),
            ..Filter::default()
        };
        let mut it = f.apply(records(40).into_iter().map(|r| {
            assert!(r.seq <= 4, "read past the range");
            Ok(Scanned {
                record: r,
                file: 1,
                offset: 0,
                end: 0,
            })
        }));
        assert_eq!(it.next().unwrap().unwrap().record.seq, 2);
        assert_eq!(it.next().unwrap().unwrap().record.seq, 3);
        assert!(it.next().is_none());
    }
}
