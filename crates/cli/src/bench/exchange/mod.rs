//! `shmex bench exchange`: trades per second through the library with 1 to
//! 16 trader processes, how long the lock is held, how long a quote
//! snapshot takes while traders run, and lines per second through the
//! `trade` loop. Each figure is the median of `--runs` runs; each run uses
//! its own exchange under a unique name, ends with `check`, and destroys
//! the exchange even on error.
//!
//! Then the durable rows ([`durable`]): the machine's `fdatasync`, shmex
//! with its journal on disk, and, with `--features peers`, SQLite and LMDB
//! doing the same trades (`peers`), all on the same file system in the
//! same run, so that the goals are ratios between figures of one run.
//!
//! [`measure`] holds the memory-only measurements, [`report`] the tables
//! and the JSON; the trader processes are [`crate::support::trader`]'s.

mod book;
mod durable;
mod measure;
#[cfg(feature = "peers")]
mod peers;
mod report;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bench::args::Args;
use crate::bench::progress::Progress;
use crate::bench::stats::median;
use crate::support::error::Interrupted;
use crate::support::plural::plural;
use book::Book;
use durable::{BenchDir, p50_p99};
use measure::{lines_run, lock_run, quote_run, trade_run};
use report::{Durable, Figures};

/// Trader counts measured.
const TRADERS: [usize; 5] = [1, 2, 4, 8, 16];

/// Runs the benchmark; prints its table unless `args.json`; returns the
/// figures as JSON.
pub fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let progress = Progress::new("bench exchange");
    let runs = args.runs as usize;
    let dur = if args.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_millis(2000)
    };
    let lines = if args.quick { 200_000 } else { 2_000_000 };
    let mut trades: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let (mut hold_mean, mut hold_p99) = (Vec::new(), Vec::new());
    let mut lock = Vec::new();
    let (mut q50, mut q99) = (Vec::new(), Vec::new());
    let (mut text_lines, mut json_lines) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        for n in TRADERS {
            let traders = plural(n as u64, "trader process", "trader processes");
            progress.step(&format!("run {run} of {runs}: {traders}"))?;
            let r = trade_run(n, dur)?;
            if n == 2 {
                hold_mean.push(r.hold.mean());
                hold_p99.push(r.hold.value_at_quantile(0.99) as f64);
            }
            trades.entry(n).or_default().push(r.per_sec);
        }
        progress.step(&format!("run {run} of {runs}: lock and unlock"))?;
        lock.push(lock_run(dur / 4)?);
        progress.step(&format!("run {run} of {runs}: quote snapshots"))?;
        let (p50, p99) = quote_run(dur)?;
        q50.push(p50);
        q99.push(p99);
        progress.step(&format!("run {run} of {runs}: the trade loop"))?;
        text_lines.push(lines_run(lines, false)?);
        json_lines.push(lines_run(lines, true)?);
    }
    let durable = durable_rows(args, &progress)?;
    drop(progress);
    let figures = Figures {
        trades: trades.iter_mut().map(|(n, v)| (*n, median(v))).collect(),
        hold_mean: median(&mut hold_mean),
        hold_p99: median(&mut hold_p99),
        lock: median(&mut lock),
        quote_p50: median(&mut q50),
        quote_p99: median(&mut q99),
        lines_text: median(&mut text_lines),
        lines_json: median(&mut json_lines),
    };
    if !args.json {
        print!("{}", figures.table(runs, dur));
        print!("{}", durable.table());
    }
    let mut json = figures.to_json(runs, dur, lines, args.quick);
    json["durable"] = durable.to_json();
    Ok(json)
}

/// Durable traders measured at once: one, and this many.
const DURABLE_TRADERS: usize = 16;

