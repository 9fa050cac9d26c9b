//! Crash recovery with real processes: a child process is made to abort at
//! a failpoint inside a mutation, holding the process lock; the next
//! operation from another process rolls it back, journals the rollback and
//! leaves the books exactly as before. Then traders are SIGKILLed at random
//! instants while others keep trading, until enough kills have landed
//! inside a mutation: nobody deadlocks, no trader fails on its own, and the
//! books stay exactly what the journal adds up to, reckoned by the test.
//!
//! This test binary has its own `main` (no libtest harness) because it
//! re-executes itself as the child processes.

mod common;

use std::io::{Read, Write as _};
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Backend, Guard, create, differences, replay};
use exchange::{Capacity, CurrencyId, Engine, Exchange, Op, Receipt, State};
use shm::SegmentId;

const CHILD: &str = "SHMEX_CRASH_TEST_CHILD";
const TARGET: &str = "SHMEX_CRASH_TEST_EXCHANGE";

fn id_to_env(id: &SegmentId) -> String {
    match id {
        SegmentId::Posix(n) => format!("posix:{n}"),
        SegmentId::SysV(k) => format!("sysv:{k}"),
    }
}

fn id_from_env(s: &str) -> SegmentId {
    match s.split_once(':') {
        Some(("posix", n)) => SegmentId::Posix(n.into()),
        Some(("sysv", k)) => SegmentId::SysV(k.parse().expect("key")),
        _ => panic!("bad {TARGET}: {s}"),
    }
}

/// What a child process does: one operation (which the failpoint in its
/// environment interrupts), or trading until killed.
fn child(what: &str) {
    let id = id_from_env(&std::env::var(TARGET).expect(TARGET));
    let ex = Exchange::open(&id).expect("open");
    let e = ex.engine();
    let dollar = e.currency("DOLLAR").unwrap();
    match what {
        "buy" | "sell" | "deposit" | "withdraw" => {
            let (me, _) = e.open_account("victim").expect("account");
            let r = match what {
                "buy" => e.buy(me, dollar, 300),
                "sell" => e.sell(me, dollar, 100),
                "deposit" => e.deposit(me, dollar, 700),
                _ => e.withdraw(me, CurrencyId::HOME, 5_000),
            };
            r.expect("the operation");
        }
        "set-rate" => {
            e.set_rate(dollar, 12_000_000, 15_000_000)
                .expect("set-rate");
        }
        "open" => {
            e.open_account("newcomer").expect("open");
        }
        "close" => {
            e.close_account("leaver").expect("close");
        }
        "trade" => trade(&e),
        other => panic!("unknown child {other}"),
    }
}

/// How long a trader trades after a `g` on its stdin (an `s` stops it).
const WINDOW: Duration = Duration::from_millis(1);

/// A trader: for a [`WINDOW`] after each `g` on its stdin, random
/// deposits, buys and sells; when its stdin closes, a clean exit. Trading
/// only around the test's kills, rather than all the time, lets the test
/// read every journal record before the ring wraps; and the chance of a
/// kill landing inside a mutation depends on how much of its time the
/// victim spends there, not on how long it traded before. Each operation
/// it is told succeeded is printed as one line, `seq op currency amount
/// total`, so the test can hold the journal to every answer given.
fn trade(e: &Engine<'_>) {
    let base = Instant::now();
    let until = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (grant, eof, me_thread) = (until.clone(), stop.clone(), std::thread::current());
    std::thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        let mut b = [0u8; 64];
        while let Ok(n @ 1..) = input.read(&mut b) {
            let end = match b[n - 1] {
                b'g' => (base.elapsed() + WINDOW).as_nanos() as u64,
                _ => 0,
            };
            grant.store(end, Ordering::Release);
            me_thread.unpark();
        }
        eof.store(true, Ordering::Release);
        me_thread.unpark();
    });
    // Buffered, so the loop stays tight: a killed trader loses its last
    // answers, which only leaves fewer to check.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut ack = |r: &Receipt| {
        let line = answer_line(r.seq, r.op, r.currency.index(), r.amount, r.total);
        writeln!(out, "{line}").expect("write an answer");
    };
    let (me, opened) = e
        .open_account(&format!("t{}", std::process::id() % 8))
        .expect("account");
    if let Some(r) = opened {
        ack(&r);
    }
    let mut x = u64::from(std::process::id()) | 1;
    while !stop.load(Ordering::Acquire) {
        if base.elapsed().as_nanos() as u64 >= until.load(Ordering::Acquire) {
            std::thread::park_timeout(Duration::from_millis(10));
            continue;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let c = CurrencyId::from_index(1 + (x % 4) as usize);
        let r = match (x >> 20) % 5 {
            0 => e.deposit(me, CurrencyId::HOME, 10_000),
            1 | 2 => e.buy(me, c, 1 + (x >> 30) as i64 % 500),
            _ => e.sell(me, c, 1 + (x >> 30) as i64 % 500),
        };
        match r {
            Ok(r) => ack(&r),
            Err(e) if common::short(&e) => {}
            Err(err) => panic!("trader: {err}"),
        }
    }
}

