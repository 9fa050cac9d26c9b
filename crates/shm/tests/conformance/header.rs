//! The managed header: every field read back by name, and every mismatch
//! (size, layout, version, byte order, word size, kind, lifetime, state,
//! garbage, no header at all) refused with its own message.

use std::sync::atomic::Ordering;
use std::time::Duration;

use proptest::prelude::*;
use shm::header::{self, HEADER_SIZE, Header, HeaderBytes, Layout, offsets};
use shm::{Access, Error, Kind, Lifetime, Managed, Segment, Status};

use crate::support::*;

/// Wrong sizes: a header whose total or payload size disagrees with the
/// segment, a payload type of another size, and a segment too small for a
/// header. Each is `Incompatible`, naming the sizes.
fn wrong_size_is_incompatible(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let m = create_managed(&id, Lifetime::Persistent);
    let payload = Layout::of::<Payload>();
    let wide = Layout::of::<Wide>();

    let msg = incompatible(
        Managed::open(&id, Access::ReadWrite, Kind::BYTES, &wide, Duration::ZERO),
        &id,
    );
    assert_eq!(
        msg,
        format!(
            "segment {id} holds a {} of 16 bytes (align 8) but this shmex expects a {} of 32 bytes (align 8): it was made by another version of shmex",
            payload.type_name, wide.type_name
        )
    );

    patch_u64(m.segment(), offsets::TOTAL_SIZE, 4096, 8192);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert_eq!(
        msg,
        format!(
            "segment {id} is corrupted: its header says 8192 bytes (payload {PAYLOAD}) but the segment has 4096"
        )
    );
    patch_u64(m.segment(), offsets::TOTAL_SIZE, 8192, 4096);
    patch_u64(m.segment(), offsets::PAYLOAD_SIZE, PAYLOAD, PAYLOAD - 8);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(
        msg.contains(&format!(
            "its header says 4096 bytes (payload {}) but the segment has 4096",
            PAYLOAD - 8
        )),
        "{msg}"
    );
    patch_u64(m.segment(), offsets::PAYLOAD_SIZE, PAYLOAD - 8, PAYLOAD);
    open_payload(&id, Duration::ZERO).expect("restored header opens again");

    let tiny_id = g.id(make);
    let _tiny = Segment::create(&tiny_id, 100, 0o600).expect("create");
    let msg = foreign(open_payload(&tiny_id, Duration::ZERO), &tiny_id);
    assert_eq!(
        msg,
        format!(
            "segment {tiny_id} is 100 bytes, too small for a shmex header: it was not made by shmex"
        )
    );
}

/// The layout fingerprint: a stored fingerprint that does not match the
/// stored layout is corruption; a type of the same size but another name is
/// another layout.
fn wrong_layout_fingerprint_is_incompatible(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let m = create_managed(&id, Lifetime::Persistent);
    let payload = Layout::of::<Payload>();
    let impostor = Layout::of::<Impostor>();
    assert_ne!(payload.fingerprint(), impostor.fingerprint());

    let msg = incompatible(
        Managed::open(
            &id,
            Access::ReadWrite,
            Kind::BYTES,
            &impostor,
            Duration::ZERO,
        ),
        &id,
    );
    assert!(
        msg.contains(&format!(
            "holds a {} of 16 bytes (align 8) but this shmex expects a {} of 16 bytes",
            payload.type_name, impostor.type_name
        )),
        "{msg}"
    );

    let fp = payload.fingerprint();
    patch_u64(m.segment(), offsets::FINGERPRINT, fp, fp ^ 1);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert_eq!(
        msg,
        format!("segment {id} is corrupted: its layout fingerprint does not match its layout")
    );
    let info = shm::inspect(&id).expect("inspect");
    assert!(
        matches!(&info.status, Status::Invalid(r) if r.contains("fingerprint")),
        "{:?}",
        info.status
    );

    // A stored layout that was changed without its fingerprint is caught too.
    patch_u64(m.segment(), offsets::FINGERPRINT, fp ^ 1, fp);
    patch_u64(m.segment(), offsets::TYPE_ALIGN, 8, 16);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(msg.contains("fingerprint does not match"), "{msg}");
}

