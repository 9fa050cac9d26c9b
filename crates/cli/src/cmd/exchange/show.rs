//! How the exchange's reads print: JSON with decimals as strings, in the
//! contract's key order, and plain text tables.

use std::fmt::Write as _;

use exchange::money::{Amount, Rate};
use exchange::{Code, Entry, QuoteRow, State};
use shm::SegmentId;

use crate::support::text::escape;
use crate::support::time::utc_millis;

/// An exchange's segment and its backend, for messages.
pub fn describe(id: &SegmentId) -> String {
    format!("{id} ({})", id.backend_name())
}

/// A JSON string literal.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `"home":"TRY","till":"…","currencies":[…]` (no braces), from a quote
/// whose first row is the home currency.
pub fn quote_fields(out: &mut String, rows: &[QuoteRow]) {
    let home = &rows[0];
    let _ = write!(
        out,
        "\"home\":\"{}\",\"till\":\"{}\",\"currencies\":[",
        home.code,
        Amount::new(home.holding, home.decimals)
    );
    for (i, r) in rows[1..].iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"code\":\"{}\",\"buy\":\"{}\",\"sell\":\"{}\",\"stock\":\"{}\"}}",
            r.code,
            Rate(r.buy),
            Rate(r.sell),
            Amount::new(r.holding, r.decimals)
        );
    }
    out.push(']');
}

/// `{"TRY":"1000.00","DOLLAR":"0.00",…}`.
pub fn balances_object(out: &mut String, currencies: &[(Code, u32)], balances: &[i64]) {
    out.push('{');
    for (i, ((code, dec), b)) in currencies.iter().zip(balances).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{code}\":\"{}\"", Amount::new(*b, *dec));
    }
    out.push('}');
}

/// The quote as a table. The rate columns say whose side they are: the
/// exchange buys a currency from customers at `WE BUY AT` and sells it to
/// them at `WE SELL AT`, as on the board.
pub fn quote_text(what: &str, rows: &[QuoteRow]) -> String {
    let home = &rows[0];
    let mut s = format!(
        "exchange {what}: home currency {}, till {}\n",
        home.code,
        Amount::new(home.holding, home.decimals)
    );
    let _ = writeln!(
        s,
        "{:<8} {:>12} {:>12} {:>20}",
        "CODE", "WE BUY AT", "WE SELL AT", "STOCK"
    );
    for r in &rows[1..] {
        let _ = writeln!(
            s,
            "{:<8} {:>12} {:>12} {:>20}",
            r.code,
            Rate(r.buy).to_string(),
            Rate(r.sell).to_string(),
            Amount::new(r.holding, r.decimals).to_string()
        );
    }
    s
}

/// `accounts --json`.
pub fn accounts_json(state: &State) -> String {
    let currencies: Vec<(Code, u32)> = state
        .currencies
        .iter()
        .map(|c| (c.code, c.decimals))
        .collect();
    let mut out = String::from("[");
    for (i, a) in state.accounts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"name\":{},\"balances\":", js(&a.name));
        balances_object(&mut out, &currencies, &a.balances);
        out.push('}');
    }
    out.push(']');
    out
}

/// The accounts as a table.
pub fn accounts_text(state: &State) -> String {
    if state.accounts.is_empty() {
        return "no accounts yet: open one with `shmex exchange open NAME`\n".into();
    }
    let width = state
        .accounts
        .iter()
        .map(|a| escape(&a.name).chars().count())
        .max()
        .unwrap_or(4)
        .max(7);
    let mut s = format!("{:<width$}", "ACCOUNT");
    for c in &state.currencies {
        let _ = write!(s, " {:>16}", c.code.as_str());
    }
    s.push('\n');
    for a in &state.accounts {
        let _ = write!(s, "{:<width$}", escape(&a.name));
        for (c, b) in state.currencies.iter().zip(&a.balances) {
            let _ = write!(s, " {:>16}", c.amount(*b).to_string());
        }
        s.push('\n');
    }
    s
}

fn code_of(state: &State, e: &Entry) -> (Code, u32) {
    let c = state
        .currencies
        .get(e.currency)
        .unwrap_or(&state.currencies[0]);
    (c.code, c.decimals)
}

