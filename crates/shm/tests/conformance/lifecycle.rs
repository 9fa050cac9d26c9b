//! A segment's life: create (exclusively, with what was asked), open from
//! another process, wait for a creator to finish, and remove, also while
//! attached.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shm::header::Layout;
use shm::{Access, Error, Kind, Lifetime, Managed, ManagedOptions, Segment, SegmentId, Status};

use crate::support::*;

/// A raw segment made here is read and answered by another process, and the
/// answer is visible here; sizes and modes are what was asked.
fn raw_write_and_read_across_processes(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let seg = Segment::create(&id, 5000, 0o640).expect("create");
    assert_eq!(seg.len(), 5000);
    assert_eq!(seg.access(), Access::ReadWrite);
    let info = shm::inspect(&id).expect("inspect");
    assert_eq!(info.mode, 0o640, "mode is exactly what was asked");
    assert_eq!(info.size, 5000);
    assert_eq!(info.status, Status::Foreign, "a raw segment has no header");

    let msg = format!("hello from {}", std::process::id());
    seg.write_at(0, msg.as_bytes()).expect("write");
    let child = spawn_child("echo-raw", &id, &msg);
    let out = child.wait_with_output().expect("child runs");
    assert!(out.status.success(), "child failed: {:?}", out.status);

    let mut reply = vec![0u8; msg.len()];
    seg.read_at(REPLY_AT, &mut reply).expect("read");
    let mut expect = msg.into_bytes();
    expect.reverse();
    assert_eq!(reply, expect);
}

/// A managed segment: the header says what was created, a second process
/// opens it with the same layout, sees the payload, and its writes are seen
/// here.
fn managed_write_and_read_across_processes(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let m = create_managed(&id, Lifetime::Persistent);
    assert_eq!(m.payload_len() as u64, PAYLOAD);
    assert_eq!(m.segment().len(), 4096);
    assert_eq!(m.kind(), Kind::BYTES);
    assert_eq!(m.lifetime(), Some(Lifetime::Persistent));
    assert_eq!(m.type_name(), Layout::of::<Payload>().type_name);
    assert_eq!(m.creator().pid, std::process::id());

    let info = shm::inspect(&id).expect("inspect");
    assert_eq!(info.kind, Some(Kind::BYTES));
    assert_eq!(info.lifetime, Some(Lifetime::Persistent));
    assert_eq!(info.mode, 0o600);
    assert_eq!(info.creator_pid, Some(std::process::id()));
    assert_eq!(info.creator_alive, Some(true));
    // Persistent, and this process holds it.
    assert_eq!(info.status, Status::Live);

    let msg = format!("ping from {}", std::process::id());
    m.write_payload(MSG_AT, msg.as_bytes()).expect("write");
    let child = spawn_child("echo-managed", &id, &msg);
    let child_pid = child.id();
    let out = child.wait_with_output().expect("child runs");
    assert!(out.status.success(), "child failed: {:?}", out.status);

    let p = m.payload_view::<Payload>(0).expect("view");
    assert_eq!(p.counter.load(Ordering::SeqCst), 42, "child's increment");
    let expect = format!("pong from {child_pid}");
    let mut reply = vec![0u8; expect.len()];
    m.read_payload(REPLY_AT, &mut reply).expect("read");
    assert_eq!(String::from_utf8_lossy(&reply), expect);
}

/// Exclusive creation: a second create of the same key or name is refused
/// with `Exists`, raw or managed, and the first segment is untouched.
fn exclusive_create_is_refused(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let first = Segment::create(&id, 4096, 0o600).expect("create");
    first.write_at(0, b"first").expect("write");

    let err = Segment::create(&id, 8192, 0o666).expect_err("second create");
    assert!(matches!(err, Error::Exists { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("segment {id} already exists"));
    let err = Managed::create(&id, &opts(Lifetime::Owned), |_| Ok::<(), Error>(()))
        .expect_err("managed create over it");
    assert!(matches!(err, Error::Exists { .. }), "{err:?}");

    let again = Segment::open(&id, Access::ReadOnly).expect("open");
    assert_eq!(again.len(), 4096, "size unchanged");
    let mut b = [0u8; 5];
    again.read_at(0, &mut b).expect("read");
    assert_eq!(&b, b"first", "content unchanged");
    assert_eq!(shm::inspect(&id).expect("inspect").mode, 0o600);
}

/// Everything that needs an existing segment says `NotFound`, naming it.
fn missing_segment_is_not_found(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let want = format!("segment {id} does not exist");
    for access in [Access::ReadWrite, Access::ReadOnly] {
        let err = Segment::open(&id, access).expect_err("open of nothing");
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(err.to_string(), want);
    }
    let err = open_payload(&id, Duration::from_millis(200)).expect_err("managed open");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), want);
    let err = Segment::remove(&id).expect_err("remove of nothing");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.to_string(), want);
    let err = shm::inspect(&id).expect_err("inspect of nothing");
    assert!(err.is_not_found(), "{err:?}");
}

