//! `shmex exchange …`: the currency exchange of the seed, made safe.
//!
//! The exchange lives in a POSIX segment (`--exchange NAME`, env
//! `SHMEX_EXCHANGE`, default `shmex-exchange`) or a System V one
//! (`--key K`).

pub mod show;
mod trade;
mod watch;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use exchange::money::{self, Rate};
use exchange::{
    Capacity, Config, CurrencyId, Engine, Exchange, OpError, OpenError, Order, SnapshotError,
    TableError,
};
use shm::SegmentId;

use crate::support::error::BadInput;
use crate::support::owners::AllowOwner;
use crate::support::parse::{exchange_id, parse_mode};
use crate::support::time::now_ns;
use show::describe;
use trade::{InputError, parse_order};
use watch::WatchArgs;

/// Flags of `shmex exchange`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A customer buys CODE at the exchange's sell rate (the price rounds up) and sells at its buy rate (the proceeds round down); quotes always satisfy 0 < buy <= sell. Amounts are plain decimals with at most the currency's decimals (2 unless configured).\n\nExit status: 0 ok, 1 refused (insufficient stock, balance, holding or till; missing exchange; lock unusable), 2 bad input."
)]
pub struct Args {
    /// POSIX name of the exchange's segment [env: SHMEX_EXCHANGE] [default: shmex-exchange].
    #[arg(long, global = true, value_name = "NAME")]
    pub exchange: Option<String>,
    /// Put the exchange in the System V segment with this key instead (5678, 0x162e).
    #[arg(long, global = true, value_name = "K", allow_hyphen_values = true)]
    pub key: Option<String>,
    #[command(flatten)]
    pub owners: AllowOwner,
    #[command(subcommand)]
    pub command: Sub,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Create the exchange: the built-in table (the seed's, uncrossed) or a TOML table
    ///
    /// The built-in table is the seed's init[]: DOLLAR, EURO, STERLIN and POUND with their
    /// rates and stock (two crossed rows have their rates swapped, and init says so), home
    /// currency TRY, till 100000.00, opening balance 1000.00.
    ///
    /// A table file (decimals as strings; every field but code, buy, sell and stock optional):
    ///
    ///     home = "TRY"
    ///     till = "100000.00"
    ///     opening = "1000.00"
    ///     [[currency]]
    ///     code = "DOLLAR"
    ///     buy = "13.40"
    ///     sell = "13.72"
    ///     stock = "10000"
    ///     decimals = 2
    #[command(verbatim_doc_comment)]
    Init(InitArgs),
    /// Print the quotes, the stock and the till.
    Quote(JsonFlag),
    /// Trade from stdin, one command a line: buy|sell|deposit|withdraw CODE AMOUNT, quote, balance, help, quit.
    ///
    /// Every line gets one answer line; a refused or malformed line gets an error line, changes
    /// nothing, and the loop goes on. With --json every answer is one object:
    /// {"ok":true,"op":"buy","account":"alice","code":"DOLLAR","amount":"100.00","rate":"13.72",
    /// "total":"1372.00","seq":17}, or {"ok":false,"error":"..."}. Lines longer than 1024 bytes
    /// or not UTF-8 are refused. A new account opens, with the opening balance, when the loop starts.
    Trade(TradeArgs),
    /// Buy AMOUNT of CODE at the exchange's sell rate.
    Buy(OneShot),
    /// Sell AMOUNT of CODE at the exchange's buy rate.
    Sell(OneShot),
    /// Pay AMOUNT of CODE into the account.
    Deposit(OneShot),
    /// Take AMOUNT of CODE out of the account.
    Withdraw(OneShot),
    /// Set the rates of CODE (0 < buy <= sell).
    SetRate(SetRateArgs),
    /// List the accounts and their balances.
    Accounts(JsonFlag),
    /// Print the journal (the newest records the ring still holds).
    Journal(JournalArgs),
    /// Verify conservation for every currency, non-negativity and the quotes; exit 1 on any violation.
    Check(JsonFlag),
    /// A live board in the terminal (q or Ctrl-C quits); one plain snapshot when stdout is not a terminal.
    Watch(WatchArgs),
    /// Write the whole exchange to FILE (versioned TOML).
    Snapshot(FileArg),
    /// Recreate the exchange from a snapshot FILE; refuses a file that fails validation or check.
    Restore(RestoreArgs),
    /// Remove the exchange.
    Destroy,
}

/// `--json`.
#[derive(Debug, clap::Args)]
pub struct JsonFlag {
    /// Print JSON (decimals as strings).
    #[arg(long)]
    pub json: bool,
}

/// Flags of `init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Read the table from this TOML file instead of the built-in one.
    #[arg(long, value_name = "FILE.toml")]
    pub table: Option<PathBuf>,
    /// Room for this many accounts [default: 1024].
    #[arg(long, value_name = "N")]
    pub accounts: Option<usize>,
    /// Room for this many currencies, the home currency included [default: 16].
    #[arg(long, value_name = "N")]
    pub currencies: Option<usize>,
    /// Journal records kept before the oldest are overwritten [default: 8192].
    #[arg(long, value_name = "N")]
    pub journal: Option<usize>,
    /// Home currency code [default: TRY].
    #[arg(long, value_name = "CODE")]
    pub home: Option<String>,
    /// Opening balance of a new account, in home currency [default: 1000.00].
    #[arg(long, value_name = "AMOUNT")]
    pub opening: Option<String>,
    /// Permission bits of the segment.
    #[arg(long, value_name = "MODE", default_value = "0600")]
    pub mode: String,
    /// Replace an existing exchange.
    #[arg(long)]
    pub force: bool,
}

