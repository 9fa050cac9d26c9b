//! Steps 3 and 5, and recovery: the undo record that names every field a
//! mutation touches with its old value, the commit, and the rollback the
//! next lock holder applies after a holder died, once it has checked that
//! the record is one an operation could have written.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use shm::sync::{LockGuard, SeqWriteGuard};

use super::journal::{Meta, Pending, now_ns, read_pending, write_record};
use super::{Engine, R};
use crate::error::OpError;
use crate::failpoint::{self, Failpoint};
use crate::layout::{CLOSED, MAX_UNDO, NAME_MAX, Undo};
use crate::types::{Op, unpack_name};

/// A field an operation may change, as the undo record names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Holding(usize),
    Balance(usize),
    Deposits(usize),
    Withdrawals(usize),
    Buy(usize),
    Sell(usize),
    Accounts,
    /// An account slot's name length, whose top bit marks it closed.
    NameLen(usize),
}

impl Field {
    fn encode(self) -> u64 {
        let (k, i) = match self {
            Field::Holding(i) => (1, i),
            Field::Balance(i) => (2, i),
            Field::Deposits(i) => (3, i),
            Field::Withdrawals(i) => (4, i),
            Field::Buy(i) => (5, i),
            Field::Sell(i) => (6, i),
            Field::Accounts => (7, 0),
            Field::NameLen(i) => (8, i),
        };
        (k << 56) | i as u64
    }

    fn decode(w: u64) -> Option<Field> {
        let i = usize::try_from(w & ((1 << 56) - 1)).ok()?;
        Some(match w >> 56 {
            1 => Field::Holding(i),
            2 => Field::Balance(i),
            3 => Field::Deposits(i),
            4 => Field::Withdrawals(i),
            5 => Field::Buy(i),
            6 => Field::Sell(i),
            7 => Field::Accounts,
            8 => Field::NameLen(i),
            _ => return None,
        })
    }
}

/// A cell an undo record names: a signed one, or an account slot's name
/// length.
#[derive(Clone, Copy)]
enum Cell<'c> {
    Signed(&'c AtomicI64),
    NameLen(&'c AtomicU64),
}

impl Cell<'_> {
    /// Stores `old` back, as the undo record keeps it.
    fn restore(self, old: i64) {
        match self {
            Cell::Signed(c) => c.store(old, R),
            Cell::NameLen(c) => c.store(old as u64, R),
        }
    }

    /// Whether `old` is a value an operation could have found there: any
    /// for a signed cell; for a name length, one of a name (with or
    /// without the closed mark).
    fn holds(self, old: i64) -> bool {
        match self {
            Cell::Signed(_) => true,
            Cell::NameLen(_) => (1..=NAME_MAX as u64).contains(&(old as u64 & !CLOSED)),
        }
    }
}

/// An undo record found valid: the cells to restore with their old values,
/// and the journal record of the operation it undoes.
struct Rollback<'c> {
    cells: Vec<(Cell<'c>, i64)>,
    pending: Pending,
    undone: Meta,
}

impl<'a> Engine<'a> {
    /// Repairs what a lock holder left: called with the lock held when its
    /// previous holder died, an undo record is active, or the seqlock was
    /// left odd. An active undo record of an operation that did not commit
    /// is applied backwards and journalled as a rollback under the dead
    /// operation's sequence number; one that committed is only cleared;
    /// and the seqlock is made even again either way.
    ///
    /// # Errors
    ///
    /// [`OpError::Corrupt`] if the undo record cannot be what an operation
    /// wrote; it is then discarded (so that the exchange stays usable, and
    /// `check` shows what the books hold), and nothing is rolled back.
    #[cold]
    #[inline(never)]
    pub(super) fn recover(&self, _held: &LockGuard<'_>) -> Result<(), OpError> {
        let u = &self.head.undo;
        if u.active.load(R) == 0 {
            self.head.seq.repair();
            return Ok(());
        }
        let committed = self.head.committed_seq.load(R);
        let seq = u.seq.load(R);
        if seq <= committed {
            // Its holder died after the commit: the operation is whole.
            u.active.store(0, Ordering::Release);
            self.head.seq.repair();
            return Ok(());
        }
        let valid = if Some(seq) == committed.checked_add(1) {
            self.rollback_of(u)
        } else {
            Err(format!(
                "its undo record has sequence number {seq}, but the last committed operation is {committed}"
            ))
        };
        let r = match valid {
            Ok(r) => r,
            Err(why) => {
                u.active.store(0, Ordering::Release);
                self.head.seq.repair();
                return Err(self.corrupt(format!("{why}; the record was discarded")));
            }
        };
        // The sequence is odd if the dead writer was mid-write; a write
        // keeps it odd until the rollback is complete either way.
        let w = self.head.seq.write();
        for (i, &(cell, old)) in r.cells.iter().enumerate() {
            cell.restore(old);
            if i == 0 {
                failpoint::hit(self.fp, Failpoint::MidRollback);
            }
        }
        // The rollback's record is the undone one's, marked as such; its
        // `extra` keeps the pid of the process that died.
        let rollback = Pending {
            meta: Meta {
                op: Some(Op::Rollback),
                currency: r.undone.currency,
                undone: r.undone.op,
                pid: self.pid,
            }
            .pack(),
            extra: i64::from(r.undone.pid),
            time_ns: now_ns(),
            ..r.pending
        };
        write_record(self.record(seq), seq, &rollback);
        self.head.committed_seq.store(seq, Ordering::Release);
        self.head.recoveries.fetch_add(1, R);
        u.active.store(0, Ordering::Release);
        drop(w);
        Ok(())
    }

