//! The demo's third part: the channel, through `shmex send` and `shmex
//! recv` running as two separate processes, beside a pipe between two
//! processes measured on the spot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use shm::SegmentId;

use super::step::step;
use crate::support::error::Interrupted;
use crate::support::exe::{self, Process};
use crate::support::scratch::{self, Guard};

/// Bytes of the bulk transfer.
const BULK: usize = 256 << 20;

/// The alphabet, then a bulk transfer, each `send < FILE_IN` and `recv >
/// FILE_OUT` with each end its own process; and the same bulk transfer
/// through a pipe, `cat < FILE_IN | cat > FILE_OUT`.
pub fn run() -> anyhow::Result<()> {
    let base = scratch::name("demo-channel");
    step(
        "The channel: the producer hands the alphabet to the consumer through a ring in shared memory.",
    );
    println!("    $ shmex recv {base}-a > out &  shmex send {base}-a < alphabet");
    let alphabet = Files::new(&format!("{base}-a"), b"abcdefghijklmnopqrstuvwxyz")?;
    pair(&format!("{base}-a"), &alphabet)?;
    let got = alphabet.received()?;
    println!("      recv wrote: {}", String::from_utf8_lossy(&got));
    anyhow::ensure!(
        got == b"abcdefghijklmnopqrstuvwxyz",
        "the alphabet did not arrive whole"
    );

    step(&format!(
        "The same pair moves a {} MiB file, and beside it, measured now, a pipe between two processes does the same: `cat < in | cat > out`.",
        BULK >> 20
    ));
    let data: Vec<u8> = (0..BULK as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    let bulk = Files::new(&format!("{base}-b"), &data)?;
    let by_channel = pair(&format!("{base}-b"), &bulk)?;
    anyhow::ensure!(bulk.received()? == data, "the file arrived changed");
    let by_pipe = match through_pipe(&bulk) {
        Ok(took) => {
            anyhow::ensure!(bulk.received()? == data, "the file arrived changed");
            Some(took)
        }
        Err(e) => {
            Interrupted::check("the demo")?;
            println!("      (the pipe was not measured: {e:#})");
            None
        }
    };
    drop(data);
    println!(
        "      {} MiB arrived intact; the time includes starting both processes and reading and writing the files:",
        BULK >> 20
    );
    let row = |what: &str, took: Duration| {
        println!(
            "        {what:<34} {:>6.0} ms  {:>5.2} GiB/s",
            took.as_secs_f64() * 1e3,
            BULK as f64 / took.as_secs_f64() / f64::from(1u32 << 30)
        );
    };
    row("shmex send | shmex recv (channel)", by_channel);
    if let Some(took) = by_pipe {
        row("cat | cat (pipe)", took);
    }
    println!(
        "      with files at both ends, the files cost much of the time; `shmex bench channel` measures the ring alone, against pipes, sockets and eventfd"
    );
    println!("      the channel's segment went away when both ends were done");
    Ok(())
}

/// A file to send and the file it arrives in, both removed when dropped
/// (with the channel, should a step fail before both ends attach).
struct Files {
    src: PathBuf,
    dst: PathBuf,
    _guard: Guard,
}

impl Files {
    fn new(name: &str, data: &[u8]) -> anyhow::Result<Files> {
        let dir = std::env::temp_dir();
        let (src, dst) = (
            dir.join(format!("{name}.in")),
            dir.join(format!("{name}.out")),
        );
        let guard = Guard::new(
            vec![SegmentId::posix(name.to_owned())?],
            vec![src.clone(), dst.clone()],
        );
        std::fs::write(&src, data).with_context(|| format!("cannot write {}", src.display()))?;
        Ok(Files {
            src,
            dst,
            _guard: guard,
        })
    }

    fn received(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(&self.dst).with_context(|| format!("cannot read {}", self.dst.display()))
    }
}

fn open(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

fn create(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Sends `files.src` through channel `name` from one process to another,
/// into `files.dst`; returns how long it took.
fn pair(name: &str, files: &Files) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut recv = Process::spawn(
        exe::command()?
            .args(["recv", name, "--timeout", "10"])
            .stdin(Stdio::null())
            .stdout(create(&files.dst)?),
    )?;
    let sent = exe::status(
        exe::command()?
            .args(["send", name, "--timeout", "10"])
            .stdin(open(&files.src)?),
    )?;
    let received = recv.wait()?;
    let took = started.elapsed();
    anyhow::ensure!(
        sent.success() && received.success(),
        "shmex send or recv failed"
    );
    Ok(took)
}

/// Copies `files.src` to `files.dst` by `cat < src | cat > dst`; returns
/// how long it took.
fn through_pipe(files: &Files) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut writer = Process::spawn(
        Command::new("cat")
            .stdin(open(&files.src)?)
            .stdout(Stdio::piped()),
    )?;
    let pipe = writer.child().stdout.take().context("no pipe from cat")?;
    let mut reader = Process::spawn(Command::new("cat").stdin(pipe).stdout(create(&files.dst)?))?;
    let wrote = writer.wait()?;
    let read = reader.wait()?;
    let took = started.elapsed();
    anyhow::ensure!(wrote.success() && read.success(), "cat failed");
    Ok(took)
}
