//! iceoryx2 as a latency peer of the channel (only with `--features peers`):
//! publish-subscribe of a `u64`, both sides busy-waiting on `receive`, the
//! setup iceoryx2's own publish-subscribe benchmark uses (one publisher and
//! one subscriber per direction, no history, a buffer of one sample).
//!
//! iceoryx2 keeps its bookkeeping in files under a root directory (by
//! default `/tmp/iceoryx2`) and its data in `/dev/shm`, named with a
//! prefix; some of it outlives every process on purpose (a domain's node
//! counter stays in `/dev/shm` for good). So each measurement runs in a
//! domain of its own, a root directory and a prefix made of its pid, its
//! start time and a counter, and removes both when it ends; a run killed
//! before it could is swept by the next one. A run leaves nothing behind
//! and never touches another iceoryx2 user's files.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, anyhow, bail};
use iceoryx2::prelude::*;

use shm::sync::ProcessId;

use super::harness::{
    Lat, Placement, Sizes, Spin, WorkerProc, await_worker, check_parent, ping_pong,
};

/// How this benchmark's iceoryx2 roots and prefixes start; the rest is the
/// owner's pid, its start time and a counter.
const STEM: &str = "shmex-bench-iox-";

/// Where one measurement's iceoryx2 files live.
struct Place {
    tag: String,
    root: PathBuf,
    prefix: String,
}

impl Place {
    fn new() -> Place {
        static N: AtomicU32 = AtomicU32::new(0);
        let me = ProcessId::current();
        let tag = format!(
            "{}-{}-{}",
            me.pid,
            me.start_time,
            N.fetch_add(1, Ordering::Relaxed)
        );
        Place {
            root: std::env::temp_dir().join(format!("{STEM}{tag}")),
            prefix: format!("{STEM}{tag}_"),
            tag,
        }
    }

    /// Removes what a benchmark killed before it could clean up (by
    /// `SIGKILL`) left behind: the places whose process is gone.
    fn sweep_stale() {
        let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for e in dir.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(tag) = name.strip_prefix(STEM) else {
                continue;
            };
            let mut parts = tag.split('-').map(str::parse::<u64>);
            let (Some(Ok(pid)), Some(Ok(start_time)), Some(Ok(_)), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let owner = ProcessId {
                pid: u32::try_from(pid).unwrap_or(0),
                start_time,
            };
            if !owner.is_alive() {
                drop(Place {
                    root: e.path(),
                    prefix: format!("{name}_"),
                    tag: tag.to_owned(),
                });
            }
        }
    }

