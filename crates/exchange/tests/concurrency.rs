//! Many threads on one exchange segment at once: readers never see a torn
//! quote or books that do not balance, and concurrent traders keep every
//! invariant. (Processes are exercised by `crash.rs` and by the command
//! line's end-to-end tests; the lock and the seqlock behave the same for
//! threads.)

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{Backend, create};
use exchange::{Capacity, CurrencyId};

const PAIRS: [(i64, i64); 2] = [(10_000_000, 11_000_000), (20_000_000, 22_000_000)];

fn torn_quotes(backend: Backend) {
    let (_g, ex) = create(backend, "torn", Capacity::default());
    let dollar = ex.engine().currency("DOLLAR").unwrap();
    ex.engine()
        .set_rate(dollar, PAIRS[0].0, PAIRS[0].1)
        .unwrap();
    let done = AtomicBool::new(false);
    let seen = [AtomicU64::new(0), AtomicU64::new(0)];
    std::thread::scope(|s| {
        s.spawn(|| {
            let e = ex.engine();
            // At least 20,000 changes, and on until the readers have read
            // a thousand quotes between them (on a loaded machine they may
            // not get a core before the first 20,000 are done); bounded.
            let start = std::time::Instant::now();
            for i in 0.. {
                let (b, sl) = PAIRS[i % 2];
                e.set_rate(dollar, b, sl).unwrap();
                let read = seen[0].load(Ordering::Relaxed) + seen[1].load(Ordering::Relaxed);
                if i >= 20_000 && (read >= 1000 || start.elapsed().as_secs() >= 60) {
                    break;
                }
            }
            done.store(true, Ordering::Release);
        });
        for _ in 0..2 {
            s.spawn(|| {
                let e = ex.engine();
                let mut rows = Vec::new();
                while !done.load(Ordering::Acquire) {
                    e.quote_into(&mut rows).unwrap();
                    let pair = (rows[1].buy, rows[1].sell);
                    let k = PAIRS.iter().position(|p| *p == pair);
                    assert!(k.is_some(), "torn quote: buy {} sell {}", pair.0, pair.1);
                    seen[k.unwrap()].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let read = seen[0].load(Ordering::Relaxed) + seen[1].load(Ordering::Relaxed);
    assert!(
        read >= 1000,
        "the readers read only {read} quotes in a minute"
    );
    assert!(ex.engine().check().unwrap().is_empty());
}

#[test]
fn readers_never_see_a_torn_quote_posix() {
    torn_quotes(Backend::Posix);
}

#[test]
fn readers_never_see_a_torn_quote_sysv() {
    torn_quotes(Backend::SysV);
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn concurrent_traders(backend: Backend) {
    let cap = Capacity {
        journal: 1 << 16,
        ..Capacity::default()
    };
    let (_g, ex) = create(backend, "traders", cap);
    let done = AtomicBool::new(false);
    let mutations = AtomicU64::new(0);
    let snapshots = AtomicU64::new(0);
    std::thread::scope(|s| {
        let traders: Vec<_> = (0..4u64)
            .map(|t| {
                let (ex, mutations, snapshots) = (&ex, &mutations, &snapshots);
                s.spawn(move || {
                    let e = ex.engine();
                    let (me, opened) = e.open_account(&format!("trader{t}")).unwrap();
                    let mut n = u64::from(opened.is_some());
                    let mut rng = 0x9e37_79b9 + t;
                    // 5,000 operations, and on until the reader has taken
                    // ten snapshots while they ran (on a loaded machine it
                    // may not get a core sooner); bounded.
                    let start = std::time::Instant::now();
                    for i in 0.. {
                        if i >= 5_000
                            && (snapshots.load(Ordering::Relaxed) >= 10
                                || start.elapsed().as_secs() >= 60)
                        {
                            break;
                        }
                        let x = xorshift(&mut rng);
                        let c = CurrencyId::from_index(1 + (x % 4) as usize);
                        let amount = 1 + ((x >> 8) % 5_000) as i64;
                        let r = match (x >> 32) % 8 {
                            0 => e.deposit(me, CurrencyId::HOME, amount * 10),
                            1 => e.withdraw(me, CurrencyId::HOME, amount),
                            2..=4 => e.buy(me, c, amount),
                            _ => e.sell(me, c, amount),
                        };
                        match r {
                            Ok(_) => n += 1,
                            Err(e) if common::short(&e) => {}
                            Err(err) => panic!("{err}"),
                        }
                    }
                    mutations.fetch_add(n, Ordering::Relaxed);
                })
            })
            .collect();
        s.spawn(|| {
            let e = ex.engine();
            while !done.load(Ordering::Acquire) {
                // Every snapshot taken while traders run balances exactly.
                let v = e.state().unwrap().check();
                assert!(v.is_empty(), "a snapshot does not balance: {v:?}");
                snapshots.fetch_add(1, Ordering::Relaxed);
            }
        });
        for t in traders {
            t.join().unwrap();
        }
        done.store(true, Ordering::Release);
    });
    let e = ex.engine();
    assert!(e.check().unwrap().is_empty());
    let taken = snapshots.load(Ordering::Relaxed);
    assert!(taken >= 10, "only {taken} snapshots in a minute of trading");
    let n = mutations.load(Ordering::Relaxed);
    assert_eq!(e.info().next_seq - 1, n, "one sequence number per mutation");
    let j = e.journal(None).unwrap();
    assert_eq!(j.len() as u64, n.min(1 << 16));
    for w in j.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "a gap in the journal");
    }
}

#[test]
fn concurrent_traders_keep_the_books_posix() {
    concurrent_traders(Backend::Posix);
}

#[test]
fn concurrent_traders_keep_the_books_sysv() {
    concurrent_traders(Backend::SysV);
}
