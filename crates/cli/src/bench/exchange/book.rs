//! The books the durable rows and their peers share: one table (rates,
//! stock, till, what an account starts with), one stream of random trades
//! per seed, and the arithmetic of a trade, so that shmex, SQLite and LMDB
//! do the same work and are checked the same way.

use std::fmt::Write as _;

use exchange::money::{self, Amount, Rate, Round};

use crate::support::trader::xorshift;

/// Largest trade, in minor units (1.00).
const MAX_CENTS: u64 = 100;

/// The table: index 0 is the home currency.
#[derive(Clone, Debug)]
pub struct Book {
    pub codes: Vec<&'static str>,
    pub decimals: Vec<u32>,
    /// Rates, home per unit with 6 decimals; `[0]` unused.
    pub buy: Vec<i64>,
    pub sell: Vec<i64>,
    /// The exchange's own holdings: `[0]` the till, `[c]` the stock of c.
    pub holding: Vec<i64>,
    /// What every account starts with, by currency.
    pub opening: Vec<i64>,
}

/// One trade: buy or sell `amount` minor units of currency `c` (≥ 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    pub buy: bool,
    pub c: usize,
    pub amount: i64,
}

/// The random trades of one trader: the same seed gives the same trades.
#[derive(Debug)]
pub struct Trades {
    rng: u64,
    foreign: u64,
}

impl Iterator for Trades {
    type Item = Trade;

    fn next(&mut self) -> Option<Trade> {
        let x = xorshift(&mut self.rng);
        Some(Trade {
            buy: x >> 63 == 0,
            c: 1 + (x % self.foreign) as usize,
            amount: 1 + ((x >> 16) % MAX_CENTS) as i64,
        })
    }
}

/// A trade the books refuse (short of money, stock or till): it changes
/// nothing.
#[derive(Clone, Copy, Debug)]
pub struct Refused;

impl Book {
    /// The benchmark's table: the built-in rates, with stock, till and
    /// accounts large enough that random trading is almost never refused.
    pub fn new() -> Book {
        let codes = vec!["TRY", "DOLLAR", "EURO", "STERLIN", "POUND"];
        let rates = [
            (0, 0),
            (13_400_000, 13_720_000),
            (18_920_000, 19_500_000),
            (24_551_000, 24_552_000),
            (33_240_000, 33_250_000),
        ];
        let n = codes.len();
        let mut holding = vec![100_000_000_000; n];
        holding[0] = 1_000_000_000_000;
        let mut opening = vec![1_000_000_000; n];
        opening[0] = 100_000_000_000;
        Book {
            codes,
            decimals: vec![2; n],
            buy: rates.iter().map(|r| r.0).collect(),
            sell: rates.iter().map(|r| r.1).collect(),
            holding,
            opening,
        }
    }

    /// The random trades of seed `seed`.
    pub fn trades(&self, seed: u64) -> Trades {
        Trades {
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            foreign: (self.codes.len() - 1) as u64,
        }
    }

    /// The table as `exchange init --table` reads it (accounts open with
    /// the home part of [`Book::opening`]).
    pub fn toml(&self) -> String {
        let d = |c: usize, v: i64| Amount::new(v, self.decimals[c]).to_string();
        let mut s = format!(
            "home = \"{}\"\nhome_decimals = {}\ntill = \"{}\"\nopening = \"{}\"\n",
            self.codes[0],
            self.decimals[0],
            d(0, self.holding[0]),
            d(0, self.opening[0])
        );
        for c in 1..self.codes.len() {
            let _ = write!(
                s,
                "\n[[currency]]\ncode = \"{}\"\nbuy = \"{}\"\nsell = \"{}\"\nstock = \"{}\"\ndecimals = {}\n",
                self.codes[c],
                Rate(self.buy[c]),
                Rate(self.sell[c]),
                d(c, self.holding[c]),
                self.decimals[c]
            );
        }
        s
    }

    /// The trade-loop lines that give a freshly opened account the rest of
    /// [`Book::opening`]: one deposit per foreign currency.
    pub fn funding_lines(&self) -> String {
        let mut s = String::new();
        for c in 1..self.codes.len() {
            let _ = writeln!(
                s,
                "deposit {} {}",
                self.codes[c],
                Amount::new(self.opening[c], self.decimals[c])
            );
        }
        s
    }

