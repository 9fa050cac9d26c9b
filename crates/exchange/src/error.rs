//! Error types, one per kind of operation.
#![forbid(unsafe_code)]

use shm::sync::LockError;

pub use crate::failpoint::FailpointError;
pub use crate::layout::CapacityError;
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
    /// A state or capacity that can never make an exchange (bad input).
    #[error(transparent)]
    Invalid(#[from] StateError),
    /// `SHMEX_FAILPOINT` names no failpoint.
    #[error(transparent)]
    Failpoint(#[from] FailpointError),
    /// `SHMEX_LOCK_TIMEOUT` holds no duration.
    #[error(transparent)]
    LockTimeout(#[from] LockTimeoutError),
    /// The exchange was made in another pid or time namespace, where the
    /// thread ids and start times its lock records mean something else.
    #[error(
        "exchange {what} was made in another {which} namespace: its lock cannot tell whether holders from there are alive; use it from the namespace that made it"
    )]
    ForeignNamespace {
        /// The exchange.
        what: String,
        /// `pid` or `time`.
        which: &'static str,
    },
    /// The segment layer failed.
    #[error(transparent)]
    Segment(shm::Error),
    /// The journal directory or one of its files cannot be used.
    #[error(transparent)]
    Journal(#[from] crate::disk::DiskError),
    /// A journal directory path too long for the segment to record.
    #[error(
        "the journal directory path {path} is {len} bytes, longer than {max}: choose a shorter one with --journal DIR"
    )]
    JournalPath {
        /// The path.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// The longest path the segment records.
        max: usize,
    },
}

impl From<shm::Error> for OpenError {
    fn from(e: shm::Error) -> Self {
        OpenError::Segment(e)
    }
}

impl OpenError {
    /// A stable machine code for the error, for `--json` answers (see the
    /// README's table). A segment-layer error is `segment_error` here; a
    /// program that knows the segment layer's errors may say more.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            OpenError::Missing { .. } => "no_exchange",
            OpenError::Exists { .. } => "exchange_exists",
            OpenError::Corrupt { .. } => "corrupt_exchange",
            OpenError::Invalid(_) => "invalid_books",
            OpenError::Failpoint(_) => "invalid_failpoint",
            OpenError::LockTimeout(_) => "invalid_lock_timeout",
            OpenError::ForeignNamespace { .. } => "foreign_namespace",
            OpenError::Segment(_) => "segment_error",
            OpenError::Journal(_) | OpenError::JournalPath { .. } => "journal_error",
        }
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
    #[error(transparent)]
    BadName(#[from] NameError),
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
    /// The lock could not be had: held too long by a live process, or the
    /// wait was interrupted by a signal.
    #[error("exchange {what}: {source}{hint}", hint = if matches!(source, LockError::Timeout { .. }) { " (SHMEX_LOCK_TIMEOUT sets how long to wait)" } else { "" })]
    Lock {
        /// The exchange.
        what: String,
        /// Why.
        source: LockError,
    },
    /// Something read from the segment cannot be: a peer wrote into it, or
    /// memory was damaged. Nothing was changed by the operation.
    #[error("exchange {what} is corrupted: {reason}")]
    Corrupt {
        /// The exchange.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// No open account has that name: accounts are opened explicitly,
    /// never by an order.
    #[error("{}", unknown_account(.name, .suggestion.as_deref()))]
    UnknownAccount {
        /// The name asked for.
        name: String,
        /// The open account with the closest name, if one is close.
        suggestion: Option<String>,
    },
    /// Opening an account that is open already.
    #[error("account {name:?} is already open")]
    AccountExists {
        /// The account.
        name: String,
    },
    /// Closing an account that still holds money.
    #[error(
        "account {name:?} still holds {holdings}: withdraw (or sell) everything before closing it"
    )]
    AccountNotEmpty {
        /// The account.
        name: String,
        /// What it holds, e.g. `958.84 TRY, 3.00 DOLLAR`.
        holdings: String,
    },
    /// A rate change beyond the limit asked for (a guard against typos).
    #[error(
        "{code}: the {side} rate would move from {old} to {new} ({}.{} %), more than {limit} %; confirm with --yes", .permille / 10, .permille % 10
    )]
    RateMove {
        /// The currency.
        code: String,
        /// `buy` or `sell`.
        side: &'static str,
        /// The rate now.
        old: String,
        /// The rate asked for.
        new: String,
        /// How far it would move, in tenths of a percent of the old rate.
        permille: u64,
        /// The limit, in percent.
        limit: u32,
    },
    /// An order for an account that was closed after it was looked up
    /// (by a trade loop that started before the close).
    #[error("account {name:?} is closed: open it again with `shmex exchange open {name}`")]
    AccountClosed {
        /// The account.
        name: String,
    },
    /// Another process truncated the exchange's segment under this one:
    /// what it reads now is zeros, not the books.
    #[error(transparent)]
    Truncated(#[from] shm::Truncated),
    /// The journal on disk cannot be written: the operation's record may
    /// not be durable, so it is not acknowledged.
    #[error("exchange {what}: the journal on disk cannot be written: {reason}")]
    Journal {
        /// The exchange.
        what: String,
        /// Why, naming the directory or file.
        reason: String,
    },
    /// The journal on disk did not catch up in time: a record was not
    /// durable by the deadline (it is not acknowledged), or the ring had no
    /// free slot for a new one (which then changed nothing).
    #[error(
        "exchange {what}: record {seq} was not on disk after {waited} (the disk has records up to {durable}; SHMEX_DURABLE_TIMEOUT sets how long to wait)"
    )]
    JournalBehind {
        /// The exchange.
        what: String,
        /// The record waited for.
        seq: u64,
        /// The last durable record.
        durable: u64,
        /// How long it waited, e.g. `10 s`.
        waited: String,
    },
}

