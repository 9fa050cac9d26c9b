//! The exchange's layout in its segment: every shared field is an atomic in
//! a `shared_struct!`, and the variable-size parts (currency rows, account
//! names, balances, journal) follow the head at offsets computed from the
//! capacities, all 64-byte aligned.
//!
//! ```text
//! Head | CurrencyRow × C | AccountName × A | balance (AtomicI64) × A·C | Record × J
//! ```
//!
//! Currency row 0 is the home currency; its `holding` is the till. Account
//! `a` holds currency `c` in balance `a·C + c`.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};

use shm::sync::{ProcessLock, SeqLock};

/// Format of the payload; bumped when the layout changes meaning.
/// v2: closed accounts (the top bit of a name's length).
/// v3: the process lock in place of glibc's robust mutex, the creator's
/// namespaces, and `committed_seq` in place of `next_seq`.
/// v4: the durable journal on disk (the [`Durable`] words), and each ring
/// record's resulting balances.
pub(crate) const FORMAT: u64 = 0x5845_0004; // "XE" v4

/// Most fields one operation changes (a trade changes four).
pub(crate) const MAX_UNDO: usize = 6;

/// Longest account name.
pub const NAME_MAX: usize = 32;

shm::shared_struct! {
    /// The fixed part of the exchange.
    pub(crate) struct Head {
        /// Guards every mutation.
        pub lock: ProcessLock,
        /// Lets readers take consistent snapshots without the lock.
        pub seq: SeqLock,
        /// [`FORMAT`].
        pub format: AtomicU64,
        /// The creator's pid and time namespaces (`shm::sync::namespaces`):
        /// the lock's owner identities mean something only within them.
        pub namespaces: [AtomicU64; 2],
        /// Currency capacity (home included).
        pub cap_currencies: AtomicU64,
        /// Account capacity.
        pub cap_accounts: AtomicU64,
        /// Journal capacity (records).
        pub cap_journal: AtomicU64,
        /// Currencies in use (home included); fixed at creation.
        pub n_currencies: AtomicU64,
        /// Accounts open (undoable: an `open` that is rolled back restores it).
        pub n_accounts: AtomicI64,
        /// The sequence number of the last committed operation (0: none);
        /// the next one gets one more. Journal readers read records up to
        /// it and no further: a record beyond it belongs to an operation
        /// that may still be rolled back, whose rollback then takes the
        /// same sequence number and slot.
        pub committed_seq: AtomicU64,
        /// Opening balance of a new account, in home minor units.
        pub opening: AtomicI64,
        /// Creation time, ns since the epoch.
        pub created_ns: AtomicU64,
        /// How many crashed operations were rolled back.
        pub recoveries: AtomicU64,
        /// Spare, zero.
        pub reserved: [AtomicU64; 4],
        /// The undo record of the operation in progress.
        pub undo: Undo,
        /// The journal on disk, if there is one.
        pub durable: Durable,
    }

    /// Where the journal on disk is, and how far it goes. Written at
    /// creation; then `durable_seq`, `turn`, `disk_file` and `disk_offset`
    /// change only under `flush_lock` (never the main lock), and the
    /// checkpoint words only under `checkpoint_lock`.
    pub(crate) struct Durable {
        /// 1: records are made durable in the journal directory; 0: memory
        /// only (`--no-journal`).
        pub on: AtomicU64,
        /// The exchange id every file and record of the journal carries.
        pub exchange_id: AtomicU64,
        /// Bytes of the journal directory's absolute path.
        pub dir_len: AtomicU64,
        /// The path, packed little-endian.
        pub dir: [AtomicU64; DIR_WORDS],
        /// Held by the flush leader.
        pub flush_lock: ProcessLock,
        /// Held by whoever writes a checkpoint.
        pub checkpoint_lock: ProcessLock,
        /// The highest sequence number on disk and synced (`fdatasync`).
        pub durable_seq: AtomicU64,
        /// The first sequence number of the journal file being written.
        pub disk_file: AtomicU64,
        /// Where durable data ends in that file.
        pub disk_offset: AtomicU64,
        /// The sequence number of the newest checkpoint.
        pub checkpoint_seq: AtomicU64,
        /// When it was written, ns since the epoch.
        pub checkpoint_ns: AtomicU64,
        /// How many flushes (`fdatasync`s) made records durable.
        pub flushes: AtomicU64,
        /// Bumped after every flush; waiters sleep on it.
        pub turn: AtomicU32,
        /// Spare, zero.
        pub spare: AtomicU32,
    }

    /// What to restore if the lock holder dies mid-operation.
    pub(crate) struct Undo {
        /// 1 while an operation is applying its changes.
        pub active: AtomicU64,
        /// The operation's sequence number.
        pub seq: AtomicU64,
        /// Entries in `fields`/`olds`.
        pub count: AtomicU64,
        /// Encoded field references (see `Field`).
        pub fields: [AtomicU64; MAX_UNDO],
        /// Their values before the operation.
        pub olds: [AtomicI64; MAX_UNDO],
        /// The journal record the operation would have written, so that the
        /// rollback record says what was undone.
        pub pending: Record,
    }

    /// One currency.
    pub(crate) struct CurrencyRow {
        /// Code, ASCII, zero-padded, packed little-endian.
        pub code: AtomicU64,
        /// Decimals of its amounts.
        pub decimals: AtomicU64,
        /// Rate at which the exchange buys it (millionths of home per unit).
        pub buy: AtomicI64,
        /// Rate at which the exchange sells it.
        pub sell: AtomicI64,
        /// The exchange's stock of it (the till, for the home currency).
        pub holding: AtomicI64,
        /// What existed at creation.
        pub genesis: AtomicI64,
        /// Sum of all deposits (opening balances included).
        pub deposits: AtomicI64,
        /// Sum of all withdrawals.
        pub withdrawals: AtomicI64,
    }

    /// An account's name; written once, before the account count includes it
    /// (only its closed mark changes later).
    pub(crate) struct AccountName {
        /// Bytes used; the top bit marks the account closed.
        pub len: AtomicU64,
        /// Up to 32 bytes, packed little-endian.
        pub bytes: [AtomicU64; 4],
    }

    /// One journal record. `seq` is 0 while the record is being written, so
    /// that a reader can tell a torn record from a whole one.
    pub(crate) struct Record {
        /// Sequence number (0: empty or being written).
        pub seq: AtomicU64,
        /// Wall-clock time, ns since the epoch.
        pub time_ns: AtomicU64,
        /// op | currency << 8 | undone op << 16 | pid << 32.
        pub meta: AtomicU64,
        /// Amount, in the currency's minor units.
        pub amount: AtomicI64,
        /// Rate applied (the sell rate, for set-rate).
        pub rate: AtomicI64,
        /// Total paid or received in home minor units (the amount itself
        /// for deposits, withdrawals and openings).
        pub total: AtomicI64,
        /// set-rate: the new buy rate; rollback: the undone operation's pid.
        pub extra: AtomicI64,
        /// Account name length.
        pub name_len: AtomicU64,
        /// Account name bytes.
        pub name: [AtomicU64; 4],
        /// The account's home balance after the operation (receipt data
        /// for the journal on disk; 0 where the operation has none).
        pub bal_home: AtomicI64,
        /// Its balance of the record's currency after the operation.
        pub bal_code: AtomicI64,
    }
}

