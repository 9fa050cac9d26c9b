//! `shmex exchange` and its input: one-shot trades that move money exactly,
//! malformed and refused lines that change nothing (each for its own
//! reason), verbs in any case, and amounts refused exactly where a figure
//! would overflow. Every flow runs on both backends.

use std::collections::BTreeMap;

use crate::support::exchange::money::{MICRO, balances, micro, micro_at, rows};
use crate::support::exchange::{Backend, Exchange, Refused, answers, on_both_backends};
use crate::support::process::{stderr, stdout};

on_both_backends!(
    one_shot_trades_move_money_exactly,
    malformed_and_refused_trade_lines_change_nothing,
    verbs_are_case_insensitive_and_quit_ends_the_loop,
    one_shot_bad_input_exits_2_and_refused_exits_1,
    overflowing_totals_are_refused,
);

/// Balances of one account with absent codes read as zero.
fn bal(ex: &Exchange, account: &str) -> BTreeMap<String, i128> {
    balances(&ex.accounts())
        .remove(account)
        .unwrap_or_else(|| panic!("no account {account}"))
}

fn one_shot_trades_move_money_exactly(b: Backend) {
    let ex = Exchange::init(b, "ex-oneshot", &[]);
    let before = ex.journal().len();

    // `open` opens the account with 1000.00 TRY; bob then buys at the sell
    // rate: 3 × 13.72 = 41.16.
    ex.ok(&["open", "bob"]);
    ex.ok(&["buy", "--account", "bob", "DOLLAR", "3"]);
    let q = rows(&ex.quote());
    assert_eq!(q["DOLLAR"].2, micro("9997.00"));
    assert_eq!(micro_at(&ex.quote(), "till"), micro("100041.16"));
    let bob = bal(&ex, "bob");
    assert_eq!(bob["TRY"], micro("958.84"), "{bob:?}");
    assert_eq!(bob["DOLLAR"], micro("3.00"), "{bob:?}");

    // The opening is journalled as an `open` of the opening balance.
    let j = ex.journal();
    assert_eq!(j.len(), before + 2, "open + buy: {j:?}");
    let open = &j[before];
    assert_eq!(open["op"], "open", "opening record: {open}");
    assert_eq!(open["account"], "bob", "{open}");
    assert_eq!(open["code"], "TRY", "{open}");
    assert_eq!(open["amount"], "1000.00", "{open}");
    let buy = &j[before + 1];
    assert_eq!(buy["op"], "buy", "{buy}");
    assert_eq!(buy["account"], "bob");
    assert_eq!(buy["code"], "DOLLAR");
    assert_eq!(buy["amount"], "3.00");
    assert_eq!(buy["rate"], "13.72");
    assert_eq!(buy["total"], "41.16");
    assert_eq!(
        buy["seq"].as_u64(),
        open["seq"].as_u64().map(|s| s + 1),
        "sequence numbers follow each other"
    );

    // Selling back pays the buy rate: 2 × 13.40 = 26.80.
    ex.ok(&["sell", "--account", "bob", "DOLLAR", "2"]);
    ex.ok(&["deposit", "--account", "bob", "EURO", "7.5"]);
    ex.ok(&["withdraw", "--account", "bob", "TRY", "0.84"]);
    let bob = bal(&ex, "bob");
    assert_eq!(bob["TRY"], micro("984.80"), "{bob:?}");
    assert_eq!(bob["DOLLAR"], micro("1.00"), "{bob:?}");
    assert_eq!(bob["EURO"], micro("7.50"), "{bob:?}");
    let q = ex.quote();
    assert_eq!(rows(&q)["DOLLAR"].2, micro("9999.00"));
    assert_eq!(micro_at(&q, "till"), micro("100014.36"));
    let ops: Vec<_> = ex.journal()[before + 2..]
        .iter()
        .map(|r| r["op"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ops, ["sell", "deposit", "withdraw"]);
    ex.check();
}

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

fn verbs_are_case_insensitive_and_quit_ends_the_loop(b: Backend) {
    let ex = Exchange::init(b, "ex-verbs", &[]);
    let got = ex.trade(
        "alice",
        b"BUY DOLLAR 1\nSell DOLLAR 1\nDePoSiT TRY 5\nWITHDRAW TRY 5\nQUOTE\nBalance\nHelp\nQUIT\nbuy DOLLAR 1\n",
    );
    let ops = ["buy", "sell", "deposit", "withdraw", "quote", "balance"];
    assert!(got.len() >= 7, "{got:?}");
    for (a, op) in got.iter().zip(ops) {
        assert_eq!(a["ok"], true, "{a}");
        assert_eq!(a["op"], op, "{a}");
    }
    assert_eq!(got[6]["ok"], true, "help: {}", got[6]);
    // `quit` may acknowledge itself, but nothing after it is read.
    assert!(got.len() <= 8, "lines after quit were answered: {got:?}");
    if let Some(q) = got.get(7) {
        assert_eq!(q["ok"], true, "{q}");
    }
    assert_eq!(got[0]["total"], "13.72");
    assert_eq!(got[1]["total"], "13.40");
    // The quote answer carries the quote's fields.
    assert_eq!(got[4]["home"], "TRY", "{}", got[4]);
    assert!(got[4]["currencies"].is_array(), "{}", got[4]);
    assert!(got[5]["balances"].is_object(), "{}", got[5]);

    let alice = bal(&ex, "alice");
    assert_eq!(alice["TRY"], micro("999.68"), "{alice:?}");
    assert_eq!(
        alice.get("DOLLAR").copied().unwrap_or(0),
        0,
        "the buy after quit ran"
    );
    assert_eq!(rows(&ex.quote())["DOLLAR"].2, micro("10000.00"));
    ex.check();
}

fn one_shot_bad_input_exits_2_and_refused_exits_1(b: Backend) {
    let ex = Exchange::init(b, "ex-oneshot-bad", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["deposit", "--account", "alice", "TRY", "200000"]);
    ex.ok(&["deposit", "--account", "alice", "DOLLAR", "10000"]);
    let before = ex.state();

    let currency = "unknown_currency";
    let amount = "invalid_amount";
    let name = "invalid_account_name";
    let bad: &[Refused] = &[
        (
            &["buy", "--account", "alice", "XYZ", "10"],
            currency,
            &["unknown currency \"XYZ\""],
        ),
        (
            &["sell", "--account", "alice", "YEN", "1"],
            currency,
            &["unknown currency \"YEN\""],
        ),
        (
            &["deposit", "--account", "alice", "XYZ", "1"],
            currency,
            &["unknown currency \"XYZ\""],
        ),
        (
            &["buy", "--account", "alice", "DOLLAR", "1.234"],
            amount,
            &["invalid amount \"1.234\": at most 2 decimals are allowed"],
        ),
        (
            &["buy", "--account", "alice", "DOLLAR", "0"],
            amount,
            &["invalid amount \"0\": it must be greater than zero"],
        ),
        (
            &["buy", "--account", "alice", "DOLLAR", "1e3"],
            amount,
            &["invalid amount \"1e3\": exponents are not allowed"],
        ),
        (
            &["sell", "--account", "alice", "DOLLAR", "NaN"],
            amount,
            &["invalid amount \"NaN\": expected plain decimal digits"],
        ),
        (
            &["sell", "--account", "alice", "DOLLAR", "inf"],
            amount,
            &["invalid amount \"inf\": expected plain decimal digits"],
        ),
        (
            &["buy", "--account", "alice", "DOLLAR", "1,000"],
            amount,
            &["invalid amount \"1,000\": separators are not allowed"],
        ),
        (
            &["buy", "--account", "alice", "DOLLAR", "١٠"],
            amount,
            &["invalid amount \"١٠\": only the ASCII digits 0-9"],
        ),
        (
            &["buy", "--account", "alice", "--", "DOLLAR", "-5"],
            amount,
            &["invalid amount \"-5\": negative values are not allowed"],
        ),
        (
            &["withdraw", "--account", "alice", "--", "TRY", "-1"],
            amount,
            &["invalid amount \"-1\": negative values are not allowed"],
        ),
        (
            &[
                "buy",
                "--account",
                "alice",
                "DOLLAR",
                "99999999999999999999999999999",
            ],
            amount,
            &["\"99999999999999999999999999999\": too large (at most 1000000000000000)"],
        ),
        // A bad account name is bad input.
        (
            &["buy", "--account", "bad name", "DOLLAR", "1"],
            name,
            &["invalid account name \"bad name\": use 1 to 32 characters"],
        ),
        (
            &["buy", "--account", "x/y", "DOLLAR", "1"],
            name,
            &["invalid account name \"x/y\""],
        ),
        (
            &[
                "buy",
                "--account",
                "a23456789012345678901234567890123",
                "DOLLAR",
                "1",
            ],
            name,
            &["invalid account name \"a23456789012345678901234567890123\""],
        ),
        (
            &["deposit", "--account", "ünïcode", "TRY", "1"],
            name,
            &["invalid account name \"ünïcode\""],
        ),
        (
            &["deposit", "--account", "", "TRY", "1"],
            name,
            &["invalid account name \"\""],
        ),
        // Bad input is judged before the name: exit 2 whatever the name.
        (
            &["buy", "--account", "carol", "XYZ", "1"],
            currency,
            &["unknown currency \"XYZ\""],
        ),
        (
            &["trade", "--account", "bad name", "--json"],
            name,
            &["invalid account name \"bad name\""],
        ),
        (
            &["trade", "--account", "bad name", "--open"],
            name,
            &["invalid account name \"bad name\""],
        ),
        (
            &["open", "bad name"],
            name,
            &["invalid account name \"bad name\""],
        ),
        (&["close", "x/y"], name, &["invalid account name \"x/y\""]),
    ];
    ex.assert_all_refused(bad, 2, &before);
    // Usage errors clap catches (missing or stray arguments) exit 2 too.
    ex.assert_all_usage_errors(
        &[
            &["buy", "--account", "alice", "DOLLAR"],
            &["buy", "--account", "alice", "DOLLAR", "1", "2"],
            &["buy", "DOLLAR", "1"],
            &["buy", "--account", "alice", "DOLLAR", "-5"],
        ],
        &before,
    );

    let dave = "no account \"dave\": open it first with `shmex exchange open dave`";
    let refused: &[Refused] = &[
        (
            &["buy", "--account", "alice", "DOLLAR", "10000.01"],
            "insufficient_stock",
            &["insufficient stock of DOLLAR: the exchange holds 10000.00, 10000.01 asked"],
        ),
        (
            &["buy", "--account", "alice", "EURO", "15000"],
            "insufficient_balance",
            &["insufficient balance: alice has 201000.00 TRY, the price is 292500.00 TRY"],
        ),
        (
            &["sell", "--account", "alice", "EURO", "0.01"],
            "insufficient_holding",
            &["insufficient holding: alice holds 0.00 EURO, 0.01 asked"],
        ),
        (
            &["sell", "--account", "alice", "DOLLAR", "8000"],
            "till_short",
            &["the till is short: it holds 100000.00 TRY, the proceeds are 107200.00 TRY"],
        ),
        (
            &["withdraw", "--account", "alice", "TRY", "201000.01"],
            "insufficient_holding",
            &["insufficient holding: alice holds 201000.00 TRY, 201000.01 asked"],
        ),
        (
            &["withdraw", "--account", "alice", "EURO", "1"],
            "insufficient_holding",
            &["insufficient holding: alice holds 0.00 EURO, 1.00 asked"],
        ),
        // An order never opens an account: one for a name that is not
        // open is refused, whatever it asks, and opens nothing.
        (
            &["buy", "--account", "dave", "DOLLAR", "10000.01"],
            "unknown_account",
            &[dave],
        ),
        (
            &["buy", "--account", "dave", "DOLLAR", "1"],
            "unknown_account",
            &[dave],
        ),
        (
            &["sell", "--account", "dave", "DOLLAR", "0.01"],
            "unknown_account",
            &[dave],
        ),
        (
            &["deposit", "--account", "dave", "TRY", "1"],
            "unknown_account",
            &[dave],
        ),
        (
            &["withdraw", "--account", "dave", "TRY", "1000"],
            "unknown_account",
            &[dave],
        ),
        (
            &["trade", "--account", "dave", "--json"],
            "unknown_account",
            &[
                "the trade loop needs an open account (or --open to open \"dave\")",
                dave,
            ],
        ),
    ];
    ex.assert_all_refused(refused, 1, &before);
    ex.check();

    // Opened, the account gets its opening balance, and the order
    // follows it in the journal.
    ex.ok(&["open", "dave"]);
    ex.ok(&["withdraw", "--account", "dave", "TRY", "1000.00"]);
    let j = ex.journal();
    let ops: Vec<_> = j[j.len() - 2..]
        .iter()
        .map(|e| {
            (
                e["op"].as_str().unwrap_or(""),
                e["account"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(ops, [("open", "dave"), ("withdraw", "dave")], "{j:?}");
    ex.check();
}

/// The largest `i64`: no balance, stock, till or total may pass it.
const I64_MAX: i128 = i64::MAX as i128;
/// The largest amount an order may name (10^15 whole units).
const MAX_AMOUNT: &str = "1000000000000000";

/// Minor units (cents) of an amount as written.
fn minor(amount: &str) -> i128 {
    micro(amount) / (MICRO / 100)
}

/// How the trade loop must answer one line.
enum Expect {
    /// Done; for a deposit or withdrawal, the balance afterwards (cents).
    Done(Option<i128>),
    /// Refused with this code, saying this.
    Refused(&'static str, &'static str),
}

/// One account's balance in one currency and that currency's totals of
/// deposits and withdrawals, in cents, as a model of what the exchange
/// must accept: everything that keeps every figure within an `i64`.
struct Cash {
    balance: i128,
    deposits: i128,
    withdrawals: i128,
}

impl Cash {
    fn deposit(&mut self, amount: i128) -> Expect {
        if self.balance + amount > I64_MAX {
            return Expect::Refused("overflow", "amount too large: the balance overflows");
        }
        if self.deposits + amount > I64_MAX {
            return Expect::Refused(
                "overflow",
                "amount too large: the total of deposits overflows",
            );
        }
        self.balance += amount;
        self.deposits += amount;
        Expect::Done(Some(self.balance))
    }

    fn withdraw(&mut self, amount: i128) -> Expect {
        if self.balance < amount {
            return Expect::Refused("insufficient_holding", "insufficient holding");
        }
        self.balance -= amount;
        self.withdrawals += amount;
        Expect::Done(Some(self.balance))
    }
}

/// Runs `lines` in a trade loop of `account` and checks each answer.
#[track_caller]
fn expect_answers(ex: &Exchange, account: &str, lines: &[(String, Expect)]) {
    let input: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    let got = ex.trade(account, input.as_bytes());
    assert_eq!(got.len(), lines.len(), "one answer per line: {got:?}");
    for ((line, want), a) in lines.iter().zip(&got) {
        match want {
            Expect::Done(balance) => {
                assert_eq!(a["ok"], true, "{line:?} must be done: {a}");
                if let Some(b) = balance {
                    assert_eq!(micro_at(a, "balance") / (MICRO / 100), *b, "{line:?}: {a}");
                }
            }
            Expect::Refused(code, says) => {
                assert_eq!(a["ok"], false, "{line:?} must be refused: {a}");
                assert_eq!(a["code"], *code, "{line:?}: {a}");
                let msg = a["error"].as_str().unwrap_or_default();
                assert!(msg.contains(says), "{line:?} must say {says:?}: {a}");
            }
        }
    }
}

fn overflowing_totals_are_refused(b: Backend) {
    let ex = Exchange::init(b, "ex-huge", &[]);
    let big = minor(MAX_AMOUNT);
    // rich's DOLLAR, and DOLLAR's totals: rich deposits the largest amount
    // until the balance would pass an i64, then exactly what fills it.
    let mut dollar = Cash {
        balance: 0,
        deposits: 0,
        withdrawals: 0,
    };
    let mut lines = Vec::new();
    loop {
        let want = dollar.deposit(big);
        let full = matches!(want, Expect::Refused(..));
        lines.push((format!("deposit DOLLAR {MAX_AMOUNT}"), want));
        if full {
            break;
        }
    }
    assert_eq!(lines.len(), 93, "92 deposits fit, the 93rd does not");
    let room = I64_MAX - dollar.balance;
    let fill = format!("{}.{:02}", room / 100, room % 100);
    assert_eq!(fill, "233720368547758.07");
    lines.push((format!("deposit DOLLAR {fill}"), dollar.deposit(room)));
    lines.push(("deposit DOLLAR 0.01".into(), dollar.deposit(1)));
    assert_eq!(dollar.balance, I64_MAX, "the balance is full");
    lines.extend([
        (
            "deposit DOLLAR 92233720368547758.07".to_string(),
            Expect::Refused("invalid_amount", "too large (at most 1000000000000000)"),
        ),
        // 10^15 DOLLAR sold at 13.40: more than the till holds.
        (
            format!("sell DOLLAR {MAX_AMOUNT}"),
            Expect::Refused("till_short", "the till is short"),
        ),
        (
            format!("buy DOLLAR {MAX_AMOUNT}"),
            Expect::Refused("insufficient_stock", "insufficient stock of DOLLAR"),
        ),
        (
            format!("withdraw DOLLAR {MAX_AMOUNT}"),
            dollar.withdraw(big),
        ),
        // The balance has room again, but the total of deposits has none.
        (format!("deposit DOLLAR {MAX_AMOUNT}"), dollar.deposit(big)),
        ("balance".into(), Expect::Done(None)),
    ]);
    assert!(
        matches!(lines[lines.len() - 2].1, Expect::Refused("overflow", m) if m.contains("deposits")),
        "the model refuses the last deposit for the total"
    );
    expect_answers(&ex, "rich", &lines);
    // Another account's deposit fits its balance, not the total.
    let mut other = Cash {
        balance: 0,
        deposits: dollar.deposits,
        withdrawals: 0,
    };
    expect_answers(
        &ex,
        "other",
        &[
            ("deposit DOLLAR 1".into(), other.deposit(100)),
            ("deposit TRY 1".into(), Expect::Done(Some(minor("1001.00")))),
        ],
    );
    ex.check();

    // Prices past an i64. At a buy rate of 0.000001, rich sells 10^11
    // DOLLAR for 100000.00 TRY, the whole till, and the stock grows to hold
    // them; at a sell rate of 10^9, buying them back would cost 10^20 TRY.
    ex.ok(&[
        "set-rate", "DOLLAR", "--buy", "0.000001", "--sell", "0.000001", "--yes",
    ]);
    let lot = "100000000000";
    expect_answers(
        &ex,
        "rich",
        &[(format!("sell DOLLAR {lot}"), Expect::Done(None))],
    );
    dollar.balance -= minor(lot);
    ex.ok(&[
        "set-rate",
        "DOLLAR",
        "--buy",
        "0.000001",
        "--sell",
        "1000000000",
        "--yes",
    ]);
    let price = "amount too large: the price overflows";
    expect_answers(
        &ex,
        "rich",
        &[
            (
                format!("buy DOLLAR {lot}"),
                Expect::Refused("overflow", price),
            ),
            // 0.01 DOLLAR costs 10000000.00 TRY: representable, not affordable.
            (
                "buy DOLLAR 0.01".into(),
                Expect::Refused("insufficient_balance", "the price is 10000000.00 TRY"),
            ),
        ],
    );
    ex.ok(&[
        "set-rate",
        "DOLLAR",
        "--buy",
        "1000000000",
        "--sell",
        "1000000000",
        "--yes",
    ]);
    expect_answers(
        &ex,
        "rich",
        &[
            (
                format!("sell DOLLAR {lot}"),
                Expect::Refused("overflow", price),
            ),
            (
                "sell DOLLAR 0.01".into(),
                Expect::Refused("till_short", "the till is short: it holds 0.00 TRY"),
            ),
        ],
    );
    ex.check();

    // The one-shot commands refuse an overflow the same way, as bad input.
    let before = ex.state();
    ex.assert_all_refused(
        &[
            (
                &["deposit", "--account", "other", "DOLLAR", "0.01"],
                "overflow",
                &["amount too large: the total of deposits overflows"],
            ),
            (
                &["buy", "--account", "rich", "DOLLAR", lot],
                "overflow",
                &[price],
            ),
        ],
        2,
        &before,
    );

    // The books hold what the model says.
    let acc = balances(&ex.accounts());
    assert_eq!(acc["rich"]["DOLLAR"], dollar.balance * (MICRO / 100));
    assert_eq!(acc["rich"]["TRY"], micro("101000.00"));
    assert_eq!(acc["other"]["DOLLAR"], other.balance * (MICRO / 100));
    assert_eq!(micro_at(&ex.quote(), "till"), 0);
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

#[test]
fn account_names_of_32_bytes_are_accepted() {
    let ex = Exchange::init(Backend::Posix, "ex-names", &[]);
    let name = "A.b-c_9".repeat(5)[..32].to_string();
    ex.ok(&["open", &name]);
    ex.ok(&["deposit", "--account", &name, "TRY", "1"]);
    let got = ex.trade(&name, b"balance\n");
    assert_eq!(got[0]["account"], name.as_str());
    assert_eq!(got[0]["balances"]["TRY"], "1001.00");
    ex.check();
}
