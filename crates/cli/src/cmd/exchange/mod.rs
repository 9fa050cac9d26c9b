//! `shmex exchange …`: the currency exchange of the seed, made safe.
//!
//! The exchange lives in a POSIX segment (`--exchange NAME`, env
//! `SHMEX_EXCHANGE`, default `shmex-exchange`) or a System V one
//! (`--key K`).

mod codes;
mod durable;
mod files;
mod holders;
mod journal;
mod order;
mod refusal;
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
use crate::support::plural::plural;
use files::{FileArg, RestoreArgs};
use journal::JournalArgs;
use order::{InputError, parse_order};
use refusal::Refusal;
use show::describe;
use watch::WatchArgs;

/// Flags of `shmex exchange`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A customer buys CODE at the exchange's sell rate (the price rounds up) and sells at its buy rate (the proceeds round down); quotes always satisfy 0 < buy <= sell. Amounts are plain decimals with at most the currency's decimals (2 unless configured).\n\nAccounts are opened with `open NAME` (or `trade --account NAME --open`), never by an order: an order for a name that is not open is refused.\n\nWith --json, every outcome is one JSON object on stdout, a failure too: {\"ok\":false,\"code\":\"insufficient_holding\",\"error\":\"...\"} (the README lists the codes).\n\nExit status: 0 ok, 1 refused (insufficient stock, balance, holding or till; unknown account; missing or corrupted exchange; lock held past SHMEX_LOCK_TIMEOUT), 2 bad input, 128 + N a wait for the lock ended by signal N."
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
    /// Open account NAME with the opening balance (journalled as an `open`).
    Open(AccountArgs),
    /// Close account NAME, which must hold nothing; its name is free again.
    Close(AccountArgs),
    /// Print the quotes, the stock and the till.
    Quote(JsonFlag),
    /// Trade from stdin, one command a line: buy|sell|deposit|withdraw CODE AMOUNT, quote, balance, help, quit.
    ///
    /// Every line gets one answer line; a refused or malformed line gets an error line, changes
    /// nothing, and the loop goes on. With --json every answer is one object:
    /// {"ok":true,"op":"buy","account":"alice","code":"DOLLAR","amount":"100.00","rate":"13.72",
    /// "total":"1372.00","seq":17}, or {"ok":false,"code":"...","error":"..."}. Lines longer than
    /// 1024 bytes or not UTF-8 are refused. The account must be open, or --open opens it when the
    /// loop starts. The loop stops (exit 1) if the exchange is removed.
    Trade(TradeArgs),
    /// Buy AMOUNT of CODE at the exchange's sell rate.
    Buy(OneShot),
    /// Sell AMOUNT of CODE at the exchange's buy rate.
    Sell(OneShot),
    /// Pay AMOUNT of CODE into the account.
    Deposit(OneShot),
    /// Take AMOUNT of CODE out of the account.
    Withdraw(OneShot),
    /// Set the rates of CODE, one side or both (0 < buy <= sell); prints old -> new.
    SetRate(SetRateArgs),
    /// List the accounts and their balances.
    Accounts(JsonFlag),
    /// Print the history: from the journal on disk (a memory-only exchange: what its ring holds), filtered; --follow for new records.
    Journal(JournalArgs),
    /// Verify conservation for every currency, non-negativity and the quotes; exit 1 on any violation.
    Check(JsonFlag),
    /// A live board in the terminal (q or Ctrl-C quits); one plain snapshot when stdout is not a
    /// terminal; --json prints one snapshot a line.
    Watch(WatchArgs),
    /// Write the whole exchange to FILE (versioned TOML, mode 0600); `-` is stdout.
    Snapshot(FileArg),
    /// Recreate the exchange from a snapshot FILE (`-` is stdin); refuses a file that fails validation or check.
    Restore(RestoreArgs),
    /// Remove the exchange; refused while processes are attached, unless --force. The journal
    /// on disk is kept (checkpointed), and its place printed; --purge removes it too (also a
    /// journal kept by an earlier destroy, once the exchange is gone).
    Destroy(DestroyArgs),
    /// Rebuild the exchange's segment from its journal on disk (after a reboot, or once the
    /// segment was removed): the newest valid checkpoint and every record after it.
    ///
    /// Refuses if the segment exists. A torn last record (a write cut short by a crash, never
    /// acknowledged) is cut off and reported. A bad record in the middle of the journal stops it,
    /// naming the file and offset, and changes nothing, unless --keep-good-prefix.
    Recover(durable::RecoverArgs),
}

