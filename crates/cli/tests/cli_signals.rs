//! SIGTERM stops `shmex bench` and `shmex demo` at once, wherever they
//! are: their child processes are killed, every segment and file they made
//! is removed, they exit with status 128 + 15 and one line; and the
//! benchmark's progress, on a stderr that is not a terminal, is plain
//! lines with no escape codes.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};

use crate::support::process::{shmex, signal, wait_exit};
use crate::support::traces::{children_of, left_by, remove_left_by, still_running};
use crate::support::{exists, wait_until};

/// A `shmex` run with its stderr in a file, to read while it runs.
struct Run {
    child: Child,
    stderr: tempfile::NamedTempFile,
    /// Its children, seen just before the signal.
    children: Vec<u32>,
}

impl Run {
    fn start(args: &[&str]) -> Run {
        let stderr = tempfile::NamedTempFile::new().expect("temp file");
        let child = shmex()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr.reopen().expect("reopen"))
            .spawn()
            .expect("spawn shmex");
        Run {
            child,
            stderr,
            children: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.stderr
            .reopen()
            .expect("reopen")
            .read_to_end(&mut bytes)
            .expect("read stderr");
        bytes
    }

    /// Sends SIGTERM once `ready` holds; asserts that the process stopped
    /// as it should, leaving nothing. Returns what it wrote on stderr.
    #[track_caller]
    fn terminate_when(mut self, what: &str, mut ready: impl FnMut(&Run) -> bool) -> String {
        let pid = self.pid();
        wait_until(what, || {
            assert!(
                self.child.try_wait().expect("try_wait").is_none(),
                "shmex ended before {what}: {}",
                String::from_utf8_lossy(&self.stderr())
            );
            ready(&self)
        });
        self.children = children_of(pid);
        signal(pid, "TERM");
        let status = wait_exit(&mut self.child, "the terminated shmex");
        let err = String::from_utf8_lossy(&self.stderr()).into_owned();
        assert_eq!(status.code(), Some(128 + 15), "{status:?}; stderr: {err}");
        assert_eq!(
            still_running(&self.children),
            Vec::<u32>::new(),
            "children left running"
        );
        assert_eq!(left_by(pid), Vec::<String>::new(), "left behind");
        assert!(
            err.lines().last().is_some_and(
                |l| l.starts_with("shmex: ") && l.ends_with("interrupted by signal 15")
            ),
            "stderr: {err}"
        );
        err
    }
}

/// Should a test fail, what the process left is removed all the same: its
/// children (those seen before the signal, and any it still has) and the
/// segments and files that carry its pid.
impl Drop for Run {
    fn drop(&mut self) {
        let mut children = children_of(self.pid());
        children.extend(&self.children);
        let _ = self.child.kill();
        let _ = self.child.wait();
        for child in still_running(&children) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &child.to_string()])
                .status();
        }
        remove_left_by(self.pid());
    }
}

/// Whether `dir` holds an entry whose name starts with `prefix`.
fn has_entry(dir: &str, prefix: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
        .unwrap_or(false)
}

#[track_caller]
fn assert_plain(err: &str) {
    assert!(!err.contains('\x1b'), "escape codes on stderr: {err:?}");
    assert!(!err.contains('\r'), "carriage returns on stderr: {err:?}");
}

#[test]
fn sigterm_stops_the_exchange_benchmark_and_removes_its_exchange() {
    let run = Run::start(&["bench", "exchange", "--quick", "--runs", "1"]);
    let prefix = format!("shmex-bench-ex-{}-", run.pid());
    let err = run.terminate_when("the benchmark has an exchange and traders", |r| {
        has_entry("/dev/shm", &prefix) && !children_of(r.pid()).is_empty()
    });
    assert_plain(&err);
    assert!(
        err.starts_with("bench exchange: run 1 of 1: 1 trader process\n"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_the_channel_benchmark_and_its_progress_is_plain() {
    let run = Run::start(&["bench", "channel", "--quick", "--runs", "1"]);
    // The second step has started: a worker process runs.
    let err = run.terminate_when("the benchmark is in its second step", |r| {
        let err = String::from_utf8_lossy(&r.stderr()).into_owned();
        err.matches("bench channel: ").count() >= 2 && !children_of(r.pid()).is_empty()
    });
    assert_plain(&err);
    for line in err.lines().filter(|l| !l.starts_with("shmex: ")) {
        assert!(line.starts_with("bench channel: "), "{err}");
    }
}

#[test]
fn sigterm_stops_the_demo_in_its_channel_part_and_removes_its_files() {
    let run = Run::start(&["demo"]);
    let file: PathBuf = std::env::temp_dir().join(format!("shmex-demo-channel-{}-b.in", run.pid()));
    run.terminate_when("the demo writes its bulk file", |_| file.exists());
}

#[test]
fn sigterm_stops_the_demo_in_its_exchange_part_and_its_traders() {
    let run = Run::start(&["demo"]);
    let exchange = shm::SegmentId::Posix(format!("shmex-demo-exchange-{}-0", run.pid()));
    run.terminate_when("the demo's traders run", |r| {
        exists(&exchange) && children_of(r.pid()).len() >= 4
    });
}
