//! The demo's last part, the exchange: a fresh exchange, several trader
//! processes at once, the table and a summary, `check`, a trader killed in
//! the middle of a trade and recovered from, and nothing left behind.

use std::process::Stdio;

use anyhow::bail;
use exchange::{Config, Exchange, OpenError};

use super::Names;
use super::step::step;
use crate::cmd::exchange::show;
use crate::support::plural::plural;
use crate::support::scratch::Scratch;
use crate::support::trader::TraderArgs;
use crate::support::{exe, time};

const TRADERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const SECONDS: u64 = 3;

/// Step 5: a trader process dies holding the lock halfway through a buy;
/// the next process to take the lock rolls the buy back.
fn crash(id: &shm::SegmentId, e: &exchange::Engine<'_>) -> anyhow::Result<()> {
    let shm::SegmentId::Posix(name) = id else {
        bail!("the demo exchange is a POSIX segment");
    };
    let shmex = |args: &[&str], failpoint: Option<&str>| -> anyhow::Result<_> {
        let mut cmd = exe::command()?;
        cmd.args(["exchange", "--exchange", name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(f) = failpoint {
            cmd.env("SHMEX_FAILPOINT", f);
        }
        exe::status(&mut cmd)
    };
    println!(
        "5. kill a trader in the middle of a trade: `open eve` opens an account, then with SHMEX_FAILPOINT=mid-trade, `buy --account eve DOLLAR 10` aborts while it holds the lock, after changing the stock and before the till and eve's balances"
    );
    let opened = shmex(&["open", "eve"], None)?;
    anyhow::ensure!(opened.success(), "opening eve's account failed");
    let before = e.state()?;
    let died = shmex(
        &["buy", "--account", "eve", "DOLLAR", "10"],
        Some("mid-trade"),
    )?;
    anyhow::ensure!(!died.success(), "the trader was meant to die mid-trade");
    println!(
        "     the trader died ({died}); the lock's owner is dead and the stock is half-changed"
    );
    let next = shmex(&["deposit", "--account", "eve", "TRY", "1"], None)?;
    anyhow::ensure!(next.success(), "the next trade failed");
    println!(
        "     the next process to take the lock (a deposit) found its holder dead, rolled the buy back from its undo record, then made its deposit:"
    );
    let state = e.state()?;
    for en in e.journal(Some(2))? {
        println!("     {}", show::entry_text(&state, &en));
    }
    let dollar = |s: &exchange::State| {
        s.currencies
            .iter()
            .find(|c| c.code.as_str() == "DOLLAR")
            .map(|c| c.holding)
    };
    anyhow::ensure!(
        dollar(&before) == dollar(&state),
        "the stock was not restored"
    );
    let violations = state.check();
    if !violations.is_empty() {
        bail!("check failed after the crash: {}", violations.join("; "));
    }
    println!("     the DOLLAR stock is as before the dead buy, and check is ok");
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("     {l}\n")).collect()
}

/// The exchange's part of `shmex demo`. With `--keep`, returns the
/// exchange, for the demo to keep once it has ended well.
pub fn run(names: &Names) -> anyhow::Result<Option<Scratch>> {
    step(
        "The currency exchange: trader processes buy and sell at once against one table in shared memory.",
    );
    let (config, notes) = Config::builtin();
    // The scratch exchange is destroyed and its traders killed when it is
    // dropped, whether the demo ends well or not.
    let (mut scratch, ex) = Scratch::at(names.exchange.clone(), config)?;
    let id = scratch.id.clone();
    println!(
        "1. create a fresh exchange {id} in shared memory from the built-in table (home currency TRY, till 100000.00)"
    );
    for n in &notes {
        println!("   note: {n}");
    }
    let e = ex.engine();
    print!(
        "{}",
        indent(&show::quote_text(&id.to_string(), &e.quote()?))
    );

    println!(
        "2. start {} trader processes (this binary, re-executed) that buy and sell random amounts against the same table for {SECONDS} seconds, all at once",
        TRADERS.len()
    );
    let start_ns = time::now_ns() + 200_000_000;
    for (i, name) in TRADERS.iter().enumerate() {
        scratch.spawn_trader(&TraderArgs {
            account: (*name).into(),
            start_ns,
            millis: SECONDS * 1000,
            seed: 0x5eed + i as u64,
            sample: 0,
            max_cents: 2000,
            deposits: true,
        })?;
    }
    let reports = scratch.reports()?;

    println!(
        "3. what happened: each trader opened an account with 1000.00 TRY and deposited 500.00 TRY whenever short of it; every order was either done whole or refused (short of stock, balance, holding or till)"
    );
    let (mut done, mut refused) = (0u64, 0u64);
    for r in &reports {
        println!(
            "     {:<6} {:>10} done ({} among them) {:>10} refused",
            r.account,
            r.trades,
            plural(r.deposits, "deposit", "deposits"),
            r.refused
        );
        done += r.trades;
        refused += r.refused;
    }
    println!(
        "     total  {done:>10} done, {refused} refused: {:.0} operations a second through one process lock",
        (done + refused) as f64 / SECONDS as f64
    );
    let state = e.state()?;
    print!(
        "{}",
        indent(&show::quote_text(&id.to_string(), &e.quote()?))
    );
    print!("{}", indent(&show::accounts_text(&state)));
    println!("   the last records of the journal:");
    for en in e.journal(Some(3))? {
        println!("     {}", show::entry_text(&state, &en));
    }

    println!(
        "4. check: for every currency, the exchange's holding plus all accounts equals genesis + deposits - withdrawals; nothing is negative; no quote is crossed"
    );
    let violations = state.check();
    if !violations.is_empty() {
        bail!("check failed: {}", violations.join("; "));
    }
    println!("     ok");

    crash(&id, &e)?;

    if names.keep {
        println!("6. with --keep, the exchange stays for you to explore once the demo ends");
        return Ok(Some(scratch));
    }
    println!("6. destroy the exchange: nothing is left behind");
    drop(e);
    ex.remove()?;
    drop(ex);
    drop(scratch);
    match Exchange::open(&id) {
        Err(OpenError::Missing { .. }) => println!("     {id} is gone"),
        _ => bail!("exchange {id} is still there after the demo"),
    }
    Ok(None)
}
