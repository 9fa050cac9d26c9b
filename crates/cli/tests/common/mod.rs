//! Helpers shared by the end-to-end tests: run the real `shmex` binary,
//! give every test its own segment names and keys, and remove them (and kill
//! stray children) even when a test fails.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use shm::SegmentId;

/// A hang guard for the tests' waits, not a speed goal: only a broken
/// program takes this long.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `cond` until it holds; panics after [`PATIENCE`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A `Command` for the built `shmex` binary.
pub fn shmex() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shmex"))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A POSIX name no other test (or test process) uses.
pub fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("shmex-test-{tag}-{}-{n}", std::process::id())
}

/// A System V key no other test (or test process) uses: the pid and a
/// counter, in a range (0x5E00_0000..) that nothing else here uses.
pub fn unique_key() -> i32 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    0x5E00_0000 | (((std::process::id() & 0x3_FFFF) << 6) as i32) | (n & 0x3F) as i32
}

/// Removes the segments it names when dropped (also while a failing test
/// unwinds), and kills and reaps the children it holds.
#[derive(Default)]
pub struct Cleanup {
    ids: Vec<SegmentId>,
    children: Vec<Child>,
}

impl Cleanup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a POSIX name; returns it.
    pub fn name(&mut self, tag: &str) -> String {
        let name = unique_name(tag);
        self.ids.push(SegmentId::Posix(name.clone()));
        name
    }

    /// Registers a System V key; returns it.
    pub fn key(&mut self) -> i32 {
        let key = unique_key();
        self.ids.push(SegmentId::SysV(key));
        key
    }

    /// Registers any segment.
    pub fn add(&mut self, id: SegmentId) {
        self.ids.push(id);
    }

    /// Keeps a child to kill on drop; returns its index for [`Cleanup::child`].
    pub fn hold(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for id in &self.ids {
            // A System V key may hold several generations; remove until gone.
            for _ in 0..4 {
                if shm::Segment::remove(id).is_err() {
                    break;
                }
            }
        }
    }
}

/// Runs `shmex ARGS` with `stdin` and returns its output.
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_env(args, stdin, &[])
}

/// As [`run`], with extra environment variables.
pub fn run_env(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = shmex();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn shmex");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait shmex");
    let _ = writer.join();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit status and that stderr contains `needle`, with the
/// whole output in the failure message.
#[track_caller]
pub fn assert_fails(o: &Output, code: i32, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status; stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    assert!(
        stderr(o).contains(needle),
        "stderr {:?} lacks {needle:?}",
        stderr(o)
    );
    let lines = stderr(o).trim_end().lines().count();
    assert_eq!(lines, 1, "error must be one line: {:?}", stderr(o));
}

/// Asserts success, returning stdout.
#[track_caller]
pub fn assert_ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}; stdout: {} stderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}
