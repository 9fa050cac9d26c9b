//! The segment and sync layers of shmex.
//!
//! Everything in shmex that touches shared memory or the kernel's
//! synchronization primitives goes through this crate, and this crate is the
//! only one (with the channel's small `raw` module) that contains `unsafe`.
//! The rest of the workspace sees safe types:
//!
//! * [`Segment`]: one attached segment of either backend, System V (a
//!   `shmget` key, as in the seed) or POSIX (a `shm_open` name), read and
//!   written through atomics.
//! * [`Managed`]: a segment that starts with a validated [`header`], so that
//!   a segment of another version, type or architecture is refused with a
//!   clear error instead of being misread. Its [`Kind`] says what it
//!   holds: this crate knows only plain bytes; the crates above define
//!   their own kinds and programs [`register_kind`] them for listings.
//! * [`list`], [`inspect`] and [`remove_stale`]: every segment on the
//!   machine, and clean-up of those whose holders all died.
//! * [`check_mappings`] and [`Segment::check_intact`]: whether a segment
//!   shrank under this process. Another process can truncate a POSIX
//!   segment's file at any moment; this process then reads zeros instead
//!   of dying of `SIGBUS`, and these say so before anything read is
//!   trusted.
//! * [`allow_owner`]: whose existing segments this process attaches to
//!   (its own user's only, by default).
//! * [`sync`]: futex wait and wake on shared words, a process-shared lock
//!   whose holder's death is detected (plain integers in shared memory, no
//!   pointer), a seqlock, and process liveness.
//! * [`Shared`] and [`shared_struct!`]: the marker for types that may live in
//!   shared memory.
//! * [`sys`], [`membarrier`], [`eventfd`]: the few process-level system
//!   calls the programs above need. Every call into the kernel lives in one
//!   private `os` module.
//!
//! # Examples
//!
//! ```
//! use shm::{Access, Segment, SegmentId};
//! # fn main() -> Result<(), shm::Error> {
//! let id = SegmentId::posix(format!("shmex-doc-{}", std::process::id()))?;
//! let seg = Segment::create(&id, 4096, 0o600)?;
//! seg.write_at(0, b"hello")?;
//! let other = Segment::open(&id, Access::ReadOnly)?;
//! let mut buf = [0u8; 5];
//! other.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//! Segment::remove(&id)?;
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod header;
mod id;
mod kind;
mod list;
mod managed;
mod os;
mod segment;
mod shared;
mod shrink;
pub mod sync;
mod trust;

pub use error::Error;
pub use header::Lifetime;
pub use id::SegmentId;
pub use kind::{Kind, register_kind};
pub use list::{Backend, SegmentInfo, Status, inspect, list, remove_if_stale, remove_stale};
pub use managed::{DEFAULT_READY_WAIT, Managed, ManagedOptions};
pub use os::users::{user_id, user_name};
pub use os::{eventfd, membarrier, sys, total_memory};
pub use segment::{Access, Segment};
pub use shared::Shared;
pub use shrink::{Truncated, check_mappings, verify_mappings};
pub use trust::{allow_owner, owner_allowed};
