//! Replay: the books rebuilt from a checkpoint and the records after it.
//!
//! A record is applied as recorded: its amount and total exactly (the
//! rounding that produced the total is not recomputed, so a later change
//! of rounding rules cannot change history), after checking that it fits
//! the books (its sequence number is the next one, its currency and
//! account exist, the rate it used is the one quoted, nothing goes
//! negative or overflows). The resulting balances it records are then
//! compared with the books. Any mismatch is a [`ReplayError`]: the journal
//! and the books disagree, and recovery stops there.
#![forbid(unsafe_code)]

use super::DiskError;
use super::dir::JournalDir;
use super::record::{Balances, DiskRecord};
use super::scan::{Corruption, Scanner, Tail, Torn};
use crate::money::{Amount, Rate};
use crate::state::{AccountState, State};
use crate::types::{Code, Op};

/// Why a record cannot be applied to the books. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Not the next sequence number.
    #[error("record {found} where {expected} was expected")]
    Sequence {
        /// The sequence number the books expect.
        expected: u64,
        /// The record's.
        found: u64,
    },
    /// A currency the books do not have.
    #[error("record {seq}: unknown currency {code}")]
    UnknownCurrency {
        /// The record.
        seq: u64,
        /// Its currency.
        code: Code,
    },
    /// An account the books do not have.
    #[error("record {seq}: unknown account {account:?}")]
    UnknownAccount {
        /// The record.
        seq: u64,
        /// Its account.
        account: String,
    },
    /// An open of an account that is open.
    #[error("record {seq}: account {account:?} is already open")]
    AccountExists {
        /// The record.
        seq: u64,
        /// Its account.
        account: String,
    },
    /// An open beyond the capacity.
    #[error("record {seq}: no room for account {account:?} ({capacity} accounts)")]
    AccountsFull {
        /// The record.
        seq: u64,
        /// Its account.
        account: String,
        /// The capacity.
        capacity: usize,
    },
    /// The operation cannot be in that currency.
    #[error("record {seq}: a {op} cannot be in {code}")]
    Currency {
        /// The record.
        seq: u64,
        /// Its operation.
        op: Op,
        /// Its currency.
        code: Code,
    },
    /// A recorded value that is not what the books say.
    #[error("record {seq}: the recorded {what} is {recorded}, the books say {books}")]
    Mismatch {
        /// The record.
        seq: u64,
        /// Which value, e.g. `home balance after`.
        what: &'static str,
        /// The value in the record.
        recorded: String,
        /// The value in the books.
        books: String,
    },
    /// A value that must be positive is not.
    #[error("record {seq}: the {what} {value} is not positive")]
    NotPositive {
        /// The record.
        seq: u64,
        /// Which value.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// Applying it would make a holding or balance negative.
    #[error("record {seq}: {what} would become negative")]
    Negative {
        /// The record.
        seq: u64,
        /// What, e.g. `the stock of DOLLAR`.
        what: String,
    },
    /// Applying it would overflow.
    #[error("record {seq}: {what} would overflow")]
    Overflow {
        /// The record.
        seq: u64,
        /// What.
        what: String,
    },
}

