//! The journal on disk, from the engine's side: group commit, the ring
//! guard and checkpoints.
//!
//! # Group commit, with no daemon
//!
//! An operation is acknowledged only once its record is durable
//! ([`Engine::wait_durable`]). A waiter whose record is not durable yet
//! tries the flush lock (a [`ProcessLock`](shm::sync::ProcessLock) of its
//! own, never the main lock): the one that gets it is the **flush
//! leader**. The leader first yields the CPU while more records are
//! still being committed (a few times at most: the traders the last flush
//! answered are about to commit, and this batch takes them too). It then
//! reads every committed record not yet on disk from the ring, validating
//! each (a peer may have written anything there), writes them with one
//! `pwrite` at `disk_offset`, makes them durable with one `fdatasync`,
//! then publishes `disk_offset` and `durable_seq` and wakes the waiters,
//! who sleep on the `turn` futex word in slices of
//! [`SLICE`], and so share that one `fdatasync`.
//!
//! * A leader killed mid-flush: `disk_offset` and `durable_seq` move only
//!   after the `fdatasync`, so the next leader (who takes the lock over
//!   from the dead one, see [`ProcessLock::lock_timeout`]) cuts the file
//!   back to `disk_offset` and writes the records again.
//! * The ring never overwrites a record that is not on disk: before an
//!   operation takes slot `S mod capacity`, the record that slot holds
//!   must be durable ([`Engine::next_seq`] waits for it, bounded; a
//!   refusal changes nothing).
//! * Files rotate at a size (`SHMEX_JOURNAL_ROTATE` bytes, by default
//!   [`DEFAULT_ROTATE_BYTES`]), at a batch boundary.
//!
//! # Checkpoints
//!
//! [`Engine::maybe_checkpoint`], called after answers are given, writes
//! one when `SHMEX_CHECKPOINT_RECORDS` records (100,000) or
//! `SHMEX_CHECKPOINT_SECS` seconds (60) have passed since the last,
//! unless another process is writing one; [`Engine::checkpoint`] writes
//! one now (`destroy`).
//!
//! [`ProcessLock::lock_timeout`]: shm::sync::ProcessLock::lock_timeout

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::atomic::{Ordering, fence};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use shm::sync::{LockError, LockGuard, SLICE, futex};

use super::journal::{now_ns, read_pending};
use super::{Engine, R};
use crate::disk::{
    Balances, DEFAULT_ROTATE_BYTES, DiskRecord, HEADER_LEN, JournalDir, JournalFile, Scanner,
};
use crate::error::{OpError, OpenError};
use crate::failpoint::{self, Failpoint};
use crate::layout::{DIR_MAX, DIR_WORDS, Durable, pack8};
use crate::types::Op;

/// How long an acknowledgement waits for its record to reach the disk
/// unless `SHMEX_DURABLE_TIMEOUT` says otherwise.
const DEFAULT_DURABLE_WAIT: Duration = Duration::from_secs(10);
/// Most times a flush leader yields the CPU while new records keep
/// being committed, before it takes the batch (see [`Engine::flush`]).
const GATHER_YIELDS: u32 = 4;
/// Records between automatic checkpoints.
const DEFAULT_CHECKPOINT_RECORDS: u64 = 100_000;
/// Seconds between automatic checkpoints.
const DEFAULT_CHECKPOINT_SECS: u64 = 60;

/// A number from the environment variable `name`, or `default` if it is
/// unset or not a number (these are tuning knobs, mostly for tests).
fn knob(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(default)
}

struct Knobs {
    wait: Duration,
    rotate: u64,
    checkpoint_records: u64,
    checkpoint_ns: u64,
}

fn knobs() -> &'static Knobs {
    static K: OnceLock<Knobs> = OnceLock::new();
    K.get_or_init(|| Knobs {
        wait: Duration::from_secs_f64(
            knob("SHMEX_DURABLE_TIMEOUT", DEFAULT_DURABLE_WAIT.as_secs_f64()).min(1e6),
        ),
        rotate: (knob("SHMEX_JOURNAL_ROTATE", DEFAULT_ROTATE_BYTES as f64) as u64)
            .max(HEADER_LEN + 1),
        checkpoint_records: (knob(
            "SHMEX_CHECKPOINT_RECORDS",
            DEFAULT_CHECKPOINT_RECORDS as f64,
        ) as u64)
            .max(1),
        checkpoint_ns: (knob("SHMEX_CHECKPOINT_SECS", DEFAULT_CHECKPOINT_SECS as f64) * 1e9) as u64,
    })
}

