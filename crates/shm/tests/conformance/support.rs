//! What every area of the suite shares: the payload types, unique ids,
//! the clean-up guard, header patching, and starting a child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use shm::header::{HEADER_SIZE, Layout};
use shm::{Access, Error, Kind, Lifetime, Managed, ManagedOptions, Segment, SegmentId};

shm::shared_struct! {
    /// The payload type of the managed segments in this suite.
    #[derive(Debug)]
    #[allow(dead_code)] // `flags` and `spare` are there for the layout
    pub(crate) struct Payload {
        pub(crate) counter: AtomicU64,
        pub(crate) flags: AtomicU32,
        pub(crate) spare: AtomicU32,
    }

    /// Same size and alignment as `Payload`, another type.
    #[derive(Debug)]
    #[allow(dead_code)] // only its layout is used
    pub(crate) struct Impostor {
        pub(crate) counter: AtomicU64,
        pub(crate) flags: AtomicU32,
        pub(crate) spare: AtomicU32,
    }

    /// Another size than `Payload`.
    #[derive(Debug)]
    #[allow(dead_code)] // only its layout is used
    pub(crate) struct Wide {
        pub(crate) words: [AtomicU64; 4],
    }
}

/// Payload bytes of the managed segments here: a whole page with the header.
pub(crate) const PAYLOAD: u64 = 4096 - HEADER_SIZE as u64;

/// Where the cross-process tests put their messages in the payload.
pub(crate) const MSG_AT: usize = 64;
pub(crate) const REPLY_AT: usize = 1024;

/// How a child process learns its role, segment and message, and says it
/// is ready.
pub(crate) const ROLE_VAR: &str = "SHMEX_CONFORMANCE_ROLE";
pub(crate) const ID_VAR: &str = "SHMEX_CONFORMANCE_ID";
pub(crate) const MSG_VAR: &str = "SHMEX_CONFORMANCE_MSG";
pub(crate) const READY: &str = "shmex-conformance-child-ready";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether no segment has this id.
fn free(id: &SegmentId) -> bool {
    matches!(shm::inspect(id), Err(e) if e.is_not_found())
}

// Ids carry the whole pid, so no other live process makes the same ones:
// an id that exists was left by a crashed run of a process with this pid,
// and is skipped, never removed.

/// Keys 0x4000_0000 | pid (22 bits: Linux's highest `pid_max`) << 8 |
/// counter (8 bits, so up to 256 keys of this process exist at once).
pub(crate) fn sysv_id() -> SegmentId {
    let pid = std::process::id();
    assert!(pid < 1 << 22, "pid {pid} does not fit the test keys");
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = SegmentId::sysv((0x4000_0000 | pid << 8 | (n & 0xFF)) as i32).expect("non-zero");
        if free(&id) {
            return id;
        }
    }
}

pub(crate) fn posix_id() -> SegmentId {
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let id = SegmentId::posix(format!("shmex-conf-{pid}-{n}")).expect("valid name");
        if free(&id) {
            return id;
        }
    }
}

pub(crate) type Maker = fn() -> SegmentId;

/// Removes every registered segment and kills every child on drop, also
/// when the test panics.
pub(crate) struct Cleanup {
    ids: Vec<SegmentId>,
    pub(crate) children: Vec<Child>,
}

impl Cleanup {
    pub(crate) fn new() -> Cleanup {
        Cleanup {
            ids: Vec::new(),
            children: Vec::new(),
        }
    }

    pub(crate) fn id(&mut self, make: Maker) -> SegmentId {
        let id = make();
        self.ids.push(id.clone());
        id
    }

    pub(crate) fn adopt(&mut self, child: Child) -> usize {
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
pub(crate) struct RemoveOnDrop<'a>(pub(crate) &'a SegmentId);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = Segment::remove(self.0);
    }
}

pub(crate) fn opts(lifetime: Lifetime) -> ManagedOptions {
    ManagedOptions {
        kind: Kind::BYTES,
        lifetime,
        mode: 0o600,
        layout: Layout::of::<Payload>(),
        payload_size: PAYLOAD,
    }
}

pub(crate) fn create_managed(id: &SegmentId, lifetime: Lifetime) -> Managed {
    Managed::create(id, &opts(lifetime), |m| {
        m.payload_view::<Payload>(0)?
            .counter
            .store(41, Ordering::SeqCst);
        Ok::<(), Error>(())
    })
    .unwrap_or_else(|e| panic!("creating managed segment {id}: {e}"))
}

pub(crate) fn open_payload(id: &SegmentId, wait: Duration) -> Result<Managed, Error> {
    Managed::open(
        id,
        Access::ReadWrite,
        Kind::BYTES,
        &Layout::of::<Payload>(),
        wait,
    )
}

pub(crate) fn read_u32(seg: &Segment, off: usize) -> u32 {
    let mut b = [0u8; 4];
    seg.read_at(off, &mut b).expect("header read");
    u32::from_ne_bytes(b)
}

pub(crate) fn read_u64(seg: &Segment, off: usize) -> u64 {
    let mut b = [0u8; 8];
    seg.read_at(off, &mut b).expect("header read");
    u64::from_ne_bytes(b)
}

/// Overwrites a header field after checking that it holds what the format
/// says it holds there.
pub(crate) fn patch_u32(seg: &Segment, off: usize, expect: u32, new: u32) {
    assert_eq!(read_u32(seg, off), expect, "header field at {off}");
    seg.write_at(off, &new.to_ne_bytes()).expect("header write");
}

pub(crate) fn patch_u64(seg: &Segment, off: usize, expect: u64, new: u64) {
    assert_eq!(read_u64(seg, off), expect, "header field at {off}");
    seg.write_at(off, &new.to_ne_bytes()).expect("header write");
}

/// The message of an `Incompatible` error, or a panic naming what came.
pub(crate) fn incompatible(r: Result<Managed, Error>, id: &SegmentId) -> String {
    refusal(r, id, "Incompatible", |e| {
        matches!(e, Error::Incompatible { .. })
    })
}

/// The message of a `Foreign` error, or a panic naming what came.
pub(crate) fn foreign(r: Result<Managed, Error>, id: &SegmentId) -> String {
    refusal(r, id, "Foreign", |e| matches!(e, Error::Foreign { .. }))
}

/// The one-line message, naming the segment, of the refusal `is_it`
/// expects.
pub(crate) fn refusal(
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

pub(crate) fn encode(id: &SegmentId) -> String {
    match id {
        SegmentId::SysV(key) => format!("sysv:{key}"),
        SegmentId::Posix(name) => format!("posix:{name}"),
    }
}

pub(crate) fn decode(text: &str) -> SegmentId {
    match text.split_once(':') {
        Some(("sysv", key)) => SegmentId::sysv(key.parse().expect("key")).expect("key"),
        Some(("posix", name)) => SegmentId::posix(name).expect("name"),
        _ => panic!("bad {ID_VAR}: {text:?}"),
    }
}

/// Starts this test binary again as a child in `role` on `id`.
pub(crate) fn spawn_child(role: &str, id: &SegmentId, msg: &str) -> Child {
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
pub(crate) fn wait_ready(child: &mut Child) {
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
pub(crate) fn kernel_keeps(id: &SegmentId, shmid: Option<i32>) -> bool {
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

pub(crate) fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

pub(crate) fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}
