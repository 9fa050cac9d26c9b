//! Helpers for the end-to-end tests of `shmex segment`: segments of both
//! backends, the commands that name them, `--hold` processes, the JSON
//! views, and checks that a segment is gone or that a command created
//! nothing.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;

use serde_json::Value;

use super::process::{
    assert_ok, assert_refused, finish, finish_after_kill, run, run_args, run_with_pid, show, start,
    stderr, stdout,
};
use super::{Cleanup, PATIENCE, SegmentId, exists};

/// Whether `ipcs -m` lists `key`.
fn ipcs_lists(key: i32) -> bool {
    let out = Command::new("ipcs")
        .arg("-m")
        .output()
        .expect("run ipcs -m");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let hex = format!("0x{:08x}", key as u32);
    text.lines()
        .any(|l| l.split_whitespace().next() == Some(hex.as_str()))
}

/// Asserts that no trace of the segment remains: [`exists`] says it is
/// gone, and a System V key is not in `ipcs -m` either.
#[track_caller]
pub fn assert_gone(id: &SegmentId) {
    assert!(!exists(id), "segment {id} still exists");
    if let SegmentId::SysV(key) = id {
        assert!(!ipcs_lists(*key), "ipcs -m still lists {id}");
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

/// Runs a command that must fail with `code` and `needle` (one line),
/// print nothing on stdout, and create nothing anywhere.
#[track_caller]
pub fn refused(args: &[String], code: i32, needle: &str) {
    let (out, tracked) = run_tracked(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "`shmex {}`: {}",
        args.join(" "),
        show(&out)
    );
    assert_refused(&out, code, &[needle]);
    assert!(
        stdout(&out).is_empty(),
        "`shmex {}` printed: {}",
        args.join(" "),
        show(&out)
    );
    assert_created_nothing(tracked);
}

/// A command run by [`run_tracked`], and what it could have created.
#[derive(Debug)]
pub struct Tracked {
    pid: u32,
    args: Vec<String>,
    /// Every segment its arguments could name, and whether it existed
    /// before the command ran.
    named: Vec<(SegmentId, bool)>,
    /// The test process's own POSIX names (`shmex-test-…-PID-…`) there
    /// before the command ran.
    ours: BTreeSet<String>,
}

/// The POSIX names in `/dev/shm` that this test process hands out.
fn our_names() -> BTreeSet<String> {
    let mark = format!("-{}-", std::process::id());
    std::fs::read_dir("/dev/shm")
        .expect("read /dev/shm")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("shmex-test-") && n.contains(&mark))
        .collect()
}

/// Runs `shmex ARGS`, noting first what exists of what it could create,
/// so that [`assert_created_nothing`] can tell what it did create.
#[track_caller]
pub fn run_tracked(args: &[String]) -> (Output, Tracked) {
    // Any argument may be a name or a key the command acts on.
    let named = args
        .iter()
        .flat_map(|a| [SegmentId::posix(a).ok(), SegmentId::parse_key(a).ok()])
        .flatten()
        .map(|id| {
            let there = exists(&id);
            (id, there)
        })
        .collect();
    let ours = our_names();
    let (out, pid) = run_with_pid(args);
    let tracked = Tracked {
        pid,
        args: args.to_vec(),
        named,
        ours,
    };
    (out, tracked)
}

/// Asserts that the command created no segment, compared with what was
/// there before it ran. Tests run in parallel, so only segments it can be
/// told apart by are compared: those its arguments name (raw POSIX ones
/// included, which record no creator), this test process's own names,
/// and any segment that records the command's pid as its creator (System
/// V ones all do; managed POSIX ones too).
#[track_caller]
pub fn assert_created_nothing(t: Tracked) {
    let mut made: Vec<String> = t
        .named
        .iter()
        .filter(|(id, there)| !there && exists(id))
        .map(|(id, _)| id.to_string())
        .collect();
    made.extend(our_names().difference(&t.ours).cloned());
    made.extend(
        shm::list()
            .expect("list segments")
            .iter()
            .filter(|s| s.creator_pid == Some(t.pid))
            .map(|s| s.id.to_string()),
    );
    assert!(
        made.is_empty(),
        "`shmex {}` left segments behind: {made:?}",
        t.args.join(" ")
    );
}

/// `shmex segment inspect … --json`, parsed; panics on failure.
#[track_caller]
pub fn inspect_json(id: &SegmentId) -> Value {
    let out = run_args(&cmd(&["segment", "inspect"], id, &["--json"]));
    let text = assert_ok(&out);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("inspect --json is not JSON ({e}): {text}"))
}

/// `shmex segment ls --json`, parsed; panics on failure.
#[track_caller]
pub fn ls_json() -> Vec<Value> {
    let out = run(&["segment", "ls", "--json"], b"");
    let text = assert_ok(&out);
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
#[track_caller]
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
    let mut child = start(args, Stdio::null());
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

impl Holder {
    /// Waits for the holder to exit; returns its status, the stdout after
    /// the `holding` line, and its stderr.
    #[track_caller]
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
