//! Snapshots: the whole exchange (books and journal) as a versioned,
//! human-readable TOML file, and back.
//!
//! ```toml
//! format = "shmex-exchange-snapshot"
//! version = 1
//! taken_ns = 1767225600000000000
//! next_seq = 3
//! opening = "1000.00"
//!
//! [capacity]
//! currencies = 16
//! accounts = 1024
//! journal = 8192
//!
//! [[currencies]]          # the first is the home currency; its stock is the till
//! code = "TRY"
//! decimals = 2
//! buy = "1.00"
//! sell = "1.00"
//! stock = "100041.16"
//! genesis = "100000.00"
//! deposits = "1000.00"
//! withdrawals = "0.00"
//!
//! [[accounts]]
//! name = "bob"
//! [accounts.balances]
//! DOLLAR = "3.00"
//! TRY = "958.84"
//!
//! [[journal]]
//! seq = 2
//! time_ns = 1767225600000000000
//! pid = 4242
//! op = "buy"
//! account = "bob"
//! code = "DOLLAR"
//! amount = "3.00"
//! rate = "13.72"
//! total = "41.16"
//! ```
//!
//! Every decimal is a string with exactly the digits the exchange keeps.
//! Reading a snapshot validates every field and then runs [`State::check`]:
//! a file edited by hand so that the books no longer balance is refused.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::config::one_line;
use crate::error::SnapshotError;
use crate::money::{self, Amount, RATE_DECIMALS, Rate};
use crate::state::{AccountState, Capacity, CurrencyState, Entry, State};
use crate::types::{Code, Op, check_account_name};

/// The `format` field.
pub const FORMAT: &str = "shmex-exchange-snapshot";
/// The `version` field this shmex writes and reads.
pub const VERSION: i64 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: String,
    version: i64,
    taken_ns: Option<u64>,
    next_seq: u64,
    opening: String,
    capacity: CapacityFile,
    currencies: Vec<CurrencyFile>,
    #[serde(default)]
    accounts: Vec<AccountFile>,
    #[serde(default)]
    journal: Vec<EntryFile>,
}

/// [`Capacity`] in a file (snapshots, the journal's identity).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CapacityFile {
    pub(crate) currencies: usize,
    pub(crate) accounts: usize,
    pub(crate) journal: usize,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrencyFile {
    code: String,
    decimals: u32,
    buy: String,
    sell: String,
    stock: String,
    genesis: String,
    deposits: String,
    withdrawals: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    name: String,
    balances: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    seq: u64,
    time_ns: u64,
    pid: u32,
    op: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    undone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    undone_pid: Option<u32>,
    account: String,
    code: String,
    amount: String,
    rate: String,
    total: String,
    /// set-rate only: the new buy rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    buy: Option<String>,
}

/// Writes `state` and `journal` (oldest first) as a snapshot file.
#[must_use]
pub fn to_toml(state: &State, journal: &[Entry], taken_ns: u64) -> String {
    let dec = |c: usize| state.currencies.get(c).map_or(2, |c| c.decimals);
    let home_dec = state.currencies.first().map_or(2, |c| c.decimals);
    let file = File {
        format: FORMAT.to_owned(),
        version: VERSION,
        taken_ns: Some(taken_ns),
        next_seq: state.next_seq,
        opening: Amount::new(state.opening, home_dec).to_string(),
        capacity: CapacityFile {
            currencies: state.capacity.currencies,
            accounts: state.capacity.accounts,
            journal: state.capacity.journal,
        },
        currencies: state
            .currencies
            .iter()
            .map(|c| CurrencyFile {
                code: c.code.to_string(),
                decimals: c.decimals,
                buy: Rate(c.buy).to_string(),
                sell: Rate(c.sell).to_string(),
                stock: c.amount(c.holding).to_string(),
                genesis: c.amount(c.genesis).to_string(),
                deposits: c.amount(c.deposits).to_string(),
                withdrawals: c.amount(c.withdrawals).to_string(),
            })
            .collect(),
        accounts: state
            .accounts
            .iter()
            .map(|a| AccountFile {
                name: a.name.clone(),
                balances: state
                    .currencies
                    .iter()
                    .zip(&a.balances)
                    .map(|(c, &b)| (c.code.to_string(), c.amount(b).to_string()))
                    .collect(),
            })
            .collect(),
        journal: journal
            .iter()
            .map(|e| EntryFile {
                seq: e.seq,
                time_ns: e.time_ns,
                pid: e.pid,
                op: e.op.name().to_owned(),
                undone: e.undone.map(|o| o.name().to_owned()),
                undone_pid: (e.op == Op::Rollback).then_some(e.extra as u32),
                account: e.account.clone(),
                code: state
                    .currencies
                    .get(e.currency)
                    .map_or_else(String::new, |c| c.code.to_string()),
                amount: Amount::new(e.amount, dec(e.currency)).to_string(),
                rate: Rate(e.rate).to_string(),
                total: Amount::new(
                    e.total,
                    if e.total_is_home() {
                        home_dec
                    } else {
                        dec(e.currency)
                    },
                )
                .to_string(),
                buy: (e.op == Op::SetRate).then(|| Rate(e.extra).to_string()),
            })
            .collect(),
    };
    let body = toml::to_string(&file).unwrap_or_default();
    format!(
        "# shmex exchange snapshot: restore it with `shmex exchange restore FILE`.\n# Decimals are strings; the first currency is the home currency, its stock is the till.\n{body}"
    )
}

