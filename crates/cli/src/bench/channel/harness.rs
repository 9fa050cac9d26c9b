//! What every measurement of the channel benchmark shares: how much it
//! measures, where the two processes run, the worker process and how to
//! wait for it, and the round-trip timer behind every latency figure.

use std::io::Read as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;

use crate::bench::stats::median;
use crate::support::{exe, scratch};

/// Bytes of one latency message.
pub(super) const PING: usize = 8;
/// Bytes of one streaming message.
pub(super) const STREAM_MSG: usize = 64 * 1024;
/// Longest wait for a worker to attach or answer before giving up.
const STARTUP: Duration = Duration::from_secs(10);

/// How much each figure measures.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sizes {
    pub(super) warmup: u64,
    pub(super) round_trips: u64,
    pub(super) stream_bytes: u64,
    pub(super) chan_msgs: u64,
    pub(super) pipe_msgs: u64,
}

impl Sizes {
    pub(super) fn new(quick: bool) -> Sizes {
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
pub(super) struct Placement {
    pub(super) parent: Option<usize>,
    pub(super) worker: Option<usize>,
    pub(super) allowed: usize,
}

impl Placement {
    pub(super) fn choose() -> Placement {
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

    pub(super) fn describe(&self) -> String {
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
pub(super) struct WorkerProc {
    child: Option<Child>,
    what: String,
}

impl WorkerProc {
    pub(super) fn spawn(
        kind: &str,
        place: &Placement,
        args: &[String],
        stdin: Stdio,
        stdout: Stdio,
    ) -> anyhow::Result<WorkerProc> {
        let child = exe::command()?
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

    pub(super) fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("worker present")
    }

    /// Fails if the worker has exited already.
    pub(super) fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(st) = self.child().try_wait()? {
            bail!("the {} worker exited early ({st})", self.what);
        }
        Ok(())
    }

    /// Waits for a clean exit and returns what it printed.
    pub(super) fn finish(mut self) -> anyhow::Result<String> {
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

/// A name for one measurement's channel or segment.
pub(super) fn unique_name(tag: &str) -> String {
    scratch::unique_name(&format!("bench-{tag}"))
}

/// Percentiles of one run, in nanoseconds one way.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Lat {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) p999: f64,
    pub(super) max: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Times `round_trips` calls of `rt` after `warmup`; one way = round trip / 2.
pub(super) fn ping_pong(
    sizes: &Sizes,
    mut rt: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<Lat> {
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

/// The median of each percentile over runs.
pub(super) fn median_lat(runs: &[Lat]) -> Lat {
    Lat {
        p50: median(&mut runs.iter().map(|l| l.p50).collect::<Vec<_>>()),
        p99: median(&mut runs.iter().map(|l| l.p99).collect::<Vec<_>>()),
        p999: median(&mut runs.iter().map(|l| l.p999).collect::<Vec<_>>()),
        max: median(&mut runs.iter().map(|l| l.max).collect::<Vec<_>>()),
    }
}

/// Waits (bounded) for a condition that a worker makes true.
pub(super) fn await_worker(
    w: &mut WorkerProc,
    what: &str,
    cond: impl Fn() -> bool,
) -> anyhow::Result<()> {
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
