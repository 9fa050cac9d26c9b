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

/// Goals of the durable rows: 16 durable traders against each peer's 16
/// processes, the acknowledgement p99 against `fdatasync`'s, and the
/// durable trade loop.
const GOAL_OVER_PEER: f64 = 10.0;
const GOAL_ACK_OVER_SYNC: f64 = 3.0;

/// The durable rows: samples by figure over the runs, their medians, and
/// a note for each group (`shmex`, `sqlite`, `lmdb`) not measured or
/// failed.
pub(super) struct Durable {
    dir: String,
    runs: usize,
    dur: Duration,
    syncs: usize,
    lines: usize,
    samples: BTreeMap<String, Vec<f64>>,
    medians: BTreeMap<String, f64>,
    notes: BTreeMap<&'static str, String>,
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        mega(v)
    } else if v >= 1e4 {
        format!("{:.1} k/s", v / 1e3)
    } else {
        format!("{v:.0} /s")
    }
}

fn micros(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.1} µs", v / 1e3)
    }
}

impl Durable {
    pub(super) fn new(
        dir: &std::path::Path,
        runs: usize,
        dur: Duration,
        syncs: usize,
        lines: usize,
    ) -> Durable {
        Durable {
            dir: dir.display().to_string(),
            runs,
            dur,
            syncs,
            lines,
            samples: BTreeMap::new(),
            medians: BTreeMap::new(),
            notes: BTreeMap::new(),
        }
    }

    /// Notes why `group` is not measured (the first note stays).
    pub(super) fn note(&mut self, group: &'static str, why: String) {
        self.notes.entry(group).or_insert(why);
    }

    /// Whether `group` is still measured.
    pub(super) fn measures(&self, group: &str) -> bool {
        !self.notes.contains_key(group)
    }

    pub(super) fn add(&mut self, figure: &str, v: f64) {
        self.samples.entry(figure.to_owned()).or_default().push(v);
    }

    /// Takes the medians.
    pub(super) fn finish(&mut self) {
        self.medians = self
            .samples
            .iter_mut()
            .map(|(k, v)| (k.clone(), crate::bench::stats::median(v)))
            .collect();
    }

    fn get(&self, figure: &str) -> Option<f64> {
        self.medians.get(figure).copied()
    }

