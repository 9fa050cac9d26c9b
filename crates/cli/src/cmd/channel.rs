//! `shmex send` and `shmex recv`: stdin → channel → stdout.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use channel::{OpenError, Options, Receiver, RecvError, SendError, Sender};
use shm::SegmentId;

use crate::support::error::BadInput;
use crate::support::owners::AllowOwner;
use crate::support::parse::{parse_mode, parse_seconds, parse_size};

/// Bytes read from stdin per message.
const CHUNK: usize = 64 * 1024;

/// Flags of `shmex send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// Channel name (a POSIX shared-memory name). Either `send` or `recv`
    /// may start first; the second attaches to the first's channel.
    pub name: String,
    /// Largest message, if this end creates the channel: bytes such as
    /// 65536, 64K or 1M [default: 256K]. An existing channel keeps its own.
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub capacity: Option<String>,
    /// Give up when the receiver takes nothing for this many seconds
    /// (fractions allowed) [default: wait forever].
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Permission bits, if this end creates the channel.
    #[arg(long, value_name = "OCTAL", default_value = "0600")]
    pub mode: String,
    #[command(flatten)]
    pub owners: AllowOwner,
}

/// Flags of `shmex recv`.
#[derive(Debug, clap::Args)]
pub struct RecvArgs {
    /// Channel name (a POSIX shared-memory name).
    pub name: String,
    /// Give up when no data arrives for this many seconds (fractions
    /// allowed), including while waiting for a sender [default: wait
    /// forever].
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Largest message, if this end creates the channel [default: 256K].
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub capacity: Option<String>,
    /// Permission bits, if this end creates the channel.
    #[arg(long, value_name = "OCTAL", default_value = "0600")]
    pub mode: String,
    #[command(flatten)]
    pub owners: AllowOwner,
}

/// The options of `--capacity` and `--mode`. The channel judges the
/// capacity when it opens; [`open_error`] words its refusal.
fn options(capacity: Option<&str>, mode: &str) -> anyhow::Result<Options> {
    let mut opts = Options {
        mode: parse_mode(mode)?,
        ..Options::default()
    };
    if let Some(text) = capacity {
        opts.capacity = usize::try_from(parse_size(text)?).unwrap_or(usize::MAX);
    }
    Ok(opts)
}

/// A refusal to open, a capacity the channel cannot have named as the
/// user wrote it.
fn open_error(err: OpenError, capacity: Option<&str>) -> anyhow::Error {
    match (err, capacity) {
        (OpenError::Capacity { .. }, Some(text)) => BadInput(format!(
            "invalid capacity {text:?}: a channel holds messages of 1 byte to 1T"
        ))
        .into(),
        (err, _) => err.into(),
    }
}

fn timeout(text: Option<&str>) -> anyhow::Result<Option<Duration>> {
    Ok(text.map(parse_seconds).transpose()?)
}

fn channel_id(name: &str) -> anyhow::Result<SegmentId> {
    Ok(SegmentId::posix(name)?)
}

/// Reads into `buf`, retrying reads that a non-terminating signal
/// interrupted.
fn read_some(input: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // Only read once data (or the end) is there: a read entered just
        // after Ctrl-C would otherwise wait for input that never comes.
        if !ready(input, false)? {
            continue;
        }
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if shm::sys::termination_signal().is_some() {
                    return Err(e);
                }
            }
            r => return r,
        }
    }
}

