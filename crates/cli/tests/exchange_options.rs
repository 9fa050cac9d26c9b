//! `shmex exchange init`'s options (home currency, opening balance, mode,
//! capacities), the journal ring overwriting its oldest records, and
//! `check` catching books that do not balance (so that every test relying
//! on `check` relies on something that can fail).

use serde_json::Value;
use shm::{Access, Segment};

use crate::support::exchange::money::{micro, rows};
use crate::support::exchange::{Backend, Exchange, on_both_backends};
use crate::support::process::{assert_refused, stderr, stdout};

on_both_backends!(
    init_options_set_home_opening_and_mode,
    bad_init_options_are_refused_and_create_nothing,
    account_capacity_is_enforced,
    the_journal_ring_keeps_the_newest_records,
    check_catches_books_that_do_not_balance,
);

fn init_options_set_home_opening_and_mode(b: Backend) {
    // Secure by default: 0600, a persistent exchange segment.
    let ex = Exchange::init(b, "ex-opt-default", &[]);
    let info = shm::inspect(&ex.id).expect("inspect");
    assert_eq!(info.mode & 0o777, 0o600, "{info:?}");
    assert_eq!(info.kind, Some(exchange::KIND), "{info:?}");
    assert_eq!(info.lifetime, Some(shm::Lifetime::Persistent), "{info:?}");

    let ex = Exchange::init(
        b,
        "ex-opt",
        &["--home", "EUR", "--opening", "50.5", "--mode", "0640"],
    );
    let info = shm::inspect(&ex.id).expect("inspect");
    assert_eq!(info.mode & 0o777, 0o640, "{info:?}");
    let q = ex.quote();
    assert_eq!(q["home"], "EUR", "{q}");
    let got = ex.trade("zoe", b"balance\nbuy DOLLAR 1\nbalance\n");
    assert_eq!(got[0]["balances"]["EUR"], "50.50", "{}", got[0]);
    assert_eq!(got[2]["balances"]["EUR"], "36.78", "{}", got[2]);
    assert!(got[0]["balances"].get("TRY").is_none(), "{}", got[0]);
    ex.check();
}

fn bad_init_options_are_refused_and_create_nothing(b: Backend) {
    let ex = Exchange::new(b, "ex-opt-bad");
    // `init` has no --json: its refusals are checked by their message.
    let bad: &[(&[&str], &[&str])] = &[
        (&["init", "--home", "1X"], &["invalid currency code \"1X\""]),
        (
            &["init", "--home", "DOLLAR"],
            &["DOLLAR is the home currency and cannot be a foreign one too"],
        ),
        // A leading '-' makes a flag of it: a usage error.
        (&["init", "--opening", "-1"], &["unexpected argument '-1'"]),
        (
            &["init", "--opening", "1.234"],
            &["--opening: invalid value \"1.234\": at most 2 decimals are allowed"],
        ),
        (
            &["init", "--opening", "1e3"],
            &["--opening: invalid value \"1e3\": exponents are not allowed"],
        ),
        (&["init", "--mode", "999"], &["invalid mode \"999\""]),
        (&["init", "--mode", "rw"], &["invalid mode \"rw\""]),
        (
            &["init", "--accounts", "0"],
            &["account capacity 0 is out of range"],
        ),
        (
            &["init", "--ring", "0"],
            &["journal capacity 0 is out of range"],
        ),
        (
            &["init", "--currencies", "2"],
            &["do not fit a capacity of 2", "--currencies"],
        ),
        (&["init", "--accounts", "-1"], &["unexpected argument '-1'"]),
        (
            &["init", "--ring", "lots"],
            &["invalid value 'lots' for '--ring <N>'"],
        ),
    ];
    for (args, needles) in bad {
        assert_refused(&ex.run(args), 2, needles);
        assert!(!ex.exists(), "`{}` created the exchange", args.join(" "));
    }
}

