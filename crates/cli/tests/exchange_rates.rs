//! `shmex exchange set-rate`: it refuses crossed, zero, negative and
//! malformed rates; other processes see a new rate at once, including one
//! that was already trading; prices round to the exchange's favour; and
//! readers never see a torn row while a writer flips rates.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::exchange::money::{micro, rows};
use crate::support::exchange::{Backend, Exchange, Refused, answers, on_both_backends};
use crate::support::process::{run_bounded, shmex, stderr, stdout};
use crate::support::wait_until;

on_both_backends!(
    set_rate_refuses_bad_rates_and_changes_nothing,
    a_new_rate_is_seen_at_once_by_other_processes,
    prices_round_to_the_exchanges_favour,
    readers_never_see_a_torn_row,
);

fn set_rate_refuses_bad_rates_and_changes_nothing(b: Backend) {
    let ex = Exchange::init(b, "ex-rate-bad", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "1"]);
    let before = ex.state();
    let rates = "invalid_rates";
    let rate = "invalid_rate";
    let bad: &[Refused] = &[
        // buy > sell: the exchange would pay more than it charges.
        (
            &["set-rate", "DOLLAR", "--buy", "14", "--sell", "13"],
            rates,
            &[
                "invalid rates for DOLLAR",
                "the buy rate 14.00 is above the sell rate 13.00",
            ],
        ),
        (
            &[
                "set-rate",
                "DOLLAR",
                "--buy",
                "13.720001",
                "--sell",
                "13.72",
            ],
            rates,
            &["the buy rate 13.720001 is above the sell rate 13.72"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "0", "--sell", "13"],
            rate,
            &["--buy: invalid rate \"0\": it must be greater than zero"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "0.000000", "--sell", "13"],
            rate,
            &["--buy: invalid rate \"0.000000\": it must be greater than zero"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "0", "--sell", "0"],
            rate,
            &["invalid rate \"0\": it must be greater than zero"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy=-1", "--sell", "13"],
            rate,
            &["--buy: invalid rate \"-1\": negative values are not allowed"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "1", "--sell=-13"],
            rate,
            &["--sell: invalid rate \"-13\": negative values are not allowed"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy=-2", "--sell=-1"],
            rate,
            &["invalid rate \"-2\": negative values are not allowed"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "1.0000001", "--sell", "2"],
            rate,
            &["--buy: invalid rate \"1.0000001\": at most 6 decimals are allowed"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "1e1", "--sell", "20"],
            rate,
            &["--buy: invalid rate \"1e1\": exponents are not allowed"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "NaN", "--sell", "20"],
            rate,
            &["--buy: invalid rate \"NaN\": expected plain decimal digits"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "1", "--sell", "inf"],
            rate,
            &["--sell: invalid rate \"inf\": expected plain decimal digits"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "1,5", "--sell", "2"],
            rate,
            &["--buy: invalid rate \"1,5\": separators are not allowed"],
        ),
        (
            &["set-rate", "DOLLAR", "--buy", "abc", "--sell", "2"],
            rate,
            &["--buy: invalid rate \"abc\": expected plain decimal digits"],
        ),
        (
            &[
                "set-rate",
                "DOLLAR",
                "--buy",
                "1",
                "--sell",
                "999999999999999999999999999999",
            ],
            rate,
            &[
                "--sell: invalid rate \"999999999999999999999999999999\": too large (at most 1000000000)",
            ],
        ),
        (
            &["set-rate", "XYZ", "--buy", "1", "--sell", "2"],
            "unknown_currency",
            &["unknown currency \"XYZ\""],
        ),
        (
            &["set-rate", "TRY", "--buy", "1", "--sell", "2"],
            "home_currency",
            &["TRY is the home currency"],
        ),
    ];
    ex.assert_all_refused(bad, 2, &before);
    // Missing flags are usage errors: a side at least, and the code.
    ex.assert_all_usage_errors(
        &[
            &["set-rate", "DOLLAR"],
            &["set-rate", "DOLLAR", "--yes"],
            &["set-rate", "--buy", "1", "--sell", "2"],
        ],
        &before,
    );

    // buy = sell is allowed, and journalled.
    ex.ok(&["set-rate", "DOLLAR", "--buy", "13.5", "--sell", "13.5"]);
    let r = rows(&ex.quote());
    assert_eq!(
        (r["DOLLAR"].0, r["DOLLAR"].1),
        (micro("13.5"), micro("13.5"))
    );
    assert_eq!(r["DOLLAR"].2, micro("9999.00"), "set-rate leaves the stock");
    let j = ex.journal();
    let last = j.last().expect("journal");
    assert_eq!(last["op"], "set-rate", "{last}");
    assert_eq!(last["code"], "DOLLAR", "{last}");
    assert_eq!(
        ex.accounts(),
        before.accounts,
        "set-rate leaves the accounts"
    );
    ex.check();
}

/// Sends one line to a running `trade --json` and reads its one answer.
fn ask(stdin: &mut impl Write, stdout: &mut impl BufRead, line: &str) -> Value {
    writeln!(stdin, "{line}").expect("write");
    stdin.flush().expect("flush");
    let mut answer = String::new();
    stdout.read_line(&mut answer).expect("read answer");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer to {line:?} ({e}): {answer:?}"))
}

fn dollar_row(quote: &Value) -> (i128, i128) {
    let r = rows(quote);
    (r["DOLLAR"].0, r["DOLLAR"].1)
}

fn a_new_rate_is_seen_at_once_by_other_processes(b: Backend) {
    let mut ex = Exchange::init(b, "ex-rate-seen", &[]);
    // A trader that attached before the change.
    let i = ex.spawn(&["trade", "--account", "alice", "--open", "--json"]);
    let child = ex.child(i);
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let q = ask(&mut stdin, &mut stdout, "quote");
    assert_eq!(q["ok"], true, "{q}");
    assert_eq!(dollar_row(&q), (micro("13.40"), micro("13.72")));

    ex.ok(&[
        "set-rate", "DOLLAR", "--buy", "1.5", "--sell", "2.25", "--yes",
    ]);

    // A new process sees it.
    assert_eq!(dollar_row(&ex.quote()), (micro("1.5"), micro("2.25")));
    // The running trader sees it on its next line, and trades at it.
    let q = ask(&mut stdin, &mut stdout, "quote");
    assert_eq!(dollar_row(&q), (micro("1.5"), micro("2.25")), "{q}");
    let a = ask(&mut stdin, &mut stdout, "buy DOLLAR 2");
    assert_eq!(a["ok"], true, "{a}");
    assert_eq!(
        micro(a["rate"].as_str().expect("rate")),
        micro("2.25"),
        "{a}"
    );
    assert_eq!(a["total"], "4.50", "{a}");
    let a = ask(&mut stdin, &mut stdout, "sell DOLLAR 1");
    assert_eq!(
        micro(a["rate"].as_str().expect("rate")),
        micro("1.5"),
        "{a}"
    );
    assert_eq!(a["total"], "1.50", "{a}");
    drop(stdin);
    let st = ex.finish(i, "the trader at the end of its input");
    assert!(st.success(), "{st:?}");
    ex.check();
}

fn prices_round_to_the_exchanges_favour(b: Backend) {
    let ex = Exchange::init(b, "ex-round", &[]);
    ex.ok(&["set-rate", "DOLLAR", "--buy", "13.401", "--sell", "13.723"]);
    let got = ex.trade(
        "alice",
        b"buy DOLLAR 0.01\nsell DOLLAR 0.01\nbuy DOLLAR 0.03\nsell DOLLAR 0.03\nbuy DOLLAR 1\nsell DOLLAR 1\n",
    );
    let totals: Vec<&str> = got
        .iter()
        .map(|a| a["total"].as_str().unwrap_or("?"))
        .collect();
    // 0.13723 up, 0.13401 down, 0.41169 up, 0.40203 down, 13.723 up, 13.401 down.
    assert_eq!(
        totals,
        ["0.14", "0.13", "0.42", "0.40", "13.73", "13.40"],
        "{got:?}"
    );
    ex.check();
}

/// Rows a writer flips between; any other DOLLAR row a reader sees is torn.
const A: (&str, &str) = ("1.00", "2.00");
const B: (&str, &str) = ("3.00", "4.00");
/// Quote lines each trade-loop reader asks.
const READS: usize = 20_000;

fn readers_never_see_a_torn_row(b: Backend) {
    let ex = Exchange::init(b, "ex-torn", &[]);
    fn set((buy, sell): (&'static str, &'static str)) -> [&'static str; 7] {
        ["set-rate", "DOLLAR", "--buy", buy, "--sell", sell, "--yes"]
    }
    ex.ok(&set(A));
    let genesis = rows(&ex.quote());
    let a = (micro(A.0), micro(A.1));
    let bb = (micro(B.0), micro(B.1));
    let assert_consistent = |q: &Value, who: &str| {
        let r = rows(q);
        let d = (r["DOLLAR"].0, r["DOLLAR"].1);
        assert!(d == a || d == bb, "{who} saw a torn DOLLAR row {d:?}: {q}");
        assert_eq!(
            r["DOLLAR"].2, genesis["DOLLAR"].2,
            "{who}: stock moved: {q}"
        );
        for code in ["EURO", "STERLIN", "POUND"] {
            assert_eq!(r[code], genesis[code], "{who}: {code} changed: {q}");
        }
        d == a
    };

    // The writer flips for as long as any reader runs, so every read
    // overlaps the flipping.
    let done = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (done, flips) = (done.clone(), flips.clone());
        let args: Vec<Vec<String>> = [A, B].iter().map(|&p| ex.args(&set(p))).collect();
        thread::spawn(move || {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) || n < 2 {
                let o = run_bounded(shmex().args(&args[(n + 1) % 2]), b"");
                assert!(o.status.success(), "set-rate: {}", stderr(&o));
                n += 1;
                flips.store(n, Ordering::Relaxed);
            }
            // End on A.
            if n % 2 == 1 {
                let o = run_bounded(shmex().args(&args[0]), b"");
                assert!(o.status.success(), "set-rate: {}", stderr(&o));
            }
        })
    };
    // A second writer calls the library straight from this process,
    // flipping tens of thousands of times a second with short pauses (so
    // that readers mostly succeed on the seqlock rather than falling back
    // to the lock): this is what would expose a torn read.
    let fast_flips = Arc::new(AtomicUsize::new(0));
    let fast = {
        let (done, fast_flips, id) = (done.clone(), fast_flips.clone(), ex.id.clone());
        thread::spawn(move || {
            let lib = exchange::Exchange::open(&id).expect("open the exchange");
            let e = lib.engine();
            let c = e.currency("DOLLAR").expect("DOLLAR");
            let pairs = [(1_000_000, 2_000_000), (3_000_000, 4_000_000)];
            let mut n = 0;
            while !done.load(Ordering::Relaxed) || n % 2 == 1 {
                let (buy, sell) = pairs[(n + 1) % 2];
                e.set_rate(c, buy, sell).expect("set_rate");
                n += 1;
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(20) {
                    std::hint::spin_loop();
                }
            }
            fast_flips.store(n, Ordering::Relaxed);
        })
    };
    wait_until("the writer flipped the rates once", || {
        flips.load(Ordering::Relaxed) > 0
    });

    // Readers: two trade loops asking `quote` over and over, and one-shot
    // `quote --json` processes.
    let input = "quote\n".repeat(READS);
    let loops: Vec<_> = (0..2)
        .map(|r| {
            let args = ex.args(&[
                "trade",
                "--account",
                &format!("reader{r}"),
                "--open",
                "--json",
            ]);
            let input = input.clone();
            thread::spawn(move || run_bounded(shmex().args(&args), input.as_bytes()))
        })
        .collect();
    let mut one_shots = 0;
    while !loops.iter().all(|l| l.is_finished()) || one_shots < 20 {
        assert_consistent(&ex.quote(), "quote --json");
        one_shots += 1;
    }
    let mut seen = [0usize; 2];
    for l in loops {
        let o = l.join().expect("reader");
        assert!(o.status.success(), "reader: {}", stderr(&o));
        let got = answers(&stdout(&o));
        assert_eq!(got.len(), READS);
        for q in &got {
            assert_eq!(q["ok"], true, "{q}");
            seen[usize::from(assert_consistent(q, "trade loop quote"))] += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    fast.join().expect("library writer");
    writer.join().expect("writer");
    // Not vacuous: the readers saw the writers at work.
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "readers saw only one pair: {seen:?}"
    );
    eprintln!(
        "{} + {} flips, {} one-shot quotes, {} loop quotes ({} B, {} A)",
        flips.load(Ordering::Relaxed),
        fast_flips.load(Ordering::Relaxed),
        one_shots,
        2 * READS,
        seen[0],
        seen[1]
    );
    assert_eq!(dollar_row(&ex.quote()), a);
    ex.check();
}
