//! The trade loop: one command a line from stdin, one answer a line to
//! stdout, fast (stdin and stdout locked once, buffered both ways, no
//! allocation per line on the common path) and flushed whenever input runs
//! dry, so that an interactive client gets each answer at once. It stops,
//! with exit status 1, once its exchange is removed: asked every 64 lines,
//! and every [`REMOVAL_CHECK`] while input is idle.
//!
//! Nothing is acknowledged before it is on disk: the loop reads ahead
//! while whole lines are already buffered (up to [`BATCH`]), carries them
//! out, keeps their answers, waits once for the batch's last record to be
//! durable, and only then writes the answers. A refused line's answer
//! waits with the batch, so the answers keep the order of the lines. A
//! client that waits for each answer is answered by the loop itself; a
//! stream of lines, by a writer thread while the loop reads on (see
//! [`Answers`]).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use exchange::money::{Amount, Rate};
use exchange::{AccountId, Code, CurrencyId, Engine, Exchange, OpError, QuoteRow, Receipt};
use shm::SegmentId;

use super::codes::failure_json;
use super::order::{clip, parse_order, parse_verb, verb_name};
use super::refusal::{REMOVAL_CHECK, RemovalWatch};
use super::show;
use crate::support::text::escape;

mod terminal;

/// Longest line accepted, in bytes (without the newline).
pub const MAX_LINE: usize = 1024;

/// Most lines answered with one wait for the disk.
pub const BATCH: usize = 4096;

const HELP: &str = "buy CODE AMOUNT | sell CODE AMOUNT | deposit CODE AMOUNT | withdraw CODE AMOUNT | quote | balance | help | quit";

/// Appends the answer to a successful mutation.
pub fn answer(out: &mut String, e: &Engine<'_>, account: &str, r: &Receipt, json: bool) {
    let code = e.code(r.currency);
    let amount = Amount::new(r.amount, e.decimals(r.currency));
    let home = e.home();
    let hd = e.decimals(CurrencyId::HOME);
    let total = if matches!(r.op, exchange::Op::Buy | exchange::Op::Sell) {
        Amount::new(r.total, hd)
    } else {
        amount
    };
    if json {
        let _ = write!(
            out,
            "{{\"ok\":true,\"op\":\"{}\",\"account\":{},\"code\":\"{code}\",\"amount\":\"{amount}\"",
            r.op,
            show::js(account)
        );
        if matches!(r.op, exchange::Op::Buy | exchange::Op::Sell) {
            let _ = write!(out, ",\"rate\":\"{}\",\"total\":\"{total}\"", Rate(r.rate));
        } else {
            let _ = write!(
                out,
                ",\"balance\":\"{}\"",
                Amount::new(r.balance, e.decimals(r.currency))
            );
        }
        let _ = writeln!(out, ",\"seq\":{}}}", r.seq);
        return;
    }
    let account = escape(account);
    let _ = match r.op {
        exchange::Op::Buy => writeln!(
            out,
            "{account} bought {amount} {code} at {} for {total} {home} (seq {})",
            Rate(r.rate),
            r.seq
        ),
        exchange::Op::Sell => writeln!(
            out,
            "{account} sold {amount} {code} at {} for {total} {home} (seq {})",
            Rate(r.rate),
            r.seq
        ),
        exchange::Op::Deposit => writeln!(
            out,
            "{account} deposited {amount} {code}; balance {} {code} (seq {})",
            Amount::new(r.balance, e.decimals(r.currency)),
            r.seq
        ),
        _ => writeln!(
            out,
            "{account} withdrew {amount} {code}; balance {} {code} (seq {})",
            Amount::new(r.balance, e.decimals(r.currency)),
            r.seq
        ),
    };
}

/// Appends the answer to a refused or malformed line: its machine code
/// (`--json` only) and its message.
fn error(out: &mut String, code: &str, msg: &str, json: bool) {
    if json {
        out.push_str(&failure_json(code, msg));
        out.push('\n');
    } else {
        let _ = writeln!(out, "error: {msg}");
    }
}

/// Where the answers go: stdout, buffered, shared by the loop and the
/// writer thread.
type Sink = Mutex<BufWriter<std::io::Stdout>>;

