//! `shmex alphabet produce | consume`: the seed's producer and consumer,
//! wire-compatible with its C programs (a raw System V segment of 27 bytes,
//! key 5678, the letters a–z in bytes 0–25, `*` in byte 0 as the answer),
//! without its defects: the consumer waits for the whole alphabet, prints
//! all 26 letters, the producer waits without spinning and removes the
//! segment when answered.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::Subcommand;
use shm::{Access, Segment, SegmentId};

use crate::support::error::BadInput;
use crate::support::owners::AllowOwner;
use crate::support::parse::{parse_mode, parse_seconds};

/// The seed's segment size: 26 letters and room for a terminator.
pub const SIZE: u64 = 27;
/// The seed's key.
pub const DEFAULT_KEY: &str = "5678";
const ALPHABET: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";

/// Flags of `shmex alphabet`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create the segment, write a–z, wait for the consumer's `*`, remove the segment.
    Produce {
        /// System V key.
        #[arg(long, default_value = DEFAULT_KEY)]
        key: String,
        /// Give up (and remove the segment) if no consumer answers within this many seconds.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<String>,
        /// Permission bits of the segment, octal.
        #[arg(long, default_value = "0600")]
        mode: String,
    },
    /// Wait for the alphabet, print it, answer `*`.
    Consume {
        /// System V key.
        #[arg(long, default_value = DEFAULT_KEY)]
        key: String,
        /// Give up if the whole alphabet is not there within this many seconds.
        #[arg(long, value_name = "SECONDS", default_value = "10")]
        timeout: String,
        #[command(flatten)]
        owners: AllowOwner,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::Produce { key, timeout, mode } => {
            let id = SegmentId::parse_key(&key)?;
            let timeout = timeout.as_deref().map(parse_seconds).transpose()?;
            let mode = parse_mode(&mode)?;
            produce(&id, timeout, mode, &mut std::io::stdout())
        }
        Cmd::Consume {
            key,
            timeout,
            owners,
        } => {
            let id = SegmentId::parse_key(&key)?;
            owners.apply()?;
            let timeout = parse_seconds(&timeout)?;
            consume(&id, timeout, &mut std::io::stdout())
        }
    }
}

/// The first four bytes as the futex word both sides agree on: the producer
/// sleeps on it, a shmex consumer wakes it after writing `*`. A C consumer
/// cannot wake it, so the producer also re-reads every 50 ms.
fn word(seg: &Segment) -> anyhow::Result<&AtomicU32> {
    Ok(seg.view::<AtomicU32>(0)?)
}

pub fn produce(
    id: &SegmentId,
    timeout: Option<Duration>,
    mode: u32,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    if !matches!(id, SegmentId::SysV(_)) {
        return Err(BadInput("the alphabet lives in a System V segment: give --key".into()).into());
    }
    shm::sys::catch_termination();
    let seg = match Segment::create(id, SIZE, mode) {
        Ok(seg) => seg,
        Err(shm::Error::Exists { what, .. }) => {
            let attached = shm::inspect(id).ok().and_then(|i| i.attached).unwrap_or(0);
            let hint = if attached > 0 {
                format!(
                    ": another producer or consumer is attached ({attached} process(es)); wait for it to finish"
                )
            } else {
                format!(
                    ": nobody is attached, so an earlier run left it behind; remove it with `shmex segment rm --key {}`",
                    key_of(id)
                )
            };
            return Err(shm::Error::Exists { what, hint }.into());
        }
        Err(e) => return Err(e.into()),
    };
    // Remove the segment whatever happens from here on.
    let result = produce_in(&seg, timeout, out);
    let removed = seg.remove_this();
    let code = result?;
    removed?;
    writeln!(out, "removed segment {id}")?;
    Ok(code)
}

fn produce_in(
    seg: &Segment,
    timeout: Option<Duration>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    // Letter by letter, in order, like the seed: a consumer that sees 'z'
    // sees every letter before it.
    for (i, b) in ALPHABET.iter().enumerate() {
        seg.write_at(i, &[*b])?;
    }
    writeln!(
        out,
        "wrote the alphabet to segment {}; waiting for the consumer's '*'",
        seg.id()
    )?;
    out.flush()?;
    let w = word(seg)?;
    let start = Instant::now();
    loop {
        let current = w.load(Ordering::Acquire);
        if current.to_ne_bytes()[0] == b'*' {
            writeln!(out, "the consumer answered '*'")?;
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(sig) = shm::sys::termination_signal() {
            anyhow::bail!(
                "interrupted by signal {sig} before the consumer answered; removed the segment"
            );
        }
        let mut slice = Duration::from_millis(50);
        if let Some(t) = timeout {
            let Some(left) = t.checked_sub(start.elapsed()).filter(|d| !d.is_zero()) else {
                anyhow::bail!(
                    "no consumer answered within {} s; removed segment {}",
                    t.as_secs_f64(),
                    seg.id()
                );
            };
            slice = slice.min(left);
        }
        let _ = shm::sync::futex::wait(w, current, Some(slice));
    }
}

pub fn consume(id: &SegmentId, timeout: Duration, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if !matches!(id, SegmentId::SysV(_)) {
        return Err(BadInput("the alphabet lives in a System V segment: give --key".into()).into());
    }
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    let expired = |what: &str| -> anyhow::Result<ExitCode> {
        anyhow::bail!(
            "{what} at {id} after {} s: is a producer running?",
            timeout.as_secs_f64()
        )
    };
    // The segment may not exist yet: the consumer may start first.
    let seg = loop {
        match Segment::open(id, Access::ReadWrite) {
            Ok(seg) => break seg,
            Err(e) if e.is_not_found() => {
                if start.elapsed() >= timeout {
                    return expired("no segment");
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if (seg.len() as u64) < SIZE {
        anyhow::bail!(
            "segment {id} is {} bytes, but the alphabet needs {SIZE}: it is not an alphabet segment",
            seg.len()
        );
    }
    // Wait until all 26 letters are there, instead of racing the producer.
    let mut buf = [0u8; 26];
    loop {
        seg.read_at(0, &mut buf)?;
        if &buf == ALPHABET {
            break;
        }
        if start.elapsed() >= timeout {
            return expired("no complete alphabet");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    out.write_all(&buf)?;
    out.write_all(b"\n")?;
    out.flush()?;
    seg.write_at(0, b"*")?;
    shm::sync::futex::wake_all(word(&seg)?);
    Ok(ExitCode::SUCCESS)
}

fn key_of(id: &SegmentId) -> i32 {
    match id {
        SegmentId::SysV(k) => *k,
        SegmentId::Posix(_) => 0,
    }
}
