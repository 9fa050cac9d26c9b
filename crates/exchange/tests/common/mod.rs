//! Helpers for the exchange's tests: exchanges under unique names or keys,
//! removed when the test ends, also when it fails.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use exchange::{Capacity, Config, Exchange, State};
use shm::SegmentId;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Which kind of segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Posix,
    SysV,
}

/// Removes its segment when dropped.
pub struct Guard(pub SegmentId);

impl Drop for Guard {
    fn drop(&mut self) {
        for _ in 0..4 {
            if shm::Segment::remove(&self.0).is_err() {
                break;
            }
        }
    }
}

/// A segment id no other test or test process uses.
pub fn unique(backend: Backend, tag: &str) -> Guard {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Guard(match backend {
        Backend::Posix => SegmentId::Posix(format!("shmex-xtest-{tag}-{pid}-{n}")),
        // 0x4E…: a range no other test of this workspace uses.
        Backend::SysV => {
            SegmentId::SysV(0x4E00_0000 | ((pid & 0xFFFF) << 8) as i32 | (n & 0xFF) as i32)
        }
    })
}

/// The built-in table with the given room.
pub fn builtin(capacity: Capacity) -> State {
    let (mut c, _) = Config::builtin();
    c.capacity = capacity;
    c.into_state().expect("built-in table")
}

/// A fresh exchange of the built-in table.
pub fn create(backend: Backend, tag: &str, capacity: Capacity) -> (Guard, Exchange) {
    let g = unique(backend, tag);
    // A key left over by a crashed run of a test with the same pid is stale.
    let _ = shm::Segment::remove(&g.0);
    let ex = Exchange::create(&g.0, &builtin(capacity), &[], 0o600).expect("create exchange");
    (g, ex)
}