/// Words of the journal directory's path in the segment.
pub(crate) const DIR_WORDS: usize = 32;
/// Longest journal directory path, in bytes.
pub const DIR_MAX: usize = DIR_WORDS * 8;

const fn align64(n: u64) -> u64 {
    (n + 63) & !63
}

/// Offsets of the variable parts, computed from the capacities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub currencies: usize,
    pub accounts: usize,
    pub journal: usize,
    pub off_rows: usize,
    pub off_names: usize,
    pub off_balances: usize,
    pub off_journal: usize,
    pub size: u64,
}

/// Largest capacities accepted.
pub const MAX_CURRENCIES: usize = 256;
/// Largest account capacity.
pub const MAX_ACCOUNTS: usize = 1 << 20;
/// Largest journal capacity.
pub const MAX_JOURNAL: usize = 1 << 22;

impl Geometry {
    /// The geometry for these capacities, or which one is out of range.
    pub fn new(
        currencies: usize,
        accounts: usize,
        journal: usize,
    ) -> Result<Geometry, CapacityError> {
        if !(2..=MAX_CURRENCIES).contains(&currencies) {
            return Err(CapacityError::Currencies(currencies));
        }
        if !(1..=MAX_ACCOUNTS).contains(&accounts) {
            return Err(CapacityError::Accounts(accounts));
        }
        if !(1..=MAX_JOURNAL).contains(&journal) {
            return Err(CapacityError::Journal(journal));
        }
        let (c, a, j) = (currencies as u64, accounts as u64, journal as u64);
        let off_rows = align64(std::mem::size_of::<Head>() as u64);
        let off_names = align64(off_rows + c * std::mem::size_of::<CurrencyRow>() as u64);
        let off_balances = align64(off_names + a * std::mem::size_of::<AccountName>() as u64);
        let off_journal = align64(off_balances + a * c * 8);
        let size = align64(off_journal + j * std::mem::size_of::<Record>() as u64);
        Ok(Geometry {
            currencies,
            accounts,
            journal,
            off_rows: off_rows as usize,
            off_names: off_names as usize,
            off_balances: off_balances as usize,
            off_journal: off_journal as usize,
            size,
        })
    }
}

