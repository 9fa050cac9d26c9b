//! Deposits and withdrawals: cash in and out of an account, in any
//! currency, counted in the totals that conservation needs.

use std::sync::atomic::AtomicI64;

use super::journal::Pending;
use super::undo::Field;
use super::{Engine, R, Receipt};
use crate::error::OpError;
use crate::failpoint::{self, Failpoint};
use crate::types::{AccountId, CurrencyId, Op};

impl<'a> Engine<'a> {
    /// Cash in: `amount` of any currency (home included) into the account.
    ///
    /// # Errors
    ///
    /// [`OpError::Money`] for a non-positive amount or an overflow,
    /// [`OpError::Lock`].
    pub fn deposit(&self, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        self.cash(Op::Deposit, a, c, amount)
    }

    /// Cash out: `amount` of any currency from the account.
    ///
    /// # Errors
    ///
    /// [`OpError::InsufficientHolding`], and as [`Engine::deposit`].
    pub fn withdraw(&self, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        self.cash(Op::Withdraw, a, c, amount)
    }

    fn cash(&self, op: Op, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        let ci = self.any_currency(c)?;
        let ai = self.acct(a)?;
        Self::positive(amount, self.ex.decimals[ci])?;
        let p = self.pending(op, ci, Some(ai), amount, 0, amount);
        self.locked(|| self.cash_locked(op, ci, ai, amount, &p))
    }

    /// The total a deposit or a withdrawal of `ci` adds to.
    pub(super) fn cash_total(&self, op: Op, ci: usize) -> &'a AtomicI64 {
        let row = &self.rows[ci];
        if op == Op::Deposit {
            &row.deposits
        } else {
            &row.withdrawals
        }
    }

    /// The new balance and total of a deposit or withdrawal from their
    /// values `bal` and `total`; or why it is refused. Changes nothing.
    pub(super) fn plan_cash(
        &self,
        op: Op,
        ci: usize,
        amount: i64,
        bal: i64,
        total: i64,
        ai: usize,
    ) -> Result<(i64, i64), OpError> {
        let code = &self.ex.codes[ci];
        self.sane(bal, || format!("an account's balance of {code}"))?;
        self.sane(total, || format!("a total of {code}"))?;
        let new_bal = if op == Op::Deposit {
            bal.checked_add(amount)
                .ok_or_else(|| Self::overflow("the balance"))?
        } else {
            if bal < amount {
                return Err(OpError::InsufficientHolding {
                    account: self.name_at(ai)?,
                    code: self.ex.codes[ci].to_string(),
                    have: self.show(ci, bal),
                    want: self.show(ci, amount),
                });
            }
            bal - amount
        };
        let new_total = total.checked_add(amount).ok_or_else(|| {
            Self::overflow(if op == Op::Deposit {
                "the total of deposits"
            } else {
                "the total of withdrawals"
            })
        })?;
        Ok((new_bal, new_total))
    }

    /// A deposit or withdrawal with the lock held.
    pub(super) fn cash_locked(
        &self,
        op: Op,
        ci: usize,
        ai: usize,
        amount: i64,
        p: &Pending,
    ) -> Result<Receipt, OpError> {
        let ai = self.open_index(ai)?;
        let cell = &self.balances[ai * self.slots + ci];
        let bal = cell.load(R);
        let total_cell = self.cash_total(op, ci);
        let field = if op == Op::Deposit {
            Field::Deposits(ci)
        } else {
            Field::Withdrawals(ci)
        };
        let total = total_cell.load(R);
        let (new_bal, new_total) = self.plan_cash(op, ci, amount, bal, total, ai)?;
        let seq = self.next_seq()?;
        let mut p = *p;
        p.bal_code = new_bal;
        p.bal_home = if ci == 0 {
            new_bal
        } else {
            self.balances[ai * self.slots].load(R)
        };
        let p = &p;
        self.begin(
            seq,
            &[(Field::Balance(ai * self.slots + ci), bal), (field, total)],
            p,
        );
        let w = self.head.seq.write();
        cell.store(new_bal, R);
        failpoint::hit(self.fp, Failpoint::MidDeposit);
        total_cell.store(new_total, R);
        self.commit(seq, p, w);
        Ok(Receipt {
            seq,
            op,
            currency: CurrencyId(ci as u16),
            amount,
            rate: 0,
            total: amount,
            balance: new_bal,
        })
    }
}
