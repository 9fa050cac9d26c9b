//! `shmex segment` end to end on both backends: create, write from one
//! process, read from another, inspect, list, remove; raw segments; modes,
//! key spellings and size suffixes; `--hold` until SIGINT or SIGTERM.

use std::os::unix::fs::MetadataExt;

use serde_json::Value;

use crate::support::process::{assert_ok, assert_refused, run, run_args, signal};
use crate::support::segment::{
    Holder, assert_gone, both_backends, bytes_of, cmd, create, inspect_json, ls_entry, remove,
    segment_ok, spawn_holder,
};
use crate::support::{Cleanup, SegmentId, exists};

fn me() -> String {
    shm::user_name(shm::sys::euid())
}

/// Permission bits as the kernel has them.
fn kernel_mode(id: &SegmentId) -> u32 {
    let info = shm::inspect(id).expect("inspect");
    if let SegmentId::Posix(name) = id {
        let meta = std::fs::metadata(format!("/dev/shm/{name}")).expect("stat /dev/shm file");
        assert_eq!(
            meta.mode() & 0o777,
            info.mode,
            "shm::inspect disagrees with stat"
        );
    }
    info.mode
}

fn kernel_size(id: &SegmentId) -> u64 {
    shm::inspect(id).expect("inspect").size
}

fn assert_names(v: &Value, id: &SegmentId) {
    match id {
        SegmentId::SysV(key) => {
            assert_eq!(v["backend"], "sysv", "{v}");
            assert_eq!(v["key"].as_i64(), Some(i64::from(*key)), "{v}");
            assert!(v["name"].is_null(), "{v}");
        }
        SegmentId::Posix(name) => {
            assert_eq!(v["backend"], "posix", "{v}");
            assert_eq!(v["name"], name.as_str(), "{v}");
            assert!(v["key"].is_null(), "{v}");
        }
    }
}

fn round_trip(id: &SegmentId) {
    create(id, false, &["--size", "4096"]);
    assert_eq!(kernel_mode(id), 0o600, "default mode");

    // Not held: a persistent segment, like the seed's Process A leaves.
    let v = inspect_json(id);
    assert_names(&v, id);
    assert_eq!(v["kind"], "bytes", "{v}");
    assert_eq!(v["lifetime"], "persistent", "{v}");
    // Persistent, and nobody uses it now.
    assert_eq!(v["status"], "idle", "{v}");
    assert_eq!(v["mode"], "0600", "{v}");
    assert_eq!(v["owner"], me().as_str(), "{v}");
    assert!(v["creator_pid"].as_u64().is_some(), "{v}");
    assert_eq!(v["creator_alive"], false, "the creator has exited: {v}");
    assert!(v["size"].as_u64().is_some_and(|s| s >= 4096), "{v}");
    assert!(v["attached"].as_u64().is_some(), "{v}");

    // One process writes, others read.
    segment_ok("write", id, &["--offset", "100", "hello, segment"]);
    let out = segment_ok("read", id, &["--offset", "100", "--len", "14"]);
    assert_eq!(out.stdout, b"hello, segment");
    let out = segment_ok("read", id, &["--len", "4"]);
    assert_eq!(out.stdout, [0u8; 4]);
    // Without --len: to the end of the payload, which is the requested size.
    let out = segment_ok("read", id, &[]);
    assert_eq!(out.stdout.len(), 4096, "payload length");
    assert_eq!(&out.stdout[100..114], b"hello, segment");
    let out = segment_ok("read", id, &["--offset", "4000"]);
    assert_eq!(out.stdout.len(), 96);

    let entry = ls_entry(id).expect("ls --json lists the segment");
    assert_eq!(entry["status"], "idle", "{entry}");
    assert_eq!(entry["kind"], "bytes", "{entry}");
    // Plain `ls` runs and mentions it too.
    let ls = assert_ok(&run(&["segment", "ls"], b""));
    let needle = match id {
        SegmentId::SysV(key) => key.to_string(),
        SegmentId::Posix(name) => name.clone(),
    };
    let hex = match id {
        SegmentId::SysV(key) => format!("{:x}", *key as u32),
        SegmentId::Posix(name) => name.clone(),
    };
    assert!(
        ls.contains(&needle) || ls.contains(&hex),
        "ls lacks {id}: {ls}"
    );

    remove(id);
    assert!(ls_entry(id).is_none(), "ls still lists {id}");
    assert_refused(
        &run_args(&cmd(&["segment", "inspect"], id, &[])),
        1,
        &["does not exist"],
    );
}

#[test]
fn create_write_read_inspect_rm_sysv() {
    let mut cleanup = Cleanup::new();
    let [sysv, _] = both_backends(&mut cleanup, "seg");
    round_trip(&sysv);
}

#[test]
fn create_write_read_inspect_rm_posix() {
    let mut cleanup = Cleanup::new();
    let [_, posix] = both_backends(&mut cleanup, "seg");
    round_trip(&posix);
}

