//! `shmex exchange watch`: a live board in the terminal, refreshed a few
//! times a second from lock-free snapshots, until q, Esc or Ctrl-C. When
//! stdout is not a terminal it prints one plain snapshot and exits, so that
//! scripts (and tests) can use it; with `--json` it prints one snapshot a
//! line at every refresh. The board and the JSON stream stop (exit status
//! 1) once the exchange is removed.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use exchange::money::{Amount, Rate};
use exchange::{Engine, Exchange};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use shm::SegmentId;

use super::refusal::RemovalWatch;
use super::show::{self, describe};
use crate::support::error::BadInput;
use crate::support::parse::parse_seconds;

/// Journal records shown on the plain snapshot.
const PLAIN_TAIL: usize = 5;

/// Flags of `watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Seconds between refreshes.
    #[arg(long, value_name = "SECONDS", default_value = "0.25")]
    pub interval: String,
    /// Print one JSON snapshot a line, at every refresh, until interrupted.
    #[arg(long)]
    pub json: bool,
    /// Stop after N snapshots (with --json).
    #[arg(long, value_name = "N", requires = "json")]
    pub count: Option<u64>,
}

pub fn run(id: &SegmentId, a: &WatchArgs) -> anyhow::Result<ExitCode> {
    let interval = parse_seconds(&a.interval)?;
    if interval < Duration::from_millis(20) || interval > Duration::from_secs(60) {
        return Err(BadInput(format!(
            "invalid interval {:?}: use 0.02 to 60 seconds",
            a.interval
        ))
        .into());
    }
    let ex = Exchange::open(id)?;
    if a.json {
        return stream(&ex, interval, a.count);
    }
    if !std::io::stdout().is_terminal() {
        plain(id, &ex)?;
        return Ok(ExitCode::SUCCESS);
    }
    board(id, &ex, interval)?;
    Ok(ExitCode::SUCCESS)
}

fn plain(id: &SegmentId, ex: &Exchange) -> anyhow::Result<()> {
    let e = ex.engine();
    let rows = e.quote()?;
    let state = e.state()?;
    let info = e.info();
    let violations = e.check()?;
    shm::check_mappings()?;
    let mut out = std::io::stdout().lock();
    out.write_all(show::quote_text(&describe(id), &rows).as_bytes())?;
    writeln!(
        out,
        "accounts: {} of {}; operations: {}; crashed operations rolled back: {}",
        info.accounts,
        info.capacity.accounts,
        info.next_seq.saturating_sub(1),
        info.recoveries
    )?;
    match violations.first() {
        None => writeln!(out, "check: ok")?,
        Some(v) => writeln!(out, "check: {} violations, first: {v}", violations.len())?,
    }
    let tail = e.journal(Some(PLAIN_TAIL))?;
    if !tail.is_empty() {
        writeln!(out, "latest journal records:")?;
        for en in &tail {
            writeln!(out, "{}", show::entry_text(&state, en))?;
        }
    }
    Ok(())
}

/// One snapshot as a JSON object: the time, the quote, the counts and the
/// violations `check` finds.
fn snapshot_json(e: &Engine<'_>) -> anyhow::Result<String> {
    let rows = e.quote()?;
    let info = e.info();
    let violations = e.check()?;
    let mut s = String::from("{");
    show::time_fields(&mut s, crate::support::time::now_ns());
    s.push(',');
    show::quote_fields(&mut s, &rows);
    let list: Vec<String> = violations.iter().map(|v| show::js(v)).collect();
    s.push_str(&format!(
        ",\"accounts\":{},\"account_capacity\":{},\"operations\":{},\"rolled_back\":{},\"violations\":[{}]}}",
        info.accounts,
        info.capacity.accounts,
        info.next_seq.saturating_sub(1),
        info.recoveries,
        list.join(",")
    ));
    Ok(s)
}

