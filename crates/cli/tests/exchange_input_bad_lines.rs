//! `shmex exchange trade` and the lines it refuses: malformed and refused
//! lines change nothing, each is answered once for its own reason, and the
//! loop goes on after it, in JSON (on both backends) and in plain text.

use crate::support::exchange::{Backend, Exchange, answers, on_both_backends};
use crate::support::process::{stderr, stdout};

on_both_backends!(malformed_and_refused_trade_lines_change_nothing);

/// A line the trade loop must refuse: why, the line, the code of its
/// refusal and what its message must say.
struct BadLine {
    why: &'static str,
    line: Vec<u8>,
    code: &'static str,
    says: &'static str,
}

/// Lines the trade loop must refuse, each with why. Against an exchange where
/// alice holds 201000.00 TRY and 10000.00 DOLLAR and nothing else.
fn bad_lines() -> Vec<BadLine> {
    let amount = "invalid_amount";
    let currency = "unknown_currency";
    let plain = "expected plain decimal digits such as 100 or 12.50";
    let ascii = "only the ASCII digits 0-9 and one '.' are allowed";
    let separators = "separators are not allowed";
    let decimals = "at most 2 decimals are allowed";
    let exponents = "exponents are not allowed";
    let negative = "negative values are not allowed";
    let too_large = "too large (at most 1000000000000000)";
    let missing = "missing currency or amount";
    let text: &[(&str, &str, &str, &str)] = &[
        (
            "unknown currency",
            "buy XYZ 10",
            currency,
            "unknown currency \"XYZ\"",
        ),
        (
            "unknown currency, sell",
            "sell YEN 1",
            currency,
            "unknown currency \"YEN\"",
        ),
        (
            "home currency is not for sale",
            "buy TRY 10",
            "home_currency",
            "TRY is the home currency",
        ),
        (
            "zero",
            "buy DOLLAR 0",
            amount,
            "\"0\": it must be greater than zero",
        ),
        (
            "zero with decimals",
            "buy DOLLAR 0.00",
            amount,
            "\"0.00\": it must be greater than zero",
        ),
        ("negative", "buy DOLLAR -5", amount, negative),
        ("negative sell", "sell DOLLAR -1.00", amount, negative),
        ("negative zero", "sell DOLLAR -0", amount, negative),
        (
            "plus sign",
            "buy DOLLAR +5",
            amount,
            "a sign is not allowed",
        ),
        ("too many decimals", "buy DOLLAR 1.234", amount, decimals),
        (
            "too many decimals, all zero",
            "sell DOLLAR 1.000",
            amount,
            decimals,
        ),
        ("exponent", "buy DOLLAR 1e3", amount, exponents),
        ("exponent, upper case", "sell DOLLAR 1E2", amount, exponents),
        ("NaN", "buy DOLLAR NaN", amount, plain),
        ("nan", "sell DOLLAR nan", amount, plain),
        ("inf", "buy DOLLAR inf", amount, plain),
        ("Infinity", "sell DOLLAR Infinity", amount, plain),
        ("infinity sign", "buy DOLLAR ∞", amount, ascii),
        ("thousands comma", "buy DOLLAR 1,000", amount, separators),
        (
            "thousands underscore",
            "buy DOLLAR 1_000",
            amount,
            separators,
        ),
        (
            "thousands apostrophe",
            "buy DOLLAR 1'000",
            amount,
            separators,
        ),
        ("decimal comma", "sell DOLLAR 1,50", amount, separators),
        ("hexadecimal", "buy DOLLAR 0x10", amount, plain),
        ("percent", "buy DOLLAR 5%", amount, plain),
        (
            "dot alone",
            "buy DOLLAR .",
            amount,
            "expected a digit before the '.'",
        ),
        (
            "two dots",
            "buy DOLLAR 1.2.3",
            amount,
            "it has more than one '.'",
        ),
        (
            "huge",
            "buy DOLLAR 99999999999999999999999999999999999999999",
            amount,
            too_large,
        ),
        (
            "past u64 minor units",
            "buy DOLLAR 184467440737095516.16",
            amount,
            too_large,
        ),
        (
            "past u128",
            "sell EURO 340282366920938463463374607431768211456",
            amount,
            too_large,
        ),
        (
            "huge deposit of nothing",
            "deposit XYZ 99999999999999999999999999",
            currency,
            "unknown currency \"XYZ\"",
        ),
        ("missing amount", "buy DOLLAR", "missing_argument", missing),
        (
            "missing code and amount",
            "sell",
            "missing_argument",
            missing,
        ),
        (
            "missing amount, deposit",
            "deposit TRY",
            "missing_argument",
            missing,
        ),
        (
            "missing amount, withdraw",
            "withdraw DOLLAR",
            "missing_argument",
            missing,
        ),
        (
            "extra field",
            "buy DOLLAR 10 extra",
            "unexpected_argument",
            "unexpected \"extra\" after the amount",
        ),
        (
            "extra number",
            "sell DOLLAR 1 2",
            "unexpected_argument",
            "unexpected \"2\" after the amount",
        ),
        (
            "space as thousands separator",
            "buy DOLLAR 1 000",
            "unexpected_argument",
            "unexpected \"000\" after the amount",
        ),
        ("arabic-indic digits", "buy DOLLAR ١٠", amount, ascii),
        ("fullwidth digits", "buy DOLLAR １０", amount, ascii),
        ("devanagari digit", "sell DOLLAR ५", amount, ascii),
        ("NUL inside", "buy DOLLAR 1\0", amount, plain),
        (
            "unknown verb",
            "steal DOLLAR 10",
            "unknown_command",
            "unknown command \"steal\"",
        ),
        (
            "buy more than the stock",
            "buy DOLLAR 10000.01",
            "insufficient_stock",
            "insufficient stock of DOLLAR: the exchange holds 10000.00, 10000.01 asked",
        ),
        (
            "buy more than the balance",
            "buy EURO 15000",
            "insufficient_balance",
            "insufficient balance: alice has 201000.00 TRY, the price is 292500.00 TRY",
        ),
        (
            "sell more than held",
            "sell EURO 0.01",
            "insufficient_holding",
            "insufficient holding: alice holds 0.00 EURO, 0.01 asked",
        ),
        (
            "sell more than the till holds",
            "sell DOLLAR 8000",
            "till_short",
            "the till is short: it holds 100000.00 TRY, the proceeds are 107200.00 TRY",
        ),
        (
            "withdraw more than the balance",
            "withdraw TRY 201000.01",
            "insufficient_holding",
            "insufficient holding: alice holds 201000.00 TRY, 201000.01 asked",
        ),
        (
            "withdraw what is not held",
            "withdraw EURO 1",
            "insufficient_holding",
            "insufficient holding: alice holds 0.00 EURO, 1.00 asked",
        ),
        (
            "deposit zero",
            "deposit TRY 0",
            amount,
            "it must be greater than zero",
        ),
        (
            "deposit unknown currency",
            "deposit XYZ 5",
            currency,
            "unknown currency \"XYZ\"",
        ),
        ("withdraw negative", "withdraw TRY -1", amount, negative),
    ];
    let mut lines: Vec<BadLine> = text
        .iter()
        .map(|&(why, l, code, says)| BadLine {
            why,
            line: l.as_bytes().to_vec(),
            code,
            says,
        })
        .collect();
    let too_long = "line too long";
    // A valid order padded past 1024 bytes: refused for its length alone.
    let mut long = b"buy DOLLAR 1".to_vec();
    long.resize(1100, b' ');
    let mut very_long = b"buy DOLLAR ".to_vec();
    very_long.resize(200_000, b'1');
    let utf8 = "the line is not valid UTF-8";
    for (why, line, code, says) in [
        (
            "over-long line (1100 bytes)",
            long,
            "line_too_long",
            too_long,
        ),
        (
            "over-long line (200 kB)",
            very_long,
            "line_too_long",
            too_long,
        ),
        (
            "invalid UTF-8 at the end",
            b"buy DOLLAR 1\xff".to_vec(),
            "invalid_utf8",
            utf8,
        ),
        (
            "invalid UTF-8 in the verb",
            b"b\xc3\x28y DOLLAR 1".to_vec(),
            "invalid_utf8",
            utf8,
        ),
        (
            "truncated UTF-8 sequence",
            b"buy DOLLAR \xe2\x82".to_vec(),
            "invalid_utf8",
            utf8,
        ),
    ] {
        lines.push(BadLine {
            why,
            line,
            code,
            says,
        });
    }
    lines
}

