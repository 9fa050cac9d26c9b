//! Test-only failpoints: `SHMEX_FAILPOINT=NAME` makes the process abort at a
//! named point inside a mutation, holding the lock, so that crash recovery
//! can be tested deterministically; or, for `hold-in-trade`, pause there
//! with the lock held (`SHMEX_FAILPOINT_HOLD_MS`, 1000 by default), so that
//! a test can do something to a lock that is held.
//!
//! The variable is read once per process; an [`Engine`](crate::Engine)
//! keeps the result in a field, so an unarmed failpoint costs one compare
//! of a register.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

/// A named point where a process may be made to abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failpoint {
    /// None armed.
    Off,
    /// In a buy or sell, after the undo record is written and the stock
    /// changed, before the till and the balances.
    MidTrade,
    /// In a deposit or withdrawal, after the balance changed, before the
    /// totals.
    MidDeposit,
    /// In set-rate, after the buy rate changed, before the sell rate.
    MidSetRate,
    /// In opening an account, after the name is written and the account
    /// counted, before its opening deposit is totalled.
    MidOpen,
    /// In any mutation, after its journal record, before the undo record is
    /// cleared (the operation is then undone, as a whole).
    AfterJournal,
    /// While rolling back a crashed operation, after its first field is
    /// restored: the next process must roll back again.
    MidRollback,
    /// In a buy or sell, with the lock held, before anything is read:
    /// pauses, then carries on.
    HoldInTrade,
    /// In the flush leader, after the records are written to the journal
    /// file and before `fdatasync`: the next leader must cut what it
    /// wrote and write it again.
    MidFlush,
}

/// The names `SHMEX_FAILPOINT` accepts.
pub const NAMES: [&str; 8] = [
    "mid-trade",
    "mid-deposit",
    "mid-set-rate",
    "mid-open",
    "after-journal",
    "mid-rollback",
    "hold-in-trade",
    "mid-flush",
];

impl Failpoint {
    /// The failpoint of that name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Failpoint> {
        Some(match name {
            "" => Failpoint::Off,
            "mid-trade" => Failpoint::MidTrade,
            "mid-deposit" => Failpoint::MidDeposit,
            "mid-set-rate" => Failpoint::MidSetRate,
            "mid-open" => Failpoint::MidOpen,
            "after-journal" => Failpoint::AfterJournal,
            "mid-rollback" => Failpoint::MidRollback,
            "hold-in-trade" => Failpoint::HoldInTrade,
            "mid-flush" => Failpoint::MidFlush,
            _ => return None,
        })
    }
}

/// `SHMEX_FAILPOINT` holds a name that is no failpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failpoint {value:?} in SHMEX_FAILPOINT: known are {known}", known = NAMES.join(", "))]
pub struct FailpointError {
    /// The variable's value.
    pub value: String,
}

static ARMED: OnceLock<Result<Failpoint, FailpointError>> = OnceLock::new();

/// The failpoint armed for this process by `SHMEX_FAILPOINT`.
///
/// # Errors
///
/// [`FailpointError`] with the variable's value, if it names no failpoint.
pub fn armed() -> Result<Failpoint, FailpointError> {
    ARMED
        .get_or_init(|| match std::env::var("SHMEX_FAILPOINT") {
            Ok(v) => Failpoint::from_name(v.trim()).ok_or(FailpointError { value: v }),
            Err(_) => Ok(Failpoint::Off),
        })
        .clone()
}

/// Aborts the process if `point` is `armed`.
#[inline(always)]
pub(crate) fn hit(armed: Failpoint, point: Failpoint) {
    if armed == point {
        hit_cold();
    }
}

#[cold]
#[inline(never)]
fn hit_cold() {
    std::process::abort();
}

/// Pauses for `SHMEX_FAILPOINT_HOLD_MS` (1000 by default) if `point` is
/// `armed`.
#[inline(always)]
pub(crate) fn hold(armed: Failpoint, point: Failpoint) {
    if armed == point {
        hold_cold();
    }
}

#[cold]
#[inline(never)]
fn hold_cold() {
    let ms = std::env::var("SHMEX_FAILPOINT_HOLD_MS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1000);
    std::thread::sleep(std::time::Duration::from_millis(ms));
}