/// Header format version, byte order, word size, header size, kind and
/// lifetime codes: each mismatch is refused with its own message.
fn wrong_format_version_is_incompatible(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let m = create_managed(&id, Lifetime::Persistent);
    let seg = m.segment();
    let v = header::FORMAT_VERSION;

    patch_u32(seg, offsets::VERSION, v, v + 1);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert_eq!(
        msg,
        format!(
            "segment {id} has header format version {}, but this shmex reads version {v}: use the shmex that made it",
            v + 1
        )
    );
    let info = shm::inspect(&id).expect("inspect");
    assert!(
        matches!(&info.status, Status::Invalid(r) if r.contains("format version")),
        "{:?}",
        info.status
    );
    patch_u32(seg, offsets::VERSION, v + 1, v);

    patch_u64(
        seg,
        offsets::MAGIC,
        header::MAGIC,
        header::MAGIC.swap_bytes(),
    );
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(msg.contains("the other byte order"), "{msg}");
    patch_u64(
        seg,
        offsets::MAGIC,
        header::MAGIC.swap_bytes(),
        header::MAGIC,
    );

    patch_u32(seg, offsets::WORD_BITS, usize::BITS, 32);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(msg.contains("was made on a 32-bit machine"), "{msg}");
    patch_u32(seg, offsets::WORD_BITS, 32, usize::BITS);

    patch_u32(seg, offsets::HEADER_SIZE, HEADER_SIZE as u32, 512);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(msg.contains("header size 512 instead of 256"), "{msg}");
    patch_u32(seg, offsets::HEADER_SIZE, 512, HEADER_SIZE as u32);

    let msg = incompatible(
        Managed::open(
            &id,
            Access::ReadWrite,
            Kind::new(77, "queue"),
            &Layout::of::<Payload>(),
            Duration::ZERO,
        ),
        &id,
    );
    assert_eq!(
        msg,
        format!("segment {id} holds a bytes segment, not a queue")
    );

    patch_u32(seg, offsets::KIND, Kind::BYTES.code(), 0);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(msg.contains("is corrupted: its kind code is 0"), "{msg}");
    // A code nobody registered here is a kind of a layer above: any-kind
    // openers and listings take it, named by its code; expecting another
    // kind refuses it.
    patch_u32(seg, offsets::KIND, 0, 99);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert_eq!(
        msg,
        format!("segment {id} holds a segment of kind 99, not a bytes segment")
    );
    let any = Managed::open_any(&id, Access::ReadOnly, Duration::ZERO).expect("any kind");
    assert_eq!(any.kind().code(), 99);
    drop(any);
    let info = shm::inspect(&id).expect("inspect");
    assert_eq!(info.kind.map(|k| k.to_string()), Some("kind 99".into()));
    // Persistent, and this process holds it.
    assert_eq!(info.status, Status::Live);
    patch_u32(seg, offsets::KIND, 99, Kind::BYTES.code());

    patch_u32(seg, offsets::LIFETIME, Lifetime::Persistent.code(), 7);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(msg.contains("unknown lifetime code 7"), "{msg}");
    patch_u32(seg, offsets::LIFETIME, 7, Lifetime::Persistent.code());

    patch_u32(seg, offsets::STATE, header::STATE_READY, 5);
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(msg.contains("unknown state 5"), "{msg}");
    patch_u32(seg, offsets::STATE, 5, header::STATE_READY);

    patch_u32(
        seg,
        offsets::TYPE_NAME_LEN,
        Layout::of::<Payload>().type_name.len() as u32,
        97,
    );
    let msg = incompatible(open_payload(&id, Duration::ZERO), &id);
    assert!(msg.contains("type name too long"), "{msg}");

    // A header fully restored opens again: the patches above were the cause.
    patch_u32(
        seg,
        offsets::TYPE_NAME_LEN,
        97,
        Layout::of::<Payload>().type_name.len() as u32,
    );
    open_payload(&id, Duration::ZERO).expect("restored header opens");
}

