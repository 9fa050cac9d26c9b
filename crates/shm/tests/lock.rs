//! The process lock between real processes: this test binary re-executes
//! itself (`--exact child_process_entry`, with a role in
//! `SHMEX_LOCK_TEST_ROLE`) as the other side, attached to the same POSIX
//! segment.
//!
//! The owner word is the holder's thread id in its low 32 bits and the low
//! 32 bits of its start time (field 22 of `/proc/TID/stat`) in its high 32.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm::sync::{FIRST_LOOK, LockError, ProcessLock, SLICE};
use shm::{Access, Segment, SegmentId};

const ROLE: &str = "SHMEX_LOCK_TEST_ROLE";
const NAME: &str = "SHMEX_LOCK_TEST_NAME";
/// Where the counter and the flags live, past the lock.
const COUNTER: usize = 64;
const FLAG: usize = 128;
const ROUNDS: u64 = 20_000;

/// A segment for one test, removed (and the children killed) on drop.
struct Fixture {
    id: SegmentId,
    seg: Segment,
    children: Vec<Child>,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let name = format!("shmex-locktest-{tag}-{}", std::process::id());
        let id = SegmentId::posix(name).expect("name");
        let _ = Segment::remove(&id);
        let seg = Segment::create(&id, 4096, 0o600).expect("create");
        Fixture {
            id,
            seg,
            children: Vec::new(),
        }
    }

    fn lock(&self) -> &ProcessLock {
        self.seg.view(0).expect("lock")
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        self.seg.view(off).expect("word")
    }

    fn spawn(&mut self, role: &str) -> usize {
        let SegmentId::Posix(name) = &self.id else {
            unreachable!()
        };
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "child_process_entry", "--nocapture", "--quiet"])
            .env(ROLE, role)
            .env(NAME, name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits (at most a minute) until word `off` is nonzero.
    fn wait_flag(&self, off: usize) {
        let t = Instant::now();
        while self.word(off).load(Ordering::SeqCst) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the child never said so"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Segment::remove(&self.id);
    }
}

fn kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn owner_of(pid: u32, start: u64) -> u64 {
    u64::from(pid) | ((start & 0xffff_ffff) << 32)
}

fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Not a test of its own: the other process, when run with a role.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let id = SegmentId::posix(std::env::var(NAME).expect(NAME)).expect("name");
    let seg = Segment::open(&id, Access::ReadWrite).expect("open");
    let lock: &ProcessLock = seg.view(0).expect("lock");
    let word = |off: usize| -> &AtomicU64 { seg.view(off).expect("word") };
    match role.as_str() {
        "count" => {
            for _ in 0..ROUNDS {
                let g = lock.lock_timeout(Duration::from_secs(60)).expect("lock");
                let c = word(COUNTER);
                c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                g.unlock().expect("unlock");
            }
        }
        "hold" => {
            std::mem::forget(lock.try_lock().expect("a free lock"));
            word(FLAG).store(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(60));
        }
        "wait" => {
            shm::sys::catch_termination();
            word(FLAG).store(1, Ordering::SeqCst);
            let r = lock.lock_timeout(Duration::from_secs(60)).map(drop);
            println!("{r:?}");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn processes_exclude_each_other() {
    let mut f = Fixture::new("count");
    let kids = [f.spawn("count"), f.spawn("count")];
    for _ in 0..ROUNDS {
        let g = f.lock().lock_timeout(Duration::from_secs(60)).unwrap();
        let c = f.word(COUNTER);
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        g.unlock().unwrap();
    }
    for k in kids {
        assert!(f.children[k].wait().unwrap().success());
    }
    assert_eq!(f.word(COUNTER).load(Ordering::Relaxed), 3 * ROUNDS);
    assert_eq!(f.word(0).load(Ordering::Relaxed), 0, "free at the end");
}

/// The documented bound: a waiter takes over within one slice of the
/// holder's death (plus a read of /proc); asserted with a margin for a
/// loaded machine.
#[test]
fn a_killed_holder_is_found_within_the_bound() {
    let mut f = Fixture::new("killed");
    let k = f.spawn("hold");
    f.wait_flag(FLAG);
    let pid = f.children[k].id();
    let lock: &ProcessLock = f.lock();
    let tid = lock.holder().expect("held");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists(),
        "held by a thread of the child"
    );
    assert_eq!(
        lock.try_lock().unwrap_err(),
        LockError::WouldBlock,
        "held by a live process"
    );
    let killed = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let g = lock.lock_timeout(Duration::from_secs(30)).unwrap();
            (Instant::now(), g.owner_died())
        });
        std::thread::sleep(SLICE * 3);
        let t = Instant::now();
        kill(pid, "KILL");
        let (got, died) = waiter.join().unwrap();
        assert!(died, "the waiter is told the holder died");
        got.duration_since(t)
    });
    assert!(killed < SLICE * 25, "took {killed:?} after the kill");
    f.children[k].wait().unwrap();
}

