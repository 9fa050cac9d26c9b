//! The segment layer's conformance suite.
//!
//! Every test is written once, as a function over a `fn() -> SegmentId`
//! maker, and `conformance!` at the bottom instantiates all of them for both
//! backends: System V by key and POSIX by name. Tests that need a second
//! process re-execute this very test binary (`--exact child_process_entry`)
//! with a role in `SHMEX_CONFORMANCE_ROLE`, so the other side is a genuinely
//! separate process attaching the segment on its own.
//!
//! Every segment a test makes gets a unique key or name (pid and a counter)
//! and is registered with a [`Cleanup`] guard that removes it, and kills the
//! test's children, even when the test panics.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use shm::header::{self, HEADER_SIZE, Header, HeaderBytes, Layout, offsets};
use shm::{
    Access, DEFAULT_READY_WAIT, Error, Kind, Lifetime, Managed, ManagedOptions, Segment, SegmentId,
    Status,
};

shm::shared_struct! {
    /// The payload type of the managed segments in this suite.
    #[derive(Debug)]
    #[allow(dead_code)] // `flags` and `spare` are there for the layout
    struct Payload {
        counter: AtomicU64,
        flags: AtomicU32,
        spare: AtomicU32,
    }

    /// Same size and alignment as `Payload`, another type.
    #[derive(Debug)]
    #[allow(dead_code)] // only its layout is used
    struct Impostor {
        counter: AtomicU64,
        flags: AtomicU32,
        spare: AtomicU32,
    }

    /// Another size than `Payload`.
    #[derive(Debug)]
    #[allow(dead_code)] // only its layout is used
    struct Wide {
        words: [AtomicU64; 4],
    }
}

/// Payload bytes of the managed segments here: a whole page with the header.
const PAYLOAD: u64 = 4096 - HEADER_SIZE as u64;
/// Where the cross-process tests put their messages in the payload.
const MSG_AT: usize = 64;
const REPLY_AT: usize = 1024;

const ROLE_VAR: &str = "SHMEX_CONFORMANCE_ROLE";
const ID_VAR: &str = "SHMEX_CONFORMANCE_ID";
const MSG_VAR: &str = "SHMEX_CONFORMANCE_MSG";
const READY: &str = "shmex-conformance-child-ready";

// ---------------------------------------------------------------------------
// Unique ids and clean-up

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Keys 0x5D00_0000 | pid (12 bits) | counter (12 bits).
fn sysv_id() -> SegmentId {
    let key = 0x5D00_0000 | ((std::process::id() & 0xFFF) << 12) | (next() & 0xFFF);
    SegmentId::sysv(key as i32).expect("non-zero key")
}

fn posix_id() -> SegmentId {
    SegmentId::posix(format!("shmex-conf-{}-{}", std::process::id(), next())).expect("valid name")
}

type Maker = fn() -> SegmentId;

/// Removes every registered segment and kills every child on drop, also
/// when the test panics.
struct Cleanup {
    ids: Vec<SegmentId>,
    children: Vec<Child>,
}

impl Cleanup {
    fn new() -> Cleanup {
        Cleanup {
            ids: Vec::new(),
            children: Vec::new(),
        }
    }

    fn id(&mut self, make: Maker) -> SegmentId {
        let id = make();
        self.ids.push(id.clone());
        id
    }

    fn adopt(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for id in &self.ids {
            let _ = Segment::remove(id);
        }
    }
}

/// Removes one segment on drop: for proptest cases, which reuse one id.
struct RemoveOnDrop<'a>(&'a SegmentId);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = Segment::remove(self.0);
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn opts(lifetime: Lifetime) -> ManagedOptions {
    ManagedOptions {
        kind: Kind::BYTES,
        lifetime,
        mode: 0o600,
        layout: Layout::of::<Payload>(),
        payload_size: PAYLOAD,
    }
}

fn create_managed(id: &SegmentId, lifetime: Lifetime) -> Managed {
    Managed::create(id, &opts(lifetime), |m| {
        m.payload_view::<Payload>(0)?
            .counter
            .store(41, Ordering::SeqCst);
        Ok::<(), Error>(())
    })
    .unwrap_or_else(|e| panic!("creating managed segment {id}: {e}"))
}

fn open_payload(id: &SegmentId, wait: Duration) -> Result<Managed, Error> {
    Managed::open(
        id,
        Access::ReadWrite,
        Kind::BYTES,
        &Layout::of::<Payload>(),
        wait,
    )
}

