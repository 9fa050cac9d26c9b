//! A trader that dies in the middle of a trade leaves the exchange exactly as
//! before it, and never blocks the others.
//!
//! The failpoint test makes a trader abort inside a buy or a sell, after its
//! undo record is written and the stock changed, with the lock held; other
//! processes then read and trade, and the half-done trade is rolled back and
//! journalled. The chaos test SIGKILLs random traders many times during a
//! concurrent run; everyone left finishes, every answer is one its line may
//! get, `check` passes, and the books hold exactly what an independent
//! ledger of the answers says.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::support::exchange::money::{balances, balances_in, cents, micro, micro_at, rows};
use crate::support::exchange::traffic::{Ledger, Move, check_answer, random_line, seed};
use crate::support::exchange::{
    Backend, Exchange, State, answers, assert_no_gaps, on_both_backends,
};
use crate::support::process::{run_bounded, stderr, stdout};

/// How the operation that dies is started, and at which failpoint.
#[derive(Debug, Clone, Copy)]
enum Dying {
    /// `buy`, aborting after the stock changed (the contract's `mid-trade`).
    OneShotBuy,
    /// `sell` at `mid-trade`.
    OneShotSell,
    /// A buy inside the `trade` loop at `mid-trade`.
    TradeLoopBuy,
    /// `deposit` at `mid-deposit`: the balance changed, not the totals.
    Deposit,
    /// `withdraw` at `mid-deposit`.
    Withdraw,
    /// `set-rate` at `mid-set-rate`: the buy rate changed, not the sell.
    SetRate,
    /// Opening a new account at `mid-open`.
    Open,
    /// A buy at `after-journal`: wholly applied and journalled, but the
    /// undo record not yet cleared; it is undone as a whole.
    AfterJournal,
    /// A buy at `mid-trade`, then the reader that rolls it back dies at
    /// `mid-rollback`; the next one rolls back again.
    MidRollback,
}

macro_rules! failpoint_tests {
    ($($posix:ident, $sysv:ident => $dying:ident;)*) => {
        $(
            #[test]
            fn $posix() {
                failpoint_rolls_back(Backend::Posix, Dying::$dying);
            }
            #[test]
            fn $sysv() {
                failpoint_rolls_back(Backend::SysV, Dying::$dying);
            }
        )*
    };
}

failpoint_tests! {
    failpoint_buy_posix, failpoint_buy_sysv => OneShotBuy;
    failpoint_sell_posix, failpoint_sell_sysv => OneShotSell;
    failpoint_in_trade_loop_posix, failpoint_in_trade_loop_sysv => TradeLoopBuy;
    failpoint_deposit_posix, failpoint_deposit_sysv => Deposit;
    failpoint_withdraw_posix, failpoint_withdraw_sysv => Withdraw;
    failpoint_set_rate_posix, failpoint_set_rate_sysv => SetRate;
    failpoint_open_posix, failpoint_open_sysv => Open;
    failpoint_after_journal_posix, failpoint_after_journal_sysv => AfterJournal;
    failpoint_mid_rollback_posix, failpoint_mid_rollback_sysv => MidRollback;
}

#[track_caller]
fn assert_aborted(o: &std::process::Output) {
    assert_eq!(
        o.status.signal(),
        Some(SIGABRT),
        "the failpoint must abort the process: {:?} {}",
        o.status,
        stderr(o)
    );
}

