//! What a new exchange starts with: the built-in table (the seed's
//! `init[]`) or a TOML table file.
#![forbid(unsafe_code)]

use serde::Deserialize;

use crate::engine::check_rates;
use crate::error::TableError;
use crate::money::{self, RATE_ONE};
use crate::state::{Capacity, CurrencyState, State};
use crate::types::Code;

/// One foreign currency of a new exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrencySpec {
    /// Its code.
    pub code: Code,
    /// Decimals of its amounts.
    pub decimals: u32,
    /// Rate at which the exchange buys it (millionths).
    pub buy: i64,
    /// Rate at which the exchange sells it.
    pub sell: i64,
    /// The exchange's opening stock, in minor units.
    pub stock: i64,
}

/// What a new exchange starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The home currency.
    pub home: Code,
    /// Its decimals.
    pub home_decimals: u32,
    /// The till, in home minor units.
    pub till: i64,
    /// Opening balance of a new account, in home minor units.
    pub opening: i64,
    /// The foreign currencies.
    pub currencies: Vec<CurrencySpec>,
    /// Room.
    pub capacity: Capacity,
}

fn code(s: &str) -> Code {
    Code::new(s).unwrap_or_else(|_| unreachable!("built-in codes are valid"))
}

impl Config {
    /// The built-in table: the seed's `init[]` (DOLLAR, EURO, STERLIN,
    /// POUND with their rates and stock), home currency TRY with a till of
    /// 100000.00, opening balance 1000.00 (the seed's). Two seed rows are
    /// crossed (they would sell below the price they buy at); their two
    /// rates are swapped. Returns the notes that say so.
    #[must_use]
    pub fn builtin() -> (Config, Vec<String>) {
        // The seed's rows, in its field order: sell, buy, stock.
        let seed: [(&str, i64, i64, i64); 4] = [
            ("DOLLAR", 13_720_000, 13_400_000, 10_000),
            ("EURO", 19_500_000, 18_920_000, 20_000),
            ("STERLIN", 24_551_000, 24_552_000, 10_000),
            ("POUND", 33_240_000, 33_250_000, 5_000),
        ];
        let mut notes = Vec::new();
        let currencies = seed
            .iter()
            .map(|&(c, sell, buy, stock)| {
                let (buy, sell) = if sell < buy {
                    notes.push(format!(
                        "{c}: the classic table's row is crossed (it would sell at {} but buy at {}); its rates are swapped to buy {} and sell {}",
                        money::Rate(sell),
                        money::Rate(buy),
                        money::Rate(sell),
                        money::Rate(buy)
                    ));
                    (sell, buy)
                } else {
                    (buy, sell)
                };
                CurrencySpec {
                    code: code(c),
                    decimals: 2,
                    buy,
                    sell,
                    stock: stock * 100,
                }
            })
            .collect();
        (
            Config {
                home: code("TRY"),
                home_decimals: 2,
                till: 10_000_000,
                opening: 100_000,
                currencies,
                capacity: Capacity::default(),
            },
            notes,
        )
    }