/// An answer line, or a journal record written as one.
fn answer_line(seq: u64, op: Op, currency: usize, amount: i64, total: i64) -> String {
    format!("{seq} {op} {currency} {amount} {total}")
}

fn spawn(id: &SegmentId, what: &str, failpoint: Option<&str>) -> Child {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.env(CHILD, what)
        .env(TARGET, id_to_env(id))
        .env_remove("SHMEX_FAILPOINT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = failpoint {
        c.env("SHMEX_FAILPOINT", f);
    }
    c.spawn().expect("spawn child")
}

/// Runs a child to its death by the failpoint's abort.
fn crash(id: &SegmentId, what: &str, failpoint: &str) {
    let o = spawn(id, what, Some(failpoint))
        .wait_with_output()
        .expect("wait");
    assert_eq!(
        o.status.signal(),
        Some(SIGABRT),
        "the child ({what} at {failpoint}) must abort, not {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The signal `std::process::abort` raises.
const SIGABRT: i32 = 6;
/// The signal `Child::kill` sends.
const SIGKILL: i32 = 9;

/// The books with the sequence number left out: a rollback takes one.
fn books(s: &State) -> State {
    State {
        next_seq: 0,
        ..s.clone()
    }
}

fn setup(backend: Backend, tag: &str) -> (Guard, Exchange) {
    let (g, ex) = create(backend, tag, Capacity::default());
    let e = ex.engine();
    let (victim, _) = e.open_account("victim").unwrap();
    e.deposit(victim, e.currency("DOLLAR").unwrap(), 1_000)
        .unwrap();
    // An account at zero balances, for the close to close.
    let (leaver, _) = e.open_account("leaver").unwrap();
    let opening = e.info().opening;
    e.withdraw(leaver, CurrencyId::HOME, opening).unwrap();
    (g, ex)
}

/// One failpoint: the child dies mid-operation; this process's next
/// operation recovers it.
fn failpoint_rolls_back(backend: Backend, what: &str, failpoint: &str, undone: Op) {
    let (g, ex) = setup(backend, "fp");
    let e = ex.engine();
    let before = e.state().unwrap();
    crash(&g.0, what, failpoint);
    // The next operation, from another process (this one), recovers.
    let (other, _) = e.open_account("bystander").unwrap();
    let after = e.state().unwrap();
    let j = e.journal(None).unwrap();
    let n = j.len();
    assert!(n >= 2, "{j:?}");
    let rollback = &j[n - 2];
    assert_eq!(rollback.op, Op::Rollback, "{j:?}");
    assert_eq!(rollback.undone, Some(undone), "{rollback:?}");
    assert_eq!(
        rollback.seq, before.next_seq,
        "the rollback takes the dead operation's number"
    );
    assert_eq!(j[n - 1].op, Op::Open);
    assert_eq!(e.info().recoveries, 1);
    // Exactly as before the dead operation, plus the bystander's account.
    let mut want = books(&before);
    want.accounts.push(exchange::AccountState {
        name: "bystander".into(),
        balances: {
            let mut b = vec![0; want.currencies.len()];
            b[0] = want.opening;
            b
        },
    });
    want.currencies[0].deposits += want.opening;
    assert_eq!(
        books(&after),
        want,
        "{what} at {failpoint} was not rolled back exactly"
    );
    assert_eq!(after.next_seq, before.next_seq + 2);
    assert!(e.check().unwrap().is_empty());
    // And the exchange works on.
    e.buy(other, e.currency("EURO").unwrap(), 100).unwrap();
    assert!(e.check().unwrap().is_empty());
}

/// A reader that finds a dead writer's odd seqlock takes the lock after a
/// while, recovers, and sees the books as they were.
fn reader_recovers(backend: Backend) {
    let (g, ex) = setup(backend, "reader");
    let e = ex.engine();
    let before = e.state().unwrap();
    crash(&g.0, "buy", "mid-trade");
    let q = e.quote().unwrap();
    let dollar = e.currency("DOLLAR").unwrap().index();
    assert_eq!(q[dollar].holding, before.currencies[dollar].holding);
    assert_eq!(books(&e.state().unwrap()), books(&before));
    assert_eq!(e.journal(Some(1)).unwrap()[0].op, Op::Rollback);
}

/// The process recovering a dead owner dies too, halfway through its
/// rollback; the third process rolls back again, idempotently.
fn recovery_survives_a_second_death(backend: Backend) {
    let (g, ex) = setup(backend, "twice");
    let e = ex.engine();
    let before = e.state().unwrap();
    crash(&g.0, "buy", "mid-trade");
    crash(&g.0, "deposit", "mid-rollback");
    let after = e.state().unwrap();
    assert_eq!(books(&after), books(&before));
    assert_eq!(after.next_seq, before.next_seq + 1);
    let last = e.journal(Some(1)).unwrap();
    assert_eq!(last[0].op, Op::Rollback);
    assert_eq!(last[0].undone, Some(Op::Buy));
    assert!(e.check().unwrap().is_empty());
}

/// A process dies after writing its journal record but before it
/// commits: readers of the journal stop at the last committed operation,
/// so they never read the record that the rollback then replaces under
/// the same sequence number (they could read a torn mix of the two).
fn an_uncommitted_record_is_not_read(backend: Backend) {
    let (g, ex) = setup(backend, "uncommitted");
    let e = ex.engine();
    let before = e.state().unwrap();
    let seq = before.next_seq;
    crash(&g.0, "buy", "after-journal");
    // Straight to the journal, without a snapshot that would recover first.
    let j = e.journal(None).unwrap();
    assert!(
        j.iter().all(|r| r.seq < seq),
        "the dead buy's record was read: {:?}",
        j.last()
    );
    assert_eq!(e.info().next_seq, seq);
    // Once recovered, the rollback holds that number.
    assert_eq!(books(&e.state().unwrap()), books(&before));
    let last = e.journal(Some(1)).unwrap();
    assert_eq!((last[0].seq, last[0].op), (seq, Op::Rollback));
}

/// An account whose opening died is not found, without the lock, before
/// recovery has removed it: it is opened anew, whole.
fn a_dead_opening_is_not_found(backend: Backend) {
    let (g, ex) = setup(backend, "dead-open");
    let e = ex.engine();
    crash(&g.0, "open", "mid-open");
    assert_eq!(e.account("newcomer").unwrap(), None);
    let (a, opened) = e.open_account("newcomer").unwrap();
    assert!(opened.is_some(), "opened anew");
    let r = e.buy(a, e.currency("DOLLAR").unwrap(), 100).unwrap();
    assert_eq!(e.account("newcomer").unwrap(), Some(a));
    assert_eq!(e.balances(a).unwrap()[1], 100);
    assert_eq!(r.balance, 100);
    assert!(e.check().unwrap().is_empty());
}

/// A trader process of the chaos test, its output read as it comes so
/// that no full pipe can stall it.
struct Trader {
    child: Child,
    /// How many times it has been told to trade.
    age: u32,
    stdin: Option<ChildStdin>,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

impl Trader {
    fn spawn(id: &SegmentId) -> Trader {
        let mut child = spawn(id, "trade", None);
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        Trader {
            age: 0,
            stdin: child.stdin.take(),
            stdout: drain(Box::new(child.stdout.take().expect("stdout"))),
            stderr: drain(Box::new(child.stderr.take().expect("stderr"))),
            child,
        }
    }

    /// Lets the trader trade for a [`WINDOW`] (`b'g'`), or stops it
    /// (`b's'`). (One that has died is caught when it is reaped.)
    fn tell(&mut self, what: u8) {
        let stdin = self.stdin.as_mut().expect("stdin");
        let _ = stdin.write_all(&[what]);
    }

    /// Waits for the trader's end, bounded, and returns its status, its
    /// stderr, and the answers it completed (a line cut short by a kill
    /// is no answer).
    fn finish(mut self, what: &str) -> (ExitStatus, String, Vec<String>) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{what} still runs after 60 s: the lock is stuck? (killed)");
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let out = String::from_utf8(self.stdout.join().expect("stdout")).expect("UTF-8");
        let err = String::from_utf8_lossy(&self.stderr.join().expect("stderr")).into_owned();
        let done = out.rfind('\n').map_or("", |end| &out[..end]);
        (status, err, done.lines().map(str::to_owned).collect())
    }
}

/// The least number of kills, the most, and the least number of them that
/// must land inside a mutation (and be rolled back) before the test stops
/// killing.
const MIN_KILLS: usize = 60;
const MAX_KILLS: usize = 2000;
const MIN_ROLLBACKS: usize = 10;

/// The books rebuilt from the journal by [`replay`] as the traders run,
/// and a digest of every record, to hold the traders' answers to.
struct Audit {
    books: State,
    digests: Vec<u64>,
    rollbacks: usize,
}

fn digest(line: &str) -> u64 {
    line.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl Audit {
    /// Brings the books up to a consistent snapshot of the exchange,
    /// reading only the records below its next sequence number (those are
    /// final: one above may still become a rollback), and requires them
    /// equal to the snapshot.
    fn catch_up(&mut self, e: &Engine<'_>, capacity: usize) {
        let now = e.state().unwrap();
        let v = now.check();
        assert!(v.is_empty(), "a snapshot does not balance: {v:?}");
        let (from, to) = (self.books.next_seq, now.next_seq);
        if from == to {
            return;
        }
        // A tail that reaches back to `from`, unless more than `slack`
        // records were made since `info`: then a longer one.
        let mut slack = 1024;
        let records = loop {
            let tail = (e.info().next_seq - from) as usize + slack;
            let r = e.journal(Some(tail)).unwrap();
            if r.first().is_some_and(|r| r.seq <= from) || tail >= capacity {
                break r;
            }
            slack *= 2;
        };
        let new: Vec<_> = records
            .into_iter()
            .filter(|r| (from..to).contains(&r.seq))
            .collect();
        assert!(
            new.first().is_some_and(|r| r.seq == from),
            "records from {from} on were overwritten before they were read: raise the journal's capacity"
        );
        self.books = replay(&self.books, &new);
        let d = differences(&self.books, &now);
        assert!(
            d.is_empty(),
            "the books are not what the journal adds up to (journal vs exchange, up to {to}): {d:#?}"
        );
        for r in &new {
            self.rollbacks += usize::from(r.op == Op::Rollback);
            let line = answer_line(r.seq, r.op, r.currency, r.amount, r.total);
            self.digests.push(digest(&line));
        }
    }

    /// Whether `answer` is the journal's record of its sequence number.
    fn confirms(&self, answer: &str) -> bool {
        let seq: usize = answer.split(' ').next().unwrap().parse().expect("seq");
        self.digests.get(seq - 1) == Some(&digest(answer))
    }
}

/// Traders SIGKILLed at random instants while others trade, until enough
/// kills have landed inside a mutation: nobody deadlocks; no trader fails
/// on its own; the books are at every pause exactly what the journal adds
/// up to from the genesis, reckoned here, not by the engine; and every
/// answer a trader was given is in the journal as given, never rolled back.
fn chaos(backend: Backend) {
    let cap = Capacity {
        // Room for many pauses' worth of trading between two reads.
        journal: 1 << 16,
        ..Capacity::default()
    };
    let (g, ex) = create(backend, "chaos", cap);
    let e = ex.engine();
    let mut audit = Audit {
        books: common::builtin(cap),
        digests: Vec::new(),
        rollbacks: 0,
    };
    assert_eq!(
        audit.books.next_seq, 1,
        "digests are kept by sequence number"
    );
    let spawn = || Trader::spawn(&g.0);
    let mut traders: Vec<Trader> = (0..4).map(|_| spawn()).collect();
    let mut answers: Vec<String> = Vec::new();
    let mut x: u64 = 0x2545_f491;
    let mut kills = 0;
    while kills < MIN_KILLS || (audit.rollbacks < MIN_ROLLBACKS && kills < MAX_KILLS) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Every trader trades for a while; a victim that has had time to
        // start dies within it; then the others pause.
        let ready: Vec<usize> = (0..traders.len())
            .filter(|&i| traders[i].age >= 2)
            .collect();
        for t in &mut traders {
            t.tell(b'g');
            t.age += 1;
        }
        std::thread::sleep(Duration::from_micros(100 + x % 800));
        let Some(&i) = ready.get((x % 4) as usize % ready.len().max(1)) else {
            continue;
        };
        if let Some(st) = traders[i].child.try_wait().expect("try_wait") {
            let (_, err, _) = traders.swap_remove(i).finish("a trader");
            panic!("a trader ended on its own, {st}: {err}");
        }
        traders[i].child.kill().expect("kill");
        for t in &mut traders {
            t.tell(b's');
        }
        let (st, err, done) = std::mem::replace(&mut traders[i], spawn()).finish("a killed trader");
        assert_eq!(st.signal(), Some(SIGKILL), "a trader ended {st}: {err}");
        assert!(err.is_empty(), "a trader complained before its kill: {err}");
        answers.extend(done);
        kills += 1;
        // Readers are never stuck either.
        audit.catch_up(&e, cap.journal);
    }
    for (n, t) in traders.into_iter().enumerate() {
        let (st, err, done) = t.finish(&format!("surviving trader {n}"));
        assert!(
            st.success() && err.is_empty(),
            "surviving trader {n} ended {st}: {err}"
        );
        answers.extend(done);
    }
    let start = Instant::now();
    let (me, _) = e.open_account("survivor").unwrap();
    e.buy(me, e.currency("DOLLAR").unwrap(), 100).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the lock was stuck"
    );
    let v = e.check().unwrap();
    assert!(v.is_empty(), "{v:?}");

    audit.catch_up(&e, cap.journal);
    let recoveries = e.info().recoveries;
    eprintln!(
        "{kills} kills, {} inside a mutation (rolled back), {recoveries} recoveries; {} records, {} answers",
        audit.rollbacks,
        audit.digests.len(),
        answers.len()
    );
    assert!(
        audit.rollbacks >= MIN_ROLLBACKS,
        "only {} of {kills} kills landed inside a mutation: the test proved little",
        audit.rollbacks
    );
    assert!(recoveries >= audit.rollbacks as u64);
    let d = differences(&audit.books, &e.state().unwrap());
    assert!(
        d.is_empty(),
        "the books are not what the journal adds up to: {d:#?}"
    );
    for a in &answers {
        assert!(
            audit.confirms(a),
            "answer {a:?} differs from the journal's record, or was rolled back"
        );
    }
}

fn main() {
    if let Ok(what) = std::env::var(CHILD) {
        child(&what);
        return;
    }
    type Case = (String, Box<dyn Fn()>);
    let mut cases: Vec<Case> = Vec::new();
    for backend in [Backend::Posix, Backend::SysV] {
        let b = format!("{backend:?}").to_lowercase();
        for (what, fp, undone) in [
            ("buy", "mid-trade", Op::Buy),
            ("sell", "mid-trade", Op::Sell),
            ("deposit", "mid-deposit", Op::Deposit),
            ("withdraw", "mid-deposit", Op::Withdraw),
            ("set-rate", "mid-set-rate", Op::SetRate),
            ("open", "mid-open", Op::Open),
            ("buy", "after-journal", Op::Buy),
            ("close", "after-journal", Op::Close),
        ] {
            cases.push((
                format!("{b}::{what}_at_{fp}_is_rolled_back"),
                Box::new(move || failpoint_rolls_back(backend, what, fp, undone)),
            ));
        }
        cases.push((
            format!("{b}::a_reader_recovers_a_dead_writer"),
            Box::new(move || reader_recovers(backend)),
        ));
        cases.push((
            format!("{b}::an_uncommitted_record_is_not_read"),
            Box::new(move || an_uncommitted_record_is_not_read(backend)),
        ));
        cases.push((
            format!("{b}::a_dead_opening_is_not_found"),
            Box::new(move || a_dead_opening_is_not_found(backend)),
        ));
        cases.push((
            format!("{b}::recovery_survives_a_second_death"),
            Box::new(move || recovery_survives_a_second_death(backend)),
        ));
        cases.push((
            format!("{b}::sigkilled_traders_never_deadlock"),
            Box::new(move || chaos(backend)),
        ));
    }
    // Enough of libtest's command line for `cargo test` and for nextest,
    // which lists the tests (`--list --format terse`) and then runs each
    // with `--exact NAME`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in &cases {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in &cases {
        let wanted = filter.is_empty()
            || filter.iter().any(|p| {
                if exact {
                    name == *p
                } else {
                    name.contains(p.as_str())
                }
            });
        if !wanted {
            continue;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(101);
    }
}