fn failpoint_rolls_back(b: Backend, dying: Dying) {
    let ex = Exchange::init(b, "ex-fail", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["open", "bob"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "20"]);
    ex.ok(&["deposit", "--account", "bob", "TRY", "1"]);
    let before = ex.state();
    let last = before.last_seq().expect("journal has the setup");

    // The operation aborts in the middle, holding the lock.
    let alice = |args: &[&'static str]| {
        let mut v = vec![args[0], "--account", "alice"];
        v.extend_from_slice(&args[1..]);
        v
    };
    let o = match dying {
        Dying::OneShotBuy | Dying::MidRollback => {
            run_failpoint(&ex, "mid-trade", &alice(&["buy", "DOLLAR", "10"]), b"")
        }
        Dying::OneShotSell => {
            run_failpoint(&ex, "mid-trade", &alice(&["sell", "DOLLAR", "10"]), b"")
        }
        Dying::TradeLoopBuy => run_failpoint(
            &ex,
            "mid-trade",
            &["trade", "--account", "alice", "--json"],
            b"quote\nbuy DOLLAR 10\nbuy DOLLAR 1\n",
        ),
        Dying::Deposit => run_failpoint(&ex, "mid-deposit", &alice(&["deposit", "TRY", "5"]), b""),
        Dying::Withdraw => {
            run_failpoint(&ex, "mid-deposit", &alice(&["withdraw", "TRY", "5"]), b"")
        }
        Dying::SetRate => run_failpoint(
            &ex,
            "mid-set-rate",
            &["set-rate", "DOLLAR", "--buy", "20", "--sell", "21", "--yes"],
            b"",
        ),
        Dying::Open => run_failpoint(&ex, "mid-open", &["open", "newbie"], b""),
        Dying::AfterJournal => {
            run_failpoint(&ex, "after-journal", &alice(&["buy", "DOLLAR", "10"]), b"")
        }
    };
    assert_aborted(&o);
    if let Dying::TradeLoopBuy = dying {
        // Nothing after the dying buy was answered (the quote's answer may
        // have been lost unflushed).
        let got = answers(&stdout(&o));
        assert!(got.len() <= 1, "{got:?}");
    }
    if let Dying::MidRollback = dying {
        // The first reader to find the dead buy dies while rolling it back.
        assert_aborted(&run_failpoint(
            &ex,
            "mid-rollback",
            &["quote", "--json"],
            b"",
        ));
    }

    // Readers in other processes neither hang nor see the half-done trade.
    assert_eq!(ex.quote(), before.quote, "quote after the crash");
    assert_eq!(ex.accounts(), before.accounts, "accounts after the crash");

    // The next trade, from another process, goes through.
    let got = ex.trade("bob", b"buy DOLLAR 1\n");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["ok"], true, "{}", got[0]);
    assert_eq!(got[0]["total"], "13.72");
    ex.check();

    // The journal shows the rollback and no trace of the dead operation.
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

    // The state is the one before the dead operation, plus bob's buy.
    let mut want = before.clone();
    bob_bought_one_dollar(&mut want);
    assert_eq!(
        ex.quote(),
        want.quote,
        "quote: the dead operation left no trace"
    );
    assert_eq!(
        balances(&ex.accounts()),
        balances(&want.accounts),
        "accounts"
    );

    // And everyone can go on: alice trades, newbie opens afresh.
    ex.ok(&["sell", "--account", "alice", "DOLLAR", "10"]);
    ex.ok(&["set-rate", "DOLLAR", "--buy", "13.40", "--sell", "13.72"]);
    let got = ex.trade("newbie", b"balance\n");
    assert_eq!(got[0]["balances"]["TRY"], "1000.00", "{}", got[0]);
    ex.check();
}

const SIGABRT: i32 = 6;

/// Runs `shmex exchange SUB…` with failpoint `point` armed and core dumps
/// off, so the abort leaves no core file behind.
fn run_failpoint(ex: &Exchange, point: &str, sub: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -c 0; exec \"$0\" \"$@\"",
        crate::support::process::bin().to_str().expect("utf-8 path"),
    ])
    .args(ex.args(sub))
    .env("XDG_STATE_HOME", crate::support::state_home())
    .env("SHMEX_FAILPOINT", point);
    run_bounded(&mut cmd, stdin)
}

