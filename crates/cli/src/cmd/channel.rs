//! `shmex send` and `shmex recv`: stdin → channel → stdout.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use channel::{OpenError, Options, Receiver, RecvError, SendError, Sender};
use shm::SegmentId;

use crate::support::error::BadInput;
use crate::support::owners::AllowOwner;
use crate::support::parse::{parse_mode, parse_seconds, parse_size};

/// Bytes read from stdin per message.
const CHUNK: usize = 64 * 1024;

/// How long `send` waits for a receiver before it says so (on a terminal).
const NOTICE_AFTER: Duration = Duration::from_millis(500);

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

/// Reads into `buf` (once [`wait_input`] found data there), retrying reads
/// that a non-terminating signal interrupted.
fn read_some(input: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
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

/// Says once, on a terminal, that `send` waits for a receiver, if none has
/// come [`NOTICE_AFTER`] after it started. Not elsewhere: a script that
/// starts the receiver a moment later needs no news on stderr.
struct Notice {
    due: Option<Instant>,
    run: String,
}

impl Notice {
    fn new(tx: &Sender, name: &str) -> Notice {
        let due = (io::stderr().is_terminal() && !tx.peer_attached())
            .then(|| Instant::now() + NOTICE_AFTER);
        Notice {
            due,
            run: format!("shmex recv {name}"),
        }
    }

    /// How long until the notice is due, while it is pending.
    fn due_in(&self) -> Option<Duration> {
        self.due
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Says it if it is due and the receiver still has not come.
    fn tick(&mut self, tx: &Sender) {
        let Some(due) = self.due else { return };
        if tx.peer_attached() {
            self.due = None;
        } else if Instant::now() >= due {
            eprintln!(
                "shmex: waiting for a receiver on channel {} (run `{}`)",
                tx.name(),
                self.run
            );
            self.due = None;
        }
    }
}

/// Waits until stdin has data (or its end), looking at the receiver before
/// every poll: one that closed its end, died or corrupted the channel ends
/// the wait with its error, as `EPIPE` stops a pipe's writer.
fn wait_input(tx: &mut Sender, input: &File, notice: &mut Notice) -> anyhow::Result<()> {
    loop {
        tx.check()?;
        notice.tick(tx);
        if ready(input, false)? {
            return Ok(());
        }
    }
}

/// One wait of `send` for its receiver: `timeout` from its start, waited
/// in slices while the notice is pending, to give the notice its turn.
struct Bound {
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

impl Bound {
    fn new(timeout: Option<Duration>) -> Bound {
        Bound {
            deadline: timeout.map(|t| Instant::now() + t),
            timeout,
        }
    }

    /// How long the next slice may wait (`None`: for ever).
    fn slice(&self, notice: &Notice) -> Option<Duration> {
        let left = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        match (left, notice.due_in()) {
            (Some(l), Some(n)) => Some(l.min(n)),
            (l, n) => l.or(n),
        }
    }

    /// After a slice timed out on `channel`: the timeout of the whole wait
    /// once it has passed.
    fn expired(&self, channel: String) -> Result<(), SendError> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(SendError::Timeout {
                channel,
                after: self.timeout.unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }
}

/// Sends stdin, a chunk per message, until its end; `timeout` bounds each
/// wait for room.
fn stream(
    tx: &mut Sender,
    input: &mut File,
    timeout: Option<Duration>,
    notice: &mut Notice,
) -> anyhow::Result<()> {
    let chunk = CHUNK.min(tx.capacity());
    loop {
        wait_input(tx, input, notice)?;
        let bound = Bound::new(timeout);
        let read = loop {
            let reserved = match bound.slice(notice) {
                Some(s) => tx.reserve_timeout(chunk, s),
                None => tx.reserve(chunk),
            };
            match reserved {
                Ok(mut grant) => {
                    let n = read_some(input, &mut grant).context("cannot read stdin")?;
                    grant.commit_len(n);
                    break n;
                }
                Err(SendError::Timeout { channel, .. }) => {
                    bound.expired(channel)?;
                    notice.tick(tx);
                }
                Err(e) => return Err(e.into()),
            }
        };
        if read == 0 {
            break;
        }
    }
    let bound = Bound::new(timeout);
    loop {
        match tx.flush(bound.slice(notice)) {
            Ok(()) => return Ok(()),
            Err(SendError::Timeout { channel, .. }) => {
                bound.expired(channel)?;
                notice.tick(tx);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What either end takes from its flags (the channel, how to open it, the
/// timeout), with termination signals caught from then on.
fn prepare(
    name: &str,
    capacity: Option<&str>,
    mode: &str,
    timeout_text: Option<&str>,
) -> anyhow::Result<(SegmentId, Options, Option<Duration>)> {
    let id = channel_id(name)?;
    let opts = options(capacity, mode)?;
    let timeout = timeout(timeout_text)?;
    shm::sys::catch_termination();
    Ok((id, opts, timeout))
}

pub fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let capacity = args.capacity.as_deref();
    let (id, opts, timeout) = prepare(&args.name, capacity, &args.mode, args.timeout.as_deref())?;
    args.owners.apply()?;
    let mut input = raw_stdin().context("cannot use stdin")?;
    let mut tx = Sender::open(&id, &opts).map_err(|e| open_error(e, capacity))?;
    let mut notice = Notice::new(&tx, &args.name);
    match stream(&mut tx, &mut input, timeout, &mut notice) {
        Ok(()) => {
            tx.close();
            Ok(ExitCode::SUCCESS)
        }
        // Dropped without `close`, `tx` ends the stream as aborted, so the
        // receiver never takes what came before for the whole input.
        Err(e) => match shm::sys::termination_signal() {
            Some(signal) => Err(interrupted(signal)),
            None => Err(e),
        },
    }
}

pub fn recv(args: RecvArgs) -> anyhow::Result<ExitCode> {
    let capacity = args.capacity.as_deref();
    let (id, opts, timeout) = prepare(&args.name, capacity, &args.mode, args.timeout.as_deref())?;
    args.owners.apply()?;
    let mut out = raw_stdout().context("cannot use stdout")?;
    let mut rx = Receiver::open(&id, &opts).map_err(|e| open_error(e, capacity))?;
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