#[test]
fn raw_segments_have_no_header_and_count_from_byte_0() {
    let mut cleanup = Cleanup::new();
    for id in both_backends(&mut cleanup, "seg") {
        create(&id, true, &["--size", "27"]);
        assert_eq!(kernel_size(&id), 27, "{id}");
        assert_eq!(
            bytes_of(&id),
            [0u8; 27],
            "{id}: a raw segment starts zeroed"
        );
        let v = inspect_json(&id);
        assert_names(&v, &id);
        assert!(v["kind"].is_null(), "{v}");
        assert!(v["lifetime"].is_null(), "{v}");
        assert_eq!(v["status"], "foreign", "{v}");
        assert_eq!(v["mode"], "0600", "{v}");
        assert_eq!(v["size"].as_u64(), Some(27), "{v}");

        segment_ok("write", &id, &["--offset", "24", "xyz"]);
        segment_ok("write", &id, &["abc"]);
        let mut expected = [0u8; 27];
        expected[..3].copy_from_slice(b"abc");
        expected[24..].copy_from_slice(b"xyz");
        assert_eq!(
            bytes_of(&id),
            expected,
            "{id}: bytes as the kernel holds them"
        );
        let out = segment_ok("read", &id, &["--offset", "24"]);
        assert_eq!(out.stdout, b"xyz");
        let out = segment_ok("read", &id, &[]);
        assert_eq!(out.stdout, expected);

        remove(&id);
    }
}

#[test]
fn a_wider_mode_is_applied_exactly_whatever_the_umask() {
    let mut cleanup = Cleanup::new();
    for (i, mode) in ["0640", "0666"].into_iter().enumerate() {
        for id in both_backends(&mut cleanup, "seg") {
            create(&id, i == 1, &["--size", "4096", "--mode", mode]);
            assert_eq!(
                kernel_mode(&id),
                u32::from_str_radix(mode, 8).unwrap(),
                "{id} --mode {mode}"
            );
            assert_eq!(inspect_json(&id)["mode"], mode);
            remove(&id);
        }
    }
}

#[test]
fn keys_in_decimal_hex_and_octal_name_the_same_segment() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let id = SegmentId::SysV(key);
    let hex = format!("0x{:x}", key as u32);
    let oct = format!("0o{:o}", key as u32);
    let dec = key.to_string();
    assert_ok(&run(
        &["segment", "create", "--key", &hex, "--size", "64K", "--raw"],
        b"",
    ));
    assert_eq!(kernel_size(&id), 65536, "64K");
    assert_ok(&run(&["segment", "write", "--key", &oct, "octal"], b""));
    let out = run(&["segment", "read", "--key", &dec, "--len", "5"], b"");
    assert_ok(&out);
    assert_eq!(out.stdout, b"octal");
    assert_ok(&run(&["segment", "rm", "--key", &hex], b""));
    assert_gone(&id);
}

#[test]
fn size_suffixes() {
    let mut cleanup = Cleanup::new();
    for (size, bytes) in [("4096", 4096u64), ("64K", 65536), ("1M", 1 << 20)] {
        for id in both_backends(&mut cleanup, "seg") {
            create(&id, true, &["--size", size]);
            assert_eq!(kernel_size(&id), bytes, "{id} --size {size}");
            remove(&id);
            // Managed: the payload is the requested size.
            create(&id, false, &["--size", size]);
            let out = segment_ok("read", &id, &[]);
            assert_eq!(
                out.stdout.len() as u64,
                bytes,
                "{id} --size {size}: payload"
            );
            remove(&id);
        }
    }
}

fn held(cleanup: &mut Cleanup, id: &SegmentId) -> Holder {
    let h = spawn_holder(
        cleanup,
        &cmd(&["segment", "create"], id, &["--size", "4096", "--hold"]),
    );
    assert!(h.ready_line.contains("holding"));
    h
}

#[test]
fn a_held_segment_is_owned_shared_and_removed_on_sigint_or_sigterm() {
    let mut cleanup = Cleanup::new();
    for sig in ["INT", "TERM"] {
        for id in both_backends(&mut cleanup, "seg") {
            let h = held(&mut cleanup, &id);
            assert_eq!(kernel_mode(&id), 0o600);
            let v = inspect_json(&id);
            assert_names(&v, &id);
            assert_eq!(v["kind"], "bytes", "{v}");
            assert_eq!(v["lifetime"], "owned", "{v}");
            assert_eq!(v["status"], "live", "{v}");
            assert_eq!(v["creator_pid"].as_u64(), Some(u64::from(h.pid)), "{v}");
            assert_eq!(v["creator_alive"], true, "{v}");
            assert!(v["attached"].as_u64().is_some_and(|n| n >= 1), "{v}");

            // The seed's Process A and B: one writes, another reads, while held.
            segment_ok("write", &id, &["from B"]);
            let out = segment_ok("read", &id, &["--len", "6"]);
            assert_eq!(out.stdout, b"from B");
            assert!(
                exists(&id),
                "writers and readers must not remove a held segment"
            );

            signal(h.pid, sig);
            let (status, _rest, err) = h.finish(&mut cleanup);
            assert_eq!(
                status.code(),
                Some(0),
                "SIG{sig} on the holder of {id}; stderr: {err}"
            );
            assert_gone(&id);
        }
    }
}
