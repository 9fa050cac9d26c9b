//! `segment write` and `segment read`: bytes into and out of a segment.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use shm::{Access, Kind, Managed, Segment, SegmentId};

use crate::support::error::BadInput;
use crate::support::plural::plural;

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

/// `segment write`: the bytes from the argument, stdin or a file, at
/// `offset`.
pub(super) fn write(
    id: &SegmentId,
    offset: usize,
    data: Option<String>,
    file: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let data = data_to_write(data, file)?;
    let target = Target::open(id, Access::ReadWrite)?;
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

pub(super) fn read(id: &SegmentId, offset: usize, len: Option<usize>) -> anyhow::Result<ExitCode> {
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
