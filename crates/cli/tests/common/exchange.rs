//! Helpers for the end-to-end tests of `shmex exchange`: an exchange under a
//! unique name or key that is destroyed when the test ends (also when it
//! fails), commands run with a deadline so that a deadlock fails the test
//! instead of hanging the suite, and exact decimal arithmetic to check the
//! binary's answers independently of its own `check`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use crate::common::{Cleanup, SegmentId, shmex, stderr, stdout};

/// How long any one command may take before the test calls it a deadlock.
/// Generous on purpose: this detects hangs, it does not measure speed.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Which kind of segment the exchange lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `--exchange NAME`, a file in /dev/shm.
    Posix,
    /// `--key K`, a System V segment.
    SysV,
}

/// Declares each named `fn(Backend)` as two tests, `posix::NAME` and
/// `sysv::NAME`, one on each backend. Needs this file included as
/// `#[macro_use] #[path = "common/exchange.rs"] mod exchange_helpers;`.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod posix {
            $( #[test] fn $name() { super::$name($crate::exchange_helpers::Backend::Posix) } )*
        }
        mod sysv {
            $( #[test] fn $name() { super::$name($crate::exchange_helpers::Backend::SysV) } )*
        }
    };
}

/// The message every command prints for an exchange that was never created.
pub const MISSING: &str = "does not exist: run `shmex exchange init` first";

