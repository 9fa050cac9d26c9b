//! Opening an account: the next slot, its name and opening balance,
//! journalled as an `open` and counted as a deposit.

use std::sync::atomic::Ordering;

use super::undo::Field;
use super::{Engine, R, Receipt};
use crate::error::OpError;
use crate::failpoint::{self, Failpoint};
use crate::layout::pack_name;
use crate::types::{AccountId, CurrencyId, Op, check_account_name};

/// A valid account name as the segment stores it: its length and its
/// packed words.
pub(super) fn packed(name: &str) -> Result<(u64, [u64; 4]), OpError> {
    check_account_name(name).map_err(OpError::BadName)?;
    Ok((name.len() as u64, pack_name(name.as_bytes())))
}

impl<'a> Engine<'a> {
    /// Opens the account `name` with the opening balance (journalled as an
    /// `open`, counted as a deposit), or finds it if it is open already.
    /// Returns the account and, if it was opened now, the receipt.
    ///
    /// # Errors
    ///
    /// [`OpError::BadName`], [`OpError::AccountsFull`], [`OpError::Lock`].
    pub fn open_account(&self, name: &str) -> Result<(AccountId, Option<Receipt>), OpError> {
        let (len, words) = packed(name)?;
        self.locked(|| {
            if let Some(i) = self.find_account(len, &words)? {
                return Ok((AccountId(i as u32), None));
            }
            let (i, r) = self.open_locked(name, len, words)?;
            Ok((AccountId(i as u32), Some(r)))
        })
    }

    /// The open account with that packed name, looked up directly: with
    /// the lock held, or inside a snapshot.
    pub(super) fn find_account(
        &self,
        len: u64,
        words: &[u64; 4],
    ) -> Result<Option<usize>, OpError> {
        Ok((0..self.accounts_open()?).find(|&i| self.name_matches(i, len, words)))
    }

    /// The open account with that packed name, looked up without the lock
    /// through the seqlock.
    pub(super) fn lookup(&self, len: u64, words: &[u64; 4]) -> Result<Option<usize>, OpError> {
        self.consistent(|| self.find_account(len, words))?
    }

    /// Opens a new account, under the lock: the next slot, the opening
    /// balance, journalled.
    pub(super) fn open_locked(
        &self,
        name: &str,
        len: u64,
        words: [u64; 4],
    ) -> Result<(usize, Receipt), OpError> {
        let n = self.accounts_open()?;
        if n >= self.names.len() {
            return Err(OpError::AccountsFull {
                name: name.to_owned(),
                capacity: self.names.len(),
            });
        }
        let home = &self.rows[0];
        let opening = self.opening()?;
        let deposits = self.sane(home.deposits.load(R), || "the total of deposits".into())?;
        let seq = self.next_seq()?;
        let new_deposits = deposits
            .checked_add(opening)
            .ok_or_else(|| Self::overflow("the total of deposits"))?;
        let mut p = self.pending(Op::Open, 0, None, opening, 0, opening);
        p.name_len = len;
        p.name = words;
        self.begin(
            seq,
            &[(Field::Accounts, n as i64), (Field::Deposits(0), deposits)],
            &p,
        );
        let w = self.head.seq.write();
        let slot = &self.names[n];
        slot.len.store(len, R);
        for (d, v) in slot.bytes.iter().zip(words) {
            d.store(v, R);
        }
        let base = n * self.slots;
        for b in &self.balances[base..base + self.slots] {
            b.store(0, R);
        }
        self.balances[base].store(opening, R);
        self.head.n_accounts.store(n as i64 + 1, Ordering::Release);
        failpoint::hit(self.fp, Failpoint::MidOpen);
        home.deposits.store(new_deposits, R);
        self.commit(seq, &p, w);
        Ok((
            n,
            Receipt {
                seq,
                op: Op::Open,
                currency: CurrencyId::HOME,
                amount: opening,
                rate: 0,
                total: opening,
                balance: opening,
            },
        ))
    }
}