/// `watch --json`: a snapshot a line every `interval`, `count` of them
/// (or until a termination signal, exit status 0, or the exchange's
/// removal, 1).
fn stream(ex: &Exchange, interval: Duration, count: Option<u64>) -> anyhow::Result<ExitCode> {
    shm::sys::catch_termination();
    let e = ex.engine();
    let removal = RemovalWatch::new(ex, "board");
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    loop {
        removal.check_now()?;
        writeln!(out, "{}", snapshot_json(&e)?)?;
        out.flush()?;
        n += 1;
        if count.is_some_and(|c| n >= c) {
            return Ok(ExitCode::SUCCESS);
        }
        if shm::sys::wait_for_termination(Some(interval)).is_some() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// Restores the terminal however the board ends (return, error, panic).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn board(id: &SegmentId, ex: &Exchange, interval: Duration) -> anyhow::Result<()> {
    shm::sys::catch_termination();
    let e = ex.engine();
    let removal = RemovalWatch::new(ex, "board");
    let mut terminal = ratatui::try_init()?;
    let _restore = Restore;
    let title = format!("shmex exchange {}", describe(id));
    let mut last = (Instant::now(), e.info().next_seq);
    let mut rate = 0.0f64;
    loop {
        removal.check_now()?;
        let info = e.info();
        let now = Instant::now();
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt >= 0.2 {
            rate = info.next_seq.saturating_sub(last.1) as f64 / dt;
            last = (now, info.next_seq);
        }
        let frame = Frame::read(&e, rate)?;
        terminal.draw(|f| frame.draw(f, &title))?;
        if shm::sys::termination_signal().is_some() {
            return Ok(());
        }
        if event::poll(interval)?
            && let Event::Key(k) = event::read()?
        {
            let ctrl_c =
                k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if k.kind == KeyEventKind::Press
                && (ctrl_c || matches!(k.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc))
            {
                return Ok(());
            }
        }
    }
}

/// What one refresh shows.
struct Frame {
    header: String,
    rows: Vec<[String; 4]>,
    /// The first violation `check` finds, if any.
    violation: Option<String>,
    journal: Vec<String>,
}

impl Frame {
    fn read(e: &Engine<'_>, rate: f64) -> anyhow::Result<Frame> {
        let state = e.state()?;
        let info = e.info();
        let home = state.home();
        let header = format!(
            "home {}  till {}  accounts {}/{}  operations {}  ({:.0}/s)  rolled back {}    q quits",
            home.code,
            home.amount(home.holding),
            info.accounts,
            info.capacity.accounts,
            info.next_seq.saturating_sub(1),
            rate,
            info.recoveries
        );
        let rows = state.currencies[1..]
            .iter()
            .map(|c| {
                [
                    c.code.to_string(),
                    Rate(c.buy).to_string(),
                    Rate(c.sell).to_string(),
                    Amount::new(c.holding, c.decimals).to_string(),
                ]
            })
            .collect();
        let violation = e.check()?.first().cloned();
        let journal = e
            .journal(Some(40))?
            .iter()
            .rev()
            .map(|en| show::entry_text(&state, en))
            .collect();
        Ok(Frame {
            header,
            rows,
            violation,
            journal,
        })
    }

    fn draw(&self, f: &mut ratatui::Frame<'_>, title: &str) {
        let [top, table, check, journal] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(self.rows.len() as u16 + 3),
            Constraint::Length(3),
            Constraint::Min(3),
        ])
        .areas(f.area());
        f.render_widget(
            Paragraph::new(self.header.as_str()).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(title.to_owned()),
            ),
            top,
        );
        let head = Row::new(["CODE", "WE BUY AT", "WE SELL AT", "STOCK"])
            .style(Style::default().add_modifier(Modifier::BOLD));
        let rows = self.rows.iter().map(|r| Row::new(r.clone()));
        f.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(9),
                    Constraint::Length(14),
                    Constraint::Length(14),
                    Constraint::Min(16),
                ],
            )
            .header(head)
            .block(Block::default().borders(Borders::ALL).title("quotes")),
            table,
        );
        let (text, color) = match &self.violation {
            None => (
                "ok: every currency balances, nothing is negative, no quote is crossed".to_owned(),
                Color::Green,
            ),
            Some(v) => (v.clone(), Color::Red),
        };
        f.render_widget(
            Paragraph::new(Line::styled(text, Style::default().fg(color)))
                .block(Block::default().borders(Borders::ALL).title("check")),
            check,
        );
        let lines: Vec<Line<'_>> = self.journal.iter().map(|l| Line::raw(l.as_str())).collect();
        f.render_widget(
            Paragraph::new(lines).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title("journal (newest first)"),
            ),
            journal,
        );
    }
}
