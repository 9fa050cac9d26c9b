//! The exchange's small ones (issue 9, bug 8): `journal --tail 0`,
//! `snapshot -` and `restore -`, private snapshot files, wording, the
//! quote's column names, and `set-rate` on one side with a guard against
//! large moves.

use std::os::unix::fs::PermissionsExt as _;

use serde_json::Value;

use crate::support::exchange::money::{micro, rows};
use crate::support::exchange::{Backend, Exchange};
use crate::support::process::{assert_refused, run_bounded, stderr, stdout};

#[test]
fn journal_tail_0_prints_nothing() {
    let ex = Exchange::init(Backend::Posix, "small-tail", &[]);
    ex.ok(&["open", "alice"]);
    assert_eq!(ex.ok(&["journal", "--tail", "0"]), "");
    assert_eq!(ex.ok(&["journal", "--tail", "0", "--json"]), "[]\n");
    // The headings, and the one record.
    assert_eq!(ex.ok(&["journal", "--tail", "1"]).lines().count(), 2);
}

#[test]
fn snapshot_dash_is_stdout_and_restore_dash_is_stdin() {
    let src = Exchange::init(Backend::Posix, "small-snap", &[]);
    src.ok(&["open", "alice"]);
    src.ok(&["buy", "--account", "alice", "DOLLAR", "2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run_bounded(src.cmd(&["snapshot", "-"]).current_dir(dir.path()), b"");
    let toml = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        toml.contains("format = \"shmex-exchange-snapshot\""),
        "{toml}"
    );
    assert!(
        !toml.contains("wrote exchange"),
        "stdout is the snapshot alone"
    );
    assert!(
        !dir.path().join("-").exists(),
        "`snapshot -` wrote a file named -"
    );
    let dst = Exchange::new(Backend::SysV, "small-restore");
    let o = run_bounded(
        dst.cmd(&["restore", "-"]).current_dir(dir.path()),
        toml.as_bytes(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("from stdin"), "{}", stdout(&o));
    assert_eq!(dst.quote(), src.quote());
    assert_eq!(dst.accounts(), src.accounts());
    assert!(!dir.path().join("-").exists());
    // Garbage on stdin is refused, and creates nothing.
    let bad = Exchange::new(Backend::Posix, "small-restore-bad");
    let o = run_bounded(&mut bad.cmd(&["restore", "-"]), b"not a snapshot");
    assert_refused(&o, 2, &["stdin"]);
    assert!(!bad.exists());
}

#[test]
fn snapshot_files_are_private() {
    let ex = Exchange::init(Backend::Posix, "small-mode", &[]);
    ex.ok(&["open", "alice"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("books.toml");
    // Even over a file that others could read.
    std::fs::write(&file, "old").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = ex.ok(&["snapshot", file.to_str().expect("utf-8")]);
    let mode = std::fs::metadata(&file).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "snapshot file mode {mode:o}");
    // Counts are phrased for one.
    assert!(out.contains(", 1 account, 1 journal record "), "{out}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn wording_of_counts_and_decimals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("t.toml");
    std::fs::write(
        &table,
        "home = \"TRY\"\ntill = \"100000\"\n[[currency]]\ncode = \"YEN\"\nbuy = \"0.1\"\nsell = \"0.2\"\nstock = \"1000\"\ndecimals = 0\n[[currency]]\ncode = \"DINAR\"\nbuy = \"1\"\nsell = \"2\"\nstock = \"1000\"\ndecimals = 1\n",
    )
    .expect("write table");
    let ex = Exchange::new(Backend::Posix, "small-words");
    ex.ok(&[
        "init",
        "--table",
        table.to_str().expect("utf-8"),
        "--accounts",
        "1",
    ]);
    ex.ok(&["open", "alice"]);
    let before = ex.state();
    let o = ex.run(&["buy", "--account", "alice", "YEN", "1.5"]);
    assert_refused(&o, 2, &["\"1.5\"", "whole numbers only"]);
    assert!(!stderr(&o).contains("at most 0"), "{}", stderr(&o));
    let o = ex.run(&["buy", "--account", "alice", "DINAR", "1.25"]);
    assert_refused(&o, 2, &["at most 1 decimal is allowed"]);
    ex.assert_unchanged(&before, &["buy"]);
    let check = ex.ok(&["check"]);
    assert!(
        check.contains("3 currencies balance across 1 account "),
        "{check}"
    );
}

#[test]
fn quote_columns_say_whose_rate_they_are() {
    let ex = Exchange::init(Backend::Posix, "small-quote", &[]);
    let text = ex.ok(&["quote"]);
    let header = text.lines().nth(1).expect("header");
    let words: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    assert_eq!(
        words,
        ["CODE", "WE BUY AT", "WE SELL AT", "STOCK"],
        "{header:?}"
    );
    // The JSON keys are the contract's, unchanged.
    let q = ex.quote();
    assert!(q["currencies"][0]["buy"].is_string() && q["currencies"][0]["sell"].is_string());
}

#[test]
fn set_rate_one_side_prints_old_and_new_and_guards_large_moves() {
    let ex = Exchange::init(Backend::Posix, "small-rate", &[]);
    // One side only: the other keeps its rate.
    let out = ex.ok(&["set-rate", "DOLLAR", "--sell", "14"]);
    assert_eq!(
        out.split(" (seq").next(),
        Some("DOLLAR: the exchange buys at 13.40 (unchanged) and sells at 13.72 → 14.00"),
        "{out}"
    );
    assert_eq!(
        (rows(&ex.quote())["DOLLAR"].0, rows(&ex.quote())["DOLLAR"].1),
        (micro("13.40"), micro("14.00"))
    );
    let v: Value = ex.json(&["set-rate", "DOLLAR", "--buy", "13.5", "--json"]);
    assert_eq!(
        (&v["old_buy"], &v["buy"], &v["old_sell"], &v["sell"]),
        (
            &"13.40".into(),
            &"13.50".into(),
            &"14.00".into(),
            &"14.00".into()
        ),
        "{v}"
    );
    // More than 10 %: refused without --yes, and nothing changes.
    let before = ex.state();
    for sub in [
        &["set-rate", "DOLLAR", "--sell", "15.41"][..],
        &["set-rate", "DOLLAR", "--buy", "12.14"],
        &["set-rate", "DOLLAR", "--buy", "1", "--sell", "2"],
    ] {
        let o = ex.run(sub);
        assert_refused(&o, 1, &["more than 10 %", "--yes"]);
        ex.assert_unchanged(&before, sub);
    }
    // Within 10 %, or with --yes, it goes through.
    ex.ok(&["set-rate", "DOLLAR", "--sell", "15.40"]);
    let out = ex.ok(&["set-rate", "DOLLAR", "--buy", "1", "--sell", "2", "--yes"]);
    assert!(
        out.contains("13.50 → 1.00") && out.contains("15.40 → 2.00"),
        "{out}"
    );
    ex.check();
}
