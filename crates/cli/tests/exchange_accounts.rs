//! Accounts open only explicitly (issue 9, bug 4): a mistyped name in an
//! order is refused with the closest name and opens nothing; `open` and
//! `close` are the only ways in and out; a closed account's name is free
//! again and conservation still holds. Every refusal leaves the quote,
//! the accounts and the journal as they were.

use std::io::{BufRead, BufReader, Write};

use serde_json::Value;

use crate::support::exchange::money::{balances, micro};
use crate::support::exchange::{Backend, Exchange, Refused, on_both_backends};
use crate::support::process::{assert_refused, stderr, stdout};

on_both_backends!(
    a_mistyped_name_is_refused_and_opens_nothing,
    open_and_close_are_explicit,
    a_trade_loop_opens_only_with_open,
    a_closed_account_refuses_a_running_trade_loop,
);

fn a_mistyped_name_is_refused_and_opens_nothing(b: Backend) {
    let ex = Exchange::init(b, "acc-typo", &[]);
    ex.ok(&["open", "alice"]);
    let before = ex.state();
    for order in [
        ["withdraw", "--account", "alcie", "TRY", "1"],
        ["deposit", "--account", "alcie", "TRY", "1"],
        ["buy", "--account", "alcie", "DOLLAR", "1"],
        ["sell", "--account", "aliec", "DOLLAR", "1"],
    ] {
        let o = ex.run(&order);
        assert_refused(
            &o,
            1,
            &[
                "no account \"al",
                "did you mean alice?",
                "shmex exchange open",
            ],
        );
        ex.assert_unchanged(&before, &order);
    }
    // A name close to none gets no suggestion, and is refused all the same.
    let o = ex.run(&["withdraw", "--account", "zed", "TRY", "1"]);
    assert_refused(&o, 1, &["no account \"zed\"", "shmex exchange open zed"]);
    assert!(!stderr(&o).contains("did you mean"), "{}", stderr(&o));
    ex.assert_unchanged(&before, &["withdraw", "--account", "zed"]);
    // With --json the refusal is an object on stdout, with its code.
    let o = ex.run(&["withdraw", "--account", "alcie", "TRY", "1", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["code"], "unknown_account", "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("did you mean alice?")),
        "{v}"
    );
    ex.assert_unchanged(&before, &["withdraw", "--json"]);
    ex.check();
}

fn open_and_close_are_explicit(b: Backend) {
    let ex = Exchange::init(b, "acc-open", &[]);
    // Opening pays the opening balance, journalled as an `open`.
    let v = ex.json(&["open", "carol", "--json"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["op"], "open", "{v}");
    assert_eq!(v["account"], "carol", "{v}");
    assert_eq!(
        (&v["code"], &v["amount"]),
        (&"TRY".into(), &"1000.00".into())
    );
    let text = ex.ok(&["open", "dan"]);
    assert!(
        text.starts_with("opened account dan with 1000.00 TRY (seq "),
        "{text}"
    );
    ex.ok(&["buy", "--account", "carol", "DOLLAR", "1"]);
    let before = ex.state();

    // Refused, each changing nothing: opening twice, closing an account
    // that holds money, closing a name that is not open.
    let refused: &[Refused] = &[
        (
            &["open", "carol"],
            "account_exists",
            &["\"carol\" is already open"],
        ),
        (
            &["close", "carol"],
            "account_not_empty",
            &["still holds 986.28 TRY, 1.00 DOLLAR", "withdraw"],
        ),
        (
            &["close", "carl"],
            "unknown_account",
            &["no account \"carl\"", "did you mean carol?"],
        ),
    ];
    ex.assert_all_refused(refused, 1, &before);

    // Emptied, carol closes; her name leaves the books and is free again.
    ex.ok(&["sell", "--account", "carol", "DOLLAR", "1"]);
    ex.ok(&["withdraw", "--account", "carol", "TRY", "999.68"]);
    let v = ex.json(&["close", "carol", "--json"]);
    assert_eq!((&v["ok"], &v["op"]), (&true.into(), &"close".into()), "{v}");
    let last = ex.journal().pop().expect("journal");
    assert_eq!(last["op"], "close", "{last}");
    assert_eq!(last["account"], "carol", "{last}");
    assert!(last.get("amount").is_none(), "no filler fields: {last}");
    let names: Vec<String> = balances(&ex.accounts()).into_keys().collect();
    assert_eq!(names, ["dan"]);
    ex.check();
    let o = ex.run(&["deposit", "--account", "carol", "TRY", "1"]);
    assert_refused(&o, 1, &["no account \"carol\""]);
    ex.ok(&["open", "carol"]);
    assert_eq!(balances(&ex.accounts())["carol"]["TRY"], micro("1000.00"));
    ex.check();
}

fn a_trade_loop_opens_only_with_open(b: Backend) {
    let ex = Exchange::init(b, "acc-loop", &[]);
    ex.ok(&["open", "alice"]);
    let before = ex.state();
    let o = ex.run_in(&["trade", "--account", "alcie"], b"buy DOLLAR 1\n");
    assert_refused(&o, 1, &["did you mean alice?", "--open"]);
    assert_eq!(stdout(&o), "", "nothing was answered");
    ex.assert_unchanged(&before, &["trade", "--account", "alcie"]);
    // --open opens a new account when the loop starts, and keeps an
    // open one as it is.
    let o = ex.run_in(&["trade", "--account", "bob", "--open"], b"balance\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("bob: 1000.00 TRY"), "{}", stdout(&o));
    let o = ex.run_in(&["trade", "--account", "bob", "--open"], b"balance\n");
    assert!(stdout(&o).starts_with("bob: 1000.00 TRY"), "{}", stdout(&o));
    let opens = ex
        .journal()
        .iter()
        .filter(|r| r["op"] == "open" && r["account"] == "bob")
        .count();
    assert_eq!(opens, 1);
    ex.check();
}

fn a_closed_account_refuses_a_running_trade_loop(b: Backend) {
    let mut ex = Exchange::init(b, "acc-closed", &[]);
    ex.ok(&["open", "erin"]);
    ex.ok(&["withdraw", "--account", "erin", "TRY", "1000"]);
    let i = ex.spawn(&["trade", "--account", "erin", "--json"]);
    let child = ex.child(i);
    let mut input = child.stdin.take().expect("stdin");
    let mut output = BufReader::new(child.stdout.take().expect("stdout"));
    let mut ask = |line: &str| -> Value {
        writeln!(input, "{line}").expect("write");
        input.flush().expect("flush");
        let mut answer = String::new();
        output.read_line(&mut answer).expect("read");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"))
    };
    assert_eq!(ask("balance")["ok"], true);
    ex.ok(&["close", "erin"]);
    let before = ex.state();
    for line in ["deposit TRY 5", "balance"] {
        let a = ask(line);
        assert_eq!(a["ok"], false, "{line}: {a}");
        assert_eq!(a["code"], "account_closed", "{line}: {a}");
    }
    // A new erin takes a new slot; the old loop still cannot reach it.
    ex.ok(&["open", "erin"]);
    let a = ask("withdraw TRY 1");
    assert_eq!(a["code"], "account_closed", "{a}");
    assert_eq!(balances(&ex.accounts())["erin"]["TRY"], micro("1000.00"));
    assert_eq!(
        ex.state().journal.len(),
        before.journal.len() + 1,
        "only the new open"
    );
    ex.check();
}
