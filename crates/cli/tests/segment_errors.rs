//! Bad input and refusals of `shmex segment`, on both backends: each gets a
//! one-line error naming what was wrong, the documented exit status (1
//! refused, 2 bad input or usage), and changes nothing.

use serde_json::Value;

use crate::support::process::{assert_ok, assert_refused, run, run_args, show, stderr};
use crate::support::segment::{
    assert_created_nothing, assert_gone, both_backends, bytes_of, cmd, create, inspect_json,
    refused, remove, run_tracked, segment_ok, strings,
};
use crate::support::{Cleanup, SegmentId, exists, wait_until};

/// Everything a failed command could have changed: the bytes, and what
/// `inspect --json` reports once no process is attached.
///
/// Nothing holds these segments between commands, but the kernel drops an
/// exited command's attachment only when its memory is torn down, and any
/// process reading its `/proc/PID/maps` at that moment (a concurrent
/// `segment ls`, say) delays that for a moment after `wait` has returned.
/// So the attach count is read until it settles at 0, and the status
/// (which looks at the holders in its own way) until it is no longer
/// `live`, bounded; one that stays is a real leak and fails.
fn snapshot(id: &SegmentId) -> (Vec<u8>, Value) {
    let mut info = Value::Null;
    wait_until(&format!("no process is attached to {id}"), || {
        info = inspect_json(id);
        info["attached"] == 0 && info["status"] != "live"
    });
    (bytes_of(id), info)
}

#[test]
fn a_missing_segment_does_not_exist() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "err") {
        for (pre, post) in [
            (&["segment", "write"][..], &["data"][..]),
            (&["segment", "write"], &["--offset", "3", "data"]),
            (&["segment", "read"], &[]),
            (&["segment", "read"], &["--offset", "1", "--len", "1"]),
            (&["segment", "inspect"], &[]),
            (&["segment", "inspect"], &["--json"]),
            (&["segment", "rm"], &[]),
        ] {
            refused(&cmd(pre, &id, post), 1, "does not exist");
            assert!(!exists(&id), "`{pre:?} {post:?}` created {id}");
        }
    }
}

#[test]
fn creating_an_existing_segment_is_refused() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "err") {
        for raw in [false, true] {
            create(&id, raw, &["--size", "4096"]);
            segment_ok("write", &id, &["keep me"]);
            let before = snapshot(&id);
            for again in [
                &["--size", "4096"][..],
                &["--size", "4096", "--raw"],
                &["--size", "8192", "--mode", "0666"],
                &["--size", "4096", "--hold"],
            ] {
                let (out, _) = run_tracked(&cmd(&["segment", "create"], &id, again));
                assert_refused(&out, 1, &["already exists"]);
                assert_eq!(snapshot(&id), before, "{id}: create {again:?} changed it");
            }
            remove(&id);
        }
    }
}

#[test]
fn malformed_keys_are_refused() {
    let bad_keys = [
        "abc",
        "12x",
        "0x",
        "0xzz",
        "0o9",
        "1.5",
        "99999999999",
        "5 6",
        "",
    ];
    for key in bad_keys {
        for args in [
            vec!["segment", "create", "--key", key, "--size", "4096"],
            vec!["segment", "write", "--key", key, "data"],
            vec!["segment", "read", "--key", key],
            vec!["segment", "inspect", "--key", key],
            vec!["segment", "rm", "--key", key],
        ] {
            let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
            refused(&args, 2, "invalid key");
        }
    }
    // Key 0 is IPC_PRIVATE: a segment no other process could find.
    refused(
        &["segment", "create", "--key", "0", "--size", "4096"].map(str::to_owned),
        2,
        "key",
    );
}

#[test]
fn zero_malformed_and_huge_sizes_are_refused() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "err") {
        for raw in [false, true] {
            let flag: &[&str] = if raw { &["--raw"] } else { &[] };
            let check = |size: &str, code: i32, needle: &str| {
                // `--size=-5`: the value must reach the parser, not clap.
                let size_arg = format!("--size={size}");
                let mut post = vec![size_arg.as_str()];
                post.extend_from_slice(flag);
                refused(&cmd(&["segment", "create"], &id, &post), code, needle);
                assert!(!exists(&id), "--size {size:?} created {id}");
            };
            for zero in ["0", "0K"] {
                check(zero, 2, "invalid size");
            }
            for bad in ["abc", "12Q", "-5", "1.5K", "K", "", "99999999999999999999"] {
                check(bad, 2, "invalid size");
            }
            for huge in ["1T", "1P"] {
                check(huge, 1, "no room for segment");
            }
        }
    }
}

