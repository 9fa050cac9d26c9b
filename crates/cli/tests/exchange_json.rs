//! JSON as a contract (issue 9, bug 5 and the JSON conventions): with
//! `--json` every outcome is one object on stdout, failures included, with
//! a stable `code` beside the message; the trade loop's refusals carry one
//! too; times are RFC 3339 UTC strings with an integer `*_ns`; records
//! carry only the fields their operation has; and the streaming commands
//! print one object a line.

use std::io::{BufRead, BufReader};
use std::process::Output;

use serde_json::Value;

use crate::support::exchange::{Backend, Exchange, answers, on_both_backends};
use crate::support::process::{stderr, stdout};

on_both_backends!(
    every_json_failure_is_one_object_with_a_code,
    journal_records_have_times_and_no_filler,
);

/// The one JSON object a failed `--json` command printed, which must say
/// `"ok":false` and `code`, and the exit status it must have had.
#[track_caller]
fn failure(o: &Output, exit: i32, code: &str) -> Value {
    assert_eq!(
        o.status.code(),
        Some(exit),
        "stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    let text = stdout(o);
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["code"], code, "{v}");
    let msg = v["error"].as_str().expect("an error message");
    // The same message as the one line on stderr.
    assert_eq!(stderr(o).trim_end(), format!("shmex: {msg}"), "{v}");
    v
}