/// The header's two descriptions agree: every field written through the
/// `Header` struct is read back under its own name by `HeaderBytes`, and
/// lies at its fixed byte position in native byte order. Each field gets a
/// value no other field has, so an accessor that read a neighbour fails.
fn header_fields_read_back_by_name(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let seg = Segment::create(&id, HEADER_SIZE as u64, 0o600).expect("create");
    let h = seg.view::<Header>(0).expect("typed view of the header");
    let w32 = |i: u32| 0xA5A5_0000 | i;
    let w64 = |i: u64| 0x5A5A_0000_0000_0000 | i;
    let r = Ordering::Relaxed;
    h.magic.store(w64(0), r);
    h.version.store(w32(1), r);
    h.state.store(w32(2), r);
    h.header_size.store(w32(3), r);
    h.kind.store(w32(4), r);
    h.lifetime.store(w32(5), r);
    h.word_bits.store(w32(6), r);
    h.fingerprint.store(w64(7), r);
    h.type_size.store(w64(8), r);
    h.type_align.store(w64(9), r);
    h.total_size.store(w64(10), r);
    h.payload_size.store(w64(11), r);
    h.creator_uid.store(w32(12), r);
    h.creator_pid.store(w32(13), r);
    h.creator_start.store(w64(14), r);
    h.created_ns.store(w64(15), r);
    h.type_name_len.store(5, r);
    h.reserved.store(w32(17), r);
    for (dst, b) in h.type_name.iter().zip(b"namesandmore") {
        dst.store(*b, r);
    }

    let b = HeaderBytes::read(&seg);
    let fields: [(&str, u64, usize, u64); 18] = [
        ("magic", b.magic(), 0, w64(0)),
        ("version", b.version().into(), 8, w32(1).into()),
        ("state", b.state().into(), 12, w32(2).into()),
        ("header_size", b.header_size().into(), 16, w32(3).into()),
        ("kind", b.kind().into(), 20, w32(4).into()),
        ("lifetime", b.lifetime().into(), 24, w32(5).into()),
        ("word_bits", b.word_bits().into(), 28, w32(6).into()),
        ("fingerprint", b.fingerprint(), 32, w64(7)),
        ("type_size", b.type_size(), 40, w64(8)),
        ("type_align", b.type_align(), 48, w64(9)),
        ("total_size", b.total_size(), 56, w64(10)),
        ("payload_size", b.payload_size(), 64, w64(11)),
        ("creator_uid", b.creator_uid().into(), 72, w32(12).into()),
        ("creator_pid", b.creator_pid().into(), 76, w32(13).into()),
        ("creator_start", b.creator_start(), 80, w64(14)),
        ("created_ns", b.created_ns(), 88, w64(15)),
        ("type_name_len", b.type_name_len().into(), 96, 5),
        ("reserved", b.reserved().into(), 100, w32(17).into()),
    ];
    for (name, by_name, at, want) in fields {
        assert_eq!(by_name, want, "{name} read by name");
        let at_position = if want > u64::from(u32::MAX) {
            read_u64(&seg, at)
        } else {
            u64::from(read_u32(&seg, at))
        };
        assert_eq!(at_position, want, "{name} at byte {at}");
    }
    assert_eq!(b.type_name(), b"names", "type name, cut at its length");
    let mut at_position = [0u8; 5];
    seg.read_at(104, &mut at_position).expect("read");
    assert_eq!(&at_position, b"names", "type name at byte 104");
}

/// Segments shmex did not make (raw bytes) are refused by `Managed::open`
/// and listed as foreign.
fn foreign_segment_is_refused(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let seg = Segment::create(&id, 4096, 0o600).expect("create");
    seg.write_at(0, b"just some bytes, no header here")
        .expect("write");
    let msg = foreign(open_payload(&id, Duration::from_millis(100)), &id);
    assert_eq!(
        msg,
        format!("segment {id} is not a shmex segment (no shmex header)")
    );
    let err = Managed::open_any(&id, Access::ReadOnly, Duration::ZERO).expect_err("open_any");
    assert!(matches!(err, Error::Foreign { .. }), "{err:?}");
    assert_eq!(shm::inspect(&id).expect("inspect").status, Status::Foreign);
    let listed = shm::list().expect("list");
    let me = listed.iter().find(|i| i.id == id).expect("listed");
    assert_eq!(me.status, Status::Foreign);
    assert_eq!(me.kind, None);
}

