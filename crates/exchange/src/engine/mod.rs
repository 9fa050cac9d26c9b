//! The exchange in its segment: creation, opening, the operations under the
//! process lock with the undo-record protocol, crash recovery, and
//! lock-free snapshots through the seqlock.
//!
//! # The protocol of a mutation
//!
//! All under the lock:
//!
//! 1. take the lock; if its previous holder died (or an undo record is
//!    still active, or the seqlock was left odd), recover first;
//! 2. check the operation against the books (a refusal changes nothing),
//!    validating every value it reads from the segment;
//! 3. write the undo record: the old value of every field the operation
//!    will touch, its sequence number (`committed_seq + 1`) and its
//!    journal record, then mark it active;
//! 4. open a seqlock write, apply the changes, write the journal record;
//! 5. commit: advance `committed_seq` to the operation's; clear the undo
//!    record, close the seqlock write, unlock.
//!
//! A process killed anywhere in 3–5 leaves either an inactive undo record
//! (the operation never started, or is complete), an active one whose
//! sequence number is committed (complete: it is only cleared), or an
//! active one one past `committed_seq`, which the next lock holder applies
//! backwards; the rollback's journal record then takes the dead
//! operation's sequence number and slot, which no reader has read since
//! readers stop at `committed_seq`. Closing the seqlock write only after
//! the undo record is cleared means readers never see the effects of an
//! operation that will be rolled back: until recovery, the sequence stays
//! odd and readers retry (and after a while take the lock, which
//! recovers).
//!
//! # A segment is a trust boundary
//!
//! Any process that can write the segment can change any byte at any time.
//! So every count, index and value read from it is checked before use:
//! capacities against the segment's size, counts against capacities,
//! account indexes against the slots in use and their closed marks (under
//! the lock), names, codes, rates, the undo record and journal records.
//! What cannot be is [`OpError::Corrupt`](crate::OpError::Corrupt) (or,
//! for values such as balances that may be anything, a violation `check`
//! reports); never a panic, a hang, or a wrong answer.
//!
//! # Where each step lives
//!
//! * `open.rs`: creating, opening and validating, removing;
//! * `lock.rs`: step 1, taking the lock and entering recovery;
//! * `checks.rs`, `trade.rs`, `cash.rs`, `accounts.rs`, `orders.rs`,
//!   `rates.rs`: step 2 and the changes of step 4, a file per kind of
//!   mutation;
//! * `undo.rs`: steps 3 and 5, and the rollback;
//! * `journal.rs`: the records of step 4, written and read back;
//! * `durable.rs`: the journal on disk: group commit
//!   ([`Engine::wait_durable`]), the ring guard (in `next_seq`, step 2),
//!   checkpoints;
//! * `read.rs`: the seqlock snapshots; `lookup.rs`: names and ids.
#![forbid(unsafe_code)]

mod accounts;
mod cash;
mod checks;
mod durable;
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
use std::time::Duration;

use shm::Managed;

use crate::error::OpenError;
use crate::failpoint::Failpoint;
use crate::layout::{AccountName, CurrencyRow, Geometry, Head, Record};
use crate::state::Capacity;
use crate::types::{Code, CurrencyId, Op};
use lock::Probe;

pub use durable::JournalInit;
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
    /// How long an operation waits for the lock.
    lock_wait: Duration,
    /// The exchange as messages name it.
    what: String,
    /// The journal on disk, if there is one.
    journal: Option<durable::Journal>,
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
/// Mutations take the exchange's process lock; reads (`quote`, `state`,
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
    /// Whether records must be durable before their ring slot is reused.
    durable: bool,
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
