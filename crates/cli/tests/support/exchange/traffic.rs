//! Random trade-loop traffic, the answers each line may get, and the
//! ledger those answers must add up to.

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::Value;

use super::money::{cents, micro, micro_at, price};

/// The built-in table's foreign currencies.
pub const CODES: [&str; 4] = ["DOLLAR", "EURO", "STERLIN", "POUND"];

fn amount(rng: &mut impl Rng, max_cents: u64) -> String {
    let c = rng.random_range(1..=max_cents);
    // Vary the spelling the contract allows: no dot, one decimal, two.
    match rng.random_range(0..4) {
        0 if c % 100 == 0 => format!("{}", c / 100),
        1 if c % 10 == 0 => format!("{}.{}", c / 100, (c % 100) / 10),
        _ => format!("{}.{:02}", c / 100, c % 100),
    }
}

/// One random trade-loop line (with its newline): mostly buys and sells of
/// small amounts, deposits that keep the home balance alive, withdrawals,
/// and some reads. Some are refused (short balance or holding): that is
/// part of the traffic.
pub fn random_line(rng: &mut impl Rng, home: &str) -> String {
    let code = CODES[rng.random_range(0..CODES.len())];
    match rng.random_range(0..100) {
        0..=34 => format!("buy {code} {}\n", amount(rng, 2_000)),
        35..=69 => format!("sell {code} {}\n", amount(rng, 2_000)),
        70..=79 => format!("deposit {home} {}\n", amount(rng, 100_000)),
        80..=83 => format!("deposit {code} {}\n", amount(rng, 1_000)),
        84..=89 => format!("withdraw {home} {}\n", amount(rng, 20_000)),
        90..=93 => format!("withdraw {code} {}\n", amount(rng, 1_000)),
        94..=96 => "quote\n".to_string(),
        _ => "balance\n".to_string(),
    }
}

/// `n` random lines.
pub fn random_input(rng: &mut impl Rng, n: usize, home: &str) -> Vec<u8> {
    let mut s = String::with_capacity(n * 20);
    for _ in 0..n {
        s.push_str(&random_line(rng, home));
    }
    s.into_bytes()
}

/// A seed for the test's random traffic, printed so a failure can be rerun
/// with `SHMEX_TEST_SEED`.
pub fn seed() -> u64 {
    let s = std::env::var("SHMEX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("SHMEX_TEST_SEED={s}");
    s
}

// ---- answers ----------------------------------------------------------------

/// The refusals a line of [`random_line`] may get, by its verb: the books
/// may be short (of stock, balance, holding or till), and nothing else.
/// Its currencies exist and its amounts are well-formed and small, so
/// anything else (a busy or unusable lock, an overflow, bad input) is a
/// fault.
pub fn refusals_for(verb: &str) -> &'static [&'static str] {
    match verb {
        "buy" => &["insufficient_stock", "insufficient_balance"],
        "sell" => &["insufficient_holding", "till_short"],
        "withdraw" => &["insufficient_holding"],
        // deposit, quote, balance
        _ => &[],
    }
}

/// What the message of a refusal with `code` says, for `account`'s order
/// of `amount` (as written) of `currency`.
fn refusal_says(code: &str, account: &str, currency: &str, amount: &str) -> Vec<String> {
    let asked = format!("{} asked", cents(micro(amount)));
    match code {
        "insufficient_stock" => vec![
            format!("insufficient stock of {currency}: the exchange holds "),
            asked,
        ],
        "insufficient_balance" => vec![format!("insufficient balance: {account} has ")],
        "insufficient_holding" => vec![
            format!("insufficient holding: {account} holds "),
            format!(" {currency}, {asked}"),
        ],
        "till_short" => vec!["the till is short: it holds ".to_string()],
        other => panic!("no message known for {other}"),
    }
}

/// Checks `a`, the answer of `account`'s trade loop to `line` (one of
/// [`random_line`]'s): a success reports the line's operation, currency
/// and amount; a refusal has a code [`refusals_for`] allows for the line,
/// and a message that says so.
#[track_caller]
pub fn check_answer(account: &str, line: &str, a: &Value) {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let verb = words[0];
    match &a["ok"] {
        Value::Bool(true) => {
            assert_eq!(a["op"], verb, "{account}: answer to {line:?}: {a}");
            if let [_, currency, amount] = words[..] {
                assert_eq!(a["account"], account, "answer to {line:?}: {a}");
                assert_eq!(a["code"], currency, "answer to {line:?}: {a}");
                assert_eq!(
                    micro_at(a, "amount"),
                    micro(amount),
                    "answer to {line:?}: {a}"
                );
            }
        }
        Value::Bool(false) => {
            let code = a["code"].as_str().unwrap_or_default();
            assert!(
                refusals_for(verb).contains(&code),
                "{account}: {line:?} refused for a reason it cannot have (allowed: {:?}): {a}",
                refusals_for(verb)
            );
            let msg = a["error"].as_str().unwrap_or_default();
            for says in refusal_says(code, account, words[1], words[2]) {
                assert!(
                    msg.contains(&says),
                    "{account}: the refusal of {line:?} does not say {says:?}: {a}"
                );
            }
        }
        _ => panic!("{account}: answer to {line:?} without ok: {a}"),
    }
}

