//! `segment create`: a shmex segment or a raw one, left behind or held.

use std::io::Write;
use std::process::ExitCode;

use shm::header::{Layout, Lifetime};
use shm::{Kind, Managed, ManagedOptions, Segment, SegmentId};

use crate::support::plural::plural;

/// Layout recorded for plain byte segments.
struct ByteArea;

pub(super) fn create(
    id: &SegmentId,
    size: u64,
    mode: u32,
    hold: bool,
    raw: bool,
) -> anyhow::Result<ExitCode> {
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