/// Applies "bob buys 1.00 DOLLAR at 13.72" to a recorded state.
fn bob_bought_one_dollar(s: &mut State) {
    let price = micro("13.72");
    let one = micro("1.00");
    let set = |v: &mut Value, delta: i128| {
        let now = micro(v.as_str().expect("decimal string"));
        *v = Value::String(cents(now + delta));
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

/// Kills at least this many traders.
const KILLS: usize = 60;
/// ... and goes on killing (up to [`MAX_KILLS`]) until this many kills
/// have interrupted a mutation, so that recovery is surely exercised.
const MIN_ROLLBACKS: u64 = 3;
const MAX_KILLS: usize = 400;
/// Home currency each hammer's account is given before it trades: more
/// than buying the exchange's whole stock costs, so a hammer is never
/// short, and needs no deposits the test could not count.
const HAMMER_FUNDS: &str = "10000000";

/// What a trade loop was sent and answered, one line at a time.
#[derive(Default)]
struct Fed {
    /// Every line written; all but perhaps the last answered.
    lines: Vec<String>,
    /// The answers, in order, as read.
    answers: Vec<String>,
    /// What the loop printed after its last answer (nothing, or a fault).
    rest: String,
    stderr: String,
}

/// A `trade` loop fed random lines, each only once the one before is
/// answered: when the loop is killed, at most one line is in flight, so
/// the test knows what it did up to one line, whose effect the next loop
/// on the account pins down.
struct Feeder {
    idx: usize,
    stop: Arc<AtomicBool>,
    feed: thread::JoinHandle<Fed>,
}

/// The first line of every trade loop: its answer shows what the account
/// holds when the loop starts.
const FIRST: &str = "balance\n";

fn start_feeder(ex: &mut Exchange, account: &str, home: &str, seed: u64) -> Feeder {
    let idx = ex.spawn(&["trade", "--account", account, "--open", "--json"]);
    let child = ex.child(idx);
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = child.stderr.take().expect("stderr");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let home = home.to_string();
    let feed = thread::spawn(move || {
        let errors = thread::spawn(move || {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            err
        });
        let mut rng = StdRng::seed_from_u64(seed);
        let mut fed = Fed::default();
        loop {
            let line = if fed.lines.is_empty() {
                FIRST.to_string()
            } else if s.load(Ordering::Relaxed) {
                break;
            } else {
                random_line(&mut rng, &home)
            };
            let sent = stdin.write_all(line.as_bytes()).is_ok();
            fed.lines.push(line);
            let mut answer = String::new();
            if !sent || !matches!(stdout.read_line(&mut answer), Ok(n) if n > 0) {
                break;
            }
            fed.answers.push(answer);
        }
        // Closing stdin ends the loop; whatever else it prints is kept.
        drop(stdin);
        let _ = stdout.read_to_string(&mut fed.rest);
        fed.stderr = errors.join().unwrap_or_default();
        fed
    });
    Feeder { idx, stop, feed }
}

/// A trader process that calls the library in a tight loop (the hidden
/// worker the benchmark uses) for `millis`, without deposits: it spends
/// much of its time holding the lock, so a SIGKILL often lands
/// mid-mutation.
fn start_hammer(ex: &mut Exchange, account: &str, millis: u64, seed: u64) -> usize {
    ex.spawn_worker(account, millis, seed, Stdio::piped(), &[])
}

/// Asserts a hammer that ended by itself did so cleanly, with its report:
/// its refusals were all of short books (it fails on any other error),
/// and it made no deposit.
fn assert_hammer_finished(ex: &mut Exchange, idx: usize, status: std::process::ExitStatus) {
    let child = ex.child(idx);
    let mut out = String::new();
    let mut err = String::new();
    let _ = child.stdout.take().map(|mut o| o.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    assert!(status.success(), "worker: {status:?} {err}");
    let report: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("worker report ({e}): {out:?}"));
    assert!(report["trades"].is_u64(), "{report}");
    assert_eq!(report["deposits"], 0, "{report}");
}

/// Crashed operations rolled back so far, from `watch`'s plain snapshot.
fn recoveries(ex: &Exchange) -> u64 {
    let text = ex.ok(&["watch"]);
    let tag = "crashed operations rolled back: ";
    let at = text
        .find(tag)
        .unwrap_or_else(|| panic!("watch does not show the rollbacks:\n{text}"));
    text[at + tag.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable rollback count:\n{text}"))
}

enum Slot {
    Loop(String, Feeder),
    Hammer(String, usize),
}

/// Every trade loop that ran on each account, in order; the last one ran
/// to the end, the others were killed.
type Runs = BTreeMap<String, Vec<Fed>>;

/// Rebuilds, in `ledger`, what the trade loops on `account` moved: every
/// answer is checked against its line and added up; the one line a killed
/// loop left unanswered either took effect whole or not at all, which the
/// next loop's first `balance` tells. Each such `balance` must show
/// exactly what the ledger says the account holds. Returns how many
/// mutations lost their answer, and how many of those were done.
fn reconcile_loops(
    ledger: &mut Ledger,
    account: &str,
    runs: &[Fed],
    home: &str,
    rates: &BTreeMap<String, (i128, i128, i128)>,
    opening: i128,
) -> (usize, usize) {
    // A mutation whose answer was lost with its loop.
    let mut unknown: Option<Move> = None;
    let (mut lost_n, mut done_n) = (0, 0);
    for (n, fed) in runs.iter().enumerate() {
        let what = format!("{account}'s trade loop #{n}");
        assert_eq!(fed.rest, "", "{what} printed more than its answers");
        assert_eq!(fed.stderr, "", "{what} complained");
        for (i, (line, raw)) in fed.lines.iter().zip(&fed.answers).enumerate() {
            assert!(
                raw.ends_with('\n'),
                "{what}: half an answer to {line:?}: {raw:?}"
            );
            let a: Value = serde_json::from_str(raw)
                .unwrap_or_else(|e| panic!("{what}: answer to {line:?} ({e}): {raw:?}"));
            check_answer(account, line, &a);
            if i == 0 {
                assert_eq!(a["ok"], true, "{what}: {a}");
                let mut have = balances_in(&a["balances"]);
                have.retain(|_, v| *v != 0);
                let lost = unknown.take();
                if let Some(m) = &lost {
                    let mut done = ledger.clone();
                    done.apply_move(account, home, m);
                    if have == done.holds(account, home, opening) {
                        *ledger = done;
                        done_n += 1;
                    }
                }
                assert_eq!(
                    have,
                    ledger.holds(account, home, opening),
                    "{what} finds the account as the answers left it (or with the killed \
                     loop's last line, {lost:?}, done whole)"
                );
            }
            ledger.apply(account, home, &a);
        }
        assert!(
            fed.lines.len() - fed.answers.len() <= 1,
            "{what}: more than one line in flight"
        );
        if fed.lines.len() > fed.answers.len() {
            let line = fed.lines.last().expect("a line");
            if let Some(m) = Move::of_line(line, rates) {
                assert!(unknown.is_none(), "{what}: two lines of unknown effect");
                unknown = Some(m);
                lost_n += 1;
            }
        }
    }
    assert!(
        unknown.is_none(),
        "{account}: the last loop's line {unknown:?} is unanswered"
    );
    (lost_n, done_n)
}

on_both_backends!(chaos);

/// On a memory-only exchange: kills must land inside operations, where a
/// durable trader rarely is (it waits for the disk outside the lock); the
/// durable side of crashes is `exchange_durable_crash`'s.
fn chaos(b: Backend) {
    let mut ex = Exchange::init(b, "ex-chaos", &["--no-journal"]);
    let mut rng = StdRng::seed_from_u64(seed());
    let genesis = ex.quote();
    let home = genesis["home"].as_str().expect("home").to_string();
    let rates = rows(&genesis);

    // One trader that is never killed runs through the whole chaos.
    let steady = start_feeder(&mut ex, "steady", &home, rng.random());
    // Two trade loops and two library hammers get killed and replaced,
    // each replacement on the same account.
    let mut slots = Vec::new();
    let mut hammers = Vec::new();
    for i in 0..2 {
        let name = format!("c{i}");
        let f = start_feeder(&mut ex, &name, &home, rng.random());
        slots.push(Slot::Loop(name, f));
        let name = format!("w{i}");
        ex.ok(&["open", &name]);
        ex.ok(&["deposit", "--account", &name, &home, HAMMER_FUNDS]);
        hammers.push(name.clone());
        let h = start_hammer(&mut ex, &name, rng.random_range(500..3000), rng.random());
        slots.push(Slot::Hammer(name, h));
    }
    let mut runs = Runs::new();

    let mut kills = 0;
    let mut rolled_back = 0;
    while kills < KILLS || (rolled_back < MIN_ROLLBACKS && kills < MAX_KILLS) {
        thread::sleep(Duration::from_millis(rng.random_range(5..40)));
        let k = rng.random_range(0..slots.len());
        let idx = match &slots[k] {
            Slot::Loop(_, f) => f.idx,
            Slot::Hammer(_, h) => *h,
        };
        if let Ok(Some(st)) = ex.child(idx).try_wait() {
            // A hammer whose time ran out: no kill; start another.
            let Slot::Hammer(name, _) = &slots[k] else {
                panic!("a trade loop ended by itself: {st:?}");
            };
            let name = name.clone();
            assert_hammer_finished(&mut ex, idx, st);
            let h = start_hammer(&mut ex, &name, rng.random_range(500..3000), rng.random());
            slots[k] = Slot::Hammer(name, h);
            continue;
        }
        let child = ex.child(idx);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        if status.signal() != Some(9) {
            // It ended by itself between try_wait and kill.
            let Slot::Hammer(..) = &slots[k] else {
                panic!("a trade loop ended by itself: {status:?}");
            };
            assert_hammer_finished(&mut ex, idx, status);
        } else {
            kills += 1;
        }
        // Its account lives on; a replacement trades on it.
        let replacement = match &slots[k] {
            Slot::Loop(name, _) => {
                let name = name.clone();
                let f = start_feeder(&mut ex, &name, &home, rng.random());
                Slot::Loop(name, f)
            }
            Slot::Hammer(name, _) => {
                let name = name.clone();
                let h = start_hammer(&mut ex, &name, rng.random_range(500..3000), rng.random());
                Slot::Hammer(name, h)
            }
        };
        if let Slot::Loop(name, old) = std::mem::replace(&mut slots[k], replacement) {
            let fed = old.feed.join().expect("feeder");
            runs.entry(name).or_default().push(fed);
        }
        if kills >= KILLS && kills % 10 == 0 {
            rolled_back = recoveries(&ex);
        }
    }
    rolled_back = recoveries(&ex);
    eprintln!("{kills} kills, {rolled_back} crashed operations rolled back");
    assert!(
        rolled_back >= MIN_ROLLBACKS,
        "{kills} kills, but only {rolled_back} rollbacks: recovery was hardly exercised"
    );

    // Let the survivors finish what they were given; none may hang.
    slots.push(Slot::Loop("steady".to_string(), steady));
    for s in &slots {
        if let Slot::Loop(_, f) = s {
            f.stop.store(true, Ordering::Relaxed);
        }
    }
    for s in slots {
        match s {
            Slot::Loop(name, f) => {
                let status = ex.finish(f.idx, &name);
                let fed = f.feed.join().expect("feeder");
                assert!(status.success(), "{name}: {status:?} {}", fed.stderr);
                assert_eq!(
                    fed.answers.len(),
                    fed.lines.len(),
                    "{name}: one answer per line; {}",
                    fed.stderr
                );
                runs.entry(name).or_default().push(fed);
            }
            Slot::Hammer(name, idx) => {
                let status = ex.finish(idx, &name);
                assert_hammer_finished(&mut ex, idx, status);
            }
        }
    }

    ex.check();
    assert_no_gaps(&ex.journal(), "the journal");

    // An independent ledger: what the trade loops' answers add up to, and
    // the hammers' funds; the books must show exactly that.
    let opening = micro("1000.00");
    let mut ledger = Ledger::default();
    let (mut lost, mut done) = (0, 0);
    for (account, fed) in &runs {
        let (l, d) = reconcile_loops(&mut ledger, account, fed, &home, &rates, opening);
        (lost, done) = (lost + l, done + d);
    }
    let mut acc = balances(&ex.accounts());
    for b in acc.values_mut() {
        b.retain(|_, v| *v != 0);
    }
    let names: Vec<&String> = acc.keys().collect();
    assert_eq!(names, ["c0", "c1", "steady", "w0", "w1"], "the accounts");
    for account in runs.keys() {
        assert_eq!(
            acc[account],
            ledger.holds(account, &home, opening),
            "{account} holds what its loops' answers say"
        );
    }
    // The hammers only trade: what their accounts gained the exchange
    // lost, and the other way round.
    let funds = micro(HAMMER_FUNDS);
    let q = ex.quote();
    let mut want_till =
        micro_at(&genesis, "till") + ledger.exchange.get(&home).copied().unwrap_or(0);
    for h in &hammers {
        want_till += opening + funds - acc[h].get(&home).copied().unwrap_or(0);
    }
    assert_eq!(micro_at(&q, "till"), want_till, "the till");
    for (code, (_, _, stock)) in rows(&q) {
        let mut want = rates[&code].2 + ledger.exchange.get(&code).copied().unwrap_or(0);
        for h in &hammers {
            want -= acc[h].get(&code).copied().unwrap_or(0);
        }
        assert_eq!(stock, want, "the stock of {code}");
    }
    eprintln!(
        "{} trade loops, {} mutations answered or pinned down ({lost} answers lost, \
         {done} of those done)",
        runs.values().map(Vec::len).sum::<usize>(),
        ledger.mutations
    );

    // Readers and writers still work after all that.
    ex.ok(&["deposit", "--account", "steady", &home, "1"]);
    ex.check();
}