/// Reads a snapshot file back: the books and the journal (oldest first).
///
/// # Errors
///
/// [`SnapshotError::Parse`] for text that is not a snapshot,
/// [`SnapshotError::Version`] for another format or version,
/// [`SnapshotError::Invalid`] for a field that cannot be, and
/// [`SnapshotError::Check`] when the books fail [`State::check`].
pub fn from_toml(text: &str) -> Result<(State, Vec<Entry>), SnapshotError> {
    // Look at the version first, so that a newer file gets the right message.
    if let Ok(v) = toml::from_str::<toml::Table>(text) {
        let format = v.get("format").and_then(|f| f.as_str()).unwrap_or("");
        let version = v
            .get("version")
            .and_then(toml::Value::as_integer)
            .unwrap_or(-1);
        if format != FORMAT || version != VERSION {
            return Err(SnapshotError::Version {
                format: format.to_owned(),
                version,
            });
        }
    }
    let f: File =
        toml::from_str(text).map_err(|e| SnapshotError::Parse(one_line(&e.to_string())))?;
    let invalid = |s: String| SnapshotError::Invalid(s);
    if f.currencies.is_empty() {
        return Err(invalid("it has no currencies".into()));
    }
    let mut currencies = Vec::new();
    let mut codes = HashSet::new();
    for c in &f.currencies {
        let code = Code::new(&c.code).map_err(|e| invalid(e.to_string()))?;
        if !codes.insert(code) {
            return Err(invalid(format!("currency {code} appears twice")));
        }
        if c.decimals > money::MAX_DECIMALS {
            return Err(invalid(format!(
                "{code} has {} decimals, more than 6",
                c.decimals
            )));
        }
        let amount = |what: &str, t: &str| {
            money::parse_value(t, c.decimals).map_err(|e| invalid(format!("{code} {what}: {e}")))
        };
        let rate = |what: &str, t: &str| {
            money::parse_value(t, RATE_DECIMALS).map_err(|e| invalid(format!("{code} {what}: {e}")))
        };
        currencies.push(CurrencyState {
            code,
            decimals: c.decimals,
            buy: rate("buy", &c.buy)?,
            sell: rate("sell", &c.sell)?,
            holding: amount("stock", &c.stock)?,
            genesis: amount("genesis", &c.genesis)?,
            deposits: amount("deposits", &c.deposits)?,
            withdrawals: amount("withdrawals", &c.withdrawals)?,
        });
    }
    let index = |code: &str| -> Option<usize> {
        let c = Code::new(code).ok()?;
        currencies.iter().position(|x| x.code == c)
    };
    let home_dec = currencies[0].decimals;
    let mut accounts = Vec::new();
    for a in &f.accounts {
        check_account_name(&a.name).map_err(|e| invalid(e.to_string()))?;
        let mut balances = vec![None; currencies.len()];
        for (code, v) in &a.balances {
            let i = index(code).ok_or_else(|| {
                invalid(format!(
                    "account {:?} holds {code}, which is not a currency here",
                    a.name
                ))
            })?;
            balances[i] =
                Some(money::parse_value(v, currencies[i].decimals).map_err(|e| {
                    invalid(format!("account {:?} balance of {code}: {e}", a.name))
                })?);
        }
        let balances = balances
            .into_iter()
            .zip(&currencies)
            .map(|(b, c)| {
                b.ok_or_else(|| {
                    invalid(format!("account {:?} has no balance of {}", a.name, c.code))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        accounts.push(AccountState {
            name: a.name.clone(),
            balances,
        });
    }
    let capacity = Capacity {
        currencies: f.capacity.currencies,
        accounts: f.capacity.accounts,
        journal: f.capacity.journal,
    };
    if f.next_seq == 0 {
        return Err(invalid("next_seq must be at least 1".into()));
    }
    let oldest = f.next_seq.saturating_sub(capacity.journal as u64).max(1);
    let mut seqs = HashSet::new();
    let mut journal = Vec::new();
    for e in &f.journal {
        let bad = |what: String| invalid(format!("journal record {}: {what}", e.seq));
        if e.seq < oldest || e.seq >= f.next_seq || !seqs.insert(e.seq) {
            return Err(bad(format!(
                "its sequence number is not unique within {oldest}..{}",
                f.next_seq
            )));
        }
        let op = Op::from_name(&e.op).ok_or_else(|| bad(format!("unknown op {:?}", e.op)))?;
        let undone = match &e.undone {
            Some(u) => Some(Op::from_name(u).ok_or_else(|| bad(format!("unknown op {u:?}")))?),
            None => None,
        };
        if !e.account.is_empty() {
            check_account_name(&e.account).map_err(|x| bad(x.to_string()))?;
        }
        let currency =
            index(&e.code).ok_or_else(|| bad(format!("unknown currency {:?}", e.code)))?;
        let cd = currencies[currency].decimals;
        let mut entry = Entry {
            seq: e.seq,
            time_ns: e.time_ns,
            pid: e.pid,
            op,
            undone,
            account: e.account.clone(),
            currency,
            amount: money::parse_value(&e.amount, cd).map_err(|x| bad(x.to_string()))?,
            rate: money::parse_value(&e.rate, RATE_DECIMALS).map_err(|x| bad(x.to_string()))?,
            total: 0,
            extra: 0,
        };
        let td = if entry.total_is_home() { home_dec } else { cd };
        entry.total = money::parse_value(&e.total, td).map_err(|x| bad(x.to_string()))?;
        entry.extra = match (op, &e.buy, e.undone_pid) {
            (Op::SetRate, Some(b), _) => {
                money::parse_value(b, RATE_DECIMALS).map_err(|x| bad(x.to_string()))?
            }
            (Op::Rollback, _, Some(pid)) => i64::from(pid),
            _ => 0,
        };
        journal.push(entry);
    }
    journal.sort_by_key(|e| e.seq);
    let state = State {
        currencies,
        accounts,
        opening: money::parse_value(&f.opening, home_dec)
            .map_err(|e| invalid(format!("opening: {e}")))?,
        capacity,
        next_seq: f.next_seq,
    };
    let violations = state.check();
    if !violations.is_empty() {
        return Err(SnapshotError::Check(violations.join("; ")));
    }
    Ok((state, journal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn sample() -> (State, Vec<Entry>) {
        let (c, _) = Config::builtin();
        let mut s = c.into_state().unwrap();
        s.accounts.push(AccountState {
            name: "bob".into(),
            balances: vec![95_884, 300, 0, 0, 0],
        });
        s.currencies[0].holding += 4_116;
        s.currencies[0].deposits += 100_000;
        s.currencies[1].holding -= 300;
        s.next_seq = 5;
        let e = |seq, op, undone, account: &str, currency, amount, rate, total, extra| Entry {
            seq,
            time_ns: 1_767_225_600_000_000_000 + seq,
            pid: 4242,
            op,
            undone,
            account: account.into(),
            currency,
            amount,
            rate,
            total,
            extra,
        };
        let journal = vec![
            e(1, Op::Open, None, "bob", 0, 100_000, 0, 100_000, 0),
            e(2, Op::Buy, None, "bob", 1, 300, 13_720_000, 4_116, 0),
            e(3, Op::SetRate, None, "", 2, 0, 19_600_000, 0, 18_900_000),
            e(
                4,
                Op::Rollback,
                Some(Op::Sell),
                "bob",
                1,
                100,
                13_400_000,
                1_340,
                999,
            ),
        ];
        (s, journal)
    }

    #[test]
    fn snapshots_round_trip() {
        let (s, j) = sample();
        assert!(s.check().is_empty(), "{:?}", s.check());
        let text = to_toml(&s, &j, 7);
        let (s2, j2) = from_toml(&text).unwrap();
        assert_eq!(s2, s);
        assert_eq!(j2, j);
    }

    #[test]
    fn tampered_snapshots_are_refused() {
        let (s, j) = sample();
        let text = to_toml(&s, &j, 7);
        let stock = text.replacen("stock = \"9997.00\"", "stock = \"9998.00\"", 1);
        assert_ne!(stock, text);
        assert!(matches!(from_toml(&stock), Err(SnapshotError::Check(m)) if m.contains("DOLLAR")));
        let newer = text.replacen("version = 1", "version = 2", 1);
        assert!(matches!(
            from_toml(&newer),
            Err(SnapshotError::Version { version: 2, .. })
        ));
        let crossed = text.replacen("sell = \"13.72\"", "sell = \"13.00\"", 1);
        assert!(
            matches!(from_toml(&crossed), Err(SnapshotError::Check(m)) if m.contains("crossed"))
        );
        let gap = text.replacen("seq = 4", "seq = 9", 1);
        assert!(matches!(from_toml(&gap), Err(SnapshotError::Invalid(_))));
        let unknown = text.replacen("[capacity]", "extra = 1\n[capacity]", 1);
        assert!(matches!(from_toml(&unknown), Err(SnapshotError::Parse(_))));
        assert!(from_toml("not toml [").is_err());
    }
}