    /// The undo record's contents, if an operation could have written
    /// them: at most [`MAX_UNDO`] fields, each naming a cell of this
    /// exchange, and the record of an operation on one of its currencies.
    fn rollback_of(&self, u: &Undo) -> Result<Rollback<'a>, String> {
        let bad = |what: String| format!("its undo record is invalid: {what}");
        let count = u.count.load(R);
        let n = usize::try_from(count)
            .ok()
            .filter(|&n| n <= MAX_UNDO)
            .ok_or_else(|| bad(format!("it counts {count} fields, at most {MAX_UNDO} fit")))?;
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            let w = u.fields[i].load(R);
            let cell = Field::decode(w)
                .and_then(|f| self.cell(f))
                .ok_or_else(|| bad(format!("field {i} ({w:#x}) names no cell")))?;
            let old = u.olds[i].load(R);
            if !cell.holds(old) {
                return Err(bad(format!(
                    "field {i} ({w:#x}) would get {old:#x}, which is no name length"
                )));
            }
            cells.push((cell, old));
        }
        let pending = read_pending(&u.pending);
        let undone = Meta::unpack(pending.meta);
        if undone.op.is_none_or(|op| op == Op::Rollback) || undone.currency >= self.rows.len() {
            return Err(bad(format!(
                "its journal record names no operation on a currency ({:#x})",
                pending.meta
            )));
        }
        let no_name = pending.name_len == 0 && pending.name == [0; 4];
        if !no_name && unpack_name(pending.name_len, pending.name).is_none() {
            return Err(bad("its journal record names no account".into()));
        }
        Ok(Rollback {
            cells,
            pending,
            undone,
        })
    }

    fn cell(&self, f: Field) -> Option<Cell<'a>> {
        let rows = self.rows;
        let signed = match f {
            Field::Holding(i) => rows.get(i).map(|r| &r.holding),
            Field::Balance(i) => self.balances.get(i),
            Field::Deposits(i) => rows.get(i).map(|r| &r.deposits),
            Field::Withdrawals(i) => rows.get(i).map(|r| &r.withdrawals),
            Field::Buy(i) => rows.get(i).map(|r| &r.buy),
            Field::Sell(i) => rows.get(i).map(|r| &r.sell),
            Field::Accounts => Some(&self.head.n_accounts),
            Field::NameLen(i) => return self.names.get(i).map(|n| Cell::NameLen(&n.len)),
        };
        signed.map(Cell::Signed)
    }

    /// The sequence number the next operation gets.
    ///
    /// With a journal on disk, this is also the ring guard: the slot the
    /// operation will write must not hold a record that is not durable
    /// yet, so it waits (bounded) until that record is; a refusal changes
    /// nothing, as nothing is written before this.
    #[inline]
    pub(super) fn next_seq(&self) -> Result<u64, OpError> {
        let c = self.head.committed_seq.load(R);
        let s = c
            .checked_add(1)
            .ok_or_else(|| self.corrupt(format!("its last sequence number is {c}: no next one")))?;
        if self.durable {
            let cap = self.journal.len() as u64;
            if s > cap && s - cap > self.head.durable.durable_seq.load(Ordering::Acquire) {
                self.ring_wait(s - cap)?;
            }
        }
        Ok(s)
    }

    /// Step 3: the undo record, for the operation numbered `seq`.
    #[inline]
    pub(super) fn begin(&self, seq: u64, touched: &[(Field, i64)], p: &Pending) {
        let u = &self.head.undo;
        for (i, (f, old)) in touched.iter().enumerate() {
            u.fields[i].store(f.encode(), R);
            u.olds[i].store(*old, R);
        }
        u.count.store(touched.len() as u64, R);
        u.seq.store(seq, R);
        write_record(&u.pending, seq, p);
        // Everything above must be in memory before `active` says so.
        u.active.store(1, Ordering::Release);
    }

    /// Step 4's end and step 5: the journal record, the commit, and the
    /// undo record cleared.
    #[inline]
    pub(super) fn commit(&self, seq: u64, p: &Pending, w: SeqWriteGuard<'_>) {
        write_record(self.record(seq), seq, p);
        failpoint::hit(self.fp, Failpoint::AfterJournal);
        self.head.committed_seq.store(seq, Ordering::Release);
        self.head.undo.active.store(0, Ordering::Release);
        drop(w);
    }
}
