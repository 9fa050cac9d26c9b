//! `shmex segment …`: the seed's Process A and Process B, with clean-up.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use shm::header::{Layout, Lifetime};
use shm::{Access, Kind, Managed, ManagedOptions, Segment, SegmentId, SegmentInfo};

use crate::support::error::{BadInput, one_line};
use crate::support::owners::AllowOwner;
use crate::support::parse::{parse_mode, parse_size};
use crate::support::plural::plural;
use crate::support::text::escape;
use crate::support::time::{utc_millis, utc_seconds};

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
            create(&id, size, mode, hold, raw)
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
            let data = data_to_write(data, file)?;
            let target = Target::open(&id, Access::ReadWrite)?;
            if let Target::Managed(m) = &target {
                refuse_other_kinds(m, force)?;
            }
            target.write(offset, &data)?;
            // Written into zeros, if the segment shrank meanwhile.
            target.check_intact()?;
            println!(
                "wrote {} at offset {offset} of segment {id}",
                plural(data.len() as u64, "byte", "bytes")
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Read {
            which,
            offset,
            len,
            owners,
        } => {
            let id = which.id()?;
            owners.apply()?;
            read(&id, offset, len)
        }
        Cmd::Ls {
            patterns,
            long,
            json,
        } => {
            let all: Vec<SegmentInfo> = shm::list()?
                .into_iter()
                .filter(|i| patterns.is_empty() || patterns.iter().any(|p| matches(p, i)))
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(all.iter().map(to_json).collect())
                );
            } else {
                print_table(&all, long, !patterns.is_empty());
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
        Cmd::Rm {
            key,
            name,
            id,
            stale,
            patterns,
            dry_run,
        } => {
            if stale {
                return remove_stale(&patterns, dry_run);
            }
            remove(&key, &name, &id, dry_run)
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

/// The bytes `segment write` writes: the argument, stdin for `-`, or a file.
fn data_to_write(data: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    match (data.as_deref(), file) {
        (_, Some(path)) => std::fs::read(&path)
            .map_err(|e| BadInput(format!("cannot read {}: {e}", path.display())).into()),
        (Some("-"), None) => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .map_err(|e| BadInput(format!("cannot read stdin: {e}")))?;
            Ok(buf)
        }
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, None) => {
            Err(BadInput("give the bytes to write, `-` for stdin, or --file FILE".into()).into())
        }
    }
}

/// Refuses to write into a shmex segment that holds something else than
/// bytes (a live channel's ring, an exchange's books), unless `force`.
fn refuse_other_kinds(m: &Managed, force: bool) -> Result<(), shm::Error> {
    let kind = m.kind();
    if kind == Kind::BYTES || force {
        return Ok(());
    }
    Err(shm::Error::Incompatible {
        what: m.id().to_string(),
        reason: format!(
            "holds {}, not a bytes segment: writing into it would change the state of the processes that use it; use --force to write anyway",
            kind.a()
        ),
    })
}

