//! One-way latency of an 8-byte message: the channel (spinning and
//! parked), the cache-line floor, and the kernel's paths (pipe, socket,
//! eventfd), each a ping-pong with a worker process.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, anyhow, bail};
use channel::{Options, Receiver, Sender, Wait};
use shm::{Segment, SegmentId};

use super::harness::{
    Lat, PING, Placement, Sizes, Spin, WorkerProc, await_worker, ping_pong, unique_name,
};
use crate::support::scratch::Guard;

/// The floor: one shared atomic word flipped back and forth.
pub(super) fn lat_floor(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
    let name = unique_name("floor");
    let id = SegmentId::posix(name.clone())?;
    let seg = Segment::create(&id, 4096, 0o600)?;
    let cleanup = Guard::segment(id.clone());
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

/// How a worker's command line names a way of waiting.
fn wait_name(wait: Wait) -> &'static str {
    match wait {
        Wait::Spin => "spin",
        Wait::Park => "park",
        Wait::Adaptive => "adaptive",
    }
}

pub(super) fn lat_channel(sizes: &Sizes, place: &Placement, wait: Wait) -> anyhow::Result<Lat> {
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

pub(super) fn lat_pipe(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
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

pub(super) fn lat_socket(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
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

pub(super) fn lat_eventfd(sizes: &Sizes, place: &Placement) -> anyhow::Result<Lat> {
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
