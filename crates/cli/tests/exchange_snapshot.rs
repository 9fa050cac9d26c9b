//! `shmex exchange snapshot` / `restore`: a snapshot, the exchange
//! destroyed, and a restore reproduce every field (quote, accounts, journal,
//! and the totals `check` verifies), on either backend and across them; a
//! restore over an existing exchange needs --force; a tampered, truncated,
//! foreign or missing file is refused with one clear line and creates
//! nothing. The exchanges here keep no journal on disk (`--no-journal`), so
//! that `journal` shows the records the snapshot carries, from the ring.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::exchange::money::{micro, rows};
use crate::support::exchange::{Backend, Exchange, State, assert_no_gaps, on_both_backends};
use crate::support::process::assert_refused;
use crate::support::wait_until;

on_both_backends!(
    snapshot_destroy_restore_reproduces_every_field,
    restore_over_an_existing_exchange_needs_force,
    restore_refuses_a_bad_file_and_creates_nothing,
    snapshots_of_a_busy_exchange_are_consistent,
);

/// Everything that must survive a snapshot and a restore.
#[derive(Debug, PartialEq)]
struct Full {
    state: State,
    check: Value,
}

fn full(ex: &Exchange) -> Full {
    Full {
        state: ex.state(),
        check: ex.check(),
    }
}

/// An exchange with some history: trades, deposits, a withdrawal, a rate
/// change. The DOLLAR stock ends at 9998.00.
fn busy(b: Backend, tag: &str) -> Exchange {
    let ex = Exchange::init(b, tag, &["--no-journal"]);
    let ok = |a: &[serde_json::Value]| {
        for x in a {
            assert_eq!(x["ok"], true, "{x}");
        }
    };
    ok(&ex.trade(
        "alice",
        b"buy DOLLAR 3\nbuy EURO 2.5\nsell DOLLAR 1\ndeposit POUND 4\nwithdraw TRY 10\n",
    ));
    ok(&ex.trade("bob", b"buy STERLIN 1\nbuy POUND 0.5\n"));
    ex.ok(&["set-rate", "EURO", "--buy", "18.5", "--sell", "19.75"]);
    ex.ok(&["open", "carol.x-1_"]);
    ex.ok(&["deposit", "--account", "carol.x-1_", "TRY", "0.01"]);
    assert_eq!(rows(&ex.quote())["DOLLAR"].2, micro("9998.00"));
    ex
}

fn snapshot(ex: &Exchange, dir: &Path, name: &str) -> PathBuf {
    let file = dir.join(name);
    ex.ok(&["snapshot", file.to_str().expect("utf-8 path")]);
    file
}

fn snapshot_destroy_restore_reproduces_every_field(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ex = busy(b, "ex-snap");
    let was = full(&ex);
    let file = snapshot(&ex, dir.path(), "exchange.toml");

    // Versioned and human-readable.
    let text = std::fs::read_to_string(&file).expect("snapshot is UTF-8 text");
    assert!(
        text.contains("version"),
        "snapshot names its version:\n{text}"
    );
    for word in ["DOLLAR", "alice", "carol.x-1_", "9998.00"] {
        assert!(text.contains(word), "snapshot shows {word}:\n{text}");
    }
    // Taking it changed nothing.
    assert_eq!(full(&ex), was);

    ex.ok(&["destroy", "--purge"]);
    assert!(!ex.exists());
    ex.ok(&["restore", "--no-journal", file.to_str().unwrap()]);
    assert!(ex.exists());
    assert_eq!(full(&ex), was, "restore reproduces every field");

    // The restored exchange goes on where it stopped.
    let last = was.state.last_seq().expect("journal");
    let got = ex.trade("alice", b"buy DOLLAR 1\n");
    assert_eq!(got[0]["ok"], true, "{}", got[0]);
    assert_eq!(
        got[0]["seq"].as_u64(),
        Some(last + 1),
        "sequence numbers continue"
    );
    ex.check();
}

#[test]
fn restore_into_the_other_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let posix = busy(Backend::Posix, "ex-snap-x");
    let was = full(&posix);
    let file = snapshot(&posix, dir.path(), "from-posix.toml");
    let sysv = Exchange::new(Backend::SysV, "ex-snap-x");
    sysv.ok(&["restore", "--no-journal", file.to_str().unwrap()]);
    assert_eq!(full(&sysv), was, "a POSIX snapshot restored in System V");

    let file = snapshot(&sysv, dir.path(), "from-sysv.toml");
    let again = Exchange::new(Backend::Posix, "ex-snap-x");
    again.ok(&["restore", "--no-journal", file.to_str().unwrap()]);
    assert_eq!(full(&again), was, "and back");
}

fn restore_over_an_existing_exchange_needs_force(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = busy(b, "ex-snap-src");
    let want = full(&src);
    let file = snapshot(&src, dir.path(), "src.toml");
    let file = file.to_str().unwrap();

    let dst = Exchange::init(b, "ex-snap-dst", &["--no-journal"]);
    dst.ok(&["open", "zed"]);
    dst.ok(&["buy", "--account", "zed", "EURO", "1"]);
    let before = full(&dst);
    assert_refused(
        &dst.run(&["restore", "--no-journal", file]),
        1,
        &["--force"],
    );
    assert_eq!(full(&dst), before, "a refused restore changes nothing");

    dst.ok(&["restore", "--no-journal", "--force", file]);
    assert_eq!(full(&dst), want, "restore --force replaces the exchange");
}

