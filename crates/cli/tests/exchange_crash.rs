//! A trader that dies in the middle of a trade leaves the exchange exactly as
//! before it, and never blocks the others.
//!
//! The failpoint test makes a trader abort inside a buy or a sell, after its
//! undo record is written and the stock changed, with the lock held; other
//! processes then read and trade, and the half-done trade is rolled back and
//! journalled. The chaos test SIGKILLs random traders many times during a
//! concurrent run; everyone left finishes and `check` passes.

mod common;
#[path = "common/exchange.rs"]
mod exchange_helpers;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::stderr;
use exchange_helpers::{
    Backend, Exchange, State, answers, balances, micro, micro_at, random_line, rows, seed,
    wait_timeout,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const FAILPOINT: (&str, &str) = ("SHMEX_FAILPOINT", "mid-trade");

/// How the trade that dies is started.
#[derive(Debug, Clone, Copy)]
enum Dying {
    OneShotBuy,
    OneShotSell,
    TradeLoopBuy,
}

#[test]
fn failpoint_buy_posix() {
    failpoint_rolls_back(Backend::Posix, Dying::OneShotBuy);
}

#[test]
fn failpoint_buy_sysv() {
    failpoint_rolls_back(Backend::SysV, Dying::OneShotBuy);
}

#[test]
fn failpoint_sell_posix() {
    failpoint_rolls_back(Backend::Posix, Dying::OneShotSell);
}

#[test]
fn failpoint_sell_sysv() {
    failpoint_rolls_back(Backend::SysV, Dying::OneShotSell);
}

#[test]
fn failpoint_in_trade_loop_posix() {
    failpoint_rolls_back(Backend::Posix, Dying::TradeLoopBuy);
}

#[test]
fn failpoint_in_trade_loop_sysv() {
    failpoint_rolls_back(Backend::SysV, Dying::TradeLoopBuy);
}

fn failpoint_rolls_back(b: Backend, dying: Dying) {
    let ex = Exchange::init(b, "ex-fail", &[]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "20"]);
    ex.ok(&["deposit", "--account", "bob", "TRY", "1"]);
    let before = ex.state();
    let last = before.last_seq().expect("journal has the setup");

    // The trade aborts in the middle, holding the lock.
    let o = match dying {
        Dying::OneShotBuy => {
            run_failpoint(&ex, &["buy", "--account", "alice", "DOLLAR", "10"], b"")
        }
        Dying::OneShotSell => {
            run_failpoint(&ex, &["sell", "--account", "alice", "DOLLAR", "10"], b"")
        }
        Dying::TradeLoopBuy => run_failpoint(
            &ex,
            &["trade", "--account", "alice", "--json"],
            b"quote\nbuy DOLLAR 10\nbuy DOLLAR 1\n",
        ),
    };
    assert_eq!(
        o.status.signal(),
        Some(SIGABRT),
        "the failpoint must abort the trader: {:?} {}",
        o.status,
        stderr(&o)
    );
    if let Dying::TradeLoopBuy = dying {
        // Nothing after the dying buy was answered (the quote's answer may
        // have been lost unflushed).
        let got = answers(&common::stdout(&o));
        assert!(got.len() <= 1, "{got:?}");
    }

    // Readers in other processes neither hang nor see the half-done trade.
    assert_eq!(ex.quote(), before.quote, "quote after the crash");
    assert_eq!(ex.accounts(), before.accounts, "accounts after the crash");

    // The next trade, from another process, recovers and goes through.
    let got = ex.trade("bob", b"buy DOLLAR 1\n");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["ok"], true, "{}", got[0]);
    assert_eq!(got[0]["total"], "13.72");
    ex.check();

    // The journal shows the rollback and no trace of the dead trade.
    let journal = ex.journal();
    let new: Vec<&Value> = journal
        .iter()
        .filter(|r| r["seq"].as_u64().expect("seq") > last)
        .collect();
    let ops: Vec<&str> = new.iter().map(|r| r["op"].as_str().unwrap_or("")).collect();
    assert_eq!(ops, ["rollback", "buy"], "journal after the crash: {new:?}");
    assert_eq!(new[1]["account"], "bob");
    assert_eq!(
        new[0]["seq"].as_u64(),
        Some(last + 1),
        "no gap before the rollback"
    );
    assert_eq!(
        new[1]["seq"].as_u64(),
        Some(last + 2),
        "no gap after the rollback"
    );
    assert_eq!(
        &journal[..journal.len() - 2],
        &before.journal[..],
        "older records untouched"
    );

    // The state is the one before the dead trade, plus bob's buy.
    let mut want = before.clone();
    bob_bought_one_dollar(&mut want);
    assert_eq!(
        ex.quote(),
        want.quote,
        "quote: the dead trade left no trace"
    );
    assert_eq!(
        balances(&ex.accounts()),
        balances(&want.accounts),
        "accounts"
    );

    // And alice can trade again.
    ex.ok(&["sell", "--account", "alice", "DOLLAR", "10"]);
    ex.check();
}

const SIGABRT: i32 = 6;

/// Runs `shmex exchange SUB…` with the failpoint armed and core dumps off,
/// so the abort leaves no core file behind.
fn run_failpoint(ex: &Exchange, sub: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -c 0; exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_shmex"),
    ])
    .args(ex.args(sub))
    .env(FAILPOINT.0, FAILPOINT.1);
    exchange_helpers::run_deadline(&mut cmd, stdin.to_vec(), exchange_helpers::DEADLINE)
}

