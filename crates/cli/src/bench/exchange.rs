//! `shmex bench exchange`: trades per second through the library with 1 to
//! 16 trader processes, how long the lock is held, how long a quote
//! snapshot takes while traders run, and lines per second through the
//! `trade` loop. Each figure is the median of `--runs` runs; each run uses
//! its own exchange under a unique name, ends with `check`, and destroys
//! the exchange even on error.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use exchange::{Capacity, Config, CurrencyId, Exchange, OpError};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use shm::SegmentId;

/// Trader counts measured.
const TRADERS: [usize; 5] = [1, 2, 4, 8, 16];
/// Every how many mutations a trader times its lock hold.
const HOLD_SAMPLE: u32 = 16;

const GOAL_TRADES_1: f64 = 5e6;
const GOAL_TRADES_2: f64 = 3e6;
const GOAL_16_OF_2: f64 = 0.5;
const GOAL_QUOTE_P99_NS: f64 = 2000.0;
const GOAL_LINES: f64 = 1e6;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

/// This very binary, to re-execute: `/proc/self/exe` still names it when
/// a rebuild has replaced the file on disk.
pub(crate) fn self_exe() -> anyhow::Result<PathBuf> {
    let proc = PathBuf::from("/proc/self/exe");
    if proc.exists() {
        return Ok(proc);
    }
    std::env::current_exe().context("cannot find the shmex binary to re-execute")
}

/// An exchange (and children, and files) that exist for one run and are
/// removed when it ends, however it ends.
pub(crate) struct Scratch {
    pub id: SegmentId,
    children: Vec<Child>,
    files: Vec<PathBuf>,
}

impl Scratch {
    /// A fresh exchange under a unique name, created from `config`.
    pub fn new(tag: &str, config: Config) -> anyhow::Result<(Scratch, Exchange)> {
        let name = format!(
            "shmex-{tag}-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let s = Scratch {
            id: SegmentId::posix(name)?,
            children: Vec::new(),
            files: Vec::new(),
        };
        let ex = Exchange::create(&s.id, &config.into_state()?, &[], 0o600)?;
        Ok((s, ex))
    }

    fn name(&self) -> String {
        match &self.id {
            SegmentId::Posix(n) => n.clone(),
            SegmentId::SysV(k) => k.to_string(),
        }
    }

