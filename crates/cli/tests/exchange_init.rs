//! `shmex exchange init` and choosing an exchange: the built-in table, a
//! table from a file (and a bad one, refused), `init` twice, a missing
//! exchange, and the flag, variable and default that name it. Every flow
//! runs on both backends.

use serde_json::Value;

use crate::support::exchange::money::{micro, rows};
use crate::support::exchange::{Backend, Exchange, MISSING, on_both_backends};
use crate::support::process::{assert_refused, run_bounded, shmex, stderr, stdout};

on_both_backends!(
    init_builds_the_seed_table_uncrossed,
    missing_exchange_is_reported_and_not_created,
    init_twice_is_refused_without_force,
    selling_into_an_empty_till_is_refused,
    a_bad_table_is_refused_and_creates_nothing,
);

fn init_builds_the_seed_table_uncrossed(b: Backend) {
    let ex = Exchange::new(b, "ex-init");
    let o = ex.run(&["init"]);
    assert!(o.status.success(), "init: {}", stderr(&o));
    assert!(ex.exists(), "init must create the segment");
    // The seed's crossed rows are uncrossed, and init says so.
    let said = format!("{}{}", stdout(&o), stderr(&o));
    for code in ["STERLIN", "POUND"] {
        assert!(
            said.contains(code),
            "init must say it uncrossed {code}: {said:?}"
        );
    }

    let q = ex.quote();
    assert_eq!(q["home"], "TRY", "{q}");
    assert_eq!(q["till"], "100000.00", "{q}");
    let want = [
        ("DOLLAR", "13.40", "13.72", "10000.00"),
        ("EURO", "18.92", "19.50", "20000.00"),
        ("STERLIN", "24.551", "24.552", "10000.00"),
        ("POUND", "33.24", "33.25", "5000.00"),
    ];
    let cur = q["currencies"].as_array().expect("currencies");
    assert_eq!(cur.len(), want.len(), "{q}");
    for (row, (code, buy, sell, stock)) in cur.iter().zip(want) {
        assert_eq!(row["code"], code, "{row}");
        assert_eq!(row["buy"], buy, "{row}");
        assert_eq!(row["sell"], sell, "{row}");
        assert_eq!(row["stock"], stock, "{row}");
    }
    assert_eq!(
        ex.accounts(),
        Value::Array(vec![]),
        "a fresh exchange has no accounts"
    );
    ex.check();

    // `destroy` removes it, and then it is missing.
    ex.ok(&["destroy"]);
    assert!(!ex.exists(), "destroy must remove the segment");
    assert_refused(&ex.run(&["quote"]), 1, &[MISSING]);
}

fn missing_exchange_is_reported_and_not_created(b: Backend) {
    let ex = Exchange::new(b, "ex-missing");
    let file = std::env::temp_dir().join(format!("{}.toml", ex.label));
    let file = file.to_str().expect("utf-8 path");
    let commands: &[&[&str]] = &[
        &["quote"],
        &["quote", "--json"],
        &["accounts", "--json"],
        &["journal", "--json"],
        &["check"],
        &["check", "--json"],
        &["buy", "--account", "alice", "DOLLAR", "1"],
        &["sell", "--account", "alice", "DOLLAR", "1"],
        &["deposit", "--account", "alice", "TRY", "1"],
        &["withdraw", "--account", "alice", "TRY", "1"],
        &["set-rate", "DOLLAR", "--buy", "1", "--sell", "2"],
        &["trade", "--account", "alice", "--json"],
        &["snapshot", file],
        &["destroy"],
    ];
    let mut needle = MISSING.to_string();
    if b == Backend::Posix {
        needle = format!("exchange \"{}\" {MISSING}", ex.label);
    }
    for args in commands {
        let o = ex.run_in(args, b"buy DOLLAR 1\n");
        assert_refused(&o, 1, &[&needle]);
        assert!(!ex.exists(), "`{}` created the exchange", args.join(" "));
    }
    assert!(
        !std::path::Path::new(file).exists(),
        "snapshot of nothing wrote a file"
    );
}

fn init_twice_is_refused_without_force(b: Backend) {
    let ex = Exchange::init(b, "ex-twice", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "1"]);
    let before = ex.state();
    let o = ex.run(&["init"]);
    assert_refused(&o, 1, &["--force"]);
    assert_eq!(ex.state(), before, "a refused init must change nothing");

    ex.ok(&["init", "--force"]);
    assert_eq!(
        ex.accounts(),
        Value::Array(vec![]),
        "init --force starts afresh"
    );
    assert_eq!(rows(&ex.quote())["DOLLAR"].2, micro("10000.00"));
    ex.check();
}

