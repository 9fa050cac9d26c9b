//! `shmex send` / `shmex recv` end to end: real processes on real segments.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::channel::pseudo_random;
use crate::support::process::{
    assert_ok, assert_refused, parked, run, shmex, signal, start, wait_exit,
};
use crate::support::{Cleanup, SegmentId, exists, shm_file, wait_until};

/// Whether channel `name` is there to attach to (its name is unlinked
/// once both sides have attached).
fn channel_exists(name: &str) -> bool {
    exists(&SegmentId::Posix(name.to_owned()))
}

/// Starts `shmex ARGS` with every stdio stream piped, held by `clean`
/// (killed and reaped when it drops); returns its index there.
fn spawn_piped(clean: &mut Cleanup, args: &[&str]) -> usize {
    clean.hold(start(args, Stdio::piped()))
}

/// Writes `data` to child `i`'s stdin.
fn feed(clean: &mut Cleanup, i: usize, data: &[u8]) {
    clean
        .child(i)
        .stdin
        .as_mut()
        .unwrap()
        .write_all(data)
        .unwrap();
}

/// Fills `buf` from child `i`'s stdout.
fn take(clean: &mut Cleanup, i: usize, buf: &mut [u8]) {
    clean
        .child(i)
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// A side whose peer was SIGKILLed at `killed` must have seen it and exited
/// within a second: a parked side looks at its peer every 100 ms, so this
/// leaves a wide margin for a loaded machine.
#[track_caller]
fn assert_within_a_second(killed: Instant, who: &str) {
    let took = killed.elapsed();
    eprintln!("{who} reported its peer's death {took:?} after the SIGKILL");
    assert!(
        took < Duration::from_secs(1),
        "{who} took {took:?} to report its peer's death; the bound is 1 s"
    );
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut s).unwrap();
    }
    s
}