/// Flags of `trade`.
#[derive(Debug, clap::Args)]
pub struct TradeArgs {
    /// The account to trade for (opened when the loop starts, if new).
    #[arg(long, value_name = "NAME")]
    pub account: String,
    /// Answer every line with one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `buy`, `sell`, `deposit` and `withdraw`.
#[derive(Debug, clap::Args)]
pub struct OneShot {
    /// The account. A new one opens with the opening balance, but only
    /// if the order is accepted: a refused order opens nothing.
    #[arg(long, value_name = "NAME")]
    pub account: String,
    /// Currency code.
    pub code: String,
    /// Amount, e.g. 100 or 12.50.
    #[arg(allow_hyphen_values = true)]
    pub amount: String,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `set-rate`.
#[derive(Debug, clap::Args)]
pub struct SetRateArgs {
    /// Currency code.
    pub code: String,
    /// Rate at which the exchange buys CODE (home per unit, up to 6 decimals).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub buy: String,
    /// Rate at which the exchange sells CODE.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub sell: String,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `journal`.
#[derive(Debug, clap::Args)]
pub struct JournalArgs {
    /// Only the last N records.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A file argument.
#[derive(Debug, clap::Args)]
pub struct FileArg {
    /// The file.
    pub file: PathBuf,
}

/// Flags of `restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// Replace an existing exchange.
    #[arg(long)]
    pub force: bool,
    /// Permission bits of the segment.
    #[arg(long, value_name = "MODE", default_value = "0600")]
    pub mode: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let id = exchange_id(args.exchange.as_deref(), args.key.as_deref())?;
    args.owners.apply()?;
    match args.command {
        Sub::Init(a) => init(&id, &a),
        Sub::Quote(a) => quote(&id, a.json),
        Sub::Trade(a) => trade::run(&id, &a.account, a.json),
        Sub::Buy(a) => one_shot(&id, Order::Buy, &a),
        Sub::Sell(a) => one_shot(&id, Order::Sell, &a),
        Sub::Deposit(a) => one_shot(&id, Order::Deposit, &a),
        Sub::Withdraw(a) => one_shot(&id, Order::Withdraw, &a),
        Sub::SetRate(a) => set_rate(&id, &a),
        Sub::Accounts(a) => accounts(&id, a.json),
        Sub::Journal(a) => journal(&id, a.tail, a.json),
        Sub::Check(a) => check(&id, a.json),
        Sub::Watch(a) => watch::run(&id, &a),
        Sub::Snapshot(a) => snapshot(&id, &a.file),
        Sub::Restore(a) => restore(&id, &a),
        Sub::Destroy => destroy(&id),
    }
}

/// Exit status for this layer's library errors, if `cause` is one.
pub fn exit_code_for(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(e) = cause.downcast_ref::<OpError>() {
        return Some(if e.is_bad_input() { 2 } else { 1 });
    }
    if let Some(e) = cause.downcast_ref::<OpenError>() {
        return Some(match e {
            OpenError::Invalid(_) | OpenError::Failpoint(_) => 2,
            OpenError::Segment(shm::Error::Invalid(_) | shm::Error::OutOfBounds(_)) => 2,
            _ => 1,
        });
    }
    if cause.is::<InputError>()
        || cause.is::<TableError>()
        || cause.is::<SnapshotError>()
        || cause.is::<money::MoneyError>()
    {
        return Some(2);
    }
    None
}

fn init(id: &SegmentId, a: &InitArgs) -> anyhow::Result<ExitCode> {
    let (mut config, notes) = match &a.table {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| BadInput(format!("cannot read table {}: {e}", path.display())))?;
            let c = Config::from_toml(&text)
                .map_err(|e| BadInput(format!("table {}: {e}", path.display())))?;
            (c, Vec::new())
        }
        None => Config::builtin(),
    };
    if let Some(h) = &a.home {
        config.home = exchange::Code::new(h).map_err(|e| BadInput(e.to_string()))?;
    }
    if let Some(o) = &a.opening {
        config.opening = money::parse_value(o, config.home_decimals)
            .map_err(|e| BadInput(format!("--opening: {e}")))?;
    }
    let d = config.capacity;
    config.capacity = Capacity {
        accounts: a.accounts.unwrap_or(d.accounts),
        currencies: a.currencies.unwrap_or(d.currencies),
        journal: a.journal.unwrap_or(d.journal),
    };
    let mode = parse_mode(&a.mode)?;
    let state = config.into_state()?;
    let ex = match Exchange::create(id, &state, &[], mode) {
        Err(OpenError::Exists { .. }) if a.force => {
            replace(id)?;
            Exchange::create(id, &state, &[], mode)?
        }
        r => r?,
    };
    let cap = ex.capacity();
    let home = state.home();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "created exchange {}: home currency {}, till {}, opening balance {}, {} foreign currencies; room for {} accounts, {} currencies, {} journal records",
        describe(id),
        home.code,
        home.amount(home.holding),
        home.amount(state.opening),
        state.currencies.len() - 1,
        cap.accounts,
        cap.currencies,
        cap.journal
    )?;
    for n in notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn quote(id: &SegmentId, json: bool) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let rows = ex.engine().quote()?;
    let text = if json {
        let mut s = String::from("{");
        show::quote_fields(&mut s, &rows);
        s.push_str("}\n");
        s
    } else {
        show::quote_text(&describe(id), &rows)
    };
    shm::check_mappings()?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn one_shot(id: &SegmentId, order: Order, a: &OneShot) -> anyhow::Result<ExitCode> {
    // The exchange judges the account name and the order before anything
    // changes, and opens a new account only if the order is accepted: a
    // bad or refused order changes nothing.
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let request = parse_order(order, &a.code, &a.amount, &e.currencies())?;
    let r = request.apply_as(&e, &a.account)?;
    let mut line = String::new();
    trade::answer(&mut line, &e, &a.account, &r, a.json);
    shm::check_mappings()?;
    std::io::stdout().lock().write_all(line.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn set_rate(id: &SegmentId, a: &SetRateArgs) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let c = currency(&e, &a.code)?;
    let buy = money::parse_rate(&a.buy).map_err(|err| BadInput(format!("--buy: {err}")))?;
    let sell = money::parse_rate(&a.sell).map_err(|err| BadInput(format!("--sell: {err}")))?;
    let r = e.set_rate(c, buy, sell)?;
    let code = e.code(c);
    let text = if a.json {
        format!(
            "{{\"ok\":true,\"op\":\"set-rate\",\"code\":\"{code}\",\"buy\":\"{}\",\"sell\":\"{}\",\"seq\":{}}}\n",
            Rate(buy),
            Rate(sell),
            r.seq
        )
    } else {
        format!(
            "{code}: the exchange now buys at {} and sells at {} (seq {})\n",
            Rate(buy),
            Rate(sell),
            r.seq
        )
    };
    shm::check_mappings()?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The currency named `code`, or an error listing the ones there are.
fn currency(e: &Engine<'_>, code: &str) -> Result<CurrencyId, InputError> {
    e.currency(code)
        .ok_or_else(|| InputError::unknown_currency(code, &e.currencies()))
}

fn accounts(id: &SegmentId, json: bool) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let state = ex.engine().state()?;
    let text = if json {
        show::accounts_json(&state) + "\n"
    } else {
        show::accounts_text(&state)
    };
    shm::check_mappings()?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn journal(id: &SegmentId, tail: Option<usize>, json: bool) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let state = e.state()?;
    let entries = e.journal(tail);
    shm::check_mappings()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        out.write_all(b"[")?;
        for (i, en) in entries.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(show::entry_json(&state, en).as_bytes())?;
        }
        out.write_all(b"]\n")?;
    } else if entries.is_empty() {
        writeln!(out, "the journal is empty")?;
    } else {
        for en in &entries {
            writeln!(out, "{}", show::entry_text(&state, en))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn check(id: &SegmentId, json: bool) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let state = e.state()?;
    let violations = state.check();
    shm::check_mappings()?;
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<String> = violations.iter().map(|v| show::js(v)).collect();
        writeln!(
            out,
            "{{\"ok\":{},\"violations\":[{}]}}",
            violations.is_empty(),
            list.join(",")
        )?;
    } else if violations.is_empty() {
        writeln!(
            out,
            "ok: {} currencies balance across {} accounts (holdings + accounts = genesis + deposits - withdrawals); nothing is negative; every quote has 0 < buy <= sell",
            state.currencies.len(),
            state.accounts.len()
        )?;
    } else {
        for v in &violations {
            writeln!(out, "violation: {v}")?;
        }
    }
    if violations.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "shmex: check of exchange {id} found {} violation{}: {}",
            violations.len(),
            if violations.len() == 1 { "" } else { "s" },
            violations[0]
        );
        Ok(ExitCode::from(1))
    }
}