#[test]
fn exchange_is_chosen_by_env_or_by_flag_in_either_position() {
    let ex = Exchange::init(Backend::Posix, "ex-select", &[]);
    ex.ok(&["open", "alice"]);
    // The flag after the subcommand.
    let o = run_bounded(
        shmex().args([
            "exchange",
            "buy",
            "--account",
            "alice",
            "DOLLAR",
            "1",
            "--exchange",
            &ex.label,
        ]),
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // SHMEX_EXCHANGE in the environment.
    let o = run_bounded(
        shmex()
            .env("SHMEX_EXCHANGE", &ex.label)
            .args(["exchange", "quote", "--json"]),
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let q: Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(q, ex.quote());
    assert_eq!(rows(&q)["DOLLAR"].2, micro("9999.00"));

    let sv = Exchange::init(Backend::SysV, "ex-select", &[]);
    let o = run_bounded(
        shmex().args(["exchange", "quote", "--json", "--key", &sv.label]),
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let q: Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(
        rows(&q)["DOLLAR"].2,
        micro("10000.00"),
        "the System V exchange is another one"
    );
}

/// A table with a custom home currency and opening balance, a till of one
/// franc, and a currency without decimals.
const TINY_TILL: &str = r#"
home = "CHF"
till = "1.00"
opening = "50.00"

[[currency]]
code = "DOLLAR"
buy = "2.00"
sell = "2.50"
stock = "100"

[[currency]]
code = "YEN"
buy = "0.01"
sell = "0.02"
stock = "1000000"
decimals = 0
"#;

fn selling_into_an_empty_till_is_refused(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("tiny.toml");
    std::fs::write(&table, TINY_TILL).expect("write table");
    let ex = Exchange::new(b, "ex-till");
    ex.ok(&["init", "--table", table.to_str().unwrap()]);
    let q = ex.quote();
    assert_eq!(q["home"], "CHF", "{q}");
    assert_eq!(q["till"], "1.00", "{q}");
    let r = rows(&q);
    assert_eq!(r["DOLLAR"], (micro("2"), micro("2.5"), micro("100")));
    assert_eq!(r["YEN"], (micro("0.01"), micro("0.02"), micro("1000000")));

    let got = ex.trade("alice", b"deposit DOLLAR 10\nbalance\n");
    assert_eq!(got[0]["ok"], true, "{}", got[0]);
    assert_eq!(
        got[1]["balances"]["CHF"], "50.00",
        "opening balance: {}",
        got[1]
    );

    // The till holds 1.00: proceeds of 2.00 are refused; 1.00 empties it.
    let before = ex.state();
    let got = ex.trade("alice", b"sell DOLLAR 1\n");
    assert_eq!(got[0]["ok"], false, "{}", got[0]);
    assert_eq!(ex.state(), before);
    let got = ex.trade("alice", b"sell DOLLAR 0.5\n");
    assert_eq!(got[0]["ok"], true, "{}", got[0]);
    assert_eq!(ex.quote()["till"], "0.00");

    // Selling into the empty till: refused, nothing changes.
    let before = ex.state();
    let got = ex.trade("alice", b"sell DOLLAR 0.01\nsell DOLLAR 0.5\n");
    for a in &got {
        assert_eq!(a["ok"], false, "{a}");
    }
    assert_refused(
        &ex.run(&["sell", "--account", "alice", "DOLLAR", "0.01"]),
        1,
        &[],
    );
    assert_eq!(
        ex.state(),
        before,
        "selling into an empty till changed the state"
    );

    // A currency without decimals takes whole amounts only; the home
    // currency is the table's, not TRY.
    let got = ex.trade(
        "alice",
        b"buy YEN 1.5\nbuy YEN 1.0\ndeposit TRY 1\nbuy CHF 1\n",
    );
    for a in &got {
        assert_eq!(a["ok"], false, "{a}");
    }
    assert_eq!(ex.state(), before);
    let got = ex.trade("alice", b"buy YEN 100\n");
    assert_eq!(got[0]["ok"], true, "{}", got[0]);
    assert_eq!(got[0]["total"], "2.00", "{}", got[0]);
    assert_eq!(ex.quote()["till"], "2.00");
    ex.check();
}

fn a_bad_table_is_refused_and_creates_nothing(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ex = Exchange::new(b, "ex-badtable");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "crossed",
            "[[currency]]\ncode = \"DOLLAR\"\nbuy = \"14\"\nsell = \"13\"\nstock = \"1\"\n",
            &["DOLLAR"],
        ),
        (
            "float",
            "[[currency]]\ncode = \"DOLLAR\"\nbuy = 13.40\nsell = \"13.72\"\nstock = \"1\"\n",
            &[],
        ),
        (
            "zero rate",
            "[[currency]]\ncode = \"DOLLAR\"\nbuy = \"0\"\nsell = \"13.72\"\nstock = \"1\"\n",
            &[],
        ),
        (
            "negative stock",
            "[[currency]]\ncode = \"DOLLAR\"\nbuy = \"1\"\nsell = \"2\"\nstock = \"-1\"\n",
            &[],
        ),
        (
            "too precise stock",
            "[[currency]]\ncode = \"DOLLAR\"\nbuy = \"1\"\nsell = \"2\"\nstock = \"1.001\"\n",
            &[],
        ),
        ("not TOML", "[[[", &[]),
    ];
    for (why, text, needles) in cases {
        let table = dir.path().join(format!("{}.toml", why.replace(' ', "-")));
        std::fs::write(&table, text).expect("write table");
        let o = ex.run(&["init", "--table", table.to_str().unwrap()]);
        assert_refused(&o, 2, needles);
        assert!(!ex.exists(), "{why}: a refused init created the exchange");
    }
    let missing = dir.path().join("missing.toml");
    let o = ex.run(&["init", "--table", missing.to_str().unwrap()]);
    assert!(matches!(o.status.code(), Some(1 | 2)), "{o:?}");
    assert_refused(&o, o.status.code().unwrap(), &["missing.toml"]);
    assert!(!ex.exists());
}