// ---- reconciliation ---------------------------------------------------------

/// Money a mutation moved: an operation, its currency, amount, rate and
/// total (units of 10⁻⁶; for a deposit or withdrawal, no rate and the
/// amount as total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub op: String,
    pub code: String,
    pub amount: i128,
    pub rate: i128,
    pub total: i128,
}

impl Move {
    /// What a successful `trade --json` answer moved (`None` for reads
    /// and refusals); checks each buy's and sell's total against its
    /// amount and rate, rounded to the exchange's favour.
    #[track_caller]
    pub fn answered(a: &Value) -> Option<Move> {
        if a["ok"] != Value::Bool(true) {
            return None;
        }
        let op = a["op"].as_str().expect("op").to_string();
        if !matches!(op.as_str(), "buy" | "sell" | "deposit" | "withdraw") {
            return None;
        }
        let code = a["code"].as_str().expect("code").to_string();
        let amount = micro_at(a, "amount");
        let (rate, total) = match op.as_str() {
            "buy" | "sell" => {
                let (rate, total) = (micro_at(a, "rate"), micro_at(a, "total"));
                assert_eq!(
                    total,
                    price(amount, rate, op == "buy"),
                    "total rounded to the exchange's favour: {a}"
                );
                (rate, total)
            }
            _ => (0, amount),
        };
        Some(Move {
            op,
            code,
            amount,
            rate,
            total,
        })
    }

    /// What a line of [`random_line`] moves if carried out at the
    /// quote's rates `rates` (by code: buy, sell, stock, as
    /// [`rows`](super::money::rows) reads them); `None` for a read.
    #[track_caller]
    pub fn of_line(line: &str, rates: &BTreeMap<String, (i128, i128, i128)>) -> Option<Move> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let [op, code, amount] = words[..] else {
            return None;
        };
        let amount = micro(amount);
        let (rate, total) = match op {
            "buy" | "sell" => {
                let (buy, sell, _) = rates[code];
                let rate = if op == "buy" { sell } else { buy };
                (rate, price(amount, rate, op == "buy"))
            }
            _ => (0, amount),
        };
        Some(Move {
            op: op.to_string(),
            code: code.to_string(),
            amount,
            rate,
            total,
        })
    }
}

/// Money moved by successful answers, to check the final state against.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Per account, per code: net change of the account's balance.
    pub accounts: BTreeMap<String, BTreeMap<String, i128>>,
    /// Per code (home included): net change of the exchange's holding.
    pub exchange: BTreeMap<String, i128>,
    /// Sequence numbers of the mutations answered.
    pub seqs: Vec<u64>,
    pub mutations: usize,
}

impl Ledger {
    /// Applies one `trade --json` answer of `account`, as [`Move::answered`]
    /// reads it.
    #[track_caller]
    pub fn apply(&mut self, account: &str, home: &str, a: &Value) {
        let Some(m) = Move::answered(a) else {
            return;
        };
        assert_eq!(
            a["account"].as_str(),
            Some(account),
            "answer names its account: {a}"
        );
        self.seqs
            .push(a["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {a}")));
        self.apply_move(account, home, &m);
    }

    /// Applies a mutation of `account`, answered or not.
    pub fn apply_move(&mut self, account: &str, home: &str, m: &Move) {
        self.mutations += 1;
        let acc = self.accounts.entry(account.to_string()).or_default();
        let code = m.code.clone();
        match m.op.as_str() {
            "buy" | "sell" => {
                let sign = if m.op == "buy" { 1 } else { -1 };
                *acc.entry(code.clone()).or_default() += sign * m.amount;
                *acc.entry(home.to_string()).or_default() -= sign * m.total;
                *self.exchange.entry(code).or_default() -= sign * m.amount;
                *self.exchange.entry(home.to_string()).or_default() += sign * m.total;
            }
            "deposit" => *acc.entry(code).or_default() += m.amount,
            "withdraw" => *acc.entry(code).or_default() -= m.amount,
            other => panic!("not a mutation: {other}"),
        }
    }

    /// What `account` holds if it opened with `opening` of `home` and
    /// moved what this ledger says, by code, without zeros.
    pub fn holds(&self, account: &str, home: &str, opening: i128) -> BTreeMap<String, i128> {
        let mut have = self.accounts.get(account).cloned().unwrap_or_default();
        *have.entry(home.to_string()).or_default() += opening;
        have.retain(|_, v| *v != 0);
        have
    }
}
