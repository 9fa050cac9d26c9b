//! Orders: a buy, sell, deposit or withdrawal by kind, and an order for an
//! account that is opened only if the order is accepted.

use super::accounts::packed;
use super::checks::Who;
use super::{Engine, R, Receipt};
use crate::error::OpError;
use crate::types::{AccountId, CurrencyId, Op, Order};

impl<'a> Engine<'a> {
    /// Carries out `order` for the account called `name`, opening the
    /// account first if it is new, but only if the order is accepted.
    ///
    /// For a new account the order is judged first against the balances a
    /// new account would have, and the opening and the order then happen
    /// under one hold of the lock: a refused order leaves no account and
    /// no journal record behind. (A process killed between the two leaves
    /// the account open and the order undone, each atomic.)
    ///
    /// Returns the account, the opening's receipt if it was opened now,
    /// and the order's receipt.
    ///
    /// # Errors
    ///
    /// [`OpError::BadName`], [`OpError::AccountsFull`], and as
    /// [`Engine::buy`], [`Engine::sell`], [`Engine::deposit`] and
    /// [`Engine::withdraw`].
    pub fn order_as(
        &self,
        name: &str,
        order: Order,
        c: CurrencyId,
        amount: i64,
    ) -> Result<(AccountId, Option<Receipt>, Receipt), OpError> {
        let (len, words) = packed(name)?;
        if let Some(i) = self.lookup(len, &words)? {
            let a = AccountId(i as u32);
            return Ok((a, None, self.order(order, a, c, amount)?));
        }
        let ci = self.order_currency(order, c)?;
        Self::positive(amount, self.ex.decimals[ci])?;
        self.locked(|| {
            // Another process may have opened it since the look above.
            if let Some(i) = self.find_account(len, &words)? {
                let a = AccountId(i as u32);
                return Ok((a, None, self.order_locked(order, a, ci, amount)?));
            }
            // What a new account holds once opened: the opening balance in
            // the home currency, and the deposits total grown by as much.
            let opening = self.opening()?;
            let who = Who::Named(name);
            match order {
                Order::Buy | Order::Sell => {
                    let cells = [
                        self.rows[ci].holding.load(R),
                        self.rows[0].holding.load(R),
                        opening,
                        0,
                    ];
                    if order == Order::Buy {
                        self.plan_trade::<true>(ci, amount, cells, who)?;
                    } else {
                        self.plan_trade::<false>(ci, amount, cells, who)?;
                    }
                }
                Order::Deposit | Order::Withdraw => {
                    let op = Op::from(order);
                    let bal = if ci == 0 { opening } else { 0 };
                    let mut total = self.cash_total(op, ci).load(R);
                    if op == Op::Deposit && ci == 0 {
                        total = total
                            .checked_add(opening)
                            .ok_or_else(|| Self::overflow("the total of deposits"))?;
                    }
                    self.plan_cash(op, ci, amount, bal, total, who)?;
                }
            }
            let (i, opened) = self.open_locked(name, len, words)?;
            let a = AccountId(i as u32);
            Ok((a, Some(opened), self.order_locked(order, a, ci, amount)?))
        })
    }

    /// `order` for the open account `a`: [`Engine::buy`], [`Engine::sell`],
    /// [`Engine::deposit`] or [`Engine::withdraw`].
    ///
    /// # Errors
    ///
    /// As the operation.
    pub fn order(
        &self,
        order: Order,
        a: AccountId,
        c: CurrencyId,
        amount: i64,
    ) -> Result<Receipt, OpError> {
        match order {
            Order::Buy => self.buy(a, c, amount),
            Order::Sell => self.sell(a, c, amount),
            Order::Deposit => self.deposit(a, c, amount),
            Order::Withdraw => self.withdraw(a, c, amount),
        }
    }

    /// [`Engine::order`] with the lock held and currency `ci` checked.
    fn order_locked(
        &self,
        order: Order,
        a: AccountId,
        ci: usize,
        amount: i64,
    ) -> Result<Receipt, OpError> {
        let ai = self.acct(a)?;
        let op = Op::from(order);
        match order {
            Order::Buy | Order::Sell => {
                let p = self.pending(op, ci, Some(ai), amount, 0, 0);
                if order == Order::Buy {
                    self.trade_locked::<true>(ci, ai, amount, p)
                } else {
                    self.trade_locked::<false>(ci, ai, amount, p)
                }
            }
            Order::Deposit | Order::Withdraw => {
                let p = self.pending(op, ci, Some(ai), amount, 0, amount);
                self.cash_locked(op, ci, ai, amount, &p)
            }
        }
    }
}
