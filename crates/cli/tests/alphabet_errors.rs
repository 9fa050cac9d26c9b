//! Bad input and refusals of `shmex alphabet`: each gets a one-line error,
//! the documented exit status, and changes nothing.

use crate::support::alphabet::{ALPHABET, SHMEX_CONSUMER_OUTPUT, alphabet_written};
use crate::support::process::{
    assert_prints, assert_refused, finish_ok, run, show, spawn_shmex, stdout, still_running,
};
use crate::support::segment::{
    assert_created_nothing, assert_gone, bytes_of, refused, run_tracked, strings,
};
use crate::support::{Cleanup, SegmentId, exists, wait_until};

#[test]
fn a_second_producer_is_refused_and_the_first_goes_on() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let first = spawn_shmex(&mut cleanup, &["alphabet", "produce", "--key", &k]);
    wait_until("the first producer wrote the alphabet", || {
        alphabet_written(key)
    });
    let before = bytes_of(&SegmentId::SysV(key));

    refused(
        &strings(&["alphabet", "produce", "--key", &k]),
        1,
        "already exists",
    );

    // The hand-over is intact: same bytes, first producer still waiting.
    assert_eq!(bytes_of(&SegmentId::SysV(key)), before);
    assert!(
        still_running(&mut cleanup, first),
        "the first producer stopped"
    );

    let out = run(
        &["alphabet", "consume", "--key", &k, "--timeout", "60"],
        b"",
    );
    assert_prints(&out, SHMEX_CONSUMER_OUTPUT);
    finish_ok(&mut cleanup, first, "first producer");
    assert_gone(&SegmentId::SysV(key));
}

#[test]
fn an_unanswered_producer_times_out_and_removes_its_segment() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let out = run(
        &["alphabet", "produce", "--key", &k, "--timeout", "0.5"],
        b"",
    );
    // Timed out: exit status 1 and one line `shmex: …`.
    assert_refused(&out, 1, &[]);
    assert_gone(&SegmentId::SysV(key));
}

#[test]
fn a_consumer_with_no_producer_times_out_and_creates_nothing() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let (out, tracked) = run_tracked(&strings(&[
        "alphabet",
        "consume",
        "--key",
        &k,
        "--timeout",
        "0.5",
    ]));
    // Timed out: exit status 1 and one line `shmex: …`.
    assert_refused(&out, 1, &[]);
    assert!(stdout(&out).is_empty(), "{}", show(&out));
    assert!(!exists(&SegmentId::SysV(key)));
    assert_created_nothing(tracked);
}

#[test]
fn a_consumer_on_an_incomplete_alphabet_times_out_and_answers_nothing() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let id = SegmentId::SysV(key);
    // A raw 27-byte segment with half an alphabet: the seed's race, frozen.
    let out = run(
        &["segment", "create", "--key", &k, "--size", "27", "--raw"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let seg = shm::Segment::open(&id, shm::Access::ReadWrite).expect("open");
    seg.write_at(0, &ALPHABET[..13]).expect("write half");
    drop(seg);
    let before = bytes_of(&id);

    let out = run(
        &["alphabet", "consume", "--key", &k, "--timeout", "0.5"],
        b"",
    );
    // Timed out: exit status 1 and one line `shmex: …`.
    assert_refused(&out, 1, &[]);
    assert!(stdout(&out).is_empty(), "{}", show(&out));
    // No `*`, nothing else touched.
    assert_eq!(bytes_of(&id), before);
}

#[test]
fn malformed_keys_are_refused() {
    for verb in ["produce", "consume"] {
        for bad in ["abc", "12x", "0x", "1.5", "99999999999", ""] {
            refused(
                &strings(&["alphabet", verb, "--key", bad, "--timeout", "0.5"]),
                2,
                "invalid key",
            );
        }
        // Key 0 is IPC_PRIVATE: no other process could find it.
        refused(
            &strings(&["alphabet", verb, "--key", "0", "--timeout", "0.5"]),
            2,
            "key",
        );
    }
}

#[test]
fn bad_modes_are_refused() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    for bad in ["0800", "1777", "rw", ""] {
        refused(
            &strings(&[
                "alphabet",
                "produce",
                "--key",
                &k,
                &format!("--mode={bad}"),
                "--timeout",
                "0.5",
            ]),
            2,
            "invalid mode",
        );
        assert!(
            !exists(&SegmentId::SysV(key)),
            "mode {bad:?} created the segment"
        );
    }
}

#[test]
fn bad_timeouts_are_refused() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    for verb in ["produce", "consume"] {
        for bad in ["-1", "abc", "nan", ""] {
            refused(
                &strings(&["alphabet", verb, "--key", &k, &format!("--timeout={bad}")]),
                2,
                "invalid timeout",
            );
            assert!(
                !exists(&SegmentId::SysV(key)),
                "{verb} --timeout {bad:?} created the segment"
            );
        }
    }
}
