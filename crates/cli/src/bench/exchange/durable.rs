//! The durable rows: the machine's own `fdatasync`, measured in the same
//! run, and shmex with its journal on disk, where every answer waits for
//! its record to be `fdatasync`ed: one trader answered line by line, 16 of
//! them at once (with the group commit's records per `fdatasync`), and the
//! trade loop with many lines piped in.
//!
//! Everything lives in one directory for the run ([`BenchDir`]), on the
//! file system the journals use by default (`$XDG_STATE_HOME/shmex`, else
//! `~/.local/state/shmex`), or under `--dir`; it is removed however the run
//! ends. Every `shmex` started here has `XDG_STATE_HOME` inside it, so no
//! journal lands anywhere else.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use exchange::Exchange;
use hdrhistogram::Histogram;
use shm::SegmentId;

use super::book::{Book, Trade};
use crate::support::exe::{self, Process};
use crate::support::scratch::{Guard, unique_name};

/// A directory for one benchmark, removed (with whatever the run left in
/// it, and the parents it had to create, if empty) when dropped.
#[derive(Debug)]
pub struct BenchDir {
    pub path: PathBuf,
    /// Parents created for it, innermost first.
    made: Vec<PathBuf>,
}

impl BenchDir {
    /// A fresh directory under `base`, or under the journals' default
    /// place when `base` is `None`.
    pub fn new(base: Option<&Path>) -> anyhow::Result<BenchDir> {
        let base = match base {
            // Absolute, as a journal's directory is recorded.
            Some(b) => {
                std::path::absolute(b).with_context(|| format!("cannot resolve {}", b.display()))?
            }
            None => {
                let one = SegmentId::posix("x")?;
                let xdg = std::env::var_os("XDG_STATE_HOME");
                let home = std::env::var_os("HOME");
                let d = exchange::disk::default_dir(&one, xdg.as_deref(), home.as_deref())?;
                d.parent()
                    .map(Path::to_path_buf)
                    .context("no state directory")?
            }
        };
        let mut made = Vec::new();
        let mut p = base.as_path();
        while !p.exists() {
            made.push(p.to_path_buf());
            match p.parent() {
                Some(up) => p = up,
                None => break,
            }
        }
        std::fs::create_dir_all(&base)
            .with_context(|| format!("cannot create {}", base.display()))?;
        let path = base.join(format!(".{}", unique_name("bench")));
        let dir = BenchDir { path, made };
        {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir.path)
                .with_context(|| format!("cannot create {}", dir.path.display()))?;
        }
        Ok(dir)
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        for p in &self.made {
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// p50 and p99 in ns of a histogram.
pub fn p50_p99(h: &Histogram<u64>) -> (f64, f64) {
    (
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
    )
}

/// A histogram of nanoseconds, 1 ns to 1 min.
pub fn ns_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

/// `n` appends of a small record (the size of a journal record) to a file
/// in `dir`, each followed by `fdatasync`: the latency of each.
pub fn fdatasync_run(dir: &Path, n: usize) -> anyhow::Result<Histogram<u64>> {
    let path = dir.join("fdatasync.probe");
    let mut f = File::options()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let record = [0x5au8; 96];
    let mut h = ns_histogram()?;
    for _ in 0..n {
        let t = Instant::now();
        f.write_all(&record)?;
        f.sync_data()?;
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok(h)
}

/// Whether this `shmex` keeps a journal on disk: `exchange init` takes
/// `--no-journal` (and so `--journal DIR`).
pub fn journal_supported() -> anyhow::Result<bool> {
    let o = exe::output(
        exe::command()?
            .args(["exchange", "init", "--help"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    Ok(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("--no-journal"))
}

/// A durable exchange for one measurement, made with `shmex exchange
/// init --journal`: removed with its journal when dropped.
#[derive(Debug)]
pub struct Durable {
    pub name: String,
    state: OsString,
    _guard: Guard,
}

impl Durable {
    /// A fresh exchange with `book`'s table and its journal in `dir`.
    pub fn new(dir: &Path, book: &Book) -> anyhow::Result<Durable> {
        let name = unique_name("bench-dx");
        let here = dir.join(&name);
        std::fs::create_dir(&here)?;
        let table = here.join("table.toml");
        std::fs::write(&table, book.toml())?;
        let d = Durable {
            _guard: Guard::segment(SegmentId::posix(&name)?),
            name,
            state: here.join("state").into_os_string(),
        };
        let journal = here.join("journal");
        let mut cmd = d.shmex()?;
        cmd.arg("init")
            .arg("--table")
            .arg(&table)
            .args(["--accounts", "64", "--journal"])
            .arg(&journal);
        let o = exe::output(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )?;
        if !o.status.success() {
            bail!(
                "exchange init --journal failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(d)
    }

    /// `shmex exchange --exchange NAME`, its state home in the bench's
    /// directory.
    fn shmex(&self) -> anyhow::Result<Command> {
        let mut cmd = exe::command()?;
        cmd.env("XDG_STATE_HOME", &self.state)
            .args(["exchange", "--exchange", &self.name]);
        Ok(cmd)
    }

    /// The trade loop of `account`, opened and given the rest of
    /// [`Book::opening`].
    pub fn trade_loop(&self, account: &str, book: &Book) -> anyhow::Result<TradeLoop> {
        let mut cmd = self.shmex()?;
        cmd.args(["trade", "--account", account, "--open"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut p = Process::spawn(&mut cmd).context("cannot start the trade loop")?;
        let stdin = p.child().stdin.take().context("no stdin")?;
        let stdout = BufReader::new(p.child().stdout.take().context("no stdout")?);
        let mut t = TradeLoop {
            p,
            stdin: Some(stdin),
            stdout,
            answer: String::new(),
        };
        for line in book.funding_lines().lines() {
            if !t.ask(&format!("{line}\n"))? {
                bail!("the trade loop refused {line:?}: {}", t.answer.trim());
            }
        }
        Ok(t)
    }

    /// Lines per second through one trade loop fed `lines` random trades
    /// from a file, answers to /dev/null.
    pub fn lines_run(&self, dir: &Path, book: &Book, lines: usize) -> anyhow::Result<f64> {
        let path = dir.join(format!("{}.input", self.name));
        let mut text = String::from("quote\n");
        text.push_str(&book.funding_lines());
        let (mut mine, mut hold) = (book.opening.clone(), book.holding.clone());
        for t in book.trades(99).take(lines) {
            book.line(t, &mut text);
            let _ = book.apply(t, &mut mine, &mut hold);
        }
        std::fs::write(&path, &text).context("cannot write the trade loop's input")?;
        let total = text.lines().count();
        drop(text);
        let mut cmd = self.shmex()?;
        cmd.args(["trade", "--account", "loop", "--open"])
            .stdin(File::open(&path)?)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let o = exe::output(&mut cmd).context("cannot run the trade loop")?;
        let secs = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&path);
        if !o.status.success() {
            bail!(
                "the durable trade loop failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        let done = self.check("the durable trade loop", &[("loop".into(), mine)])?;
        if done < lines as u64 * 9 / 10 {
            bail!("the durable trade loop did only {done} of {lines} operations");
        }
        Ok(total as f64 / secs)
    }

    /// The books balance, and each of `accounts` holds what its trades
    /// give; returns the operations done so far.
    pub fn check(&self, what: &str, accounts: &[(String, Vec<i64>)]) -> anyhow::Result<u64> {
        let ex = Exchange::open(&SegmentId::posix(&self.name)?)?;
        let e = ex.engine();
        let violations = e.check()?;
        if !violations.is_empty() {
            bail!("check failed after {what}: {}", violations.join("; "));
        }
        for (name, want) in accounts {
            let a = e
                .account(name)?
                .with_context(|| format!("account {name} is missing after {what}"))?;
            let got = e.balances(a)?;
            if got != *want {
                bail!("after {what}, {name} holds {got:?}, but its trades give {want:?}");
            }
        }
        Ok(e.info().next_seq - 1)
    }

    /// The group commit's counters, `(flushes, records durable)`, read from
    /// the exchange's head; `None` if it cannot be opened. Their changes
    /// over a run give the mean records per `fdatasync`.
    pub fn flush_counters(&self) -> Option<(u64, u64)> {
        let ex = Exchange::open(&SegmentId::posix(&self.name).ok()?).ok()?;
        let e = ex.engine();
        Some((e.flushes(), e.durable_seq()))
    }
}

/// One account's balances, replayed from the trades shmex acknowledged.
struct Replay {
    balance: Vec<i64>,
    /// The exchange's holdings as this account alone would move them (the
    /// stock and till are so large that no trade is refused for them).
    holding: Vec<i64>,
}

impl Replay {
    fn new(book: &Book) -> Replay {
        Replay {
            balance: book.opening.clone(),
            holding: book.holding.clone(),
        }
    }

    /// Applies a trade shmex did; fails if the books would refuse it.
    fn apply(&mut self, book: &Book, t: Trade) -> anyhow::Result<()> {
        book.apply(t, &mut self.balance, &mut self.holding)
            .map(drop)
            .map_err(|_| anyhow::anyhow!("shmex did a trade the books refuse: {t:?}"))
    }
}

/// A `shmex exchange trade` process answered line by line through a pair
/// of pipes.
#[derive(Debug)]
pub struct TradeLoop {
    p: Process,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    answer: String,
}

impl TradeLoop {
    /// Writes `line` (with its newline) and reads its answer; whether it
    /// was done (not refused).
    pub fn ask(&mut self, line: &str) -> anyhow::Result<bool> {
        let stdin = self.stdin.as_mut().context("the trade loop is closed")?;
        stdin
            .write_all(line.as_bytes())
            .context("the trade loop stopped reading")?;
        self.answer.clear();
        if self.stdout.read_line(&mut self.answer)? == 0 {
            bail!("the trade loop ended early: {}", self.stderr());
        }
        Ok(!self.answer.starts_with("error"))
    }

    fn stderr(&mut self) -> String {
        let _ = self.p.wait();
        let mut s = String::new();
        if let Some(mut e) = self.p.child().stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s.trim().to_owned()
    }

    /// Ends the loop (end of input); fails unless it exits with success.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.stdin = None;
        let status = self.p.wait()?;
        if !status.success() {
            bail!("the trade loop failed ({status}): {}", self.stderr());
        }
        Ok(())
    }
}

/// One trade loop, one line per answer, for `dur`.
pub struct AckRun {
    pub per_sec: f64,
    pub ack: Histogram<u64>,
}

/// Acknowledged operations per second and the latency of each (line
/// written to answer read) of one trader answered line by line.
pub fn one_trader(dir: &Path, book: &Book, dur: Duration) -> anyhow::Result<AckRun> {
    let d = Durable::new(dir, book)?;
    let mut lp = d.trade_loop("trader-0", book)?;
    let mut ack = ns_histogram()?;
    let mut line = String::new();
    let mut trades = book.trades(1);
    let mut ops = 0u64;
    let mut mine = Replay::new(book);
    let start = Instant::now();
    while start.elapsed() < dur {
        line.clear();
        let x = trades.next().unwrap_or_else(|| unreachable!());
        book.line(x, &mut line);
        let t = Instant::now();
        let done = lp.ask(&line)?;
        ack.saturating_record(t.elapsed().as_nanos() as u64);
        if done {
            mine.apply(book, x)?;
            ops += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    lp.finish()?;
    let recorded = d.check(
        "the one-trader durable run",
        &[("trader-0".into(), mine.balance)],
    )?;
    // Each account's open and funding, then every answered trade.
    if recorded < ops + 1 + book.funding_lines().lines().count() as u64 {
        bail!("the exchange recorded {recorded} operations, fewer than were acknowledged");
    }
    Ok(AckRun {
        per_sec: ops as f64 / secs,
        ack,
    })
}

/// What `traders` trade loops at once measured: acknowledged operations
/// per second, and the mean records per `fdatasync` if shown.
pub struct GroupRun {
    pub per_sec: f64,
    pub per_flush: Option<f64>,
}

/// `traders` trade loops at once, each answered line by line, for `dur`.
pub fn many_traders(
    dir: &Path,
    book: &Book,
    traders: usize,
    dur: Duration,
) -> anyhow::Result<GroupRun> {
    let d = Durable::new(dir, book)?;
    let mut loops = Vec::with_capacity(traders);
    for i in 0..traders {
        loops.push(d.trade_loop(&format!("trader-{i}"), book)?);
    }
    let before = d.flush_counters();
    let barrier = Barrier::new(traders);
    let results: Vec<anyhow::Result<(u64, f64, Vec<i64>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = loops
            .iter_mut()
            .enumerate()
            .map(|(i, lp)| {
                let barrier = &barrier;
                s.spawn(move || -> anyhow::Result<(u64, f64, Vec<i64>)> {
                    let mut trades = book.trades(1 + i as u64);
                    let mut line = String::new();
                    let mut ops = 0u64;
                    let mut mine = Replay::new(book);
                    barrier.wait();
                    let start = Instant::now();
                    while start.elapsed() < dur {
                        line.clear();
                        let x = trades.next().unwrap_or_else(|| unreachable!());
                        book.line(x, &mut line);
                        if lp.ask(&line)? {
                            mine.apply(book, x)?;
                            ops += 1;
                        }
                    }
                    Ok((ops, start.elapsed().as_secs_f64(), mine.balance))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a driver thread panicked")))
            })
            .collect()
    });
    let after = d.flush_counters();
    let (mut ops, mut secs) = (0u64, 0f64);
    let mut accounts = Vec::with_capacity(traders);
    for (i, r) in results.into_iter().enumerate() {
        let (o, s, balance) = r?;
        ops += o;
        secs = secs.max(s);
        accounts.push((format!("trader-{i}"), balance));
    }
    for lp in loops {
        lp.finish()?;
    }
    let recorded = d.check("the many-trader durable run", &accounts)?;
    let setup = traders as u64 * (1 + book.funding_lines().lines().count() as u64);
    if recorded < ops + setup {
        bail!("the exchange recorded {recorded} operations, fewer than were acknowledged");
    }
    let per_flush = match (before, after) {
        (Some((f0, r0)), Some((f1, r1))) if f1 > f0 => Some((r1 - r0) as f64 / (f1 - f0) as f64),
        _ => None,
    };
    Ok(GroupRun {
        per_sec: ops as f64 / secs,
        per_flush,
    })
}
