//! The exchange's part of `shmex demo`: a fresh exchange, several trader
//! processes at once, the table and a summary, `check`, and nothing left
//! behind.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use exchange::{Config, Exchange, OpenError};

use super::show;
use crate::bench::exchange::{Scratch, TraderArgs};

const TRADERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const SECONDS: u64 = 3;

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("     {l}\n")).collect()
}

/// The exchange's part of `shmex demo`.
pub fn demo() -> anyhow::Result<()> {
    println!("== the currency exchange");
    // Ctrl-C kills the traders, which fails the demo, which destroys its
    // exchange on the way out.
    shm::sys::catch_termination();
    let (config, notes) = Config::builtin();
    // The scratch exchange is destroyed and its traders killed when it is
    // dropped, whether the demo ends well or not.
    let (mut scratch, ex) = Scratch::new("demo-exchange", config)?;
    let id = scratch.id.clone();
    println!(
        "1. create a fresh exchange {id} in shared memory from the seed's table (home currency TRY, till 100000.00)"
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
    let start_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        + 200_000_000;
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
            "     {:<6} {:>10} done ({} of them deposits) {:>10} refused",
            r.account, r.trades, r.deposits, r.refused
        );
        done += r.trades;
        refused += r.refused;
    }
    println!(
        "     total  {done:>10} done, {refused} refused: {:.0} operations a second through one robust lock",
        (done + refused) as f64 / SECONDS as f64
    );
    let state = e.state()?;
    print!(
        "{}",
        indent(&show::quote_text(&id.to_string(), &e.quote()?))
    );
    print!("{}", indent(&show::accounts_text(&state)));
    println!("   the last records of the journal:");
    for en in e.journal(Some(3)) {
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

    println!("5. destroy the exchange: nothing is left behind");
    drop(e);
    ex.remove()?;
    drop(ex);
    drop(scratch);
    match Exchange::open(&id) {
        Err(OpenError::Missing { .. }) => println!("     {id} is gone"),
        _ => bail!("exchange {id} is still there after the demo"),
    }
    Ok(())
}
