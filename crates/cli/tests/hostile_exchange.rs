//! A hostile peer against the exchange and its lock: this test process maps
//! the exchange's segment and writes into it, as any process that can write
//! the segment may, while real `shmex` processes use it.
//!
//! Whatever the peer writes, a `shmex` process never dies by a signal,
//! never panics, never waits past its deadline, and never prints a wrong
//! answer with exit status 0: it reports corruption (exit 1, one line that
//! names the exchange), and `check` passes or reports exactly the damage.
//!
//! The offsets written to are the exchange's layout (format 4); the
//! exchange crate's test `offsets_the_hostile_tests_write_to` pins them.

use std::io::Read as _;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use shm::header::HEADER_SIZE;
use shm::{Access, Segment};

use crate::support::exchange::traffic::{random_line, seed};
use crate::support::exchange::{Backend, Exchange, on_both_backends};
use crate::support::process::{assert_refused, run_bounded, show, stderr, stdout, wait_exit};
use crate::support::wait_until;

/// Payload offsets of what the peer writes.
mod at {
    /// The lock: owner word (u64), futex word (u32), spare (u32).
    pub const LOCK: usize = 0;
    pub const LOCK_LEN: usize = 16;
    /// The lock's owner word: thread id, and its start time << 32.
    pub const OWNER: usize = 0;
    pub const SEQ: usize = 16;
    pub const CAP_ACCOUNTS: usize = 56;
    pub const N_CURRENCIES: usize = 72;
    pub const COMMITTED_SEQ: usize = 88;
    /// Where the head ends (the undo record included).
    pub const HEAD_END: usize = 384;
    /// Currency rows, 64 bytes each; DOLLAR is row 1.
    pub const ROWS: usize = 768;
    pub const ROW: usize = 64;
    pub const SELL: usize = 24;
}

/// How long a side that waits may take to report an attack: its lock
/// timeout (set to 1 s for these tests) and a margin for a loaded machine.
const REPORT_WITHIN: Duration = Duration::from_secs(3);

/// The test process as a peer: the exchange's segment mapped read-write.
struct Peer {
    seg: Segment,
}

impl Peer {
    fn attach(ex: &Exchange) -> Peer {
        Peer {
            seg: Segment::open(&ex.id, Access::ReadWrite).expect("attach the exchange"),
        }
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        self.seg
            .view(HEADER_SIZE + off)
            .expect("a word of the payload")
    }

    fn put(&self, off: usize, v: u64) {
        self.word(off).store(v, Ordering::SeqCst);
    }

    fn get(&self, off: usize) -> u64 {
        self.word(off).load(Ordering::SeqCst)
    }

    fn payload_len(&self) -> usize {
        self.seg.len() - HEADER_SIZE
    }
}

/// A new exchange with alice and bob, the accounts these tests trade for,
/// open.
fn exchange(b: Backend, tag: &str, extra: &[&str]) -> Exchange {
    let ex = Exchange::init(b, tag, extra);
    for name in ["alice", "bob"] {
        ex.ok(&["open", name]);
    }
    ex
}

/// `shmex exchange SUB…` with the lock timeout these tests use.
fn cmd(ex: &Exchange, sub: &[&str]) -> Command {
    let mut c = ex.cmd(sub);
    c.env("SHMEX_LOCK_TIMEOUT", "1")
        .env_remove("SHMEX_FAILPOINT");
    c
}

fn run(ex: &Exchange, sub: &[&str]) -> Output {
    run_bounded(&mut cmd(ex, sub), b"")
}

/// A child killed and reaped when dropped.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Kid {
    /// Waits for it (bounded) and collects its output.
    fn output(&mut self) -> Output {
        let status = wait_exit(&mut self.0, "a shmex process");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        if let Some(mut s) = self.0.stdout.take() {
            let _ = s.read_to_end(&mut out);
        }
        if let Some(mut s) = self.0.stderr.take() {
            let _ = s.read_to_end(&mut err);
        }
        Output {
            status,
            stdout: out,
            stderr: err,
        }
    }
}

