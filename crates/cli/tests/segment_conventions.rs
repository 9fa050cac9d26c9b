//! `shmex segment` as users of `ipcs`, `ipcrm` and `ls` expect it (issue
//! 9): `ls` with a shmid column, keys in hex first, the size that was asked
//! for, a status that says more than the lifetime, and name filters; `rm`
//! of several targets, by shmid, and as a dry run; `write` that refuses a
//! live channel's or exchange's segment unless forced, and takes its bytes
//! from stdin or a file; proper wording; RFC 3339 times in JSON.

use std::io::Write;

use serde_json::Value;

use crate::hostile_segment::{exchange_args, ls_pattern, waiting_receiver};
use crate::support::exchange::{Backend, Exchange};
use crate::support::process::{assert_ok, assert_refused, run, run_args};
use crate::support::segment::{
    assert_gone, both_backends, bytes_of, cmd, create, inspect_json, ls_entry, remove, segment_ok,
};
use crate::support::{Cleanup, SegmentId, exists};

/// The header and the row of `ls` text output that names `id`, cut into
/// cells where the header's columns start (cells may hold spaces).
fn ls_row(args: &[&str], id: &SegmentId) -> (Vec<String>, Vec<String>) {
    let text = assert_ok(&run(args, b""));
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    let mut starts = Vec::new();
    let mut prev = ' ';
    for (i, c) in header.char_indices() {
        if c != ' ' && prev == ' ' {
            starts.push(i);
        }
        prev = c;
    }
    let cut = |line: &str| -> Vec<String> {
        (0..starts.len())
            .map(|k| {
                let end = starts
                    .get(k + 1)
                    .copied()
                    .unwrap_or(line.len())
                    .min(line.len());
                line.get(starts[k].min(line.len())..end)
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .collect()
    };
    let head = cut(header);
    let needle = match id {
        SegmentId::SysV(key) => format!("{} ({key})", ls_pattern(id)),
        SegmentId::Posix(_) => ls_pattern(id),
    };
    let row = lines
        .map(cut)
        .find(|cells| cells[1] == needle)
        .unwrap_or_else(|| panic!("`{}` has no row for {id}: {text}", args.join(" ")));
    (head, row)
}

fn cell<'a>(head: &[String], row: &'a [String], column: &str) -> &'a str {
    let i = head
        .iter()
        .position(|h| h == column)
        .unwrap_or_else(|| panic!("no column {column} in {head:?}"));
    &row[i]
}

/// `ls` shows the shmid of a System V segment and its key in hex first, as
/// `ipcs -m` does; BYTES is the size asked for (the payload), SIZE under
/// `--long` the whole segment; STATUS says whether anyone uses it, which
/// LIFETIME does not.
#[test]
fn ls_shows_shmid_hex_keys_asked_size_and_a_status_of_its_own() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "conv-ls") {
        create(&id, false, &["--size", "4096"]);
        let pattern = ls_pattern(&id);
        let (head, row) = ls_row(&["segment", "ls", &pattern], &id);
        assert_eq!(cell(&head, &row, "BYTES"), "4096", "{row:?}");
        assert_eq!(cell(&head, &row, "LIFETIME"), "persistent");
        assert_eq!(cell(&head, &row, "STATUS"), "idle", "nobody uses it");
        let v = inspect_json(&id);
        match &id {
            SegmentId::SysV(_) => {
                let shmid = v["shmid"].as_i64().expect("a shmid").to_string();
                assert_eq!(cell(&head, &row, "SHMID"), shmid);
                let ipcs = std::process::Command::new("ipcs")
                    .arg("-m")
                    .output()
                    .expect("ipcs");
                let ipcs = String::from_utf8_lossy(&ipcs.stdout).into_owned();
                assert!(
                    ipcs.lines()
                        .any(|l| l.starts_with(&pattern) && l.contains(&shmid)),
                    "ipcs -m shows {pattern} with shmid {shmid}: {ipcs}"
                );
                assert_eq!(v["key_hex"], pattern.as_str());
            }
            SegmentId::Posix(_) => assert_eq!(cell(&head, &row, "SHMID"), "-"),
        }
        let (head, row) = ls_row(&["segment", "ls", "--long", &pattern], &id);
        assert_eq!(cell(&head, &row, "BYTES"), "4096");
        assert_eq!(cell(&head, &row, "SIZE"), v["size"].to_string());
        assert!(v["size"].as_u64().expect("size") > 4096, "{v}");
        assert_eq!(v["payload"], 4096);
        remove(&id);
    }
}

