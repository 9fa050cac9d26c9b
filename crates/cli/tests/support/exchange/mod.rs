//! Helpers for the end-to-end tests of `shmex exchange`: an exchange under a
//! unique name or key that is destroyed when the test ends (also when it
//! fails), commands bounded so that a deadlock fails the test instead of
//! hanging the suite, exact decimal arithmetic to check the binary's answers
//! independently of its own `check` ([`money`]), and random traffic with
//! the ledger it must add up to ([`traffic`]).

pub mod money;
pub mod traffic;

use std::process::{Command, ExitStatus, Output, Stdio};

use serde_json::Value;

use super::process::{assert_refused, run_bounded, shmex, stderr, stdout, wait_exit};
use super::{Cleanup, SegmentId, exists, wait_for};

/// Which kind of segment the exchange lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `--exchange NAME`, a file in /dev/shm.
    Posix,
    /// `--key K`, a System V segment.
    SysV,
}

/// Declares each named `fn(Backend)` as two tests, `posix::NAME` and
/// `sysv::NAME`, one on each backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod posix {
            $( #[test] fn $name() { super::$name($crate::support::exchange::Backend::Posix) } )*
        }
        mod sysv {
            $( #[test] fn $name() { super::$name($crate::support::exchange::Backend::SysV) } )*
        }
    };
}
pub(crate) use on_both_backends;

/// The message every command prints for an exchange that was never created.
pub const MISSING: &str = "does not exist: run `shmex exchange init` first";

/// One exchange for one test, under a name or key no other test uses.
pub struct Exchange {
    /// The global flags that select this exchange.
    pub select: Vec<String>,
    pub id: SegmentId,
    /// The POSIX name or the System V key, as given on the command line.
    pub label: String,
    /// Removes the segment and kills the children; dropped after
    /// `Drop::drop` ran `destroy`.
    cleanup: Cleanup,
}

impl Exchange {
    /// Names a new exchange; does not create it.
    pub fn new(backend: Backend, tag: &str) -> Self {
        let mut cleanup = Cleanup::new();
        let (select, id, label) = match backend {
            Backend::Posix => {
                let name = cleanup.name(tag);
                (
                    vec!["--exchange".to_string(), name.clone()],
                    SegmentId::Posix(name.clone()),
                    name,
                )
            }
            Backend::SysV => {
                let key = cleanup.key();
                (
                    vec!["--key".to_string(), key.to_string()],
                    SegmentId::SysV(key),
                    key.to_string(),
                )
            }
        };
        Self {
            select,
            id,
            label,
            cleanup,
        }
    }

    /// Names and creates an exchange from the built-in table.
    #[track_caller]
    pub fn init(backend: Backend, tag: &str, extra: &[&str]) -> Self {
        let ex = Self::new(backend, tag);
        let mut args = vec!["init"];
        args.extend_from_slice(extra);
        ex.ok(&args);
        ex
    }

    /// `shmex exchange <select> SUB…`.
    pub fn args(&self, sub: &[&str]) -> Vec<String> {
        let mut v = vec!["exchange".to_string()];
        v.extend(self.select.iter().cloned());
        v.extend(sub.iter().map(|s| s.to_string()));
        v
    }

    pub fn cmd(&self, sub: &[&str]) -> Command {
        let mut c = shmex();
        c.args(self.args(sub));
        c
    }

    /// Runs a subcommand with empty stdin.
    #[track_caller]
    pub fn run(&self, sub: &[&str]) -> Output {
        self.run_in(sub, b"")
    }

    #[track_caller]
    pub fn run_in(&self, sub: &[&str], stdin: &[u8]) -> Output {
        run_bounded(&mut self.cmd(sub), stdin)
    }

