//! Reading and writing: bounds, alignment, read-only attaches, and a
//! segment behaving like a byte array.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use shm::header::Layout;
use shm::{Access, Error, Kind, Lifetime, Managed, Segment};

use crate::support::*;

/// A read-only attach reads but refuses writes and typed views, raw and
/// managed, and leaves the content as it was.
fn read_only_attach_refuses_writes(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let rw = Segment::create(&id, 4096, 0o600).expect("create");
    rw.write_at(0, b"data").expect("write");
    let ro = Segment::open(&id, Access::ReadOnly).expect("open read-only");
    assert_eq!(ro.access(), Access::ReadOnly);
    let mut b = [0u8; 4];
    ro.read_at(0, &mut b).expect("read");
    assert_eq!(&b, b"data");
    let err = ro.write_at(0, b"nope").expect_err("write read-only");
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("segment {id} is attached read-only: a write needs a read-write attach")
    );
    let err = ro.view::<AtomicU32>(0).expect_err("typed view read-only");
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("segment {id} is attached read-only: a typed view needs a read-write attach")
    );
    let err = ro.bytes().expect_err("atomic bytes read-only");
    assert_eq!(
        err.to_string(),
        format!("segment {id} is attached read-only: atomic byte access needs a read-write attach")
    );
    rw.read_at(0, &mut b).expect("read");
    assert_eq!(&b, b"data", "nothing changed");

    let m_id = g.id(make);
    let _m = create_managed(&m_id, Lifetime::Persistent);
    let ro = Managed::open(
        &m_id,
        Access::ReadOnly,
        Kind::BYTES,
        &Layout::of::<Payload>(),
        Duration::ZERO,
    )
    .expect("managed read-only open");
    let mut c = [0u8; 8];
    ro.read_payload(0, &mut c).expect("read payload");
    assert_eq!(u64::from_ne_bytes(c), 41);
    let err = ro.write_payload(0, b"x").expect_err("write payload");
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("attached read-only"), "{err}");
    let err = ro.payload_view::<Payload>(0).expect_err("payload view");
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("a typed view needs a read-write attach"),
        "{err}"
    );
}

