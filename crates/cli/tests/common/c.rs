//! Helpers for the end-to-end tests of `shmex segment` and `shmex alphabet`:
//! the C fixtures (the seed's alphabet producer and consumer, compiled with
//! `cc`), signals, bounded waits, `--hold` processes and the JSON views.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use shm::SegmentId;

use crate::common::{Cleanup, PATIENCE, assert_fails, assert_ok, shmex, stderr, stdout};

/// What the seed's C consumer prints: it stops before `z`.
pub const C_CONSUMER_OUTPUT: &str = "abcdefghijklmnopqrstuvwxy\n";
/// What `shmex alphabet consume` prints: all 26 letters.
pub const SHMEX_CONSUMER_OUTPUT: &str = "abcdefghijklmnopqrstuvwxyz\n";
pub const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// The compiled C fixtures.
#[derive(Debug)]
pub struct Fixtures {
    pub producer: PathBuf,
    pub consumer: PathBuf,
}

/// Compiles the C fixtures once per test process. The executables go to
/// cargo's scratch directory for integration tests under a name derived from
/// the source text, so parallel test processes share one build and nothing
/// is left in `/tmp`.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| Fixtures {
        producer: compile("alphabet_producer"),
        consumer: compile("alphabet_consumer"),
    })
}

fn compile(stem: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{stem}.c"));
    let text = std::fs::read(&src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-fixtures");
    std::fs::create_dir_all(&dir).expect("create the fixtures directory");
    let exe = dir.join(format!("{stem}-{:016x}", h.finish()));
    if exe.exists() {
        return exe;
    }
    // Build under a private name, then rename: another test process may be
    // compiling the same fixture right now.
    let tmp = dir.join(format!("{stem}.{}.tmp", std::process::id()));
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .expect("run cc (a C compiler is needed for these tests)");
    assert!(
        out.status.success(),
        "cc {} failed: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &exe).expect("move the compiled fixture into place");
    exe
}

/// Starts the C producer on `key` (`None`: its default, 5678); the child
/// is killed by `cleanup` if the test fails.
pub fn spawn_c_producer(cleanup: &mut Cleanup, key: Option<i32>) -> usize {
    let mut cmd = Command::new(&fixtures().producer);
    if let Some(k) = key {
        cmd.arg(k.to_string());
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the C producer");
    cleanup.hold(child)
}

/// Runs the C consumer on `key` (`None`: its default, 5678).
pub fn run_c_consumer(key: Option<i32>) -> Output {
    let mut cmd = Command::new(&fixtures().consumer);
    if let Some(k) = key {
        cmd.arg(k.to_string());
    }
    cmd.stdin(Stdio::null())
        .output()
        .expect("run the C consumer")
}

/// `shmex ARGS`, started with no stdin and piped output.
fn start(args: &[impl AsRef<std::ffi::OsStr>]) -> Child {
    shmex()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmex")
}

/// Starts `shmex ARGS` in the background with piped output.
pub fn spawn_shmex(cleanup: &mut Cleanup, args: &[&str]) -> usize {
    cleanup.hold(start(args))
}

/// Waits for `child`, bounded by [`PATIENCE`]: one still running then is
/// killed and fails the test, as `what`.
#[track_caller]
fn wait_bounded(child: &mut Child, what: impl std::fmt::Display) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still runs after {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The output an ended child left in its pipes.
fn output_of(child: &mut Child, status: ExitStatus) -> Output {
    let mut out = Vec::new();
    let mut err = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut err);
    }
    Output {
        status,
        stdout: out,
        stderr: err,
    }
}

/// Waits for a background child (bounded by [`PATIENCE`]) and collects its
/// output.
#[track_caller]
pub fn finish(cleanup: &mut Cleanup, i: usize) -> Output {
    let child = cleanup.child(i);
    let status = wait_bounded(child, format_args!("child {}", child.id()));
    output_of(child, status)
}

/// As [`finish`], for a child that must exit 0; `who` names it on failure.
#[track_caller]
pub fn finish_ok(cleanup: &mut Cleanup, i: usize, who: &str) -> Output {
    let out = finish(cleanup, i);
    assert_eq!(out.status.code(), Some(0), "{who}: {}", show(&out));
    out
}

/// Asserts exit status 0 and exactly `expected` on stdout.
#[track_caller]
pub fn assert_prints(out: &Output, expected: &str) {
    assert_eq!(out.status.code(), Some(0), "{}", show(out));
    assert_eq!(stdout(out), expected, "{}", show(out));
}

/// Whether a background child still runs.
pub fn still_running(cleanup: &mut Cleanup, i: usize) -> bool {
    cleanup.child(i).try_wait().expect("try_wait").is_none()
}

/// Sends a signal (`INT`, `TERM`, `KILL`) with the system's `kill`.
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -s {sig} {pid} failed");
}

/// Whether the segment exists (asked of the kernel through `shm::inspect`).
pub fn exists(id: &SegmentId) -> bool {
    match shm::inspect(id) {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("inspect {id}: {e}"),
    }
}

/// Whether `ipcs -m` lists `key`.
pub fn ipcs_lists(key: i32) -> bool {
    let out = Command::new("ipcs")
        .arg("-m")
        .output()
        .expect("run ipcs -m");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let hex = format!("0x{:08x}", key as u32);
    text.lines()
        .any(|l| l.split_whitespace().next() == Some(hex.as_str()))
}

/// Asserts that no trace of the segment remains: neither the kernel's
/// listing (`shm::inspect`) nor `ipcs -m` / `/dev/shm`.
#[track_caller]
pub fn assert_gone(id: &SegmentId) {
    assert!(!exists(id), "segment {id} still exists");
    match id {
        SegmentId::SysV(key) => assert!(!ipcs_lists(*key), "ipcs -m still lists {id}"),
        SegmentId::Posix(name) => assert!(
            !Path::new("/dev/shm").join(name).exists(),
            "/dev/shm/{name} still exists"
        ),
    }
}

/// The whole segment's bytes, read by attaching it read-only.
pub fn bytes_of(id: &SegmentId) -> Vec<u8> {
    let seg =
        shm::Segment::open(id, shm::Access::ReadOnly).unwrap_or_else(|e| panic!("open {id}: {e}"));
    let mut buf = vec![0u8; seg.len()];
    seg.read_at(0, &mut buf).expect("read the segment");
    buf
}

/// Whether the first 26 bytes of System V segment `key` hold the alphabet.
pub fn alphabet_written(key: i32) -> bool {
    let Ok(seg) = shm::Segment::open(&SegmentId::SysV(key), shm::Access::ReadOnly) else {
        return false;
    };
    let mut buf = [0u8; 26];
    seg.read_at(0, &mut buf).is_ok() && buf == ALPHABET
}

/// One segment of each backend, registered for removal.
pub fn both_backends(cleanup: &mut Cleanup, tag: &str) -> [SegmentId; 2] {
    [
        SegmentId::SysV(cleanup.key()),
        SegmentId::Posix(cleanup.name(tag)),
    ]
}

/// The flags that name a segment on the command line.
pub fn id_args(id: &SegmentId) -> Vec<String> {
    match id {
        SegmentId::SysV(key) => vec!["--key".into(), key.to_string()],
        SegmentId::Posix(name) => vec!["--name".into(), name.clone()],
    }
}

/// Runs `shmex` with string arguments built at run time.
pub fn run_args(args: &[String]) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::common::run(&refs, b"")
}