/// Applies one record to the books: all of it, or, on error, nothing.
///
/// # Errors
///
/// A [`ReplayError`] saying how the record and the books disagree.
pub fn apply(state: &mut State, r: &DiskRecord) -> Result<(), ReplayError> {
    let seq = r.seq;
    if seq != state.next_seq {
        return Err(ReplayError::Sequence {
            expected: state.next_seq,
            found: seq,
        });
    }
    let ci = state
        .currency(r.code)
        .ok_or(ReplayError::UnknownCurrency { seq, code: r.code })?;
    let dec = state.currencies[ci].decimals;
    let home_dec = state.currencies[0].decimals;
    let mismatch = |what, recorded: String, books: String| ReplayError::Mismatch {
        seq,
        what,
        recorded,
        books,
    };
    if r.decimals != dec {
        return Err(mismatch(
            "decimals",
            r.decimals.to_string(),
            dec.to_string(),
        ));
    }
    let wrong_currency = || ReplayError::Currency {
        seq,
        op: r.op,
        code: r.code,
    };
    let negative = |what: String| ReplayError::Negative { seq, what };
    let overflow = |what: String| ReplayError::Overflow { seq, what };
    let add = |a: i64, b: i64, what: &dyn Fn() -> String| {
        a.checked_add(b).ok_or_else(|| overflow(what()))
    };
    let sub = |a: i64, b: i64, what: &dyn Fn() -> String| {
        if a < b {
            Err(negative(what()))
        } else {
            Ok(a - b)
        }
    };
    let positive = |what, v: i64, d: u32| {
        if v > 0 {
            Ok(())
        } else {
            Err(ReplayError::NotPositive {
                seq,
                what,
                value: Amount::new(v, d).to_string(),
            })
        }
    };
    let code = r.code;
    let account = |state: &State| {
        state
            .accounts
            .iter()
            .position(|a| a.name == r.account.as_str())
            .ok_or_else(|| ReplayError::UnknownAccount {
                seq,
                account: r.account.to_string(),
            })
    };
    let check_balances = |home: i64, own: i64| -> Result<(), ReplayError> {
        let Some(b) = r.balances else {
            return Ok(());
        };
        let show = |v, d| Amount::new(v, d).to_string();
        if b.home != home {
            return Err(mismatch(
                "home balance after",
                show(b.home, home_dec),
                show(home, home_dec),
            ));
        }
        if b.code != own {
            return Err(mismatch("balance after", show(b.code, dec), show(own, dec)));
        }
        Ok(())
    };
    match r.op {
        Op::Rollback => {}
        Op::Close => {
            if ci != 0 {
                return Err(wrong_currency());
            }
            let ai = account(state)?;
            let a = &state.accounts[ai];
            if let Some((c, &b)) = state
                .currencies
                .iter()
                .zip(&a.balances)
                .find(|&(_, &b)| b != 0)
            {
                return Err(mismatch(
                    "balance at close",
                    "0".to_owned(),
                    format!("{} {}", c.amount(b), c.code),
                ));
            }
            check_balances(0, 0)?;
            // The name is free again; the account leaves the books.
            state.accounts.remove(ai);
        }
        Op::Open => {
            if ci != 0 {
                return Err(wrong_currency());
            }
            if account(state).is_ok() {
                return Err(ReplayError::AccountExists {
                    seq,
                    account: r.account.to_string(),
                });
            }
            if state.accounts.len() >= state.capacity.accounts {
                return Err(ReplayError::AccountsFull {
                    seq,
                    account: r.account.to_string(),
                    capacity: state.capacity.accounts,
                });
            }
            let opening = state.opening.max(0);
            for (what, v) in [("opening amount", r.amount), ("opening total", r.total)] {
                if v != opening {
                    return Err(mismatch(
                        what,
                        Amount::new(v, dec).to_string(),
                        Amount::new(opening, dec).to_string(),
                    ));
                }
            }
            let deposits = add(state.currencies[0].deposits, opening, &|| {
                format!("the deposits of {code}")
            })?;
            check_balances(opening, opening)?;
            let mut balances = vec![0; state.currencies.len()];
            balances[0] = opening;
            state.accounts.push(AccountState {
                name: r.account.to_string(),
                balances,
            });
            state.currencies[0].deposits = deposits;
        }
        Op::Buy | Op::Sell => {
            if ci == 0 {
                return Err(wrong_currency());
            }
            let ai = account(state)?;
            positive("amount", r.amount, dec)?;
            let c = &state.currencies[ci];
            let (quoted, which) = if r.op == Op::Buy {
                (c.sell, "sell rate")
            } else {
                (c.buy, "buy rate")
            };
            if r.rate != quoted {
                return Err(mismatch(
                    which,
                    Rate(r.rate).to_string(),
                    Rate(quoted).to_string(),
                ));
            }
            if r.total < 0 {
                return Err(negative(format!(
                    "the total {}",
                    Amount::new(r.total, home_dec)
                )));
            }
            let a = &state.accounts[ai];
            let (stock, till, bh, bc) = (
                c.holding,
                state.currencies[0].holding,
                a.balances[0],
                a.balances[ci],
            );
            let name = &r.account;
            let new = if r.op == Op::Buy {
                [
                    sub(stock, r.amount, &|| format!("the stock of {code}"))?,
                    add(till, r.total, &|| "the till".to_owned())?,
                    sub(bh, r.total, &|| format!("the home balance of {name}"))?,
                    add(bc, r.amount, &|| format!("the {code} balance of {name}"))?,
                ]
            } else {
                [
                    add(stock, r.amount, &|| format!("the stock of {code}"))?,
                    sub(till, r.total, &|| "the till".to_owned())?,
                    add(bh, r.total, &|| format!("the home balance of {name}"))?,
                    sub(bc, r.amount, &|| format!("the {code} balance of {name}"))?,
                ]
            };
            check_balances(new[2], new[3])?;
            state.currencies[ci].holding = new[0];
            state.currencies[0].holding = new[1];
            let a = &mut state.accounts[ai];
            a.balances[0] = new[2];
            a.balances[ci] = new[3];
        }
        Op::Deposit | Op::Withdraw => {
            let ai = account(state)?;
            positive("amount", r.amount, dec)?;
            if r.total != r.amount {
                return Err(mismatch(
                    "total",
                    Amount::new(r.total, dec).to_string(),
                    Amount::new(r.amount, dec).to_string(),
                ));
            }
            let bal = state.accounts[ai].balances[ci];
            let c = &state.currencies[ci];
            let name = &r.account;
            let (new_bal, new_total) = if r.op == Op::Deposit {
                (
                    add(bal, r.amount, &|| format!("the {code} balance of {name}"))?,
                    add(c.deposits, r.amount, &|| format!("the deposits of {code}"))?,
                )
            } else {
                (
                    sub(bal, r.amount, &|| format!("the {code} balance of {name}"))?,
                    add(c.withdrawals, r.amount, &|| {
                        format!("the withdrawals of {code}")
                    })?,
                )
            };
            let home = if ci == 0 {
                new_bal
            } else {
                state.accounts[ai].balances[0]
            };
            check_balances(home, new_bal)?;
            state.accounts[ai].balances[ci] = new_bal;
            let c = &mut state.currencies[ci];
            if r.op == Op::Deposit {
                c.deposits = new_total;
            } else {
                c.withdrawals = new_total;
            }
        }
        Op::SetRate => {
            if ci == 0 {
                return Err(wrong_currency());
            }
            positive("buy rate", r.buy_rate, 6)?;
            if r.buy_rate > r.rate {
                return Err(mismatch(
                    "buy rate (above the sell rate)",
                    Rate(r.buy_rate).to_string(),
                    Rate(r.rate).to_string(),
                ));
            }
            let c = &mut state.currencies[ci];
            c.buy = r.buy_rate;
            c.sell = r.rate;
        }
    }
    state.next_seq = seq + 1;
    Ok(())
}

