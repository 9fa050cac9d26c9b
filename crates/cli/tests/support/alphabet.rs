//! Helpers for the end-to-end tests of `shmex alphabet`: the seed's
//! producer and consumer as C programs (tests/fixtures/*.c, compiled with
//! `cc`), and what each prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::{Cleanup, SegmentId};

/// What the seed's C consumer prints: it stops before `z`.
pub const C_CONSUMER_OUTPUT: &str = "abcdefghijklmnopqrstuvwxy\n";
/// What `shmex alphabet consume` prints: all 26 letters.
pub const SHMEX_CONSUMER_OUTPUT: &str = "abcdefghijklmnopqrstuvwxyz\n";
pub const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

/// The compiled C fixtures.
#[derive(Debug)]
struct Fixtures {
    producer: PathBuf,
    consumer: PathBuf,
}

/// Compiles the C fixtures once per test process. The executables go to
/// cargo's scratch directory for integration tests under a name derived from
/// the source text, so parallel test processes share one build and nothing
/// is left in `/tmp`.
fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| Fixtures {
        producer: compile("alphabet_producer"),
        consumer: compile("alphabet_consumer"),
    })
}

fn compile(stem: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{stem}.c"));
    let text = std::fs::read(&src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-fixtures");
    std::fs::create_dir_all(&dir).expect("create the fixtures directory");
    let exe = dir.join(format!("{stem}-{:016x}", h.finish()));
    if exe.exists() {
        return exe;
    }
    // Build under a private name, then rename: another test process may be
    // compiling the same fixture right now.
    let tmp = dir.join(format!("{stem}.{}.tmp", std::process::id()));
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .expect("run cc (a C compiler is needed for these tests)");
    assert!(
        out.status.success(),
        "cc {} failed: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &exe).expect("move the compiled fixture into place");
    exe
}

/// Starts the C producer on `key` (`None`: its default, 5678); the child
/// is killed by `cleanup` if the test fails.
pub fn spawn_c_producer(cleanup: &mut Cleanup, key: Option<i32>) -> usize {
    let mut cmd = Command::new(&fixtures().producer);
    if let Some(k) = key {
        cmd.arg(k.to_string());
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the C producer");
    cleanup.hold(child)
}

/// Runs the C consumer on `key` (`None`: its default, 5678).
pub fn run_c_consumer(key: Option<i32>) -> Output {
    let mut cmd = Command::new(&fixtures().consumer);
    if let Some(k) = key {
        cmd.arg(k.to_string());
    }
    cmd.stdin(Stdio::null())
        .output()
        .expect("run the C consumer")
}

/// Whether the first 26 bytes of System V segment `key` hold the alphabet.
pub fn alphabet_written(key: i32) -> bool {
    let Ok(seg) = shm::Segment::open(&SegmentId::SysV(key), shm::Access::ReadOnly) else {
        return false;
    };
    let mut buf = [0u8; 26];
    seg.read_at(0, &mut buf).is_ok() && buf == ALPHABET
}
