//! Throughput: a stream of messages from the measuring process to a sink
//! worker, through the channel, a pipe or a socket, and memcpy as the
//! ceiling.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};
use channel::{Options, Sender};
use shm::SegmentId;

use super::harness::{Placement, STREAM_MSG, WorkerProc, await_worker, unique_name};
use crate::support::plural::plural;

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
pub(super) fn tput_channel(
    place: &Placement,
    len: usize,
    count: u64,
) -> anyhow::Result<(f64, f64, f64)> {
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
            "the channel sink got {} ({}) after the first, not {after_first}",
            plural(report.2 as u64, "message", "messages"),
            plural(report.1 as u64, "byte", "bytes"),
        );
    }
    Ok(report)
}

/// Sends `count` messages of `len` bytes through a pipe or a socket
/// (`kind`) to a sink worker; returns its report.
pub(super) fn tput_fd(
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

/// GiB/s of copying 64 KiB blocks within one process.
pub(super) fn memcpy_gib_s(bytes: u64) -> f64 {
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

/// Bytes in a GiB.
pub(super) const GIB: f64 = (1u64 << 30) as f64;