/// The books rebuilt from the journal directory, and what recovery must
/// do and say about the journal's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// The books after the last record applied.
    pub state: State,
    /// The sequence number of the checkpoint replay started from.
    pub checkpoint: u64,
    /// Newer checkpoints that were damaged and skipped, one line each.
    pub skipped: Vec<String>,
    /// Records applied after the checkpoint.
    pub replayed: u64,
    /// Where the records kept end: where the next batch goes (after any
    /// cut). `None` if there is no journal file.
    pub tail: Option<Tail>,
    /// A torn write at the end, to cut off with
    /// [`JournalDir::cut_torn`] and report.
    pub torn: Option<Torn>,
    /// With `keep_good_prefix`: the bad record replay stopped before, to
    /// cut with [`JournalDir::cut_corrupt`] and report.
    pub corrupt: Option<Corruption>,
}

/// Rebuilds the books from the newest valid checkpoint and every record
/// after it, checking each (see [`Scanner`] and [`apply`]). Changes
/// nothing on disk: the caller cuts what [`Rebuilt::torn`] or
/// [`Rebuilt::corrupt`] name, once it decides to go on.
///
/// A bad record in the middle of the journal (corrupt, or one that does
/// not fit the books) is an error, unless `keep_good_prefix` is set: then
/// replay stops before it and says where, in [`Rebuilt::corrupt`].
///
/// # Errors
///
/// [`DiskError::NoCheckpoint`]; [`DiskError::Corrupt`] and
/// [`DiskError::Replay`] (without `keep_good_prefix`);
/// [`DiskError::Gap`] if records between the checkpoint and the journal
/// are missing; [`DiskError::Behind`] if the journal ends before the
/// checkpoint; I/O and validation errors of the files.
pub fn rebuild(dir: &JournalDir, keep_good_prefix: bool) -> Result<Rebuilt, DiskError> {
    let read = dir.latest_checkpoint()?;
    let ck = read.checkpoint;
    let mut state = ck.state;
    let mut scanner = Scanner::new(dir, ck.seq + 1)?;
    let mut replayed = 0;
    let mut corrupt = None;
    let mut stopped_at = None;
    for item in scanner.by_ref() {
        let s = match item {
            Ok(s) => s,
            Err(DiskError::Corrupt {
                file,
                offset,
                reason,
            }) if keep_good_prefix => {
                let first = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(super::file::parse_name)
                    .unwrap_or(0);
                corrupt = Some(Corruption {
                    path: file,
                    file: first,
                    offset,
                    reason,
                });
                break;
            }
            Err(e) => return Err(e),
        };
        let path = || dir.file_path(&super::file::file_name(s.file));
        if replayed == 0 && s.record.seq != ck.seq + 1 {
            return Err(DiskError::Gap {
                file: path(),
                expected: ck.seq + 1,
                found: s.record.seq,
            });
        }
        if let Err(e) = apply(&mut state, &s.record) {
            if !keep_good_prefix {
                return Err(DiskError::Replay {
                    file: path(),
                    offset: s.offset,
                    source: e,
                });
            }
            corrupt = Some(Corruption {
                path: path(),
                file: s.file,
                offset: s.offset,
                reason: e.to_string(),
            });
            stopped_at = Some(Tail {
                file: s.file,
                offset: s.offset,
                next_seq: s.record.seq,
            });
            break;
        }
        replayed += 1;
    }
    let tail = stopped_at.or_else(|| scanner.tail());
    if let Some(t) = tail
        && t.next_seq <= ck.seq
    {
        return Err(DiskError::Behind {
            path: dir.path().to_path_buf(),
            last: t.next_seq.saturating_sub(1),
            checkpoint: ck.seq,
        });
    }
    Ok(Rebuilt {
        state,
        checkpoint: ck.seq,
        skipped: read.skipped,
        replayed,
        tail,
        torn: scanner.torn().cloned(),
        corrupt,
    })
}

impl Balances {
    /// The balances of `account` in the home currency and in currency
    /// `ci` of `state`, if it has that account: what a record of an
    /// operation on it carries.
    #[must_use]
    pub fn of(state: &State, account: &str, ci: usize) -> Option<Balances> {
        let a = state.accounts.iter().find(|a| a.name == account)?;
        Some(Balances {
            home: *a.balances.first()?,
            code: *a.balances.get(ci)?,
        })
    }
}

#[cfg(test)]
mod tests;
