//! `shmex demo`: it speaks of the project (not of "the seed"), prints a
//! pipe measured on the spot beside the channel's figure, and with
//! `--keep` leaves a segment and an exchange under fixed names that its
//! output gives, with the commands that remove them; names in use are
//! refused before anything is made.

use std::process::{Output, Stdio};

use crate::support::process::{
    Piped, assert_ok, assert_refused, run, shmex, show, stdout, wait_exit,
};
use crate::support::segment::{create, segment_ok};
use crate::support::traces::left_by;
use crate::support::{Cleanup, SegmentId, exists};

/// A prefix for the kept names that no other test uses; both names are
/// removed when `cleanup` is dropped.
fn prefix(cleanup: &mut Cleanup) -> (String, SegmentId, SegmentId) {
    let prefix = cleanup.name("demo");
    let segment = SegmentId::Posix(format!("{prefix}-segment"));
    let exchange = SegmentId::Posix(format!("{prefix}-exchange"));
    cleanup.add(segment.clone());
    cleanup.add(exchange.clone());
    (prefix, segment, exchange)
}

/// Runs `shmex demo ARGS` to its end; returns its output and pid.
fn demo(args: &[&str]) -> (Output, u32) {
    let mut child = shmex()
        .arg("demo")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmex demo");
    let pid = child.id();
    let piped = Piped::new(&mut child, Vec::new());
    let status = wait_exit(&mut child, "shmex demo");
    (piped.output(status), pid)
}

#[test]
fn keep_leaves_a_segment_and_an_exchange_to_explore() {
    let mut cleanup = Cleanup::new();
    let (prefix, segment, exchange) = prefix(&mut cleanup);
    let (out, pid) = demo(&["--keep", "--prefix", &prefix]);
    let text = assert_ok(&out);

    // The project's words, and a pipe beside the channel.
    assert!(!text.to_lowercase().contains("seed"), "{text}");
    let channel_row = text
        .lines()
        .find(|l| l.contains("shmex send | shmex recv (channel)"))
        .unwrap_or_else(|| panic!("no channel figure: {text}"));
    let pipe_row = text
        .lines()
        .find(|l| l.contains("cat | cat (pipe)"))
        .unwrap_or_else(|| panic!("no pipe figure: {text}"));
    for row in [channel_row, pipe_row] {
        assert!(row.trim_end().ends_with("GiB/s"), "{row}");
    }

    // What was kept, by the names the output gives.
    let seg_name = format!("{prefix}-segment");
    let ex_name = format!("{prefix}-exchange");
    for name in [&seg_name, &ex_name] {
        assert!(text.contains(name.as_str()), "{name} not named: {text}");
    }
    assert!(exists(&segment) && exists(&exchange), "{}", show(&out));
    let read = segment_ok("read", &segment, &["--len", "20"]);
    assert_eq!(read.stdout, b"hello from process A");
    let check = run(&["exchange", "--exchange", &ex_name, "check"], b"");
    assert_ok(&check);

    // The commands it gives remove them.
    let removal: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("remove them with:"))
        .skip(1)
        .map(str::trim)
        .collect();
    assert_eq!(removal.len(), 2, "{text}");
    for line in removal {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "shmex", "{line}");
        assert_ok(&run(&words[1..], b""));
    }
    assert!(!exists(&segment) && !exists(&exchange), "still there");
    assert_eq!(left_by(pid), Vec::<String>::new(), "left behind");
}

#[test]
fn keep_refuses_names_in_use_and_makes_nothing() {
    let mut cleanup = Cleanup::new();
    let (prefix, segment, exchange) = prefix(&mut cleanup);
    create(&segment, false, &["--size", "64"]);
    segment_ok("write", &segment, &["mine"]);
    let (out, pid) = demo(&["--keep", "--prefix", &prefix]);
    assert_refused(
        &out,
        1,
        &[
            &format!("{prefix}-segment"),
            "exists already",
            &format!("shmex segment rm --name {prefix}-segment"),
        ],
    );
    assert!(stdout(&out).is_empty(), "{}", show(&out));
    assert_eq!(
        segment_ok("read", &segment, &["--len", "4"]).stdout,
        b"mine"
    );
    assert!(!exists(&exchange));
    let made: Vec<String> = shm::list()
        .expect("list segments")
        .iter()
        .filter(|s| s.creator_pid == Some(pid))
        .map(|s| s.id.to_string())
        .collect();
    assert!(made.is_empty(), "the refused demo made {made:?}");
    assert_eq!(left_by(pid), Vec::<String>::new(), "left behind");
}

#[test]
fn prefix_without_keep_is_a_usage_error() {
    let o = run(&["demo", "--prefix", "x"], b"");
    assert_refused(&o, 2, &["--keep", "(see `shmex demo --help`)"]);
}
