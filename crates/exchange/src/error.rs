//! Error types, one per kind of operation.
#![forbid(unsafe_code)]

use shm::sync::LockError;

use crate::money::MoneyError;

/// Why an exchange could not be created, opened or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Nothing has that name or key.
    #[error("exchange {what} does not exist: run `shmex exchange init` first")]
    Missing {
        /// The exchange, as the user names it.
        what: String,
    },
    /// Creation found one already there.
    #[error(
        "exchange {what} already exists: use --force to replace it, or run `shmex exchange destroy` first"
    )]
    Exists {
        /// The exchange.
        what: String,
    },
    /// The segment is an exchange whose contents make no sense.
    #[error("exchange {what} is corrupted: {reason}")]
    Corrupt {
        /// The exchange.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A table, capacity or setting that can never work (bad input).
    #[error("{0}")]
    Invalid(String),
    /// `SHMEX_FAILPOINT` names no failpoint.
    #[error("unknown failpoint {0:?} in SHMEX_FAILPOINT: known are {known}", known = crate::failpoint::NAMES.join(", "))]
    Failpoint(String),
    /// The lock could not be set up.
    #[error("cannot set up the exchange lock: {0}")]
    Lock(#[from] LockError),
    /// The segment layer failed.
    #[error(transparent)]
    Segment(shm::Error),
}

impl From<shm::Error> for OpenError {
    fn from(e: shm::Error) -> Self {
        OpenError::Segment(e)
    }
}

/// Why a mutation was refused or failed. Nothing changed in any case.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// A buy of more than the exchange holds.
    #[error("insufficient stock of {code}: the exchange holds {have}, {want} asked")]
    InsufficientStock {
        /// The currency.
        code: String,
        /// What the exchange holds.
        have: String,
        /// What was asked.
        want: String,
    },
    /// A buy whose price exceeds the customer's home balance.
    #[error("insufficient balance: {account} has {have} {home}, the price is {want} {home}")]
    InsufficientBalance {
        /// The account.
        account: String,
        /// The home currency.
        home: String,
        /// Its balance.
        have: String,
        /// The price.
        want: String,
    },
    /// A sell or withdrawal of more than the account holds.
    #[error("insufficient holding: {account} holds {have} {code}, {want} asked")]
    InsufficientHolding {
        /// The account.
        account: String,
        /// The currency.
        code: String,
        /// What it holds.
        have: String,
        /// What was asked.
        want: String,
    },
    /// A sell whose proceeds exceed the till.
    #[error("the till is short: it holds {have} {home}, the proceeds are {want} {home}")]
    TillShort {
        /// The home currency.
        home: String,
        /// The till.
        have: String,
        /// The proceeds.
        want: String,
    },
    /// A value that would not fit (bad input: an absurd amount).
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// Rates that break `0 < buy <= sell` (bad input).
    #[error("invalid rates for {code}: {reason}")]
    BadRates {
        /// The currency.
        code: String,
        /// What is wrong.
        reason: String,
    },
    /// Buying, selling or quoting the home currency (bad input).
    #[error("{code} is the home currency: it is not bought or sold, only deposited and withdrawn")]
    HomeCurrency {
        /// The home currency.
        code: String,
    },
    /// A malformed account name (bad input).
    #[error("{0}")]
    BadName(String),
    /// No room for another account.
    #[error(
        "no room for account {name:?}: all {capacity} accounts are taken; make a larger exchange with `shmex exchange init --accounts N --force`"
    )]
    AccountsFull {
        /// The account asked for.
        name: String,
        /// The capacity.
        capacity: usize,
    },
    /// An account or currency identifier from another exchange.
    #[error("no account or currency number {0} in this exchange")]
    BadId(usize),
    /// The lock failed.
    #[error("the exchange lock is unusable: {0}")]
    Lock(LockError),
    /// Readers could not get a consistent view in time.
    #[error("the exchange is busy: no consistent view within {0} ms; try again")]
    Busy(u64),
}

impl OpError {
    /// Whether the error means the input itself was wrong (exit status 2)
    /// rather than refused by the state of the exchange (exit status 1).
    #[must_use]
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            OpError::Money(_)
                | OpError::BadRates { .. }
                | OpError::HomeCurrency { .. }
                | OpError::BadName(_)
                | OpError::BadId(_)
        )
    }
}

/// A table (from `init --table` or a snapshot) that cannot make an exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TableError(pub String);

impl From<MoneyError> for TableError {
    fn from(e: MoneyError) -> Self {
        TableError(e.to_string())
    }
}

/// Why a snapshot file could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not TOML, or not the snapshot's shape.
    #[error("it is not a valid snapshot: {0}")]
    Parse(String),
    /// Another format or version.
    #[error(
        "it has format {format:?} version {version}, but this shmex reads \"shmex-exchange-snapshot\" version 1"
    )]
    Version {
        /// The format field.
        format: String,
        /// The version field.
        version: i64,
    },
    /// A field that cannot be.
    #[error("it is invalid: {0}")]
    Invalid(String),
    /// Well-formed, but its books do not balance.
    #[error("it fails check: {0}")]
    Check(String),
}

impl From<TableError> for SnapshotError {
    fn from(e: TableError) -> Self {
        SnapshotError::Invalid(e.0)
    }
}
