//! The shmex currency exchange: the seed's exchange table, made safe for
//! many trader processes at once.
//!
//! The exchange lives in one managed shared-memory segment (POSIX or
//! System V) and holds, for every foreign currency, the rates at which it
//! buys and sells and its stock, a till of home currency, the customers'
//! accounts, the totals that conservation needs, and a journal ring.
//!
//! * Money is exact decimal fixed point ([`money`]): amounts in minor
//!   units, rates in millionths, products in 128 bits; a buy's price rounds
//!   up and a sell's proceeds round down, to the exchange's favour.
//! * Every mutation ([`Engine::buy`], [`Engine::sell`], [`Engine::deposit`],
//!   [`Engine::withdraw`], [`Engine::set_rate`], [`Engine::open_account`],
//!   [`Engine::close_account`]) is atomic under one process-shared lock
//!   ([`shm::sync::ProcessLock`]), with an undo record that the next lock
//!   holder rolls back if the owner dies mid-operation.
//! * Everything read from the segment is validated before use: a peer that
//!   writes into it can make operations fail with [`OpError::Corrupt`] or
//!   make [`State::check`] report damage, never crash or hang a process.
//! * Readers ([`Engine::quote`], [`Engine::state`], [`Engine::check`]) take
//!   consistent snapshots through a seqlock and never block traders.
//! * [`State::check`] verifies conservation for every currency (the
//!   exchange's holding plus all account holdings equals genesis plus
//!   deposits minus withdrawals), non-negativity and `0 < buy <= sell`.
//!
//! A customer **buys** `AMOUNT` of `CODE`: pays `AMOUNT × sell rate` in home
//! currency (rounded up); the stock goes down, the till up. A customer
//! **sells**: receives `AMOUNT × buy rate` (rounded down); the stock goes
//! up, the till down.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
pub mod disk;
mod engine;
mod error;
pub mod failpoint;
mod layout;
pub mod money;
pub mod snapshot;
mod state;
mod types;

pub use config::{Config, CurrencySpec};
pub use engine::{Engine, Exchange, Info, JournalInit, QuoteRow, RateChange, Receipt, check_rates};
pub use error::{
    CapacityError, CodeError, FailpointError, LockTimeoutError, NameError, OpError, OpenError,
    SnapshotError, StateError, TableError,
};
pub use layout::{DIR_MAX, MAX_ACCOUNTS, MAX_CURRENCIES, MAX_JOURNAL, NAME_MAX};
pub use state::{AccountState, Capacity, CurrencyState, Entry, State};
pub use types::{AccountId, Code, CurrencyId, Op, Order, check_account_name};

/// What an exchange's segment holds, as its header records it. A program
/// that lists segments registers it ([`shm::register_kind`]) so that
/// listings and errors call such segments exchanges.
pub const KIND: shm::Kind = shm::Kind::new(3, "exchange");