/// A `buy` that stops for `hold_ms` with the lock held, before it reads
/// or changes anything.
fn holding_buyer(ex: &Exchange, hold_ms: u64) -> Kid {
    let mut c = cmd(ex, &["buy", "--account", "alice", "DOLLAR", "1"]);
    c.env("SHMEX_FAILPOINT", "hold-in-trade")
        .env("SHMEX_FAILPOINT_HOLD_MS", hold_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Kid(c.spawn().expect("spawn shmex"))
}

/// Waits until `buyer` holds the lock (or has ended).
fn wait_held(peer: &Peer, buyer: &mut Kid) {
    let pid = u64::from(buyer.0.id());
    wait_until("the buyer holds the lock", || {
        peer.get(at::OWNER) & 0xffff_ffff == pid || buyer.0.try_wait().is_ok_and(|s| s.is_some())
    });
}

/// Overwrites every byte of the lock with random values, once.
fn scribble(peer: &Peer, rng: &mut impl Rng) {
    for off in (at::LOCK..at::LOCK + at::LOCK_LEN).step_by(8) {
        peer.put(off, rng.random());
    }
}

/// A buy from a new process goes through, within [`REPORT_WITHIN`].
#[track_caller]
fn buy_goes_through(ex: &Exchange) {
    let t = Instant::now();
    let o = run(ex, &["buy", "--account", "bob", "DOLLAR", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(t.elapsed() < REPORT_WITHIN, "{:?}", t.elapsed());
}

/// Asserts what any `shmex` process must do whatever a peer wrote: end by
/// itself, not by a signal, without a panic, with status 0, 1 or 2, and
/// with one line of error that names the exchange if it failed.
#[track_caller]
fn assert_survived(o: &Output, ex: &Exchange) {
    assert_eq!(o.status.signal(), None, "killed by a signal: {}", show(o));
    let err = stderr(o);
    assert!(!err.contains("panicked"), "a panic: {}", show(o));
    let code = o.status.code().expect("an exit status");
    assert!(matches!(code, 0..=2), "exit status {code}: {}", show(o));
    if code != 0 {
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {}", show(o));
        assert!(err.starts_with("shmex: "), "{}", show(o));
    }
    if code == 1 && (err.contains("corrupt") || err.contains("lock")) {
        assert!(
            err.contains(&ex.label),
            "the exchange is named: {}",
            show(o)
        );
    }
}

/// The start time of process `pid` (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &text[text.rfind(')').expect("comm") + 1..];
    rest.split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .expect("start time")
}

/// The address ranges mapped in process `pid`.
fn mappings(pid: u32) -> Vec<(u64, u64)> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("maps")
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

on_both_backends!(
    the_held_lock_holds_no_pointer,
    scribbling_the_held_lock_never_kills_its_holder,
    a_holder_killed_after_scribbling_does_not_wedge_the_lock,
    a_live_foreign_holder_is_waited_for_only_until_the_deadline,
    check_sees_currencies_cut_from_the_count,
    capacities_that_do_not_fit_the_segment_are_corruption,
    an_exhausted_sequence_is_corruption,
    an_odd_sequence_left_behind_is_repaired,
    a_corrupted_rate_is_corruption_not_bad_input,
    an_account_whose_opening_died_is_not_traded_on,
    hostile_bytes_while_traders_run,
);

/// Finding 1: glibc's robust mutex kept the addresses of the holder's
/// thread-local robust list in the segment, readable by any peer.
fn the_held_lock_holds_no_pointer(b: Backend) {
    let ex = exchange(b, "hx-ptr", &[]);
    let peer = Peer::attach(&ex);
    let mut buyer = holding_buyer(&ex, 1500);
    let pid = buyer.0.id();
    wait_held(&peer, &mut buyer);
    let maps = mappings(pid);
    for off in (0..64).step_by(8) {
        let w = peer.get(off);
        assert!(
            !maps.iter().any(|&(lo, hi)| (lo..hi).contains(&w)),
            "payload word {off} holds {w:#x}, an address in the holder"
        );
    }
    assert_eq!(peer.get(at::OWNER) >> 32, start_time(pid) & 0xffff_ffff);
    let o = buyer.output();
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    ex.check();
}

/// Done-when: while a trader holds the lock, every byte of the lock's
/// shared state is overwritten with random values, many times. The holder
/// never dies by a signal: it finishes, or reports that its lock was taken
/// (exit 1, naming the exchange). The next trader gets the lock.
fn scribbling_the_held_lock_never_kills_its_holder(b: Backend) {
    let ex = exchange(b, "hx-scribble", &[]);
    let peer = Peer::attach(&ex);
    let mut rng = StdRng::seed_from_u64(seed());
    for _ in 0..3 {
        let mut buyer = holding_buyer(&ex, 600);
        wait_held(&peer, &mut buyer);
        let mut writes = 0u64;
        while buyer.0.try_wait().expect("try_wait").is_none() {
            scribble(&peer, &mut rng);
            writes += 1;
        }
        assert!(writes > 100, "only {writes} rounds of scribbling");
        let o = buyer.output();
        assert_survived(&o, &ex);
        if o.status.code() != Some(0) {
            assert_refused(&o, 1, &[&ex.label, "corrupted", "lock"]);
        }
        // The lock holds garbage now: the next trader takes it over.
        buy_goes_through(&ex);
        ex.check();
    }
}

/// Finding 1: after scribbling and a crash, the glibc lock was no longer
/// robust and every later buy blocked forever.
fn a_holder_killed_after_scribbling_does_not_wedge_the_lock(b: Backend) {
    let ex = exchange(b, "hx-wedge", &[]);
    let peer = Peer::attach(&ex);
    let before = ex.state();
    let mut rng = StdRng::seed_from_u64(seed());
    let mut buyer = holding_buyer(&ex, 5000);
    wait_held(&peer, &mut buyer);
    for _ in 0..10_000 {
        scribble(&peer, &mut rng);
    }
    buyer.0.kill().expect("kill");
    let _ = buyer.output();
    let t = Instant::now();
    let o = run(&ex, &["deposit", "--account", "bob", "TRY", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(t.elapsed() < REPORT_WITHIN, "{:?}", t.elapsed());
    ex.check();
    // The killed buyer had changed nothing: alice's buy is not there.
    assert_eq!(ex.quote(), before.quote);
}

/// Finding 1: writers blocked with no time limit behind a foreign thread
/// id. A live holder that never lets go makes a writer give up at its
/// deadline, with one line naming the exchange and the holder; readers go
/// on; once the holder is gone, its lock is taken over.
fn a_live_foreign_holder_is_waited_for_only_until_the_deadline(b: Backend) {
    let ex = exchange(b, "hx-foreign", &[]);
    let peer = Peer::attach(&ex);
    let before = ex.state();
    let mut sleeper = Kid(Command::new("sleep").arg("60").spawn().expect("sleep"));
    let pid = sleeper.0.id();
    peer.put(
        at::OWNER,
        u64::from(pid) | ((start_time(pid) & 0xffff_ffff) << 32),
    );
    let t = Instant::now();
    let o = run(&ex, &["buy", "--account", "bob", "DOLLAR", "1"]);
    assert!(t.elapsed() < REPORT_WITHIN, "{:?}", t.elapsed());
    assert_refused(
        &o,
        1,
        &[&ex.label, &format!("pid {pid}"), "SHMEX_LOCK_TIMEOUT"],
    );
    // Readers need no lock.
    assert_eq!(ex.quote(), before.quote);
    // A reused pid is not the holder: the same pid with another start time.
    peer.put(
        at::OWNER,
        u64::from(pid) | (((start_time(pid) + 1) & 0xffff_ffff) << 32),
    );
    buy_goes_through(&ex);
    // The real holder dies (a zombie until reaped): taken over too.
    peer.put(
        at::OWNER,
        u64::from(pid) | ((start_time(pid) & 0xffff_ffff) << 32),
    );
    sleeper.0.kill().expect("kill");
    buy_goes_through(&ex);
    ex.check();
}

/// Finding 10: `check` missed `n_currencies` lowered from 5 to 1 (or 2).
fn check_sees_currencies_cut_from_the_count(b: Backend) {
    let ex = exchange(b, "hx-ncur", &[]);
    ex.ok(&["buy", "--account", "alice", "EURO", "3"]);
    let peer = Peer::attach(&ex);
    for n in [1, 2, 6] {
        peer.put(at::N_CURRENCIES, n);
        let o = run(&ex, &["check"]);
        assert_refused(&o, 1, &[&ex.label, "corrupted", "currenc"]);
        let o = run(&ex, &["quote"]);
        assert_refused(&o, 1, &[&ex.label, "corrupted"]);
    }
    peer.put(at::N_CURRENCIES, 5);
    ex.check();
}

/// Finding 10: a segment with smaller capacities than its size was
/// accepted, and read at the wrong offsets.
fn capacities_that_do_not_fit_the_segment_are_corruption(b: Backend) {
    let ex = exchange(b, "hx-cap", &[]);
    ex.ok(&["buy", "--account", "alice", "EURO", "3"]);
    let peer = Peer::attach(&ex);
    let cap = peer.get(at::CAP_ACCOUNTS);
    for smaller in [cap / 2, 1] {
        peer.put(at::CAP_ACCOUNTS, smaller);
        for sub in [
            &["check"][..],
            &["accounts"],
            &["buy", "--account", "alice", "EURO", "1"],
        ] {
            let o = run(&ex, sub);
            assert_refused(&o, 1, &[&ex.label, "corrupted", "bytes"]);
        }
    }
    peer.put(at::CAP_ACCOUNTS, cap);
    ex.check();
}

/// Finding 10: `next_seq` at u64::MAX wrapped to 0.
fn an_exhausted_sequence_is_corruption(b: Backend) {
    let ex = exchange(b, "hx-seq", &[]);
    let peer = Peer::attach(&ex);
    let before = ex.state();
    peer.put(at::COMMITTED_SEQ, u64::MAX);
    for sub in [
        &["buy", "--account", "alice", "DOLLAR", "1"][..],
        &["set-rate", "DOLLAR", "--buy", "1", "--sell", "2", "--yes"],
    ] {
        let o = run(&ex, sub);
        assert_refused(&o, 1, &[&ex.label, "corrupted", "sequence"]);
    }
    assert_eq!(peer.get(at::COMMITTED_SEQ), u64::MAX, "nothing wrapped");
    assert_eq!(ex.quote(), before.quote);
    assert_eq!(ex.accounts(), before.accounts);
}

/// Finding 10: an odd sequence left by a writer that lives on was never
/// repaired, so every read paid its whole patience.
fn an_odd_sequence_left_behind_is_repaired(b: Backend) {
    let ex = exchange(b, "hx-odd", &[]);
    let before = ex.quote();
    let peer = Peer::attach(&ex);
    let seq = peer.get(at::SEQ);
    peer.put(at::SEQ, seq | 1);
    // The first reader that finds it so takes the lock and repairs it.
    let o = run(&ex, &["quote", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let got: Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(got, before);
    assert_eq!(peer.get(at::SEQ) & 1, 0, "the sequence is even again");
    // A writer repairs it too.
    peer.put(at::SEQ, seq | 1);
    let o = run(&ex, &["deposit", "--account", "bob", "TRY", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(peer.get(at::SEQ) & 1, 0, "the sequence is even again");
    ex.check();
}

/// Finding 10: a corrupted shared rate was reported as bad input (exit 2),
/// not as corruption; `check` reports exactly that rate.
fn a_corrupted_rate_is_corruption_not_bad_input(b: Backend) {
    let ex = exchange(b, "hx-rate", &[]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "5"]);
    let peer = Peer::attach(&ex);
    let sell = at::ROWS + at::ROW + at::SELL;
    let old = peer.get(sell);
    for bad in [(-5i64) as u64, 0, u64::MAX >> 1] {
        peer.put(sell, bad);
        for sub in [
            &["buy", "--account", "alice", "DOLLAR", "1"][..],
            &["sell", "--account", "alice", "DOLLAR", "1"],
        ] {
            let o = run(&ex, sub);
            assert_refused(&o, 1, &[&ex.label, "corrupted", "DOLLAR"]);
        }
        let o = run(&ex, &["check", "--json"]);
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).expect("json");
        let violations = v["violations"].as_array().expect("violations");
        assert_eq!(violations.len(), 1, "{v}");
        assert!(
            violations[0].as_str().unwrap_or("").contains("DOLLAR"),
            "{v}"
        );
    }
    peer.put(sell, old);
    ex.check();
}

/// Finding 11: an account whose opening was to be rolled back was visible
/// without the lock, and a trade on it moved stock and till for an account
/// that recovery then removed. Now the half-opened account is not found,
/// and opens anew, whole.
fn an_account_whose_opening_died_is_not_traded_on(b: Backend) {
    let ex = exchange(b, "hx-open", &[]);
    let before = ex.state();
    let mut c = ex.cmd(&["open", "newbie"]);
    c.env("SHMEX_FAILPOINT", "mid-open");
    let o = run_bounded(&mut c, b"");
    assert_eq!(o.status.signal(), Some(SIGABRT), "{}", show(&o));
    let o = run(&ex, &["buy", "--account", "newbie", "DOLLAR", "1"]);
    assert_refused(&o, 1, &["no account \"newbie\""]);
    assert_eq!(ex.quote(), before.quote, "nothing was traded");
    ex.check();
    ex.ok(&["open", "newbie"]);
    let o = run(&ex, &["buy", "--account", "newbie", "DOLLAR", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    ex.check();
    let accounts = ex.accounts();
    let newbie: Vec<&Value> = accounts
        .as_array()
        .expect("accounts")
        .iter()
        .filter(|a| a["name"] == "newbie")
        .collect();
    assert_eq!(newbie.len(), 1, "{accounts}");
    assert_eq!(newbie[0]["balances"]["DOLLAR"], "1.00");
    assert_eq!(newbie[0]["balances"]["TRY"], "986.28");
}

/// The signal `std::process::abort` raises.
const SIGABRT: i32 = 6;

/// Done-when: another process changes bytes of a live exchange while
/// trade loops and readers run, for a bounded time: no crash, no panic,
/// no hang; every process ends by itself with 0, 1 or 2.
fn hostile_bytes_while_traders_run(b: Backend) {
    const RUN: Duration = Duration::from_secs(8);
    let ex = exchange(b, "hx-fuzz", &["--accounts", "16", "--ring", "64"]);
    for name in ["t0", "t1", "t2"] {
        ex.ok(&["open", name]);
    }
    let peer = Peer::attach(&ex);
    let len = peer.payload_len();
    // The head (but its lock and sequence) and the rows, as they were:
    // restored now and then, so that operations get past opening and meet
    // the damage further in.
    let checked_at_open = |off: usize| {
        (24..80).contains(&off)
            || ((at::ROWS..at::ROWS + 16 * at::ROW).contains(&off) && {
                let row = (off - at::ROWS) / at::ROW;
                row >= 5 || (off - at::ROWS) % at::ROW < 16
            })
    };
    let structural: Vec<(usize, u64)> = (24..at::ROWS + 16 * at::ROW)
        .step_by(8)
        .map(|off| (off, peer.get(off)))
        .collect();
    let stop = AtomicBool::new(false);
    let base = seed();
    let runs = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3u64)
            .map(|w| {
                let (ex, stop) = (&ex, &stop);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(base + w);
                    let mut done = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("t{w}");
                        let (sub, input): (Vec<&str>, Vec<u8>) = match (w, rng.random_range(0..4)) {
                            (0 | 1, _) => {
                                let mut text = String::new();
                                for _ in 0..300 {
                                    text.push_str(&random_line(&mut rng, "TRY"));
                                }
                                (
                                    vec!["trade", "--account", &name, "--open", "--json"],
                                    text.into_bytes(),
                                )
                            }
                            (_, 0) => (vec!["check", "--json"], Vec::new()),
                            (_, 1) => (vec!["journal", "--json"], Vec::new()),
                            (_, 2) => (vec!["accounts"], Vec::new()),
                            _ => (vec!["buy", "--account", &name, "EURO", "1"], Vec::new()),
                        };
                        let sub: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
                        let args: Vec<&str> = sub.iter().map(String::as_str).collect();
                        let t = Instant::now();
                        let o = run_bounded(&mut cmd(ex, &args), &input);
                        done.push((sub, o, t.elapsed()));
                    }
                    done
                })
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(base ^ 0x5eed);
        let end = Instant::now() + RUN;
        let mut n = 0u64;
        // Mostly leave alone what opening checks (the dedicated tests above
        // cover it), so that operations meet the damage further in.
        while Instant::now() < end {
            let off = loop {
                let off = match rng.random_range(0..4) {
                    0 | 1 => rng.random_range(0..at::HEAD_END),
                    2 => rng.random_range(at::ROWS..at::ROWS + 5 * at::ROW),
                    _ => rng.random_range(0..len),
                } & !7;
                if !checked_at_open(off) || rng.random_bool(0.05) {
                    break off;
                }
            };
            let v: u64 = match rng.random_range(0..6) {
                0 => rng.random(),
                1 => rng.random_range(0..300),
                2 => u64::MAX - rng.random_range(0..3),
                3 => (i64::MIN as u64) + rng.random_range(0..3),
                4 => peer.get(off) ^ (1 << rng.random_range(0..64)),
                _ => peer.get(off).wrapping_add(1),
            };
            peer.put(off, v);
            n += 1;
            if n.is_multiple_of(64) {
                for &(off, v) in &structural {
                    peer.put(off, v);
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect::<Vec<_>>()
    });
    assert!(runs.len() >= 6, "only {} runs", runs.len());
    let mut codes = [0usize; 3];
    for (sub, o, took) in &runs {
        assert_survived(o, &ex);
        assert!(
            *took < Duration::from_secs(20),
            "`{}` took {took:?}",
            sub.join(" ")
        );
        codes[o.status.code().unwrap_or(2) as usize] += 1;
    }
    eprintln!("{} runs: {codes:?} by exit status", runs.len());
}