/// The bit of an account slot's name length that marks the account
/// closed.
pub(crate) const CLOSED: u64 = 1 << 63;

/// Packs up to 8 ASCII bytes.
pub(crate) fn pack8(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_le_bytes(b)
}

/// A capacity out of the range an exchange can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// Room for currencies, the home currency included.
    #[error(
        "currency capacity {0} is out of range: it counts the home currency and must be 2 to {MAX_CURRENCIES}"
    )]
    Currencies(usize),
    /// Room for accounts.
    #[error("account capacity {0} is out of range: 1 to {MAX_ACCOUNTS}")]
    Accounts(usize),
    /// Room for journal records.
    #[error("journal capacity {0} is out of range: 1 to {MAX_JOURNAL}")]
    Journal(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_what_the_format_says() {
        assert_eq!(std::mem::size_of::<CurrencyRow>(), 64);
        assert_eq!(std::mem::size_of::<Record>(), 112);
        assert_eq!(std::mem::size_of::<AccountName>(), 40);
        let g = Geometry::new(16, 1024, 8192).unwrap();
        assert_eq!(g.off_rows % 64, 0);
        assert_eq!(g.off_journal % 64, 0);
        assert_eq!(Geometry::new(1, 1, 1), Err(CapacityError::Currencies(1)));
        assert_eq!(Geometry::new(2, 0, 1), Err(CapacityError::Accounts(0)));
        assert_eq!(Geometry::new(2, 1, 0), Err(CapacityError::Journal(0)));
        assert_eq!(
            Geometry::new(257, 1, 1).unwrap_err().to_string(),
            "currency capacity 257 is out of range: it counts the home currency and must be 2 to 256"
        );
    }

    /// The payload offsets that the command line's hostile-peer tests
    /// (`crates/cli/tests/hostile_exchange.rs`) write to: change them
    /// together.
    #[test]
    fn offsets_the_hostile_tests_write_to() {
        use std::mem::{offset_of, size_of};
        assert_eq!(offset_of!(Head, lock), 0);
        assert_eq!(size_of::<ProcessLock>(), 16);
        assert_eq!(offset_of!(Head, seq), 16);
        assert_eq!(offset_of!(Head, cap_accounts), 56);
        assert_eq!(offset_of!(Head, n_currencies), 72);
        assert_eq!(offset_of!(Head, n_accounts), 80);
        assert_eq!(offset_of!(Head, committed_seq), 88);
        assert_eq!(offset_of!(Head, undo) + offset_of!(Undo, active), 152);
        assert_eq!(Geometry::new(16, 1024, 8192).unwrap().off_rows, 768);
        let durable = offset_of!(Head, durable);
        assert_eq!(durable + offset_of!(Durable, exchange_id), 392);
        assert_eq!(durable + offset_of!(Durable, dir_len), 400);
        assert_eq!(durable + offset_of!(Durable, dir), 408);
        assert_eq!(durable + offset_of!(Durable, durable_seq), 696);
        assert_eq!(offset_of!(CurrencyRow, sell), 24);
    }
}
