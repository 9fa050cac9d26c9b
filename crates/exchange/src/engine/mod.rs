//! The exchange in its segment: creation, opening, the operations under the
//! robust mutex with the undo-record protocol, crash recovery, and
//! lock-free snapshots through the seqlock.
//!
//! # The protocol of a mutation
//!
//! All under the mutex:
//!
//! 1. take the lock; if its previous owner died (or an undo record is
//!    still active), roll back from the undo record first;
//! 2. check the operation against the books (a refusal changes nothing);
//! 3. write the undo record: the old value of every field the operation
//!    will touch, its sequence number and its journal record, then mark it
//!    active;
//! 4. open a seqlock write, apply the changes, append the journal record,
//!    advance the sequence number;
//! 5. clear the undo record, close the seqlock write, unlock.
//!
//! A process killed anywhere in 3–5 leaves either an inactive undo record
//! (the operation never started, or is complete) or an active one, which
//! the next lock holder applies backwards. Closing the seqlock write only
//! after the undo record is cleared means readers never see the effects of
//! an operation that will be rolled back: until recovery, the sequence
//! stays odd and readers retry (and after a while take the lock, which
//! recovers).
//!
//! # Where each step lives
//!
//! * `open.rs`: creating, opening and validating, removing;
//! * `lock.rs`: step 1, taking the mutex and entering recovery;
//! * `checks.rs`, `trade.rs`, `cash.rs`, `accounts.rs`, `orders.rs`,
//!   `rates.rs`: step 2 and the changes of step 4, a file per kind of
//!   mutation;
//! * `undo.rs`: steps 3 and 5, and the rollback;
//! * `journal.rs`: the records of step 4, written and read back;
//! * `read.rs`: the seqlock snapshots; `lookup.rs`: names and ids.
#![forbid(unsafe_code)]

mod accounts;
mod cash;
mod checks;
mod journal;
mod lock;
mod lookup;
mod open;
mod orders;
mod rates;
mod read;
#[cfg(test)]
mod tests;
mod trade;
mod undo;

use std::sync::atomic::{AtomicI64, Ordering};

use shm::Managed;

use crate::error::OpenError;
use crate::failpoint::Failpoint;
use crate::layout::{AccountName, CurrencyRow, Geometry, Head, Record};
use crate::state::Capacity;
use crate::types::{Code, CurrencyId, Op};
use lock::Probe;

pub use rates::{RateChange, check_rates};

const R: Ordering = Ordering::Relaxed;

/// An exchange segment, attached to this process.
///
/// Operations go through an [`Engine`], borrowed from it with
/// [`Exchange::engine`].
///
/// # Examples
///
/// ```
/// use exchange::{Config, Exchange, money};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let id = shm::SegmentId::posix(format!("shmex-doc-ex-{}", std::process::id()))?;
/// let (config, _notes) = Config::builtin();
/// let ex = Exchange::create(&id, &config.into_state()?, &[], 0o600)?;
/// let e = ex.engine();
/// let (alice, _) = e.open_account("alice")?;
/// let dollar = e.currency("DOLLAR").unwrap();
/// let r = e.buy(alice, dollar, money::parse_amount("3", 2)?)?;
/// assert_eq!(money::Amount::new(r.total, 2).to_string(), "41.16");
/// assert!(e.check()?.is_empty());
/// ex.remove()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Exchange {
    m: Managed,
    geo: Geometry,
    codes: Vec<Code>,
    decimals: Vec<u32>,
    failpoint: Failpoint,
}

/// What a successful operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Its sequence number in the journal.
    pub seq: u64,
    /// What was done.
    pub op: Op,
    /// The currency.
    pub currency: CurrencyId,
    /// The amount, in the currency's minor units.
    pub amount: i64,
    /// The rate applied (0 where none applies).
    pub rate: i64,
    /// Home minor units paid or received (buy, sell); the amount itself
    /// for deposits, withdrawals and openings.
    pub total: i64,
    /// The account's balance in `currency` afterwards.
    pub balance: i64,
}

/// One row of a quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteRow {
    /// The currency.
    pub code: Code,
    /// Its decimals.
    pub decimals: u32,
    /// The rate at which the exchange buys it.
    pub buy: i64,
    /// The rate at which the exchange sells it.
    pub sell: i64,
    /// The exchange's stock (the till for the home currency).
    pub holding: i64,
}

/// Figures about the exchange itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// Room.
    pub capacity: Capacity,
    /// Currencies in use, home included.
    pub currencies: usize,
    /// Accounts open (closed ones not counted).
    pub accounts: usize,
    /// Account slots used, closed accounts' included: a closed account's
    /// slot is not reused, so `capacity.accounts - slots` more can open.
    pub slots: usize,
    /// Sequence number of the next operation.
    pub next_seq: u64,
    /// Crashed operations rolled back so far.
    pub recoveries: u64,
    /// Opening balance of a new account, in home minor units.
    pub opening: i64,
}

/// The operations on one attached exchange, for one thread.
///
/// Mutations take the exchange's robust mutex; reads (`quote`, `state`,
/// `check`, `balances`, `journal`) take consistent snapshots through its
/// seqlock and never block traders.
pub struct Engine<'a> {
    ex: &'a Exchange,
    head: &'a Head,
    rows: &'a [CurrencyRow],
    names: &'a [AccountName],
    balances: &'a [AtomicI64],
    journal: &'a [Record],
    slots: usize,
    pid: u32,
    fp: Failpoint,
    probe: Option<Probe>,
}

impl std::fmt::Debug for Engine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("exchange", self.ex.id())
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// Whether this exchange's segment was removed (`destroy`, or `init
    /// --force` replacing it) while this process is attached: nobody else
    /// will see what is done to it from now on, so a long-running process
    /// (a trade loop, a board) should stop. One system call: a caller in a
    /// loop asks every so often, not at every operation.
    ///
    /// # Errors
    ///
    /// The segment layer's, if the kernel cannot say.
    pub fn is_removed(&self) -> Result<bool, OpenError> {
        Ok(self.m.segment().is_removed()?)
    }
}