#[test]
fn a_file_goes_through_whole_with_either_side_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(6 << 20, 42);
    let input = dir.path().join("f");
    std::fs::write(&input, &data).unwrap();
    for sender_first in [true, false] {
        let mut clean = Cleanup::new();
        let name = clean.name("cmp");
        let output = dir.path().join(format!("g-{sender_first}"));
        let send = || {
            shmex()
                .args(["send", &name, "--capacity", "64K"])
                .stdin(std::fs::File::open(&input).unwrap())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let recv = || {
            shmex()
                .args(["recv", &name])
                .stdout(std::fs::File::create(&output).unwrap())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (s, r) = if sender_first {
            let s = clean.hold(send());
            wait_until("the sender's channel", || channel_exists(&name));
            (s, clean.hold(recv()))
        } else {
            let r = clean.hold(recv());
            wait_until("the receiver's channel", || channel_exists(&name));
            (clean.hold(send()), r)
        };
        let st = wait_exit(clean.child(s), "send");
        assert!(st.success(), "send: {st:?} {}", stderr_of(clean.child(s)));
        let st = wait_exit(clean.child(r), "recv");
        assert!(st.success(), "recv: {st:?} {}", stderr_of(clean.child(r)));
        let got = std::fs::read(&output).unwrap();
        assert!(
            got == data,
            "output differs ({} bytes of {})",
            got.len(),
            data.len()
        );
        assert!(!channel_exists(&name), "the channel is gone after the pair");
    }
}

#[test]
fn empty_input_is_an_empty_stream() {
    let mut clean = Cleanup::new();
    let name = clean.name("empty");
    let r = spawn_piped(&mut clean, &["recv", &name]);
    wait_until("the channel", || channel_exists(&name));
    let out = run(&["send", &name], b"");
    assert_ok(&out);
    let st = wait_exit(clean.child(r), "recv");
    assert!(st.success());
    let mut got = Vec::new();
    clean
        .child(r)
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(got.is_empty());
}

/// A side blocked in the channel whose peer is SIGKILLed reports the peer's
/// death instead of waiting forever.
#[test]
fn sigkill_of_the_sender_is_peer_gone_for_the_receiver() {
    let mut clean = Cleanup::new();
    let name = clean.name("kill-tx");
    let r = spawn_piped(&mut clean, &["recv", &name]);
    wait_until("the channel", || channel_exists(&name));
    // The sender attaches, sends a little and then waits on its open stdin.
    let s = spawn_piped(&mut clean, &["send", &name]);
    feed(&mut clean, s, b"before the crash");
    let mut got = [0u8; 16];
    take(&mut clean, r, &mut got);
    assert_eq!(&got, b"before the crash");
    assert!(!channel_exists(&name), "both attached: the name is gone");
    let killed = Instant::now();
    clean.child(s).kill().unwrap();
    let st = wait_exit(clean.child(r), "recv after its sender's SIGKILL");
    assert_within_a_second(killed, "recv");
    assert_eq!(st.code(), Some(1));
    let err = stderr_of(clean.child(r));
    assert!(err.contains("peer gone: the sender of channel"), "{err}");
    assert!(err.contains("died before closing it"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn sigkill_of_the_receiver_is_peer_gone_for_the_sender() {
    let mut clean = Cleanup::new();
    let name = clean.name("kill-rx");
    // The receiver's stdout is a pipe nobody reads: once it fills, the
    // receiver blocks, the small ring fills, and the sender blocks too.
    let r = spawn_piped(&mut clean, &["recv", &name]);
    wait_until("the channel", || channel_exists(&name));
    let s = clean.hold(
        shmex()
            .args(["send", &name, "--capacity", "4K"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = clean.child(s).stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        // Ends when the sender exits and the pipe breaks.
        while stdin.write_all(&chunk).is_ok() {}
    });
    let pid = clean.child(s).id();
    wait_until("the sender parks on the full ring, or has ended", || {
        parked(pid) || clean.child(s).try_wait().unwrap().is_some()
    });
    assert!(
        clean.child(s).try_wait().unwrap().is_none(),
        "the sender is blocked, not done"
    );
    let killed = Instant::now();
    clean.child(r).kill().unwrap();
    let st = wait_exit(clean.child(s), "send after its receiver's SIGKILL");
    assert_within_a_second(killed, "send");
    assert_eq!(st.code(), Some(1));
    let err = stderr_of(clean.child(s));
    assert!(err.contains("peer gone: the receiver of channel"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    feeder.join().unwrap();
}

#[test]
fn a_sigkill_before_the_peer_came_leaves_a_stale_segment() {
    let mut clean = Cleanup::new();
    let name = clean.name("stale");
    let s = clean.hold(
        shmex()
            .args(["send", &name])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let id = SegmentId::Posix(name.clone());
    let status = || shm::inspect(&id).map(|i| i.status).ok();
    // Live, not merely there: a sender killed while it still writes the
    // header leaves a segment that is not yet a channel.
    wait_until("the sender waits on its channel", || {
        status() == Some(shm::Status::Live)
    });
    clean.child(s).kill().unwrap();
    clean.child(s).wait().unwrap();
    // The kernel drops the dead sender's mapping, and with it the lock that
    // says it is alive, when its memory is torn down; a concurrent reader of
    // its `/proc/PID/maps` can delay that a moment past `wait`.
    wait_until("the dead sender's channel to be stale", || {
        status() == Some(shm::Status::Stale)
    });
    // A new sender replaces the dead one's channel, and it works.
    let old_inode = std::fs::metadata(shm_file(&name)).unwrap().ino();
    let s2 = spawn_piped(&mut clean, &["send", &name]);
    wait_until("the new channel", || {
        std::fs::metadata(shm_file(&name)).is_ok_and(|m| m.ino() != old_inode)
    });
    let mut stdin = clean.child(s2).stdin.take().unwrap();
    stdin.write_all(b"fresh").unwrap();
    drop(stdin);
    let out = run(&["recv", &name, "--timeout", "10"], b"");
    assert_eq!(assert_ok(&out), "fresh");
    assert!(wait_exit(clean.child(s2), "send").success());
    assert!(!channel_exists(&name));
}

#[test]
fn ctrl_c_of_a_lone_end_removes_its_channel() {
    for cmd in ["send", "recv"] {
        let mut clean = Cleanup::new();
        let name = clean.name("int-lone");
        let c = clean.hold(
            shmex()
                .args([cmd, &name])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        wait_until("the channel", || channel_exists(&name));
        signal(clean.child(c).id(), "INT");
        let st = wait_exit(clean.child(c), cmd);
        assert_eq!(st.code(), Some(130), "{cmd}");
        assert!(stderr_of(clean.child(c)).contains("interrupted by signal 2"));
        assert!(!channel_exists(&name), "{cmd} left its channel");
    }
}

#[test]
fn ctrl_c_of_a_running_pair_leaves_nothing() {
    for sig in ["INT", "TERM"] {
        let mut clean = Cleanup::new();
        let name = clean.name("int-pair");
        let r = spawn_piped(&mut clean, &["recv", &name]);
        wait_until("the channel", || channel_exists(&name));
        let s = spawn_piped(&mut clean, &["send", &name]);
        feed(&mut clean, s, b"x");
        let mut one = [0u8; 1];
        take(&mut clean, r, &mut one);
        // As a terminal's Ctrl-C does: both get the signal.
        signal(clean.child(s).id(), sig);
        signal(clean.child(r).id(), sig);
        let code = if sig == "INT" { 130 } else { 143 };
        assert_eq!(wait_exit(clean.child(s), "send").code(), Some(code));
        let st = wait_exit(clean.child(r), "recv");
        assert!(matches!(st.code(), Some(1 | 130 | 143)), "{st:?}");
        assert!(!channel_exists(&name));
    }
    let leftovers: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("shmex-test-int-pair-{}-", std::process::id())))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_interrupted_sender_is_not_a_clean_end_of_stream() {
    let mut clean = Cleanup::new();
    let name = clean.name("abort");
    let r = spawn_piped(&mut clean, &["recv", &name]);
    wait_until("the channel", || channel_exists(&name));
    let s = spawn_piped(&mut clean, &["send", &name]);
    feed(&mut clean, s, b"half");
    let mut got = [0u8; 4];
    take(&mut clean, r, &mut got);
    signal(clean.child(s).id(), "INT");
    assert_eq!(wait_exit(clean.child(s), "send").code(), Some(130));
    assert_eq!(wait_exit(clean.child(r), "recv").code(), Some(1));
    let err = stderr_of(clean.child(r));
    assert!(err.contains("stopped before the end of its input"), "{err}");
}

#[test]
fn a_closed_stdout_ends_recv_cleanly() {
    let mut clean = Cleanup::new();
    let name = clean.name("head");
    let r = spawn_piped(&mut clean, &["recv", &name]);
    wait_until("the channel", || channel_exists(&name));
    let s = spawn_piped(&mut clean, &["send", &name]);
    let mut stdin = clean.child(s).stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![1u8; 64 * 1024];
        while stdin.write_all(&chunk).is_ok() {}
    });
    // Like `| head -c 10`: read a little, then close the pipe.
    let mut out = clean.child(r).stdout.take().unwrap();
    let mut ten = [0u8; 10];
    out.read_exact(&mut ten).unwrap();
    drop(out);
    let st = wait_exit(clean.child(r), "recv");
    assert!(st.success(), "recv: {st:?} {}", stderr_of(clean.child(r)));
    let st = wait_exit(clean.child(s), "send");
    assert_eq!(st.code(), Some(1));
    let err = stderr_of(clean.child(s));
    assert!(
        err.contains("the receiver of channel") && err.contains("has closed it"),
        "{err}"
    );
    feeder.join().unwrap();
    assert!(!channel_exists(&name));
}

#[test]
fn recv_times_out_and_removes_its_channel() {
    let mut clean = Cleanup::new();
    let name = clean.name("timeout");
    let out = run(&["recv", &name, "--timeout", "0.2"], b"");
    assert_refused(
        &out,
        1,
        &["timed out after 0.2 s waiting for a message on channel"],
    );
    assert!(!channel_exists(&name));
}

#[test]
fn a_second_receiver_is_refused() {
    let mut clean = Cleanup::new();
    let name = clean.name("busy");
    let r = clean.hold(
        shmex()
            .args(["recv", &name])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the channel", || channel_exists(&name));
    let out = run(&["recv", &name, "--timeout", "1"], b"");
    assert_refused(&out, 1, &["already has a receiver"]);
    assert!(
        channel_exists(&name),
        "the first receiver's channel is untouched"
    );
    let _ = r;
}

#[test]
fn bad_input_is_refused_and_creates_nothing() {
    let mut clean = Cleanup::new();
    let name = clean.name("bad");
    for (args, needle) in [
        (
            vec!["send", name.as_str(), "--capacity", "0"],
            "invalid capacity \"0\"",
        ),
        (
            vec!["send", name.as_str(), "--capacity", "lots"],
            "invalid size \"lots\"",
        ),
        (
            vec!["recv", name.as_str(), "--timeout", "-1"],
            "invalid timeout \"-1\"",
        ),
        (
            vec!["send", name.as_str(), "--mode", "999"],
            "invalid mode \"999\"",
        ),
        (vec!["recv", "a/b"], "invalid segment name \"a/b\""),
        (vec!["send", ""], "invalid segment name \"\""),
    ] {
        let out = run(&args, b"data");
        assert_refused(&out, 2, &[needle]);
        assert!(!channel_exists(&name), "{args:?} created something");
    }
}

#[test]
fn a_foreign_segment_by_that_name_is_refused_and_kept() {
    let mut clean = Cleanup::new();
    let name = clean.name("foreign");
    let seg = shm::Segment::create(&SegmentId::Posix(name.clone()), 4096, 0o600).unwrap();
    seg.write_at(0, b"someone else's").unwrap();
    let out = run(&["send", &name], b"data");
    assert_refused(&out, 1, &["is not a shmex segment"]);
    let mut b = [0u8; 14];
    seg.read_at(0, &mut b).unwrap();
    assert_eq!(&b, b"someone else's");
}
