//! The second process of every channel measurement: this binary re-run
//! as `shmex __channel-worker KIND CPU ARGS…`, pinned to its CPU, echoing
//! or sinking what the measuring process sends.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, bail};
use channel::{Options, Receiver, Sender, Wait};
use shm::{Segment, SegmentId};

use super::harness::{PING, Spin, check_parent};
#[cfg(feature = "peers")]
use super::iceoryx;

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
    tx.close();
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
