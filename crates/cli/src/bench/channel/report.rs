//! What the channel benchmark reports: the figures, the goals they are
//! held to, as a table and as JSON.

use serde_json::{Value, json};

use super::harness::{Lat, Placement, Sizes};
use crate::bench::args::Args;
use crate::support::plural::plural;

/// The medians of every path, by key and label.
pub(super) struct Figures {
    pub(super) lat: Vec<(&'static str, &'static str, Lat)>,
    pub(super) stream: Vec<(&'static str, &'static str, f64)>,
    pub(super) msgs: Vec<(&'static str, &'static str, f64)>,
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// A ratio between figures and the bound it is held to.
pub(super) struct Goal {
    text: String,
    ratio: f64,
    target: f64,
    /// `true`: the ratio must be at most the target.
    at_most: bool,
}

impl Goal {
    fn met(&self) -> bool {
        if self.at_most {
            self.ratio <= self.target
        } else {
            self.ratio >= self.target
        }
    }
}

/// The goals, computed from the figures of this run.
pub(super) fn goals(f: &Figures) -> Vec<Goal> {
    let lat = |k: &str| {
        f.lat
            .iter()
            .find(|l| l.0 == k)
            .map(|l| l.2)
            .unwrap_or_default()
    };
    let stream = |k: &str| f.stream.iter().find(|l| l.0 == k).map_or(f64::NAN, |l| l.2);
    let msgs = |k: &str| f.msgs.iter().find(|l| l.0 == k).map_or(f64::NAN, |l| l.2);
    let (floor, spin, parked, pipe) = (
        lat("floor"),
        lat("channel_spin"),
        lat("channel_parked"),
        lat("pipe"),
    );
    let mut goals = vec![
        Goal {
            text: "channel p50 / cache-line floor p50".into(),
            ratio: spin.p50 / floor.p50,
            target: 1.5,
            at_most: true,
        },
        Goal {
            text: "channel p99.9 / cache-line floor p50".into(),
            ratio: spin.p999 / floor.p50,
            target: 10.0,
            at_most: true,
        },
        Goal {
            text: "pipe p50 / channel p50".into(),
            ratio: pipe.p50 / spin.p50,
            target: 50.0,
            at_most: false,
        },
        Goal {
            text: "64 KiB streaming: channel / pipe".into(),
            ratio: stream("channel") / stream("pipe"),
            target: 4.0,
            at_most: false,
        },
        Goal {
            text: "64 KiB streaming: channel / unix socket".into(),
            ratio: stream("channel") / stream("unix_socket"),
            target: 2.5,
            at_most: false,
        },
        Goal {
            text: "8-byte messages: channel, millions/s".into(),
            ratio: msgs("channel") / 1e6,
            target: 50.0,
            at_most: false,
        },
        Goal {
            text: "8-byte messages: channel / pipe".into(),
            ratio: msgs("channel") / msgs("pipe"),
            target: 30.0,
            at_most: false,
        },
        Goal {
            text: "parked channel p50 / pipe p50".into(),
            ratio: parked.p50 / pipe.p50,
            target: 1.0,
            at_most: true,
        },
    ];
    if f.lat.iter().any(|l| l.0 == "iceoryx2") {
        goals.insert(
            3,
            Goal {
                text: "iceoryx2 p50 / channel p50".into(),
                ratio: lat("iceoryx2").p50 / spin.p50,
                target: 1.0,
                at_most: false,
            },
        );
    }
    goals
}

fn ns(v: f64) -> String {
    if v >= 10_000_000.0 {
        format!("{:.1} ms", v / 1e6)
    } else if v >= 10_000.0 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

/// The human-readable report.
pub(super) fn print_table(
    f: &Figures,
    goals: &[Goal],
    sizes: &Sizes,
    place: &Placement,
    runs: u32,
) {
    println!("shmex bench channel");
    println!(
        "  machine: {}, {}",
        plural(nproc() as u64, "CPU", "CPUs"),
        cpu_model()
    );
    println!("  {}", place.describe());
    println!(
        "  every figure is the median of {}, each run in fresh processes, the paths of a table measured in turn within each run",
        plural(u64::from(runs), "run", "runs")
    );
    println!();
    println!(
        "one-way latency of an 8-byte message (round trip / 2; {} round trips per run after {} warm-up)",
        sizes.round_trips, sizes.warmup
    );
    println!(
        "  {:<42} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "path", "p50", "p99", "p99.9", "max", "p50/channel"
    );
    let chan = f
        .lat
        .iter()
        .find(|l| l.0 == "channel_spin")
        .map_or(f64::NAN, |l| l.2.p50);
    for (_, label, l) in &f.lat {
        println!(
            "  {:<42} {:>9} {:>9} {:>9} {:>9} {:>10.2}×",
            label,
            ns(l.p50),
            ns(l.p99),
            ns(l.p999),
            ns(l.max),
            l.p50 / chan
        );
    }
    println!();
    println!(
        "streaming throughput, 64 KiB messages, {} MiB per run",
        sizes.stream_bytes >> 20
    );
    for (_, label, v) in &f.stream {
        println!("  {label:<42} {v:>8.2} GiB/s");
    }
    println!();
    println!("8-byte messages per second");
    for (_, label, v) in &f.msgs {
        println!("  {label:<42} {:>8.2} M/s", v / 1e6);
    }
    println!();
    println!("goals (ratios to baselines measured in this run)");
    for g in goals {
        let op = if g.at_most { "≤" } else { "≥" };
        println!(
            "  [{}] {:<42} {:>9.2}   goal {op} {}",
            if g.met() { " met " } else { "MISSED" },
            g.text,
            g.ratio,
            g.target
        );
    }
}

/// The report as one JSON object.
pub(super) fn to_json(
    figures: &Figures,
    goals: &[Goal],
    sizes: &Sizes,
    place: &Placement,
    args: &Args,
) -> Value {
    let lat: serde_json::Map<String, Value> = figures
        .lat
        .iter()
        .map(|(k, label, l)| {
            (
                (*k).to_owned(),
                json!({"label": label, "p50_ns": l.p50, "p99_ns": l.p99, "p999_ns": l.p999, "max_ns": l.max}),
            )
        })
        .collect();
    let stream: serde_json::Map<String, Value> = figures
        .stream
        .iter()
        .map(|(k, label, v)| ((*k).to_owned(), json!({"label": label, "gib_per_s": v})))
        .collect();
    let msgs: serde_json::Map<String, Value> = figures
        .msgs
        .iter()
        .map(|(k, label, v)| ((*k).to_owned(), json!({"label": label, "per_s": v})))
        .collect();
    json!({
        "machine": {"nproc": nproc(), "cpu_model": cpu_model(), "allowed_cpus": place.allowed},
        "placement": {"measuring_cpu": place.parent, "worker_cpu": place.worker},
        "runs": args.runs,
        "quick": args.quick,
        "round_trips_per_run": sizes.round_trips,
        "warmup_round_trips": sizes.warmup,
        "stream_bytes_per_run": sizes.stream_bytes,
        "latency_one_way": lat,
        "stream_64k": stream,
        "messages_8b": msgs,
        "goals": goals.iter().map(|g| json!({
            "goal": g.text, "ratio": g.ratio, "target": g.target,
            "at_most": g.at_most, "met": g.met(),
        })).collect::<Vec<_>>(),
    })
}