fn malformed_and_refused_trade_lines_change_nothing(b: Backend) {
    let ex = Exchange::init(b, "ex-bad", &[]);
    let setup = ex.trade("alice", b"deposit TRY 200000\ndeposit DOLLAR 10000\n");
    assert_eq!(setup.len(), 2, "{setup:?}");
    for a in &setup {
        assert_eq!(a["ok"], true, "setup: {a}");
    }
    let before = ex.state();

    let lines = bad_lines();
    assert!(lines.len() >= 30);
    let mut input = Vec::new();
    for l in &lines {
        input.extend_from_slice(&l.line);
        input.push(b'\n');
    }
    // The loop goes on after every refusal: a last, valid line is answered.
    input.extend_from_slice(b"balance\n");
    let o = ex.run_in(&["trade", "--account", "alice", "--json"], &input);
    assert!(o.status.success(), "trade: {:?} {}", o.status, stderr(&o));
    let out = stdout(&o);
    let got = answers(&out);
    assert_eq!(
        got.len(),
        lines.len() + 1,
        "one answer per line, no more, no less; answers:\n{out}"
    );
    for (l, a) in lines.iter().zip(&got) {
        let why = l.why;
        let shown = String::from_utf8_lossy(&l.line[..l.line.len().min(60)]);
        assert_eq!(a["ok"], false, "{why} ({shown:?}) must be refused: {a}");
        assert_eq!(a["code"], l.code, "{why} ({shown:?}): {a}");
        let err = a["error"].as_str().unwrap_or_default();
        assert!(
            err.contains(l.says),
            "{why}: the refusal must say {:?}: {a}",
            l.says
        );
    }
    let last = got.last().expect("answer");
    assert_eq!(last["ok"], true, "{last}");
    assert_eq!(last["op"], "balance", "{last}");
    assert_eq!(last["account"], "alice", "{last}");

    assert_eq!(ex.state(), before, "refused lines must change nothing");
    ex.check();
}