    /// `a ÷ b`, when both were measured.
    fn over(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.get(a)? / self.get(b)?)
    }

    /// The goals' ratios (figure ÷ goal, goal ÷ figure for a time; 1 or
    /// more meets it).
    fn ratios(&self) -> [(&'static str, Option<f64>); 4] {
        [
            (
                "durable_16_over_sqlite_16",
                self.over("shmex_16_ops_per_sec", "sqlite_16_ops_per_sec")
                    .map(|x| x / GOAL_OVER_PEER),
            ),
            (
                "durable_16_over_lmdb_16",
                self.over("shmex_16_ops_per_sec", "lmdb_16_ops_per_sec")
                    .map(|x| x / GOAL_OVER_PEER),
            ),
            (
                "ack_p99_over_fdatasync_p99",
                self.over("shmex_1_ack_p99_ns", "fdatasync_p99_ns")
                    .map(|x| GOAL_ACK_OVER_SYNC / x),
            ),
            (
                "durable_trade_loop_lines",
                self.get("shmex_trade_loop_lines_per_sec")
                    .map(|x| x / GOAL_LINES),
            ),
        ]
    }

    /// The table.
    pub(super) fn table(&self) -> String {
        let na = || "n/a".to_owned();
        let fig = |k: &str, f: fn(f64) -> String| self.get(k).map_or_else(na, f);
        let ratio = |r: Option<f64>| r.map_or(String::new(), |r| format!("{r:.2}"));
        let [over_sqlite, over_lmdb, ack, loop_lines] = self.ratios().map(|(_, r)| r);
        let sync99 = self.get("fdatasync_p99_ns");
        // A row with no goal.
        let plain =
            |label: &str, figure: String| (label.to_owned(), figure, String::new(), String::new());
        let times = |x: Option<f64>| x.map_or_else(na, |x| format!("{x:.1}×"));
        let mut rows: Vec<(String, String, String, String)> = vec![
            plain(
                &format!("fdatasync p50 ({} appends)", self.syncs),
                fig("fdatasync_p50_ns", micros),
            ),
            plain("fdatasync p99", fig("fdatasync_p99_ns", micros)),
            plain("durable, 1 trader: ops/s", fig("shmex_1_ops_per_sec", rate)),
            plain(
                "durable, 1 trader: ack p50",
                fig("shmex_1_ack_p50_ns", micros),
            ),
            (
                "durable, 1 trader: ack p99".into(),
                fig("shmex_1_ack_p99_ns", micros),
                sync99.map_or_else(
                    || "≤ 3× fdatasync p99".into(),
                    |s| format!("≤ 3× fdatasync ({})", micros(s * GOAL_ACK_OVER_SYNC)),
                ),
                ratio(ack),
            ),
            plain(
                "durable, 16 traders: ops/s",
                fig("shmex_16_ops_per_sec", rate),
            ),
            (
                "  ÷ SQLite, 16 processes".into(),
                times(self.over("shmex_16_ops_per_sec", "sqlite_16_ops_per_sec")),
                "≥ 10×".into(),
                ratio(over_sqlite),
            ),
            (
                "  ÷ LMDB, 16 processes".into(),
                times(self.over("shmex_16_ops_per_sec", "lmdb_16_ops_per_sec")),
                "≥ 10×".into(),
                ratio(over_lmdb),
            ),
            plain(
                "durable, 16 traders: records/fdatasync",
                fig("shmex_16_records_per_fdatasync", |v| format!("{v:.1}")),
            ),
            (
                "durable trade loop, lines/s".into(),
                fig("shmex_trade_loop_lines_per_sec", mega),
                "≥ 1 M/s".into(),
                ratio(loop_lines),
            ),
        ];
        for (key, name) in [("sqlite", "SQLite"), ("lmdb", "LMDB")] {
            for (what, figure, show) in [
                (
                    "1 process: ops/s",
                    "1_ops_per_sec",
                    rate as fn(f64) -> String,
                ),
                ("1 process: ack p50", "1_ack_p50_ns", micros),
                ("1 process: ack p99", "1_ack_p99_ns", micros),
                ("16 processes: ops/s", "16_ops_per_sec", rate),
            ] {
                rows.push(plain(
                    &format!("{name}, {what}"),
                    fig(&format!("{key}_{figure}"), show),
                ));
            }
        }
        let mut s = format!(
            "\nexchange, durable: median of {} of {:.1} s, in {}\n",
            plural(self.runs as u64, "run", "runs"),
            self.dur.as_secs_f64(),
            self.dir
        );
        s.push_str(&format!(
            "{:<40} {:>11}  {:<26} {:>5}\n",
            "measure", "figure", "goal", "ratio"
        ));
        for (a, b, c, d) in rows {
            s.push_str(&format!("{a:<40} {b:>11}  {c:<26} {d:>5}\n"));
        }
        for (group, why) in &self.notes {
            s.push_str(&format!("{group}: {why}\n"));
        }
        s
    }

    /// The figures, goals, ratios and notes as JSON.
    pub(super) fn to_json(&self) -> Value {
        let figures: serde_json::Map<String, Value> = self
            .medians
            .iter()
            .map(|(k, v)| {
                // Whole ns and ops; records per fdatasync to a tenth.
                let v = if k.ends_with("_ns") || k.ends_with("_per_sec") {
                    v.round()
                } else {
                    (v * 10.0).round() / 10.0
                };
                (k.clone(), json!(v))
            })
            .collect();
        let ratios: serde_json::Map<String, Value> = self
            .ratios()
            .iter()
            .map(|(k, r)| ((*k).to_owned(), json!(r)))
            .collect();
        json!({
            "figures": figures,
            // The ratios the goals are about, as measured.
            "compared": {
                "durable_16_over_sqlite_16": self.over("shmex_16_ops_per_sec", "sqlite_16_ops_per_sec"),
                "durable_16_over_lmdb_16": self.over("shmex_16_ops_per_sec", "lmdb_16_ops_per_sec"),
                "ack_p99_over_fdatasync_p99": self.over("shmex_1_ack_p99_ns", "fdatasync_p99_ns"),
            },
            "goals": {
                "durable_16_over_peer_16": GOAL_OVER_PEER,
                "ack_p99_over_fdatasync_p99": GOAL_ACK_OVER_SYNC,
                "durable_trade_loop_lines_per_sec": GOAL_LINES,
            },
            "ratios": ratios,
            "notes": self.notes,
            "dir": self.dir,
            "runs": self.runs,
            "seconds_per_run": self.dur.as_secs_f64(),
            "fdatasync_samples": self.syncs,
            "trade_loop_lines": self.lines,
            "traders": 16,
        })
    }
}