/// One exchange for one test, under a name or key no other test uses.
pub struct Exchange {
    pub backend: Backend,
    /// The global flags that select this exchange.
    pub select: Vec<String>,
    pub id: SegmentId,
    /// The POSIX name or the System V key, as given on the command line.
    pub label: String,
    children: Vec<Child>,
    // Last field: dropped after `Drop::drop` ran `destroy`.
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
            backend,
            select,
            id,
            label,
            children: Vec::new(),
            cleanup,
        }
    }

    /// Names and creates an exchange from the built-in table.
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
    pub fn run(&self, sub: &[&str]) -> Output {
        self.run_in(sub, b"")
    }

    pub fn run_in(&self, sub: &[&str], stdin: &[u8]) -> Output {
        run_deadline(&mut self.cmd(sub), stdin.to_vec(), DEADLINE)
    }

    pub fn run_env(&self, sub: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd(sub);
        for (k, v) in env {
            c.env(k, v);
        }
        run_deadline(&mut c, stdin.to_vec(), DEADLINE)
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

    /// Runs each case, `(SUB…, what the error must name)`, which must be
    /// refused with `code` as [`assert_refused`] checks, leaving the
    /// exchange as it was (`before`).
    #[track_caller]
    pub fn assert_all_refused(&self, cases: &[(&[&str], &[&str])], code: i32, before: &State) {
        for (sub, needles) in cases {
            let o = self.run(sub);
            assert_refused(&o, code, needles);
            self.assert_unchanged(before, sub);
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

    /// Feeds `input` to `trade --account ACCOUNT --json`, which must exit 0;
    /// returns its answers, one JSON object per stdout line.
    #[track_caller]
    pub fn trade(&self, account: &str, input: &[u8]) -> Vec<Value> {
        let o = self.run_in(&["trade", "--account", account, "--json"], input);
        assert!(
            o.status.success(),
            "trade failed: {:?}; stderr: {}",
            o.status,
            stderr(&o)
        );
        answers(&stdout(&o))
    }

    /// Starts `SUB…` with piped stdin/stdout/stderr; the child is killed
    /// when the exchange is dropped unless the caller takes it back.
    pub fn spawn(&mut self, sub: &[&str]) -> usize {
        let child = self
            .cmd(sub)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shmex");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Keeps any child (killed when the exchange is dropped).
    pub fn adopt(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }

    /// Starts the benchmark's trader, which calls the library in a tight
    /// loop (`__exchange-worker trader`), on `account` for `millis`,
    /// depositing when short. Its report goes to `stdout`, its stderr to a
    /// pipe; kept as [`Exchange::adopt`] keeps it.
    pub fn spawn_hammer(&mut self, account: &str, millis: u64, seed: u64, stdout: Stdio) -> usize {
        let mut cmd = shmex();
        cmd.args(["__exchange-worker", "trader"])
            .args(&self.select)
            .args(["--account", account, "--deposits"])
            .args(["--millis", &millis.to_string(), "--seed", &seed.to_string()])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        self.adopt(cmd.spawn().expect("spawn worker"))
    }

    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    /// Waits for child `i` as [`finish`] does.
    #[track_caller]
    pub fn finish(&mut self, i: usize, limit: Duration, what: &str) -> ExitStatus {
        finish(&mut self.children[i], limit, what)
    }

    /// Whether the segment exists, asked of the kernel, not of shmex.
    pub fn exists(&self) -> bool {
        segment_exists(&self.id)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // `destroy` first, so anything else the exchange made goes too; the
        // Cleanup guard then removes the segment if `destroy` could not.
        if let Ok(mut child) = self
            .cmd(&["destroy"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            && wait_timeout(&mut child, Duration::from_secs(20)).is_none()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether a segment exists, asked of the kernel.
pub fn segment_exists(id: &SegmentId) -> bool {
    !matches!(shm::inspect(id), Err(shm::Error::NotFound { .. }))
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

/// Waits for a child until `limit`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    let mut nap = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(_) => return None,
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(5));
    }
}

/// Waits for a child until `limit`; one still running then is killed and
/// fails the test as a deadlock of `what`.
#[track_caller]
pub fn finish(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    wait_timeout(child, limit).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} still running after {limit:?}: deadlock? (killed)")
    })
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

/// Runs a command with `stdin`, collecting its output; a command still
/// running after `limit` is killed and fails the test as a deadlock.
#[track_caller]
pub fn run_deadline(cmd: &mut Command, stdin: Vec<u8>, limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn shmex");
    let piped = Piped::new(&mut child, stdin);
    let what = format!("{:?}", cmd.get_args().collect::<Vec<_>>());
    piped.output(finish(&mut child, limit, &what))
}

/// Runs a command with empty stdin within [`DEADLINE`].
#[track_caller]
pub fn run_bounded(cmd: &mut Command) -> Output {
    run_deadline(cmd, Vec::new(), DEADLINE)
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

/// Asserts a failure: exit status, a one-line `shmex: …` error containing
/// every needle, and nothing on stdout.
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

// ---- exact decimals ---------------------------------------------------------

/// Units of 10⁻⁶, enough for every amount (2 decimals) and rate (6).
pub const MICRO: i128 = 1_000_000;

/// Parses a decimal string as the binary prints it ("13.72", "10000.00").
#[track_caller]
pub fn micro(s: &str) -> i128 {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 6
            && frac.bytes().all(|b| b.is_ascii_digit()),
        "not a decimal the exchange prints: {s:?}"
    );
    let mut v: i128 = int.parse::<i128>().expect("integer part") * MICRO;
    let mut scale = MICRO / 10;
    for b in frac.bytes() {
        v += i128::from(b - b'0') * scale;
        scale /= 10;
    }
    v
}

/// The decimal string at `v[key]`, parsed.
#[track_caller]
pub fn micro_at(v: &Value, key: &str) -> i128 {
    match &v[key] {
        Value::String(s) => micro(s),
        other => panic!("{key} must be a decimal string, not {other} (in {v})"),
    }
}

/// Formats units of 10⁻⁶ with two decimals (they must be whole cents).
pub fn cents(v: i128) -> String {
    assert_eq!(v % (MICRO / 100), 0, "{v} is not a whole number of cents");
    let c = v / (MICRO / 100);
    format!("{}.{:02}", c / 100, c % 100)
}

/// Price of `amount` at `rate`, rounded to the cent: up for what a
/// customer pays, down for what they receive.
pub fn price(amount: i128, rate: i128, round_up: bool) -> i128 {
    let exact = amount * rate; // units of 10⁻¹²
    let cent = MICRO * MICRO / 100;
    let whole = if round_up {
        (exact + cent - 1) / cent
    } else {
        exact / cent
    };
    whole * (MICRO / 100)
}

/// The quote's rows by code: (buy, sell, stock).
#[track_caller]
pub fn rows(quote: &Value) -> BTreeMap<String, (i128, i128, i128)> {
    quote["currencies"]
        .as_array()
        .expect("quote.currencies is an array")
        .iter()
        .map(|c| {
            (
                c["code"].as_str().expect("code").to_string(),
                (
                    micro_at(c, "buy"),
                    micro_at(c, "sell"),
                    micro_at(c, "stock"),
                ),
            )
        })
        .collect()
}

/// Balances by account, then by currency code.
#[track_caller]
pub fn balances(accounts: &Value) -> BTreeMap<String, BTreeMap<String, i128>> {
    accounts
        .as_array()
        .expect("accounts --json is an array")
        .iter()
        .map(|a| {
            let name = a["name"].as_str().expect("name").to_string();
            let b = a["balances"]
                .as_object()
                .expect("balances is an object")
                .iter()
                .map(|(code, v)| {
                    (
                        code.clone(),
                        micro(
                            v.as_str()
                                .unwrap_or_else(|| panic!("{code}: {v} is not a string")),
                        ),
                    )
                })
                .collect();
            (name, b)
        })
        .collect()
}

// ---- random traffic ---------------------------------------------------------

/// The built-in table's foreign currencies.
pub const CODES: [&str; 4] = ["DOLLAR", "EURO", "STERLIN", "POUND"];

fn amount(rng: &mut impl Rng, max_cents: u64) -> String {
    let c = rng.random_range(1..=max_cents);
    // Vary the spelling the contract allows: no dot, one decimal, two.
    match rng.random_range(0..4) {
        0 if c % 100 == 0 => format!("{}", c / 100),
        1 if c % 10 == 0 => format!("{}.{}", c / 100, (c % 100) / 10),
        _ => format!("{}.{:02}", c / 100, c % 100),
    }
}

/// One random trade-loop line (with its newline): mostly buys and sells of
/// small amounts, deposits that keep the home balance alive, withdrawals,
/// and some reads. Some are refused (short balance or holding): that is
/// part of the traffic.
pub fn random_line(rng: &mut impl Rng, home: &str) -> String {
    let code = CODES[rng.random_range(0..CODES.len())];
    match rng.random_range(0..100) {
        0..=34 => format!("buy {code} {}\n", amount(rng, 2_000)),
        35..=69 => format!("sell {code} {}\n", amount(rng, 2_000)),
        70..=79 => format!("deposit {home} {}\n", amount(rng, 100_000)),
        80..=83 => format!("deposit {code} {}\n", amount(rng, 1_000)),
        84..=89 => format!("withdraw {home} {}\n", amount(rng, 20_000)),
        90..=93 => format!("withdraw {code} {}\n", amount(rng, 1_000)),
        94..=96 => "quote\n".to_string(),
        _ => "balance\n".to_string(),
    }
}

/// `n` random lines.
pub fn random_input(rng: &mut impl Rng, n: usize, home: &str) -> Vec<u8> {
    let mut s = String::with_capacity(n * 20);
    for _ in 0..n {
        s.push_str(&random_line(rng, home));
    }
    s.into_bytes()
}

/// A seed for the test's random traffic, printed so a failure can be rerun
/// with `SHMEX_TEST_SEED`.
pub fn seed() -> u64 {
    let s = std::env::var("SHMEX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("SHMEX_TEST_SEED={s}");
    s
}

// ---- reconciliation ---------------------------------------------------------

/// Money moved by successful answers, to check the final state against.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Per account, per code: net change of the account's balance.
    pub accounts: BTreeMap<String, BTreeMap<String, i128>>,
    /// Per code (home included): net change of the exchange's holding.
    pub exchange: BTreeMap<String, i128>,
    /// Sequence numbers of the mutations answered.
    pub seqs: Vec<u64>,
    pub mutations: usize,
}

impl Ledger {
    /// Applies one `trade --json` answer of `account`; checks each buy's
    /// and sell's total against its amount and rate, rounded to the
    /// exchange's favour.
    #[track_caller]
    pub fn apply(&mut self, account: &str, home: &str, a: &Value) {
        if a["ok"] != Value::Bool(true) {
            return;
        }
        let op = a["op"].as_str().expect("op").to_string();
        if !matches!(op.as_str(), "buy" | "sell" | "deposit" | "withdraw") {
            return;
        }
        assert_eq!(
            a["account"].as_str(),
            Some(account),
            "answer names its account: {a}"
        );
        let code = a["code"].as_str().expect("code").to_string();
        let amount = micro_at(a, "amount");
        self.seqs
            .push(a["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {a}")));
        self.mutations += 1;
        let acc = self.accounts.entry(account.to_string()).or_default();
        match op.as_str() {
            "buy" | "sell" => {
                let rate = micro_at(a, "rate");
                let total = micro_at(a, "total");
                let buy = op == "buy";
                assert_eq!(
                    total,
                    price(amount, rate, buy),
                    "total rounded to the exchange's favour: {a}"
                );
                let sign = if buy { 1 } else { -1 };
                *acc.entry(code.clone()).or_default() += sign * amount;
                *acc.entry(home.to_string()).or_default() -= sign * total;
                *self.exchange.entry(code).or_default() -= sign * amount;
                *self.exchange.entry(home.to_string()).or_default() += sign * total;
            }
            "deposit" => *acc.entry(code).or_default() += amount,
            _ => *acc.entry(code).or_default() -= amount,
        }
    }
}