#[test]
fn plain_trade_loop_answers_one_line_per_line() {
    let ex = Exchange::init(Backend::Posix, "ex-plain", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["deposit", "--account", "alice", "TRY", "200000"]);
    ex.ok(&["deposit", "--account", "alice", "DOLLAR", "10000"]);
    let before = ex.state();
    let mut input = Vec::new();
    let lines = bad_lines();
    for l in &lines {
        input.extend_from_slice(&l.line);
        input.push(b'\n');
    }
    input.extend_from_slice(b"quote\nbalance\nhelp\n");
    let o = ex.run_in(&["trade", "--account", "alice"], &input);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "the answers go to stdout");
    let out = stdout(&o);
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(
        got.len(),
        lines.len() + 3,
        "one answer line per line:\n{out}"
    );
    for (l, answer) in lines.iter().zip(&got) {
        assert!(
            answer.starts_with("error: ") && answer.contains(l.says),
            "{}: the answer must be an error that says {:?}: {answer:?}",
            l.why,
            l.says
        );
    }
    assert!(got[lines.len()].starts_with("TRY till "), "{out}");
    assert!(got[lines.len() + 1].starts_with("alice: "), "{out}");
    assert!(got[lines.len() + 2].starts_with("commands: "), "{out}");
    assert_eq!(ex.state(), before);
}
