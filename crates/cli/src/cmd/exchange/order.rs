//! The words of an order: `VERB CODE AMOUNT` read against an exchange's
//! currencies into a [`Request`] ready to carry out, or an [`InputError`]
//! that says what is wrong (bad input). Shared by the trade loop and the
//! one-shot orders.

use exchange::money::{self, MoneyError};
use exchange::{AccountId, Code, CurrencyId, Engine, Op, OpError, Order, Receipt};

/// The order a word names (any case): `buy`, `sell`, `deposit` or
/// `withdraw`.
pub fn parse_verb(word: &str) -> Option<Order> {
    [Order::Buy, Order::Sell, Order::Deposit, Order::Withdraw]
        .into_iter()
        .find(|&o| word.eq_ignore_ascii_case(verb_name(o)))
}

/// The word for an order.
pub fn verb_name(o: Order) -> &'static str {
    Op::from(o).name()
}

/// A validated request, ready to carry out.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    order: Order,
    currency: CurrencyId,
    amount: i64,
}

impl Request {
    /// Carries it out for the open account `account`.
    ///
    /// # Errors
    ///
    /// The exchange's refusal.
    pub fn apply(&self, e: &Engine<'_>, account: AccountId) -> Result<Receipt, OpError> {
        e.order(self.order, account, self.currency, self.amount)
    }

    /// Carries it out for the open account called `name`.
    ///
    /// # Errors
    ///
    /// The exchange's refusal, [`OpError::UnknownAccount`] for a name that
    /// is not open.
    pub fn apply_as(&self, e: &Engine<'_>, name: &str) -> Result<Receipt, OpError> {
        e.order_as(name, self.order, self.currency, self.amount)
            .map(|(_, r)| r)
    }
}

/// At most 40 characters of a word from the input, to quote in a message.
pub fn clip(word: &str) -> String {
    word.chars().take(40).collect()
}

/// Why the words of an order or a currency argument name nothing this
/// exchange can do (bad input, exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A code this exchange does not have.
    #[error("unknown currency {code:?}: this exchange has {known}")]
    UnknownCurrency {
        /// The code as given, clipped.
        code: String,
        /// The codes there are, comma-separated.
        known: String,
    },
    /// An amount that is not one.
    #[error(transparent)]
    Amount(#[from] MoneyError),
}

impl InputError {
    /// Its machine code.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::UnknownCurrency { .. } => "unknown_currency",
            InputError::Amount(e) => e.code(),
        }
    }

    /// A currency this exchange does not have.
    pub fn unknown_currency(code: &str, currencies: &[(Code, u32)]) -> InputError {
        let list: Vec<&str> = currencies.iter().map(|(c, _)| c.as_str()).collect();
        InputError::UnknownCurrency {
            code: clip(code),
            known: list.join(", "),
        }
    }
}

/// Reads `VERB CODE AMOUNT` with the exchange's currencies. The message of
/// an error says what is wrong and what is expected; whether the order may
/// be carried out (a foreign currency for a buy or a sell, a positive
/// amount) is the exchange's to judge.
pub fn parse_order(
    order: Order,
    code: &str,
    amount: &str,
    currencies: &[(Code, u32)],
) -> Result<Request, InputError> {
    let c = Code::new(code)
        .ok()
        .and_then(|c| currencies.iter().position(|(x, _)| *x == c))
        .ok_or_else(|| InputError::unknown_currency(code, currencies))?;
    let amount = money::parse_amount(amount, currencies[c].1)?;
    Ok(Request {
        order,
        currency: CurrencyId::from_index(c),
        amount,
    })
}
