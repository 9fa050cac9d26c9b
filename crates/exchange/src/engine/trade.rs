//! Buying and selling foreign currency: one path for both sides, planned
//! against the books, then applied under the undo record.

use super::journal::Pending;
use super::undo::Field;
use super::{Engine, R, Receipt};
use crate::error::OpError;
use crate::failpoint::{self, Failpoint};
use crate::money::{self, Round};
use crate::types::{AccountId, CurrencyId, Op};

impl<'a> Engine<'a> {
    /// A customer buys `amount` (minor units) of foreign currency `c`: they
    /// pay `amount × sell rate`, rounded up, in home currency; the stock
    /// goes down and the till up.
    ///
    /// # Errors
    ///
    /// [`OpError::InsufficientStock`], [`OpError::InsufficientBalance`],
    /// [`OpError::HomeCurrency`], [`OpError::Money`] for a non-positive
    /// amount or an overflow, [`OpError::Lock`].
    pub fn buy(&self, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        self.trade::<true>(a, c, amount)
    }

    /// A customer sells `amount` of foreign currency `c`: they receive
    /// `amount × buy rate`, rounded down; the stock goes up and the till
    /// down.
    ///
    /// # Errors
    ///
    /// [`OpError::InsufficientHolding`], [`OpError::TillShort`], and as
    /// [`Engine::buy`].
    pub fn sell(&self, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        self.trade::<false>(a, c, amount)
    }

    /// A buy (`BUY`) or a sell: both move the same four cells (the stock
    /// of `c`, the till, the account's home and `c` balances), in opposite
    /// directions. A const parameter, not an argument, so that each side
    /// is compiled on its own, its lock and checks inlined as one path.
    #[inline(always)]
    fn trade<const BUY: bool>(
        &self,
        a: AccountId,
        c: CurrencyId,
        amount: i64,
    ) -> Result<Receipt, OpError> {
        let op = if BUY { Op::Buy } else { Op::Sell };
        let ci = self.foreign(c)?;
        let ai = self.acct(a)?;
        Self::positive(amount, self.ex.decimals[ci])?;
        // Built before the lock: the name and the clock need no lock.
        let p = self.pending(op, ci, Some(ai), amount, 0, 0);
        self.locked(|| self.trade_locked::<BUY>(ci, ai, amount, p))
    }

    /// The new values of a trade's four cells (the stock of `ci`, the till,
    /// the account's home and `ci` balances) from their values `cells`,
    /// with the rate and the total; or why it is refused. Changes nothing.
    #[inline(always)]
    pub(super) fn plan_trade<const BUY: bool>(
        &self,
        ci: usize,
        amount: i64,
        cells: [i64; 4],
        ai: usize,
    ) -> Result<(i64, i64, [i64; 4]), OpError> {
        let [stock, till, bh, bc] = cells;
        let code = &self.ex.codes[ci];
        self.sane(stock, || format!("the stock of {code}"))?;
        self.sane(till, || "the till".into())?;
        self.sane(bh, || "an account's home balance".into())?;
        self.sane(bc, || format!("an account's balance of {code}"))?;
        let (buy, sell) = self.rates(ci)?;
        let dec = self.ex.decimals[ci];
        if BUY {
            if stock < amount {
                return Err(OpError::InsufficientStock {
                    code: self.ex.codes[ci].to_string(),
                    have: self.show(ci, stock),
                    want: self.show(ci, amount),
                });
            }
            let rate = sell;
            let price = money::convert(amount, dec, rate, self.ex.decimals[0], Round::Up)?;
            if bh < price {
                return Err(OpError::InsufficientBalance {
                    account: self.name_at(ai)?,
                    home: self.home().to_string(),
                    have: self.show(0, bh),
                    want: self.show(0, price),
                });
            }
            let new_till = till
                .checked_add(price)
                .ok_or_else(|| Self::overflow("the till"))?;
            let new_bc = bc
                .checked_add(amount)
                .ok_or_else(|| Self::overflow("the balance"))?;
            Ok((rate, price, [stock - amount, new_till, bh - price, new_bc]))
        } else {
            if bc < amount {
                return Err(OpError::InsufficientHolding {
                    account: self.name_at(ai)?,
                    code: self.ex.codes[ci].to_string(),
                    have: self.show(ci, bc),
                    want: self.show(ci, amount),
                });
            }
            let rate = buy;
            let proceeds = money::convert(amount, dec, rate, self.ex.decimals[0], Round::Down)?;
            if till < proceeds {
                return Err(OpError::TillShort {
                    home: self.home().to_string(),
                    have: self.show(0, till),
                    want: self.show(0, proceeds),
                });
            }
            let new_stock = stock
                .checked_add(amount)
                .ok_or_else(|| Self::overflow("the stock"))?;
            let new_bh = bh
                .checked_add(proceeds)
                .ok_or_else(|| Self::overflow("the balance"))?;
            Ok((
                rate,
                proceeds,
                [new_stock, till - proceeds, new_bh, bc - amount],
            ))
        }
    }

    /// A trade with the lock held: steps 2–5 of the protocol.
    #[inline(always)]
    pub(super) fn trade_locked<const BUY: bool>(
        &self,
        ci: usize,
        ai: usize,
        amount: i64,
        mut p: Pending,
    ) -> Result<Receipt, OpError> {
        let op = if BUY { Op::Buy } else { Op::Sell };
        failpoint::hold(self.fp, Failpoint::HoldInTrade);
        let ai = self.open_index(ai)?;
        let row = &self.rows[ci];
        let home = &self.rows[0];
        let bh_cell = &self.balances[ai * self.slots];
        let bc_cell = &self.balances[ai * self.slots + ci];
        let stock = row.holding.load(R);
        let till = home.holding.load(R);
        let bh = bh_cell.load(R);
        let bc = bc_cell.load(R);
        let (rate, total, new) = self.plan_trade::<BUY>(ci, amount, [stock, till, bh, bc], ai)?;
        (p.rate, p.total) = (rate, total);
        (p.bal_home, p.bal_code) = (new[2], new[3]);
        let seq = self.next_seq()?;
        self.begin(
            seq,
            &[
                (Field::Holding(ci), stock),
                (Field::Holding(0), till),
                (Field::Balance(ai * self.slots), bh),
                (Field::Balance(ai * self.slots + ci), bc),
            ],
            &p,
        );
        let w = self.head.seq.write();
        row.holding.store(new[0], R);
        failpoint::hit(self.fp, Failpoint::MidTrade);
        home.holding.store(new[1], R);
        bh_cell.store(new[2], R);
        bc_cell.store(new[3], R);
        self.commit(seq, &p, w);
        Ok(Receipt {
            seq,
            op,
            currency: CurrencyId(ci as u16),
            amount,
            rate,
            total,
            balance: new[3],
        })
    }
}