/// `shmex` with `pre`, then the segment's flags, then `post`.
pub fn cmd(pre: &[&str], id: &SegmentId, post: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = pre.iter().map(|s| (*s).to_owned()).collect();
    v.extend(id_args(id));
    v.extend(post.iter().map(|s| (*s).to_owned()));
    v
}

/// Owned copies of string arguments.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// `shmex segment VERB` for `id` with `post`; it must succeed. Returns its
/// output.
#[track_caller]
pub fn segment_ok(verb: &str, id: &SegmentId, post: &[&str]) -> Output {
    let out = run_args(&cmd(&["segment", verb], id, post));
    assert_ok(&out);
    out
}

/// `shmex segment create` for `id` with `post`, and `--raw` if `raw`; it
/// must succeed.
#[track_caller]
pub fn create(id: &SegmentId, raw: bool, post: &[&str]) {
    let mut post = post.to_vec();
    if raw {
        post.push("--raw");
    }
    segment_ok("create", id, &post);
}

/// `shmex segment rm` for `id`; it must succeed and leave no trace.
#[track_caller]
pub fn remove(id: &SegmentId) {
    segment_ok("rm", id, &[]);
    assert_gone(id);
}

/// Runs `shmex ARGS` and returns its output and its pid, so that a test can
/// check that the failed command created nothing anywhere.
#[track_caller]
pub fn run_tracked(args: &[String]) -> (Output, u32) {
    let mut child = start(args);
    let pid = child.id();
    // Bounded: a command that should have been refused may instead wait
    // (a `--hold` that was accepted, say); that must fail, not hang.
    let status = wait_bounded(&mut child, format_args!("`shmex {}`", args.join(" ")));
    (output_of(&mut child, status), pid)
}