/// A live process to name as a holder (`sleep 60`): it, its pid and its
/// start time.
fn sleeper() -> (Child, u32, u64) {
    let sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = sleeper.id();
    let start = start_time(pid).unwrap();
    (sleeper, pid, start)
}

/// A live process's pid with another start time is a reused pid: not the
/// holder, taken over. The same pid with its real start time is the
/// holder: a timeout, never a theft.
#[test]
fn a_reused_pid_is_not_the_holder_and_a_live_one_is() {
    let f = Fixture::new("reused");
    let (mut sleeper, pid, start) = sleeper();
    f.word(0).store(owner_of(pid, start + 1), Ordering::SeqCst);
    let g = f.lock().lock_timeout(Duration::from_secs(10)).unwrap();
    assert!(g.owner_died());
    g.unlock().unwrap();
    f.word(0).store(owner_of(pid, start), Ordering::SeqCst);
    let t = Instant::now();
    let e = f
        .lock()
        .lock_timeout(Duration::from_millis(300))
        .unwrap_err();
    assert!(
        matches!(e, LockError::Timeout { pid: p, .. } if p == pid),
        "{e:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(
        f.lock()
            .lock_timeout(Duration::from_secs(10))
            .unwrap()
            .owner_died()
    );
}

/// A waiter that finds a dead holder takes over within its first look,
/// long before a slice: waiters that come and go (each killed, say, within
/// a few milliseconds of its arrival) still find a dead holder, rather
/// than leave it holding the lock forever.
#[test]
fn a_dead_holder_is_found_at_the_first_look() {
    let f = Fixture::new("first-look");
    let (mut sleeper, pid, start) = sleeper();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    // Each take is timed; the fastest of ten must come well before a
    // slice (one take may be slowed by a loaded machine, not all ten: a
    // waiter that looked only after a slice would fail every one).
    let mut fastest = Duration::MAX;
    for _ in 0..10 {
        f.word(0).store(owner_of(pid, start), Ordering::SeqCst);
        let t = Instant::now();
        let g = f.lock().lock_timeout(Duration::from_secs(10)).unwrap();
        let took = t.elapsed();
        assert!(g.owner_died());
        g.unlock().unwrap();
        assert!(took >= FIRST_LOOK, "judged before its first look: {took:?}");
        fastest = fastest.min(took);
    }
    assert!(fastest < SLICE, "the fastest of ten took {fastest:?}");
}

/// A caught SIGTERM ends a wait for a lock that a live process holds.
#[test]
fn sigterm_interrupts_a_waiter() {
    let mut f = Fixture::new("sigterm");
    // pid 1 lives as long as the machine: a holder that never lets go.
    let Some(start) = start_time(1) else {
        return;
    };
    f.word(0).store(owner_of(1, start), Ordering::SeqCst);
    let k = f.spawn("wait");
    f.wait_flag(FLAG);
    std::thread::sleep(SLICE * 3);
    let t = Instant::now();
    kill(f.children[k].id(), "TERM");
    let out = {
        let c = f.children.remove(k);
        c.wait_with_output().unwrap()
    };
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Err(Interrupted(15))"), "{text}");
}