    /// The files this measurement left in `/dev/shm` (none once iceoryx2
    /// cleaned up after itself).
    fn leftovers(&self) -> Vec<PathBuf> {
        std::fs::read_dir("/dev/shm")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(&self.prefix))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        for f in self.leftovers() {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn config(root: &str, prefix: &str) -> anyhow::Result<Config> {
    let mut cfg = Config::default();
    // The root must end in '/', as iceoryx2's own default does.
    let root = format!("{}/", root.trim_end_matches('/'));
    cfg.global.set_root_path(
        &Path::new(root.as_bytes()).map_err(|e| anyhow!("bad iceoryx2 root {root:?}: {e:?}"))?,
    );
    cfg.global.prefix = FileName::new(prefix.as_bytes())
        .map_err(|e| anyhow!("bad iceoryx2 prefix {prefix:?}: {e:?}"))?;
    Ok(cfg)
}

fn node(cfg: &Config) -> anyhow::Result<Node<ipc::Service>> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .config(cfg)
        // Termination signals are the benchmark's to handle.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(|e| anyhow!("cannot create an iceoryx2 node: {e:?}"))
}

fn service_name(s: &str) -> anyhow::Result<ServiceName> {
    ServiceName::new(s).map_err(|e| anyhow!("bad iceoryx2 service name {s:?}: {e:?}"))
}

/// One-way latency of iceoryx2 publish-subscribe with busy waiting.
pub(super) fn lat_iceoryx(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
    Place::sweep_stale();
    let files = Place::new();
    let root = files
        .root
        .to_str()
        .context("temporary directory is not UTF-8")?
        .to_owned();
    let cfg = config(&root, &files.prefix)?;
    let total = sizes.warmup + sizes.round_trips;
    let lat = {
        let node = node(&cfg)?;
        let create = |name: &str| {
            node.service_builder(&service_name(name)?)
                .publish_subscribe::<u64>()
                .max_publishers(1)
                .max_subscribers(1)
                .history_size(0)
                .subscriber_max_buffer_size(1)
                .enable_safe_overflow(true)
                .create()
                .map_err(|e| anyhow!("cannot create iceoryx2 service {name}: {e:?}"))
        };
        let (ping_name, pong_name) = (
            format!("shmex/bench/{}/ping", files.tag),
            format!("shmex/bench/{}/pong", files.tag),
        );
        let ping = create(&ping_name)?;
        let pong = create(&pong_name)?;
        let publisher = ping
            .publisher_builder()
            .create()
            .map_err(|e| anyhow!("cannot create an iceoryx2 publisher: {e:?}"))?;
        let subscriber = pong
            .subscriber_builder()
            .create()
            .map_err(|e| anyhow!("cannot create an iceoryx2 subscriber: {e:?}"))?;
        let mut w = WorkerProc::spawn(
            "iox-echo",
            place,
            &[
                root.clone(),
                files.prefix.clone(),
                ping_name,
                pong_name,
                total.to_string(),
            ],
            Stdio::null(),
            Stdio::null(),
        )?;
        await_worker(&mut w, "connect", || {
            ping.dynamic_config().number_of_subscribers() == 1
                && pong.dynamic_config().number_of_publishers() == 1
        })?;
        let single = place.worker.is_none();
        let lat = ping_pong(sizes, |i| {
            publisher
                .send_copy(i)
                .map_err(|e| anyhow!("iceoryx2 send: {e:?}"))?;
            let mut spin = Spin::new(single);
            loop {
                if let Some(sample) = subscriber
                    .receive()
                    .map_err(|e| anyhow!("iceoryx2 receive: {e:?}"))?
                {
                    if *sample != i {
                        bail!("iceoryx2 echo of {} for {i}", *sample);
                    }
                    break;
                }
                if spin.turn() {
                    w.check_running()?;
                }
            }
            Ok(())
        })?;
        w.finish()?;
        lat
    };
    Ok(lat)
}

/// The worker side: `ROOT PREFIX PING PONG TOTAL`; echoes TOTAL samples.
pub(super) fn worker(args: &[String], single: bool) -> anyhow::Result<()> {
    let [root, prefix, ping, pong, total] = args else {
        bail!("usage: __channel-worker iox-echo CPU ROOT PREFIX PING PONG TOTAL");
    };
    let total: u64 = total.parse().context("bad count")?;
    let cfg = config(root, prefix)?;
    let node = node(&cfg)?;
    let open = |name: &str| {
        node.service_builder(&service_name(name)?)
            .publish_subscribe::<u64>()
            .open()
            .map_err(|e| anyhow!("cannot open iceoryx2 service {name}: {e:?}"))
    };
    let (ping, pong) = (open(ping)?, open(pong)?);
    let subscriber = ping
        .subscriber_builder()
        .create()
        .map_err(|e| anyhow!("cannot create an iceoryx2 subscriber: {e:?}"))?;
    let publisher = pong
        .publisher_builder()
        .create()
        .map_err(|e| anyhow!("cannot create an iceoryx2 publisher: {e:?}"))?;
    let parent = std::os::unix::process::parent_id();
    for _ in 0..total {
        let mut spin = Spin::new(single);
        let v = loop {
            if let Some(sample) = subscriber
                .receive()
                .map_err(|e| anyhow!("iceoryx2 receive: {e:?}"))?
            {
                break *sample;
            }
            if spin.turn() {
                check_parent(parent)?;
            }
        };
        publisher
            .send_copy(v)
            .map_err(|e| anyhow!("iceoryx2 send: {e:?}"))?;
    }
    Ok(())
}
