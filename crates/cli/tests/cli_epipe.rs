//! A closed stdout (`shmex … | head -1`) ends every command that prints
//! quietly: exit status 0, nothing on stderr, nothing changed, nothing
//! left behind. Each command here writes into a real pipe whose reader
//! was closed before the command started, so its first write fails with
//! EPIPE.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::support::exchange::{Backend, Exchange};
use crate::support::process::{assert_refused, shmex, show, wait_exit};
use crate::support::segment::{cmd, create, segment_ok};
use crate::support::{Cleanup, SegmentId, exists, wait_until};
use crate::trade_terminal::open_alice;

/// Runs `cmd` with `stdin`, its stdout a pipe nobody reads any more.
#[track_caller]
fn run_into_closed_pipe(cmd: &mut Command, stdin: &[u8]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmex");
    let mut input = child.stdin.take().expect("stdin");
    let input = {
        let bytes = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
        })
    };
    let what = format!("{:?}", cmd.get_args().collect::<Vec<_>>());
    let status = wait_exit(&mut child, what);
    input.join().expect("stdin writer");
    let mut stderr = Vec::new();
    std::io::Read::read_to_end(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}

#[track_caller]
fn assert_quiet(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(0), "`{what}`: {}", show(o));
    assert!(o.stderr.is_empty(), "`{what}`: {}", show(o));
}

#[test]
fn exchange_reads_end_quietly() {
    let ex = Exchange::init(Backend::Posix, "epipe", &[]);
    let before = ex.state();
    for sub in [
        &["journal"][..],
        &["journal", "--json"],
        &["journal", "--tail", "1"],
        &["accounts"],
        &["accounts", "--json"],
        &["quote"],
        &["quote", "--json"],
        &["check"],
        &["check", "--json"],
    ] {
        let o = run_into_closed_pipe(&mut ex.cmd(sub), b"");
        assert_quiet(&o, &sub.join(" "));
        ex.assert_unchanged(&before, sub);
    }
}

#[test]
fn the_trade_loop_ends_quietly() {
    let ex = Exchange::init(Backend::Posix, "epipe-trade", &[]);
    open_alice(&ex);
    let o = run_into_closed_pipe(
        &mut ex.cmd(&["trade", "--account", "alice"]),
        b"quote\nbalance\nquote\n",
    );
    assert_quiet(&o, "trade");
}

#[test]
fn segment_reads_end_quietly() {
    let mut cleanup = Cleanup::new();
    let id = SegmentId::Posix(cleanup.name("epipe"));
    create(&id, false, &["--size", "4096"]);
    segment_ok("write", &id, &["hello"]);
    for (sub, extra) in [
        ("read", &[][..]),
        ("read", &["--len", "5"]),
        ("inspect", &[]),
        ("inspect", &["--json"]),
    ] {
        let o = run_into_closed_pipe(shmex().args(cmd(&["segment", sub], &id, extra)), b"");
        assert_quiet(&o, sub);
    }
    for ls in [&["segment", "ls"][..], &["segment", "ls", "--json"]] {
        let o = run_into_closed_pipe(shmex().args(ls), b"");
        assert_quiet(&o, &ls.join(" "));
    }
    let read = segment_ok("read", &id, &["--len", "5"]);
    assert_eq!(read.stdout, b"hello", "the segment changed");
}

#[test]
fn recv_ends_quietly_and_the_channel_goes() {
    let mut cleanup = Cleanup::new();
    let name = cleanup.name("epipe-chan");
    let recv = std::thread::spawn({
        let name = name.clone();
        move || run_into_closed_pipe(shmex().args(["recv", &name, "--timeout", "60"]), b"")
    });
    // The receiver first, so that this test does not depend on how the
    // two ends meet when they start at once.
    let channel = SegmentId::Posix(name.clone());
    wait_until("recv has made its channel", || exists(&channel));
    let sent = run_into_closed_pipe(
        shmex().args(["send", &name, "--timeout", "60"]),
        b"hello\nworld\n",
    );
    let got = recv.join().expect("recv thread");
    assert_quiet(&got, "recv");
    // The sender finishes, or finds the receiver gone, as a pipe's writer
    // finds its reader gone; either way it says nothing else.
    let closed = sent.status.code() == Some(1)
        && String::from_utf8_lossy(&sent.stderr).contains("has closed it");
    assert!(
        sent.status.code() == Some(0) || closed,
        "send: {}",
        show(&sent)
    );
    assert!(!exists(&channel), "the channel is left");
}

#[test]
fn other_errors_are_still_reported() {
    let ex = Exchange::new(Backend::Posix, "epipe-missing");
    let o = run_into_closed_pipe(&mut ex.cmd(&["quote"]), b"");
    assert_refused(&o, 1, &["does not exist"]);
}
