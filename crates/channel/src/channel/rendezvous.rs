//! Creating or opening a channel's segment, and claiming one side of it.
#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shm::header::Layout;
use shm::sync::ProcessId;
use shm::{Access, Lifetime, Managed, ManagedOptions, SegmentId};

use super::{End, Options};
use crate::error::{OpenError, Side};
use crate::layout::{ChannelHeader, EndWords, FLAG_BARRIER};
use crate::raw::Mapped;
use crate::ring::{self, Parker};
use crate::wait;

/// Largest capacity accepted.
const MAX_CAPACITY: u64 = 1 << 40;

/// How many times attaching starts over when the segment vanishes or turns
/// out stale under it.
const ATTACH_TRIES: u32 = 16;

fn ring_size(capacity: u64) -> Result<usize, OpenError> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(OpenError::Capacity { capacity });
    }
    usize::try_from(capacity.next_multiple_of(8) + (ring::FRAME_HEADER + ring::SLACK) as u64)
        .map_err(|_| OpenError::Capacity { capacity })
}

/// Tells the peer, through this side's words `mine`, where this side runs
/// and whether heavy barriers reach it.
fn describe_self(mine: &EndWords, cpus: u64, barrier: bool) {
    mine.cpus.store(cpus, Ordering::Relaxed);
    let flags = if barrier { FLAG_BARRIER } else { 0 };
    mine.flags.store(flags, Ordering::Release);
}

/// Opens the channel's segment, waiting at most `ready_wait` for its
/// creator to finish it. The segment layer's wait can end early, with a
/// segment "not ready" or empty, when the creator finishes between two of
/// its looks; looking again then finds it ready. So "not ready" ends the
/// wait only when `ready_wait` is over, and any other refusal only when it
/// is found twice.
fn open_ready(
    id: &SegmentId,
    layout: &Layout,
    ready_wait: Duration,
) -> Result<Managed, shm::Error> {
    let start = Instant::now();
    let mut second_look = false;
    loop {
        let wait = ready_wait.saturating_sub(start.elapsed());
        match Managed::open(id, Access::ReadWrite, crate::KIND, layout, wait) {
            Err(shm::Error::NotReady { .. }) if !wait.is_zero() => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(shm::Error::NotReady { what, .. }) => {
                let waited_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                return Err(shm::Error::NotReady { what, waited_ms });
            }
            Err(shm::Error::Incompatible { .. } | shm::Error::Foreign { .. }) if !second_look => {
                second_look = true;
            }
            opened => return opened,
        }
    }
}

/// Creates the channel, or opens it if it exists (waiting for its creator to
/// finish), and claims `side` of it.
pub(super) fn attach(id: &SegmentId, side: Side, opts: &Options) -> Result<End, OpenError> {
    let size = ring_size(opts.capacity as u64)?;
    let layout = crate::layout::layout();
    let header = std::mem::size_of::<ChannelHeader>();
    let me = ProcessId::current();
    let name = id.to_string();
    let cpus = wait::cpus_code();
    // Registered before the flag that says so is published.
    let barrier = shm::membarrier::register_global_expedited().is_ok();
    let end = |m, size, created| -> Result<End, OpenError> {
        Ok(End {
            mapped: Mapped::new(m, size)?,
            name: id.to_string(),
            side,
            size,
            wait: opts.wait,
            created,
            last_check: None,
            cpus,
            barrier,
            parker: Parker::new(side),
        })
    };
    for _ in 0..ATTACH_TRIES {
        let mopts = ManagedOptions {
            kind: crate::KIND,
            lifetime: Lifetime::Owned,
            mode: opts.mode,
            layout: layout.clone(),
            payload_size: (header + size) as u64,
        };
        let created = Managed::create(id, &mopts, |m| {
            let h = m.payload_view::<ChannelHeader>(0)?;
            h.setup.ring_size.store(size as u64, Ordering::Relaxed);
            let mine = h.end(side);
            mine.pid.store(me.pid, Ordering::Relaxed);
            mine.start.store(me.start_time, Ordering::Relaxed);
            describe_self(mine, cpus, barrier);
            Ok::<(), shm::Error>(())
        });
        match created {
            Ok(m) => return end(m, size, true),
            Err(shm::Error::Exists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let m = match open_ready(id, &layout, opts.ready_wait) {
            Ok(m) => m,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let h = m.payload_view::<ChannelHeader>(0)?;
        let their_size = h.setup.ring_size.load(Ordering::Acquire);
        if their_size % 8 != 0
            || their_size < 24
            || (header as u64).checked_add(their_size) != Some(m.payload_len() as u64)
        {
            return Err(OpenError::Corrupt {
                channel: name,
                reason: format!(
                    "ring of {their_size} bytes in a payload of {} bytes",
                    m.payload_len()
                ),
            });
        }
        let size = their_size as usize;
        let (mine, theirs) = (h.end(side), h.end(side.other()));
        let peer = theirs.holder();
        // A receiver left by a crash will never read: start afresh. A sender
        // left by a crash may have left messages: the receiver takes them.
        if side == Side::Sender
            && peer.pid != 0
            && (!peer.is_alive() || theirs.state.load(Ordering::Acquire) != ring::OPEN)
        {
            let _ = m.remove();
            continue;
        }
        match mine
            .pid
            .compare_exchange(0, me.pid, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                mine.start.store(me.start_time, Ordering::Release);
                describe_self(mine, cpus, barrier);
            }
            Err(holder) => {
                let holder = ProcessId {
                    pid: holder,
                    start_time: mine.start.load(Ordering::Acquire),
                };
                if holder.is_alive() {
                    return Err(OpenError::Busy {
                        channel: name,
                        side,
                        pid: holder.pid,
                    });
                }
                // Its creator died before any peer came: stale.
                let _ = m.remove();
                continue;
            }
        }
        // Both ends are attached: nobody else needs the name, and with it
        // gone a crash of either end cannot leak the segment.
        let _ = m.remove();
        return end(m, size, false);
    }
    Err(OpenError::Unstable { channel: name })
}