/// Sizes and modes that can never work are refused before anything is made.
fn impossible_requests_are_invalid(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let err = Segment::create(&id, 0, 0o600).expect_err("size 0");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid size 0: a segment holds at least 1 byte"
    );
    let err = Segment::create(&id, 4096, 0o1777).expect_err("sticky mode");
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert!(err.to_string().starts_with("invalid mode 1777"), "{err}");
    let err = Segment::create(&id, u64::MAX / 2, 0o600).expect_err("huge size");
    assert!(matches!(err, Error::NoSpace { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("larger than this machine's memory"),
        "{err}"
    );
    let small = ManagedOptions {
        payload_size: 8,
        ..opts(Lifetime::Owned)
    };
    let err = Managed::create(&id, &small, |_| Ok::<(), Error>(())).expect_err("small payload");
    assert_eq!(
        err.to_string(),
        format!(
            "payload of 8 bytes cannot hold a {} of 16 bytes",
            Layout::of::<Payload>().type_name
        )
    );
    assert!(
        Segment::open(&id, Access::ReadOnly)
            .unwrap_err()
            .is_not_found()
    );
}

/// A failing `init` leaves no segment behind and hands back its error.
fn failed_init_removes_the_segment(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let err = Managed::create(&id, &opts(Lifetime::Persistent), |_| {
        Err(Error::Invalid("init refused".into()))
    })
    .expect_err("init fails");
    assert_eq!(err.to_string(), "init refused");
    let err = Segment::open(&id, Access::ReadOnly).expect_err("nothing left");
    assert!(err.is_not_found(), "{err:?}");
}

/// Ready-wait: while a creator is still in `init`, a System V opener gets
/// `NotReady` after its bound and the listing says `initializing`; a POSIX
/// segment has no name yet at all (it gets one only once ready), so it is
/// not found and not listed. A patient opener gets the segment once the
/// creator marks it ready; an all-zero segment (a System V creator that
/// died before writing the header, or a raw one) is `NotReady` too.
fn ready_wait_is_bounded(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let idr = &id;
    std::thread::scope(|s| {
        // Owned by this closure: if an assertion below fails, unwinding
        // drops it and the creator's wait ends at once.
        let go_tx = go_tx;
        let creator = s.spawn(move || {
            Managed::create(idr, &opts(Lifetime::Persistent), move |_| {
                entered_tx.send(()).expect("signal");
                // Also bounded in time, whatever happens to the sender.
                let _ = go_rx.recv_timeout(Duration::from_secs(30));
                Ok::<(), Error>(())
            })
        });
        entered_rx.recv().expect("creator entered init");

        let err = open_payload(&id, Duration::from_millis(150)).expect_err("still initializing");
        match (&id, &err) {
            (SegmentId::SysV(_), Error::NotReady { what, waited_ms }) => {
                assert_eq!(what, &id.to_string());
                assert!(*waited_ms >= 150, "gave up after {waited_ms} ms");
                let msg = err.to_string();
                assert!(
                    msg.starts_with(&format!("segment {id} is not ready after ")),
                    "{msg}"
                );
                assert!(
                    msg.ends_with(": its creator may have died while creating it"),
                    "{msg}"
                );
                assert_eq!(
                    shm::inspect(&id).expect("inspect").status,
                    Status::Initializing
                );
            }
            (SegmentId::Posix(name), Error::NotFound { .. }) => {
                assert!(shm::inspect(&id).expect_err("unnamed").is_not_found());
                assert!(
                    !std::path::Path::new("/dev/shm").join(name).exists(),
                    "a POSIX segment is named only once ready"
                );
            }
            (_, other) => panic!("{id} while its creator is in init: {other:?}"),
        }

        let opener = s.spawn(|| {
            // A POSIX opener keeps trying until the name appears.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match open_payload(&id, Duration::from_secs(20)) {
                    Err(e) if e.is_not_found() && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    r => return r,
                }
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        go_tx.send(()).expect("release the creator");
        let created = creator.join().expect("creator thread").expect("created");
        let opened = opener
            .join()
            .expect("opener thread")
            .expect("opened once ready");
        assert_eq!(
            opened
                .payload_view::<Payload>(0)
                .expect("view")
                .counter
                .load(Ordering::SeqCst),
            0
        );
        drop(created);
    });

    let zero_id = g.id(make);
    let _zero = Segment::create(&zero_id, 4096, 0o600).expect("create");
    let err = open_payload(&zero_id, Duration::from_millis(30)).expect_err("all zero");
    assert!(
        matches!(err, Error::NotReady { waited_ms, .. } if waited_ms >= 30),
        "{err:?}"
    );
}

/// Remove while attached: the name is free at once (open says `NotFound`,
/// a new segment may take it and is a different one), the attached handles
/// keep working on the old one, and the kernel drops it when the last
/// handle detaches.
fn remove_while_attached(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let a = Segment::create(&id, 4096, 0o600).expect("create");
    let b = Segment::open(&id, Access::ReadWrite).expect("open");
    a.write_at(0, b"before").expect("write");
    let shmid = a.sysv_id();
    assert_eq!(shmid, b.sysv_id());

    Segment::remove(&id).expect("remove");
    let err = Segment::open(&id, Access::ReadOnly).expect_err("open after remove");
    assert!(err.is_not_found(), "{err:?}");
    let err = Segment::remove(&id).expect_err("second remove");
    assert!(err.is_not_found(), "{err:?}");
    assert!(
        kernel_keeps(&id, shmid),
        "removed while attached: still there"
    );

    b.write_at(100, b"after").expect("write after remove");
    let mut got = [0u8; 5];
    a.read_at(100, &mut got).expect("read after remove");
    assert_eq!(&got, b"after");

    let c = Segment::create(&id, 4096, 0o600).expect("the name is free again");
    if let (Some(new), Some(old)) = (c.sysv_id(), shmid) {
        assert_ne!(new, old, "the key names a new System V segment");
    }
    let mut fresh = [0xffu8; 6];
    c.read_at(0, &mut fresh).expect("read");
    assert_eq!(fresh, [0u8; 6], "the new segment starts zeroed");
    c.write_at(0, b"newest").expect("write");
    let mut old = [0u8; 6];
    a.read_at(0, &mut old).expect("read");
    assert_eq!(&old, b"before", "the old segment is another one");

    drop(a);
    assert!(kernel_keeps(&id, shmid), "one handle is still attached");
    drop(b);
    // Bounded: a `segment ls` elsewhere on the machine may have attached to
    // it for a moment before it was removed; its detach ends it then.
    let deadline = Instant::now() + Duration::from_secs(10);
    while kernel_keeps(&id, shmid) {
        assert!(
            Instant::now() < deadline,
            "gone once the last handle detached"
        );
        std::thread::sleep(Duration::from_millis(1));
    }

    // `remove_this` is idempotent and removes this segment, not the name's
    // next owner.
    let m_id = g.id(make);
    let m = create_managed(&m_id, Lifetime::Persistent);
    m.remove().expect("remove");
    m.remove().expect("removing again is not an error");
    let newer = create_managed(&m_id, Lifetime::Persistent);
    m.remove().expect("still not an error");
    open_payload(&m_id, Duration::ZERO).expect("the newer segment is untouched");
    drop(newer);
}

both_backends!(
    raw_write_and_read_across_processes,
    managed_write_and_read_across_processes,
    exclusive_create_is_refused,
    missing_segment_is_not_found,
    impossible_requests_are_invalid,
    failed_init_removes_the_segment,
    ready_wait_is_bounded,
    remove_while_attached,
);

/// A POSIX segment whose creator died between `shm_open` and sizing it is
/// an empty file: opening it as managed is refused after the wait, with the
/// reason, never a zero-length mapping.
#[test]
fn posix_empty_file_is_refused() {
    let mut g = Cleanup::new();
    let id = g.id(posix_id);
    let SegmentId::Posix(name) = &id else {
        unreachable!()
    };
    std::fs::File::create(format!("/dev/shm/{name}")).expect("empty shm file");
    let err = open_payload(&id, Duration::from_millis(30)).expect_err("empty");
    assert!(matches!(err, Error::Incompatible { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is empty (0 bytes): its creator has not sized it yet, or died first"),
        "{err}"
    );
    let err = Segment::open(&id, Access::ReadOnly).expect_err("raw open");
    assert!(matches!(err, Error::Incompatible { .. }), "{err:?}");
}