/// Answers kept until their records are durable.
///
/// When input runs dry and no batch is still with the writer thread, the
/// loop waits for the disk and writes the batch itself: an interactive
/// client, which sends its next line only once it has its answer, costs
/// no hand-off between threads. Otherwise the loop hands the batch to the
/// writer thread ([`write_answers`]), which waits for the disk and writes
/// it while the loop goes on with the next lines: the `fdatasync` of one
/// batch overlaps the work of the next.
struct Answers<'s> {
    e: &'s Engine<'s>,
    tx: Option<SyncSender<(String, u64)>>,
    sink: &'s Sink,
    /// Batches handed to the writer thread and not yet in `sink`.
    queued: &'s AtomicUsize,
    /// The answers not yet handed over.
    batch: String,
    /// Lines in `batch`.
    lines: usize,
    /// The last record any answer in `batch` acknowledges.
    seq: u64,
}

/// The writer thread stopped (its error says why).
#[derive(Debug, thiserror::Error)]
#[error("the answers could not be written")]
struct WriterStopped;

impl Answers<'_> {
    /// Hands the batch to the writer thread.
    fn release(&mut self) -> anyhow::Result<()> {
        if self.lines == 0 {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, String::with_capacity(1 << 16));
        self.lines = 0;
        self.queued.fetch_add(1, Ordering::AcqRel);
        match &self.tx {
            Some(tx) if tx.send((batch, self.seq)).is_ok() => Ok(()),
            _ => Err(WriterStopped.into()),
        }
    }

    /// Answers the batch before a read that may block: here, once its
    /// records are durable, if nothing is ahead of it with the writer
    /// thread; else through the writer thread, which flushes stdout once
    /// it has nothing more to write.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.lines == 0 {
            return Ok(());
        }
        if self.queued.load(Ordering::Acquire) > 0 {
            return self.release();
        }
        durable(self.e, self.seq)?;
        let mut out = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        out.write_all(self.batch.as_bytes())?;
        out.flush()?;
        drop(out);
        self.batch.clear();
        self.lines = 0;
        super::after_answer(self.e);
        Ok(())
    }
}

/// Waits until record `seq` is durable, and checks that the books did not
/// shrink under this process: what must hold before an answer is given.
fn durable(e: &Engine<'_>, seq: u64) -> anyhow::Result<()> {
    e.wait_durable(seq)?;
    shm::check_mappings()?;
    Ok(())
}