    /// Starts a trader process; returns its index.
    pub fn spawn_trader(&mut self, t: &TraderArgs) -> anyhow::Result<usize> {
        let child = Command::new(self_exe()?)
            .arg("__exchange-worker")
            .arg("trader")
            .args(t.to_args(&self.name()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start a trader process")?;
        self.children.push(child);
        Ok(self.children.len() - 1)
    }

    /// Waits for every trader and returns their reports, in order.
    pub fn reports(&mut self) -> anyhow::Result<Vec<Report>> {
        let mut out = Vec::new();
        for child in std::mem::take(&mut self.children) {
            let o = child.wait_with_output()?;
            if !o.status.success() {
                bail!(
                    "a trader process failed ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            let v: Value =
                serde_json::from_slice(&o.stdout).context("a trader process printed no report")?;
            out.push(Report::from_json(&v)?);
        }
        Ok(out)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = shm::Segment::remove(&self.id);
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// What a trader process does.
#[derive(Clone, Debug)]
pub(crate) struct TraderArgs {
    pub account: String,
    pub start_ns: u64,
    pub millis: u64,
    pub seed: u64,
    pub sample: u32,
    pub max_cents: u64,
    /// Deposit home currency when short of it (the demo's traders).
    pub deposits: bool,
}

impl TraderArgs {
    fn to_args(&self, exchange: &str) -> Vec<String> {
        let mut v = vec![
            "--exchange".into(),
            exchange.into(),
            "--account".into(),
            self.account.clone(),
            "--start-ns".into(),
            self.start_ns.to_string(),
            "--millis".into(),
            self.millis.to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--sample".into(),
            self.sample.to_string(),
            "--max-cents".into(),
            self.max_cents.to_string(),
        ];
        if self.deposits {
            v.push("--deposits".into());
        }
        v
    }
}

/// What a trader process reports.
#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    pub account: String,
    pub trades: u64,
    pub refused: u64,
    pub deposits: u64,
    pub hold: Vec<(u64, u64)>,
}

impl Report {
    fn from_json(v: &Value) -> anyhow::Result<Report> {
        let n = |k: &str| {
            v[k].as_u64()
                .with_context(|| format!("trader report lacks {k}"))
        };
        Ok(Report {
            account: v["account"].as_str().unwrap_or_default().to_owned(),
            trades: n("trades")?,
            refused: n("refused")?,
            deposits: n("deposits")?,
            hold: v["hold"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| Some((p[0].as_u64()?, p[1].as_u64()?)))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Entry point of a worker process started by this benchmark (or the demo):
/// `__exchange-worker trader --exchange NAME|--key K --account A
/// --start-ns T --millis D [--seed S] [--sample N] [--max-cents M] [--deposits]`.
/// Prints one JSON report.
pub fn worker(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some((mode, rest)) = args.split_first() else {
        bail!("__exchange-worker needs a mode: trader");
    };
    if mode != "trader" {
        bail!("__exchange-worker: unknown mode {mode:?}");
    }
    let mut flags: BTreeMap<&str, &str> = BTreeMap::new();
    let mut deposits = false;
    let mut it = rest.iter();
    while let Some(k) = it.next() {
        if k == "--deposits" {
            deposits = true;
            continue;
        }
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        flags.insert(k.as_str(), v.as_str());
    }
    let num = |k: &str, d: Option<u64>| -> anyhow::Result<u64> {
        match flags.get(k) {
            Some(v) => v
                .parse()
                .with_context(|| format!("{k} {v:?} is not a number")),
            None => d.with_context(|| format!("{k} is required")),
        }
    };
    let id = crate::cmd::exchange::select(
        flags.get("--exchange").copied(),
        flags.get("--key").copied(),
    )?;
    let t = TraderArgs {
        account: flags
            .get("--account")
            .context("--account is required")?
            .to_string(),
        start_ns: num("--start-ns", Some(0))?,
        millis: num("--millis", None)?,
        seed: num("--seed", Some(1))?,
        sample: num("--sample", Some(0))? as u32,
        max_cents: num("--max-cents", Some(100))?.max(1),
        deposits,
    };
    let report = trade(&id, &t)?;
    let hold: Vec<Value> = report.hold.iter().map(|(v, c)| json!([v, c])).collect();
    println!(
        "{}",
        json!({
            "account": report.account,
            "trades": report.trades,
            "refused": report.refused,
            "deposits": report.deposits,
            "hold": hold,
        })
    );
    Ok(ExitCode::SUCCESS)
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn refused(e: &OpError) -> bool {
    matches!(
        e,
        OpError::InsufficientStock { .. }
            | OpError::InsufficientBalance { .. }
            | OpError::InsufficientHolding { .. }
            | OpError::TillShort { .. }
    )
}

/// A trader: random buys and sells of random foreign currencies as fast as
/// it can from `start_ns` for `millis`.
fn trade(id: &SegmentId, t: &TraderArgs) -> anyhow::Result<Report> {
    let ex = Exchange::open(id)?;
    let mut e = ex.engine();
    e.sample_hold_times(t.sample);
    let (acct, _) = e.open_account(&t.account)?;
    let foreign = (e.currencies().len() - 1).max(1) as u64;
    let now = now_ns();
    if t.start_ns > now {
        std::thread::sleep(Duration::from_nanos(t.start_ns - now));
    }
    let deadline = Instant::now() + Duration::from_millis(t.millis);
    let mut rng = t.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut r = Report {
        account: t.account.clone(),
        ..Report::default()
    };
    let deposit = 500 * exchange::money::pow10(e.decimals(CurrencyId::HOME)).unwrap_or(1);
    let mut n = 0u64;
    loop {
        if n.is_multiple_of(256) && Instant::now() >= deadline {
            break;
        }
        n += 1;
        let x = xorshift(&mut rng);
        let c = CurrencyId::from_index(1 + (x % foreign) as usize);
        let amount = 1 + ((x >> 16) % t.max_cents) as i64;
        let res = if x >> 63 == 0 {
            e.buy(acct, c, amount)
        } else {
            e.sell(acct, c, amount)
        };
        match res {
            Ok(_) => r.trades += 1,
            Err(OpError::InsufficientBalance { .. }) if t.deposits => {
                // A customer short of money brings more.
                r.refused += 1;
                e.deposit(acct, CurrencyId::HOME, deposit)?;
                r.deposits += 1;
                r.trades += 1;
            }
            Err(err) if refused(&err) => r.refused += 1,
            Err(err) => return Err(err.into()),
        }
    }
    let samples = e.take_hold_times();
    if !samples.is_empty() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2)?;
        for s in samples {
            h.saturating_record(u64::from(s).max(1));
        }
        r.hold = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
    }
    Ok(r)
}

/// The benchmark's exchange: the built-in table with stock and till
/// large enough that random trading is almost never refused.
fn bench_config() -> Config {
    let (mut c, _) = Config::builtin();
    c.till = 1_000_000_000_000;
    for cur in &mut c.currencies {
        cur.stock = 100_000_000_000;
    }
    c.capacity = Capacity {
        currencies: 8,
        accounts: 64,
        journal: Capacity::default().journal,
    };
    c
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Funds trader accounts so that their trades are almost never refused.
fn fund(ex: &Exchange, names: &[String]) -> anyhow::Result<()> {
    let e = ex.engine();
    for n in names {
        let (a, _) = e.open_account(n)?;
        e.deposit(a, CurrencyId::HOME, 100_000_000_000)?;
        for c in 1..e.currencies().len() {
            e.deposit(a, CurrencyId::from_index(c), 1_000_000_000)?;
        }
    }
    Ok(())
}

struct TradeRun {
    per_sec: f64,
    hold: Histogram<u64>,
}

fn trade_run(traders: usize, dur: Duration) -> anyhow::Result<TradeRun> {
    let (mut s, ex) = Scratch::new("bench-ex", bench_config())?;
    let names: Vec<String> = (0..traders).map(|i| format!("trader-{i}")).collect();
    fund(&ex, &names)?;
    let start_ns = now_ns() + 150_000_000 + traders as u64 * 20_000_000;
    for (i, n) in names.iter().enumerate() {
        s.spawn_trader(&TraderArgs {
            account: n.clone(),
            start_ns,
            millis: dur.as_millis() as u64,
            seed: i as u64 + 1,
            sample: HOLD_SAMPLE,
            max_cents: 100,
            deposits: false,
        })?;
    }
    let reports = s.reports()?;
    let mut hold = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2)?;
    for r in &reports {
        for &(v, c) in &r.hold {
            hold.saturating_record_n(v, c);
        }
    }
    let violations = ex.engine().check()?;
    if !violations.is_empty() {
        bail!(
            "check failed after the {traders}-trader run: {}",
            violations.join("; ")
        );
    }
    let trades: u64 = reports.iter().map(|r| r.trades).sum();
    Ok(TradeRun {
        per_sec: trades as f64 / dur.as_secs_f64(),
        hold,
    })
}

/// Quote snapshot latency in ns (p50, p99) while 2 traders run.
fn quote_run(dur: Duration) -> anyhow::Result<(f64, f64)> {
    let (mut s, ex) = Scratch::new("bench-ex", bench_config())?;
    let names: Vec<String> = (0..2).map(|i| format!("trader-{i}")).collect();
    fund(&ex, &names)?;
    let start_ns = now_ns() + 200_000_000;
    for (i, n) in names.iter().enumerate() {
        s.spawn_trader(&TraderArgs {
            account: n.clone(),
            start_ns,
            millis: dur.as_millis() as u64,
            seed: i as u64 + 7,
            sample: 0,
            max_cents: 100,
            deposits: false,
        })?;
    }
    let e = ex.engine();
    let mut rows = Vec::with_capacity(8);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let now = now_ns();
    if start_ns > now {
        std::thread::sleep(Duration::from_nanos(start_ns - now));
    }
    // Measure inside the traders' window, a little in from both ends.
    let begin = Instant::now() + dur / 10;
    let end = Instant::now() + dur * 9 / 10;
    while Instant::now() < begin {
        std::hint::spin_loop();
    }
    while Instant::now() < end {
        let t = Instant::now();
        e.quote_into(&mut rows)?;
        h.saturating_record(t.elapsed().as_nanos() as u64);
    }
    s.reports()?;
    let violations = e.check()?;
    if !violations.is_empty() {
        bail!(
            "check failed after the quote run: {}",
            violations.join("; ")
        );
    }
    Ok((
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
    ))
}

/// Lines per second through `shmex exchange trade`, input from a file,
/// output to /dev/null.
fn lines_run(lines: usize, json: bool) -> anyhow::Result<f64> {
    let (mut s, ex) = Scratch::new("bench-ex", bench_config())?;
    let path = std::env::temp_dir().join(format!("{}.input", s.name()));
    s.files.push(path.clone());
    let mut text = String::with_capacity(lines * 18);
    for i in 0..lines {
        text.push_str(match i % 64 {
            63 => "deposit TRY 1000\n",
            x if x % 2 == 0 => "buy DOLLAR 1.00\n",
            _ => "sell DOLLAR 1.00\n",
        });
    }
    std::fs::write(&path, text).context("cannot write the trade loop's input file")?;
    let mut cmd = Command::new(self_exe()?);
    cmd.args([
        "exchange",
        "--exchange",
        &s.name(),
        "trade",
        "--account",
        "bench",
    ]);
    if json {
        cmd.arg("--json");
    }
    let input = std::fs::File::open(&path)?;
    let t = Instant::now();
    let o = cmd
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run the trade loop")?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!(
            "the trade loop failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let violations = ex.engine().check()?;
    if !violations.is_empty() {
        bail!(
            "check failed after the trade loop: {}",
            violations.join("; ")
        );
    }
    let done = ex.engine().info().next_seq - 1;
    if done < lines as u64 * 9 / 10 {
        bail!("the trade loop did only {done} of {lines} operations");
    }
    Ok(lines as f64 / secs)
}

fn progress(what: &str) -> anyhow::Result<()> {
    if let Some(sig) = shm::sys::termination_signal() {
        bail!("bench exchange interrupted by signal {sig}");
    }
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[Kbench exchange: {what}");
        let _ = std::io::stderr().flush();
    }
    Ok(())
}

/// Runs the benchmark; prints its table unless `args.json`; returns the
/// figures as JSON.
pub fn run(args: &super::Args) -> anyhow::Result<serde_json::Value> {
    // Ctrl-C stops the benchmark between steps (and kills the traders,
    // which fail the step), so that its exchanges are always destroyed.
    shm::sys::catch_termination();
    let runs = args.runs as usize;
    let dur = if args.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_millis(2000)
    };
    let lines = if args.quick { 200_000 } else { 2_000_000 };
    let mut trades: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let (mut hold_mean, mut hold_p99) = (Vec::new(), Vec::new());
    let (mut q50, mut q99) = (Vec::new(), Vec::new());
    let (mut text_lines, mut json_lines) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        for n in TRADERS {
            progress(&format!("run {run}/{runs}: {n} trader processes"))?;
            let r = trade_run(n, dur)?;
            if n == 2 {
                hold_mean.push(r.hold.mean());
                hold_p99.push(r.hold.value_at_quantile(0.99) as f64);
            }
            trades.entry(n).or_default().push(r.per_sec);
        }
        progress(&format!("run {run}/{runs}: quote snapshots"))?;
        let (p50, p99) = quote_run(dur)?;
        q50.push(p50);
        q99.push(p99);
        progress(&format!("run {run}/{runs}: the trade loop"))?;
        text_lines.push(lines_run(lines, false)?);
        json_lines.push(lines_run(lines, true)?);
    }
    progress("")?;
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    let t: BTreeMap<usize, f64> = trades.iter_mut().map(|(n, v)| (*n, median(v))).collect();
    let t2 = t[&2];
    let figures = Figures {
        trades: t,
        hold_mean: median(&mut hold_mean),
        hold_p99: median(&mut hold_p99),
        quote_p50: median(&mut q50),
        quote_p99: median(&mut q99),
        lines_text: median(&mut text_lines),
        lines_json: median(&mut json_lines),
    };
    let ratio16 = figures.trades[&16] / t2;
    if !args.json {
        print!("{}", figures.table(runs, dur));
    }
    Ok(json!({
        "trades_per_sec": figures.trades.iter().map(|(n, v)| (n.to_string(), json!(v.round()))).collect::<serde_json::Map<_, _>>(),
        "lock_hold_ns": { "mean": figures.hold_mean.round(), "p99": figures.hold_p99, "traders": 2 },
        "quote_snapshot_ns": { "p50": figures.quote_p50, "p99": figures.quote_p99, "traders": 2 },
        "trade_loop_lines_per_sec": { "text": figures.lines_text.round(), "json": figures.lines_json.round() },
        "goals": {
            "trades_per_sec_1": GOAL_TRADES_1,
            "trades_per_sec_2": GOAL_TRADES_2,
            "trades_16_over_2": GOAL_16_OF_2,
            "quote_p99_ns": GOAL_QUOTE_P99_NS,
            "lines_per_sec": GOAL_LINES,
        },
        "ratios": {
            "trades_per_sec_1": figures.trades[&1] / GOAL_TRADES_1,
            "trades_per_sec_2": t2 / GOAL_TRADES_2,
            "trades_16_over_2": ratio16 / GOAL_16_OF_2,
            "quote_p99": GOAL_QUOTE_P99_NS / figures.quote_p99,
            "lines_text": figures.lines_text / GOAL_LINES,
            "lines_json": figures.lines_json / GOAL_LINES,
        },
        "runs": runs,
        "seconds_per_run": dur.as_secs_f64(),
        "trade_loop_lines": lines,
        "quick": args.quick,
        "cpus": shm::sys::allowed_cpus().len(),
    }))
}

struct Figures {
    trades: BTreeMap<usize, f64>,
    hold_mean: f64,
    hold_p99: f64,
    quote_p50: f64,
    quote_p99: f64,
    lines_text: f64,
    lines_json: f64,
}

fn mega(v: f64) -> String {
    format!("{:.2} M/s", v / 1e6)
}

fn nanos(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} µs", v / 1000.0)
    } else {
        format!("{v:.0} ns")
    }
}

impl Figures {
    fn table(&self, runs: usize, dur: Duration) -> String {
        let mut rows: Vec<(String, String, String, String)> = Vec::new();
        let t2 = self.trades[&2];
        for (&n, &v) in &self.trades {
            let (goal, ratio) = match n {
                1 => ("≥ 5 M/s".to_owned(), format!("{:.2}", v / GOAL_TRADES_1)),
                2 => ("≥ 3 M/s".to_owned(), format!("{:.2}", v / GOAL_TRADES_2)),
                16 => (
                    format!("≥ ½ of 2 ({})", mega(t2 * GOAL_16_OF_2)),
                    format!("{:.2}", v / (t2 * GOAL_16_OF_2)),
                ),
                _ => (String::new(), String::new()),
            };
            let who = if n == 1 { "process" } else { "processes" };
            rows.push((format!("trades/s, {n} trader {who}"), mega(v), goal, ratio));
        }
        rows.push((
            "lock held, mean (2 traders)".into(),
            nanos(self.hold_mean),
            String::new(),
            String::new(),
        ));
        rows.push((
            "lock held, p99 (2 traders)".into(),
            nanos(self.hold_p99),
            String::new(),
            String::new(),
        ));
        rows.push((
            "quote snapshot p50 (2 traders run)".into(),
            nanos(self.quote_p50),
            String::new(),
            String::new(),
        ));
        rows.push((
            "quote snapshot p99 (2 traders run)".into(),
            nanos(self.quote_p99),
            "≤ 2 µs".into(),
            format!("{:.2}", GOAL_QUOTE_P99_NS / self.quote_p99),
        ));
        rows.push((
            "trade loop, lines/s".into(),
            mega(self.lines_text),
            "≥ 1 M/s".into(),
            format!("{:.2}", self.lines_text / GOAL_LINES),
        ));
        rows.push((
            "trade loop --json, lines/s".into(),
            mega(self.lines_json),
            "≥ 1 M/s".into(),
            format!("{:.2}", self.lines_json / GOAL_LINES),
        ));
        let mut s = format!(
            "exchange: median of {runs} run{} of {:.1} s, {} CPUs\n",
            if runs == 1 { "" } else { "s" },
            dur.as_secs_f64(),
            shm::sys::allowed_cpus().len()
        );
        s.push_str(&format!(
            "{:<36} {:>11}  {:<22} {:>5}\n",
            "measure", "figure", "goal", "ratio"
        ));
        for (a, b, c, d) in rows {
            s.push_str(&format!("{a:<36} {b:>11}  {c:<22} {d:>5}\n"));
        }
        s.push_str("ratio: figure ÷ goal (goal ÷ figure for times); 1 or more meets the goal\n");
        s
    }
}
