//! Stale segments: an owned segment whose holders all died is listed stale
//! and removed by `remove_stale`, and nothing else is, also while other
//! processes list every segment.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shm::{Lifetime, SegmentId, Status};

use crate::support::*;

/// The segments one backend contributes to the stale test.
struct StaleCase {
    dead: SegmentId,
    live: SegmentId,
    kept: SegmentId,
    doomed: usize,
    holder: usize,
}

/// Stale detection, for several backends in one pass: an owned segment
/// whose holder was SIGKILLed is listed stale and `remove_stale` removes
/// exactly it; an owned segment a live process holds and a persistent one
/// nobody holds are listed and kept.
///
/// `remove_stale` acts on the whole machine, and nextest runs every test in
/// its own process, so the backends share one test rather than racing each
/// other's `remove_stale`.
fn stale_segments_are_found_and_removed(makers: &[Maker], observers: usize) {
    let mut g = Cleanup::new();
    let mut cases = Vec::new();
    for &make in makers {
        let (dead, live, kept) = (g.id(make), g.id(make), g.id(make));
        let doomed = g.adopt(spawn_child("hold", &dead, ""));
        wait_ready(&mut g.children[doomed]);
        let holder = g.adopt(spawn_child("hold", &live, ""));
        wait_ready(&mut g.children[holder]);
        drop(create_managed(&kept, Lifetime::Persistent));
        cases.push(StaleCase {
            dead,
            live,
            kept,
            doomed,
            holder,
        });
    }
    for c in &cases {
        // Child::kill sends SIGKILL: the holder gets no chance to clean up.
        g.children[c.doomed].kill().expect("SIGKILL");
        let status = g.children[c.doomed].wait().expect("reap");
        assert!(!status.success());
    }
    // The kernel drops a killed holder's attachment (and the lock its
    // mapping keeps open) when its memory is torn down, and a process reading
    // its `/proc/PID/maps` at that moment (any concurrent `list`) delays that
    // a little past `wait`. Bounded: a death that never shows fails.
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in &cases {
        while !shm::inspect(&c.dead).is_ok_and(|i| i.status == Status::Stale) {
            assert!(Instant::now() < deadline, "{} never became stale", c.dead);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // Observers: threads listing every segment without pause, each listing
    // attaching to every System V segment for a moment to read its header.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchers: Vec<_> = (0..observers)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = shm::list();
                }
            })
        })
        .collect();

    let all = shm::list().expect("list");
    let find = |id: &SegmentId| {
        all.iter()
            .find(|i| &i.id == id)
            .unwrap_or_else(|| panic!("{id} is not listed"))
    };
    for c in &cases {
        let dead = find(&c.dead);
        assert_eq!(dead.status, Status::Stale, "{}", c.dead);
        assert_eq!(dead.lifetime, Some(Lifetime::Owned));
        assert_eq!(dead.creator_pid, Some(g.children[c.doomed].id()));
        assert_eq!(dead.creator_alive, Some(false));
        let live = find(&c.live);
        assert_eq!(live.status, Status::Live, "{}", c.live);
        assert_eq!(live.creator_pid, Some(g.children[c.holder].id()));
        assert_eq!(live.creator_alive, Some(true));
        // Persistent, and nobody attached.
        assert_eq!(find(&c.kept).status, Status::Idle, "{}", c.kept);
    }

    let removed = shm::remove_stale().expect("remove_stale");
    assert!(
        removed.iter().all(|i| i.status == Status::Stale),
        "removed something not stale"
    );
    for c in &cases {
        let mine: Vec<&SegmentId> = removed
            .iter()
            .map(|i| &i.id)
            .filter(|id| [&c.dead, &c.live, &c.kept].contains(id))
            .collect();
        assert_eq!(mine, [&c.dead], "removed exactly the stale one");
        assert!(shm::inspect(&c.dead).unwrap_err().is_not_found());
        assert_eq!(shm::inspect(&c.live).expect("kept").status, Status::Live);
        open_payload(&c.live, Duration::ZERO).expect("live segment still opens");
        assert_eq!(shm::inspect(&c.kept).expect("kept").status, Status::Idle);
        open_payload(&c.kept, Duration::ZERO).expect("persistent segment still opens");
    }

    stop.store(true, Ordering::Relaxed);
    for w in watchers {
        w.join().expect("observer");
    }

    // The live holders end in order and remove their own segments.
    for c in &cases {
        drop(g.children[c.holder].stdin.take());
        let status = g.children[c.holder].wait().expect("holder exits");
        assert!(status.success(), "holder failed: {status:?}");
        assert!(shm::inspect(&c.live).unwrap_err().is_not_found());
    }
}

/// Once alone, then again while other threads list every segment without
/// pause: their brief attachments (System V counts each one) must not make
/// a stale segment look held, nor a held one stale. One test, not two, so
/// that no two `remove_stale` calls race under `cargo test` either (it runs
/// the tests of a binary as threads of one process).
#[test]
fn stale_segments_on_both_backends() {
    stale_segments_are_found_and_removed(&[sysv_id, posix_id], 0);
    stale_segments_are_found_and_removed(&[sysv_id, posix_id], 2);
}
