//! How a record read from disk prints: a JSON object with the fields the
//! ring's records have and the account's balances after it, or a row of
//! an aligned table with the data of its receipt.

use std::fmt::Write as _;

use exchange::disk::DiskRecord;
use exchange::money::{Amount, Rate};
use exchange::{Code, Op, State};

use super::super::show;
use crate::support::text::escape;
use crate::support::time::utc_millis;

/// The table's columns; the last one, a note, has no heading and no width.
const COLUMNS: [&str; 9] = [
    "SEQ",
    "TIME",
    "OP",
    "ACCOUNT",
    "CODE",
    "AMOUNT",
    "RATE",
    "TOTAL",
    "BALANCE AFTER",
];
/// Which columns are right-aligned (the numbers).
const RIGHT: [bool; 9] = [true, false, false, false, false, true, true, true, false];
/// The widths a follower starts with, since it cannot know the records to
/// come: wide enough for most.
const FOLLOW_WIDTHS: [usize; 9] = [8, 24, 8, 10, 7, 12, 10, 18, 30];

/// One row: the cells of [`COLUMNS`], and a note.
pub type Row = ([String; 9], String);

/// The currencies of the exchange whose journal this is (they never
/// change after `init`): what names the home currency and its decimals.
#[derive(Debug)]
pub struct Books(pub State);

impl Books {
    fn home(&self) -> (Code, u32) {
        let h = self.0.home();
        (h.code, h.decimals)
    }

    /// `r` as a JSON object: the fields `journal --json` prints for a
    /// record of the ring, then `undone_seq` for a rollback and
    /// `balances` (the account's balances after it, in the home currency
    /// and in the record's own) where it has them.
    pub fn json(&self, r: &DiskRecord) -> anyhow::Result<String> {
        let entry = r.to_entry(&self.0).ok_or_else(|| {
            anyhow::anyhow!(
                "journal record {} is in currency {}, which the exchange does not have",
                r.seq,
                r.code
            )
        })?;
        let mut s = show::entry_json(&self.0, &entry);
        s.pop();
        if r.op == Op::Rollback {
            let _ = write!(s, ",\"undone_seq\":{}", r.undone_seq);
        }
        if let Some(b) = r.balances {
            s.push_str(",\"balances\":");
            let home = self.home();
            if r.code == home.0 {
                show::balances_object(&mut s, &[home], &[b.home]);
            } else {
                show::balances_object(&mut s, &[home, (r.code, r.decimals)], &[b.home, b.code]);
            }
        }
        s.push('}');
        Ok(s)
    }

    /// `r` as a row of the table.
    pub fn row(&self, r: &DiskRecord) -> Row {
        let (home, home_dec) = self.home();
        let dash = || "-".to_owned();
        let op = r.effective_op();
        let amount = Amount::new(r.amount, r.decimals);
        let (amount, rate, total) = match op {
            Op::Buy | Op::Sell => (
                amount.to_string(),
                Rate(r.rate).to_string(),
                format!("{} {home}", Amount::new(r.total, home_dec)),
            ),
            Op::Deposit | Op::Withdraw | Op::Open => (
                amount.to_string(),
                dash(),
                format!("{} {}", Amount::new(r.total, r.decimals), r.code),
            ),
            Op::SetRate | Op::Close | Op::Rollback => (dash(), dash(), dash()),
        };
        let balance = match r.balances {
            Some(b) if r.code == home => format!("{} {home}", Amount::new(b.home, home_dec)),
            Some(b) => format!(
                "{} {}, {} {home}",
                Amount::new(b.code, r.decimals),
                r.code,
                Amount::new(b.home, home_dec)
            ),
            None => dash(),
        };
        let note = match (r.op, r.undone) {
            (Op::Rollback, Some(undone)) => format!(
                "rolled back: pid {} died holding the lock in this {undone}",
                r.undone_pid
            ),
            (Op::SetRate, _) => format!(
                "rates set to buy {} sell {}",
                Rate(r.buy_rate),
                Rate(r.rate)
            ),
            _ => String::new(),
        };
        let account = if r.account.is_empty() {
            dash()
        } else {
            escape(r.account.as_str()).into_owned()
        };
        (
            [
                r.seq.to_string(),
                utc_millis(r.time_ns),
                r.op.name().to_owned(),
                account,
                r.code.to_string(),
                amount,
                rate,
                total,
                balance,
            ],
            note,
        )
    }
}

/// The widths of the table's columns.
#[derive(Debug, Clone, Copy)]
pub struct Widths([usize; 9]);

impl Widths {
    /// The headings' widths: grown by [`Widths::fit`] to the rows.
    pub fn headings() -> Widths {
        Widths(COLUMNS.map(str::len))
    }

    /// Widths for a follower.
    pub fn following() -> Widths {
        let mut w = Widths::headings();
        for (w, f) in w.0.iter_mut().zip(FOLLOW_WIDTHS) {
            *w = (*w).max(f);
        }
        w
    }

    /// Grows the widths to at least `other`'s.
    pub fn grow(&mut self, other: &Widths) {
        for (w, o) in self.0.iter_mut().zip(other.0) {
            *w = (*w).max(o);
        }
    }

    /// Grows the widths to fit `row`.
    pub fn fit(&mut self, row: &Row) {
        for (w, cell) in self.0.iter_mut().zip(&row.0) {
            *w = (*w).max(cell.chars().count());
        }
    }

    /// The headings line.
    pub fn headings_line(&self) -> String {
        self.line(&(COLUMNS.map(str::to_owned), String::new()))
    }

    /// `row` as a line, columns two spaces apart, no trailing blanks.
    pub fn line(&self, row: &Row) -> String {
        let mut s = String::new();
        for (i, cell) in row.0.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let w = self.0[i];
            let _ = if RIGHT[i] {
                write!(s, "{cell:>w$}")
            } else {
                write!(s, "{cell:<w$}")
            };
        }
        if row.1.is_empty() {
            s.truncate(s.trim_end().len());
        } else {
            s.push_str("  ");
            s.push_str(&row.1);
        }
        s
    }
}
