//! Opening a segment full of arbitrary bytes: the fuzz input becomes the
//! whole content of a real POSIX segment (header and payload), which
//! `Managed::open` must refuse with an error or accept as valid, never
//! panic, hang or read out of bounds. The segment is removed every time.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use shm::header::{HEADER_SIZE, Layout};
use shm::{Access, Error, Kind, Managed, Segment, SegmentId};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the segment even if a check below panics (libFuzzer then stops,
/// but no segment is left in /dev/shm).
struct Remove(SegmentId);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Segment::remove(&self.0);
    }
}

fn check_refusal(id: &SegmentId, e: &Error) {
    let msg = e.to_string();
    assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    match e {
        Error::Incompatible { .. } | Error::Foreign { .. } | Error::NotReady { .. } => {
            assert!(msg.starts_with(&format!("segment {id} ")), "{msg}");
        }
        other => panic!("unexpected error for an existing segment: {other:?}"),
    }
}

fn exercise(m: &Managed) {
    // A header that passed validation must describe this segment.
    assert_eq!(m.payload_len() + HEADER_SIZE, m.segment().len());
    let _ = (
        m.kind(),
        m.lifetime(),
        m.type_name(),
        m.creator(),
        m.created_ns(),
    );
    let mut buf = [0u8; 16];
    let _ = m.read_payload(m.payload_len().saturating_sub(8), &mut buf);
}

fuzz_target!(|data: &[u8]| {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id =
        SegmentId::posix(format!("shmex-fuzz-{}-{n}", std::process::id())).expect("valid name");
    let seg = Segment::create(&id, data.len().max(1) as u64, 0o600)
        .unwrap_or_else(|e| panic!("cannot make the fuzz segment: {e}"));
    let _remove = Remove(id.clone());
    seg.write_at(0, data).expect("the data fits");

    let wait = Duration::from_millis(1);
    let layout = Layout::of::<[std::sync::atomic::AtomicU64; 2]>();
    match Managed::open(&id, Access::ReadWrite, Kind::BYTES, &layout, wait) {
        Ok(m) => exercise(&m),
        Err(e) => check_refusal(&id, &e),
    }
    // No wait here: the loop above already covered waiting, and each turn of
    // it sleeps, which would halve the executions per second.
    match Managed::open_any(&id, Access::ReadOnly, Duration::ZERO) {
        Ok(m) => exercise(&m),
        Err(e) => check_refusal(&id, &e),
    }
    // Listing reads every process's /proc/PID/maps, which would dominate
    // the run time: only inputs with the magic, the ones a listing parses
    // past its first check, go through it.
    if data.starts_with(&shm::header::MAGIC.to_ne_bytes()) {
        let info = shm::inspect(&id).expect("the segment exists");
        assert_eq!(info.size, data.len() as u64);
    }
});
