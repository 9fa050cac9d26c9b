//! Segments that shrink under this process (design rule 8): what the
//! layers above ask before they trust what they read.
//!
//! The `SIGBUS` handler (in the private `os` module) keeps a POSIX mapping
//! whose file was truncated readable, as zeros, and marks it lost. A
//! [`Segment`](crate::Segment) asks whether its own mapping was lost
//! ([`Segment::check_intact`](crate::Segment::check_intact), one atomic
//! load); [`check_mappings`] asks it of every mapping this process has had,
//! for a program that holds its segments deep inside other types.

use std::os::fd::RawFd;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::os::{posix, sigbus};
use crate::{Error, SegmentId};

/// A segment that shrank under this process: another process truncated its
/// file, and the mapping now reads zeros where the segment was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "segment {what} shrank to {size_now} bytes under this process: another process truncated it"
)]
pub struct Truncated {
    /// The segment, as the user would name it.
    pub what: String,
    /// Its file's size when this was found.
    pub size_now: u64,
}

/// What the handler's table cannot hold: a name and a descriptor to ask the
/// size of, per slot.
struct Entry {
    what: String,
    fd: RawFd,
    len: usize,
}

impl Entry {
    fn truncated(&self) -> Truncated {
        Truncated {
            what: self.what.clone(),
            size_now: posix::fstat_raw(self.fd).map_or(0, |s| s.size),
        }
    }
}

/// Beside the handler's table, by slot. Its lock also keeps a slot's
/// descriptor open while it is asked: a [`Watch`] is dropped under it,
/// before its segment closes the descriptor.
static SIDE: Mutex<Vec<Option<Entry>>> = Mutex::new(Vec::new());

/// The first counted mapping that was lost and has been dropped since.
static GONE: Mutex<Option<Truncated>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is one assignment: a panic cannot
    // leave them half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One mapping of a POSIX segment, entered in the handler's table for as
/// long as this lives. Drop it before unmapping.
#[derive(Debug)]
pub(crate) struct Watch {
    reg: sigbus::Registration,
}

impl Watch {
    /// Registers the mapping `[start, start + len)` of segment `id`, whose
    /// file is open as `fd` (kept open by the caller while this lives).
    /// `counted`: whether [`check_mappings`] reports its loss (observers
    /// handle their own).
    pub(crate) fn new(
        id: &SegmentId,
        fd: RawFd,
        (start, len): (usize, usize),
        writable: bool,
        counted: bool,
    ) -> Result<Watch, Error> {
        let mut side = lock(&SIDE);
        let reg =
            sigbus::register(start, len, writable, counted).ok_or_else(|| Error::NoSpace {
                what: id.to_string(),
                size: len as u64,
                reason: format!("this process already maps {} segments", sigbus::SLOTS),
            })?;
        if side.len() <= reg.index {
            side.resize_with(reg.index + 1, || None);
        }
        side[reg.index] = Some(Entry {
            what: id.to_string(),
            fd,
            len,
        });
        Ok(Watch { reg })
    }

    /// Marks the mapping lost: its file was found shorter than it.
    pub(crate) fn mark_lost(&self) {
        sigbus::mark_lost(self.reg.index);
    }

    /// `Err` once the segment has shrunk under this mapping: one atomic
    /// load while it has not.
    #[inline]
    pub(crate) fn check(&self) -> Result<(), Truncated> {
        if !sigbus::is_lost(self.reg.index) {
            return Ok(());
        }
        self.lost()
    }

    #[cold]
    fn lost(&self) -> Result<(), Truncated> {
        let side = lock(&SIDE);
        Err(side[self.reg.index]
            .as_ref()
            .map(Entry::truncated)
            .unwrap_or_else(|| Truncated {
                what: "(unknown)".into(),
                size_now: 0,
            }))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut side = lock(&SIDE);
        let entry = side[self.reg.index].take();
        let i = self.reg.index;
        if sigbus::is_lost(i)
            && sigbus::is_counted(i)
            && let Some(e) = entry
        {
            lock(&GONE).get_or_insert_with(|| e.truncated());
        }
        sigbus::unregister(&self.reg);
    }
}

/// Whether every segment this process attached to kept its size: `Err`
/// names the first one that shrank under it, attached now or earlier.
/// Listings' own brief mappings do not count.
///
/// One atomic load while nothing has shrunk, so a layer may ask before
/// every answer it gives.
///
/// # Errors
///
/// [`Truncated`] for a segment that shrank.
pub fn check_mappings() -> Result<(), Truncated> {
    if sigbus::lost_count() == 0 {
        return Ok(());
    }
    let side = lock(&SIDE);
    for (i, entry) in side.iter().enumerate() {
        if let Some(e) = entry
            && sigbus::is_lost(i)
            && sigbus::is_counted(i)
        {
            return Err(e.truncated());
        }
    }
    match lock(&GONE).clone() {
        Some(t) => Err(t),
        None => Ok(()),
    }
}

/// As [`check_mappings`], after asking the kernel the size of every POSIX
/// segment this process maps: for a system call that failed with `EFAULT`,
/// which a truncated segment causes without any `SIGBUS`.
///
/// # Errors
///
/// [`Truncated`] for a segment that shrank.
pub fn verify_mappings() -> Result<(), Truncated> {
    {
        let side = lock(&SIDE);
        for (i, entry) in side.iter().enumerate() {
            if let Some(e) = entry
                && posix::fstat_raw(e.fd).is_ok_and(|s| s.size < e.len as u64)
            {
                sigbus::mark_lost(i);
            }
        }
    }
    check_mappings()
}