impl Sub {
    /// Whether the command answers in JSON, its failures too.
    fn json(&self) -> bool {
        match self {
            Sub::Open(a) | Sub::Close(a) => a.json,
            Sub::Quote(a) | Sub::Accounts(a) | Sub::Check(a) => a.json,
            Sub::Trade(a) => a.json,
            Sub::Buy(a) | Sub::Sell(a) | Sub::Deposit(a) | Sub::Withdraw(a) => a.json,
            Sub::SetRate(a) => a.json,
            Sub::Journal(a) => a.json,
            Sub::Watch(a) => a.json,
            Sub::Init(_)
            | Sub::Snapshot(_)
            | Sub::Restore(_)
            | Sub::Destroy(_)
            | Sub::Recover(_) => false,
        }
    }
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
    /// Journal records the ring in memory keeps for readers [default: 8192].
    #[arg(long, value_name = "N")]
    pub ring: Option<usize>,
    /// Home currency code [default: TRY].
    #[arg(long, value_name = "CODE")]
    pub home: Option<String>,
    /// Opening balance of a new account, in home currency [default: 1000.00].
    #[arg(long, value_name = "AMOUNT")]
    pub opening: Option<String>,
    /// Permission bits of the segment.
    #[arg(long, value_name = "MODE", default_value = "0600")]
    pub mode: String,
    /// Replace an existing exchange (and the journal in the journal directory).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub disk: durable::JournalFlags,
}