fn read(id: &SegmentId, offset: usize, len: Option<usize>) -> anyhow::Result<ExitCode> {
    let target = Target::open(id, Access::ReadOnly)?;
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
    // Zeros read from a segment that shrank are not its bytes.
    target.check_intact()?;
    let mut out = std::io::stdout().lock();
    match out.write_all(&buf).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r.context("writing to stdout")?,
    }
    Ok(ExitCode::SUCCESS)
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
    let bytes = plural(size, "byte", "bytes");
    if !hold {
        println!(
            "created {} segment {id}: {bytes}, mode {mode:04o}, {what}",
            id.backend_name()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "holding {} segment {id}: {bytes}, mode {mode:04o}, {what}, pid {}; Ctrl-C removes it",
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
        seg.check_intact()?;
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

    fn check_intact(&self) -> Result<(), shm::Truncated> {
        match self {
            Target::Managed(m) => m.check_intact(),
            Target::Raw(s) => s.check_intact(),
        }
    }
}

/// What `rm` removes, parsed before anything is removed.
enum RmTarget {
    Id(SegmentId),
    Shmid(i32),
}

fn remove(
    keys: &[String],
    names: &[String],
    ids: &[String],
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let mut targets = Vec::new();
    for k in keys {
        targets.push(RmTarget::Id(SegmentId::parse_key(k)?));
    }
    for n in names {
        targets.push(RmTarget::Id(SegmentId::posix(n.clone())?));
    }
    for i in ids {
        let shmid = i
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                BadInput(format!(
                    "invalid shmid {i:?}: expected a System V segment id such as `ipcs -m` shows"
                ))
            })?;
        targets.push(RmTarget::Shmid(shmid));
    }
    if targets.is_empty() {
        return Err(BadInput(
            "give what to remove: --key K, --name N, --id SHMID or --stale".into(),
        )
        .into());
    }
    let single = targets.len() == 1;
    let mut failed = 0;
    for t in &targets {
        let done = match t {
            RmTarget::Id(id) => {
                let r = if dry_run {
                    shm::inspect(id).map(drop)
                } else {
                    Segment::remove(id)
                };
                r.map(|()| format!("segment {id}"))
            }
            RmTarget::Shmid(shmid) => Segment::sysv_key_of(*shmid).and_then(|key| {
                if !dry_run {
                    Segment::remove_sysv_id(*shmid)?;
                }
                Ok(format!("segment shmid {shmid} (key 0x{:08x})", key as u32))
            }),
        };
        match done {
            Ok(what) if dry_run => println!("would remove {what}"),
            Ok(what) => println!("removed {what}"),
            Err(e) if single => return Err(e.into()),
            Err(e) => {
                failed += 1;
                eprintln!("shmex: {}", one_line(&e.into()));
            }
        }
    }
    if failed > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn remove_stale(patterns: &[String], dry_run: bool) -> anyhow::Result<ExitCode> {
    let stale: Vec<SegmentInfo> = shm::list()?
        .into_iter()
        .filter(|i| i.status == shm::Status::Stale)
        .filter(|i| patterns.is_empty() || patterns.iter().any(|p| matches(p, i)))
        .collect();
    if stale.is_empty() {
        println!("no stale segments");
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        for info in &stale {
            println!("would remove stale {} segment {}", backend(info), info.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    #[cfg(debug_assertions)]
    test_pause("SHMEX_TEST_RM_STALE_PAUSE");
    for info in &stale {
        // Only the very segment listed, if it is still stale.
        if shm::remove_if_stale(info)? {
            println!("removed stale {} segment {}", backend(info), info.id);
        } else {
            println!(
                "kept {} segment {}: it changed since it was listed stale",
                backend(info),
                info.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Debug builds only, for the tests: if the variable names a file, creates
/// it and waits (at most a minute) until it is removed, so that a test can
/// act in the window between the listing and the removal.
#[cfg(debug_assertions)]
fn test_pause(var: &str) {
    let Some(path) = std::env::var_os(var).map(PathBuf::from) else {
        return;
    };
    if std::fs::write(&path, b"").is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn backend(info: &SegmentInfo) -> &'static str {
    info.id.backend_name()
}

/// Whether a shell-style pattern (`*`, `?`) matches the segment's name, or
/// its System V key in hex (`0x0000162e`) or decimal.
fn matches(pattern: &str, info: &SegmentInfo) -> bool {
    match &info.id {
        SegmentId::Posix(name) => glob(pattern.as_bytes(), name.as_bytes()),
        SegmentId::SysV(key) => {
            let hex = format!("0x{:08x}", *key as u32);
            glob(pattern.as_bytes(), hex.as_bytes())
                || glob(pattern.as_bytes(), key.to_string().as_bytes())
        }
    }
}

/// `*` matches any run of bytes, `?` any one byte, anything else itself.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // Where the last `*` was, and where in `s` it is tried to end.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn to_json(info: &SegmentInfo) -> serde_json::Value {
    let (key, key_hex, name) = match &info.id {
        SegmentId::SysV(k) => (
            json!(k),
            json!(format!("0x{:08x}", *k as u32)),
            serde_json::Value::Null,
        ),
        SegmentId::Posix(n) => (serde_json::Value::Null, serde_json::Value::Null, json!(n)),
    };
    let reason = match &info.status {
        shm::Status::Invalid(r) => json!(r),
        _ => serde_json::Value::Null,
    };
    json!({
        "backend": backend(info),
        "key": key,
        "key_hex": key_hex,
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
        "created": info.created_ns.map(utc_millis),
        "created_ns": info.created_ns,
        "status": info.status.name(),
        "reason": reason,
    })
}

/// The key or name as the table shows it: a System V key in hex first, as
/// `ipcs` shows keys; a name with its control characters escaped.
fn id_text(info: &SegmentInfo) -> String {
    match &info.id {
        SegmentId::SysV(k) => format!("0x{:08x} ({k})", *k as u32),
        SegmentId::Posix(n) => escape(n).into_owned(),
    }
}

fn print_table(all: &[SegmentInfo], long: bool, filtered: bool) {
    if all.is_empty() {
        println!(
            "{}",
            if filtered {
                "no segments match"
            } else {
                "no segments"
            }
        );
        return;
    }
    let mut head = vec!["BACKEND", "KEY/NAME", "SHMID", "BYTES"];
    if long {
        head.push("SIZE");
    }
    head.extend([
        "KIND", "LIFETIME", "OWNER", "MODE", "CREATOR", "ATTACHED", "CREATED", "STATUS",
    ]);
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|i| {
            let mut row = vec![
                backend(i).to_owned(),
                id_text(i),
                i.shmid.map_or_else(|| "-".into(), |s| s.to_string()),
                i.payload.unwrap_or(i.size).to_string(),
            ];
            if long {
                row.push(i.size.to_string());
            }
            row.extend([
                i.kind.map_or_else(|| "-".to_owned(), |k| k.to_string()),
                i.lifetime.map_or("-", Lifetime::name).to_owned(),
                escape(&i.owner).into_owned(),
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
            ]);
            row
        })
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(&widths) {
            s.push_str(&format!("{c:<w$}  "));
        }
        println!("{}", s.trim_end());
    };
    line(head.clone());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    let stale = all
        .iter()
        .filter(|i| i.status == shm::Status::Stale)
        .count();
    if stale > 0 {
        println!(
            "{}: `shmex segment rm --stale` removes {}",
            plural(stale as u64, "stale segment", "stale segments"),
            if stale == 1 { "it" } else { "them" }
        );
    }
}

fn print_inspect(i: &SegmentInfo) {
    let v = to_json(i);
    if let serde_json::Value::Object(map) = v {
        for (k, v) in map {
            // The nanoseconds are for scripts; the text shows the time.
            if v.is_null() || k.ends_with("_ns") {
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => escape(&s).into_owned(),
                other => other.to_string(),
            };
            println!("{k:<14}{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn patterns_match_like_the_shell() {
        for (p, s) in [
            ("shmex-*", "shmex-exchange"),
            ("*", ""),
            ("*x*", "exchange"),
            ("a?c", "abc"),
            ("0x5e*", "0x5e001234"),
            ("*-*-1", "a-b-c-1"),
            ("exact", "exact"),
        ] {
            assert!(glob(p.as_bytes(), s.as_bytes()), "{p} vs {s}");
        }
        for (p, s) in [
            ("shmex-*", "other"),
            ("a?c", "ac"),
            ("x", "xy"),
            ("*a", "ab"),
        ] {
            assert!(!glob(p.as_bytes(), s.as_bytes()), "{p} vs {s}");
        }
    }
}