    /// Runs a subcommand that must succeed; returns stdout.
    #[track_caller]
    pub fn ok(&self, sub: &[&str]) -> String {
        let o = self.run(sub);
        assert!(
            o.status.success(),
            "`shmex {}` failed: {:?}; stdout: {} stderr: {}",
            self.args(sub).join(" "),
            o.status,
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Runs a subcommand that must succeed and print one JSON document.
    #[track_caller]
    pub fn json(&self, sub: &[&str]) -> Value {
        let text = self.ok(sub);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("`{}` printed invalid JSON ({e}): {text:?}", sub.join(" ")))
    }

    #[track_caller]
    pub fn quote(&self) -> Value {
        self.json(&["quote", "--json"])
    }

    #[track_caller]
    pub fn accounts(&self) -> Value {
        self.json(&["accounts", "--json"])
    }

    /// The whole retained journal.
    #[track_caller]
    pub fn journal(&self) -> Vec<Value> {
        match self.json(&["journal", "--json"]) {
            Value::Array(v) => v,
            other => panic!("journal --json is not an array: {other}"),
        }
    }

    /// `check --json`, which must pass: exit 0 and `"ok": true`.
    #[track_caller]
    pub fn check(&self) -> Value {
        let o = self.run(&["check", "--json"]);
        let text = stdout(&o);
        assert!(
            o.status.success(),
            "check failed: {:?}; stdout: {text} stderr: {}",
            o.status,
            stderr(&o)
        );
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("check --json printed invalid JSON ({e}): {text:?}"));
        assert_eq!(v["ok"], Value::Bool(true), "check: {v}");
        assert_eq!(v["violations"], Value::Array(vec![]), "check: {v}");
        v
    }

    /// Everything a reader can see: quote, accounts and journal.
    #[track_caller]
    pub fn state(&self) -> State {
        State {
            quote: self.quote(),
            accounts: self.accounts(),
            journal: self.journal(),
        }
    }

    /// Runs each case, which must be refused with exit status `exit`,
    /// leaving the exchange as it was (`before`): plain, with the one-line
    /// error [`assert_refused`] checks, and with `--json`, with the
    /// failure object [`assert_failure_json`] checks.
    #[track_caller]
    pub fn assert_all_refused(&self, cases: &[Refused<'_>], exit: i32, before: &State) {
        for (sub, code, needles) in cases {
            let o = self.run(sub);
            assert_refused(&o, exit, needles);
            let json = with_json(sub);
            assert_failure_json(&self.run(&json), exit, code, needles);
            self.assert_unchanged(before, &json);
        }
    }

    /// Runs each `SUB…`, which must be a usage error (exit 2) that leaves
    /// the exchange as it was (`before`).
    #[track_caller]
    pub fn assert_all_usage_errors(&self, cases: &[&[&str]], before: &State) {
        for sub in cases {
            let o = self.run(sub);
            assert_eq!(
                o.status.code(),
                Some(2),
                "`{}`: {}",
                sub.join(" "),
                stderr(&o)
            );
            self.assert_unchanged(before, sub);
        }
    }

    /// Asserts that `SUB…`, just run, left the exchange as `before`.
    #[track_caller]
    pub fn assert_unchanged(&self, before: &State, sub: &[&str]) {
        assert_eq!(
            &self.state(),
            before,
            "`{}` changed the state",
            sub.join(" ")
        );
    }

    /// Feeds `input` to `trade --account ACCOUNT --open --json` (which opens
    /// the account first if it is new), which must exit 0; returns its
    /// answers, one JSON object per stdout line.
    #[track_caller]
    pub fn trade(&self, account: &str, input: &[u8]) -> Vec<Value> {
        let o = self.run_in(&["trade", "--account", account, "--open", "--json"], input);
        assert!(
            o.status.success(),
            "trade failed: {:?}; stderr: {}",
            o.status,
            stderr(&o)
        );
        answers(&stdout(&o))
    }

    /// Starts `SUB…` with piped stdin/stdout/stderr; the child is killed
    /// when the exchange is dropped.
    pub fn spawn(&mut self, sub: &[&str]) -> usize {
        let child = self
            .cmd(sub)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmex");
        self.cleanup.hold(child)
    }

    /// Starts the benchmark's trader, which calls the library in a tight
    /// loop (`__exchange-worker trader`), on `account` for `millis`,
    /// depositing when short. Its report goes to `stdout`, its stderr to a
    /// pipe; killed when the exchange is dropped.
    pub fn spawn_hammer(&mut self, account: &str, millis: u64, seed: u64, stdout: Stdio) -> usize {
        self.spawn_worker(account, millis, seed, stdout, &["--deposits"])
    }

    /// As [`Exchange::spawn_hammer`], with the worker's flags `extra`
    /// instead of `--deposits` (none: it never deposits, and is refused
    /// when short).
    pub fn spawn_worker(
        &mut self,
        account: &str,
        millis: u64,
        seed: u64,
        stdout: Stdio,
        extra: &[&str],
    ) -> usize {
        let mut cmd = shmex();
        cmd.args(["__exchange-worker", "trader"])
            .args(&self.select)
            .args(["--account", account])
            .args(extra)
            .args(["--millis", &millis.to_string(), "--seed", &seed.to_string()])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        self.cleanup.hold(cmd.spawn().expect("spawn worker"))
    }

    pub fn child(&mut self, i: usize) -> &mut std::process::Child {
        self.cleanup.child(i)
    }

    /// Waits for child `i` as [`wait_exit`] does.
    #[track_caller]
    pub fn finish(&mut self, i: usize, what: &str) -> ExitStatus {
        wait_exit(self.cleanup.child(i), what)
    }

    /// Whether the segment exists, asked of the kernel, not of shmex.
    pub fn exists(&self) -> bool {
        exists(&self.id)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.cleanup.kill_children();
        // `destroy` first, so anything else the exchange made goes too; the
        // Cleanup guard then removes the segment if `destroy` could not.
        if let Ok(mut child) = self
            .cmd(&["destroy", "--purge"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            && wait_for(|| match child.try_wait() {
                Ok(None) => None,
                Ok(Some(_)) | Err(_) => Some(()),
            })
            .is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a reader sees of an exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub quote: Value,
    pub accounts: Value,
    pub journal: Vec<Value>,
}

impl State {
    /// The last sequence number in the journal, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.journal.last().map(|r| r["seq"].as_u64().expect("seq"))
    }
}

/// A command that must be refused: `SUB…`, the machine code of its
/// failure, and what its message must say (at least one thing).
pub type Refused<'a> = (&'a [&'a str], &'a str, &'a [&'a str]);

/// `SUB…` with `--json` (placed before any `--`), unless it has it.
pub fn with_json<'a>(sub: &[&'a str]) -> Vec<&'a str> {
    let mut v = sub.to_vec();
    if !v.contains(&"--json") {
        v.insert(1.min(v.len()), "--json");
    }
    v
}

