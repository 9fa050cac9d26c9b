//! Reads: consistent snapshots through the seqlock, without the lock
//! (which they take, and recover through, only if writes never pause).

use std::sync::atomic::Ordering;
use std::time::Duration;

use shm::sync::LockError;

use super::{Engine, QuoteRow, R};
use crate::error::OpError;
use crate::state::{AccountState, CurrencyState, Entry, State};
use crate::types::AccountId;

/// How long a reader retries the seqlock before it takes the lock instead
/// (which also recovers from a writer that died mid-write).
const READ_PATIENCE: Duration = Duration::from_millis(50);
/// How long a reader waits for the lock after that.
const READ_LOCK_WAIT: Duration = Duration::from_secs(10);

impl<'a> Engine<'a> {
    /// Runs `read` until it sees a consistent state; if writes never pause
    /// (or a writer died mid-write), reads under the lock instead, which
    /// also recovers the dead writer's operation.
    fn consistent<T>(&self, mut read: impl FnMut() -> T) -> Result<T, OpError> {
        if let Some(v) = self.head.seq.read(READ_PATIENCE, &mut read) {
            // Zeros read from a segment that shrank are not the books.
            self.ex.m.check_intact()?;
            return Ok(v);
        }
        let mut g = match self.head.lock.lock_timeout(READ_LOCK_WAIT) {
            Ok(g) => g,
            Err(LockError::WouldBlock) => {
                return Err(OpError::Busy(
                    (READ_PATIENCE + READ_LOCK_WAIT).as_millis() as u64
                ));
            }
            Err(e) => return Err(OpError::Lock(e)),
        };
        if g.owner_died() || self.head.undo.active.load(R) != 0 {
            self.recover(&mut g)?;
        }
        let v = read();
        self.ex.m.check_intact()?;
        Ok(v)
    }

    /// The quote (home row first, its holding is the till) into `out`,
    /// reusing its allocation: a consistent snapshot, without the lock.
    ///
    /// # Errors
    ///
    /// [`OpError::Busy`] or [`OpError::Lock`] only when a writer died and
    /// the lock cannot be had to recover.
    pub fn quote_into(&self, out: &mut Vec<QuoteRow>) -> Result<(), OpError> {
        let codes = &self.ex.codes;
        let decimals = &self.ex.decimals;
        let rows = self.rows;
        self.consistent(|| {
            out.clear();
            for (i, r) in rows.iter().enumerate() {
                out.push(QuoteRow {
                    code: codes[i],
                    decimals: decimals[i],
                    buy: r.buy.load(R),
                    sell: r.sell.load(R),
                    holding: r.holding.load(R),
                });
            }
        })
    }

    /// The quote, as [`Engine::quote_into`].
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn quote(&self) -> Result<Vec<QuoteRow>, OpError> {
        let mut v = Vec::with_capacity(self.rows.len());
        self.quote_into(&mut v)?;
        Ok(v)
    }

    /// An account's balances, indexed like [`Engine::currencies`].
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`], or [`OpError::BadId`].
    pub fn balances(&self, a: AccountId) -> Result<Vec<i64>, OpError> {
        let ai = self.acct(a)?;
        let n = self.rows.len();
        let cells = &self.balances[ai * self.slots..ai * self.slots + n];
        self.consistent(|| cells.iter().map(|c| c.load(R)).collect())
    }

    fn read_state(&self) -> State {
        let n_acc = self.slots_used();
        let n = self.rows.len();
        State {
            currencies: self
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| CurrencyState {
                    code: self.ex.codes[i],
                    decimals: self.ex.decimals[i],
                    buy: r.buy.load(R),
                    sell: r.sell.load(R),
                    holding: r.holding.load(R),
                    genesis: r.genesis.load(R),
                    deposits: r.deposits.load(R),
                    withdrawals: r.withdrawals.load(R),
                })
                .collect(),
            accounts: (0..n_acc)
                .filter(|&i| self.slot_open(i))
                .map(|i| AccountState {
                    name: self.name_at(i),
                    balances: self.balances[i * self.slots..i * self.slots + n]
                        .iter()
                        .map(|b| b.load(R))
                        .collect(),
                })
                .collect(),
            opening: self.head.opening.load(R),
            capacity: self.ex.capacity(),
            next_seq: self.head.next_seq.load(R),
        }
    }

    /// One consistent copy of the books, without the lock.
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn state(&self) -> Result<State, OpError> {
        self.consistent(|| self.read_state())
    }

    /// The books and the journal (oldest first), consistent with each
    /// other: what a snapshot file holds.
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn snapshot(&self) -> Result<(State, Vec<Entry>), OpError> {
        self.consistent(|| (self.read_state(), self.journal(None)))
    }

    /// Checks every invariant on a consistent copy of the books; returns
    /// the violations (empty: sound).
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn check(&self) -> Result<Vec<String>, OpError> {
        let mut v = self.state()?.check();
        v.extend(self.closed_violations());
        Ok(v)
    }

    /// The journal, oldest first: the last `tail` records, or all those
    /// the ring still holds. A record being overwritten while it is read
    /// is left out.
    #[must_use]
    pub fn journal(&self, tail: Option<usize>) -> Vec<Entry> {
        let next = self.head.next_seq.load(Ordering::Acquire);
        let cap = self.journal.len() as u64;
        let mut first = next.saturating_sub(cap).max(1);
        if let Some(t) = tail {
            first = first.max(next.saturating_sub(t as u64));
        }
        let mut out = Vec::with_capacity(next.saturating_sub(first) as usize);
        for seq in first..next {
            if let Some(e) = self.read_entry(seq) {
                out.push(e);
            }
        }
        out
    }
}
