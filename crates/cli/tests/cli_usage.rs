//! Usage errors: one line, exit status 2, clap's "did you mean" kept on
//! that line, the `--help` of the subcommand concerned named, and nothing
//! changed.

use crate::support::exchange::{Backend, Exchange};
use crate::support::process::{assert_refused, run};

#[test]
fn a_mistyped_subcommand_gets_the_right_one_suggested() {
    let o = run(&["exchnage"], b"");
    assert_refused(
        &o,
        2,
        &[
            "shmex: unrecognized subcommand 'exchnage'; did you mean 'exchange'?",
            "(see `shmex --help`)",
        ],
    );
    // Internal subcommands are never suggested.
    assert!(!String::from_utf8_lossy(&o.stderr).contains("__"), "{o:?}");

    let o = run(&["segment", "list"], b"");
    assert_refused(
        &o,
        2,
        &["unrecognized subcommand 'list'; did you mean 'ls'? (see `shmex segment --help`)"],
    );
}

#[test]
fn a_mistyped_option_gets_the_right_one_suggested_and_changes_nothing() {
    let ex = Exchange::init(Backend::Posix, "usage", &[]);
    let before = ex.state();
    let o = ex.run(&["buy", "--acount", "alice", "DOLLAR", "1"]);
    assert_refused(
        &o,
        2,
        &[
            "unexpected argument '--acount' found; did you mean '--account'?",
            "(see `shmex exchange buy --help`)",
        ],
    );
    ex.assert_unchanged(&before, &["buy", "--acount", "alice", "DOLLAR", "1"]);
}

#[test]
fn a_mistyped_value_gets_the_right_one_suggested() {
    let o = run(&["bench", "chanel"], b"");
    assert_refused(
        &o,
        2,
        &[
            "invalid value 'chanel'",
            "did you mean 'channel'?",
            "(see `shmex bench --help`)",
        ],
    );
}

#[test]
fn without_a_likely_meaning_no_suggestion() {
    let o = run(&["zzzz"], b"");
    assert_refused(
        &o,
        2,
        &["unrecognized subcommand 'zzzz' (see `shmex --help`)"],
    );
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("did you mean"),
        "{o:?}"
    );
}