/// The durable rows, each the median of `--runs` runs.
fn durable_rows(args: &Args, progress: &Progress) -> anyhow::Result<Durable> {
    let runs = args.runs as usize;
    let (dur, syncs, lines) = if args.quick {
        (Duration::from_millis(500), 50, 100_000)
    } else {
        (Duration::from_millis(2000), 200, 1_000_000)
    };
    let dir = BenchDir::new(args.dir.as_deref())?;
    let book = Book::new();
    let mut d = Durable::new(&dir.path, runs, dur, syncs, lines);
    progress.step("durable rows: does this shmex keep a journal on disk")?;
    if !durable::journal_supported()? {
        d.note(
            "shmex",
            "not measured: `exchange init` here keeps no journal on disk (it has no --no-journal)"
                .into(),
        );
    }
    #[cfg(not(feature = "peers"))]
    for peer in ["sqlite", "lmdb"] {
        d.note(peer, "not measured: built without --features peers".into());
    }
    for run in 1..=runs {
        let step = |what: &str| progress.step(&format!("run {run} of {runs}: durable, {what}"));
        step("fdatasync")?;
        let h = durable::fdatasync_run(&dir.path, syncs)?;
        let (p50, p99) = p50_p99(&h);
        d.add("fdatasync_p50_ns", p50);
        d.add("fdatasync_p99_ns", p99);
        if d.measures("shmex") {
            step("1 trader")?;
            let r = attempt(&mut d, "shmex", || {
                durable::one_trader(&dir.path, &book, dur)
            });
            if let Some(r) = r? {
                let (p50, p99) = p50_p99(&r.ack);
                d.add("shmex_1_ops_per_sec", r.per_sec);
                d.add("shmex_1_ack_p50_ns", p50);
                d.add("shmex_1_ack_p99_ns", p99);
            }
        }
        if d.measures("shmex") {
            step(&plural(DURABLE_TRADERS as u64, "trader", "traders"))?;
            let r = attempt(&mut d, "shmex", || {
                durable::many_traders(&dir.path, &book, DURABLE_TRADERS, dur)
            });
            if let Some(r) = r? {
                d.add("shmex_16_ops_per_sec", r.per_sec);
                if let Some(f) = r.per_flush {
                    d.add("shmex_16_records_per_fdatasync", f);
                }
            }
        }
        if d.measures("shmex") {
            step("the trade loop")?;
            let r = attempt(&mut d, "shmex", || {
                durable::Durable::new(&dir.path, &book)?.lines_run(&dir.path, &book, lines)
            });
            if let Some(v) = r? {
                d.add("shmex_trade_loop_lines_per_sec", v);
            }
        }
        #[cfg(feature = "peers")]
        for kind in [peers::Kind::Sqlite, peers::Kind::Lmdb] {
            let name = kind.name();
            for procs in [1, DURABLE_TRADERS] {
                if !d.measures(name) {
                    continue;
                }
                step(&format!(
                    "{name}, {}",
                    plural(procs as u64, "process", "processes")
                ))?;
                let r = attempt(&mut d, name, || {
                    peers::run(kind, &dir.path, &book, procs, dur)
                });
                if let Some(r) = r? {
                    d.add(&format!("{name}_{procs}_ops_per_sec"), r.per_sec);
                    if procs == 1 {
                        let (p50, p99) = p50_p99(&r.ack);
                        d.add(&format!("{name}_1_ack_p50_ns"), p50);
                        d.add(&format!("{name}_1_ack_p99_ns"), p99);
                    }
                }
            }
        }
    }
    d.finish();
    Ok(d)
}

/// `f`'s result; its failure, unless a termination signal caused it,
/// becomes `group`'s note (and the group is measured no more).
fn attempt<T>(
    d: &mut Durable,
    group: &'static str,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<Option<T>> {
    match Interrupted::or_signal("the benchmark", f()) {
        Ok(v) => Ok(Some(v)),
        Err(err) if err.is::<Interrupted>() => Err(err),
        Err(err) => {
            d.note(group, format!("failed: {err:#}"));
            Ok(None)
        }
    }
}

/// Entry point of a peer worker process (`shmex __peer-worker …`).
pub fn peer_worker(args: &[String]) -> anyhow::Result<std::process::ExitCode> {
    #[cfg(feature = "peers")]
    return peers::worker(args);
    #[cfg(not(feature = "peers"))]
    anyhow::bail!("__peer-worker {args:?}: this shmex was built without --features peers")
}
