//! The trader worker: this binary re-run as `shmex __exchange-worker
//! trader …`, buying and selling through the library as fast as it can.
//! The exchange benchmark runs it to measure, the demo to show trading
//! processes at once, the crash tests to have a trader to kill. Both ends
//! of its command line and of its report live here.

use std::collections::BTreeMap;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use exchange::{CurrencyId, Exchange, OpError};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use shm::SegmentId;

use super::{exe, parse, time};

/// What a trader process does.
#[derive(Clone, Debug)]
pub struct TraderArgs {
    pub account: String,
    pub start_ns: u64,
    pub millis: u64,
    pub seed: u64,
    pub sample: u32,
    pub max_cents: u64,
    /// Deposit home currency when short of it (the demo's traders).
    pub deposits: bool,
}

impl TraderArgs {
    /// The command that starts this trader on the POSIX exchange
    /// `exchange`, its report on a pipe.
    pub fn command(&self, exchange: &str) -> anyhow::Result<Command> {
        let mut cmd = exe::command()?;
        cmd.arg("__exchange-worker")
            .arg("trader")
            .args(self.to_args(exchange))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(cmd)
    }

    fn to_args(&self, exchange: &str) -> Vec<String> {
        let mut v = vec![
            "--exchange".into(),
            exchange.into(),
            "--account".into(),
            self.account.clone(),
            "--start-ns".into(),
            self.start_ns.to_string(),
            "--millis".into(),
            self.millis.to_string(),
            "--seed".into(),
            self.seed.to_string(),
            "--sample".into(),
            self.sample.to_string(),
            "--max-cents".into(),
            self.max_cents.to_string(),
        ];
        if self.deposits {
            v.push("--deposits".into());
        }
        v
    }
}

/// What a trader process reports.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub account: String,
    pub trades: u64,
    pub refused: u64,
    pub deposits: u64,
    pub hold: Vec<(u64, u64)>,
}

impl Report {
    pub fn from_json(v: &Value) -> anyhow::Result<Report> {
        let n = |k: &str| {
            v[k].as_u64()
                .with_context(|| format!("trader report lacks {k}"))
        };
        Ok(Report {
            account: v["account"].as_str().unwrap_or_default().to_owned(),
            trades: n("trades")?,
            refused: n("refused")?,
            deposits: n("deposits")?,
            hold: v["hold"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| Some((p[0].as_u64()?, p[1].as_u64()?)))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Entry point of a trader process:
/// `__exchange-worker trader --exchange NAME|--key K --account A
/// --start-ns T --millis D [--seed S] [--sample N] [--max-cents M] [--deposits]`.
/// Prints one JSON report.
pub fn worker(args: &[String]) -> anyhow::Result<ExitCode> {
    let Some((mode, rest)) = args.split_first() else {
        bail!("__exchange-worker needs a mode: trader");
    };
    if mode != "trader" {
        bail!("__exchange-worker: unknown mode {mode:?}");
    }
    let mut flags: BTreeMap<&str, &str> = BTreeMap::new();
    let mut deposits = false;
    let mut it = rest.iter();
    while let Some(k) = it.next() {
        if k == "--deposits" {
            deposits = true;
            continue;
        }
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        flags.insert(k.as_str(), v.as_str());
    }
    let num = |k: &str, d: Option<u64>| -> anyhow::Result<u64> {
        match flags.get(k) {
            Some(v) => v
                .parse()
                .with_context(|| format!("{k} {v:?} is not a number")),
            None => d.with_context(|| format!("{k} is required")),
        }
    };
    let id = parse::exchange_id(
        flags.get("--exchange").copied(),
        flags.get("--key").copied(),
    )?;
    let t = TraderArgs {
        account: flags
            .get("--account")
            .context("--account is required")?
            .to_string(),
        start_ns: num("--start-ns", Some(0))?,
        millis: num("--millis", None)?,
        seed: num("--seed", Some(1))?,
        sample: num("--sample", Some(0))? as u32,
        max_cents: num("--max-cents", Some(100))?.max(1),
        deposits,
    };
    let report = trade(&id, &t)?;
    let hold: Vec<Value> = report.hold.iter().map(|(v, c)| json!([v, c])).collect();
    println!(
        "{}",
        json!({
            "account": report.account,
            "trades": report.trades,
            "refused": report.refused,
            "deposits": report.deposits,
            "hold": hold,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// The traders' random number generator (the benchmark's peers draw the
/// same trades from it).
pub fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    s.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn refused(e: &OpError) -> bool {
    matches!(
        e,
        OpError::InsufficientStock { .. }
            | OpError::InsufficientBalance { .. }
            | OpError::InsufficientHolding { .. }
            | OpError::TillShort { .. }
    )
}

/// A trader: random buys and sells of random foreign currencies as fast as
/// it can from `start_ns` for `millis`.
fn trade(id: &SegmentId, t: &TraderArgs) -> anyhow::Result<Report> {
    let ex = Exchange::open(id)?;
    let mut e = ex.engine();
    e.sample_hold_times(t.sample);
    let (acct, _) = e.open_account(&t.account)?;
    let foreign = (e.currencies().len() - 1).max(1) as u64;
    let now = time::now_ns();
    if t.start_ns > now {
        std::thread::sleep(Duration::from_nanos(t.start_ns - now));
    }
    let deadline = Instant::now() + Duration::from_millis(t.millis);
    let mut rng = t.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut r = Report {
        account: t.account.clone(),
        ..Report::default()
    };
    let deposit = 500 * exchange::money::pow10(e.decimals(CurrencyId::HOME)).unwrap_or(1);
    let mut n = 0u64;
    loop {
        if n.is_multiple_of(256) && Instant::now() >= deadline {
            break;
        }
        n += 1;
        let x = xorshift(&mut rng);
        let c = CurrencyId::from_index(1 + (x % foreign) as usize);
        let amount = 1 + ((x >> 16) % t.max_cents) as i64;
        let res = if x >> 63 == 0 {
            e.buy(acct, c, amount)
        } else {
            e.sell(acct, c, amount)
        };
        match res {
            Ok(_) => r.trades += 1,
            Err(OpError::InsufficientBalance { .. }) if t.deposits => {
                // A customer short of money brings more.
                r.refused += 1;
                e.deposit(acct, CurrencyId::HOME, deposit)?;
                r.deposits += 1;
                r.trades += 1;
            }
            Err(err) if refused(&err) => r.refused += 1,
            Err(err) => return Err(err.into()),
        }
    }
    let samples = e.take_hold_times();
    if !samples.is_empty() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2)?;
        for s in samples {
            h.saturating_record(u64::from(s).max(1));
        }
        r.hold = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
    }
    Ok(r)
}