/// Replaces the only occurrence of `from` in the text.
fn edit_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the test expects {from:?} exactly once in the snapshot:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// Asserts a refused restore: exit 1 or 2 (the contract allows either), one
/// `shmex: ` line naming the needles.
#[track_caller]
fn assert_restore_refused(o: &std::process::Output, needles: &[&str]) {
    let code = o.status.code();
    assert!(
        matches!(code, Some(1 | 2)),
        "restore must be refused: {o:?}"
    );
    assert_refused(o, code.unwrap(), needles);
}

fn restore_refuses_a_bad_file_and_creates_nothing(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = busy(b, "ex-snap-bad");
    let good_path = snapshot(&src, dir.path(), "good.toml");
    let good = std::fs::read_to_string(&good_path).expect("read");
    let till = src.quote()["till"].as_str().expect("till").to_string();
    let before = full(&src);

    let version_line = good
        .lines()
        .find(|l| l.trim_start().starts_with("version"))
        .unwrap_or_else(|| panic!("no version line in the snapshot:\n{good}"))
        .to_string();
    let bumped_till = format!("{}.00", micro(&till) / 1_000_000 + 1);
    let cases: Vec<(&str, Option<String>, &[&str])> = vec![
        // A stock edited by hand breaks conservation.
        (
            "stock edited",
            Some(edit_once(&good, "9998.00", "9999.00")),
            &["DOLLAR"],
        ),
        (
            "stock edited down",
            Some(edit_once(&good, "9998.00", "9000.00")),
            &["DOLLAR"],
        ),
        (
            "till edited",
            Some(edit_once(&good, &till, &bumped_till)),
            &[],
        ),
        (
            "unknown version",
            Some(good.replacen(&version_line, "version = 999", 1)),
            &["version"],
        ),
        ("truncated", Some(good[..good.len() / 2].to_string()), &[]),
        ("empty", Some(String::new()), &[]),
        (
            "not a snapshot",
            Some("this is not a snapshot\n".to_string()),
            &[],
        ),
        ("not TOML", Some("[[[\n\u{0}\u{1}".to_string()), &[]),
        ("missing file", None, &[]),
    ];

    let target = Exchange::new(b, "ex-snap-bad-dst");
    for (why, content, needles) in &cases {
        let path = dir.path().join(format!("{}.toml", why.replace(' ', "-")));
        if let Some(c) = content {
            std::fs::write(&path, c).expect("write");
        }
        let p = path.to_str().unwrap();
        let o = target.run(&["restore", "--no-journal", p]);
        assert_restore_refused(&o, needles);
        assert!(
            !target.exists(),
            "{why}: a refused restore created the exchange"
        );
        // Over an existing exchange with --force, it is left as it was.
        let o = src.run(&["restore", "--no-journal", "--force", p]);
        assert_restore_refused(&o, needles);
        assert_eq!(
            full(&src),
            before,
            "{why}: a refused restore --force changed the exchange"
        );
    }

    // The untouched file still restores.
    target.ok(&["restore", "--no-journal", good_path.to_str().unwrap()]);
    assert_eq!(full(&target), before);
}

/// Snapshots taken while four trader processes hammer the exchange each
/// restore (restore refuses a file that fails `check`), and the restored
/// exchange's journal ends right before the sequence number it goes on
/// with.
fn snapshots_of_a_busy_exchange_are_consistent(b: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ex = Exchange::init(b, "ex-snap-live", &["--ring", "1024", "--no-journal"]);
    let mut workers = Vec::new();
    for i in 0..4 {
        let h = ex.spawn_hammer(&format!("h{i}"), 1500, i + 1, std::process::Stdio::null());
        workers.push(h);
    }
    // Each snapshot must hold h0's account: the check below trades on it,
    // which in a snapshot taken before h0 opened would open it first and
    // take one sequence number more. A loaded machine starts workers late.
    wait_until("worker h0 opened its account", || {
        ex.accounts()
            .as_array()
            .is_some_and(|a| a.iter().any(|acc| acc["name"] == "h0"))
    });
    let last_seq = |ex: &Exchange| ex.journal().last().and_then(|r| r["seq"].as_u64());
    let mut files = Vec::new();
    let mut seen = last_seq(&ex);
    while files.len() < 6 {
        // Each snapshot once the traders have moved the books on since the
        // last one (or have all finished).
        wait_until("the traders move the books on, or finish", || {
            last_seq(&ex) != seen
                || workers
                    .iter()
                    .all(|&w| ex.child(w).try_wait().expect("try_wait").is_some())
        });
        files.push(snapshot(
            &ex,
            dir.path(),
            &format!("live-{}.toml", files.len()),
        ));
        seen = last_seq(&ex);
    }
    for w in workers {
        let st = ex.finish(w, "a worker");
        assert!(st.success(), "worker: {st:?}");
    }
    ex.check();

    let mut taken_at = std::collections::BTreeSet::new();
    for f in &files {
        let r = Exchange::new(b, "ex-snap-live-r");
        r.ok(&["restore", "--no-journal", f.to_str().unwrap()]);
        r.check();
        let j = r.journal();
        assert_no_gaps(&j, "a snapshot's journal");
        let got = r.trade("h0", b"deposit TRY 1\n");
        assert_eq!(
            got[0]["seq"].as_u64(),
            j.last().and_then(|e| e["seq"].as_u64()).map(|s| s + 1),
            "the journal and the books were taken together"
        );
        taken_at.insert(j.last().and_then(|e| e["seq"].as_u64()));
    }
    assert!(
        taken_at.len() >= 3,
        "snapshots were not taken while the traders ran: {taken_at:?}"
    );
}