/// Where a new exchange's journal is, and how far it goes: what
/// [`Exchange::create_durable`](super::Exchange::create_durable) records
/// in the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalInit {
    /// The journal directory, an absolute path of at most 256 bytes.
    pub dir: PathBuf,
    /// The exchange id of its files.
    pub exchange_id: u64,
    /// The last record on disk (the books' `next_seq - 1`).
    pub durable_seq: u64,
    /// The first sequence number of the file to write.
    pub disk_file: u64,
    /// Where its records end.
    pub disk_offset: u64,
    /// The newest checkpoint's sequence number.
    pub checkpoint_seq: u64,
}

/// This process's side of an exchange's journal: where it is, and the
/// directory and file, opened and checked at the first flush.
#[derive(Debug)]
pub(super) struct Journal {
    pub(super) path: PathBuf,
    pub(super) exchange_id: u64,
    io: Mutex<Io>,
}

#[derive(Debug, Default)]
struct Io {
    dir: Option<JournalDir>,
    file: Option<JournalFile>,
    buf: Vec<u8>,
}

impl Journal {
    pub(super) fn new(path: PathBuf, exchange_id: u64) -> Journal {
        Journal {
            path,
            exchange_id,
            io: Mutex::new(Io::default()),
        }
    }

    /// The journal the segment records, checked: `None` for memory only.
    pub(super) fn from_head(d: &Durable, what: &str) -> Result<Option<Journal>, OpenError> {
        let corrupt = |reason: String| OpenError::Corrupt {
            what: what.to_owned(),
            reason,
        };
        match d.on.load(R) {
            0 => return Ok(None),
            1 => {}
            w => return Err(corrupt(format!("its journal flag is {w}, not 0 or 1"))),
        }
        let len = d.dir_len.load(R);
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| (1..=DIR_MAX).contains(&l))
            .ok_or_else(|| corrupt(format!("its journal path is {len} bytes long")))?;
        let mut bytes = Vec::with_capacity(DIR_MAX);
        for w in &d.dir {
            bytes.extend_from_slice(&w.load(R).to_le_bytes());
        }
        if bytes[len..].iter().any(|&b| b != 0) || bytes[..len].contains(&0) {
            return Err(corrupt("its journal path is malformed".into()));
        }
        bytes.truncate(len);
        let path = PathBuf::from(OsString::from_vec(bytes));
        if !path.is_absolute() {
            return Err(corrupt(format!(
                "its journal path {} is not absolute",
                path.display()
            )));
        }
        let exchange_id = d.exchange_id.load(R);
        if exchange_id == 0 {
            return Err(corrupt("its journal's exchange id is 0".into()));
        }
        Ok(Some(Journal {
            path,
            exchange_id,
            io: Mutex::new(Io::default()),
        }))
    }
}

/// Writes the journal's place into a new segment's head.
pub(super) fn write_head(d: &Durable, init: Option<&JournalInit>) -> Result<(), OpenError> {
    let Some(j) = init else {
        d.on.store(0, R);
        return Ok(());
    };
    let bytes = j.dir.as_os_str().as_bytes();
    if bytes.len() > DIR_MAX || bytes.is_empty() || !j.dir.is_absolute() {
        return Err(OpenError::JournalPath {
            path: j.dir.display().to_string(),
            len: bytes.len(),
            max: DIR_MAX,
        });
    }
    for (i, w) in d.dir.iter().enumerate().take(DIR_WORDS) {
        let chunk = bytes.get(i * 8..bytes.len().min(i * 8 + 8)).unwrap_or(&[]);
        w.store(pack8(chunk), R);
    }
    d.dir_len.store(bytes.len() as u64, R);
    d.exchange_id.store(j.exchange_id, R);
    d.durable_seq.store(j.durable_seq, R);
    d.disk_file.store(j.disk_file, R);
    d.disk_offset.store(j.disk_offset, R);
    d.checkpoint_seq.store(j.checkpoint_seq, R);
    d.checkpoint_ns.store(now_ns(), R);
    d.on.store(1, R);
    Ok(())
}

/// `10 s`, `0.5 s`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

impl<'a> Engine<'a> {
    fn journal_error(&self, e: impl std::fmt::Display) -> OpError {
        OpError::Journal {
            what: self.ex.what.clone(),
            reason: e.to_string(),
        }
    }