fn snapshot(id: &SegmentId, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let (state, journal) = e.snapshot()?;
    shm::check_mappings()?;
    let text = exchange::snapshot::to_toml(&state, &journal, now_ns());
    // Write beside the target, then rename: a crash never leaves half a file.
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text.as_bytes())
        .with_context(|| format!("cannot write snapshot {}", file.display()))?;
    if let Err(err) = std::fs::rename(&tmp, file) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("cannot write snapshot {}", file.display()));
    }
    println!(
        "wrote exchange {} to {}: {} currencies, {} accounts, {} journal records (next seq {})",
        describe(id),
        file.display(),
        state.currencies.len(),
        state.accounts.len(),
        journal.len(),
        state.next_seq
    );
    Ok(ExitCode::SUCCESS)
}

fn restore(id: &SegmentId, a: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let mode = parse_mode(&a.mode)?;
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| BadInput(format!("cannot read snapshot {}: {e}", a.file.display())))?;
    let (state, journal) = exchange::snapshot::from_toml(&text)
        .with_context(|| format!("refusing to restore from {}", a.file.display()))?;
    let create = || {
        Exchange::create(id, &state, &journal, mode)
            .with_context(|| format!("refusing to restore from {}", a.file.display()))
    };
    match Exchange::create(id, &state, &journal, mode) {
        Err(OpenError::Exists { .. }) if a.force => {
            replace(id)?;
            create()?;
        }
        Err(e @ OpenError::Invalid(_)) => {
            return Err(e)
                .with_context(|| format!("refusing to restore from {}", a.file.display()));
        }
        r => {
            r?;
        }
    }
    println!(
        "restored exchange {} from {}: {} currencies, {} accounts, {} journal records (next seq {})",
        describe(id),
        a.file.display(),
        state.currencies.len(),
        state.accounts.len(),
        journal.len(),
        state.next_seq
    );
    Ok(ExitCode::SUCCESS)
}

/// Removes the exchange at `id` for `--force`: a sound one, or one whose
/// contents are corrupted; never a segment of another kind.
fn replace(id: &SegmentId) -> anyhow::Result<()> {
    match Exchange::destroy(id) {
        Ok(()) | Err(OpenError::Missing { .. }) => Ok(()),
        Err(OpenError::Corrupt { .. }) => Ok(shm::Segment::remove(id)?),
        Err(e) => Err(e).context("cannot replace the existing exchange"),
    }
}

fn destroy(id: &SegmentId) -> anyhow::Result<ExitCode> {
    Exchange::destroy(id)?;
    println!("destroyed exchange {}", describe(id));
    Ok(ExitCode::SUCCESS)
}
