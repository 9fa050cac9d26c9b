//! Running `shmex` (and other programs) as child processes: every run and
//! every wait is bounded by [`PATIENCE`], and every pipe is drained so that
//! no full pipe can block a child.

use std::fmt::Display;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;

use super::{Cleanup, PATIENCE, wait_for};

/// The `shmex` binary under test: the one this build made, or the one
/// `SHMEX_TEST_BIN` names (to run the suite against another build, for
/// example an older release, and see which tests it fails).
pub fn bin() -> std::path::PathBuf {
    match std::env::var_os("SHMEX_TEST_BIN") {
        Some(path) if !path.is_empty() => path.into(),
        _ => env!("CARGO_BIN_EXE_shmex").into(),
    }
}

/// A `Command` for the `shmex` binary under test ([`bin`]).
pub fn shmex() -> Command {
    let mut c = Command::new(bin());
    c.env("XDG_STATE_HOME", super::state_home());
    c
}

/// Waits for `child` to exit, bounded by [`PATIENCE`]: one still running
/// then is killed and fails the test, as `what`.
#[track_caller]
pub fn wait_exit(child: &mut Child, what: impl Display) -> ExitStatus {
    if let Some(status) = wait_for(|| child.try_wait().expect("try_wait")) {
        return status;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what} still runs after {PATIENCE:?}: a deadlock? (killed)");
}

/// Runs `shmex ARGS` with `stdin` and returns its output.
#[track_caller]
pub fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_bounded(shmex().args(args), stdin)
}

/// Runs `shmex` with string arguments built at run time, on empty stdin.
#[track_caller]
pub fn run_args(args: &[String]) -> Output {
    run_bounded(shmex().args(args), b"")
}

/// Runs a command with `stdin`, collecting its output; one still running
/// after [`PATIENCE`] is killed and fails the test.
#[track_caller]
pub fn run_bounded(cmd: &mut Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let piped = Piped::new(&mut child, stdin.to_vec());
    let what = format!("{:?}", cmd.get_args().collect::<Vec<_>>());
    piped.output(wait_exit(&mut child, what))
}

/// A child's piped stdin written, and its stdout and stderr read, each by
/// a thread of its own, so that no full pipe can block the child.
pub struct Piped {
    writer: thread::JoinHandle<()>,
    out: thread::JoinHandle<Vec<u8>>,
    err: thread::JoinHandle<Vec<u8>>,
}

impl Piped {
    /// Takes the child's three pipes; writes `stdin`, then closes it.
    pub fn new(child: &mut Child, stdin: Vec<u8>) -> Self {
        let mut input = child.stdin.take().expect("stdin");
        Self {
            writer: thread::spawn(move || {
                let _ = input.write_all(&stdin);
            }),
            out: drain(child.stdout.take().expect("stdout")),
            err: drain(child.stderr.take().expect("stderr")),
        }
    }

    /// All the child printed, once it has ended with `status`.
    pub fn output(self, status: ExitStatus) -> Output {
        self.writer.join().expect("writer");
        Output {
            status,
            stdout: self.out.join().unwrap_or_default(),
            stderr: self.err.join().unwrap_or_default(),
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// `shmex ARGS`, started with `stdin` and piped output.
pub fn start(args: &[impl AsRef<std::ffi::OsStr>], stdin: Stdio) -> Child {
    shmex()
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shmex")
}

/// Starts `shmex ARGS` in the background with no stdin and piped output,
/// held by `cleanup`; returns its index there.
pub fn spawn_shmex(cleanup: &mut Cleanup, args: &[&str]) -> usize {
    cleanup.hold(start(args, Stdio::null()))
}

/// The output an ended child left in its pipes (those not taken already).
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

/// Waits for a background child (bounded by [`PATIENCE`]) and collects
/// what it left in its pipes.
#[track_caller]
pub fn finish(cleanup: &mut Cleanup, i: usize) -> Output {
    let child = cleanup.child(i);
    let status = wait_exit(child, format_args!("child {}", child.id()));
    output_of(child, status)
}

/// As [`finish`], for a child that must exit 0; `who` names it on failure.
#[track_caller]
pub fn finish_ok(cleanup: &mut Cleanup, i: usize, who: &str) -> Output {
    let out = finish(cleanup, i);
    assert_eq!(out.status.code(), Some(0), "{who}: {}", show(&out));
    out
}

/// Kills a background child and collects its output.
pub fn finish_after_kill(cleanup: &mut Cleanup, i: usize) -> Output {
    let child = cleanup.child(i);
    let _ = child.kill();
    let status = child.wait().expect("wait");
    output_of(child, status)
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

/// The calls in which a process waits for another process or for time.
const WAITING_CALLS: &[libc::c_long] = &[
    libc::SYS_futex,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    libc::SYS_epoll_pwait,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_select,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
];

/// Whether process `pid` is parked: asleep (state `S` in `/proc/PID/stat`)
/// inside a call that waits for another process or for time (a futex, a
/// sleep, a poll; `/proc/PID/syscall`), not blocked on a pipe or still
/// starting up. False once it has ended.
pub fn parked(pid: u32) -> bool {
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    let call = std::fs::read_to_string(dir.join("syscall")).unwrap_or_default();
    let nr = call.split_whitespace().next().and_then(|n| n.parse().ok());
    state == Some('S') && nr.is_some_and(|nr| WAITING_CALLS.contains(&nr))
}

/// Runs `shmex ARGS` and returns its output and its pid.
#[track_caller]
pub fn run_with_pid(args: &[String]) -> (Output, u32) {
    let mut child = start(args, Stdio::null());
    let pid = child.id();
    // Bounded: a command that should have been refused may instead wait
    // (a `--hold` that was accepted, say); that must fail, not hang.
    let status = wait_exit(&mut child, format_args!("`shmex {}`", args.join(" ")));
    (output_of(&mut child, status), pid)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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

/// Asserts exit status 0 and exactly `expected` on stdout.
#[track_caller]
pub fn assert_prints(out: &Output, expected: &str) {
    assert_eq!(out.status.code(), Some(0), "{}", show(out));
    assert_eq!(stdout(out), expected, "{}", show(out));
}

/// Asserts a failure: the exit status, and a one-line `shmex: …` error
/// containing every needle.
#[track_caller]
pub fn assert_refused(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status; stdout: {} stderr: {err}",
        stdout(o)
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "error must be one line: {err:?}"
    );
    assert!(
        err.starts_with("shmex: "),
        "error must start with `shmex: `: {err:?}"
    );
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
}