fn unknown_account(name: &str, suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!(
            "no account {name:?}; did you mean {s}? (`shmex exchange open {name}` opens a new one)"
        ),
        None => format!("no account {name:?}: open it first with `shmex exchange open {name}`"),
    }
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

    /// Whether the error ends a session with the exchange rather than one
    /// order: its segment is corrupted or truncated, or its lock cannot be
    /// had.
    #[must_use]
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            OpError::Corrupt { .. }
                | OpError::Lock { .. }
                | OpError::Truncated(_)
                | OpError::Journal { .. }
                | OpError::JournalBehind { .. }
        )
    }

    /// The termination signal that cut a wait for the lock short, if that
    /// is what happened.
    #[must_use]
    pub fn signal(&self) -> Option<i32> {
        match self {
            OpError::Lock {
                source: LockError::Interrupted(sig),
                ..
            } => Some(*sig),
            _ => None,
        }
    }

    /// A stable machine code for the error, for `--json` answers (see the
    /// README's table).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            OpError::InsufficientStock { .. } => "insufficient_stock",
            OpError::InsufficientBalance { .. } => "insufficient_balance",
            OpError::InsufficientHolding { .. } => "insufficient_holding",
            OpError::TillShort { .. } => "till_short",
            OpError::Money(e) => e.code(),
            OpError::BadRates { .. } => "invalid_rates",
            OpError::HomeCurrency { .. } => "home_currency",
            OpError::BadName(_) => "invalid_account_name",
            OpError::AccountsFull { .. } => "accounts_full",
            OpError::BadId(_) => "invalid_id",
            OpError::Lock { source, .. } => match source {
                LockError::Timeout { .. } => "lock_timeout",
                LockError::Interrupted(_) => "interrupted",
                // Its owner word was overwritten while this process held it.
                LockError::Stolen => "corrupt_exchange",
                _ => "lock_unusable",
            },
            OpError::Corrupt { .. } => "corrupt_exchange",
            OpError::UnknownAccount { .. } => "unknown_account",
            OpError::AccountExists { .. } => "account_exists",
            OpError::AccountNotEmpty { .. } => "account_not_empty",
            OpError::AccountClosed { .. } => "account_closed",
            OpError::RateMove { .. } => "confirmation_needed",
            OpError::Truncated(_) => "truncated",
            OpError::Journal { .. } => "journal_error",
            OpError::JournalBehind { .. } => "journal_behind",
        }
    }
}

/// Why a state cannot make an exchange: what [`Exchange::create`] refuses.
///
/// [`Exchange::create`]: crate::Exchange::create
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A capacity out of range.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// The books fail [`State::check`](crate::State::check): one line per
    /// violation.
    #[error("{}", .0.join("; "))]
    Books(Vec<String>),
    /// More journal records than the journal holds.
    #[error("{records} journal records exceed the journal capacity of {capacity}")]
    Journal {
        /// The records given.
        records: usize,
        /// The journal's capacity.
        capacity: usize,
    },
}

/// A text that is not a currency code: what [`Code::new`] refuses.
///
/// [`Code::new`]: crate::Code::new
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid currency code {text:?}: 1 to 8 ASCII letters or digits, starting with a letter, such as DOLLAR"
)]
pub struct CodeError {
    /// The text given.
    pub text: String,
}

/// A malformed account name: what
/// [`check_account_name`](crate::check_account_name) refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid account name {name:?}: use 1 to 32 characters from A-Z, a-z, 0-9, '_', '.' and '-'"
)]
pub struct NameError {
    /// The name given.
    pub name: String,
}

/// `SHMEX_LOCK_TIMEOUT` holds no duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid SHMEX_LOCK_TIMEOUT {value:?}: give the seconds to wait for the exchange's lock, such as 10 or 0.5"
)]
pub struct LockTimeoutError {
    /// The variable's value.
    pub value: String,
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

impl From<CodeError> for TableError {
    fn from(e: CodeError) -> Self {
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

impl SnapshotError {
    /// A stable machine code for the error, for `--json` answers.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            SnapshotError::Check(_) => "snapshot_unbalanced",
            _ => "invalid_snapshot",
        }
    }
}

impl From<TableError> for SnapshotError {
    fn from(e: TableError) -> Self {
        SnapshotError::Invalid(e.0)
    }
}