/// The writer thread: each batch of answers, once its last record is
/// durable, to stdout; flushed whenever no batch is waiting.
fn write_answers(
    ex: &Exchange,
    sink: &Sink,
    queued: &AtomicUsize,
    rx: &Receiver<(String, u64)>,
) -> anyhow::Result<()> {
    let e = ex.engine();
    let out = || sink.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let (text, seq) = match rx.try_recv() {
            Ok(x) => x,
            Err(TryRecvError::Empty) => {
                out().flush()?;
                match rx.recv() {
                    Ok(x) => x,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        durable(&e, seq)?;
        {
            let mut out = out();
            out.write_all(text.as_bytes())?;
            // In `sink`, so the loop may write after it.
            queued.fetch_sub(1, Ordering::AcqRel);
        }
        super::after_answer(&e);
    }
    out().flush()?;
    Ok(())
}

/// Reads one line into `line` (at most `MAX_LINE + 2` bytes of it are
/// kept; the rest is consumed and counted). Releases and flushes the
/// answers in `out` before any read that may block, and calls `idle` while none is ready. Returns the
/// line's full length, or `None` at the end.
fn read_line<R: Read + AsFd>(
    input: &mut BufReader<R>,
    out: &mut Answers<'_>,
    line: &mut Vec<u8>,
    idle: &mut impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Option<usize>> {
    line.clear();
    let mut total = 0usize;
    let mut any = false;
    loop {
        // More input already waiting joins the batch; only a read that
        // would block answers it first.
        if input.buffer().is_empty()
            && !shm::sys::poll_fd(input.get_ref().as_fd(), false, Duration::ZERO)?
        {
            out.flush()?;
            while !shm::sys::poll_fd(input.get_ref().as_fd(), false, REMOVAL_CHECK)? {
                idle()?;
            }
        }
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            return Ok(any.then_some(total));
        }
        any = true;
        let (chunk, used, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = (MAX_LINE + 2).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        total += chunk.len();
        input.consume(used);
        if done {
            return Ok(Some(total));
        }
    }
}

struct Loop<'e, 'a> {
    e: &'e Engine<'a>,
    /// An error that ends the loop: the exchange is corrupted or
    /// truncated, or its lock cannot be had.
    fatal: Option<OpError>,
    account: AccountId,
    name: &'e str,
    currencies: Vec<(Code, u32)>,
    json: bool,
    quote: Vec<QuoteRow>,
    /// The last record this loop's answers acknowledge.
    seq: u64,
}

impl Loop<'_, '_> {
    /// How the loop ended: quit or end of input, or the error that ended
    /// it.
    fn end(self) -> anyhow::Result<ExitCode> {
        match self.fatal {
            Some(err) => Err(err.into()),
            None => Ok(ExitCode::SUCCESS),
        }
    }

    /// Answers one line; returns true on `quit`, or once an error ends the
    /// loop (see [`OpError::is_fatal`]).
    fn line(&mut self, out: &mut String, raw: &[u8], len: usize) -> bool {
        let json = self.json;
        let (raw, len) = match raw.last() {
            Some(b'\r') if len == raw.len() => (&raw[..raw.len() - 1], len - 1),
            _ => (raw, len),
        };
        if len > MAX_LINE {
            error(
                out,
                "line_too_long",
                &format!("line too long: {len} bytes, at most {MAX_LINE} are read"),
                json,
            );
            return false;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            error(out, "invalid_utf8", "the line is not valid UTF-8", json);
            return false;
        };
        let mut words = text.split_ascii_whitespace();
        let Some(verb) = words.next() else {
            error(
                out,
                "empty_line",
                &format!("empty line: expected {HELP}"),
                json,
            );
            return false;
        };
        if let Some(v) = parse_verb(verb) {
            let usage = || format!("expected `{} CODE AMOUNT`", verb_name(v));
            let (Some(code), Some(amount)) = (words.next(), words.next()) else {
                error(
                    out,
                    "missing_argument",
                    &format!("missing currency or amount: {}", usage()),
                    json,
                );
                return false;
            };
            if let Some(extra) = words.next() {
                let msg = format!("unexpected {:?} after the amount: {}", clip(extra), usage());
                error(out, "unexpected_argument", &msg, json);
                return false;
            }
            match parse_order(v, code, amount, &self.currencies) {
                Err(m) => error(out, m.code(), &m.to_string(), json),
                Ok(order) => match order.apply(self.e, self.account) {
                    Ok(r) => {
                        self.seq = self.seq.max(r.seq);
                        answer(out, self.e, self.name, &r, json);
                    }
                    Err(err) if err.is_fatal() => {
                        self.fatal = Some(err);
                        return true;
                    }
                    Err(err) => error(out, err.code(), &err.to_string(), json),
                },
            }
            return false;
        }
        let word = |w: &str| verb.eq_ignore_ascii_case(w);
        let known = ["quote", "balance", "help", "quit"]
            .into_iter()
            .find(|w| word(w));
        let Some(cmd) = known else {
            let msg = format!("unknown command {:?}: expected {HELP}", clip(verb));
            error(out, "unknown_command", &msg, json);
            return false;
        };
        if let Some(extra) = words.next() {
            let msg = format!(
                "unexpected {:?} after `{cmd}`, which takes nothing",
                clip(extra)
            );
            error(out, "unexpected_argument", &msg, json);
            return false;
        }
        match cmd {
            "quote" => {
                self.quote(out);
                return self.fatal.is_some();
            }
            "balance" => {
                self.balance(out);
                return self.fatal.is_some();
            }
            "help" => {
                if json {
                    let _ = writeln!(out, "{{\"ok\":true,\"op\":\"help\",\"usage\":\"{HELP}\"}}");
                } else {
                    let _ = writeln!(out, "commands: {HELP}");
                }
            }
            _ => {
                if json {
                    out.push_str("{\"ok\":true,\"op\":\"quit\"}\n");
                } else {
                    out.push_str("bye\n");
                }
                return true;
            }
        }
        false
    }

    fn quote(&mut self, out: &mut String) {
        if let Err(err) = self.e.quote_into(&mut self.quote) {
            if err.is_fatal() {
                self.fatal = Some(err);
                return;
            }
            return error(out, err.code(), &err.to_string(), self.json);
        }
        if self.json {
            out.push_str("{\"ok\":true,\"op\":\"quote\",");
            show::quote_fields(out, &self.quote);
            out.push_str("}\n");
        } else {
            let home = &self.quote[0];
            let _ = write!(
                out,
                "{} till {}",
                home.code,
                Amount::new(home.holding, home.decimals)
            );
            for r in &self.quote[1..] {
                let _ = write!(
                    out,
                    "; {} buy {} sell {} stock {}",
                    r.code,
                    Rate(r.buy),
                    Rate(r.sell),
                    Amount::new(r.holding, r.decimals)
                );
            }
            out.push('\n');
        }
    }

    fn balance(&mut self, out: &mut String) {
        let b = match self.e.balances(self.account) {
            Ok(_) if !self.e.is_open(self.account) => {
                let err = OpError::AccountClosed {
                    name: self.name.to_owned(),
                };
                return error(out, err.code(), &err.to_string(), self.json);
            }
            Ok(b) => b,
            Err(err) if err.is_fatal() => {
                self.fatal = Some(err);
                return;
            }
            Err(err) => return error(out, err.code(), &err.to_string(), self.json),
        };
        if self.json {
            let _ = write!(
                out,
                "{{\"ok\":true,\"op\":\"balance\",\"account\":{},\"balances\":",
                show::js(self.name)
            );
            show::balances_object(out, &self.currencies, &b);
            out.push_str("}\n");
        } else {
            let _ = write!(out, "{}:", self.name);
            for (i, ((c, d), v)) in self.currencies.iter().zip(&b).enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                let _ = write!(out, "{sep}{} {c}", Amount::new(*v, *d));
            }
            out.push('\n');
        }
    }
}

/// `shmex exchange trade --account NAME [--open] [--json]`: with `open`,
/// the account opens first if it is new; without, a name that is not open
/// is refused (with the closest open name).
pub fn run(id: &SegmentId, account: &str, open: bool, json: bool) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    // The exchange judges the name.
    let mut opened = 0;
    let acct = if open {
        let (a, r) = e.open_account(account)?;
        opened = r.map_or(0, |r| r.seq);
        a
    } else {
        e.lookup_account(account).with_context(|| {
            format!("the trade loop needs an open account (or --open to open {account:?})")
        })?
    };
    let mut removal = RemovalWatch::new(&ex, "trade loop");
    let mut lp = Loop {
        e: &e,
        fatal: None,
        account: acct,
        name: account,
        currencies: e.currencies(),
        json,
        quote: Vec::new(),
        seq: opened,
    };
    if terminal::interactive() {
        let banner = format!(
            "trading as {account} on exchange {id}: `help` lists the commands; `quit` or Ctrl-D leaves"
        );
        let prompt = format!("{account}> ");
        terminal::run(&banner, &prompt, |line, out| {
            let done = lp.line(out, line, line.len());
            if let Err(err) = e.wait_durable(lp.seq) {
                // Not on disk: not acknowledged.
                out.clear();
                lp.fatal = Some(err);
                return true;
            }
            super::after_answer(&e);
            done
        })?;
        return lp.end();
    }
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let sink = Mutex::new(BufWriter::with_capacity(1 << 16, std::io::stdout()));
    let queued = AtomicUsize::new(0);
    let mut out = Answers {
        e: &e,
        tx: Some(tx),
        sink: &sink,
        queued: &queued,
        batch: String::with_capacity(1 << 16),
        lines: 0,
        seq: 0,
    };
    let ex = &ex;
    let (sink, queued) = (&sink, &queued);
    std::thread::scope(|s| {
        let writer = s.spawn(move || write_answers(ex, sink, queued, &rx));
        let r = piped(&mut lp, &mut out, &mut removal, &mut input);
        // The writer writes what it was handed, then stops.
        out.tx = None;
        let w = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the answer writer panicked")));
        match (r, w) {
            (Err(e), Err(w)) if e.is::<WriterStopped>() => Err(w),
            (Err(e), _) => Err(e),
            (Ok(()), Err(w)) => Err(w),
            (Ok(()), Ok(())) => lp.end(),
        }
    })
}

/// The loop on piped input: lines already read join the batch of answers,
/// handed over before a read that would block, every [`BATCH`] lines, and
/// at the end.
fn piped<R: Read + AsFd>(
    lp: &mut Loop<'_, '_>,
    out: &mut Answers<'_>,
    removal: &mut RemovalWatch<'_>,
    input: &mut BufReader<R>,
) -> anyhow::Result<()> {
    let mut line = Vec::with_capacity(MAX_LINE + 2);
    let mut lines = 0u32;
    loop {
        if out.lines >= BATCH {
            out.release()?;
        }
        let Some(len) = read_line(input, out, &mut line, &mut || removal.check())? else {
            break;
        };
        lines = lines.wrapping_add(1);
        if lines.is_multiple_of(64)
            && let Err(gone) = removal.check()
        {
            // The lines before are answered if they are on disk; the
            // removal is what ends the loop either way.
            let _ = out.flush();
            return Err(gone);
        }
        let quit = lp.line(&mut out.batch, &line, len);
        out.lines += 1;
        out.seq = lp.seq;
        if lp.fatal.is_some() {
            // The error ends the loop; the lines before it are answered,
            // once durable (if the error is the journal's, they are not).
            return out.flush();
        }
        if quit {
            break;
        }
    }
    if out.lines == 0 && lp.seq > 0 {
        // The account opened by --open, with no order after it.
        lp.e.wait_durable(lp.seq)?;
    }
    out.flush()
}
