//! `shmex exchange` and its input: one-shot trades that move money exactly,
//! verbs in any case, one-shot commands that exit 2 for bad input and 1
//! for a refused operation, and account names of the longest length.
//! Every flow runs on both backends. The lines the trade loop refuses are
//! in `exchange_input_bad_lines`, amounts that would overflow in
//! `exchange_input_overflow`.

use std::collections::BTreeMap;

use crate::support::exchange::money::{balances, micro, micro_at, rows};
use crate::support::exchange::{Backend, Exchange, Refused, on_both_backends};

on_both_backends!(
    one_shot_trades_move_money_exactly,
    verbs_are_case_insensitive_and_quit_ends_the_loop,
    one_shot_bad_input_exits_2_and_refused_exits_1,
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