/// Reads and writes past the end are refused with `OutOfBounds` naming the
/// offset, the length and the size; nothing is written.
fn out_of_bounds_access_is_refused(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let seg = Segment::create(&id, 100, 0o600).expect("create");
    let mut buf = [0u8; 8];
    let err = seg.read_at(96, &mut buf).expect_err("read past end");
    assert!(matches!(err, Error::OutOfBounds(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("offset 96 + length 8 is past the end of segment {id} (100 bytes)")
    );
    let err = seg.write_at(99, b"xy").expect_err("write past end");
    assert_eq!(
        err.to_string(),
        format!("offset 99 + length 2 is past the end of segment {id} (100 bytes)")
    );
    let err = seg.read_at(usize::MAX, &mut buf).expect_err("overflow");
    assert!(matches!(err, Error::OutOfBounds(_)), "{err:?}");
    let mut last = [0u8; 1];
    seg.read_at(99, &mut last).expect("last byte");
    assert_eq!(last, [0], "the refused write wrote nothing");
    seg.write_at(99, b"z").expect("last byte is writable");
    seg.read_at(100, &mut [])
        .expect("an empty read at the end is fine");

    let m_id = g.id(make);
    let m = create_managed(&m_id, Lifetime::Persistent);
    let err = m
        .write_payload(PAYLOAD as usize - 1, b"ab")
        .expect_err("payload write past end");
    assert_eq!(
        err.to_string(),
        format!(
            "offset {} + length 2 is past the end of segment {m_id} (payload of {PAYLOAD} bytes)",
            PAYLOAD - 1
        )
    );
    let err = m
        .read_payload(usize::MAX, &mut buf)
        .expect_err("payload read overflow");
    assert!(matches!(err, Error::OutOfBounds(_)), "{err:?}");
}

/// Typed views check alignment, bounds and overflow.
fn typed_views_check_offsets(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let seg = Segment::create(&id, 4096, 0o600).expect("create");
    let err = seg.view::<AtomicU64>(4).expect_err("misaligned");
    assert!(matches!(err, Error::OutOfBounds(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("offset 4 of segment {id} is not aligned for core::sync::atomic::AtomicU64")
    );
    seg.view::<AtomicU64>(4088)
        .expect("last word")
        .store(7, Ordering::SeqCst);
    let mut b = [0u8; 8];
    seg.read_at(4088, &mut b).expect("read");
    assert_eq!(u64::from_ne_bytes(b), 7, "the view is the segment");
    let err = seg.view::<AtomicU64>(4092).expect_err("past the end");
    assert!(err.to_string().contains("past the end"), "{err}");
    let err = seg.view::<AtomicU64>(4096).expect_err("at the end");
    assert!(err.to_string().contains("past the end"), "{err}");
    assert_eq!(seg.view_slice::<AtomicU64>(0, 512).expect("all").len(), 512);
    let err = seg
        .view_slice::<AtomicU64>(0, 513)
        .expect_err("one too many");
    assert!(err.to_string().contains("past the end"), "{err}");
    let err = seg
        .view_slice::<AtomicU64>(0, usize::MAX)
        .expect_err("overflowing count");
    assert!(
        err.to_string().contains("overflow the address space"),
        "{err}"
    );

    let m_id = g.id(make);
    let m = create_managed(&m_id, Lifetime::Persistent);
    let err = m.payload_view::<Payload>(usize::MAX).expect_err("overflow");
    assert_eq!(err.to_string(), "offset overflow");
    let err = m
        .payload_view::<Payload>(4)
        .expect_err("misaligned payload");
    assert!(err.to_string().contains("is not aligned for"), "{err}");
    let n = PAYLOAD as usize / 16;
    assert_eq!(m.payload_slice::<Payload>(0, n).expect("all").len(), n);
    let err = m.payload_slice::<Payload>(16, n).expect_err("past the end");
    assert!(err.to_string().contains("past the end"), "{err}");
}

/// Property: any sequence of writes and reads at any offsets behaves like a
/// byte array of the segment's size, seen alike through a second
/// attachment; everything past the end is refused and changes nothing.
fn reads_and_writes_match_a_byte_array(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let op = (0..640usize, proptest::collection::vec(any::<u8>(), 0..48));
    let strategy = (1..600usize, proptest::collection::vec(op, 1..16));
    runner(48)
        .run(&strategy, |(size, ops)| {
            let a = Segment::create(&id, size as u64, 0o600).map_err(fail)?;
            let _remove = RemoveOnDrop(&id);
            let b = Segment::open(&id, Access::ReadWrite).map_err(fail)?;
            prop_assert_eq!(b.len(), size);
            let mut model = vec![0u8; size];
            for (off, data) in ops {
                let fits = off + data.len() <= size;
                match a.write_at(off, &data) {
                    Ok(()) => {
                        prop_assert!(fits, "write at {} of {} accepted", off, data.len());
                        model[off..off + data.len()].copy_from_slice(&data);
                    }
                    Err(Error::OutOfBounds(msg)) => {
                        prop_assert!(!fits, "write at {} of {} refused", off, data.len());
                        prop_assert!(msg.contains("past the end"), "{}", msg);
                    }
                    Err(e) => return Err(fail(e)),
                }
                let mut buf = vec![0u8; data.len()];
                match b.read_at(off, &mut buf) {
                    Ok(()) => {
                        prop_assert!(fits);
                        prop_assert_eq!(&buf[..], &model[off..off + data.len()]);
                    }
                    Err(Error::OutOfBounds(_)) => prop_assert!(!fits),
                    Err(e) => return Err(fail(e)),
                }
            }
            let mut all = vec![0u8; size];
            b.read_at(0, &mut all).map_err(fail)?;
            prop_assert_eq!(all, model);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

both_backends!(
    read_only_attach_refuses_writes,
    out_of_bounds_access_is_refused,
    typed_views_check_offsets,
    reads_and_writes_match_a_byte_array,
);
