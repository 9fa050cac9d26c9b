//! Random trade-loop traffic, and the ledger its answers must add up to.

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::Value;

use super::money::{micro_at, price};

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

// ---- reconciliation ---------------------------------------------------------

/// Money moved by successful answers, to check the final state against.
#[derive(Debug, Default)]
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
    /// Applies one `trade --json` answer of `account`; checks each buy's
    /// and sell's total against its amount and rate, rounded to the
    /// exchange's favour.
    #[track_caller]
    pub fn apply(&mut self, account: &str, home: &str, a: &Value) {
        if a["ok"] != Value::Bool(true) {
            return;
        }
        let op = a["op"].as_str().expect("op").to_string();
        if !matches!(op.as_str(), "buy" | "sell" | "deposit" | "withdraw") {
            return;
        }
        assert_eq!(
            a["account"].as_str(),
            Some(account),
            "answer names its account: {a}"
        );
        let code = a["code"].as_str().expect("code").to_string();
        let amount = micro_at(a, "amount");
        self.seqs
            .push(a["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {a}")));
        self.mutations += 1;
        let acc = self.accounts.entry(account.to_string()).or_default();
        match op.as_str() {
            "buy" | "sell" => {
                let rate = micro_at(a, "rate");
                let total = micro_at(a, "total");
                let buy = op == "buy";
                assert_eq!(
                    total,
                    price(amount, rate, buy),
                    "total rounded to the exchange's favour: {a}"
                );
                let sign = if buy { 1 } else { -1 };
                *acc.entry(code.clone()).or_default() += sign * amount;
                *acc.entry(home.to_string()).or_default() -= sign * total;
                *self.exchange.entry(code).or_default() -= sign * amount;
                *self.exchange.entry(home.to_string()).or_default() += sign * total;
            }
            "deposit" => *acc.entry(code).or_default() += amount,
            _ => *acc.entry(code).or_default() -= amount,
        }
    }
}
