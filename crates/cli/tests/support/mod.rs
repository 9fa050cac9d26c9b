//! Helpers shared by the end-to-end tests: every test gets its own segment
//! names and keys, removed (with any stray child killed) even when the test
//! fails; every wait is bounded by one [`PATIENCE`]; and whether a segment
//! exists is asked in one way, of the kernel.

pub mod alphabet;
pub mod channel;
pub mod exchange;
pub mod journal;
pub mod process;
pub mod segment;
pub mod traces;

use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use shm::SegmentId;

/// How long any wait in these tests may last: a hang guard, not a speed
/// goal; only a broken program takes this long. Generous, because eight
/// traders of 20,000 lines each share two loaded cores.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `poll` until it yields a value, for at most [`PATIENCE`]; `None`
/// if it never did. Every other wait here is built on this one.
pub fn wait_for<T>(mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + PATIENCE;
    let mut nap = Duration::from_micros(200);
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(5));
    }
}

/// Polls `cond` until it holds; panics after [`PATIENCE`].
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    if wait_for(|| cond().then_some(())).is_none() {
        panic!("gave up after {PATIENCE:?} waiting until {what}");
    }
}

/// The `XDG_STATE_HOME` of every `shmex` a test runs, so that journals
/// on disk go under the target directory, one per test process, never to
/// the user's `~/.local/state`. [`Cleanup`] removes each exchange's
/// journal there, and the directory once it is empty.
pub fn state_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("xdg-state-{}", std::process::id()))
}

/// The default journal directory of exchange `id` in [`state_home`].
pub fn journal_dir(id: &SegmentId) -> PathBuf {
    state_home()
        .join("shmex")
        .join(::exchange::disk::dir_name(id))
}

/// Removes the journal directory of `id` in [`state_home`], and the
/// directories above it that are left empty.
pub fn remove_journal(id: &SegmentId) {
    let dir = journal_dir(id);
    let _ = std::fs::remove_dir_all(&dir);
    let parent = state_home().join("shmex");
    let _ = std::fs::remove_dir(&parent);
    let _ = std::fs::remove_dir(state_home());
}

/// The file of POSIX segment `name`.
pub fn shm_file(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name)
}

/// Whether the segment exists, asked of the kernel, not of shmex: a POSIX
/// segment's file in `/dev/shm` (a plain `stat`: `shm::inspect` would also
/// read every process's memory map, which slows the kernel's tear-down of
/// killed peers that other tests time), a System V key in the kernel's
/// table (through `shm::inspect`).
pub fn exists(id: &SegmentId) -> bool {
    match id {
        SegmentId::Posix(name) => match std::fs::symlink_metadata(shm_file(name)) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => panic!("stat /dev/shm/{name}: {e}"),
        },
        SegmentId::SysV(_) => match shm::inspect(id) {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => panic!("inspect {id}: {e}"),
        },
    }
}

static NAMES: AtomicU32 = AtomicU32::new(0);
static KEYS: AtomicU32 = AtomicU32::new(0);

// Ids carry the whole pid, so no other live process makes the same ones:
// an id that exists was left by a crashed run of a process with this pid,
// and is skipped, never removed.

/// A POSIX name no other test (or test process) uses.
fn unique_name(tag: &str) -> String {
    let pid = std::process::id();
    loop {
        let n = NAMES.fetch_add(1, Ordering::Relaxed);
        let name = format!("shmex-test-{tag}-{pid}-{n}");
        if !exists(&SegmentId::Posix(name.clone())) {
            return name;
        }
    }
}

/// A System V key no other test (or test process) uses: 0x4000_0000 | the
/// whole pid (22 bits: Linux's highest `pid_max`) << 8 | a counter (so up
/// to 256 keys of this process exist at once).
fn unique_key() -> i32 {
    let pid = std::process::id();
    assert!(pid < 1 << 22, "pid {pid} does not fit the test keys");
    loop {
        let n = KEYS.fetch_add(1, Ordering::Relaxed);
        let key = (0x4000_0000 | pid << 8 | (n & 0xFF)) as i32;
        if !exists(&SegmentId::SysV(key)) {
            return key;
        }
    }
}

/// Removes the segments it names when dropped (also while a failing test
/// unwinds), and kills and reaps the children it holds.
#[derive(Default)]
pub struct Cleanup {
    ids: Vec<SegmentId>,
    children: Vec<Child>,
}

impl Cleanup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a POSIX name; returns it.
    pub fn name(&mut self, tag: &str) -> String {
        let name = unique_name(tag);
        self.ids.push(SegmentId::Posix(name.clone()));
        name
    }

    /// Registers a System V key; returns it.
    pub fn key(&mut self) -> i32 {
        let key = unique_key();
        self.ids.push(SegmentId::SysV(key));
        key
    }

    /// Registers any segment.
    pub fn add(&mut self, id: SegmentId) {
        self.ids.push(id);
    }

    /// Keeps a child to kill on drop; returns its index for [`Cleanup::child`].
    pub fn hold(&mut self, child: Child) -> usize {
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    /// Kills and reaps every child held (those that ended are only reaped).
    pub fn kill_children(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.kill_children();
        for id in &self.ids {
            // A System V key may hold several generations; remove until gone.
            for _ in 0..4 {
                if shm::Segment::remove(id).is_err() {
                    break;
                }
            }
            remove_journal(id);
        }
    }
}