fn read_u32(seg: &Segment, off: usize) -> u32 {
    let mut b = [0u8; 4];
    seg.read_at(off, &mut b).expect("header read");
    u32::from_ne_bytes(b)
}

fn read_u64(seg: &Segment, off: usize) -> u64 {
    let mut b = [0u8; 8];
    seg.read_at(off, &mut b).expect("header read");
    u64::from_ne_bytes(b)
}

/// Overwrites a header field after checking that it holds what the format
/// says it holds there.
fn patch_u32(seg: &Segment, off: usize, expect: u32, new: u32) {
    assert_eq!(read_u32(seg, off), expect, "header field at {off}");
    seg.write_at(off, &new.to_ne_bytes()).expect("header write");
}

fn patch_u64(seg: &Segment, off: usize, expect: u64, new: u64) {
    assert_eq!(read_u64(seg, off), expect, "header field at {off}");
    seg.write_at(off, &new.to_ne_bytes()).expect("header write");
}

/// The message of an `Incompatible` error, or a panic naming what came.
fn incompatible(r: Result<Managed, Error>, id: &SegmentId) -> String {
    refusal(r, id, "Incompatible", |e| {
        matches!(e, Error::Incompatible { .. })
    })
}

/// The message of a `Foreign` error, or a panic naming what came.
fn foreign(r: Result<Managed, Error>, id: &SegmentId) -> String {
    refusal(r, id, "Foreign", |e| matches!(e, Error::Foreign { .. }))
}

/// The one-line message, naming the segment, of the refusal `is_it`
/// expects.
fn refusal(
    r: Result<Managed, Error>,
    id: &SegmentId,
    variant: &str,
    is_it: fn(&Error) -> bool,
) -> String {
    match r {
        Err(e) if is_it(&e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("segment {id} ")),
                "message does not name the segment: {msg}"
            );
            assert!(!msg.contains('\n'), "message is not one line: {msg:?}");
            msg
        }
        Err(e) => panic!("expected Error::{variant}, got {e:?}"),
        Ok(_) => panic!("segment {id} opened, but it should have been refused"),
    }
}

fn encode(id: &SegmentId) -> String {
    match id {
        SegmentId::SysV(key) => format!("sysv:{key}"),
        SegmentId::Posix(name) => format!("posix:{name}"),
    }
}

fn decode(text: &str) -> SegmentId {
    match text.split_once(':') {
        Some(("sysv", key)) => SegmentId::sysv(key.parse().expect("key")).expect("key"),
        Some(("posix", name)) => SegmentId::posix(name).expect("name"),
        _ => panic!("bad {ID_VAR}: {text:?}"),
    }
}

/// Starts this test binary again as a child in `role` on `id`.
fn spawn_child(role: &str, id: &SegmentId, msg: &str) -> Child {
    let exe = std::env::current_exe().expect("path of the test binary");
    Command::new(exe)
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_VAR, role)
        .env(ID_VAR, encode(id))
        .env(MSG_VAR, msg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning a child process")
}

/// Blocks until the child says it is ready, then drains the rest of its
/// output in the background so it never writes into a closed pipe.
fn wait_ready(child: &mut Child) {
    let out: ChildStdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => panic!("child exited before it was ready"),
            Ok(_) if line.contains(READY) => break,
            Ok(_) => {}
        }
    }
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
}

/// Whether the kernel still keeps the (already removed) segment that `seg`
/// is attached to: its shmid in `/proc/sysvipc/shm` for System V, a mapping
/// of the unlinked file in this process for POSIX.
fn kernel_keeps(id: &SegmentId, shmid: Option<i32>) -> bool {
    match id {
        SegmentId::SysV(_) => {
            let shmid = shmid.expect("System V segments have a shmid").to_string();
            let text = std::fs::read_to_string("/proc/sysvipc/shm").expect("sysvipc");
            text.lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1) == Some(shmid.as_str()))
        }
        SegmentId::Posix(name) => {
            let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
            let needle = format!("/dev/shm/{name} (deleted)");
            maps.lines().any(|l| l.ends_with(&needle))
        }
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

// ---------------------------------------------------------------------------
// The child process