    /// Reads a table file:
    ///
    /// ```toml
    /// home = "TRY"            # optional, default TRY
    /// home_decimals = 2       # optional, default 2
    /// till = "100000.00"      # optional, default 100000
    /// opening = "1000.00"     # optional, default 1000
    ///
    /// [capacity]              # optional, each field too
    /// accounts = 1024
    /// currencies = 16         # the home currency included
    /// journal = 8192
    ///
    /// [[currency]]
    /// code = "DOLLAR"
    /// buy = "13.40"           # home per unit, up to 6 decimals
    /// sell = "13.72"
    /// stock = "10000"
    /// decimals = 2            # optional, default 2
    /// ```
    ///
    /// Decimal values are strings (or integers); floats are refused, since
    /// they cannot hold 13.40 exactly. Crossed rates are refused.
    ///
    /// # Errors
    ///
    /// [`TableError`] naming the field and what is wrong.
    pub fn from_toml(text: &str) -> Result<Config, TableError> {
        let t: TableFile = toml::from_str(text)
            .map_err(|e| TableError(format!("not a valid table: {}", one_line(&e.to_string()))))?;
        let dec = |d: Option<u32>, what: &str| -> Result<u32, TableError> {
            let d = d.unwrap_or(2);
            if d > money::MAX_DECIMALS {
                return Err(TableError(format!(
                    "{what}: {d} decimals, but at most {} are allowed",
                    money::MAX_DECIMALS
                )));
            }
            Ok(d)
        };
        let home = Code::new(t.home.as_deref().unwrap_or("TRY"))?;
        let home_decimals = dec(t.home_decimals, "home")?;
        let field = |what: String, text: &Dec, d: u32| -> Result<i64, TableError> {
            money::parse_value(&text.0, d).map_err(|e| TableError(format!("{what}: {e}")))
        };
        let unit = money::pow10(home_decimals).unwrap_or(1);
        let till = match &t.till {
            Some(v) => field("till".into(), v, home_decimals)?,
            None => 100_000 * unit,
        };
        let opening = match &t.opening {
            Some(o) => field("opening".into(), o, home_decimals)?,
            None => 1000 * unit,
        };
        let mut currencies = Vec::new();
        for c in &t.currency {
            let code = Code::new(&c.code)?;
            let decimals = dec(c.decimals, code.as_str())?;
            let rate = |what: &str, text: &Dec| -> Result<i64, TableError> {
                money::parse_rate(&text.0).map_err(|e| TableError(format!("{code} {what}: {e}")))
            };
            let buy = rate("buy", &c.buy)?;
            let sell = rate("sell", &c.sell)?;
            check_rates(code, buy, sell).map_err(|e| TableError(e.to_string()))?;
            currencies.push(CurrencySpec {
                code,
                decimals,
                buy,
                sell,
                stock: field(format!("{code} stock"), &c.stock, decimals)?,
            });
        }
        let d = Capacity::default();
        let cap = t.capacity.unwrap_or_default();
        Ok(Config {
            home,
            home_decimals,
            till,
            opening,
            currencies,
            capacity: Capacity {
                currencies: cap.currencies.unwrap_or(d.currencies),
                accounts: cap.accounts.unwrap_or(d.accounts),
                journal: cap.journal.unwrap_or(d.journal),
            },
        })
    }

