//! Helpers for the end-to-end tests of `shmex send` / `shmex recv`: ends
//! started with piped streams, a third mapping of a live channel to write
//! into (as a hostile peer would), and a bounded wait for an end's exit.

use std::io::{Read, Write};
use std::process::{ChildStdin, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::process::{finish, finish_after_kill, show, start, stderr};
use super::{Cleanup, SegmentId, exists, wait_for, wait_until};

/// File offset of a channel's consumer position (`tail`): the payload
/// starts after the 256-byte managed header.
pub const TAIL: usize = 256;
/// File offset of ring offset 0 (after the channel's 384-byte header).
pub const RING: usize = 640;

/// Whether channel `name` is there to attach to (its name is removed once
/// both ends have attached).
pub fn channel_exists(name: &str) -> bool {
    exists(&SegmentId::Posix(name.to_owned()))
}

/// Starts `shmex ARGS` with every stdio stream piped, held by `clean`;
/// returns its index there.
pub fn spawn_piped(clean: &mut Cleanup, args: &[&str]) -> usize {
    clean.hold(start(args, Stdio::piped()))
}

/// Starts `shmex recv NAME ARGS`, waits for its channel, and maps the
/// channel read-write for the test, before any sender attaches (which
/// removes the name; the mapping stays).
pub fn recv_and_map(clean: &mut Cleanup, name: &str, args: &[&str]) -> (usize, shm::Managed) {
    let mut all = vec!["recv", name];
    all.extend_from_slice(args);
    let r = spawn_piped(clean, &all);
    let id = SegmentId::Posix(name.to_owned());
    // Once its creator has written it whole: the file exists before.
    let ready = || shm::Managed::open_any(&id, shm::Access::ReadWrite, Duration::ZERO).ok();
    let seg = wait_for(ready).expect("the receiver's channel");
    (r, seg)
}

/// Starts `shmex send NAME ARGS` with piped streams and waits until both
/// ends are attached (the name is gone).
pub fn send_attached(clean: &mut Cleanup, name: &str, args: &[&str]) -> usize {
    let mut all = vec!["send", name];
    all.extend_from_slice(args);
    let s = spawn_piped(clean, &all);
    wait_until("both ends attached", || !channel_exists(name));
    s
}

/// Stores `value` at file offset `off` of a mapped segment, as one 8-byte
/// atomic store.
pub fn poke(seg: &shm::Managed, off: usize, value: u64) {
    seg.segment()
        .view::<AtomicU64>(off)
        .expect("an aligned word inside the segment")
        .store(value, Ordering::SeqCst);
}

/// Takes child `i`'s stdin.
pub fn stdin_of(clean: &mut Cleanup, i: usize) -> ChildStdin {
    clean.child(i).stdin.take().expect("piped stdin")
}

/// Reads child `i`'s stdout to its end on a thread of its own, `chunk`
/// bytes at a time with `pause` between reads (a slow reader keeps the
/// ring full); `got` counts the bytes read so far.
pub fn read_stdout(
    clean: &mut Cleanup,
    i: usize,
    chunk: usize,
    pause: Duration,
    got: Arc<AtomicUsize>,
) -> JoinHandle<Vec<u8>> {
    let mut out = clean.child(i).stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; chunk];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            all.extend_from_slice(&buf[..n]);
            got.store(all.len(), Ordering::Release);
            std::thread::sleep(pause);
        }
        all
    })
}

/// Writes `data` to `stdin` on a thread of its own, then closes it; a
/// write that fails (the child exited) ends it early.
pub fn feed_all(mut stdin: ChildStdin, data: Vec<u8>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for piece in data.chunks(64 * 1024) {
            if stdin.write_all(piece).is_err() {
                return;
            }
        }
    })
}

/// Waits for child `i` to exit, at most `limit` after `since`; one still
/// running then is killed and fails the test, as `who`. Returns what it
/// left in its pipes.
#[track_caller]
pub fn exit_within(
    clean: &mut Cleanup,
    i: usize,
    since: Instant,
    limit: Duration,
    who: &str,
) -> Output {
    let ended = wait_for(|| match clean.child(i).try_wait().expect("try_wait") {
        Some(_) => Some(true),
        None if since.elapsed() > limit => Some(false),
        None => None,
    });
    if ended != Some(true) {
        let out = finish_after_kill(clean, i);
        panic!("{who} still ran {limit:?} later (killed): {}", show(&out));
    }
    let out = finish(clean, i);
    eprintln!("{who} ended {:?} later", since.elapsed());
    out
}

/// Asserts that an end stopped as it must after a foreign write: not by a
/// signal, no panic, exit 1, and one line `shmex: …` naming channel
/// `name`.
#[track_caller]
pub fn assert_fails_naming(out: &Output, name: &str, who: &str) {
    let err = stderr(out);
    assert!(!err.contains("panicked"), "{who} panicked: {}", show(out));
    assert_eq!(out.status.code(), Some(1), "{who}: {}", show(out));
    assert_eq!(err.trim_end().lines().count(), 1, "{who}: {}", show(out));
    assert!(err.starts_with("shmex: "), "{who}: {}", show(out));
    assert!(err.contains(&format!("{name:?}")), "{who}: {}", show(out));
}

/// `len` bytes of a fixed pseudo-random sequence.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