#[test]
fn bad_modes_are_refused() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "err") {
        for mode in ["0800", "1777", "rw", "-1", ""] {
            refused(
                &cmd(
                    &["segment", "create"],
                    &id,
                    &["--size", "4096", &format!("--mode={mode}")],
                ),
                2,
                "invalid mode",
            );
            assert!(!exists(&id), "--mode {mode:?} created {id}");
        }
    }
}

#[test]
fn offsets_lengths_and_data_past_the_end_are_refused() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "err") {
        for raw in [false, true] {
            create(&id, raw, &["--size", "64"]);
            segment_ok("write", &id, &["0123456789"]);
            let len = run_args(&cmd(&["segment", "read"], &id, &[])).stdout.len();
            assert_eq!(len, 64, "{id} raw={raw}: payload length");
            let before = snapshot(&id);

            let too_long = "x".repeat(65);
            for post in [
                &["--offset", "64", "x"][..],
                &["--offset", "63", "xy"],
                &["--offset", "9223372036854775808", "x"],
                &[too_long.as_str()],
                &["--offset", "1", &too_long[..64]],
            ] {
                refused(&cmd(&["segment", "write"], &id, post), 2, "past the end");
                assert_eq!(snapshot(&id), before, "{id}: write {post:?} changed it");
            }
            for post in [
                &["--offset", "65"][..],
                &["--len", "65"],
                &["--offset", "63", "--len", "2"],
                &["--offset", "9223372036854775808", "--len", "1"],
                &["--offset", "1", "--len", "100000000000"],
                &["--offset", "1", "--len", "18446744073709551615"],
            ] {
                refused(&cmd(&["segment", "read"], &id, post), 2, "past the end");
                assert_eq!(snapshot(&id), before, "{id}: read {post:?} changed it");
            }

            // The last byte itself is fine.
            segment_ok("write", &id, &["--offset", "63", "!"]);
            let out = segment_ok("read", &id, &["--offset", "60", "--len", "4"]);
            assert_eq!(out.stdout, b"\0\0\0!");
            let out = run_args(&cmd(&["segment", "read"], &id, &["--len", "10"]));
            assert_eq!(out.stdout, b"0123456789");

            remove(&id);
        }
    }
}

#[test]
fn both_or_neither_of_key_and_name_is_a_usage_error() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let name = cleanup.name("usage");
    let k = key.to_string();
    let usage = |args: &[&str]| {
        let (out, tracked) = run_tracked(&strings(args));
        assert_eq!(
            out.status.code(),
            Some(2),
            "`shmex {}`: {}",
            args.join(" "),
            show(&out)
        );
        assert!(!stderr(&out).is_empty());
        assert_created_nothing(tracked);
    };
    for args in [
        &[
            "segment", "create", "--key", &k, "--name", &name, "--size", "4096",
        ][..],
        &["segment", "create", "--size", "4096"],
        &["segment", "write", "--key", &k, "--name", &name, "data"],
        &["segment", "write", "data"],
        &["segment", "read", "--key", &k, "--name", &name],
        &["segment", "read"],
        &["segment", "inspect", "--key", &k, "--name", &name],
        &["segment", "inspect"],
        &["segment", "rm"],
    ] {
        usage(args);
        assert!(!exists(&SegmentId::SysV(key)) && !exists(&SegmentId::Posix(name.clone())));
    }

    // `rm --stale` with a segment named as well: refused, the segment kept.
    assert_ok(&run(
        &["segment", "create", "--key", &k, "--size", "4096"],
        b"",
    ));
    let before = snapshot(&SegmentId::SysV(key));
    usage(&["segment", "rm", "--stale", "--key", &k]);
    assert_eq!(snapshot(&SegmentId::SysV(key)), before);
    assert_ok(&run(&["segment", "rm", "--key", &k], b""));
    assert_gone(&SegmentId::SysV(key));
}

#[test]
fn malformed_names_are_refused() {
    for name in ["a/b", "..", ""] {
        refused(
            &["segment", "create", "--name", name, "--size", "4096"].map(str::to_owned),
            2,
            "invalid segment name",
        );
    }
}
