//! `shmex bench exchange`: trades per second through the library with 1 to
//! 16 trader processes, how long the lock is held, how long a quote
//! snapshot takes while traders run, and lines per second through the
//! `trade` loop. Each figure is the median of `--runs` runs; each run uses
//! its own exchange under a unique name, ends with `check`, and destroys
//! the exchange even on error.
//!
//! [`measure`] holds the measurements, [`report`] the table and the JSON;
//! the trader processes are [`crate::support::trader`]'s.

mod measure;
mod report;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::bench::args::Args;
use crate::bench::progress::Progress;
use crate::bench::stats::median;
use crate::support::plural::plural;
use measure::{lines_run, lock_run, quote_run, trade_run};
use report::Figures;

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
    }
    Ok(figures.to_json(runs, dur, lines, args.quick))
}