/// Property: arbitrary bytes in place of a header, with any subset of the
/// fields set right so that every later check is reached, are refused with
/// `Incompatible`, `Foreign` or `NotReady` within the wait, never a panic, a hang or an
/// accepted segment; listings call them foreign, invalid or initializing.
fn random_header_is_refused(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let total = HEADER_SIZE + 64;
    let strategy = (
        proptest::collection::vec(any::<u8>(), HEADER_SIZE),
        any::<u16>(),
    );
    runner(96)
        .run(&strategy, |(mut h, fix)| {
            let name_len = u32::from(h[offsets::TYPE_NAME_LEN]) % 97;
            let mut put = |bit: u16, off: usize, bytes: &[u8]| {
                if fix & (1 << bit) != 0 {
                    h[off..off + bytes.len()].copy_from_slice(bytes);
                }
            };
            put(0, offsets::MAGIC, &header::MAGIC.to_ne_bytes());
            put(1, offsets::VERSION, &header::FORMAT_VERSION.to_ne_bytes());
            put(2, offsets::WORD_BITS, &usize::BITS.to_ne_bytes());
            put(3, offsets::HEADER_SIZE, &(HEADER_SIZE as u32).to_ne_bytes());
            put(4, offsets::TOTAL_SIZE, &(total as u64).to_ne_bytes());
            put(4, offsets::PAYLOAD_SIZE, &64u64.to_ne_bytes());
            put(5, offsets::KIND, &Kind::BYTES.code().to_ne_bytes());
            put(6, offsets::LIFETIME, &Lifetime::Owned.code().to_ne_bytes());
            put(7, offsets::STATE, &header::STATE_READY.to_ne_bytes());
            put(8, offsets::TYPE_NAME_LEN, &name_len.to_ne_bytes());
            put(8, offsets::TYPE_NAME, &[b'x'; 96]);

            let seg = Segment::create(&id, total as u64, 0o600).map_err(fail)?;
            let _remove = RemoveOnDrop(&id);
            seg.write_at(0, &h).map_err(fail)?;
            let wait = Duration::from_millis(5);
            for r in [
                open_payload(&id, wait),
                Managed::open_any(&id, Access::ReadOnly, wait),
            ] {
                match r {
                    Ok(_) => return Err(fail("a garbage header was accepted")),
                    Err(
                        e @ (Error::Incompatible { .. }
                        | Error::Foreign { .. }
                        | Error::NotReady { .. }),
                    ) => {
                        let msg = e.to_string();
                        prop_assert!(msg.starts_with(&format!("segment {id} ")), "{}", msg);
                        prop_assert!(!msg.contains('\n'), "{:?}", msg);
                    }
                    Err(e) => return Err(fail(format!("unexpected error {e:?}"))),
                }
            }
            let status = shm::inspect(&id).map_err(fail)?.status;
            prop_assert!(
                matches!(
                    status,
                    Status::Foreign | Status::Invalid(_) | Status::Initializing
                ),
                "{:?}",
                status
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Property: in a valid header, changing any byte the validation covers
/// makes the segment refused, and changing any other byte (creator, times,
/// reserved, unused name bytes) does not: every checked byte matters, and
/// nothing else is checked.
fn every_checked_header_byte_matters(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let name_len = Layout::of::<Payload>().type_name.len();
    let strategy = (0..HEADER_SIZE, 1..=255u8);
    runner(96)
        .run(&strategy, |(off, xor)| {
            let m = Managed::create(&id, &opts(Lifetime::Persistent), |_| Ok::<(), Error>(()))
                .map_err(fail)?;
            let _remove = RemoveOnDrop(&id);
            let seg = m.segment();
            let mut b = [0u8; 1];
            seg.read_at(off, &mut b).map_err(fail)?;
            seg.write_at(off, &[b[0] ^ xor]).map_err(fail)?;
            let lifetime = read_u32(seg, offsets::LIFETIME);
            let checked = match off {
                offsets::MAGIC..offsets::LIFETIME
                | offsets::WORD_BITS..offsets::CREATOR_UID
                | offsets::TYPE_NAME_LEN..offsets::RESERVED => true,
                offsets::LIFETIME..offsets::WORD_BITS => Lifetime::from_code(lifetime).is_none(),
                _ => (offsets::TYPE_NAME..offsets::TYPE_NAME + name_len).contains(&off),
            };
            let r = open_payload(&id, Duration::from_millis(5));
            match (checked, r) {
                (true, Ok(_)) => Err(fail(format!("byte {off} ^ {xor:#x} went unnoticed"))),
                (
                    true,
                    Err(
                        Error::Incompatible { .. } | Error::Foreign { .. } | Error::NotReady { .. },
                    ),
                ) => Ok(()),
                (false, Ok(_)) => Ok(()),
                (_, Err(e)) => Err(fail(format!("byte {off} ^ {xor:#x}: {e:?}"))),
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

both_backends!(
    wrong_size_is_incompatible,
    wrong_layout_fingerprint_is_incompatible,
    wrong_format_version_is_incompatible,
    header_fields_read_back_by_name,
    foreign_segment_is_refused,
    random_header_is_refused,
    every_checked_header_byte_matters,
);
