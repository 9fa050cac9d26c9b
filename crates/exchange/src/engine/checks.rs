//! Step 2's shared part: the checks of ids and amounts every operation
//! makes, and the pieces of its refusals.

use super::rates::check_rates;
use super::{Engine, R};
use crate::error::OpError;
use crate::money::{Amount, MoneyError, Rate};
use crate::types::{AccountId, CurrencyId, Order};

impl<'a> Engine<'a> {
    /// Refuses a currency that `order` cannot be placed in, as the order
    /// itself would: the home currency for a buy or a sell, or a currency
    /// of another exchange. Changes nothing; it lets a caller refuse such
    /// an order before it reads the rest.
    ///
    /// # Errors
    ///
    /// [`OpError::HomeCurrency`], [`OpError::BadId`].
    pub fn check_order(&self, order: Order, c: CurrencyId) -> Result<(), OpError> {
        self.order_currency(order, c).map(drop)
    }

    /// Refuses a currency that cannot be quoted, bought or sold, as
    /// [`Engine::set_rate`], [`Engine::buy`] and [`Engine::sell`] would:
    /// the home currency, or a currency of another exchange. Changes
    /// nothing.
    ///
    /// # Errors
    ///
    /// [`OpError::HomeCurrency`], [`OpError::BadId`].
    pub fn check_foreign(&self, c: CurrencyId) -> Result<(), OpError> {
        self.foreign(c).map(drop)
    }

    /// The position of currency `c`, if `order` can be placed in it.
    pub(super) fn order_currency(&self, order: Order, c: CurrencyId) -> Result<usize, OpError> {
        match order {
            Order::Buy | Order::Sell => self.foreign(c),
            Order::Deposit | Order::Withdraw => self.any_currency(c),
        }
    }

    pub(super) fn foreign(&self, c: CurrencyId) -> Result<usize, OpError> {
        if c.index() == 0 {
            return Err(OpError::HomeCurrency {
                code: self.home().to_string(),
            });
        }
        self.any_currency(c)
    }

    pub(super) fn any_currency(&self, c: CurrencyId) -> Result<usize, OpError> {
        Self::below(c.index(), self.rows.len())
    }

    pub(super) fn acct(&self, a: AccountId) -> Result<usize, OpError> {
        Self::below(a.index(), self.names.len())
    }

    /// `i` if it indexes a table of `n` entries.
    fn below(i: usize, n: usize) -> Result<usize, OpError> {
        if i < n { Ok(i) } else { Err(OpError::BadId(i)) }
    }

    pub(super) fn positive(amount: i64, decimals: u32) -> Result<(), OpError> {
        if amount > 0 {
            return Ok(());
        }
        let text = Amount::new(amount, decimals).to_string();
        Err(OpError::Money(if amount == 0 {
            MoneyError::Zero {
                what: "amount",
                text,
            }
        } else {
            MoneyError::Invalid {
                what: "amount",
                text,
                reason: "negative values are not allowed".into(),
            }
        }))
    }

    pub(super) fn show(&self, c: usize, v: i64) -> String {
        Amount::new(v, self.ex.decimals[c]).to_string()
    }

    pub(super) fn overflow(what: &'static str) -> OpError {
        OpError::Money(MoneyError::Overflow(what))
    }

    /// `v`, read from the books as `what`, if it is not negative: no
    /// operation makes a holding, balance or total negative, so a negative
    /// one was written by someone else.
    #[inline]
    pub(super) fn sane(&self, v: i64, what: impl FnOnce() -> String) -> Result<i64, OpError> {
        if v >= 0 {
            Ok(v)
        } else {
            Err(self.corrupt(format!("{} is negative ({v} minor units)", what())))
        }
    }

    /// The opening balance of a new account.
    pub(super) fn opening(&self) -> Result<i64, OpError> {
        self.sane(self.head.opening.load(R), || "the opening balance".into())
    }

    /// The quote of foreign currency `ci`, buy and sell, if it is one that
    /// [`check_rates`](crate::check_rates) accepts: no operation stores
    /// another.
    #[inline]
    pub(super) fn rates(&self, ci: usize) -> Result<(i64, i64), OpError> {
        let row = &self.rows[ci];
        let (buy, sell) = (row.buy.load(R), row.sell.load(R));
        if check_rates(self.ex.codes[ci], buy, sell).is_ok() {
            Ok((buy, sell))
        } else {
            Err(self.corrupt(format!(
                "the quote of {} is invalid: buy {}, sell {}",
                self.ex.codes[ci],
                Rate(buy),
                Rate(sell)
            )))
        }
    }
}
