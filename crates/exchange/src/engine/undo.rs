//! Steps 3 and 5, and recovery: the undo record that names every field a
//! mutation touches with its old value, its clearing at commit, and the
//! rollback the next lock holder applies after an owner died.

use std::sync::atomic::{AtomicI64, Ordering};

use shm::sync::{MutexGuard, SeqWriteGuard};

use super::journal::{Meta, Pending, now_ns, read_pending, write_record};
use super::{Engine, R};
use crate::error::OpError;
use crate::failpoint::{self, Failpoint};
use crate::layout::MAX_UNDO;
use crate::types::Op;

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

impl<'a> Engine<'a> {
    /// Rolls back the operation of a lock holder that died, repairs the
    /// seqlock, journals the rollback and marks the mutex consistent.
    #[cold]
    #[inline(never)]
    pub(super) fn recover(&self, g: &mut MutexGuard<'_>) -> Result<(), OpError> {
        let u = &self.head.undo;
        if u.active.load(R) != 0 {
            let seq = u.seq.load(R);
            let count = usize::try_from(u.count.load(R)).unwrap_or(0).min(MAX_UNDO);
            let pending = read_pending(&u.pending);
            // The sequence is odd if the dead writer was mid-write; a write
            // keeps it odd until the rollback is complete either way.
            let w = self.head.seq.write();
            for i in 0..count {
                let field = Field::decode(u.fields[i].load(R));
                if let Some(Field::NameLen(a)) = field {
                    if let Some(n) = self.names.get(a) {
                        n.len.store(u.olds[i].load(R) as u64, R);
                    }
                } else if let Some(cell) = field.and_then(|f| self.cell(f)) {
                    cell.store(u.olds[i].load(R), R);
                }
                if i == 0 {
                    failpoint::hit(self.fp, Failpoint::MidRollback);
                }
            }
            // The rollback's record is the undone one's, marked as such; its
            // `extra` keeps the pid of the process that died.
            let undone = Meta::unpack(pending.meta);
            let rollback = Pending {
                meta: Meta {
                    op: Some(Op::Rollback),
                    currency: undone.currency,
                    undone: undone.op,
                    pid: self.pid,
                }
                .pack(),
                extra: i64::from(undone.pid),
                time_ns: now_ns(),
                ..pending
            };
            let seq = seq.max(1);
            write_record(self.record(seq), seq, &rollback);
            self.head.next_seq.store(seq + 1, R);
            self.head.recoveries.fetch_add(1, R);
            u.active.store(0, Ordering::Release);
            drop(w);
        } else {
            self.head.seq.repair();
        }
        g.mark_consistent().map_err(OpError::Lock)
    }

    fn cell(&self, f: Field) -> Option<&'a AtomicI64> {
        let rows = self.rows;
        match f {
            Field::Holding(i) => rows.get(i).map(|r| &r.holding),
            Field::Balance(i) => self.balances.get(i),
            Field::Deposits(i) => rows.get(i).map(|r| &r.deposits),
            Field::Withdrawals(i) => rows.get(i).map(|r| &r.withdrawals),
            Field::Buy(i) => rows.get(i).map(|r| &r.buy),
            Field::Sell(i) => rows.get(i).map(|r| &r.sell),
            Field::Accounts => Some(&self.head.n_accounts),
            // Not an AtomicI64: `recover` restores it itself.
            Field::NameLen(_) => None,
        }
    }

    /// Step 3: the undo record. Returns the sequence number.
    #[inline]
    pub(super) fn begin(&self, touched: &[(Field, i64)], p: &Pending) -> u64 {
        let u = &self.head.undo;
        let seq = self.head.next_seq.load(R);
        for (i, (f, old)) in touched.iter().enumerate() {
            u.fields[i].store(f.encode(), R);
            u.olds[i].store(*old, R);
        }
        u.count.store(touched.len() as u64, R);
        u.seq.store(seq, R);
        write_record(&u.pending, seq, p);
        // Everything above must be in memory before `active` says so.
        u.active.store(1, Ordering::Release);
        seq
    }

    /// Step 4's end and step 5.
    #[inline]
    pub(super) fn commit(&self, seq: u64, p: &Pending, w: SeqWriteGuard<'_>) {
        write_record(self.record(seq), seq, p);
        self.head.next_seq.store(seq + 1, R);
        failpoint::hit(self.fp, Failpoint::AfterJournal);
        self.head.undo.active.store(0, Ordering::Release);
        drop(w);
    }
}