fn every_json_failure_is_one_object_with_a_code(b: Backend) {
    // No exchange at all: every --json command says so in JSON.
    let none = Exchange::new(b, "json-none");
    for sub in [
        &["quote", "--json"][..],
        &["accounts", "--json"],
        &["journal", "--json"],
        &["journal", "--json", "--follow"],
        &["check", "--json"],
        &["watch", "--json"],
        &["open", "alice", "--json"],
        &["close", "alice", "--json"],
        &["buy", "--account", "alice", "DOLLAR", "1", "--json"],
        &["set-rate", "DOLLAR", "--sell", "14", "--json"],
        &["trade", "--account", "alice", "--json"],
    ] {
        failure(&none.run(sub), 1, "no_exchange");
        assert!(!none.exists(), "{sub:?} created the exchange");
    }

    let ex = Exchange::init(b, "json-fail", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "10"]);
    let before = ex.state();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["sell", "--account", "alice", "EURO", "1", "--json"],
            1,
            "insufficient_holding",
        ),
        (
            &[
                "withdraw",
                "--account",
                "alice",
                "DOLLAR",
                "10.01",
                "--json",
            ],
            1,
            "insufficient_holding",
        ),
        (
            &["buy", "--account", "alice", "EURO", "100", "--json"],
            1,
            "insufficient_balance",
        ),
        (
            &["buy", "--account", "alice", "DOLLAR", "10000", "--json"],
            1,
            "insufficient_stock",
        ),
        (
            &["buy", "--account", "alcie", "DOLLAR", "1", "--json"],
            1,
            "unknown_account",
        ),
        (
            &["buy", "--account", "alice", "DOLLAR", "1e3", "--json"],
            2,
            "invalid_amount",
        ),
        (
            &["buy", "--account", "alice", "YEN", "1", "--json"],
            2,
            "unknown_currency",
        ),
        (
            &["buy", "--account", "alice", "TRY", "1", "--json"],
            2,
            "home_currency",
        ),
        (
            &["buy", "--account", "a b", "DOLLAR", "1", "--json"],
            2,
            "invalid_account_name",
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "14", "--json"],
            2,
            "invalid_rates",
        ),
        (
            &["set-rate", "DOLLAR", "--sell", "1,5", "--json"],
            2,
            "invalid_rate",
        ),
        (
            &["set-rate", "DOLLAR", "--sell", "30", "--json"],
            1,
            "confirmation_needed",
        ),
        (&["open", "alice", "--json"], 1, "account_exists"),
        (&["close", "alice", "--json"], 1, "account_not_empty"),
        (&["watch", "--json", "--interval", "0"], 2, "invalid_input"),
        // A command line that cannot be read is a failure in JSON too.
        (
            &["buy", "--acount", "alice", "DOLLAR", "1", "--json"],
            2,
            "usage",
        ),
        (&["sell", "--account", "alice", "--json"], 2, "usage"),
    ];
    for (sub, exit, code) in cases {
        failure(&ex.run(sub), *exit, code);
        ex.assert_unchanged(&before, sub);
    }

    // The trade loop: one object per line, each refusal with its code, and
    // the loop goes on.
    let o = ex.run_in(
        &["trade", "--account", "alice", "--json"],
        b"buy YEN 1\nsteal DOLLAR 1\nbuy DOLLAR\nbuy DOLLAR 1 2\nsell EURO 1\nbuy DOLLAR 0.001\n\nbalance\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let got = answers(&stdout(&o));
    let codes: Vec<&str> = got
        .iter()
        .map(|a| a["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        codes,
        [
            "unknown_currency",
            "unknown_command",
            "missing_argument",
            "unexpected_argument",
            "insufficient_holding",
            "invalid_amount",
            "empty_line",
            ""
        ],
        "{got:?}"
    );
    for a in &got[..7] {
        assert_eq!(a["ok"], false, "{a}");
        assert!(a["error"].is_string(), "{a}");
    }
    assert_eq!(got[7]["ok"], true, "{}", got[7]);
    ex.assert_unchanged(&before, &["trade"]);

    // `check --json` that finds nothing wrong, for the shape.
    let v = ex.check();
    assert!(v.get("code").is_none(), "{v}");
}

/// A time field: RFC 3339 in UTC, `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
#[track_caller]
fn assert_rfc3339(v: &Value, key: &str) {
    let t = v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"));
    let b = t.as_bytes();
    assert!(
        t.len() >= 20
            && t.ends_with('Z')
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':',
        "{key} is not RFC 3339 UTC: {t:?}"
    );
    let ns = format!("{key}_ns");
    assert!(v[&ns].is_u64(), "no integer {ns} in {v}");
}

fn journal_records_have_times_and_no_filler(b: Backend) {
    let ex = Exchange::init(b, "json-journal", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["deposit", "--account", "alice", "EURO", "5"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "1"]);
    ex.ok(&["set-rate", "DOLLAR", "--sell", "13.80"]);
    let j = ex.journal();
    let ops: Vec<&str> = j.iter().map(|r| r["op"].as_str().unwrap_or("")).collect();
    assert_eq!(ops, ["open", "deposit", "buy", "set-rate"]);
    for r in &j {
        assert_rfc3339(r, "time");
        assert!(r["seq"].is_u64() && r["pid"].is_u64(), "{r}");
    }
    let keys = |r: &Value| -> Vec<String> {
        let mut k: Vec<String> = r.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    let common = ["op", "pid", "seq", "time", "time_ns"];
    let with = |extra: &[&str]| {
        let mut k: Vec<String> = common.iter().chain(extra).map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&j[0]),
        with(&["account", "code", "amount", "balances"]),
        "{}",
        j[0]
    );
    assert_eq!(
        keys(&j[1]),
        with(&["account", "code", "amount", "balances"]),
        "{}",
        j[1]
    );
    assert_eq!(
        keys(&j[2]),
        with(&["account", "code", "amount", "rate", "total", "balances"]),
        "{}",
        j[2]
    );
    assert_eq!(keys(&j[3]), with(&["code", "buy", "sell"]), "{}", j[3]);

    // `journal --follow --json`: one object a line, the old ones asked for
    // and then the new ones as they come.
    let mut ex = ex;
    let i = ex.spawn(&["journal", "--follow", "--json", "--tail", "1"]);
    let mut out = BufReader::new(ex.child(i).stdout.take().expect("stdout"));
    let mut next = || -> Value {
        let mut line = String::new();
        out.read_line(&mut line).expect("read");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    };
    assert_eq!(next()["op"], "set-rate");
    ex.ok(&["withdraw", "--account", "alice", "EURO", "5"]);
    ex.ok(&["sell", "--account", "alice", "DOLLAR", "1"]);
    let (a, b2) = (next(), next());
    assert_eq!((&a["op"], &b2["op"]), (&"withdraw".into(), &"sell".into()));
    assert_rfc3339(&b2, "time");

    // `watch --json`: one snapshot a line.
    let o = ex.run(&["watch", "--json", "--interval", "0.02", "--count", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let snaps = answers(&stdout(&o));
    assert_eq!(snaps.len(), 3);
    for s in &snaps {
        assert_rfc3339(s, "time");
        assert_eq!(s["home"], "TRY", "{s}");
        assert!(s["currencies"].is_array(), "{s}");
        assert_eq!(s["accounts"], 1, "{s}");
        assert_eq!(s["violations"], Value::Array(vec![]), "{s}");
    }
}