/// Entry point of the child processes the tests start. In a normal run no
/// role is set and it returns at once.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let id = decode(&std::env::var(ID_VAR).expect("id"));
    let msg = std::env::var(MSG_VAR).unwrap_or_default();
    match role.as_str() {
        // Reads what the parent wrote into a managed segment and answers.
        "echo-managed" => {
            let m = open_payload(&id, DEFAULT_READY_WAIT).expect("child opens");
            let mut got = vec![0u8; msg.len()];
            m.read_payload(MSG_AT, &mut got).expect("child reads");
            assert_eq!(got, msg.as_bytes(), "child read another message");
            let p = m.payload_view::<Payload>(0).expect("child's view");
            assert_eq!(p.counter.fetch_add(1, Ordering::SeqCst), 41);
            let reply = format!("pong from {}", std::process::id());
            m.write_payload(REPLY_AT, reply.as_bytes())
                .expect("child writes");
        }
        // The same on a raw segment: the message at 0, the reply reversed.
        "echo-raw" => {
            let seg = Segment::open(&id, Access::ReadWrite).expect("child opens");
            let mut got = vec![0u8; msg.len()];
            seg.read_at(0, &mut got).expect("child reads");
            assert_eq!(got, msg.as_bytes(), "child read another message");
            got.reverse();
            seg.write_at(REPLY_AT, &got).expect("child writes");
        }
        // Creates an owned segment and holds it until stdin closes, then
        // removes it (the orderly end of an owner).
        "hold" => {
            let m = create_managed(&id, Lifetime::Owned);
            println!("{READY}");
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            m.remove().expect("holder removes its segment");
        }
        other => panic!("unknown child role {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The suite

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
    assert_eq!(info.status, Status::Persistent);

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
        format!("segment {id} holds a shmex bytes, not a queue")
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
        format!("segment {id} holds a shmex kind 99, not a bytes")
    );
    let any = Managed::open_any(&id, Access::ReadOnly, Duration::ZERO).expect("any kind");
    assert_eq!(any.kind().code(), 99);
    drop(any);
    let info = shm::inspect(&id).expect("inspect");
    assert_eq!(info.kind.map(|k| k.to_string()), Some("kind 99".into()));
    assert_eq!(info.status, Status::Persistent);
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

/// Ready-wait: an opener of a segment whose creator is still in `init`
/// gets `NotReady` after its bound; a patient opener gets the segment once
/// the creator marks it ready; an all-zero segment (a creator that died
/// before writing the header) is `NotReady` too.
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
        match &err {
            Error::NotReady { what, waited_ms } => {
                assert_eq!(what, &id.to_string());
                assert!(*waited_ms >= 150, "gave up after {waited_ms} ms");
            }
            other => panic!("expected NotReady, got {other:?}"),
        }
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

        let opener = s.spawn(|| open_payload(&id, Duration::from_secs(20)));
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

/// The segments one backend contributes to the stale test.
struct StaleCase {
    dead: SegmentId,
    live: SegmentId,
    kept: SegmentId,
    doomed: usize,
    holder: usize,
}

/// Stale detection, for several backends in one pass: an owned segment
/// whose holder was SIGKILLed is listed stale and `remove_stale` removes
/// exactly it; an owned segment a live process holds and a persistent one
/// nobody holds are listed and kept.
///
/// `remove_stale` acts on the whole machine, and nextest runs every test in
/// its own process, so the backends share one test rather than racing each
/// other's `remove_stale`.
fn stale_segments_are_found_and_removed(makers: &[Maker], observers: usize) {
    let mut g = Cleanup::new();
    let mut cases = Vec::new();
    for &make in makers {
        let (dead, live, kept) = (g.id(make), g.id(make), g.id(make));
        let doomed = g.adopt(spawn_child("hold", &dead, ""));
        wait_ready(&mut g.children[doomed]);
        let holder = g.adopt(spawn_child("hold", &live, ""));
        wait_ready(&mut g.children[holder]);
        drop(create_managed(&kept, Lifetime::Persistent));
        cases.push(StaleCase {
            dead,
            live,
            kept,
            doomed,
            holder,
        });
    }
    for c in &cases {
        // Child::kill sends SIGKILL: the holder gets no chance to clean up.
        g.children[c.doomed].kill().expect("SIGKILL");
        let status = g.children[c.doomed].wait().expect("reap");
        assert!(!status.success());
    }
    // The kernel drops a killed holder's attachment (and the lock its
    // mapping keeps open) when its memory is torn down, and a process reading
    // its `/proc/PID/maps` at that moment (any concurrent `list`) delays that
    // a little past `wait`. Bounded: a death that never shows fails.
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in &cases {
        while !shm::inspect(&c.dead).is_ok_and(|i| i.status == Status::Stale) {
            assert!(Instant::now() < deadline, "{} never became stale", c.dead);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // Observers: threads listing every segment without pause, each listing
    // attaching to every System V segment for a moment to read its header.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchers: Vec<_> = (0..observers)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = shm::list();
                }
            })
        })
        .collect();

    let all = shm::list().expect("list");
    let find = |id: &SegmentId| {
        all.iter()
            .find(|i| &i.id == id)
            .unwrap_or_else(|| panic!("{id} is not listed"))
    };
    for c in &cases {
        let dead = find(&c.dead);
        assert_eq!(dead.status, Status::Stale, "{}", c.dead);
        assert_eq!(dead.lifetime, Some(Lifetime::Owned));
        assert_eq!(dead.creator_pid, Some(g.children[c.doomed].id()));
        assert_eq!(dead.creator_alive, Some(false));
        let live = find(&c.live);
        assert_eq!(live.status, Status::Live, "{}", c.live);
        assert_eq!(live.creator_pid, Some(g.children[c.holder].id()));
        assert_eq!(live.creator_alive, Some(true));
        assert_eq!(find(&c.kept).status, Status::Persistent, "{}", c.kept);
    }

    let removed = shm::remove_stale().expect("remove_stale");
    assert!(
        removed.iter().all(|i| i.status == Status::Stale),
        "removed something not stale"
    );
    for c in &cases {
        let mine: Vec<&SegmentId> = removed
            .iter()
            .map(|i| &i.id)
            .filter(|id| [&c.dead, &c.live, &c.kept].contains(id))
            .collect();
        assert_eq!(mine, [&c.dead], "removed exactly the stale one");
        assert!(shm::inspect(&c.dead).unwrap_err().is_not_found());
        assert_eq!(shm::inspect(&c.live).expect("kept").status, Status::Live);
        open_payload(&c.live, Duration::ZERO).expect("live segment still opens");
        assert_eq!(
            shm::inspect(&c.kept).expect("kept").status,
            Status::Persistent
        );
        open_payload(&c.kept, Duration::ZERO).expect("persistent segment still opens");
    }

    stop.store(true, Ordering::Relaxed);
    for w in watchers {
        w.join().expect("observer");
    }

    // The live holders end in order and remove their own segments.
    for c in &cases {
        drop(g.children[c.holder].stdin.take());
        let status = g.children[c.holder].wait().expect("holder exits");
        assert!(status.success(), "holder failed: {status:?}");
        assert!(shm::inspect(&c.live).unwrap_err().is_not_found());
    }
}