/// Asserts the failure of a `--json` command: exit status `exit`, one
/// `{"ok":false,"code":CODE,"error":…}` line on stdout whose message
/// says every needle (there must be one), and the same message on stderr.
#[track_caller]
pub fn assert_failure_json(o: &Output, exit: i32, code: &str, needles: &[&str]) {
    let out = stdout(o);
    let err = stderr(o);
    assert!(
        !needles.is_empty(),
        "a refusal must be checked for what it says"
    );
    assert_eq!(
        o.status.code(),
        Some(exit),
        "exit status; stdout: {out} stderr: {err}"
    );
    assert_eq!(out.lines().count(), 1, "one JSON line: {out:?}");
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("the failure is not JSON ({e}): {out:?}"));
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["code"], code, "the failure's code: {v}");
    let msg = v["error"].as_str().unwrap_or_default();
    for n in needles {
        assert!(msg.contains(n), "the failure {v} does not say {n:?}");
    }
    assert_eq!(
        err.trim_end(),
        format!("shmex: {msg}"),
        "stderr holds the same message"
    );
}

/// Parses one JSON object per line.
#[track_caller]
pub fn answers(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("answer line is not JSON ({e}): {l:?}"))
        })
        .collect()
}

/// Asserts that the journal's sequence numbers run without a gap.
#[track_caller]
pub fn assert_no_gaps(journal: &[Value], what: &str) {
    let seqs: Vec<u64> = journal
        .iter()
        .map(|r| {
            r["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: a record without seq: {r}"))
        })
        .collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "gap in {what}");
    }
}
