//! Segments as a trust boundary (design rule 8): what another process can
//! do to a segment from outside — truncate its file, put a FIFO, a link or
//! a directory under its name, own it, replace a stale one — never kills,
//! hangs or fools this process.

use std::os::unix::process::ExitStatusExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shm::header::HEADER_SIZE;
use shm::{Access, Error, Lifetime, Managed, Segment, SegmentId, Status, Truncated};

use crate::support::*;

/// The file of a POSIX segment.
fn file_of(id: &SegmentId) -> std::path::PathBuf {
    let SegmentId::Posix(name) = id else {
        panic!("{id} is not a POSIX segment")
    };
    std::path::Path::new("/dev/shm").join(name)
}

/// Runs this test binary as a child in `role` on `id`, to its end.
fn run_child(role: &str, id: &SegmentId) -> std::process::Output {
    spawn_child(role, id, "")
        .wait_with_output()
        .expect("child runs")
}

/// Runs `f` in a thread and fails if it does not finish within 10 s: a
/// refusal must come at once, never after blocking.
fn promptly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} blocked"))
}

/// A segment truncated under this process: the bytes past the new end read
/// as zeros instead of raising `SIGBUS`, and `check_intact` and
/// `check_mappings` name the segment and its size now, also after the
/// handles are dropped. Runs in a child, whose process-wide record of lost
/// mappings then goes with it.
#[test]
fn posix_truncated_mapping_reads_zeros_and_says_so() {
    let mut g = Cleanup::new();
    let id = g.id(posix_id);
    let out = run_child("shrink", &id);
    assert!(
        out.status.success(),
        "child died: {:?} (signal {:?})",
        out.status,
        out.status.signal()
    );
}

/// The child of the test above.
pub(crate) fn shrink_child(id: &SegmentId) {
    const PAYLOAD: u64 = 65536 - HEADER_SIZE as u64;
    let mut o = opts(Lifetime::Persistent);
    o.payload_size = PAYLOAD;
    let m = Managed::create(id, &o, |_| Ok::<(), Error>(())).expect("create");
    let other = Segment::open(id, Access::ReadOnly).expect("second mapping");
    m.write_payload(60000, b"x").expect("write");
    assert!(m.check_intact().is_ok() && shm::check_mappings().is_ok());

    std::fs::OpenOptions::new()
        .write(true)
        .open(file_of(id))
        .expect("open the file")
        .set_len(4096)
        .expect("truncate");
    let mut b = [0xffu8; 1];
    m.read_payload(60000, &mut b)
        .expect("read past the new end");
    assert_eq!(b, [0], "the lost mapping reads zeros");
    let lost = Truncated {
        what: id.to_string(),
        size_now: 4096,
    };
    assert_eq!(m.check_intact(), Err(lost.clone()));
    assert_eq!(
        lost.to_string(),
        format!(
            "segment {id} shrank to 4096 bytes under this process: another process truncated it"
        )
    );
    assert_eq!(shm::check_mappings(), Err(lost.clone()));
    // The whole mapping reads zeros now, the header too.
    let mut magic = [0xffu8; 8];
    m.segment().read_at(0, &mut magic).expect("read");
    assert_eq!(magic, [0; 8]);

    // The other mapping is lost only once it touches the missing pages.
    assert!(other.check_intact().is_ok());
    other.read_at(60000, &mut b).expect("read");
    assert_eq!(b, [0]);
    assert_eq!(other.check_intact(), Err(lost.clone()));

    drop(m);
    drop(other);
    assert_eq!(shm::check_mappings(), Err(lost), "remembered once dropped");
    let _ = Segment::remove(id);
    println!("{READY}");
}

/// A `SIGBUS` outside every segment is not swallowed: the process dies of
/// it as it would have without the handler.
#[test]
fn sigbus_elsewhere_still_kills() {
    let mut g = Cleanup::new();
    let id = g.id(posix_id);
    let out = run_child("stray-sigbus", &id);
    assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{:?}", out.status);
}

