//! `shmex segment rm --stale` removes exactly the owned segments whose
//! holders are all dead: a held segment whose holder was SIGKILLed goes; a
//! segment a live process holds, a persistent one and a foreign one stay.
//! System V judges by the kernel's attach count, POSIX by the holder's
//! `flock`, so both backends are covered in one run (one `rm --stale` for
//! all, since it acts on the whole machine).

use serde_json::Value;

use crate::support::process::{assert_ok, finish, run, show, signal};
use crate::support::segment::{
    assert_gone, bytes_of, cmd, create, is_entry_of, ls_json, remove, spawn_holder,
};
use crate::support::{Cleanup, SegmentId, exists, wait_until};

fn status_in(list: &[Value], id: &SegmentId) -> String {
    let entry = list
        .iter()
        .find(|v| is_entry_of(v, id))
        .unwrap_or_else(|| panic!("ls --json does not list {id}"));
    entry["status"].as_str().unwrap_or("(none)").to_owned()
}

/// Waits, bounded, until `ls` sees `id` as stale. The kernel releases a
/// killed holder's attachment (and the `flock` its mapping keeps open) when
/// its memory is torn down, which a process reading its `/proc/PID/maps` at
/// that moment (any concurrent `segment ls`) delays for a moment after the
/// holder was reaped. A holder whose death never shows fails here.
fn await_stale(id: &SegmentId) {
    wait_until(&format!("{id} is listed stale"), || {
        status_in(&ls_json(), id) == "stale"
    });
}

/// How `rm --stale` may name a segment it removed.
fn mentioned(text: &str, id: &SegmentId) -> bool {
    match id {
        SegmentId::SysV(key) => {
            text.contains(&key.to_string()) || text.contains(&format!("{:x}", *key as u32))
        }
        SegmentId::Posix(name) => text.contains(name.as_str()),
    }
}

#[test]
fn rm_stale_removes_only_segments_whose_holders_died() {
    let mut cleanup = Cleanup::new();
    let mut dead = Vec::new();
    let mut live = Vec::new();
    let mut persistent = Vec::new();
    let mut foreign = Vec::new();
    let mut live_holders = Vec::new();

    for backend in ["sysv", "posix"] {
        let mut fresh = |tag: &str| match backend {
            "sysv" => SegmentId::SysV(cleanup.key()),
            _ => SegmentId::Posix(cleanup.name(tag)),
        };
        let (d, l, p, f) = (fresh("dead"), fresh("live"), fresh("kept"), fresh("raw"));

        let h = spawn_holder(
            &mut cleanup,
            &cmd(&["segment", "create"], &d, &["--size", "4096", "--hold"]),
        );
        signal(h.pid, "KILL");
        let out = finish(&mut cleanup, h.index);
        assert_eq!(
            out.status.code(),
            None,
            "the holder was killed: {}",
            show(&out)
        );
        assert!(exists(&d), "SIGKILL leaves the held segment behind");
        await_stale(&d);

        let h = spawn_holder(
            &mut cleanup,
            &cmd(&["segment", "create"], &l, &["--size", "4096", "--hold"]),
        );
        live_holders.push(h);

        create(&p, false, &["--size", "4096"]);
        create(&f, true, &["--size", "4096"]);

        dead.push(d);
        live.push(l);
        persistent.push(p);
        foreign.push(f);
    }

    let list = ls_json();
    for id in &dead {
        assert_eq!(status_in(&list, id), "stale", "{id}");
    }
    for id in &live {
        assert_eq!(status_in(&list, id), "live", "{id}");
    }
    for id in &persistent {
        assert_eq!(status_in(&list, id), "idle", "{id}");
    }
    for id in &foreign {
        assert_eq!(status_in(&list, id), "foreign", "{id}");
    }
    let kept: Vec<_> = live
        .iter()
        .chain(&persistent)
        .chain(&foreign)
        .cloned()
        .collect();
    let before: Vec<_> = kept.iter().map(bytes_of).collect();

    let out = run(&["segment", "rm", "--stale"], b"");
    let text = assert_ok(&out);
    for id in &dead {
        assert!(
            mentioned(&text, id),
            "rm --stale does not say it removed {id}: {text}"
        );
        assert_gone(id);
    }
    for (id, bytes) in kept.iter().zip(&before) {
        assert!(!mentioned(&text, id), "rm --stale claims {id}: {text}");
        assert!(exists(id), "rm --stale removed {id}");
        assert_eq!(&bytes_of(id), bytes, "rm --stale changed {id}");
    }
    let list = ls_json();
    for id in &live {
        assert_eq!(status_in(&list, id), "live", "{id} after rm --stale");
    }
    for id in &persistent {
        assert_eq!(status_in(&list, id), "idle", "{id} after rm --stale");
    }

    // A second run finds nothing of ours.
    let again = assert_ok(&run(&["segment", "rm", "--stale"], b""));
    for id in dead.iter().chain(&kept) {
        assert!(
            !mentioned(&again, id),
            "second rm --stale names {id}: {again}"
        );
    }

    // Let the live holders go; they remove their own segments.
    for (h, id) in live_holders.into_iter().zip(&live) {
        signal(h.pid, "TERM");
        let (status, _, err) = h.finish(&mut cleanup);
        assert_eq!(status.code(), Some(0), "{id}: {err}");
        assert_gone(id);
    }
    for id in persistent.iter().chain(&foreign) {
        remove(id);
    }
}