/// `ls PATTERN…` lists only the segments whose name or key matches.
#[test]
fn ls_filters_by_name_and_key() {
    let mut cleanup = Cleanup::new();
    let [sysv, posix] = both_backends(&mut cleanup, "conv-filter");
    let other = SegmentId::Posix(cleanup.name("conv-other"));
    for id in [&sysv, &posix, &other] {
        create(id, false, &["--size", "64"]);
    }
    let SegmentId::Posix(name) = &posix else {
        unreachable!()
    };
    let SegmentId::SysV(key) = sysv else {
        unreachable!()
    };
    let hex = format!("0x{:08x}", key as u32);
    let listed = |patterns: &[&str]| -> Vec<Value> {
        let mut args = vec!["segment", "ls", "--json"];
        args.extend(patterns);
        let text = assert_ok(&run(&args, b""));
        serde_json::from_str::<Value>(&text)
            .expect("json")
            .as_array()
            .expect("array")
            .clone()
    };
    let names = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|e| {
                e["name"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| e["key_hex"].as_str().unwrap_or("").to_owned())
            })
            .collect()
    };
    let only_posix = listed(&[&name.replace("filter", "f*er")]);
    assert_eq!(names(&only_posix), std::slice::from_ref(name));
    let by_key = listed(&[&format!("{}*", &hex[..hex.len() - 1])]);
    assert!(names(&by_key).contains(&hex), "{by_key:?}");
    assert!(
        names(&by_key).iter().all(|n| n.starts_with("0x")),
        "{by_key:?}"
    );
    let both = listed(&[name, &key.to_string()]);
    assert_eq!(both.len(), 2, "{both:?}");
    let none = run(&["segment", "ls", "no-such-segment-*"], b"");
    assert_eq!(assert_ok(&none).trim(), "no segments match");
    for id in [&sysv, &posix, &other] {
        remove(id);
    }
}

/// `rm` takes several targets of both backends and System V shmids, as
/// `ipcrm` does; `--dry-run` names them and removes nothing.
#[test]
fn rm_takes_several_targets_shmids_and_a_dry_run() {
    let mut cleanup = Cleanup::new();
    let [k1, n1] = both_backends(&mut cleanup, "conv-rm");
    let [k2, n2] = both_backends(&mut cleanup, "conv-rm");
    for id in [&k1, &n1, &k2, &n2] {
        create(id, false, &["--size", "64"]);
    }
    let SegmentId::SysV(key1) = k1 else {
        unreachable!()
    };
    let SegmentId::Posix(name1) = &n1 else {
        unreachable!()
    };
    let SegmentId::Posix(name2) = &n2 else {
        unreachable!()
    };
    let shmid2 = inspect_json(&k2)["shmid"]
        .as_i64()
        .expect("shmid")
        .to_string();
    let before: Vec<Vec<u8>> = [&k1, &n1, &k2, &n2].iter().map(|id| bytes_of(id)).collect();

    let args = [
        "segment",
        "rm",
        "--key",
        &key1.to_string(),
        "--name",
        name1,
        "--id",
        &shmid2,
        "--name",
        name2,
        "--dry-run",
    ];
    let out = assert_ok(&run(&args, b""));
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().all(|l| l.starts_with("would remove ")), "{out}");
    assert!(out.contains(&format!("shmid {shmid2}")), "{out}");
    for (id, b) in [&k1, &n1, &k2, &n2].iter().zip(&before) {
        assert!(exists(id), "--dry-run removed {id}");
        assert_eq!(&bytes_of(id), b, "--dry-run changed {id}");
    }

    let out = assert_ok(&run(&args[..args.len() - 1], b""));
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().all(|l| l.starts_with("removed ")), "{out}");
    for id in [&k1, &n1, &k2, &n2] {
        assert_gone(id);
    }

    // A target that is not there fails alone; the others still go.
    let [k3, n3] = both_backends(&mut cleanup, "conv-rm");
    create(&n3, false, &["--size", "64"]);
    let SegmentId::Posix(name3) = &n3 else {
        unreachable!()
    };
    let SegmentId::SysV(key3) = k3 else {
        unreachable!()
    };
    let out = run(
        &["segment", "rm", "--key", &key3.to_string(), "--name", name3],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_refused(&out, 1, &["does not exist"]);
    assert_gone(&n3);

    // Bad input names nothing and removes nothing.
    create(&n3, false, &["--size", "64"]);
    for bad in [&["--id", "abc"][..], &["--id", "-1"], &["--key", "0"]] {
        let mut args = vec!["segment", "rm", "--name", name3];
        args.extend(bad);
        let out = run(&args, b"");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(exists(&n3), "{bad:?} removed {n3}");
    }
    remove(&n3);
}