/// Applies "bob buys 1.00 DOLLAR at 13.72" to a recorded state.
fn bob_bought_one_dollar(s: &mut State) {
    let price = micro("13.72");
    let one = micro("1.00");
    let set = |v: &mut Value, delta: i128| {
        let now = exchange_helpers::micro(v.as_str().expect("decimal string"));
        *v = Value::String(exchange_helpers::cents(now + delta));
    };
    set(&mut s.quote["till"], price);
    for row in s.quote["currencies"].as_array_mut().expect("currencies") {
        if row["code"] == "DOLLAR" {
            set(&mut row["stock"], -one);
        }
    }
    for acc in s.accounts.as_array_mut().expect("accounts") {
        if acc["name"] == "bob" {
            let b = acc["balances"].as_object_mut().expect("balances");
            set(b.get_mut("TRY").expect("TRY"), -price);
            match b.get_mut("DOLLAR") {
                Some(v) => set(v, one),
                None => {
                    b.insert("DOLLAR".into(), Value::String("1.00".into()));
                }
            }
        }
    }
}

// ---- chaos ------------------------------------------------------------------

/// Traders running at once during the chaos.
const CHAOS_TRADERS: usize = 4;
/// Kills during the chaos.
const KILLS: usize = 60;
/// What the last traders and the steady one get to finish: a deadlock
/// detector, not a speed goal.
const FINISH: Duration = Duration::from_secs(60);

/// One trader fed random lines until told to stop.
struct Feeder {
    idx: usize,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    writer: thread::JoinHandle<()>,
    reader: thread::JoinHandle<(usize, String)>,
}

fn start_trader(ex: &mut Exchange, account: &str, seed: u64) -> Feeder {
    let idx = ex.spawn(&["trade", "--account", account, "--json"]);
    let child = ex.child(idx);
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let (s, w) = (stop.clone(), written.clone());
    let writer = thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        while !s.load(Ordering::Relaxed) {
            let mut chunk = String::new();
            for _ in 0..64 {
                chunk.push_str(&random_line(&mut rng, "TRY"));
            }
            if stdin.write_all(chunk.as_bytes()).is_err() {
                return;
            }
            w.fetch_add(64, Ordering::Relaxed);
        }
        // Dropping stdin ends the trader's loop.
    });
    let reader = thread::spawn(move || {
        // Counts well-formed answers; a killed trader may leave half a line.
        let mut n = 0;
        let mut bad = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v["ok"].is_boolean() => n += 1,
                _ => bad = line,
            }
        }
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        if !bad.is_empty() {
            err.push_str(&format!(" (last malformed answer: {bad:?})"));
        }
        (n, err)
    });
    Feeder {
        idx,
        stop,
        written,
        writer,
        reader,
    }
}

#[test]
fn chaos_posix() {
    chaos(Backend::Posix);
}

#[test]
fn chaos_sysv() {
    chaos(Backend::SysV);
}

fn chaos(b: Backend) {
    let mut ex = Exchange::init(b, "ex-chaos", &[]);
    let mut rng = StdRng::seed_from_u64(seed());

    // One trader that is never killed runs through the whole chaos.
    let steady = start_trader(&mut ex, "steady", rng.random());
    let mut traders: Vec<(String, Feeder)> = (0..CHAOS_TRADERS)
        .map(|i| {
            let name = format!("c{i}");
            let f = start_trader(&mut ex, &name, rng.random());
            (name, f)
        })
        .collect();

    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(rng.random_range(0..25)));
        let k = rng.random_range(0..traders.len());
        let (name, f) = &traders[k];
        let child = ex.child(f.idx);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        assert_eq!(
            status.signal(),
            Some(9),
            "{name} died of something else than our SIGKILL: {status:?}"
        );
        let name = name.clone();
        // Its account lives on; a replacement trades on it.
        let f = start_trader(&mut ex, &name, rng.random());
        let (_, old) = std::mem::replace(&mut traders[k], (name, f));
        old.stop.store(true, Ordering::Relaxed);
        let _ = old.writer.join();
        let _ = old.reader.join();
    }

    // Let the survivors finish what they were given; none may hang.
    traders.push(("steady".to_string(), steady));
    for (_, f) in &traders {
        f.stop.store(true, Ordering::Relaxed);
    }
    for (name, f) in traders {
        f.writer.join().expect("writer");
        let status = wait_timeout(ex.child(f.idx), FINISH)
            .unwrap_or_else(|| panic!("{name} did not finish within {FINISH:?}: deadlock?"));
        let (answered, err) = f.reader.join().expect("reader");
        assert!(status.success(), "{name}: {status:?} {err}");
        assert_eq!(
            answered,
            f.written.load(Ordering::Relaxed),
            "{name}: one well-formed answer per line; {err}"
        );
    }

    ex.check();
    let journal = ex.journal();
    for w in journal.windows(2) {
        assert_eq!(
            w[1]["seq"].as_u64(),
            w[0]["seq"].as_u64().map(|s| s + 1),
            "gap in the journal"
        );
    }
    let rollbacks = journal.iter().filter(|r| r["op"] == "rollback").count();
    eprintln!("{KILLS} kills, {rollbacks} rollbacks in the retained journal");

    // Readers and writers still work after all that.
    let q = ex.quote();
    assert!(micro_at(&q, "till") >= 0);
    assert_eq!(rows(&q).len(), 4);
    ex.ok(&["deposit", "--account", "steady", "TRY", "1"]);
    ex.check();
}