    /// The last record that is durable on disk: with `--no-journal`, the
    /// last committed one.
    #[must_use]
    pub fn durable_seq(&self) -> u64 {
        match &self.ex.journal {
            Some(_) => self.head.durable.durable_seq.load(Ordering::Acquire),
            None => self.head.committed_seq.load(Ordering::Acquire),
        }
    }

    /// How many flushes (`fdatasync`s of the journal) there have been:
    /// with [`Engine::durable_seq`], the mean records per flush.
    #[must_use]
    pub fn flushes(&self) -> u64 {
        self.head.durable.flushes.load(R)
    }

    /// Waits until record `seq` is durable on disk, leading the flush if
    /// no one else is (group commit: see the module's notes). Returns at
    /// once with `--no-journal`. Bounded by `SHMEX_DURABLE_TIMEOUT`
    /// (seconds, 10 by default) and ended by a caught termination signal.
    ///
    /// # Errors
    ///
    /// [`OpError::JournalBehind`] at the deadline, [`OpError::Journal`] if
    /// the journal cannot be written, [`OpError::Corrupt`] if the ring
    /// holds what no operation wrote, [`OpError::Lock`] (interrupted by a
    /// signal).
    pub fn wait_durable(&self, seq: u64) -> Result<(), OpError> {
        let Some(j) = &self.ex.journal else {
            return Ok(());
        };
        let d = &self.head.durable;
        if d.durable_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let start = Instant::now();
        let wait = knobs().wait;
        loop {
            if d.durable_seq.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            // Committed records stay committed: only a peer's write makes
            // this fail, and then no flush would ever reach `seq`.
            let committed = self.head.committed_seq.load(Ordering::Acquire);
            if seq > committed {
                return Err(self.corrupt(format!(
                    "record {seq} is to be made durable, but the last committed one is {committed}"
                )));
            }
            if let Some(sig) = shm::sys::termination_signal() {
                return Err(self.lock_error(LockError::Interrupted(sig)));
            }
            if start.elapsed() >= wait {
                return Err(OpError::JournalBehind {
                    what: self.ex.what.clone(),
                    seq,
                    durable: d.durable_seq.load(Ordering::Acquire),
                    waited: secs(wait),
                });
            }
            match d.flush_lock.try_lock() {
                Ok(g) => {
                    self.lead(g, j)?;
                    continue;
                }
                Err(LockError::WouldBlock) => {}
                Err(e) => return Err(self.lock_error(e)),
            }
            let turn = d.turn.load(Ordering::Acquire);
            if d.durable_seq.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            let left = wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                // The top of the loop reports it.
                continue;
            }
            let woke = futex::wait(&d.turn, turn, Some(SLICE.min(left)));
            if woke == futex::Wake::TimedOut && d.durable_seq.load(Ordering::Acquire) < seq {
                // A slice without a flush: the leader may have died.
                // Judge it now, and take the lock over if it did.
                match d.flush_lock.lock_timeout(Duration::ZERO) {
                    Ok(g) => self.lead(g, j)?,
                    Err(LockError::Timeout { .. } | LockError::WouldBlock) => {}
                    Err(e) => return Err(self.lock_error(e)),
                }
            }
        }
    }

    /// Waits, under the main lock, until the ring slot of record `seq`
    /// may be reused: the record it holds (`seq - capacity`) is durable.
    #[cold]
    #[inline(never)]
    pub(super) fn ring_wait(&self, old: u64) -> Result<(), OpError> {
        self.wait_durable(old)
    }

    /// Flushes as the leader, then releases the flush lock.
    fn lead(&self, g: LockGuard<'_>, j: &Journal) -> Result<(), OpError> {
        let r = self.flush(&g, j);
        let d = &self.head.durable;
        d.turn.fetch_add(1, Ordering::Release);
        futex::wake_all(&d.turn);
        match g.unlock() {
            Ok(()) => r,
            Err(e) => Err(self.lock_error(e)),
        }
    }

    /// One flush: every committed record not yet durable, written at the
    /// durable end of the current file (after cutting what a dead leader
    /// left there), synced, then published.
    fn flush(&self, g: &LockGuard<'_>, j: &Journal) -> Result<(), OpError> {
        let d = &self.head.durable;
        let mut io = j.io.lock().unwrap_or_else(PoisonError::into_inner);
        let Io { dir, file, buf } = &mut *io;
        if dir.is_none() {
            *dir = Some(
                JournalDir::open(&j.path, Some(j.exchange_id))
                    .map_err(|e| self.journal_error(e))?,
            );
        }
        let Some(dir) = dir.as_ref() else {
            return Ok(());
        };
        let durable = d.durable_seq.load(Ordering::Acquire);
        let mut committed = self.head.committed_seq.load(Ordering::Acquire);
        if committed <= durable {
            return Ok(());
        }
        // Traders just answered by the last flush are about to commit
        // their next operations: give them the CPU while they do, so that
        // this flush takes them too rather than leaving them a flush of
        // their own. Alone, the first yield sees nothing new.
        for _ in 0..GATHER_YIELDS {
            std::thread::yield_now();
            let c = self.head.committed_seq.load(Ordering::Acquire);
            if c == committed {
                break;
            }
            committed = c;
        }
        if g.owner_died() {
            // The leader before died mid-flush, maybe between publishing
            // the offset and the sequence number, or a new file and its
            // offset: where record `durable` ends is read from the disk.
            let (at_file, at) = self.durable_end(dir, durable)?;
            d.disk_file.store(at_file, R);
            d.disk_offset.store(at, R);
        }
        let mut file_seq = d.disk_file.load(R);
        let mut off = d.disk_offset.load(R);
        if file_seq == 0 || file_seq > durable + 1 || off < HEADER_LEN {
            return Err(self.corrupt(format!(
                "its journal position (file {file_seq}, offset {off}) does not fit record {durable}"
            )));
        }
        let rotate = knobs().rotate;
        if off >= rotate {
            let f = dir
                .create_journal(durable + 1, now_ns())
                .map_err(|e| self.journal_error(e))?;
            file_seq = durable + 1;
            off = HEADER_LEN;
            d.disk_file.store(file_seq, R);
            d.disk_offset.store(off, R);
            *file = Some(f);
        }
        if file.as_ref().map(JournalFile::first_seq) != Some(file_seq) {
            *file = Some(
                dir.open_journal(file_seq, true)
                    .map_err(|e| self.journal_error(e))?,
            );
        }
        let Some(f) = file.as_ref() else {
            return Ok(());
        };
        let size = f.size().map_err(|e| self.journal_error(e))?;
        if size < off {
            return Err(self.journal_error(format!(
                "{} is {size} bytes long, but records up to {durable} end at offset {off}",
                f.path().display()
            )));
        }
        if size > off {
            // What a leader that died (or failed) wrote and never synced.
            f.truncate(off).map_err(|e| self.journal_error(e))?;
        }
        // The ring guard keeps every record past `durable` in the ring.
        let target = committed.min(durable.saturating_add(self.journal.len() as u64));
        buf.clear();
        for s in durable + 1..=target {
            let r = self.ring_record(s, j.exchange_id)?;
            let back = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            r.encode(back, buf)
                .map_err(|e| self.corrupt(format!("journal record {s} is invalid: {e}")))?;
        }
        let written = f.write_at(off, buf);
        failpoint::hit(self.fp, Failpoint::MidFlush);
        let synced = written.and_then(|()| f.sync());
        if let Err(e) = synced {
            // Take back what may be half there; the next leader cuts it
            // anyway.
            let _ = f.truncate(off);
            return Err(self.journal_error(e));
        }
        d.disk_offset.store(off + buf.len() as u64, R);
        d.durable_seq.store(target, Ordering::Release);
        d.flushes.fetch_add(1, R);
        Ok(())
    }

    /// Where record `durable` ends on disk (the file, the offset): where
    /// the next batch goes. Read by scanning the journal from that record's
    /// file, after a leader died.
    #[cold]
    fn durable_end(&self, dir: &JournalDir, durable: u64) -> Result<(u64, u64), OpError> {
        let next = durable + 1;
        let mut scan = Scanner::new(dir, next).map_err(|e| self.journal_error(e))?;
        let (file, at, found) = match scan.next() {
            Some(Ok(s)) => (s.file, s.offset, s.record.seq),
            Some(Err(e)) => return Err(self.journal_error(e)),
            None => {
                let t = scan
                    .tail()
                    .ok_or_else(|| self.journal_error("the journal has no file"))?;
                (t.file, t.offset, t.next_seq)
            }
        };
        if found != next {
            return Err(self.journal_error(format!(
                "record {next} is not where the journal goes on after record {durable} (record {found} is)"
            )));
        }
        Ok((file, at))
    }

    /// Ring record `seq` as a disk record, checked: its slot must still
    /// hold it (records are immutable until durable), and it must be one
    /// an operation writes.
    fn ring_record(&self, seq: u64, exchange_id: u64) -> Result<DiskRecord, OpError> {
        let rec = self.record(seq);
        let s1 = rec.seq.load(Ordering::Acquire);
        let p = read_pending(rec);
        fence(Ordering::Acquire);
        let s2 = rec.seq.load(R);
        if s1 != seq || s2 != seq {
            return Err(self.corrupt(format!(
                "the ring slot of record {seq} holds record {s2} before it reached the disk"
            )));
        }
        let e = self
            .entry(seq, &p)
            .map_err(|why| self.corrupt(format!("journal record {seq} is invalid: {why}")))?;
        let balances = matches!(
            e.op,
            Op::Buy | Op::Sell | Op::Deposit | Op::Withdraw | Op::Open
        )
        .then_some(Balances {
            home: p.bal_home,
            code: p.bal_code,
        });
        DiskRecord::of_entry(
            &e,
            self.ex.codes[e.currency],
            self.ex.decimals[e.currency],
            exchange_id,
            balances,
        )
        .map_err(|why| self.corrupt(format!("journal record {seq} is invalid: {why}")))
    }

    /// Writes a checkpoint if `SHMEX_CHECKPOINT_RECORDS` records or
    /// `SHMEX_CHECKPOINT_SECS` seconds have passed since the last one,
    /// unless another process is writing one. Call it after answering,
    /// off the answer's path. Returns the checkpoint's sequence number,
    /// if one was written.
    ///
    /// # Errors
    ///
    /// As [`Engine::checkpoint`].
    pub fn maybe_checkpoint(&self) -> Result<Option<u64>, OpError> {
        if self.ex.journal.is_none() {
            return Ok(None);
        }
        let d = &self.head.durable;
        let k = knobs();
        let durable = d.durable_seq.load(Ordering::Acquire);
        let last = d.checkpoint_seq.load(R);
        let due = durable.saturating_sub(last) >= k.checkpoint_records
            || (durable > last
                && now_ns().saturating_sub(d.checkpoint_ns.load(R)) >= k.checkpoint_ns);
        if !due {
            return Ok(None);
        }
        match d.checkpoint_lock.try_lock() {
            Ok(g) => {
                let r = self.checkpoint_locked();
                match g.unlock() {
                    Ok(()) => r.map(Some),
                    Err(e) => Err(self.lock_error(e)),
                }
            }
            Err(LockError::WouldBlock) => Ok(None),
            Err(e) => Err(self.lock_error(e)),
        }
    }

    /// Writes a checkpoint of the books now (after making every committed
    /// record durable), keeping the newest two; returns its sequence
    /// number. With `--no-journal`, does nothing and returns `None`.
    ///
    /// # Errors
    ///
    /// [`OpError::Journal`] if it cannot be written (books that fail the
    /// check are never written), and as [`Engine::wait_durable`].
    pub fn checkpoint(&self) -> Result<Option<u64>, OpError> {
        if self.ex.journal.is_none() {
            return Ok(None);
        }
        let l = &self.head.durable.checkpoint_lock;
        let g = l
            .lock_timeout(self.ex.lock_wait)
            .map_err(|e| self.lock_error(e))?;
        let r = self.checkpoint_locked();
        match g.unlock() {
            Ok(()) => r.map(Some),
            Err(e) => Err(self.lock_error(e)),
        }
    }

    fn checkpoint_locked(&self) -> Result<u64, OpError> {
        let Some(j) = &self.ex.journal else {
            return Ok(0);
        };
        let state = self.state()?;
        let seq = state.next_seq.saturating_sub(1);
        self.wait_durable(seq)?;
        let taken = now_ns();
        {
            let mut io = j.io.lock().unwrap_or_else(PoisonError::into_inner);
            if io.dir.is_none() {
                io.dir = Some(
                    JournalDir::open(&j.path, Some(j.exchange_id))
                        .map_err(|e| self.journal_error(e))?,
                );
            }
            if let Some(dir) = &io.dir {
                dir.write_checkpoint(&state, taken)
                    .map_err(|e| self.journal_error(e))?;
            }
        }
        let d = &self.head.durable;
        d.checkpoint_seq.store(seq, R);
        d.checkpoint_ns.store(taken, R);
        Ok(seq)
    }
}

impl super::Exchange {
    /// The journal directory the segment records, or `None` with
    /// `--no-journal`.
    #[must_use]
    pub fn journal_dir(&self) -> Option<PathBuf> {
        self.journal.as_ref().map(|j| j.path.clone())
    }

    /// The exchange id of its journal, or `None` with `--no-journal`.
    #[must_use]
    pub fn journal_id(&self) -> Option<u64> {
        self.journal.as_ref().map(|j| j.exchange_id)
    }
}
