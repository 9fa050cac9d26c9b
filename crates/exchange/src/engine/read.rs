//! Reads: consistent snapshots through the seqlock, without the lock
//! (which they take, and recover through, only if writes never pause, or a
//! writer died mid-write, or a peer left the sequence odd).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Engine, QuoteRow, R};
use crate::error::OpError;
use crate::state::{AccountState, CurrencyState, Entry, State};
use crate::types::AccountId;

/// How long a reader retries the seqlock before it takes the lock instead
/// (which also recovers from a writer that died mid-write).
const READ_PATIENCE: Duration = Duration::from_millis(50);

impl<'a> Engine<'a> {
    /// Runs `read` until it sees a consistent state; if writes never pause
    /// (or a writer died mid-write), reads under the lock instead, which
    /// also recovers the dead writer's operation and repairs the sequence.
    /// `read` must not panic on torn values: the seqlock judges them only
    /// after it returns.
    pub(super) fn consistent<T>(&self, mut read: impl FnMut() -> T) -> Result<T, OpError> {
        if let Some(v) = self.head.seq.read(READ_PATIENCE, &mut read) {
            // Zeros read from a segment that shrank are not the books.
            self.ex.m.check_intact()?;
            return Ok(v);
        }
        let g = self.lock()?;
        let v = read();
        let r = self.unlock(g, Ok(v));
        self.ex.m.check_intact()?;
        r
    }

    /// The quote (home row first, its holding is the till) into `out`,
    /// reusing its allocation: a consistent snapshot, without the lock.
    ///
    /// # Errors
    ///
    /// [`OpError::Lock`] only when a writer died (or the sequence was left
    /// odd) and the lock cannot be had to recover; [`OpError::Corrupt`] if
    /// the lock was taken from us meanwhile.
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
    /// As [`Engine::quote_into`], [`OpError::BadId`] if `a` is beyond the
    /// capacity, [`OpError::Corrupt`] if no account `a` is open.
    pub fn balances(&self, a: AccountId) -> Result<Vec<i64>, OpError> {
        let ai = self.acct(a)?;
        let n = self.rows.len();
        let cells = &self.balances[ai * self.slots..ai * self.slots + n];
        self.consistent(|| {
            self.open_index(ai)?;
            Ok(cells.iter().map(|c| c.load(R)).collect())
        })?
    }

    /// The books, read directly: inside a snapshot, or with the lock held.
    /// Closed slots are not accounts of the books.
    fn read_state(&self) -> Result<State, OpError> {
        let n_acc = self.slots_used()?;
        let n = self.rows.len();
        let mut accounts = Vec::with_capacity(n_acc);
        for i in (0..n_acc).filter(|&i| self.slot_open(i)) {
            accounts.push(AccountState {
                name: self.name_at(i)?,
                balances: self.balances[i * self.slots..i * self.slots + n]
                    .iter()
                    .map(|b| b.load(R))
                    .collect(),
            });
        }
        Ok(State {
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
            accounts,
            opening: self.head.opening.load(R),
            capacity: self.ex.capacity(),
            next_seq: self.head.committed_seq.load(R).saturating_add(1),
        })
    }

    /// One consistent copy of the books, without the lock.
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn state(&self) -> Result<State, OpError> {
        self.consistent(|| self.read_state())?
    }

    /// The books and the journal (oldest first), consistent with each
    /// other: what a snapshot file holds.
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn snapshot(&self) -> Result<(State, Vec<Entry>), OpError> {
        self.consistent(|| Ok((self.read_state()?, self.journal(None)?)))?
    }

    /// Checks every invariant on a consistent copy of the books; returns
    /// the violations (empty: sound).
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn check(&self) -> Result<Vec<String>, OpError> {
        let (state, closed) =
            self.consistent(|| Ok::<_, OpError>((self.read_state()?, self.closed_violations()?)))??;
        let mut v = state.check();
        v.extend(closed);
        Ok(v)
    }

    /// The journal, oldest first: the last `tail` records, or all those
    /// the ring still holds, up to the last committed operation. A record
    /// being overwritten while it is read is left out.
    ///
    /// # Errors
    ///
    /// [`OpError::Corrupt`] if a record holds what no operation writes.
    pub fn journal(&self, tail: Option<usize>) -> Result<Vec<Entry>, OpError> {
        let last = self.head.committed_seq.load(Ordering::Acquire);
        let cap = self.journal.len() as u64;
        let mut first = last.saturating_sub(cap - 1).max(1);
        if let Some(t) = tail {
            first = first.max(last.saturating_sub(t as u64).saturating_add(1));
        }
        let mut out = Vec::with_capacity(last.saturating_sub(first).saturating_add(1) as usize);
        if last == 0 {
            return Ok(out);
        }
        for seq in first..=last {
            if let Some(e) = self.read_entry(seq)? {
                out.push(e);
            }
        }
        Ok(out)
    }
}
