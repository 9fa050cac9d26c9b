//! The exchange benchmark's measurements: trader processes on a scratch
//! exchange, quote snapshots while they trade, and the `trade` loop.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use exchange::{Capacity, Config, CurrencyId, Exchange};
use hdrhistogram::Histogram;

use crate::support::exe;
use crate::support::scratch::Scratch;
use crate::support::time::now_ns;
use crate::support::trader::TraderArgs;

/// Every how many mutations a trader times its lock hold.
const HOLD_SAMPLE: u32 = 16;

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

/// A funded scratch exchange and `traders` trader processes on it that
/// start together `lead` from now and trade for `dur`, with seeds from
/// `seed` on, timing every `sample`-th lock hold (0: none). Returns the
/// start time too.
fn start_traders(
    traders: usize,
    dur: Duration,
    lead: Duration,
    seed: u64,
    sample: u32,
) -> anyhow::Result<(Scratch, Exchange, u64)> {
    let (mut s, ex) = Scratch::new("bench-ex", bench_config())?;
    let names: Vec<String> = (0..traders).map(|i| format!("trader-{i}")).collect();
    fund(&ex, &names)?;
    let start_ns = now_ns() + lead.as_nanos() as u64;
    for (i, account) in names.into_iter().enumerate() {
        s.spawn_trader(&TraderArgs {
            account,
            start_ns,
            millis: dur.as_millis() as u64,
            seed: seed + i as u64,
            sample,
            max_cents: 100,
            deposits: false,
        })?;
    }
    Ok((s, ex, start_ns))
}

/// Fails if the exchange's books do not balance after `what`.
fn check_after(ex: &Exchange, what: &str) -> anyhow::Result<()> {
    let violations = ex.engine().check()?;
    if !violations.is_empty() {
        bail!("check failed after {what}: {}", violations.join("; "));
    }
    Ok(())
}

/// What one run of traders measured: trades per second, and how long
/// they held the lock.
pub(super) struct TradeRun {
    pub(super) per_sec: f64,
    pub(super) hold: Histogram<u64>,
}

/// `traders` trader processes at once for `dur`.
pub(super) fn trade_run(traders: usize, dur: Duration) -> anyhow::Result<TradeRun> {
    // Room for every trader to start before they all begin.
    let lead = Duration::from_millis(150 + traders as u64 * 20);
    let (mut s, ex, _) = start_traders(traders, dur, lead, 1, HOLD_SAMPLE)?;
    let reports = s.reports()?;
    let mut hold = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2)?;
    for r in &reports {
        for &(v, c) in &r.hold {
            hold.saturating_record_n(v, c);
        }
    }
    check_after(&ex, &format!("the {traders}-trader run"))?;
    let trades: u64 = reports.iter().map(|r| r.trades).sum();
    Ok(TradeRun {
        per_sec: trades as f64 / dur.as_secs_f64(),
        hold,
    })
}

/// Quote snapshot latency in ns (p50, p99) while 2 traders run.
pub(super) fn quote_run(dur: Duration) -> anyhow::Result<(f64, f64)> {
    let (mut s, ex, start_ns) = start_traders(2, dur, Duration::from_millis(200), 7, 0)?;
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
    check_after(&ex, "the quote run")?;
    Ok((
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
    ))
}

/// Nanoseconds per lock and unlock of an exchange's lock that nobody
/// else uses: the median of batches of `LOCK_BATCH`, for `dur`.
pub(super) fn lock_run(dur: Duration) -> anyhow::Result<f64> {
    const LOCK_BATCH: u32 = 10_000;
    let (_s, ex) = Scratch::new("bench-ex", bench_config())?;
    let e = ex.engine();
    let mut per = Vec::new();
    let end = Instant::now() + dur;
    while Instant::now() < end || per.len() < 3 {
        let t = e.time_lock(LOCK_BATCH)?;
        per.push(t.as_nanos() as f64 / f64::from(LOCK_BATCH));
    }
    Ok(crate::bench::stats::median(&mut per))
}

/// Lines per second through `shmex exchange trade`, input from a file,
/// output to /dev/null.
pub(super) fn lines_run(lines: usize, json: bool) -> anyhow::Result<f64> {
    let (mut s, ex) = Scratch::new("bench-ex", bench_config())?;
    let path = std::env::temp_dir().join(format!("{}.input", s.name()));
    s.file(path.clone());
    let mut text = String::with_capacity(lines * 18);
    for i in 0..lines {
        text.push_str(match i % 64 {
            63 => "deposit TRY 1000\n",
            x if x % 2 == 0 => "buy DOLLAR 1.00\n",
            _ => "sell DOLLAR 1.00\n",
        });
    }
    std::fs::write(&path, text).context("cannot write the trade loop's input file")?;
    let mut cmd = exe::command()?;
    cmd.args([
        "exchange",
        "--exchange",
        &s.name(),
        "trade",
        "--account",
        "bench",
        "--open",
    ]);
    if json {
        cmd.arg("--json");
    }
    let input = std::fs::File::open(&path)?;
    let t = Instant::now();
    let o = exe::output(
        cmd.stdin(input)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .context("cannot run the trade loop")?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!(
            "the trade loop failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    check_after(&ex, "the trade loop")?;
    let done = ex.engine().info().next_seq - 1;
    if done < lines as u64 * 9 / 10 {
        bail!("the trade loop did only {done} of {lines} operations");
    }
    Ok(lines as f64 / secs)
}
