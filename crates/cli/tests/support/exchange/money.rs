//! Exact decimal arithmetic, to check the exchange's answers independently
//! of its own `check`, and the quote and accounts read as numbers.

use std::collections::BTreeMap;

use serde_json::Value;

/// Units of 10⁻⁶, enough for every amount (2 decimals) and rate (6).
pub const MICRO: i128 = 1_000_000;

/// Parses a decimal string as the binary prints it ("13.72", "10000.00").
#[track_caller]
pub fn micro(s: &str) -> i128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 6
            && frac.bytes().all(|b| b.is_ascii_digit()),
        "not a decimal the exchange prints: {s:?}"
    );
    let mut v: i128 = int.parse::<i128>().expect("integer part") * MICRO;
    let mut scale = MICRO / 10;
    for b in frac.bytes() {
        v += i128::from(b - b'0') * scale;
        scale /= 10;
    }
    v
}

/// The decimal string at `v[key]`, parsed.
#[track_caller]
pub fn micro_at(v: &Value, key: &str) -> i128 {
    match &v[key] {
        Value::String(s) => micro(s),
        other => panic!("{key} must be a decimal string, not {other} (in {v})"),
    }
}

/// Formats units of 10⁻⁶ with two decimals (they must be whole cents).
pub fn cents(v: i128) -> String {
    assert_eq!(v % (MICRO / 100), 0, "{v} is not a whole number of cents");
    let c = v / (MICRO / 100);
    format!("{}.{:02}", c / 100, c % 100)
}

/// Price of `amount` at `rate`, rounded to the cent: up for what a
/// customer pays, down for what they receive.
pub fn price(amount: i128, rate: i128, round_up: bool) -> i128 {
    let exact = amount * rate; // units of 10⁻¹²
    let cent = MICRO * MICRO / 100;
    let whole = if round_up {
        (exact + cent - 1) / cent
    } else {
        exact / cent
    };
    whole * (MICRO / 100)
}

/// The quote's rows by code: (buy, sell, stock).
#[track_caller]
pub fn rows(quote: &Value) -> BTreeMap<String, (i128, i128, i128)> {
    quote["currencies"]
        .as_array()
        .expect("quote.currencies is an array")
        .iter()
        .map(|c| {
            (
                c["code"].as_str().expect("code").to_string(),
                (
                    micro_at(c, "buy"),
                    micro_at(c, "sell"),
                    micro_at(c, "stock"),
                ),
            )
        })
        .collect()
}

/// Balances by account, then by currency code.
#[track_caller]
pub fn balances(accounts: &Value) -> BTreeMap<String, BTreeMap<String, i128>> {
    accounts
        .as_array()
        .expect("accounts --json is an array")
        .iter()
        .map(|a| {
            let name = a["name"].as_str().expect("name").to_string();
            (name, balances_in(&a["balances"]))
        })
        .collect()
}

/// One `balances` object (`{"TRY":"1000.00",…}`) by currency code.
#[track_caller]
pub fn balances_in(b: &Value) -> BTreeMap<String, i128> {
    b.as_object()
        .expect("balances is an object")
        .iter()
        .map(|(code, v)| {
            (
                code.clone(),
                micro(
                    v.as_str()
                        .unwrap_or_else(|| panic!("{code}: {v} is not a string")),
                ),
            )
        })
        .collect()
}