fn account_capacity_is_enforced(b: Backend) {
    let ex = Exchange::init(b, "ex-opt-acc", &["--accounts", "2"]);
    ex.ok(&["open", "a"]);
    ex.ok(&["open", "b"]);
    ex.ok(&["deposit", "--account", "a", "TRY", "1"]);
    ex.ok(&["deposit", "--account", "b", "TRY", "1"]);
    let before = ex.state();
    assert_refused(&ex.run(&["open", "c"]), 1, &["--accounts"]);
    let o = ex.run_in(
        &["trade", "--account", "c", "--open", "--json"],
        b"balance\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(ex.state(), before, "a refused opening changes nothing");
    // The two that fit go on trading.
    ex.ok(&["buy", "--account", "b", "DOLLAR", "1"]);
    ex.check();
}

fn the_journal_ring_keeps_the_newest_records(b: Backend) {
    // Memory only: `journal` reads the ring (with a journal on disk it
    // reads the whole history there).
    let ex = Exchange::init(b, "ex-opt-ring", &["--ring", "4", "--no-journal"]);
    let mut input = String::new();
    for i in 1..=10 {
        input.push_str(&format!("deposit TRY {i}\n"));
    }
    let got = ex.trade("ring", input.as_bytes());
    let last = got.last().expect("answers")["seq"].as_u64().expect("seq");
    let j = ex.journal();
    let seqs: Vec<u64> = j.iter().map(|r| r["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (last - 3..=last).collect::<Vec<_>>(), "{j:?}");
    assert_eq!(j[3]["amount"], "10.00", "{}", j[3]);
    let tail: Value = ex.json(&["journal", "--tail", "2", "--json"]);
    assert_eq!(tail, Value::Array(j[2..].to_vec()));
    // Conservation does not depend on the journal.
    ex.check();
}

/// The offsets in the segment where the little-endian `i64` `v` is stored,
/// 8-aligned.
fn find_i64(seg: &Segment, v: i64) -> Vec<usize> {
    let mut bytes = vec![0u8; seg.len()];
    seg.read_at(0, &mut bytes).expect("read the segment");
    let pat = v.to_le_bytes();
    (0..bytes.len() - 8)
        .step_by(8)
        .filter(|&o| bytes[o..o + 8] == pat)
        .collect()
}

fn check_fails(ex: &Exchange, needles: &[&str]) {
    let o = ex.run(&["check", "--json"]);
    assert_eq!(o.status.code(), Some(1), "check must fail: {o:?}");
    let v: Value = serde_json::from_str(&stdout(&o)).expect("check --json");
    assert_eq!(v["ok"], false, "{v}");
    let violations = v["violations"].as_array().expect("violations");
    assert!(!violations.is_empty(), "{v}");
    let all = v["violations"].to_string();
    for n in needles {
        assert!(all.contains(n), "violations {all} do not name {n}");
    }
    let o = ex.run(&["check"]);
    assert_eq!(o.status.code(), Some(1), "plain check must fail too: {o:?}");
}

fn check_catches_books_that_do_not_balance(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("t.toml");
    // Distinctive numbers, so the test can find them in the segment.
    std::fs::write(
        &table,
        "home = \"TRY\"\ntill = \"100000\"\n[[currency]]\ncode = \"DOLLAR\"\nbuy = \"13.456789\"\nsell = \"14.987654\"\nstock = \"12345.67\"\n",
    )
    .expect("write table");
    let ex = Exchange::new(b, "ex-opt-check");
    ex.ok(&["init", "--table", table.to_str().unwrap()]);
    // Move the stock off its genesis value, so it appears once.
    ex.ok(&["open", "alice"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "1"]);
    assert_eq!(rows(&ex.quote())["DOLLAR"].2, micro("12344.67"));
    ex.check();

    let seg = Segment::open(&ex.id, Access::ReadWrite).expect("open the segment");
    let at = find_i64(&seg, 1_234_467);
    assert_eq!(at.len(), 1, "the stock is stored once: {at:?}");
    // Edited by hand: a stock out of thin air breaks conservation.
    seg.write_at(at[0], &1_234_468i64.to_le_bytes())
        .expect("write");
    assert_eq!(rows(&ex.quote())["DOLLAR"].2, micro("12344.68"));
    check_fails(&ex, &["DOLLAR"]);
    // A negative stock is caught too.
    seg.write_at(at[0], &(-1i64).to_le_bytes()).expect("write");
    check_fails(&ex, &["DOLLAR"]);
    seg.write_at(at[0], &1_234_467i64.to_le_bytes())
        .expect("write");
    ex.check();

    // Crossed rates: the buy rate above the sell rate.
    let at = find_i64(&seg, 13_456_789);
    assert_eq!(at.len(), 1, "the buy rate is stored once: {at:?}");
    seg.write_at(at[0], &15_000_000i64.to_le_bytes())
        .expect("write");
    check_fails(&ex, &["DOLLAR"]);
    seg.write_at(at[0], &13_456_789i64.to_le_bytes())
        .expect("write");
    ex.check();
}