fn total_of(state: &State, e: &Entry) -> Amount {
    let (_, dec) = code_of(state, e);
    let d = if e.total_is_home() {
        state.currencies[0].decimals
    } else {
        dec
    };
    Amount::new(e.total, d)
}

/// `"time":"2026-01-02T03:04:05.678Z","time_ns":…` (no braces): a moment
/// in RFC 3339 UTC, and in nanoseconds since the epoch for precision.
pub fn time_fields(out: &mut String, ns: u64) {
    let _ = write!(out, "\"time\":\"{}\",\"time_ns\":{ns}", utc_millis(ns));
}

/// One journal record as a JSON object, with the fields its operation has
/// and no others: `account` where there is one, `amount` where money
/// moved, `rate` and `total` for buys and sells, `buy` and `sell` for a
/// set-rate, `undone` and `undone_pid` for a rollback.
pub fn entry_json(state: &State, e: &Entry) -> String {
    use exchange::Op;
    let (code, dec) = code_of(state, e);
    let mut s = format!("{{\"seq\":{},", e.seq);
    time_fields(&mut s, e.time_ns);
    let _ = write!(s, ",\"pid\":{},\"op\":\"{}\"", e.pid, e.op);
    if e.op == Op::Rollback {
        let _ = write!(
            s,
            ",\"undone\":\"{}\",\"undone_pid\":{}",
            e.undone.map_or("?", Op::name),
            e.extra
        );
    }
    if !e.account.is_empty() {
        let _ = write!(s, ",\"account\":{}", js(&e.account));
    }
    let _ = write!(s, ",\"code\":\"{code}\"");
    let what = if e.op == Op::Rollback {
        e.undone.unwrap_or(Op::Rollback)
    } else {
        e.op
    };
    match what {
        // A rollback keeps the dead process's pid where a set-rate keeps
        // its buy rate.
        Op::SetRate if e.op == Op::Rollback => {
            let _ = write!(s, ",\"sell\":\"{}\"", Rate(e.rate));
        }
        Op::SetRate => {
            let _ = write!(
                s,
                ",\"buy\":\"{}\",\"sell\":\"{}\"",
                Rate(e.extra),
                Rate(e.rate)
            );
        }
        Op::Close => {}
        _ => {
            let _ = write!(s, ",\"amount\":\"{}\"", Amount::new(e.amount, dec));
        }
    }
    if e.total_is_home() {
        let _ = write!(
            s,
            ",\"rate\":\"{}\",\"total\":\"{}\"",
            Rate(e.rate),
            total_of(state, e)
        );
    }
    s.push('}');
    s
}

/// One journal record as a line of text.
pub fn entry_text(state: &State, e: &Entry) -> String {
    let (code, dec) = code_of(state, e);
    let home = state.currencies[0].code;
    let amount = Amount::new(e.amount, dec);
    // The name is whatever bytes the segment holds.
    let account = escape(&e.account);
    let what = match e.op {
        exchange::Op::Buy => format!(
            "{} bought {amount} {code} at {} for {} {home}",
            account,
            Rate(e.rate),
            total_of(state, e)
        ),
        exchange::Op::Sell => format!(
            "{} sold {amount} {code} at {} for {} {home}",
            account,
            Rate(e.rate),
            total_of(state, e)
        ),
        exchange::Op::Deposit => format!("{account} deposited {amount} {code}"),
        exchange::Op::Withdraw => format!("{account} withdrew {amount} {code}"),
        exchange::Op::Open => format!("{account} opened an account with {amount} {code}"),
        exchange::Op::Close => format!("{account} closed the account"),
        exchange::Op::SetRate => format!(
            "{code} rates set to buy {} sell {}",
            Rate(e.extra),
            Rate(e.rate)
        ),
        exchange::Op::Rollback => format!(
            "rolled back a {} of {amount} {code} by {} (pid {} died holding the lock)",
            e.undone.map_or("?", exchange::Op::name),
            if e.account.is_empty() { "-" } else { &account },
            e.extra
        ),
    };
    format!(
        "{:>8}  {}  pid {:<7} {what}",
        e.seq,
        utc_millis(e.time_ns),
        e.pid
    )
}