/// Flags of `open` and `close`.
#[derive(Debug, clap::Args)]
pub struct AccountArgs {
    /// The account: 1 to 32 characters from A-Z, a-z, 0-9, '_', '.' and '-'.
    pub name: String,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `trade`.
#[derive(Debug, clap::Args)]
pub struct TradeArgs {
    /// The account to trade for; it must be open (see --open).
    #[arg(long, value_name = "NAME")]
    pub account: String,
    /// Open the account when the loop starts, if it is not open yet.
    #[arg(long)]
    pub open: bool,
    /// Answer every line with one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `buy`, `sell`, `deposit` and `withdraw`.
#[derive(Debug, clap::Args)]
pub struct OneShot {
    /// The account, which must be open (`shmex exchange open NAME`).
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

/// How far a rate may move before `set-rate` asks for `--yes`, in percent.
const RATE_MOVE_LIMIT: u32 = 10;

/// Flags of `set-rate`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("side").required(true).multiple(true).args(["buy", "sell"])))]
pub struct SetRateArgs {
    /// Currency code.
    pub code: String,
    /// Rate at which the exchange buys CODE (home per unit, up to 6 decimals); kept if not given.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub buy: Option<String>,
    /// Rate at which the exchange sells CODE; kept if not given.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub sell: Option<String>,
    /// Allow a rate to move by more than 10 % (refused otherwise, exit 1).
    #[arg(long)]
    pub yes: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `destroy`.
#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    /// Remove it even while processes are attached; they notice and stop.
    #[arg(long)]
    pub force: bool,
    /// Remove its journal directory on disk too: the books are then gone for good.
    #[arg(long)]
    pub purge: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let id = exchange_id(args.exchange.as_deref(), args.key.as_deref())?;
    args.owners.apply()?;
    let json = args.command.json();
    let r = run_sub(&id, args.command);
    if json && let Err(err) = &r {
        codes::print_failure(err);
    }
    r
}

fn run_sub(id: &SegmentId, command: Sub) -> anyhow::Result<ExitCode> {
    let id = id.clone();
    match command {
        Sub::Init(a) => init(&id, &a),
        Sub::Open(a) => open(&id, &a),
        Sub::Close(a) => close(&id, &a),
        Sub::Quote(a) => quote(&id, a.json),
        Sub::Trade(a) => trade::run(&id, &a.account, a.open, a.json),
        Sub::Buy(a) => one_shot(&id, Order::Buy, &a),
        Sub::Sell(a) => one_shot(&id, Order::Sell, &a),
        Sub::Deposit(a) => one_shot(&id, Order::Deposit, &a),
        Sub::Withdraw(a) => one_shot(&id, Order::Withdraw, &a),
        Sub::SetRate(a) => set_rate(&id, &a),
        Sub::Accounts(a) => accounts(&id, a.json),
        Sub::Journal(a) => journal::run(&id, &a),
        Sub::Check(a) => check(&id, a.json),
        Sub::Watch(a) => watch::run(&id, &a),
        Sub::Snapshot(a) => files::snapshot(&id, &a),
        Sub::Restore(a) => files::restore(&id, &a),
        Sub::Destroy(a) => destroy(&id, a.force, a.purge),
        Sub::Recover(a) => durable::recover(&id, &a),
    }
}

/// Exit status for this layer's library errors, if `cause` is one.
pub fn exit_code_for(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(e) = cause.downcast_ref::<OpError>() {
        if let Some(sig) = e.signal() {
            return Some(128u8.saturating_add(u8::try_from(sig).unwrap_or(0)));
        }
        return Some(if e.is_bad_input() { 2 } else { 1 });
    }
    if let Some(e) = cause.downcast_ref::<OpenError>() {
        return Some(match e {
            OpenError::Invalid(_) | OpenError::Failpoint(_) | OpenError::LockTimeout(_) => 2,
            OpenError::Segment(shm::Error::Invalid(_) | shm::Error::OutOfBounds(_)) => 2,
            _ => 1,
        });
    }
    if cause.is::<Refusal>() {
        return Some(1);
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
        journal: a.ring.unwrap_or(d.journal),
    };
    let mode = parse_mode(&a.mode)?;
    let state = config.into_state()?;
    let (ex, journal) = durable::create(id, &state, &[], mode, &a.disk, a.force)?;
    let cap = ex.capacity();
    let home = state.home();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "created exchange {}: home currency {}, till {}, opening balance {}, {}; room for {}, {}, {}",
        describe(id),
        home.code,
        home.amount(home.holding),
        home.amount(state.opening),
        plural(
            state.currencies.len() as u64 - 1,
            "foreign currency",
            "foreign currencies"
        ),
        plural(cap.accounts as u64, "account", "accounts"),
        plural(cap.currencies as u64, "currency", "currencies"),
        plural(cap.journal as u64, "journal record", "journal records"),
    )?;
    match journal {
        Some(dir) => writeln!(out, "journal: {}", dir.display())?,
        None => writeln!(
            out,
            "journal: none (--no-journal): the books live in memory only"
        )?,
    }
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
    // The exchange judges the order, then the account name, before
    // anything changes: a bad or refused order, or a name that is not
    // open, changes nothing.
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let request = parse_order(order, &a.code, &a.amount, &e.currencies())?;
    let r = request.apply_as(&e, &a.account)?;
    let mut line = String::new();
    trade::answer(&mut line, &e, &a.account, &r, a.json);
    shm::check_mappings()?;
    e.wait_durable(r.seq)?;
    std::io::stdout().lock().write_all(line.as_bytes())?;
    after_answer(&e);
    Ok(ExitCode::SUCCESS)
}

fn open(id: &SegmentId, a: &AccountArgs) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let (_, opened) = e.open_account(&a.name)?;
    let Some(r) = opened else {
        return Err(OpError::AccountExists {
            name: a.name.clone(),
        }
        .into());
    };
    let home = e.home();
    let amount = money::Amount::new(r.amount, e.decimals(CurrencyId::HOME));
    let text = if a.json {
        format!(
            "{{\"ok\":true,\"op\":\"open\",\"account\":{},\"code\":\"{home}\",\"amount\":\"{amount}\",\"seq\":{}}}\n",
            show::js(&a.name),
            r.seq
        )
    } else {
        format!(
            "opened account {} with {amount} {home} (seq {})\n",
            a.name, r.seq
        )
    };
    e.wait_durable(r.seq)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    after_answer(&e);
    Ok(ExitCode::SUCCESS)
}

fn close(id: &SegmentId, a: &AccountArgs) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let r = e.close_account(&a.name)?;
    let text = if a.json {
        format!(
            "{{\"ok\":true,\"op\":\"close\",\"account\":{},\"seq\":{}}}\n",
            show::js(&a.name),
            r.seq
        )
    } else {
        format!("closed account {} (seq {})\n", a.name, r.seq)
    };
    e.wait_durable(r.seq)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    after_answer(&e);
    Ok(ExitCode::SUCCESS)
}

fn set_rate(id: &SegmentId, a: &SetRateArgs) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let c = currency(&e, &a.code)?;
    let rate = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| money::parse_rate(t).with_context(|| format!("--{flag}")))
            .transpose()
    };
    let (buy, sell) = (rate("buy", &a.buy)?, rate("sell", &a.sell)?);
    let limit = (!a.yes).then_some(RATE_MOVE_LIMIT);
    let ch = e.change_rates(c, buy, sell, limit)?;
    let code = e.code(c);
    let text = if a.json {
        format!(
            "{{\"ok\":true,\"op\":\"set-rate\",\"code\":\"{code}\",\"buy\":\"{}\",\"sell\":\"{}\",\"old_buy\":\"{}\",\"old_sell\":\"{}\",\"seq\":{}}}\n",
            Rate(ch.buy),
            Rate(ch.sell),
            Rate(ch.old_buy),
            Rate(ch.old_sell),
            ch.receipt.seq
        )
    } else {
        let side = |old: i64, new: i64| {
            if old == new {
                format!("{} (unchanged)", Rate(new))
            } else {
                format!("{} → {}", Rate(old), Rate(new))
            }
        };
        format!(
            "{code}: the exchange buys at {} and sells at {} (seq {})\n",
            side(ch.old_buy, ch.buy),
            side(ch.old_sell, ch.sell),
            ch.receipt.seq
        )
    };
    shm::check_mappings()?;
    e.wait_durable(ch.receipt.seq)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    after_answer(&e);
    Ok(ExitCode::SUCCESS)
}

