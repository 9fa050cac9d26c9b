//! The trade loop: one command a line from stdin, one answer a line to
//! stdout, fast (stdin and stdout locked once, buffered both ways, no
//! allocation per line on the common path) and flushed whenever input runs
//! dry, so that an interactive client gets each answer at once. It stops,
//! with exit status 1, once its exchange is removed: asked every 64 lines,
//! and every [`REMOVAL_CHECK`] while input is idle.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;

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

/// Reads one line into `line` (at most `MAX_LINE + 2` bytes of it are
/// kept; the rest is consumed and counted). Flushes `out` before any read
/// that may block, and calls `idle` while none is ready. Returns the
/// line's full length, or `None` at the end.
fn read_line<R: Read + AsFd, W: Write>(
    input: &mut BufReader<R>,
    out: &mut W,
    line: &mut Vec<u8>,
    idle: &mut impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Option<usize>> {
    line.clear();
    let mut total = 0usize;
    let mut any = false;
    loop {
        if input.buffer().is_empty() {
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
                    Ok(r) => answer(out, self.e, self.name, &r, json),
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
    let acct = if open {
        e.open_account(account)?.0
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
    };
    if terminal::interactive() {
        let banner = format!(
            "trading as {account} on exchange {id}: `help` lists the commands; `quit` or Ctrl-D leaves"
        );
        let prompt = format!("{account}> ");
        terminal::run(&banner, &prompt, |line, out| lp.line(out, line, line.len()))?;
        return lp.end();
    }
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut line = Vec::with_capacity(MAX_LINE + 2);
    let mut answer = String::with_capacity(512);
    let mut lines = 0u32;
    loop {
        let Some(len) = read_line(&mut input, &mut out, &mut line, &mut || removal.check())? else {
            break;
        };
        lines = lines.wrapping_add(1);
        if lines.is_multiple_of(64) {
            removal.check()?;
        }
        answer.clear();
        let quit = lp.line(&mut answer, &line, len);
        // No answer from books that shrank under this process.
        shm::check_mappings()?;
        out.write_all(answer.as_bytes())?;
        if quit {
            break;
        }
    }
    out.flush()?;
    lp.end()
}
