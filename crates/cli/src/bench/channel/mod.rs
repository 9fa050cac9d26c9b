//! `shmex bench channel`: the channel against the kernel's paths, every
//! figure measured in the same run on the same machine.
//!
//! The second process of each measurement is this binary re-executed as
//! `shmex __channel-worker KIND CPU ARGS…` ([`worker`]). Pipes, sockets and
//! eventfds reach it as its stdin/stdout; channels and the cache-line
//! segment by name (each name is removed as soon as the worker attached).
//!
//! [`harness`] holds what every measurement shares, [`latency`] and
//! [`throughput`] the measurements, [`workers`] the second process's side,
//! [`report`] the table and the JSON.

mod harness;
#[cfg(feature = "peers")]
mod iceoryx;
mod latency;
mod report;
mod throughput;
mod workers;

use anyhow::{Context as _, anyhow};
use channel::Wait;

use crate::bench::args::Args;
use crate::bench::progress::Progress;
use crate::bench::stats::median;
use harness::{Lat, PING, Placement, STREAM_MSG, Sizes, median_lat};
use latency::{lat_channel, lat_eventfd, lat_floor, lat_pipe, lat_socket};
use report::{Figures, goals, print_table, to_json};
use throughput::{GIB, memcpy_gib_s, tput_channel, tput_fd};
pub use workers::worker;

/// One throughput measurement: a figure per call.
type RateFn<'a> = Box<dyn Fn() -> anyhow::Result<f64> + 'a>;

/// Measures every path once per run, in turn, and returns each path's
/// median.
fn interleave(
    runs: u32,
    what: &str,
    paths: &[(&'static str, &'static str, RateFn<'_>)],
    progress: &Progress,
) -> anyhow::Result<Vec<(&'static str, &'static str, f64)>> {
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for run in 1..=runs {
        for ((_, label, f), v) in paths.iter().zip(&mut all) {
            progress.step(&format!("{what} {label} (run {run} of {runs})"))?;
            v.push(f().with_context(|| format!("{what} {label}"))?);
        }
    }
    Ok(paths
        .iter()
        .zip(all)
        .map(|((key, label, _), mut v)| (*key, *label, median(&mut v)))
        .collect())
}

/// Every figure, measured on the thread pinned to the measuring CPU.
fn measure(args: &Args, sizes: &Sizes, place: &Placement) -> anyhow::Result<Figures> {
    if let Some(cpu) = place.parent {
        shm::sys::pin_to_cpu(cpu).with_context(|| format!("cannot pin to CPU {cpu}"))?;
    }
    let runs = args.runs;
    let progress = Progress::new("bench channel");
    type LatFn = fn(&Sizes, &Placement) -> anyhow::Result<Lat>;
    #[cfg_attr(not(feature = "peers"), allow(unused_mut))]
    let mut lat_paths: Vec<(&str, &str, LatFn)> = vec![
        ("floor", "cache-line floor (one shared atomic)", lat_floor),
        (
            "channel_spin",
            "shmex channel, both sides spinning",
            |s, p| lat_channel(s, p, Wait::Spin),
        ),
        (
            "channel_parked",
            "shmex channel, receiver parked (futex)",
            |s, p| lat_channel(s, p, Wait::Park),
        ),
        ("pipe", "pipe", lat_pipe),
        ("unix_socket", "unix socketpair", lat_socket),
        ("eventfd", "eventfd pair", lat_eventfd),
    ];
    #[cfg(feature = "peers")]
    lat_paths.push((
        "iceoryx2",
        "iceoryx2 publish-subscribe, busy waiting",
        iceoryx::lat_iceoryx,
    ));
    // Run-major order: each run measures every path once, in turn, so that
    // a path and its baselines see the same conditions (the host moves the
    // vCPUs now and then, which changes the floor severalfold).
    let mut lat_runs: Vec<Vec<Lat>> = vec![Vec::new(); lat_paths.len()];
    for run in 1..=runs {
        for ((_, label, f), all) in lat_paths.iter().zip(&mut lat_runs) {
            progress.step(&format!("latency of {label} (run {run} of {runs})"))?;
            all.push(f(sizes, place).with_context(|| format!("latency of {label}"))?);
        }
    }
    let lat = lat_paths
        .iter()
        .zip(&lat_runs)
        .map(|((key, label, _), all)| (*key, *label, median_lat(all)))
        .collect();

    let count = sizes.stream_bytes / STREAM_MSG as u64;
    let gib = |r: (f64, f64, f64)| r.1 / r.0 / GIB;
    let stream_paths: Vec<(&str, &str, RateFn)> = vec![
        (
            "channel",
            "shmex channel",
            Box::new(|| tput_channel(place, STREAM_MSG, count).map(gib)),
        ),
        (
            "pipe",
            "pipe",
            Box::new(|| tput_fd(place, "pipe", STREAM_MSG, count).map(gib)),
        ),
        (
            "unix_socket",
            "unix socket",
            Box::new(|| tput_fd(place, "socket", STREAM_MSG, count).map(gib)),
        ),
        (
            "memcpy",
            "memcpy (one process, one core)",
            Box::new(|| Ok(memcpy_gib_s(sizes.stream_bytes))),
        ),
    ];
    let stream = interleave(
        runs,
        "streaming 64 KiB messages through",
        &stream_paths,
        &progress,
    )?;

    let rate = |r: (f64, f64, f64)| r.2 / r.0;
    let msg_paths: Vec<(&str, &str, RateFn)> = vec![
        (
            "channel",
            "shmex channel",
            Box::new(|| tput_channel(place, PING, sizes.chan_msgs).map(rate)),
        ),
        (
            "pipe",
            "pipe",
            Box::new(|| tput_fd(place, "pipe", PING, sizes.pipe_msgs).map(rate)),
        ),
    ];
    let msgs = interleave(runs, "8-byte messages through", &msg_paths, &progress)?;
    Ok(Figures { lat, stream, msgs })
}

/// Runs the benchmark; prints its table unless `args.json`; returns the
/// figures as JSON.
pub fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let sizes = Sizes::new(args.quick);
    let place = Placement::choose();
    // Pinning applies to the measuring thread only, so that whatever the
    // process does afterwards (another benchmark) is not confined.
    let figures = std::thread::scope(|s| {
        s.spawn(|| measure(args, &sizes, &place))
            .join()
            .map_err(|_| anyhow!("the measuring thread panicked"))?
    })?;
    let goals = goals(&figures);
    if !args.json {
        print_table(&figures, &goals, &sizes, &place, args.runs);
    }
    Ok(to_json(&figures, &goals, &sizes, &place, args))
}