/// The child of the test above: maps a segment (which installs the
/// handler), then faults on a truncated mapping of a file of its own.
pub(crate) fn stray_sigbus_child(id: &SegmentId) {
    let _seg = Segment::create(id, 4096, 0o600).expect("create");
    let path = std::env::temp_dir().join(format!("shmex-stray-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temp file");
    file.set_len(8192).expect("size");
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of a file this process owns, only
    // read below through a volatile load.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    file.set_len(0).expect("truncate");
    let _ = std::fs::remove_file(&path);
    let at = p.cast::<u8>().wrapping_add(4096);
    // SAFETY: inside the mapping; the fault this raises is the point.
    let v = unsafe { std::ptr::read_volatile(at) };
    let _ = Segment::remove(id);
    panic!("read {v} from a truncated file without SIGBUS");
}

/// A FIFO, a symbolic link or a directory under a segment's name is
/// refused at once, saying what it is; listing and inspecting show it
/// without opening it.
#[test]
fn non_files_under_a_name_are_refused_without_blocking() {
    let mut g = Cleanup::new();
    let target = g.id(posix_id);
    let _real = create_managed(&target, Lifetime::Persistent);
    let (fifo, link, dir) = (g.id(posix_id), g.id(posix_id), g.id(posix_id));
    let c = std::ffi::CString::new(file_of(&fifo).to_str().expect("utf-8")).expect("c");
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
    std::os::unix::fs::symlink(file_of(&target), file_of(&link)).expect("symlink");
    std::fs::create_dir(file_of(&dir)).expect("mkdir");
    let _rmdir = RmDir(file_of(&dir));

    for (id, what, word) in [
        (&fifo, "FIFO", "fifo"),
        (&link, "symbolic link", "symlink"),
        (&dir, "directory", "directory"),
    ] {
        for access in [Access::ReadOnly, Access::ReadWrite] {
            let i = id.clone();
            let err = promptly("open", move || Segment::open(&i, access)).expect_err("refused");
            assert!(
                err.to_string().starts_with(&format!(
                    "segment {id} is a {what}, not a shared-memory file"
                )),
                "{err}"
            );
        }
        let i = id.clone();
        let err = promptly("managed open", move || {
            open_payload(&i, Duration::from_millis(50))
        })
        .expect_err("refused");
        assert!(matches!(err, Error::Incompatible { .. }), "{err:?}");
        let i = id.clone();
        let info = promptly("inspect", move || shm::inspect(&i)).expect("inspect");
        assert_eq!(info.status, Status::NotAFile(word), "{id}");
        assert_eq!(info.status.name(), word);
        let all = promptly("list", shm::list).expect("list");
        let listed = all.iter().find(|i| &i.id == id).expect("listed");
        assert_eq!(listed.status, Status::NotAFile(word));
    }
    // The real segment behind the link is untouched and opens by its name.
    open_payload(&target, Duration::ZERO).expect("the link's target opens");
}

struct RmDir(std::path::PathBuf);

impl Drop for RmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A segment another user owns is refused by default, naming the owner,
/// and attached to once that owner is allowed; listing and inspecting it
/// are always allowed. (POSIX, where root can hand a file to another user;
/// the command-line suite covers both backends through `setpriv`.)
#[test]
fn another_owners_segment_is_refused_until_allowed() {
    if shm::sys::euid() != 0 {
        eprintln!("skipped: needs root to give a file to another user");
        return;
    }
    let mut g = Cleanup::new();
    let id = g.id(posix_id);
    drop(create_managed(&id, Lifetime::Persistent));
    std::os::unix::fs::chown(file_of(&id), Some(65534), Some(65534)).expect("chown");
    assert!(!shm::owner_allowed(65534));
    for access in [Access::ReadOnly, Access::ReadWrite] {
        let err = Segment::open(&id, access).expect_err("another user's");
        match &err {
            Error::OtherOwner { what, uid, .. } => {
                assert_eq!(what, &id.to_string());
                assert_eq!(*uid, 65534);
            }
            other => panic!("expected OtherOwner, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains("not to you: shmex attaches to another user's segment only if that owner is allowed on purpose"),
            "{err}"
        );
    }
    assert!(matches!(
        open_payload(&id, Duration::ZERO),
        Err(Error::OtherOwner { .. })
    ));
    let info = shm::inspect(&id).expect("inspect is allowed");
    assert_eq!(info.uid, 65534);
    assert_eq!(info.lifetime, Some(Lifetime::Persistent));

    shm::allow_owner(65534);
    assert!(shm::owner_allowed(65534));
    open_payload(&id, Duration::ZERO).expect("allowed on purpose");
}

/// `remove_if_stale` removes the very segment judged stale, never one that
/// took its key or name since: a persistent segment that replaced a stale
/// one between the listing and the removal survives.
fn replaced_stale_segment_is_not_removed(make: Maker) {
    let mut g = Cleanup::new();
    let id = g.id(make);
    let judged = stale(&mut g, &id);

    Segment::remove(&id).expect("remove the stale one");
    let newer = create_managed(&id, Lifetime::Persistent);
    newer.write_payload(MSG_AT, b"newer").expect("write");
    drop(newer);

    assert!(!shm::remove_if_stale(&judged).expect("remove_if_stale"));
    let m = open_payload(&id, Duration::ZERO).expect("the newer segment stays");
    let mut got = [0u8; 5];
    m.read_payload(MSG_AT, &mut got).expect("read");
    assert_eq!(&got, b"newer");
    drop(m);
    assert_eq!(shm::inspect(&id).expect("inspect").status, Status::Idle);

    // The same judgement of a segment that was not replaced removes it.
    Segment::remove(&id).expect("remove the newer one");
    let judged = stale(&mut g, &id);
    assert!(shm::remove_if_stale(&judged).expect("remove_if_stale"));
    assert!(shm::inspect(&id).expect_err("removed").is_not_found());
}

/// An owned segment at `id` whose holder was killed, as a listing judges it.
fn stale(g: &mut Cleanup, id: &SegmentId) -> shm::SegmentInfo {
    let i = g.adopt(spawn_child("hold", id, ""));
    wait_ready(&mut g.children[i]);
    g.children[i].kill().expect("SIGKILL");
    g.children[i].wait().expect("reap");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = shm::inspect(id).expect("inspect");
        if info.status == Status::Stale {
            return info;
        }
        assert!(Instant::now() < deadline, "{id} never became stale");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A POSIX creator killed in the middle of creating its segment leaves
/// nothing under the name: it gets its name only once ready, so there is
/// never a half-made, header-less file that no listing could judge.
#[test]
fn posix_creator_killed_while_creating_leaves_nothing() {
    let mut g = Cleanup::new();
    let id = g.id(posix_id);
    let i = g.adopt(spawn_child("create-forever", &id, ""));
    wait_ready(&mut g.children[i]);
    assert!(
        !file_of(&id).exists(),
        "a segment still in init has no name"
    );
    g.children[i].kill().expect("SIGKILL");
    g.children[i].wait().expect("reap");
    assert!(!file_of(&id).exists());
    assert!(shm::inspect(&id).expect_err("nothing").is_not_found());
}

/// The child of the test above: creates a managed segment whose init never
/// ends.
pub(crate) fn create_forever_child(id: &SegmentId) {
    let _ = Managed::create(id, &opts(Lifetime::Owned), |_| {
        println!("{READY}");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
        #[allow(unreachable_code)]
        Ok::<(), Error>(())
    });
}

both_backends!(replaced_stale_segment_is_not_removed);