    /// The books of a new exchange with this configuration.
    ///
    /// # Errors
    ///
    /// [`TableError`] for duplicate codes, no foreign currency, crossed
    /// rates, or more currencies than the capacity.
    pub fn into_state(self) -> Result<State, TableError> {
        if self.currencies.is_empty() {
            return Err(TableError(
                "the table has no foreign currency: add at least one [[currency]]".into(),
            ));
        }
        let n = self.currencies.len() + 1;
        if n > self.capacity.currencies {
            return Err(TableError(format!(
                "{n} currencies (the home currency included) do not fit a capacity of {}: raise --currencies",
                self.capacity.currencies
            )));
        }
        let mut seen = vec![self.home];
        for c in &self.currencies {
            if seen.contains(&c.code) {
                return Err(TableError(if c.code == self.home {
                    format!(
                        "{} is the home currency and cannot be a foreign one too",
                        c.code
                    )
                } else {
                    format!("currency {} appears twice", c.code)
                }));
            }
            seen.push(c.code);
            check_rates(c.code, c.buy, c.sell).map_err(|e| TableError(e.to_string()))?;
            if c.stock < 0 {
                return Err(TableError(format!("{}: the stock is negative", c.code)));
            }
        }
        if self.till < 0 || self.opening < 0 {
            return Err(TableError(
                "the till and the opening balance must not be negative".into(),
            ));
        }
        let mut currencies = vec![CurrencyState {
            code: self.home,
            decimals: self.home_decimals,
            buy: RATE_ONE,
            sell: RATE_ONE,
            holding: self.till,
            genesis: self.till,
            deposits: 0,
            withdrawals: 0,
        }];
        currencies.extend(self.currencies.iter().map(|c| CurrencyState {
            code: c.code,
            decimals: c.decimals,
            buy: c.buy,
            sell: c.sell,
            holding: c.stock,
            genesis: c.stock,
            deposits: 0,
            withdrawals: 0,
        }));
        Ok(State {
            currencies,
            accounts: Vec::new(),
            opening: self.opening,
            capacity: self.capacity,
            next_seq: 1,
        })
    }
}

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A decimal written as a TOML string or integer, never a float.
#[derive(Debug, Clone)]
pub(crate) struct Dec(pub String);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dec;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a decimal as a string, such as \"13.40\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dec, E> {
                Ok(Dec(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dec, E> {
                Ok(Dec(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dec, E> {
                Ok(Dec(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dec, E> {
                Err(E::custom(format!(
                    "{v} is a float, which cannot hold decimals exactly: write it as a string, such as \"{v}\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    home: Option<String>,
    home_decimals: Option<u32>,
    till: Option<Dec>,
    opening: Option<Dec>,
    capacity: Option<CapacityFile>,
    #[serde(default)]
    currency: Vec<CurrencyFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CapacityFile {
    accounts: Option<usize>,
    currencies: Option<usize>,
    journal: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrencyFile {
    code: String,
    buy: Dec,
    sell: Dec,
    stock: Dec,
    decimals: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_is_the_seed_uncrossed() {
        let (c, notes) = Config::builtin();
        assert_eq!(notes.len(), 2);
        assert!(notes[0].starts_with("STERLIN"));
        assert!(notes[1].starts_with("POUND"));
        let s = c.into_state().unwrap();
        assert!(s.check().is_empty(), "{:?}", s.check());
        let row = |code: &str| s.currencies[s.currency(Code::new(code).unwrap()).unwrap()].clone();
        assert_eq!(
            (row("STERLIN").buy, row("STERLIN").sell),
            (24_551_000, 24_552_000)
        );
        assert_eq!(
            (row("POUND").buy, row("POUND").sell),
            (33_240_000, 33_250_000)
        );
        assert_eq!(
            (row("DOLLAR").buy, row("DOLLAR").sell),
            (13_400_000, 13_720_000)
        );
        assert_eq!(s.home().holding, 10_000_000);
    }

    #[test]
    fn table_files() {
        let c = Config::from_toml(
            "home = \"EUR\"\ntill = \"500\"\nopening = 20\n[capacity]\naccounts = 8\n[[currency]]\ncode = \"usd\"\nbuy = \"0.9\"\nsell = \"0.95\"\nstock = 1000\n",
        )
        .unwrap();
        assert_eq!(c.home.as_str(), "EUR");
        assert_eq!(c.opening, 2000);
        assert_eq!(c.capacity.accounts, 8);
        assert_eq!(c.currencies[0].code.as_str(), "USD");
        assert!(c.into_state().unwrap().check().is_empty());
        for bad in [
            "home = \"EUR\"\ntill = 1.5\n[[currency]]\ncode=\"USD\"\nbuy=\"1\"\nsell=\"1\"\nstock=\"1\"",
            "home = \"EUR\"\ntill = \"1\"\n[[currency]]\ncode=\"USD\"\nbuy=\"2\"\nsell=\"1\"\nstock=\"1\"",
            "home = \"EUR\"\ntill = \"1\"\nextra = 1",
            "home = \"EUR\"\ntill = \"-1\"",
            "[[currency]]\ncode = \"DOLLAR\"\nbuy = \"14\"\nsell = \"13\"\nstock = \"1\"\n",
        ] {
            assert!(Config::from_toml(bad).is_err(), "{bad}");
        }
        let none = Config::from_toml("home = \"EUR\"\ntill = \"1\"").unwrap();
        assert!(none.into_state().is_err());
    }
}
