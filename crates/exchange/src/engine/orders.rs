//! Orders: a buy, sell, deposit or withdrawal by kind, for an account by
//! position or by name. An order never opens an account.

use super::{Engine, Receipt};
use crate::error::OpError;
use crate::types::{AccountId, CurrencyId, Order};

impl<'a> Engine<'a> {
    /// Carries out `order` for the open account called `name`.
    ///
    /// Accounts are opened explicitly ([`Engine::open_account`]), never by
    /// an order, so that a mistyped name cannot open an account and pay
    /// out of its opening balance.
    ///
    /// Returns the account and the order's receipt.
    ///
    /// # Errors
    ///
    /// [`OpError::BadName`], [`OpError::UnknownAccount`] (with the closest
    /// open name, if one is close), and as [`Engine::buy`],
    /// [`Engine::sell`], [`Engine::deposit`] and [`Engine::withdraw`].
    pub fn order_as(
        &self,
        name: &str,
        order: Order,
        c: CurrencyId,
        amount: i64,
    ) -> Result<(AccountId, Receipt), OpError> {
        // The currency and the amount are judged before the name, as the
        // order itself would judge them: bad input says so whatever the
        // account.
        let ci = self.order_currency(order, c)?;
        Self::positive(amount, self.ex.decimals[ci])?;
        let a = self.lookup_account(name)?;
        Ok((a, self.order(order, a, c, amount)?))
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
}