    /// `t` as a trade-loop line.
    pub fn line(&self, t: Trade, out: &mut String) {
        let _ = writeln!(
            out,
            "{} {} {}",
            if t.buy { "buy" } else { "sell" },
            self.codes[t.c],
            Amount::new(t.amount, self.decimals[t.c])
        );
    }

    /// Applies `t` to an account's `balance` and the exchange's `holding`
    /// (both by currency); returns the home total paid or received.
    pub fn apply(
        &self,
        t: Trade,
        balance: &mut [i64],
        holding: &mut [i64],
    ) -> Result<i64, Refused> {
        self.apply_at(t, self.rate(t), balance, holding)
    }

    /// The rate `t` trades at: the exchange sells at its sell rate and
    /// buys at its buy rate.
    pub fn rate(&self, t: Trade) -> i64 {
        if t.buy { self.sell[t.c] } else { self.buy[t.c] }
    }

    /// [`Book::apply`] at `rate` (as read from a peer's database).
    pub fn apply_at(
        &self,
        t: Trade,
        rate: i64,
        balance: &mut [i64],
        holding: &mut [i64],
    ) -> Result<i64, Refused> {
        let (c, home) = (t.c, self.decimals[0]);
        let round = if t.buy { Round::Up } else { Round::Down };
        let total =
            money::convert(t.amount, self.decimals[c], rate, home, round).map_err(|_| Refused)?;
        if t.buy {
            if balance[0] < total || holding[c] < t.amount {
                return Err(Refused);
            }
            balance[0] -= total;
            balance[c] += t.amount;
            holding[0] += total;
            holding[c] -= t.amount;
        } else {
            if balance[c] < t.amount || holding[0] < total {
                return Err(Refused);
            }
            balance[c] -= t.amount;
            balance[0] += total;
            holding[c] += t.amount;
            holding[0] -= total;
        }
        Ok(total)
    }

    /// Fails unless `accounts` and `holding` (after any trades) hold, in
    /// every currency, what as many fresh accounts and the exchange started
    /// with: no money made or lost. (The peers' check; shmex has its own.)
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    pub fn conserved(&self, accounts: &[Vec<i64>], holding: &[i64]) -> anyhow::Result<()> {
        for c in 0..self.codes.len() {
            let now: i128 =
                accounts.iter().map(|a| i128::from(a[c])).sum::<i128>() + i128::from(holding[c]);
            let start =
                i128::from(self.opening[c]) * accounts.len() as i128 + i128::from(self.holding[c]);
            if now != start {
                anyhow::bail!(
                    "{}: the books hold {now} minor units, but {start} went in",
                    self.codes[c]
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_back() {
        let b = Book::new();
        let c = exchange::Config::from_toml(&b.toml()).expect("the table reads");
        assert_eq!(c.till, b.holding[0]);
        assert_eq!(c.opening, b.opening[0]);
        for (i, cur) in c.currencies.iter().enumerate() {
            assert_eq!(cur.code.as_str(), b.codes[i + 1]);
            assert_eq!(
                (cur.buy, cur.sell, cur.stock),
                (b.buy[i + 1], b.sell[i + 1], b.holding[i + 1])
            );
        }
    }

    #[test]
    fn trades_conserve_and_repeat() {
        let b = Book::new();
        let mut acct = vec![b.opening.clone()];
        let mut hold = b.holding.clone();
        let t: Vec<Trade> = b.trades(3).take(1000).collect();
        assert_eq!(t, b.trades(3).take(1000).collect::<Vec<_>>());
        assert!(t.iter().any(|t| t.buy) && t.iter().any(|t| !t.buy));
        for &x in &t {
            b.apply(x, &mut acct[0], &mut hold).expect("funded");
        }
        b.conserved(&acct, &hold).expect("conserved");
        let mut line = String::new();
        b.line(
            Trade {
                buy: false,
                c: 2,
                amount: 7,
            },
            &mut line,
        );
        assert_eq!(line, "sell EURO 0.07\n");
    }
}