/// Runs a command that must fail with `code` and `needle` (one line),
/// print nothing on stdout, and create nothing anywhere.
#[track_caller]
pub fn refused(args: &[String], code: i32, needle: &str) {
    let (out, pid) = run_tracked(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "`shmex {}`: {}",
        args.join(" "),
        show(&out)
    );
    assert_fails(&out, code, needle);
    assert!(
        stdout(&out).is_empty(),
        "`shmex {}` printed: {}",
        args.join(" "),
        show(&out)
    );
    assert_created_nothing(pid);
}

/// Asserts that no segment on the machine was created by process `pid`
/// (System V records the creator's pid; managed POSIX segments do too).
#[track_caller]
pub fn assert_created_nothing(pid: u32) {
    let all = shm::list().expect("list segments");
    let made: Vec<_> = all
        .iter()
        .filter(|s| s.creator_pid == Some(pid))
        .map(|s| s.id.to_string())
        .collect();
    assert!(
        made.is_empty(),
        "process {pid} left segments behind: {made:?}"
    );
}

/// `shmex segment inspect … --json`, parsed; panics on failure.
pub fn inspect_json(id: &SegmentId) -> Value {
    let out = run_args(&cmd(&["segment", "inspect"], id, &["--json"]));
    let text = crate::common::assert_ok(&out);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("inspect --json is not JSON ({e}): {text}"))
}

/// `shmex segment ls --json`, parsed; panics on failure.
pub fn ls_json() -> Vec<Value> {
    let out = crate::common::run(&["segment", "ls", "--json"], b"");
    let text = crate::common::assert_ok(&out);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("ls --json is not JSON ({e}): {text}"));
    v.as_array()
        .unwrap_or_else(|| panic!("ls --json is not an array: {text}"))
        .clone()
}

/// Whether a JSON entry describes segment `id`.
pub fn is_entry_of(v: &Value, id: &SegmentId) -> bool {
    match id {
        SegmentId::SysV(key) => {
            v["backend"] == "sysv" && v["key"].as_i64() == Some(i64::from(*key))
        }
        SegmentId::Posix(name) => v["backend"] == "posix" && v["name"] == name.as_str(),
    }
}

/// The `ls --json` entry of `id`, if listed.
pub fn ls_entry(id: &SegmentId) -> Option<Value> {
    ls_json().into_iter().find(|v| is_entry_of(v, id))
}

/// A `shmex segment create … --hold` process that has said it holds the
/// segment. Its stdout is drained in the background so that whatever it
/// prints when it lets go cannot fail on a closed pipe.
#[derive(Debug)]
pub struct Holder {
    pub index: usize,
    pub pid: u32,
    /// The line that said `holding`.
    pub ready_line: String,
    rest: Option<JoinHandle<String>>,
}

/// Starts `shmex ARGS` (a `segment create … --hold`) and waits for its
/// `holding` line.
pub fn spawn_holder(cleanup: &mut Cleanup, args: &[String]) -> Holder {
    let mut child = start(args);
    let pid = child.id();
    let out = child.stdout.take().expect("stdout");
    let index = cleanup.hold(child);
    let (tx, rx) = mpsc::channel();
    let rest = std::thread::spawn(move || {
        let mut reader = BufReader::new(out);
        let mut line = String::new();
        let mut sent = false;
        let mut rest = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if !sent && line.contains("holding") {
                        let _ = tx.send(line.clone());
                        sent = true;
                    } else {
                        rest.push_str(&line);
                    }
                }
            }
        }
        rest
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(ready_line) => Holder {
            index,
            pid,
            ready_line,
            rest: Some(rest),
        },
        Err(_) => {
            let out = finish_after_kill(cleanup, index);
            panic!(
                "`shmex {}` never printed a `holding` line; status {:?}, stderr: {}",
                args.join(" "),
                out.status,
                stderr(&out)
            );
        }
    }
}

fn finish_after_kill(cleanup: &mut Cleanup, i: usize) -> Output {
    let child = cleanup.child(i);
    let _ = child.kill();
    let status = child.wait().expect("wait");
    output_of(child, status)
}

impl Holder {
    /// Waits for the holder to exit; returns its status, the stdout after
    /// the `holding` line, and its stderr.
    pub fn finish(mut self, cleanup: &mut Cleanup) -> (ExitStatus, String, String) {
        let out = finish(cleanup, self.index);
        let rest = self
            .rest
            .take()
            .map(|h| h.join().expect("stdout reader"))
            .unwrap_or_default();
        (out.status, rest, stderr(&out))
    }
}

/// Formats an output for failure messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {:?}\nstderr: {:?}",
        o.status,
        stdout(o),
        stderr(o)
    )
}