/// What follows an answer, off its path: a checkpoint if one is due. A
/// checkpoint only shortens a later recovery (the journal holds every
/// record), so one that cannot be written (books a peer damaged, which
/// `check` reports) is skipped quietly, and not tried again by this
/// process.
pub fn after_answer(e: &Engine<'_>) {
    static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !FAILED.load(std::sync::atomic::Ordering::Relaxed) && e.maybe_checkpoint().is_err() {
        FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
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

fn check(id: &SegmentId, json: bool) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let violations = e.check()?;
    shm::check_mappings()?;
    let info = e.info();
    let failed = violations.first().map(|first| Refusal::CheckFailed {
        what: describe(id),
        n: violations.len(),
        first: first.clone(),
    });
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<String> = violations.iter().map(|v| show::js(v)).collect();
        let why = failed.as_ref().map_or(String::new(), |f| {
            format!(
                "\"code\":\"{}\",\"error\":{},",
                f.code(),
                show::js(&f.to_string())
            )
        });
        writeln!(
            out,
            "{{\"ok\":{},{why}\"violations\":[{}]}}",
            violations.is_empty(),
            list.join(",")
        )?;
    } else if violations.is_empty() {
        writeln!(
            out,
            "ok: {} balance across {} (holdings + accounts = genesis + deposits - withdrawals); nothing is negative; every quote has 0 < buy <= sell",
            plural(info.currencies as u64, "currency", "currencies"),
            plural(info.accounts as u64, "account", "accounts")
        )?;
    } else {
        for v in &violations {
            writeln!(out, "violation: {v}")?;
        }
    }
    match failed {
        None => Ok(ExitCode::SUCCESS),
        Some(f) => {
            // The answer is printed: only the exit status and the one
            // line on stderr remain.
            out.flush()?;
            eprintln!("shmex: {f}");
            Ok(ExitCode::from(1))
        }
    }
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

fn destroy(id: &SegmentId, force: bool, purge: bool) -> anyhow::Result<ExitCode> {
    // Opened first: only an exchange is destroyed here, never a segment of
    // another kind.
    let ex = match Exchange::open(id) {
        Err(OpenError::Missing { .. }) if purge && let Some(path) = durable::purge_kept(id)? => {
            println!(
                "exchange {} does not exist; removed its journal {}",
                describe(id),
                path.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        r => r?,
    };
    let (holders, unseen) = holders::holders(id);
    let attached = holders.len() as u64 + unseen;
    if attached > 0 && !force {
        return Err(Refusal::InUse {
            what: describe(id),
            holders,
            unseen,
        }
        .into());
    }
    // The final checkpoint comes before the removal; the purge after it.
    let remains = if purge {
        None
    } else {
        Some(durable::on_destroy(&ex, false)?)
    };
    ex.remove()?;
    let remains = match remains {
        Some(r) => r,
        None => durable::on_destroy(&ex, true)?,
    };
    drop(ex);
    let mut out = std::io::stdout().lock();
    write!(out, "destroyed exchange {}", describe(id))?;
    if attached > 0 {
        let pids = holders
            .iter()
            .map(|h| format!("pid {}", h.pid))
            .chain((unseen > 0).then(|| format!("{unseen} of another user")))
            .collect::<Vec<_>>()
            .join(", ");
        let stop = if attached == 1 {
            "it stops at its next check"
        } else {
            "they stop at their next check"
        };
        write!(
            out,
            "; {} attached ({pids}): {stop}",
            plural(attached, "process was", "processes were")
        )?;
    }
    writeln!(out, "; {remains}")?;
    Ok(ExitCode::SUCCESS)
}

/// For a command line of an exchange command that asked for `--json` but
/// could not be read: the usage error `line` as the one JSON object every
/// failed `--json` command prints (code `usage`). `None` for any other
/// command line. `args` is the command line without the program.
pub fn usage_failure_json(args: &[String], line: &str) -> Option<String> {
    let json = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    (args.first().is_some_and(|a| a == "exchange") && json)
        .then(|| codes::failure_json("usage", line))
}
