//! `shmex bench channel`: the channel against the kernel's paths, every
//! figure measured in the same run on the same machine.
//!
//! The second process of each measurement is this binary re-executed as
//! `shmex __channel-worker KIND CPU ARGS…` ([`worker`]). Pipes, sockets and
//! eventfds reach it as its stdin/stdout; channels and the cache-line
//! segment by name (each name is removed as soon as the worker attached).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use channel::{Options, Receiver, Sender, Wait};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use shm::{Segment, SegmentId};

#[cfg(feature = "peers")]
#[path = "iceoryx.rs"]
mod iceoryx;

/// Bytes of one latency message.
const PING: usize = 8;
/// Bytes of one streaming message.
const STREAM_MSG: usize = 64 * 1024;
/// Longest wait for a worker to attach or answer before giving up.
const STARTUP: Duration = Duration::from_secs(10);

/// How much each figure measures.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    warmup: u64,
    round_trips: u64,
    stream_bytes: u64,
    chan_msgs: u64,
    pipe_msgs: u64,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                warmup: 2_000,
                round_trips: 20_000,
                stream_bytes: 256 << 20,
                chan_msgs: 2_000_000,
                pipe_msgs: 100_000,
            }
        } else {
            Sizes {
                warmup: 10_000,
                round_trips: 100_000,
                stream_bytes: 1 << 30,
                chan_msgs: 20_000_000,
                pipe_msgs: 500_000,
            }
        }
    }
}

/// Where the two processes run.
#[derive(Clone, Debug)]
struct Placement {
    parent: Option<usize>,
    worker: Option<usize>,
    allowed: usize,
}

impl Placement {
    fn choose() -> Placement {
        let cpus = shm::sys::allowed_cpus();
        if cpus.len() >= 2 {
            Placement {
                parent: Some(cpus[0]),
                worker: Some(cpus[1]),
                allowed: cpus.len(),
            }
        } else {
            Placement {
                parent: None,
                worker: None,
                allowed: cpus.len(),
            }
        }
    }

    fn describe(&self) -> String {
        match (self.parent, self.worker) {
            (Some(p), Some(w)) => format!(
                "measuring process pinned to CPU {p}, worker process pinned to CPU {w} ({} CPUs allowed)",
                self.allowed
            ),
            _ => format!(
                "not pinned: only {} CPU allowed, so both processes share it",
                self.allowed
            ),
        }
    }

    fn worker_arg(&self) -> String {
        self.worker.map_or_else(|| "-".into(), |c| c.to_string())
    }
}

/// A worker process, killed and reaped if the measurement fails.
struct WorkerProc {
    child: Option<Child>,
    what: String,
}

impl WorkerProc {
    fn spawn(
        kind: &str,
        place: &Placement,
        args: &[String],
        stdin: Stdio,
        stdout: Stdio,
    ) -> anyhow::Result<WorkerProc> {
        let exe = std::env::current_exe().context("cannot find the shmex binary")?;
        let child = Command::new(exe)
            .arg("__channel-worker")
            .arg(kind)
            .arg(place.worker_arg())
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the {kind} worker"))?;
        Ok(WorkerProc {
            child: Some(child),
            what: kind.to_owned(),
        })
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("worker present")
    }

