use super::*;

/// Where linking an unnamed file is refused, it is named by copying:
/// the bytes written before are there, and the mapping is the named
/// file's from then on.
#[test]
fn an_unnamed_segment_can_be_named_by_copying() {
    let name = format!("shmex-unit-copy-{}", std::process::id());
    let id = SegmentId::posix(name.clone()).unwrap();
    let mut seg = Segment::create_unnamed(&id, 8192, 0o640).unwrap();
    if matches!(seg.handle, Handle::Posix { unnamed: None, .. }) {
        // No unnamed files here: it was named at once.
        Segment::remove(&id).unwrap();
        return;
    }
    seg.write_at(5000, b"moved").unwrap();
    assert!(
        Segment::open(&id, Access::ReadOnly)
            .unwrap_err()
            .is_not_found()
    );

    let taken = Segment::create(&id, 64, 0o600).unwrap();
    assert!(matches!(seg.publish_by_copy(), Err(Error::Exists { .. })));
    assert_eq!(
        posix::lstat(&name).unwrap().size,
        64,
        "the other one is kept"
    );
    drop(taken);
    Segment::remove(&id).unwrap();

    seg.publish_by_copy().unwrap();
    let other = Segment::open(&id, Access::ReadWrite).unwrap();
    let mut b = [0u8; 5];
    other.read_at(5000, &mut b).unwrap();
    assert_eq!(&b, b"moved");
    seg.write_at(0, b"x").unwrap();
    other.read_at(0, &mut b[..1]).unwrap();
    assert_eq!(&b[..1], b"x", "both map the named file");
    assert_eq!(posix::lstat(&name).unwrap().mode, 0o640);
    assert!(seg.check_intact().is_ok());
    Segment::remove(&id).unwrap();
}
