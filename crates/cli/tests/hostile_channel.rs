//! A third process writes into a live channel while the real `send` and
//! `recv` run (the test maps the segment before the second end attaches,
//! and keeps the mapping after the name is gone). Each end either carries
//! on or stops with exit 1 and one line naming the channel, within 2 s of
//! the write if it was waiting; neither dies by a signal, panics, spins, or
//! prints wrong data with exit 0.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::channel::{
    RING, TAIL, assert_fails_naming, exit_within, feed_all, poke, pseudo_random, read_stdout,
    recv_and_map, send_attached, stdin_of,
};
use crate::support::process::{show, stderr, stdout};
use crate::support::{Cleanup, PATIENCE, wait_until};

/// How soon a waiting end must report a foreign write.
const WITHIN: Duration = Duration::from_secs(2);
/// File offset of the sender's park word (1 while it sleeps on it).
const SENDER_PARK: usize = TAIL + 128;

/// A wrap marker at ring offset 0, where a frame always fits, while `recv`
/// waits (alone, or with an idle sender): `recv` used to skip round the
/// ring forever at full speed, deaf to signals and `--timeout`.
#[test]
fn a_wrap_marker_at_ring_offset_0_stops_a_waiting_recv() {
    for with_sender in [false, true] {
        let mut clean = Cleanup::new();
        let name = clean.name("hostile-wrap");
        let (r, seg) = recv_and_map(&mut clean, &name, &["--timeout", "60"]);
        let s = with_sender.then(|| send_attached(&mut clean, &name, &[]));
        poke(&seg, RING, u64::MAX);
        let attacked = Instant::now();
        let out = exit_within(&mut clean, r, attacked, WITHIN, "recv");
        assert_fails_naming(&out, &name, "recv");
        assert!(stderr(&out).contains("is corrupted"), "{}", show(&out));
        assert!(out.stdout.is_empty());
        if let Some(s) = s {
            let out = exit_within(&mut clean, s, attacked, WITHIN, "send");
            assert_fails_naming(&out, &name, "send");
        }
    }
}

/// A consumer position that is not a multiple of 8, while both ends wait
/// (the sender for its input, the receiver for data): both used to die on
/// an assertion, and a panicking sender closed the stream as complete.
#[test]
fn an_unaligned_consumer_position_stops_both_waiting_ends() {
    let mut clean = Cleanup::new();
    let name = clean.name("hostile-tail4");
    let (r, seg) = recv_and_map(&mut clean, &name, &[]);
    let s = send_attached(&mut clean, &name, &[]);
    let got = Arc::new(AtomicUsize::new(0));
    let reader = read_stdout(&mut clean, r, 64, Duration::ZERO, got.clone());
    let mut stdin = stdin_of(&mut clean, s);
    std::io::Write::write_all(&mut stdin, b"hello").unwrap();
    wait_until("recv printed hello", || got.load(Ordering::Acquire) == 5);
    poke(&seg, TAIL, 4);
    let attacked = Instant::now();
    let recv = exit_within(&mut clean, r, attacked, WITHIN, "recv");
    let send = exit_within(&mut clean, s, attacked, WITHIN, "send");
    assert_fails_naming(&recv, &name, "recv");
    assert_fails_naming(&send, &name, "send");
    assert_eq!(reader.join().unwrap(), b"hello");
    drop(stdin);
}

/// The consumer position moved during a 4 MiB transfer, while the sender
/// waits for room (its receiver blocked on a full stdout): to 4, where both
/// ends used to panic, and past what was sent, where the sender overwrote
/// unread data and `recv` printed it with exit 0.
#[test]
fn a_consumer_position_moved_during_a_transfer_stops_both_ends() {
    for value in [4, 1 << 62] {
        let mut clean = Cleanup::new();
        let name = clean.name("hostile-tail-moved");
        let data = pseudo_random(4 << 20, value);
        let (r, seg) = recv_and_map(&mut clean, &name, &[]);
        let s = send_attached(&mut clean, &name, &[]);
        // The reader stops after 1 MiB until told to go on.
        let (reached, go_on) = (mpsc::channel(), mpsc::channel::<()>());
        let mut out = clean.child(r).stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut printed = Vec::new();
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                printed.extend_from_slice(&buf[..n]);
                if printed.len() >= 1 << 20 && printed.len() - n < 1 << 20 {
                    reached.0.send(()).unwrap();
                    go_on.1.recv().unwrap();
                }
            }
            printed
        });
        let feeder = feed_all(stdin_of(&mut clean, s), data.clone());
        reached.1.recv().unwrap();
        wait_until("the sender waits for room", || {
            seg.segment()
                .view::<AtomicU32>(SENDER_PARK)
                .unwrap()
                .load(Ordering::Acquire)
                == 1
        });
        poke(&seg, TAIL, value);
        let attacked = Instant::now();
        let send = exit_within(&mut clean, s, attacked, WITHIN, "send");
        go_on.0.send(()).unwrap();
        let recv = exit_within(&mut clean, r, attacked, WITHIN, "recv");
        let printed = reader.join().unwrap();
        feeder.join().unwrap();
        assert_fails_naming(&send, &name, "send");
        assert_fails_naming(&recv, &name, "recv");
        assert!(
            printed.len() < data.len(),
            "{} bytes printed",
            printed.len()
        );
        assert!(data.starts_with(&printed), "recv printed other bytes");
    }
}

