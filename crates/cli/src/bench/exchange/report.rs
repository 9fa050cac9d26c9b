//! What the exchange benchmark reports: the figures against their goals,
//! as a table and as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::plural::plural;

/// Goals: trades per second with 1 and 2 traders, the share of the
/// 2-trader rate 16 traders keep, a quote's p99, trade-loop lines per second.
const GOAL_TRADES_1: f64 = 5e6;
const GOAL_TRADES_2: f64 = 3e6;
const GOAL_16_OF_2: f64 = 0.5;
const GOAL_QUOTE_P99_NS: f64 = 2000.0;
const GOAL_LINES: f64 = 1e6;

/// The medians over the runs.
pub(super) struct Figures {
    /// Trades per second, by trader count.
    pub(super) trades: BTreeMap<usize, f64>,
    pub(super) hold_mean: f64,
    pub(super) hold_p99: f64,
    /// One lock and unlock, uncontended, in ns.
    pub(super) lock: f64,
    pub(super) quote_p50: f64,
    pub(super) quote_p99: f64,
    pub(super) lines_text: f64,
    pub(super) lines_json: f64,
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
    /// The table, for `runs` runs of `dur` each.
    pub(super) fn table(&self, runs: usize, dur: Duration) -> String {
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
            let who = plural(n as u64, "trader process", "trader processes");
            rows.push((format!("trades/s, {who}"), mega(v), goal, ratio));
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
            "lock + unlock, uncontended".into(),
            format!("{:.1} ns", self.lock),
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
            "exchange: median of {} of {:.1} s, {}\n",
            plural(runs as u64, "run", "runs"),
            dur.as_secs_f64(),
            plural(shm::sys::allowed_cpus().len() as u64, "CPU", "CPUs")
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
    /// The figures, goals and ratios as JSON.
    pub(super) fn to_json(&self, runs: usize, dur: Duration, lines: usize, quick: bool) -> Value {
        let t2 = self.trades[&2];
        let ratio16 = self.trades[&16] / t2;
        json!({
            "trades_per_sec": self.trades.iter().map(|(n, v)| (n.to_string(), json!(v.round()))).collect::<serde_json::Map<_, _>>(),
            "lock_hold_ns": { "mean": self.hold_mean.round(), "p99": self.hold_p99, "traders": 2 },
            "lock_unlock_ns": (self.lock * 10.0).round() / 10.0,
            "quote_snapshot_ns": { "p50": self.quote_p50, "p99": self.quote_p99, "traders": 2 },
            "trade_loop_lines_per_sec": { "text": self.lines_text.round(), "json": self.lines_json.round() },
            "goals": {
                "trades_per_sec_1": GOAL_TRADES_1,
                "trades_per_sec_2": GOAL_TRADES_2,
                "trades_16_over_2": GOAL_16_OF_2,
                "quote_p99_ns": GOAL_QUOTE_P99_NS,
                "lines_per_sec": GOAL_LINES,
            },
            "ratios": {
                "trades_per_sec_1": self.trades[&1] / GOAL_TRADES_1,
                "trades_per_sec_2": t2 / GOAL_TRADES_2,
                "trades_16_over_2": ratio16 / GOAL_16_OF_2,
                "quote_p99": GOAL_QUOTE_P99_NS / self.quote_p99,
                "lines_text": self.lines_text / GOAL_LINES,
                "lines_json": self.lines_json / GOAL_LINES,
            },
            "runs": runs,
            "seconds_per_run": dur.as_secs_f64(),
            "trade_loop_lines": lines,
            "quick": quick,
            "cpus": shm::sys::allowed_cpus().len(),
        })
    }
}
