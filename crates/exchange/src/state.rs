//! A plain copy of an exchange's books, and the invariants they must keep.
#![forbid(unsafe_code)]

use std::collections::HashSet;

use crate::money::{Amount, MAX_RATE_UNITS, RATE_ONE, Rate};

/// The largest rate a quote may hold, in millionths.
pub(crate) const MAX_RATE: i64 = MAX_RATE_UNITS * RATE_ONE;
use crate::types::{Code, Op, check_account_name};

/// Room in an exchange, fixed when it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Currencies, the home currency included.
    pub currencies: usize,
    /// Accounts.
    pub accounts: usize,
    /// Journal records kept (older ones are overwritten).
    pub journal: usize,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            currencies: 16,
            accounts: 1024,
            journal: 8192,
        }
    }
}

/// One currency's row of the books.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrencyState {
    /// Its code.
    pub code: Code,
    /// Decimals of its amounts.
    pub decimals: u32,
    /// Rate at which the exchange buys it (millionths; 1.000000 for home).
    pub buy: i64,
    /// Rate at which the exchange sells it.
    pub sell: i64,
    /// The exchange's stock (the till, for the home currency).
    pub holding: i64,
    /// What existed at creation.
    pub genesis: i64,
    /// All deposits, opening balances included.
    pub deposits: i64,
    /// All withdrawals.
    pub withdrawals: i64,
}

impl CurrencyState {
    /// An amount of this currency, for display.
    #[must_use]
    pub fn amount(&self, minor: i64) -> Amount {
        Amount::new(minor, self.decimals)
    }
}

/// One account and its balance in every currency (same order as the
/// currencies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountState {
    /// Its name.
    pub name: String,
    /// Balances, indexed like [`State::currencies`].
    pub balances: Vec<i64>,
}

/// Everything an exchange holds except its journal: one consistent copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// Currencies; index 0 is the home currency.
    pub currencies: Vec<CurrencyState>,
    /// Accounts in the order they were opened.
    pub accounts: Vec<AccountState>,
    /// Opening balance of a new account, in home minor units.
    pub opening: i64,
    /// Room.
    pub capacity: Capacity,
    /// Sequence number of the next operation.
    pub next_seq: u64,
}

impl State {
    /// The home currency.
    #[must_use]
    pub fn home(&self) -> &CurrencyState {
        &self.currencies[0]
    }

    /// The position of a currency.
    #[must_use]
    pub fn currency(&self, code: Code) -> Option<usize> {
        self.currencies.iter().position(|c| c.code == code)
    }

