//! `shmex segment …`: the seed's Process A and Process B, with clean-up.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use shm::SegmentId;

use crate::support::error::BadInput;
use crate::support::owners::AllowOwner;
use crate::support::parse::{parse_mode, parse_size};

mod create;
mod inspect;
mod ls;
mod read_write;
mod rm;
#[cfg(test)]
mod tests;

/// Flags of `shmex segment`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

/// Which segment: `--key` (System V) or `--name` (POSIX).
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// System V key (decimal, 0x hex or 0o octal), as the seed's `shmget` uses.
    #[arg(long, value_name = "K", allow_hyphen_values = true)]
    pub key: Option<String>,
    /// POSIX name (a file in /dev/shm).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
}

impl Which {
    pub fn id(&self) -> anyhow::Result<SegmentId> {
        Ok(match (&self.key, &self.name) {
            (Some(k), _) => SegmentId::parse_key(k)?,
            (None, Some(n)) => SegmentId::posix(n.clone())?,
            (None, None) => return Err(BadInput("give --key K or --name N".into()).into()),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a segment exclusively (mode 0600 unless --mode says otherwise).
    ///
    /// Without --hold the segment is persistent: it outlives this command, as
    /// the seed's Process A leaves it for Process B. With --hold this process
    /// stays attached as its owner until interrupted, then removes it.
    Create {
        #[command(flatten)]
        which: Which,
        /// Size in bytes of the payload (suffixes K, M, G).
        #[arg(long, value_name = "BYTES")]
        size: String,
        /// Permission bits, octal.
        #[arg(long, default_value = "0600")]
        mode: String,
        /// Stay attached as the owner until Ctrl-C or SIGTERM, then remove it.
        #[arg(long)]
        hold: bool,
        /// No shmex header: a plain segment, for programs that know nothing of shmex.
        #[arg(long)]
        raw: bool,
    },
    /// Write bytes at an offset (from the payload start of a shmex segment,
    /// from byte 0 of a raw or foreign one).
    ///
    /// A shmex segment that holds something else than bytes (a channel, an
    /// exchange) is refused: writing into it changes the state of the
    /// processes using it. --force writes anyway.
    Write {
        #[command(flatten)]
        which: Which,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// The bytes to write (the argument's UTF-8 bytes); `-` reads them from stdin.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        data: Option<String>,
        /// Read the bytes to write from FILE.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Write into a shmex segment of another kind than bytes anyway.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        owners: AllowOwner,
    },
    /// Copy bytes to stdout (default: from --offset to the end).
    Read {
        #[command(flatten)]
        which: Which,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// How many bytes.
        #[arg(long)]
        len: Option<usize>,
        #[command(flatten)]
        owners: AllowOwner,
    },
    /// List segments of both backends: shmex's, and foreign ones.
    ///
    /// BYTES is what the segment holds for its users (a shmex segment's
    /// payload, as created); --long adds SIZE, the whole segment with its
    /// header. STATUS: live (some process holds or uses it), idle (a
    /// persistent segment nobody uses now), stale (an owned segment whose
    /// holders all died: `rm --stale` removes it), initializing, foreign
    /// (not made by shmex), invalid, unreadable, or what a file in
    /// /dev/shm is when it is no segment (fifo, symlink, directory, ...).
    Ls {
        /// Only segments whose name, or System V key (0x0000162e or 5678),
        /// matches one of these patterns (`*` and `?` as in the shell).
        #[arg(value_name = "PATTERN")]
        patterns: Vec<String>,
        /// Also the whole size, header included.
        #[arg(long)]
        long: bool,
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show everything known about one segment.
    Inspect {
        #[command(flatten)]
        which: Which,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Remove segments (several at once, like ipcrm), or with --stale every
    /// owned segment whose holders are all dead.
    Rm {
        /// System V key (repeatable).
        #[arg(long, value_name = "K", allow_hyphen_values = true)]
        key: Vec<String>,
        /// POSIX name (repeatable).
        #[arg(long, value_name = "N")]
        name: Vec<String>,
        /// System V segment id, as `ipcs -m` shows it (repeatable).
        #[arg(long = "id", value_name = "SHMID")]
        id: Vec<String>,
        /// Remove exactly the stale segments (never persistent, held or foreign ones).
        #[arg(long, conflicts_with_all = ["key", "name", "id"])]
        stale: bool,
        /// With --stale: only those whose name or key matches one of these
        /// patterns, as `ls` takes them.
        #[arg(value_name = "PATTERN", requires = "stale")]
        patterns: Vec<String>,
        /// Say what would be removed, and remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Cmd::Create {
            which,
            size,
            mode,
            hold,
            raw,
        } => {
            let id = which.id()?;
            let size = parse_size(&size)?;
            if size == 0 {
                return Err(
                    BadInput("invalid size 0: a segment holds at least 1 byte".into()).into(),
                );
            }
            let mode = parse_mode(&mode)?;
            create::create(&id, size, mode, hold, raw)
        }
        Cmd::Write {
            which,
            offset,
            data,
            file,
            force,
            owners,
        } => {
            let id = which.id()?;
            owners.apply()?;
            read_write::write(&id, offset, data, file, force)
        }
        Cmd::Read {
            which,
            offset,
            len,
            owners,
        } => {
            let id = which.id()?;
            owners.apply()?;
            read_write::read(&id, offset, len)
        }
        Cmd::Ls {
            patterns,
            long,
            json,
        } => ls::list(&patterns, long, json),
        Cmd::Inspect { which, json } => {
            let id = which.id()?;
            inspect::inspect(&id, json)
        }
        Cmd::Rm {
            key,
            name,
            id,
            stale,
            patterns,
            dry_run,
        } => {
            if stale {
                return rm::remove_stale(&patterns, dry_run);
            }
            rm::remove(&key, &name, &id, dry_run)
        }
    }
}

/// Exit status for the segment layer's errors, if `cause` is one: 2 for
/// bad input, none (look further down the chain) otherwise.
pub fn exit_code_for(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    match cause.downcast_ref::<shm::Error>()? {
        shm::Error::Invalid(_) | shm::Error::OutOfBounds(_) | shm::Error::ReadOnly { .. } => {
            Some(2)
        }
        _ => None,
    }
}