    /// Fails if the worker has exited already.
    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(st) = self.child().try_wait()? {
            bail!("the {} worker exited early ({st})", self.what);
        }
        Ok(())
    }

    /// Waits for a clean exit and returns what it printed.
    fn finish(mut self) -> anyhow::Result<String> {
        let mut child = self.child.take().expect("worker present");
        let mut out = String::new();
        let read = child.stdout.take().map(|mut o| o.read_to_string(&mut out));
        let st = child.wait()?;
        if let Some(r) = read {
            r.context("cannot read the worker's report")?;
        }
        if !st.success() {
            bail!("the {} worker failed ({st})", self.what);
        }
        Ok(out)
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmex-bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Percentiles of one run, in nanoseconds one way.
#[derive(Clone, Copy, Debug, Default)]
struct Lat {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Times `round_trips` calls of `rt` after `warmup`; one way = round trip / 2.
fn ping_pong(sizes: &Sizes, mut rt: impl FnMut(u64) -> anyhow::Result<()>) -> anyhow::Result<Lat> {
    for i in 0..sizes.warmup {
        rt(i)?;
    }
    let mut h = histogram();
    let mut t0 = Instant::now();
    for i in 0..sizes.round_trips {
        rt(sizes.warmup + i)?;
        let t1 = Instant::now();
        let one_way = (t1.duration_since(t0).as_nanos() / 2).max(1);
        h.record(u64::try_from(one_way).unwrap_or(u64::MAX))?;
        t0 = t1;
    }
    Ok(Lat {
        p50: h.value_at_quantile(0.50) as f64,
        p99: h.value_at_quantile(0.99) as f64,
        p999: h.value_at_quantile(0.999) as f64,
        max: h.max() as f64,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_lat(runs: &[Lat]) -> Lat {
    Lat {
        p50: median(runs.iter().map(|l| l.p50).collect()),
        p99: median(runs.iter().map(|l| l.p99).collect()),
        p999: median(runs.iter().map(|l| l.p999).collect()),
        max: median(runs.iter().map(|l| l.max).collect()),
    }
}

/// Waits (bounded) for a condition that a worker makes true.
fn await_worker(w: &mut WorkerProc, what: &str, cond: impl Fn() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !cond() {
        w.check_running()?;
        if start.elapsed() > STARTUP {
            bail!("the worker did not {what} within {} s", STARTUP.as_secs());
        }
        if let Some(sig) = shm::sys::termination_signal() {
            bail!("interrupted by signal {sig}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

// ---- latency -------------------------------------------------------------

fn lat_floor(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
    let name = unique_name("floor");
    let id = SegmentId::posix(name.clone())?;
    let seg = Segment::create(&id, 4096, 0o600)?;
    let cleanup = RemoveOnDrop(id.clone());
    let words = seg.view_slice::<AtomicU64>(0, 32)?;
    // The flipped word and the worker's "attached" word on separate lines.
    let (flip, ready) = (&words[0], &words[16]);
    let total = sizes.warmup + sizes.round_trips;
    let mut w = WorkerProc::spawn(
        "floor",
        place,
        &[name, total.to_string()],
        Stdio::null(),
        Stdio::null(),
    )?;
    await_worker(&mut w, "attach", || ready.load(Ordering::Acquire) == 1)?;
    drop(cleanup);
    let single = place.worker.is_none();
    let lat = ping_pong(sizes, |i| {
        flip.store(2 * i + 1, Ordering::Release);
        let mut spin = Spin::new(single);
        while flip.load(Ordering::Acquire) != 2 * i + 2 {
            if spin.turn() {
                w.check_running()?;
            }
        }
        Ok(())
    })?;
    w.finish()?;
    Ok(lat)
}

/// A busy wait of a benchmark, one turn at a time: a spin, or a yield where
/// both processes share one CPU. Every 2^20 turns, [`Spin::turn`] says it
/// is time to look whether the other process still runs (a look is a
/// system call, too dear for every turn).
pub(super) struct Spin {
    single: bool,
    turns: u32,
}

impl Spin {
    pub(super) fn new(single: bool) -> Spin {
        Spin { single, turns: 0 }
    }

    /// One turn; true when it is time to look at the other process.
    #[inline(always)]
    pub(super) fn turn(&mut self) -> bool {
        if self.single {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        self.turns = self.turns.wrapping_add(1);
        self.turns & ((1 << 20) - 1) == 0
    }
}

/// For a worker: fails once the measuring process `parent` is gone.
pub(super) fn check_parent(parent: u32) -> anyhow::Result<()> {
    if std::os::unix::process::parent_id() != parent {
        bail!("the measuring process is gone");
    }
    Ok(())
}

struct RemoveOnDrop(SegmentId);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = Segment::remove(&self.0);
    }
}

fn wait_name(wait: Wait) -> &'static str {
    match wait {
        Wait::Spin => "spin",
        Wait::Park => "park",
        Wait::Adaptive => "adaptive",
    }
}

fn lat_channel(sizes: &Sizes, place: &Placement, wait: Wait) -> anyhow::Result<Lat> {
    let (ping_name, pong_name) = (unique_name("ping"), unique_name("pong"));
    let opts = Options {
        capacity: 4096,
        wait,
        ..Options::default()
    };
    let mut tx = Sender::open(&SegmentId::posix(ping_name.clone())?, &opts)?;
    let mut rx = Receiver::open(&SegmentId::posix(pong_name.clone())?, &opts)?;
    let mut w = WorkerProc::spawn(
        "chan-echo",
        place,
        &[ping_name, pong_name, wait_name(wait).into()],
        Stdio::null(),
        Stdio::null(),
    )?;
    await_worker(&mut w, "attach", || {
        tx.peer_attached() && rx.peer_attached()
    })?;
    let lat = ping_pong(sizes, |i| {
        tx.send(&i.to_ne_bytes())?;
        let m = rx
            .recv()?
            .ok_or_else(|| anyhow!("the worker closed its channel"))?;
        if m.len() != PING {
            bail!("echo of {} bytes", m.len());
        }
        Ok(())
    })?;
    tx.close();
    w.finish()?;
    Ok(lat)
}

fn fd_file(fd: impl Into<OwnedFd>) -> File {
    File::from(fd.into())
}

fn lat_pipe(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
    // The worker's stdin and stdout are the two pipes.
    let mut w = WorkerProc::spawn(
        "fd-echo",
        place,
        &["pipe".into()],
        Stdio::piped(),
        Stdio::piped(),
    )?;
    let mut ping = w.child().stdin.take().context("worker stdin")?;
    let mut pong = w.child().stdout.take().context("worker stdout")?;
    let mut buf = [0u8; PING];
    let lat = ping_pong(sizes, |i| {
        ping.write_all(&i.to_ne_bytes())?;
        pong.read_exact(&mut buf)?;
        Ok(())
    })?;
    drop(ping);
    w.finish()?;
    Ok(lat)
}

fn lat_socket(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
    let (mut ours, theirs) = UnixStream::pair()?;
    let w = WorkerProc::spawn(
        "fd-echo",
        place,
        &["socket".into()],
        Stdio::from(OwnedFd::from(theirs)),
        Stdio::null(),
    )?;
    let mut buf = [0u8; PING];
    let lat = ping_pong(sizes, |i| {
        ours.write_all(&i.to_ne_bytes())?;
        ours.read_exact(&mut buf)?;
        Ok(())
    })?;
    ours.shutdown(std::net::Shutdown::Both)?;
    w.finish()?;
    Ok(lat)
}

fn lat_eventfd(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
    let ping = shm::eventfd::eventfd()?;
    let pong = shm::eventfd::eventfd()?;
    let total = sizes.warmup + sizes.round_trips;
    let w = WorkerProc::spawn(
        "efd-echo",
        place,
        &[total.to_string()],
        Stdio::from(ping.try_clone()?),
        Stdio::from(pong.try_clone()?),
    )?;
    let (mut ping, mut pong) = (fd_file(ping), fd_file(pong));
    let mut buf = [0u8; 8];
    let lat = ping_pong(sizes, |_| {
        ping.write_all(&1u64.to_ne_bytes())?;
        pong.read_exact(&mut buf)?;
        Ok(())
    })?;
    w.finish()?;
    Ok(lat)
}

// ---- throughput ------------------------------------------------------------

/// What a sink worker measured: seconds from its first message to the end,
/// and the bytes and messages after the first.
fn parse_sink(out: &str) -> anyhow::Result<(f64, f64, f64)> {
    let v: Vec<f64> = out
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("bad worker report")?;
    match v[..] {
        [secs, bytes, msgs] if secs > 0.0 => Ok((secs, bytes, msgs)),
        _ => bail!("bad worker report {out:?}"),
    }
}

/// Sends `count` messages of `len` bytes through a channel to a sink
/// worker; returns its report.
fn tput_channel(place: &Placement, len: usize, count: u64) -> anyhow::Result<(f64, f64, f64)> {
    let name = unique_name("stream");
    let mut tx = Sender::open(&SegmentId::posix(name.clone())?, &Options::default())?;
    let mut w = WorkerProc::spawn(
        "chan-sink",
        place,
        &[name, len.to_string()],
        Stdio::null(),
        Stdio::piped(),
    )?;
    await_worker(&mut w, "attach", || tx.peer_attached())?;
    let msg = vec![0x5au8; len];
    for _ in 0..count {
        tx.send(&msg)?;
    }
    tx.close();
    let report = parse_sink(&w.finish()?)?;
    // The sink counts what came after the first message.
    let after_first = count.saturating_sub(1);
    if report.2 as u64 != after_first || report.1 as u64 != after_first * len as u64 {
        bail!(
            "the channel sink got {} messages ({} bytes) after the first, not {}",
            report.2,
            report.1,
            after_first
        );
    }
    Ok(report)
}

fn tput_fd(
    place: &Placement,
    kind: &str,
    len: usize,
    count: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    let (mut out, w): (Box<dyn Write>, WorkerProc) = match kind {
        "pipe" => {
            let mut w = WorkerProc::spawn(
                "fd-sink",
                place,
                &[len.to_string()],
                Stdio::piped(),
                Stdio::piped(),
            )?;
            let pipe = w.child().stdin.take().context("worker stdin")?;
            (Box::new(pipe), w)
        }
        _ => {
            let (ours, theirs) = UnixStream::pair()?;
            let w = WorkerProc::spawn(
                "fd-sink",
                place,
                &[len.to_string()],
                Stdio::from(OwnedFd::from(theirs)),
                Stdio::piped(),
            )?;
            (Box::new(ours), w)
        }
    };
    let msg = vec![0x5au8; len];
    for _ in 0..count {
        out.write_all(&msg)?;
    }
    drop(out);
    parse_sink(&w.finish()?)
}

fn memcpy_gib_s(bytes: u64) -> f64 {
    let src = vec![0x5au8; STREAM_MSG];
    let mut dst = vec![0u8; STREAM_MSG];
    let count = bytes / STREAM_MSG as u64;
    let start = Instant::now();
    for _ in 0..count {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
    }
    (count * STREAM_MSG as u64) as f64 / start.elapsed().as_secs_f64() / GIB
}

const GIB: f64 = (1u64 << 30) as f64;

// ---- the whole benchmark ----------------------------------------------------

struct Figures {
    lat: Vec<(&'static str, &'static str, Lat)>,
    stream: Vec<(&'static str, &'static str, f64)>,
    msgs: Vec<(&'static str, &'static str, f64)>,
}

/// One throughput measurement: a figure per call.
type RateFn<'a> = Box<dyn Fn() -> anyhow::Result<f64> + 'a>;

/// Measures every path once per run, in turn, and returns each path's
/// median.
fn interleave(
    runs: u32,
    what: &str,
    paths: &[(&'static str, &'static str, RateFn<'_>)],
    progress: &dyn Fn(&str),
) -> anyhow::Result<Vec<(&'static str, &'static str, f64)>> {
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for run in 1..=runs {
        for ((_, label, f), v) in paths.iter().zip(&mut all) {
            progress(&format!("{what} {label} (run {run} of {runs})"));
            v.push(f().with_context(|| format!("{what} {label}"))?);
        }
    }
    Ok(paths
        .iter()
        .zip(all)
        .map(|((key, label, _), v)| (*key, *label, median(v)))
        .collect())
}

fn measure(args: &super::Args, sizes: &Sizes, place: &Placement) -> anyhow::Result<Figures> {
    if let Some(cpu) = place.parent {
        shm::sys::pin_to_cpu(cpu).with_context(|| format!("cannot pin to CPU {cpu}"))?;
    }
    let runs = args.runs;
    let progress = |what: &str| {
        if !args.json {
            eprint!("\r\x1b[K  measuring {what}…");
        }
    };
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
            progress(&format!("{label} (run {run} of {runs})"));
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
    if !args.json {
        eprint!("\r\x1b[K");
    }
    Ok(Figures { lat, stream, msgs })
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

struct Goal {
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

fn goals(f: &Figures) -> Vec<Goal> {
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

fn print_table(f: &Figures, goals: &[Goal], sizes: &Sizes, place: &Placement, runs: u32) {
    println!("shmex bench channel");
    println!("  machine: {} CPUs, {}", nproc(), cpu_model());
    println!("  {}", place.describe());
    println!(
        "  every figure is the median of {runs} run(s), each run in fresh processes, the paths of a table measured in turn within each run"
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

/// Runs the benchmark; prints its table unless `args.json`; returns the
/// figures as JSON.
pub fn run(args: &super::Args) -> anyhow::Result<serde_json::Value> {
    shm::sys::catch_termination();
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
    Ok(json!({
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
    }))
}

// ---- the worker side ---------------------------------------------------------

/// Entry point of a worker process started by this benchmark:
/// `KIND CPU ARGS…`, CPU being a number or `-`.
pub fn worker(args: &[String]) -> anyhow::Result<ExitCode> {
    let [kind, cpu, rest @ ..] = args else {
        bail!("usage: __channel-worker KIND CPU ARGS…");
    };
    let single = cpu == "-";
    if !single {
        let cpu: usize = cpu.parse().context("bad CPU")?;
        shm::sys::pin_to_cpu(cpu).with_context(|| format!("cannot pin to CPU {cpu}"))?;
    }
    match (kind.as_str(), rest) {
        ("floor", [name, total]) => w_floor(name, total.parse()?, single),
        ("chan-echo", [ping, pong, wait]) => w_chan_echo(ping, pong, wait),
        ("fd-echo", [what]) => w_fd_echo(what),
        ("efd-echo", [total]) => w_efd_echo(total.parse()?),
        ("chan-sink", [name, len]) => w_chan_sink(name, len.parse()?),
        ("fd-sink", [len]) => w_fd_sink(len.parse()?),
        #[cfg(feature = "peers")]
        ("iox-echo", rest) => iceoryx::worker(rest, single),
        _ => bail!("no such worker: {args:?}"),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn w_floor(name: &str, total: u64, single: bool) -> anyhow::Result<()> {
    let seg = Segment::open(&SegmentId::posix(name)?, shm::Access::ReadWrite)?;
    let words = seg.view_slice::<AtomicU64>(0, 32)?;
    let (flip, ready) = (&words[0], &words[16]);
    ready.store(1, Ordering::Release);
    let parent = std::os::unix::process::parent_id();
    for i in 0..total {
        let mut spin = Spin::new(single);
        while flip.load(Ordering::Acquire) != 2 * i + 1 {
            if spin.turn() {
                check_parent(parent)?;
            }
        }
        flip.store(2 * i + 2, Ordering::Release);
    }
    Ok(())
}

fn w_chan_echo(ping: &str, pong: &str, wait: &str) -> anyhow::Result<()> {
    let wait = match wait {
        "spin" => Wait::Spin,
        "park" => Wait::Park,
        _ => Wait::Adaptive,
    };
    let opts = Options {
        wait,
        ..Options::default()
    };
    let mut rx = Receiver::open(&SegmentId::posix(ping)?, &opts)?;
    let mut tx = Sender::open(&SegmentId::posix(pong)?, &opts)?;
    let mut buf = [0u8; PING];
    while let Some(m) = rx.recv()? {
        buf.copy_from_slice(&m);
        drop(m);
        tx.send(&buf)?;
    }
    Ok(())
}

fn stdin_file() -> anyhow::Result<File> {
    Ok(File::from(std::io::stdin().as_fd().try_clone_to_owned()?))
}

fn stdout_file() -> anyhow::Result<File> {
    Ok(File::from(std::io::stdout().as_fd().try_clone_to_owned()?))
}

fn w_fd_echo(what: &str) -> anyhow::Result<()> {
    let mut input = stdin_file()?;
    // A socket answers on itself; a pipe on the other pipe (stdout).
    let mut output = if what == "socket" {
        input.try_clone()?
    } else {
        stdout_file()?
    };
    let mut buf = [0u8; PING];
    loop {
        match input.read_exact(&mut buf) {
            Ok(()) => output.write_all(&buf)?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn w_efd_echo(total: u64) -> anyhow::Result<()> {
    let (mut ping, mut pong) = (stdin_file()?, stdout_file()?);
    let mut buf = [0u8; 8];
    for _ in 0..total {
        ping.read_exact(&mut buf)?;
        pong.write_all(&1u64.to_ne_bytes())?;
    }
    Ok(())
}

/// Prints "SECONDS BYTES MESSAGES" counted from the first message's arrival
/// (excluding it) to the end of the stream.
fn report(start: Option<Instant>, bytes: u64, msgs: u64) -> anyhow::Result<()> {
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("{secs} {bytes} {msgs}");
    Ok(())
}

fn w_chan_sink(name: &str, len: usize) -> anyhow::Result<()> {
    let mut rx = Receiver::open(&SegmentId::posix(name)?, &Options::default())?;
    let mut buf = vec![0u8; len];
    let (mut start, mut bytes, mut msgs) = (None, 0u64, 0u64);
    while let Some(m) = rx.recv()? {
        let n = m.len().min(buf.len());
        // Copy out, as read(2) on a pipe does.
        buf[..n].copy_from_slice(&m[..n]);
        drop(m);
        if start.is_none() {
            start = Some(Instant::now());
        } else {
            bytes += n as u64;
            msgs += 1;
        }
    }
    std::hint::black_box(&buf);
    report(start, bytes, msgs)
}

fn w_fd_sink(len: usize) -> anyhow::Result<()> {
    let mut input = stdin_file()?;
    let mut buf = vec![0u8; len];
    let (mut start, mut bytes, mut msgs) = (None, 0u64, 0u64);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if start.is_none() {
            start = Some(Instant::now());
        } else {
            bytes += n as u64;
            msgs += 1;
        }
    }
    report(start, bytes, msgs)
}