    /// Checks every invariant: conservation of every currency, no negative
    /// holding, balance or total, quotes with `0 < buy <= sell`, names and
    /// codes well-formed and unique, counts within capacity. Returns one
    /// line per violation; empty means the books are sound.
    #[must_use]
    pub fn check(&self) -> Vec<String> {
        let mut v = Vec::new();
        let cap = self.capacity;
        if self.currencies.is_empty() {
            v.push("there is no home currency".to_owned());
            return v;
        }
        if self.currencies.len() > cap.currencies {
            v.push(format!(
                "{} currencies exceed the capacity of {}",
                self.currencies.len(),
                cap.currencies
            ));
        }
        if self.accounts.len() > cap.accounts {
            v.push(format!(
                "{} accounts exceed the capacity of {}",
                self.accounts.len(),
                cap.accounts
            ));
        }
        if self.opening < 0 {
            v.push(format!(
                "the opening balance is negative: {}",
                self.home().amount(self.opening)
            ));
        }
        let mut codes = HashSet::new();
        for (i, c) in self.currencies.iter().enumerate() {
            if !codes.insert(c.code) {
                v.push(format!("currency {} appears twice", c.code));
            }
            if c.decimals > crate::money::MAX_DECIMALS {
                v.push(format!(
                    "{} has {} decimals, more than 6",
                    c.code, c.decimals
                ));
                continue;
            }
            let what = if i == 0 { "the till" } else { "the stock" };
            for (name, value) in [
                (what, c.holding),
                ("genesis", c.genesis),
                ("deposits", c.deposits),
                ("withdrawals", c.withdrawals),
            ] {
                if value < 0 {
                    v.push(format!(
                        "negative {name} of {}: {}",
                        c.code,
                        c.amount(value)
                    ));
                }
            }
            if i > 0 {
                if c.buy <= 0 {
                    v.push(format!(
                        "{}: the buy rate {} is not positive",
                        c.code,
                        Rate(c.buy)
                    ));
                }
                if c.buy > c.sell {
                    v.push(format!(
                        "{}: crossed quote, buy {} > sell {}",
                        c.code,
                        Rate(c.buy),
                        Rate(c.sell)
                    ));
                }
                if c.sell > MAX_RATE {
                    v.push(format!(
                        "{}: the sell rate {} exceeds the largest rate, {}",
                        c.code,
                        Rate(c.sell),
                        Rate(MAX_RATE)
                    ));
                }
            }
        }
        let mut names = HashSet::new();
        for a in &self.accounts {
            if let Err(e) = check_account_name(&a.name) {
                v.push(e.to_string());
            }
            if !names.insert(a.name.as_str()) {
                v.push(format!("account {:?} appears twice", a.name));
            }
            if a.balances.len() != self.currencies.len() {
                v.push(format!(
                    "account {:?} has {} balances for {} currencies",
                    a.name,
                    a.balances.len(),
                    self.currencies.len()
                ));
                continue;
            }
            for (c, &b) in self.currencies.iter().zip(&a.balances) {
                if b < 0 {
                    v.push(format!(
                        "negative balance: {} holds {} {}",
                        a.name,
                        c.amount(b),
                        c.code
                    ));
                }
            }
        }
        for (i, c) in self.currencies.iter().enumerate() {
            if c.decimals > crate::money::MAX_DECIMALS {
                continue;
            }
            let held: i128 = self
                .accounts
                .iter()
                .filter_map(|a| a.balances.get(i))
                .map(|&b| i128::from(b))
                .sum();
            let have = i128::from(c.holding) + held;
            let want = i128::from(c.genesis) + i128::from(c.deposits) - i128::from(c.withdrawals);
            if have != want {
                let show = |x: i128| {
                    i64::try_from(x).map_or_else(|_| x.to_string(), |x| c.amount(x).to_string())
                };
                v.push(format!(
                    "conservation broken for {}: the exchange holds {} and the accounts {}, together {}, but genesis {} + deposits {} - withdrawals {} = {}",
                    c.code,
                    c.amount(c.holding),
                    show(held),
                    show(have),
                    c.amount(c.genesis),
                    c.amount(c.deposits),
                    c.amount(c.withdrawals),
                    show(want)
                ));
            }
        }
        v
    }
}

/// One journal record, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Sequence number (1 is the first operation).
    pub seq: u64,
    /// Wall-clock time, ns since the epoch.
    pub time_ns: u64,
    /// The process that did it.
    pub pid: u32,
    /// What was done.
    pub op: Op,
    /// For a rollback: what was undone.
    pub undone: Option<Op>,
    /// The account ("" for set-rate).
    pub account: String,
    /// The currency's position.
    pub currency: usize,
    /// Amount, in the currency's minor units (0 for set-rate).
    pub amount: i64,
    /// Rate applied (the new sell rate for set-rate; 0 where none applies).
    pub rate: i64,
    /// Home minor units paid or received for buy and sell; the amount for
    /// deposits, withdrawals and openings.
    pub total: i64,
    /// set-rate: the new buy rate; rollback: the pid of the process that
    /// died.
    pub extra: i64,
}

impl Entry {
    /// Whether `total` is in the home currency (buy, sell, and rollbacks of
    /// them) rather than in the entry's own currency.
    #[must_use]
    pub fn total_is_home(&self) -> bool {
        matches!(self.op, Op::Buy | Op::Sell)
            || (self.op == Op::Rollback && matches!(self.undone, Some(Op::Buy | Op::Sell)))
    }
}
