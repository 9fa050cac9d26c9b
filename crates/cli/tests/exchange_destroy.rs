//! `destroy` and live books (issue 9, bug 3): refused while processes are
//! attached, naming them, and changing nothing; with `--force` it removes
//! the exchange, and the trade loop, the board and the journal follower
//! attached to it notice and stop with exit status 1 and a clear message.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ChildStdout;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::exchange::{Backend, Exchange, on_both_backends};
use crate::support::process::{assert_refused, stderr};

on_both_backends!(destroy_refuses_live_books_and_attached_processes_stop);

/// Reads one JSON line.
fn next_object(r: &mut BufReader<ChildStdout>) -> Value {
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

fn destroy_refuses_live_books_and_attached_processes_stop(b: Backend) {
    let mut ex = Exchange::init(b, "destroy-live", &[]);
    ex.ok(&["open", "bob"]);

    // A trade loop, a board and a journal follower, each seen attached.
    let t = ex.spawn(&["trade", "--account", "bob", "--json"]);
    let trader_pid = ex.child(t).id();
    let mut t_in = ex.child(t).stdin.take().expect("stdin");
    let mut t_out = BufReader::new(ex.child(t).stdout.take().expect("stdout"));
    writeln!(t_in, "buy DOLLAR 1").expect("write");
    t_in.flush().expect("flush");
    assert_eq!(next_object(&mut t_out)["ok"], true);
    let w = ex.spawn(&["watch", "--json", "--interval", "0.25"]);
    let mut w_out = BufReader::new(ex.child(w).stdout.take().expect("stdout"));
    assert!(next_object(&mut w_out)["currencies"].is_array());
    // The follower prints the last record once it is attached.
    let f = ex.spawn(&["journal", "--follow", "--json", "--tail", "1"]);
    let mut f_out = BufReader::new(ex.child(f).stdout.take().expect("stdout"));
    assert_eq!(next_object(&mut f_out)["op"], "buy");

    // Refused, naming them, and nothing changed.
    let before = ex.state();
    let o = ex.run(&["destroy"]);
    assert_refused(
        &o,
        1,
        &[
            "in use by 3 processes",
            &format!("pid {trader_pid} (shmex exchange"),
            "trade --account bob",
            "watch --json",
            "journal --follow",
            "--force",
        ],
    );
    assert!(ex.exists(), "a refused destroy removed the exchange");
    ex.assert_unchanged(&before, &["destroy"]);

    // Forced: removed, and the answer says what was attached and what is
    // left of the books.
    let out = ex.ok(&["destroy", "--force"]);
    assert!(out.starts_with("destroyed exchange "), "{out}");
    assert!(out.contains("3 processes were attached"), "{out}");
    assert!(out.contains(&format!("pid {trader_pid}")), "{out}");
    assert!(out.contains("its journal is kept in"), "{out}");
    assert!(!ex.exists(), "destroy --force left the exchange");

    // Each notices and stops with exit status 1, one line on stderr, and
    // (with --json) a last object saying why. The trade loop is idle: its
    // stdin is still open.
    for (i, who, out) in [
        (t, "trade loop", &mut t_out),
        (w, "board", &mut w_out),
        (f, "journal follower", &mut f_out),
    ] {
        let start = Instant::now();
        let status = ex.finish(i, who);
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the {who} took {:?} to stop",
            start.elapsed()
        );
        assert_eq!(status.code(), Some(1), "{who}: {status:?}");
        let mut rest = String::new();
        out.read_to_string(&mut rest).expect("read");
        let last: Value = serde_json::from_str(rest.lines().last().expect("a last line"))
            .unwrap_or_else(|e| panic!("{who}: {e}: {rest:?}"));
        assert_eq!(last["ok"], false, "{who}: {last}");
        assert_eq!(last["code"], "exchange_removed", "{who}: {last}");
        let mut err = String::new();
        ex.child(i)
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("read");
        assert!(
            err.contains("was removed") && err.contains(who) && err.lines().count() == 1,
            "{who}: {err:?}"
        );
    }
    drop(t_in);
}

#[test]
fn destroy_of_an_idle_exchange_needs_no_force() {
    let ex = Exchange::init(Backend::Posix, "destroy-idle", &[]);
    ex.ok(&["open", "bob"]);
    let out = ex.ok(&["destroy"]);
    assert!(!out.contains("attached"), "{out}");
    assert!(!ex.exists());
    // A second destroy finds nothing.
    let o = ex.run(&["destroy"]);
    assert_refused(&o, 1, &["does not exist"]);
    assert!(stderr(&o).contains("exchange init"), "{}", stderr(&o));
}