/// Writes all of `buf`, giving up on a termination signal (std's
/// `write_all` would retry forever on a blocked stdout).
fn write_all(out: &mut File, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        if !ready(out, true)? {
            continue;
        }
        match out.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if shm::sys::termination_signal().is_some() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Unbuffered handles on fd 0 and 1: messages go straight from `read(2)`
/// into the ring and from the ring to `write(2)`.
/// Whether `f` is ready to read (or write), waiting at most 100 ms; fails
/// with `Interrupted` once a termination signal has arrived.
fn ready(f: &File, write: bool) -> io::Result<bool> {
    if shm::sys::termination_signal().is_some() {
        return Err(io::ErrorKind::Interrupted.into());
    }
    shm::sys::poll_fd(f.as_fd(), write, std::time::Duration::from_millis(100))
}

fn raw_stdin() -> io::Result<File> {
    Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
}

fn raw_stdout() -> io::Result<File> {
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

fn interrupted(signal: i32) -> anyhow::Error {
    anyhow::Error::new(Interrupted(signal))
}

/// A termination signal ended a command (exit status 128 + signal).
#[derive(Debug, thiserror::Error)]
#[error("interrupted by signal {0}")]
struct Interrupted(i32);

pub fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let id = channel_id(&args.name)?;
    args.owners.apply()?;
    let opts = options(args.capacity.as_deref(), &args.mode)?;
    let timeout = timeout(args.timeout.as_deref())?;
    shm::sys::catch_termination();
    let mut input = raw_stdin().context("cannot use stdin")?;
    let mut tx = Sender::open(&id, &opts).map_err(|e| open_error(e, args.capacity.as_deref()))?;
    let chunk = CHUNK.min(tx.capacity());
    loop {
        let reserved = match timeout {
            Some(t) => tx.reserve_timeout(chunk, t),
            None => tx.reserve(chunk),
        };
        let mut grant = match reserved {
            Ok(g) => g,
            Err(SendError::Interrupted { signal, .. }) => {
                tx.abort();
                return Err(interrupted(signal));
            }
            Err(e) => return Err(e.into()),
        };
        match read_some(&mut input, &mut grant) {
            Ok(0) => break,
            Ok(n) => grant.commit_len(n),
            Err(e) => {
                if let Some(signal) = shm::sys::termination_signal() {
                    tx.abort();
                    return Err(interrupted(signal));
                }
                return Err(anyhow::Error::new(e).context("cannot read stdin"));
            }
        }
    }
    match tx.flush(timeout) {
        Ok(()) => {}
        Err(SendError::Interrupted { signal, .. }) => {
            tx.abort();
            return Err(interrupted(signal));
        }
        Err(e) => return Err(e.into()),
    }
    tx.close();
    Ok(ExitCode::SUCCESS)
}

pub fn recv(args: RecvArgs) -> anyhow::Result<ExitCode> {
    let id = channel_id(&args.name)?;
    args.owners.apply()?;
    let opts = options(args.capacity.as_deref(), &args.mode)?;
    let timeout = timeout(args.timeout.as_deref())?;
    shm::sys::catch_termination();
    let mut out = raw_stdout().context("cannot use stdout")?;
    let mut rx = Receiver::open(&id, &opts).map_err(|e| open_error(e, args.capacity.as_deref()))?;
    loop {
        let next = match timeout {
            Some(t) => rx.recv_timeout(t),
            None => rx.recv(),
        };
        let msg = match next {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(ExitCode::SUCCESS),
            Err(RecvError::Interrupted { signal, .. }) => return Err(interrupted(signal)),
            Err(e) => return Err(e.into()),
        };
        // Zeros read from a channel that shrank are no message.
        shm::check_mappings()?;
        match write_all(&mut out, &msg) {
            Ok(()) => {}
            // The reader of stdout is gone (`| head`): done, quietly.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => {
                // The kernel reading a message from a file truncated under
                // it fails with EFAULT, without any SIGBUS.
                shm::verify_mappings()?;
                if let Some(signal) = shm::sys::termination_signal() {
                    return Err(interrupted(signal));
                }
                return Err(anyhow::Error::new(e).context("cannot write stdout"));
            }
        }
    }
}

/// Exit status for this layer's library errors, if `cause` is one.
pub fn exit_code_for(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(Interrupted(signal)) = cause.downcast_ref::<Interrupted>() {
        return Some(128u8.saturating_add(u8::try_from(*signal).unwrap_or(0)));
    }
    match cause.downcast_ref::<OpenError>()? {
        OpenError::Capacity { .. } => Some(2),
        OpenError::Segment(shm::Error::Invalid(_) | shm::Error::OutOfBounds(_)) => Some(2),
        _ => None,
    }
}
