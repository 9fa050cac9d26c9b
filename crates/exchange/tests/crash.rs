//! Crash recovery with real processes: a child process is made to abort at
//! a failpoint inside a mutation, holding the robust mutex; the next
//! operation from another process rolls it back, journals the rollback and
//! leaves the books exactly as before. Then traders are SIGKILLed at random
//! instants while others keep trading, and nobody deadlocks.
//!
//! This test binary has its own `main` (no libtest harness) because it
//! re-executes itself as the child processes.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, Guard, create};
use exchange::{Capacity, CurrencyId, Exchange, Op, OpError, State};
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
        "trade" => {
            let (me, _) = e
                .open_account(&format!("t{}", std::process::id() % 8))
                .expect("account");
            let mut x = u64::from(std::process::id()) | 1;
            loop {
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
                    Ok(_)
                    | Err(
                        OpError::InsufficientBalance { .. }
                        | OpError::InsufficientHolding { .. }
                        | OpError::InsufficientStock { .. }
                        | OpError::TillShort { .. },
                    ) => {}
                    Err(err) => panic!("trader: {err}"),
                }
            }
        }
        other => panic!("unknown child {other}"),
    }
}

fn spawn(id: &SegmentId, what: &str, failpoint: Option<&str>) -> Child {
    let mut c = Command::new(std::env::current_exe().expect("test binary"));
    c.env(CHILD, what)
        .env(TARGET, id_to_env(id))
        .env_remove("SHMEX_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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
    let j = e.journal(None);
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
    assert_eq!(e.journal(Some(1))[0].op, Op::Rollback);
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
    let last = e.journal(Some(1));
    assert_eq!(last[0].op, Op::Rollback);
    assert_eq!(last[0].undone, Some(Op::Buy));
    assert!(e.check().unwrap().is_empty());
}

/// Traders SIGKILLed at random instants (often holding the lock) while
/// others trade: everyone left finishes, and the books balance.
fn chaos(backend: Backend) {
    let cap = Capacity {
        journal: 1 << 14,
        ..Capacity::default()
    };
    let (g, ex) = create(backend, "chaos", cap);
    let e = ex.engine();
    let mut traders: Vec<Child> = (0..4).map(|_| spawn(&g.0, "trade", None)).collect();
    let mut x: u64 = 0x2545_f491;
    let kills = 60;
    for _ in 0..kills {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_micros(2_000 + x % 8_000));
        let i = (x % traders.len() as u64) as usize;
        traders[i].kill().expect("kill");
        traders[i].wait().expect("reap");
        traders[i] = spawn(&g.0, "trade", None);
        // Readers are never stuck either.
        assert!(e.state().unwrap().check().is_empty());
    }
    std::thread::sleep(Duration::from_millis(50));
    for t in &mut traders {
        let _ = t.kill();
        let _ = t.wait();
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
    let j = e.journal(None);
    for w in j.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "a gap in the journal");
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