/// Random words and bytes written into the header and control words of a
/// channel (every byte before the ring) at random moments while 1 MiB goes
/// through, round after round, with `--timeout` bounding any stall: no end
/// dies by a signal or panics or hangs, each exits 0 or 1 with one line,
/// and a `recv` that exits 0 printed exactly the input.
///
/// The ring's bytes are left alone: a writer of the segment can change
/// message bytes in flight, which no check short of a checksum of every
/// message could tell (see the README's threat model).
#[test]
fn random_writes_into_a_live_channel_never_crash_hang_or_lie() {
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let data = pseudo_random(1 << 20, seed);
    let (mut clean_ends, mut failed) = (0, 0);
    for round in 0..16 {
        let mut clean = Cleanup::new();
        let name = clean.name("hostile-fuzz");
        let capacity = ["4K", "64K", "256K"][rng.random_range(0..3)];
        let args = ["--timeout", "2", "--capacity", capacity];
        let (r, seg) = recv_and_map(&mut clean, &name, &args);
        let s = send_attached(&mut clean, &name, &args);
        let got = Arc::new(AtomicUsize::new(0));
        // About 4 MB/s: the transfer lasts about a quarter of a second.
        let reader = read_stdout(&mut clean, r, 4096, Duration::from_millis(1), got);
        let feeder = feed_all(stdin_of(&mut clean, s), data.clone());
        let writes: usize = rng.random_range(1..16);
        let stop = Arc::new(AtomicBool::new(false));
        let mut fuzz_rng = StdRng::seed_from_u64(rng.random());
        let fuzz_stop = stop.clone();
        let fuzzer = std::thread::spawn(move || {
            for _ in 0..writes {
                if fuzz_stop.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Duration::from_micros(fuzz_rng.random_range(0..10_000)));
                let at = fuzz_rng.random_range(0..RING);
                if fuzz_rng.random_bool(0.7) {
                    let value = match fuzz_rng.random_range(0..3) {
                        0 => fuzz_rng.random(),
                        1 => fuzz_rng.random_range(0..16),
                        _ => 1 << fuzz_rng.random_range(0..64),
                    };
                    poke(&seg, at & !7, value);
                } else {
                    seg.segment().write_at(at, &[fuzz_rng.random()]).unwrap();
                }
            }
        });
        let started = Instant::now();
        let recv = exit_within(&mut clean, r, started, PATIENCE, "recv");
        let send = exit_within(&mut clean, s, started, PATIENCE, "send");
        stop.store(true, Ordering::Release);
        fuzzer.join().unwrap();
        feeder.join().unwrap();
        let printed = reader.join().unwrap();
        for (who, out) in [("recv", &recv), ("send", &send)] {
            let err = stderr(out);
            assert!(
                !err.contains("panicked"),
                "round {round}: {who}: {}",
                show(out)
            );
            match out.status.code() {
                Some(0) => assert!(err.is_empty(), "round {round}: {who}: {}", show(out)),
                Some(1) => {
                    assert_eq!(err.trim_end().lines().count(), 1, "{who}: {}", show(out));
                    assert!(err.starts_with("shmex: "), "{who}: {}", show(out));
                }
                _ => panic!("round {round}: {who} ended badly: {}", show(out)),
            }
        }
        if recv.status.success() {
            assert!(
                printed == data,
                "round {round} (seed {seed}): recv exited 0 but printed {} bytes that differ \
                 from the {} sent; recv stdout left: {:?}",
                printed.len(),
                data.len(),
                stdout(&recv)
            );
            clean_ends += 1;
        } else {
            eprintln!(
                "round {round}: recv: {}send: {}",
                stderr(&recv),
                stderr(&send)
            );
            failed += 1;
        }
    }
    eprintln!("{clean_ends} rounds went through whole, {failed} stopped with an error");
}