/// Once alone, then again while other threads list every segment without
/// pause: their brief attachments (System V counts each one) must not make
/// a stale segment look held, nor a held one stale. One test, not two, so
/// that no two `remove_stale` calls race under `cargo test` either (it runs
/// the tests of a binary as threads of one process).
#[test]
fn stale_segments_on_both_backends() {
    stale_segments_are_found_and_removed(&[sysv_id, posix_id], 0);
    stale_segments_are_found_and_removed(&[sysv_id, posix_id], 2);
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

macro_rules! conformance {
    ($backend:ident, $make:path: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    super::$test($make);
                }
            )*
        }
    };
}

macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        conformance!(sysv, super::sysv_id: $($test),*);
        conformance!(posix, super::posix_id: $($test),*);
    };
}

both_backends!(
    raw_write_and_read_across_processes,
    managed_write_and_read_across_processes,
    exclusive_create_is_refused,
    missing_segment_is_not_found,
    impossible_requests_are_invalid,
    failed_init_removes_the_segment,
    wrong_size_is_incompatible,
    wrong_layout_fingerprint_is_incompatible,
    wrong_format_version_is_incompatible,
    header_fields_read_back_by_name,
    foreign_segment_is_refused,
    random_header_is_refused,
    every_checked_header_byte_matters,
    remove_while_attached,
    read_only_attach_refuses_writes,
    out_of_bounds_access_is_refused,
    typed_views_check_offsets,
    ready_wait_is_bounded,
    reads_and_writes_match_a_byte_array,
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
