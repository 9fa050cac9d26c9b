//! `shmex segment …`: the seed's Process A and Process B, with clean-up.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use shm::header::{Layout, Lifetime};
use shm::{Access, Kind, Managed, ManagedOptions, Segment, SegmentId, SegmentInfo};

use crate::support::error::BadInput;
use crate::support::parse::{parse_mode, parse_size};
use crate::support::time::utc_seconds;

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
    #[arg(long, value_name = "K")]
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
    /// Write DATA at an offset (from the payload start of a shmex segment,
    /// from byte 0 of a raw or foreign one).
    Write {
        #[command(flatten)]
        which: Which,
        /// Byte offset.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// The bytes to write (the argument's UTF-8 bytes).
        data: String,
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
    },
    /// List segments of both backends: shmex's, and foreign ones.
    Ls {
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
    /// Remove a segment, or with --stale every owned segment whose holders are all dead.
    Rm {
        /// System V key.
        #[arg(long, value_name = "K", conflicts_with_all = ["name", "stale"])]
        key: Option<String>,
        /// POSIX name.
        #[arg(long, value_name = "N", conflicts_with = "stale")]
        name: Option<String>,
        /// Remove exactly the stale segments (never persistent, held or foreign ones).
        #[arg(long)]
        stale: bool,
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
            create(&id, size, mode, hold, raw)
        }
        Cmd::Write {
            which,
            offset,
            data,
        } => {
            let id = which.id()?;
            let target = Target::open(&id, Access::ReadWrite)?;
            target.write(offset, data.as_bytes())?;
            println!(
                "wrote {} bytes at offset {offset} of segment {id}",
                data.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Read { which, offset, len } => {
            let id = which.id()?;
            let target = Target::open(&id, Access::ReadOnly)?;
            let avail = target.len();
            if offset > avail {
                return Err(BadInput(format!(
                    "offset {offset} is past the end of segment {id} ({avail} bytes readable)"
                ))
                .into());
            }
            let len = len.unwrap_or(avail - offset);
            if len > avail - offset {
                return Err(BadInput(format!(
                    "offset {offset} + length {len} is past the end of segment {id} ({avail} bytes readable)"
                ))
                .into());
            }
            let mut buf = vec![0u8; len];
            target.read(offset, &mut buf)?;
            let mut out = std::io::stdout().lock();
            match out.write_all(&buf).and_then(|()| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r.context("writing to stdout")?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ls { json } => {
            let all = shm::list()?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(all.iter().map(to_json).collect())
                );
            } else {
                print_table(&all);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Inspect { which, json } => {
            let id = which.id()?;
            let info = shm::inspect(&id)?;
            if json {
                println!("{}", to_json(&info));
            } else {
                print_inspect(&info);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Rm { key, name, stale } => {
            if stale {
                let removed = shm::remove_stale()?;
                if removed.is_empty() {
                    println!("no stale segments");
                }
                for info in removed {
                    println!("removed stale {} segment {}", backend(&info), info.id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let id = Which { key, name }.id()?;
            Segment::remove(&id)?;
            println!("removed segment {id}");
            Ok(ExitCode::SUCCESS)
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

/// Layout recorded for plain byte segments.
struct ByteArea;

fn create(id: &SegmentId, size: u64, mode: u32, hold: bool, raw: bool) -> anyhow::Result<ExitCode> {
    let lifetime = if hold {
        Lifetime::Owned
    } else {
        Lifetime::Persistent
    };
    if hold {
        // Installed before creation, so an early Ctrl-C still cleans up.
        shm::sys::catch_termination();
    }
    let seg: SegOrManaged = if raw {
        SegOrManaged::Raw(Segment::create(id, size, mode)?)
    } else {
        let opts = ManagedOptions {
            kind: Kind::BYTES,
            lifetime,
            mode,
            layout: Layout::of::<ByteArea>(),
            payload_size: size,
        };
        SegOrManaged::Managed(Managed::create(id, &opts, |_| Ok::<(), shm::Error>(()))?)
    };
    let what = if raw { "raw" } else { lifetime.name() };
    if !hold {
        println!(
            "created {} segment {id}: {size} bytes, mode {mode:04o}, {what}",
            id.backend_name()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "holding {} segment {id}: {size} bytes, mode {mode:04o}, {what}, pid {}; Ctrl-C removes it",
        id.backend_name(),
        std::process::id()
    );
    let _ = std::io::stdout().flush();
    let sig = shm::sys::wait_for_termination(None);
    seg.remove()?;
    println!("removed segment {id} (signal {})", sig.unwrap_or(0));
    Ok(ExitCode::SUCCESS)
}

enum SegOrManaged {
    Raw(Segment),
    Managed(Managed),
}

impl SegOrManaged {
    fn remove(&self) -> Result<(), shm::Error> {
        match self {
            SegOrManaged::Raw(s) => s.remove_this(),
            SegOrManaged::Managed(m) => m.remove(),
        }
    }
}

/// A segment as `write`/`read` see it: the payload of a shmex segment, or
/// every byte of a raw or foreign one.
enum Target {
    Managed(Managed),
    Raw(Segment),
}

impl Target {
    fn open(id: &SegmentId, access: Access) -> anyhow::Result<Target> {
        let seg = Segment::open(id, access)?;
        let is_ours = shm::header::HeaderBytes::read(&seg).magic() == shm::header::MAGIC;
        if !is_ours {
            return Ok(Target::Raw(seg));
        }
        drop(seg);
        Ok(Target::Managed(Managed::open_any(
            id,
            access,
            shm::DEFAULT_READY_WAIT,
        )?))
    }

    fn len(&self) -> usize {
        match self {
            Target::Managed(m) => m.payload_len(),
            Target::Raw(s) => s.len(),
        }
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), shm::Error> {
        match self {
            Target::Managed(m) => m.read_payload(offset, buf),
            Target::Raw(s) => s.read_at(offset, buf),
        }
    }

    fn write(&self, offset: usize, data: &[u8]) -> Result<(), shm::Error> {
        match self {
            Target::Managed(m) => m.write_payload(offset, data),
            Target::Raw(s) => s.write_at(offset, data),
        }
    }
}

fn backend(info: &SegmentInfo) -> &'static str {
    info.id.backend_name()
}

fn to_json(info: &SegmentInfo) -> serde_json::Value {
    let (key, name) = match &info.id {
        SegmentId::SysV(k) => (json!(k), serde_json::Value::Null),
        SegmentId::Posix(n) => (serde_json::Value::Null, json!(n)),
    };
    let reason = match &info.status {
        shm::Status::Invalid(r) => json!(r),
        _ => serde_json::Value::Null,
    };
    json!({
        "backend": backend(info),
        "key": key,
        "name": name,
        "shmid": info.shmid,
        "size": info.size,
        "payload": info.payload,
        "kind": info.kind.map(|k| k.to_string()),
        "lifetime": info.lifetime.map(Lifetime::name),
        "type": info.type_name,
        "owner": info.owner,
        "uid": info.uid,
        "mode": format!("{:04o}", info.mode),
        "creator_pid": info.creator_pid,
        "creator_alive": info.creator_alive,
        "attached": info.attached,
        "created": info.created,
        "created_utc": info.created.map(|t| utc_seconds(Some(t))),
        "status": info.status.name(),
        "reason": reason,
    })
}

fn id_text(info: &SegmentInfo) -> String {
    match &info.id {
        SegmentId::SysV(k) => format!("{k} (0x{:08x})", *k as u32),
        SegmentId::Posix(n) => n.clone(),
    }
}

fn print_table(all: &[SegmentInfo]) {
    if all.is_empty() {
        println!("no segments");
        return;
    }
    let rows: Vec<[String; 11]> = all
        .iter()
        .map(|i| {
            [
                backend(i).to_owned(),
                id_text(i),
                i.size.to_string(),
                i.kind.map_or_else(|| "-".to_owned(), |k| k.to_string()),
                i.lifetime.map_or("-", Lifetime::name).to_owned(),
                i.owner.clone(),
                format!("{:04o}", i.mode),
                match (i.creator_pid, i.creator_alive) {
                    (Some(p), Some(true)) => format!("{p} (alive)"),
                    (Some(p), Some(false)) => format!("{p} (dead)"),
                    (Some(p), None) => p.to_string(),
                    _ => "-".into(),
                },
                i.attached.map_or("-".into(), |a| a.to_string()),
                utc_seconds(i.created),
                i.status.name().to_owned(),
            ]
        })
        .collect();
    let head = [
        "BACKEND", "KEY/NAME", "BYTES", "KIND", "LIFETIME", "OWNER", "MODE", "CREATOR", "ATTACHED",
        "CREATED", "STATUS",
    ];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(&widths) {
            s.push_str(&format!("{c:<w$}  "));
        }
        println!("{}", s.trim_end());
    };
    line(head.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    let stale = all
        .iter()
        .filter(|i| i.status == shm::Status::Stale)
        .count();
    if stale > 0 {
        println!("{stale} stale segment(s): `shmex segment rm --stale` removes them");
    }
}

fn print_inspect(i: &SegmentInfo) {
    let v = to_json(i);
    if let serde_json::Value::Object(map) = v {
        for (k, v) in map {
            if v.is_null() || k == "created" {
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            println!("{k:<14}{text}");
        }
    }
}