/// `write` into the segment of a live channel or exchange is refused
/// (exit 1, nothing written) unless `--force`.
#[test]
fn write_refuses_a_live_channel_or_exchange_unless_forced() {
    let mut cleanup = Cleanup::new();
    let (_, ch, r) = waiting_receiver(&mut cleanup, "conv-ch");
    let before = bytes_of(&ch);
    let out = run_args(&cmd(&["segment", "write"], &ch, &["garbage"]));
    assert_refused(
        &out,
        1,
        &["holds a channel, not a bytes segment", "--force"],
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        bytes_of(&ch),
        before,
        "the refused write changed the channel"
    );
    assert!(cleanup.child(r).try_wait().expect("try_wait").is_none());

    for backend in [Backend::Posix, Backend::SysV] {
        let ex = Exchange::init(backend, "conv-ex", &[]);
        let before = bytes_of(&ex.id);
        let out = run_args(&cmd(
            &["segment", "write"],
            &ex.id,
            &["--offset", "64", "x"],
        ));
        assert_refused(&out, 1, &["holds an exchange, not a bytes segment"]);
        assert_eq!(
            bytes_of(&ex.id),
            before,
            "the refused write changed the books"
        );
        ex.check();
        // On purpose, it goes through.
        segment_ok("write", &ex.id, &["--offset", "4000", "--force", "x"]);
        assert_ne!(bytes_of(&ex.id), before);
    }
}

/// `write -` takes the bytes from stdin, `--file` from a file; the count is
/// worded properly.
#[test]
fn write_takes_stdin_or_a_file_and_counts_in_words() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "conv-wr") {
        create(&id, false, &["--size", "64"]);
        let out = run_args(&cmd(&["segment", "write"], &id, &["x"]));
        assert_eq!(
            assert_ok(&out).trim(),
            format!("wrote 1 byte at offset 0 of segment {id}")
        );
        let mut c = crate::support::process::shmex();
        c.args(cmd(&["segment", "write"], &id, &["--offset", "8", "-"]));
        let out = crate::support::process::run_bounded(&mut c, b"from\nstdin");
        assert!(assert_ok(&out).starts_with("wrote 10 bytes at offset 8"));
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(b"\x00\xfffile").expect("write");
        let path = file.path().to_str().expect("utf-8").to_owned();
        segment_ok("write", &id, &["--offset", "20", "--file", &path]);
        let got = segment_ok("read", &id, &["--len", "26"]).stdout;
        assert_eq!(&got[..1], b"x");
        assert_eq!(&got[8..18], b"from\nstdin");
        assert_eq!(&got[20..26], b"\x00\xfffile");

        // Bad input: nothing written.
        let before = bytes_of(&id);
        for bad in [
            &["--file", "/nonexistent/file"][..],
            &["--file", &path, "data"],
            &[],
        ] {
            let out = run_args(&cmd(&["segment", "write"], &id, bad));
            assert_eq!(out.status.code(), Some(2), "{bad:?}");
            assert_eq!(bytes_of(&id), before, "{bad:?} wrote something");
        }
        remove(&id);
    }
}

/// Messages read as English: `holds a bytes segment, not an exchange`.
#[test]
fn kind_mismatches_are_worded_properly() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "conv-kind") {
        create(&id, false, &["--size", "64"]);
        let out = run_args(&exchange_args(&id, &["quote"]));
        assert_refused(
            &out,
            1,
            &[&format!(
                "segment {id} holds a bytes segment, not an exchange"
            )],
        );
        remove(&id);
    }
}

/// JSON times of `ls` and `inspect`: an RFC 3339 UTC string and an integer
/// in nanoseconds that agree.
#[test]
fn json_times_are_rfc3339_with_nanoseconds() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "conv-time") {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64;
        create(&id, false, &["--size", "64"]);
        for v in [inspect_json(&id), ls_entry(&id).expect("listed")] {
            let ns = v["created_ns"].as_u64().unwrap_or_else(|| panic!("{v}"));
            // System V keeps whole seconds.
            assert!(ns + 1_000_000_000 >= before, "{v}");
            let text = v["created"].as_str().unwrap_or_else(|| panic!("{v}"));
            assert_eq!(text.len(), "2026-01-02T03:04:05.678Z".len(), "{text}");
            assert!(text.ends_with('Z') && text.as_bytes()[10] == b'T', "{text}");
            let secs = ns / 1_000_000_000;
            let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
            assert_eq!(
                &text[11..23],
                format!("{h:02}:{m:02}:{s:02}.{:03}", ns / 1_000_000 % 1000),
                "{v}"
            );
        }
        remove(&id);
    }
}
