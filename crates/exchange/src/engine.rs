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
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicI64, Ordering, fence};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shm::header::Layout;
use shm::sync::{LockError, MutexGuard, SeqWriteGuard};
use shm::{Access, Lifetime, Managed, ManagedOptions, SegmentId};

use crate::error::{OpError, OpenError};
use crate::failpoint::{self, Failpoint};
use crate::layout::{
    AccountName, CurrencyRow, FORMAT, Geometry, Head, MAX_UNDO, Record, pack_name, unpack_name,
};
use crate::money::{self, Amount, MoneyError, Round};
use crate::state::{AccountState, Capacity, CurrencyState, Entry, State};
use crate::types::{AccountId, Code, CurrencyId, Op, Order, check_account_name};

const R: Ordering = Ordering::Relaxed;

/// How long a reader retries the seqlock before it takes the lock instead
/// (which also recovers from a writer that died mid-write).
const READ_PATIENCE: Duration = Duration::from_millis(50);
/// How long a reader waits for the lock after that.
const READ_LOCK_WAIT: Duration = Duration::from_secs(10);
/// Tries at the mutex while spinning (16, 32, … up to 1024 pauses between
/// tries: about 100 µs in all), then while yielding, before blocking.
const SPIN_ROUNDS: u32 = 10;
const SPIN_FIRST: u32 = 16;
const SPIN_MAX: u32 = 1024;
const YIELD_ROUNDS: u32 = 16;

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

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn armed() -> Result<Failpoint, OpenError> {
    failpoint::armed().map_err(OpenError::Failpoint)
}

impl Exchange {
    /// Creates an exchange holding `state` (and the journal records
    /// `journal`, oldest first), exclusively, with permission bits `mode`.
    ///
    /// # Errors
    ///
    /// [`OpenError::Invalid`] if `state` fails [`State::check`] or does not
    /// fit its capacity; [`OpenError::Exists`] if the name or key is taken;
    /// [`OpenError::Segment`] for other segment errors.
    pub fn create(
        id: &SegmentId,
        state: &State,
        journal: &[Entry],
        mode: u32,
    ) -> Result<Exchange, OpenError> {
        let fp = armed()?;
        let cap = state.capacity;
        let geo =
            Geometry::new(cap.currencies, cap.accounts, cap.journal).map_err(OpenError::Invalid)?;
        let violations = state.check();
        if !violations.is_empty() {
            return Err(OpenError::Invalid(violations.join("; ")));
        }
        if journal.len() > cap.journal {
            return Err(OpenError::Invalid(format!(
                "{} journal records exceed the journal capacity of {}",
                journal.len(),
                cap.journal
            )));
        }
        let opts = ManagedOptions {
            kind: crate::KIND,
            lifetime: Lifetime::Persistent,
            mode,
            layout: Layout::of::<Head>(),
            payload_size: geo.size,
        };
        let what = id.to_string();
        let m =
            Managed::create(id, &opts, |m| write_state(m, &geo, state, journal)).map_err(|e| {
                match e {
                    OpenError::Segment(shm::Error::Exists { .. }) => {
                        OpenError::Exists { what: what.clone() }
                    }
                    e => e,
                }
            })?;
        Ok(Exchange {
            m,
            geo,
            codes: state.currencies.iter().map(|c| c.code).collect(),
            decimals: state.currencies.iter().map(|c| c.decimals).collect(),
            failpoint: fp,
        })
    }

    /// Opens an existing exchange and validates its layout.
    ///
    /// # Errors
    ///
    /// [`OpenError::Missing`] if there is none; [`OpenError::Corrupt`] if
    /// its contents make no sense; [`OpenError::Segment`] if the segment
    /// is not an exchange of this version, or cannot be attached.
    pub fn open(id: &SegmentId) -> Result<Exchange, OpenError> {
        let fp = armed()?;
        let m = Managed::open(
            id,
            Access::ReadWrite,
            crate::KIND,
            &Layout::of::<Head>(),
            shm::DEFAULT_READY_WAIT,
        )
        .map_err(|e| match e {
            shm::Error::NotFound { .. } => OpenError::Missing {
                what: id.to_string(),
            },
            e => OpenError::Segment(e),
        })?;
        let corrupt = |reason: String| OpenError::Corrupt {
            what: id.to_string(),
            reason,
        };
        let head: &Head = m.payload_view(0)?;
        let format = head.format.load(Ordering::Acquire);
        if format != FORMAT {
            return Err(corrupt(format!(
                "payload format {format:#x}, expected {FORMAT:#x}"
            )));
        }
        let cap = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let geo = Geometry::new(
            cap(head.cap_currencies.load(R)),
            cap(head.cap_accounts.load(R)),
            cap(head.cap_journal.load(R)),
        )
        .map_err(corrupt)?;
        if (m.payload_len() as u64) < geo.size {
            return Err(corrupt(format!(
                "its capacities need {} bytes but the payload has {}",
                geo.size,
                m.payload_len()
            )));
        }
        let n = cap(head.n_currencies.load(R));
        if n == 0 || n > geo.currencies {
            return Err(corrupt(format!("it counts {n} currencies")));
        }
        let rows: &[CurrencyRow] = m.payload_slice(geo.off_rows, n)?;
        let mut codes = Vec::with_capacity(n);
        let mut decimals = Vec::with_capacity(n);
        for (i, r) in rows.iter().enumerate() {
            let code = Code::from_packed(r.code.load(R))
                .ok_or_else(|| corrupt(format!("currency {i} has an invalid code")))?;
            let d = r.decimals.load(R);
            if d > u64::from(money::MAX_DECIMALS) {
                return Err(corrupt(format!("{code} has {d} decimals")));
            }
            codes.push(code);
            decimals.push(d as u32);
        }
        let ex = Exchange {
            m,
            geo,
            codes,
            decimals,
            failpoint: fp,
        };
        // Every view must be available before `engine` promises them.
        ex.try_engine()?;
        Ok(ex)
    }

    /// Opens the exchange at `id` and removes it.
    ///
    /// # Errors
    ///
    /// As [`Exchange::open`], or the segment error of the removal.
    pub fn destroy(id: &SegmentId) -> Result<(), OpenError> {
        Exchange::open(id)?.remove()
    }

    /// Removes this exchange's segment. Processes attached to it keep it
    /// until they detach.
    ///
    /// # Errors
    ///
    /// The segment layer's error.
    pub fn remove(&self) -> Result<(), OpenError> {
        Ok(self.m.remove()?)
    }

    /// Its name or key.
    #[must_use]
    pub fn id(&self) -> &SegmentId {
        self.m.id()
    }

    /// Its room.
    #[must_use]
    pub fn capacity(&self) -> Capacity {
        Capacity {
            currencies: self.geo.currencies,
            accounts: self.geo.accounts,
            journal: self.geo.journal,
        }
    }

    /// Creation time, ns since the epoch.
    #[must_use]
    pub fn created_ns(&self) -> u64 {
        self.m.created_ns()
    }

    fn try_engine(&self) -> Result<Engine<'_>, shm::Error> {
        let g = &self.geo;
        Ok(Engine {
            ex: self,
            head: self.m.payload_view(0)?,
            rows: self.m.payload_slice(g.off_rows, self.codes.len())?,
            names: self.m.payload_slice(g.off_names, g.accounts)?,
            balances: self
                .m
                .payload_slice(g.off_balances, g.accounts * g.currencies)?,
            journal: self.m.payload_slice(g.off_journal, g.journal)?,
            slots: g.currencies,
            pid: std::process::id(),
            fp: self.failpoint,
            probe: None,
        })
    }

    /// The operations on this exchange.
    ///
    /// # Panics
    ///
    /// Never: every view was validated when the exchange was opened or
    /// created, and the segment's size cannot change.
    #[must_use]
    pub fn engine(&self) -> Engine<'_> {
        self.try_engine()
            .expect("views validated when the exchange was opened")
    }
}

fn write_state(
    m: &Managed,
    geo: &Geometry,
    state: &State,
    journal: &[Entry],
) -> Result<(), OpenError> {
    let head: &Head = m.payload_view(0)?;
    let rows: &[CurrencyRow] = m.payload_slice(geo.off_rows, state.currencies.len())?;
    let names: &[AccountName] = m.payload_slice(geo.off_names, geo.accounts)?;
    let balances: &[AtomicI64] =
        m.payload_slice(geo.off_balances, geo.accounts * geo.currencies)?;
    let records: &[Record] = m.payload_slice(geo.off_journal, geo.journal)?;
    head.lock.init()?;
    head.cap_currencies.store(geo.currencies as u64, R);
    head.cap_accounts.store(geo.accounts as u64, R);
    head.cap_journal.store(geo.journal as u64, R);
    head.n_currencies.store(state.currencies.len() as u64, R);
    head.n_accounts.store(state.accounts.len() as i64, R);
    head.next_seq.store(state.next_seq.max(1), R);
    head.opening.store(state.opening, R);
    head.created_ns.store(now_ns(), R);
    for (row, c) in rows.iter().zip(&state.currencies) {
        row.code.store(c.code.packed(), R);
        row.decimals.store(u64::from(c.decimals), R);
        row.buy.store(c.buy, R);
        row.sell.store(c.sell, R);
        row.holding.store(c.holding, R);
        row.genesis.store(c.genesis, R);
        row.deposits.store(c.deposits, R);
        row.withdrawals.store(c.withdrawals, R);
    }
    for (i, a) in state.accounts.iter().enumerate() {
        let words = pack_name(a.name.as_bytes());
        names[i].len.store(a.name.len() as u64, R);
        for (w, v) in names[i].bytes.iter().zip(words) {
            w.store(v, R);
        }
        for (c, &b) in a.balances.iter().enumerate() {
            balances[i * geo.currencies + c].store(b, R);
        }
    }
    let cap = geo.journal as u64;
    for e in journal {
        let rec = &records[(e.seq % cap) as usize];
        let p = Pending {
            meta: meta(e.op, e.currency, e.undone, e.pid),
            amount: e.amount,
            rate: e.rate,
            total: e.total,
            extra: e.extra,
            name_len: e.account.len() as u64,
            name: pack_name(e.account.as_bytes()),
            time_ns: e.time_ns,
        };
        write_record(rec, e.seq, &p);
    }
    head.format.store(FORMAT, Ordering::Release);
    Ok(())
}

fn meta(op: Op, currency: usize, undone: Option<Op>, pid: u32) -> u64 {
    u64::from(op.code())
        | ((currency as u64 & 0xff) << 8)
        | (u64::from(undone.map_or(0, Op::code)) << 16)
        | (u64::from(pid) << 32)
}

/// A journal record in plain values, written to the undo record and then
/// to the journal.
#[derive(Clone, Copy, Debug)]
struct Pending {
    meta: u64,
    amount: i64,
    rate: i64,
    total: i64,
    extra: i64,
    name_len: u64,
    name: [u64; 4],
    time_ns: u64,
}

fn write_record(rec: &Record, seq: u64, p: &Pending) {
    rec.seq.store(0, R);
    // The zero must be visible before any field changes (readers check it).
    fence(Ordering::Release);
    rec.time_ns.store(p.time_ns, R);
    rec.meta.store(p.meta, R);
    rec.amount.store(p.amount, R);
    rec.rate.store(p.rate, R);
    rec.total.store(p.total, R);
    rec.extra.store(p.extra, R);
    rec.name_len.store(p.name_len, R);
    for (w, v) in rec.name.iter().zip(p.name) {
        w.store(v, R);
    }
    rec.seq.store(seq, Ordering::Release);
}

fn read_pending(rec: &Record) -> Pending {
    Pending {
        meta: rec.meta.load(R),
        amount: rec.amount.load(R),
        rate: rec.rate.load(R),
        total: rec.total.load(R),
        extra: rec.extra.load(R),
        name_len: rec.name_len.load(R),
        name: [
            rec.name[0].load(R),
            rec.name[1].load(R),
            rec.name[2].load(R),
            rec.name[3].load(R),
        ],
        time_ns: rec.time_ns.load(R),
    }
}

/// A field an operation may change, as the undo record names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Holding(usize),
    Balance(usize),
    Deposits(usize),
    Withdrawals(usize),
    Buy(usize),
    Sell(usize),
    Accounts,
}

impl Field {
    fn encode(self) -> u64 {
        let (k, i) = match self {
            Field::Holding(i) => (1, i),
            Field::Balance(i) => (2, i),
            Field::Deposits(i) => (3, i),
            Field::Withdrawals(i) => (4, i),
            Field::Buy(i) => (5, i),
            Field::Sell(i) => (6, i),
            Field::Accounts => (7, 0),
        };
        (k << 56) | i as u64
    }

    fn decode(w: u64) -> Option<Field> {
        let i = usize::try_from(w & ((1 << 56) - 1)).ok()?;
        Some(match w >> 56 {
            1 => Field::Holding(i),
            2 => Field::Balance(i),
            3 => Field::Deposits(i),
            4 => Field::Withdrawals(i),
            5 => Field::Buy(i),
            6 => Field::Sell(i),
            7 => Field::Accounts,
            _ => return None,
        })
    }
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
    /// Accounts open.
    pub accounts: usize,
    /// Sequence number of the next operation.
    pub next_seq: u64,
    /// Crashed operations rolled back so far.
    pub recoveries: u64,
    /// Opening balance of a new account, in home minor units.
    pub opening: i64,
}

struct Probe {
    every: u32,
    n: Cell<u32>,
    samples: RefCell<Vec<u32>>,
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

/// A valid account name as the segment stores it: its length and its
/// packed words.
fn packed(name: &str) -> Result<(u64, [u64; 4]), OpError> {
    check_account_name(name).map_err(OpError::BadName)?;
    Ok((name.len() as u64, pack_name(name.as_bytes())))
}

/// The account a refusal names: an open one, or one not opened yet.
#[derive(Clone, Copy)]
enum Who<'n> {
    Slot(usize),
    Named(&'n str),
}

impl<'a> Engine<'a> {
    // ---- lookups ----------------------------------------------------------

    /// The currencies: codes and decimals, home first. Fixed at creation.
    #[must_use]
    pub fn currencies(&self) -> Vec<(Code, u32)> {
        self.ex
            .codes
            .iter()
            .copied()
            .zip(self.ex.decimals.iter().copied())
            .collect()
    }

    /// The currency with `code` (any case), if this exchange has it.
    #[must_use]
    pub fn currency(&self, code: &str) -> Option<CurrencyId> {
        let c = Code::new(code).ok()?;
        self.ex
            .codes
            .iter()
            .position(|&x| x == c)
            .map(|i| CurrencyId(i as u16))
    }

    /// The code of a currency.
    #[must_use]
    pub fn code(&self, c: CurrencyId) -> Code {
        self.ex
            .codes
            .get(c.index())
            .copied()
            .unwrap_or(self.ex.codes[0])
    }

    /// The decimals of a currency.
    #[must_use]
    pub fn decimals(&self, c: CurrencyId) -> u32 {
        self.ex.decimals.get(c.index()).copied().unwrap_or(2)
    }

    /// The home currency's code.
    #[must_use]
    pub fn home(&self) -> Code {
        self.ex.codes[0]
    }

    fn accounts_open(&self) -> usize {
        let n = self.head.n_accounts.load(Ordering::Acquire);
        usize::try_from(n).unwrap_or(0).min(self.names.len())
    }

    /// Account `i`'s name as stored: its length and its packed words.
    fn name_words(&self, i: usize) -> (u64, [u64; 4]) {
        let n = &self.names[i];
        (n.len.load(R), std::array::from_fn(|k| n.bytes[k].load(R)))
    }

    fn name_at(&self, i: usize) -> String {
        let (len, words) = self.name_words(i);
        unpack_name(len, words).unwrap_or_else(|| "?".to_owned())
    }

    fn name_matches(&self, i: usize, len: u64, words: &[u64; 4]) -> bool {
        let n = &self.names[i];
        n.len.load(R) == len && n.bytes.iter().zip(words).all(|(w, v)| w.load(R) == *v)
    }

    /// The open account named `name`, without taking the lock.
    #[must_use]
    pub fn account(&self, name: &str) -> Option<AccountId> {
        let (len, words) = packed(name).ok()?;
        self.find_account(len, &words).map(|i| AccountId(i as u32))
    }

    /// The name of an account.
    #[must_use]
    pub fn account_name(&self, a: AccountId) -> String {
        if a.index() < self.names.len() {
            self.name_at(a.index())
        } else {
            "?".to_owned()
        }
    }

    /// Figures about the exchange.
    #[must_use]
    pub fn info(&self) -> Info {
        Info {
            capacity: self.ex.capacity(),
            currencies: self.rows.len(),
            accounts: self.accounts_open(),
            next_seq: self.head.next_seq.load(Ordering::Acquire),
            recoveries: self.head.recoveries.load(R),
            opening: self.head.opening.load(R),
        }
    }

    // ---- hold-time probe --------------------------------------------------

    /// Records how long the lock is held by every `every`-th mutation of
    /// this engine (0 stops it), for benchmarks.
    pub fn sample_hold_times(&mut self, every: u32) {
        self.probe = (every > 0).then(|| Probe {
            every,
            n: Cell::new(0),
            samples: RefCell::new(Vec::new()),
        });
    }

    /// The lock hold times recorded so far, in ns; clears them.
    pub fn take_hold_times(&self) -> Vec<u32> {
        self.probe
            .as_ref()
            .map(|p| std::mem::take(&mut *p.samples.borrow_mut()))
            .unwrap_or_default()
    }

    // ---- the lock and recovery --------------------------------------------

    /// Takes the mutex: tries while spinning with exponential backoff,
    /// then while yielding the CPU, then blocks in the kernel.
    ///
    /// Backing off lets the holder run several operations with its cache
    /// lines hot instead of handing the lock (and every line the operation
    /// touches) to the other core each time; yielding lets a holder that
    /// was preempted run again; and staying out of the kernel as long as
    /// that keeps unlocking cheap, since once a waiter sleeps there every
    /// unlock is a system call.
    fn acquire(&self) -> Result<MutexGuard<'a>, LockError> {
        let m = &self.head.lock;
        let mut pause = SPIN_FIRST;
        for round in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            match m.try_lock() {
                Err(LockError::WouldBlock) => {}
                r => return r,
            }
            if round < SPIN_ROUNDS {
                for _ in 0..pause {
                    std::hint::spin_loop();
                }
                pause = (pause * 2).min(SPIN_MAX);
            } else {
                std::thread::yield_now();
            }
        }
        m.lock()
    }

    fn lock(&self) -> Result<MutexGuard<'a>, OpError> {
        let mut g = self.acquire().map_err(OpError::Lock)?;
        if g.owner_died() || self.head.undo.active.load(R) != 0 {
            self.recover(&mut g)?;
        }
        Ok(g)
    }

    /// Runs a mutation under the lock.
    #[inline]
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, OpError>) -> Result<T, OpError> {
        let g = self.lock()?;
        let start = match &self.probe {
            Some(p) => {
                let n = p.n.get().wrapping_add(1);
                p.n.set(n);
                (n % p.every == 0).then(Instant::now)
            }
            None => None,
        };
        let r = f();
        if let (Some(t), Some(p)) = (start, &self.probe) {
            let ns = t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32;
            p.samples.borrow_mut().push(ns);
        }
        drop(g);
        r
    }

    /// Rolls back the operation of a lock holder that died, repairs the
    /// seqlock, journals the rollback and marks the mutex consistent.
    #[cold]
    #[inline(never)]
    fn recover(&self, g: &mut MutexGuard<'_>) -> Result<(), OpError> {
        let u = &self.head.undo;
        if u.active.load(R) != 0 {
            let seq = u.seq.load(R);
            let count = usize::try_from(u.count.load(R)).unwrap_or(0).min(MAX_UNDO);
            let pending = read_pending(&u.pending);
            // The sequence is odd if the dead writer was mid-write; a write
            // keeps it odd until the rollback is complete either way.
            let w = self.head.seq.write();
            for i in 0..count {
                if let Some(cell) = Field::decode(u.fields[i].load(R)).and_then(|f| self.cell(f)) {
                    cell.store(u.olds[i].load(R), R);
                }
                if i == 0 {
                    failpoint::hit(self.fp, Failpoint::MidRollback);
                }
            }
            let undone_op = Op::from_code((pending.meta & 0xff) as u8);
            let rollback = Pending {
                meta: meta(
                    Op::Rollback,
                    ((pending.meta >> 8) & 0xff) as usize,
                    undone_op,
                    self.pid,
                ),
                extra: i64::from((pending.meta >> 32) as u32),
                time_ns: now_ns(),
                ..pending
            };
            let seq = seq.max(1);
            write_record(self.record(seq), seq, &rollback);
            self.head.next_seq.store(seq + 1, R);
            self.head.recoveries.fetch_add(1, R);
            u.active.store(0, Ordering::Release);
            drop(w);
        } else {
            self.head.seq.repair();
        }
        g.mark_consistent().map_err(OpError::Lock)
    }

    fn cell(&self, f: Field) -> Option<&'a AtomicI64> {
        let rows = self.rows;
        match f {
            Field::Holding(i) => rows.get(i).map(|r| &r.holding),
            Field::Balance(i) => self.balances.get(i),
            Field::Deposits(i) => rows.get(i).map(|r| &r.deposits),
            Field::Withdrawals(i) => rows.get(i).map(|r| &r.withdrawals),
            Field::Buy(i) => rows.get(i).map(|r| &r.buy),
            Field::Sell(i) => rows.get(i).map(|r| &r.sell),
            Field::Accounts => Some(&self.head.n_accounts),
        }
    }

    fn record(&self, seq: u64) -> &'a Record {
        &self.journal[(seq % self.journal.len() as u64) as usize]
    }

    /// Step 3: the undo record. Returns the sequence number.
    #[inline]
    fn begin(&self, touched: &[(Field, i64)], p: &Pending) -> u64 {
        let u = &self.head.undo;
        let seq = self.head.next_seq.load(R);
        for (i, (f, old)) in touched.iter().enumerate() {
            u.fields[i].store(f.encode(), R);
            u.olds[i].store(*old, R);
        }
        u.count.store(touched.len() as u64, R);
        u.seq.store(seq, R);
        write_record(&u.pending, seq, p);
        // Everything above must be in memory before `active` says so.
        u.active.store(1, Ordering::Release);
        seq
    }

    /// Step 4's end and step 5.
    #[inline]
    fn commit(&self, seq: u64, p: &Pending, w: SeqWriteGuard<'_>) {
        write_record(self.record(seq), seq, p);
        self.head.next_seq.store(seq + 1, R);
        failpoint::hit(self.fp, Failpoint::AfterJournal);
        self.head.undo.active.store(0, Ordering::Release);
        drop(w);
    }

    fn pending(
        &self,
        op: Op,
        c: usize,
        a: Option<usize>,
        amount: i64,
        rate: i64,
        total: i64,
    ) -> Pending {
        let (name_len, name) = a.map_or((0, [0; 4]), |i| self.name_words(i));
        Pending {
            meta: meta(op, c, None, self.pid),
            amount,
            rate,
            total,
            extra: 0,
            name_len,
            name,
            time_ns: now_ns(),
        }
    }

    // ---- checks shared by the operations -----------------------------------

    fn foreign(&self, c: CurrencyId) -> Result<usize, OpError> {
        if c.index() == 0 {
            return Err(OpError::HomeCurrency {
                code: self.home().to_string(),
            });
        }
        self.any_currency(c)
    }

    fn any_currency(&self, c: CurrencyId) -> Result<usize, OpError> {
        Self::below(c.index(), self.rows.len())
    }

    fn acct(&self, a: AccountId) -> Result<usize, OpError> {
        Self::below(a.index(), self.names.len())
    }

    /// `i` if it indexes a table of `n` entries.
    fn below(i: usize, n: usize) -> Result<usize, OpError> {
        if i < n { Ok(i) } else { Err(OpError::BadId(i)) }
    }

    fn positive(amount: i64, decimals: u32) -> Result<(), OpError> {
        if amount > 0 {
            return Ok(());
        }
        let text = Amount::new(amount, decimals).to_string();
        Err(OpError::Money(if amount == 0 {
            MoneyError::Zero {
                what: "amount",
                text,
            }
        } else {
            MoneyError::Invalid {
                what: "amount",
                text,
                reason: "negative values are not allowed".into(),
            }
        }))
    }

    fn show(&self, c: usize, v: i64) -> String {
        Amount::new(v, self.ex.decimals[c]).to_string()
    }

    fn overflow(what: &'static str) -> OpError {
        OpError::Money(MoneyError::Overflow(what))
    }

    // ---- mutations -------------------------------------------------------

    /// Opens the account `name` with the opening balance (journalled as an
    /// `open`, counted as a deposit), or finds it if it is open already.
    /// Returns the account and, if it was opened now, the receipt.
    ///
    /// # Errors
    ///
    /// [`OpError::BadName`], [`OpError::AccountsFull`], [`OpError::Lock`].
    pub fn open_account(&self, name: &str) -> Result<(AccountId, Option<Receipt>), OpError> {
        let (len, words) = packed(name)?;
        self.locked(|| {
            if let Some(i) = self.find_account(len, &words) {
                return Ok((AccountId(i as u32), None));
            }
            let (i, r) = self.open_locked(name, len, words)?;
            Ok((AccountId(i as u32), Some(r)))
        })
    }

    /// Carries out `order` for the account called `name`, opening the
    /// account first if it is new, but only if the order is accepted.
    ///
    /// For a new account the order is judged first against the balances a
    /// new account would have, and the opening and the order then happen
    /// under one hold of the lock: a refused order leaves no account and
    /// no journal record behind. (A process killed between the two leaves
    /// the account open and the order undone, each atomic.)
    ///
    /// Returns the account, the opening's receipt if it was opened now,
    /// and the order's receipt.
    ///
    /// # Errors
    ///
    /// [`OpError::BadName`], [`OpError::AccountsFull`], and as
    /// [`Engine::buy`], [`Engine::sell`], [`Engine::deposit`] and
    /// [`Engine::withdraw`].
    pub fn order_as(
        &self,
        name: &str,
        order: Order,
        c: CurrencyId,
        amount: i64,
    ) -> Result<(AccountId, Option<Receipt>, Receipt), OpError> {
        let (len, words) = packed(name)?;
        if let Some(i) = self.find_account(len, &words) {
            let a = AccountId(i as u32);
            return Ok((a, None, self.order(order, a, c, amount)?));
        }
        let ci = match order {
            Order::Buy | Order::Sell => self.foreign(c)?,
            Order::Deposit | Order::Withdraw => self.any_currency(c)?,
        };
        Self::positive(amount, self.ex.decimals[ci])?;
        self.locked(|| {
            // Another process may have opened it since the look above.
            if let Some(i) = self.find_account(len, &words) {
                let a = AccountId(i as u32);
                return Ok((a, None, self.order_locked(order, a, ci, amount)?));
            }
            // What a new account holds once opened: the opening balance in
            // the home currency, and the deposits total grown by as much.
            let opening = self.head.opening.load(R).max(0);
            let who = Who::Named(name);
            match order {
                Order::Buy | Order::Sell => {
                    let cells = [
                        self.rows[ci].holding.load(R),
                        self.rows[0].holding.load(R),
                        opening,
                        0,
                    ];
                    if order == Order::Buy {
                        self.plan_trade::<true>(ci, amount, cells, who)?;
                    } else {
                        self.plan_trade::<false>(ci, amount, cells, who)?;
                    }
                }
                Order::Deposit | Order::Withdraw => {
                    let op = Op::from(order);
                    let bal = if ci == 0 { opening } else { 0 };
                    let mut total = self.cash_total(op, ci).load(R);
                    if op == Op::Deposit && ci == 0 {
                        total = total
                            .checked_add(opening)
                            .ok_or_else(|| Self::overflow("the total of deposits"))?;
                    }
                    self.plan_cash(op, ci, amount, bal, total, who)?;
                }
            }
            let (i, opened) = self.open_locked(name, len, words)?;
            let a = AccountId(i as u32);
            Ok((a, Some(opened), self.order_locked(order, a, ci, amount)?))
        })
    }

    /// `order` for the open account `a`: [`Engine::buy`], [`Engine::sell`],
    /// [`Engine::deposit`] or [`Engine::withdraw`].
    ///
    /// # Errors
    ///
    /// As the operation.
    pub fn order(
        &self,
        order: Order,
        a: AccountId,
        c: CurrencyId,
        amount: i64,
    ) -> Result<Receipt, OpError> {
        match order {
            Order::Buy => self.buy(a, c, amount),
            Order::Sell => self.sell(a, c, amount),
            Order::Deposit => self.deposit(a, c, amount),
            Order::Withdraw => self.withdraw(a, c, amount),
        }
    }

    /// [`Engine::order`] with the lock held and currency `ci` checked.
    fn order_locked(
        &self,
        order: Order,
        a: AccountId,
        ci: usize,
        amount: i64,
    ) -> Result<Receipt, OpError> {
        let ai = self.acct(a)?;
        let op = Op::from(order);
        match order {
            Order::Buy | Order::Sell => {
                let p = self.pending(op, ci, Some(ai), amount, 0, 0);
                if order == Order::Buy {
                    self.trade_locked::<true>(ci, ai, amount, p)
                } else {
                    self.trade_locked::<false>(ci, ai, amount, p)
                }
            }
            Order::Deposit | Order::Withdraw => {
                let p = self.pending(op, ci, Some(ai), amount, 0, amount);
                self.cash_locked(op, ci, ai, amount, &p)
            }
        }
    }

    /// The open account with that packed name.
    fn find_account(&self, len: u64, words: &[u64; 4]) -> Option<usize> {
        (0..self.accounts_open()).find(|&i| self.name_matches(i, len, words))
    }

    /// Opens a new account, under the lock: the next slot, the opening
    /// balance, journalled.
    fn open_locked(
        &self,
        name: &str,
        len: u64,
        words: [u64; 4],
    ) -> Result<(usize, Receipt), OpError> {
        let n = self.accounts_open();
        if n >= self.names.len() {
            return Err(OpError::AccountsFull {
                name: name.to_owned(),
                capacity: self.names.len(),
            });
        }
        let home = &self.rows[0];
        let opening = self.head.opening.load(R).max(0);
        let deposits = home.deposits.load(R);
        let new_deposits = deposits
            .checked_add(opening)
            .ok_or_else(|| Self::overflow("the total of deposits"))?;
        let mut p = self.pending(Op::Open, 0, None, opening, 0, opening);
        p.name_len = len;
        p.name = words;
        let seq = self.begin(
            &[(Field::Accounts, n as i64), (Field::Deposits(0), deposits)],
            &p,
        );
        let w = self.head.seq.write();
        let slot = &self.names[n];
        slot.len.store(len, R);
        for (d, v) in slot.bytes.iter().zip(words) {
            d.store(v, R);
        }
        let base = n * self.slots;
        for b in &self.balances[base..base + self.slots] {
            b.store(0, R);
        }
        self.balances[base].store(opening, R);
        self.head.n_accounts.store(n as i64 + 1, Ordering::Release);
        failpoint::hit(self.fp, Failpoint::MidOpen);
        home.deposits.store(new_deposits, R);
        self.commit(seq, &p, w);
        Ok((
            n,
            Receipt {
                seq,
                op: Op::Open,
                currency: CurrencyId::HOME,
                amount: opening,
                rate: 0,
                total: opening,
                balance: opening,
            },
        ))
    }

    /// A customer buys `amount` (minor units) of foreign currency `c`: they
    /// pay `amount × sell rate`, rounded up, in home currency; the stock
    /// goes down and the till up.
    ///
    /// # Errors
    ///
    /// [`OpError::InsufficientStock`], [`OpError::InsufficientBalance`],
    /// [`OpError::HomeCurrency`], [`OpError::Money`] for a non-positive
    /// amount or an overflow, [`OpError::Lock`].
    pub fn buy(&self, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        self.trade::<true>(a, c, amount)
    }

    /// A customer sells `amount` of foreign currency `c`: they receive
    /// `amount × buy rate`, rounded down; the stock goes up and the till
    /// down.
    ///
    /// # Errors
    ///
    /// [`OpError::InsufficientHolding`], [`OpError::TillShort`], and as
    /// [`Engine::buy`].
    pub fn sell(&self, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        self.trade::<false>(a, c, amount)
    }

    /// A buy (`BUY`) or a sell: both move the same four cells (the stock
    /// of `c`, the till, the account's home and `c` balances), in opposite
    /// directions. A const parameter, not an argument, so that each side
    /// is compiled on its own, its lock and checks inlined as one path.
    #[inline(always)]
    fn trade<const BUY: bool>(
        &self,
        a: AccountId,
        c: CurrencyId,
        amount: i64,
    ) -> Result<Receipt, OpError> {
        let op = if BUY { Op::Buy } else { Op::Sell };
        let ci = self.foreign(c)?;
        let ai = self.acct(a)?;
        Self::positive(amount, self.ex.decimals[ci])?;
        // Built before the lock: the name and the clock need no lock.
        let p = self.pending(op, ci, Some(ai), amount, 0, 0);
        self.locked(|| self.trade_locked::<BUY>(ci, ai, amount, p))
    }

    /// The new values of a trade's four cells (the stock of `ci`, the till,
    /// the account's home and `ci` balances) from their values `cells`,
    /// with the rate and the total; or why it is refused. Changes nothing.
    #[inline(always)]
    fn plan_trade<const BUY: bool>(
        &self,
        ci: usize,
        amount: i64,
        cells: [i64; 4],
        who: Who<'_>,
    ) -> Result<(i64, i64, [i64; 4]), OpError> {
        let [stock, till, bh, bc] = cells;
        let row = &self.rows[ci];
        let dec = self.ex.decimals[ci];
        if BUY {
            if stock < amount {
                return Err(OpError::InsufficientStock {
                    code: self.ex.codes[ci].to_string(),
                    have: self.show(ci, stock),
                    want: self.show(ci, amount),
                });
            }
            let rate = row.sell.load(R);
            let price = money::convert(amount, dec, rate, self.ex.decimals[0], Round::Up)?;
            if bh < price {
                return Err(OpError::InsufficientBalance {
                    account: self.who(who),
                    home: self.home().to_string(),
                    have: self.show(0, bh),
                    want: self.show(0, price),
                });
            }
            let new_till = till
                .checked_add(price)
                .ok_or_else(|| Self::overflow("the till"))?;
            let new_bc = bc
                .checked_add(amount)
                .ok_or_else(|| Self::overflow("the balance"))?;
            Ok((rate, price, [stock - amount, new_till, bh - price, new_bc]))
        } else {
            if bc < amount {
                return Err(OpError::InsufficientHolding {
                    account: self.who(who),
                    code: self.ex.codes[ci].to_string(),
                    have: self.show(ci, bc),
                    want: self.show(ci, amount),
                });
            }
            let rate = row.buy.load(R);
            let proceeds = money::convert(amount, dec, rate, self.ex.decimals[0], Round::Down)?;
            if till < proceeds {
                return Err(OpError::TillShort {
                    home: self.home().to_string(),
                    have: self.show(0, till),
                    want: self.show(0, proceeds),
                });
            }
            let new_stock = stock
                .checked_add(amount)
                .ok_or_else(|| Self::overflow("the stock"))?;
            let new_bh = bh
                .checked_add(proceeds)
                .ok_or_else(|| Self::overflow("the balance"))?;
            Ok((
                rate,
                proceeds,
                [new_stock, till - proceeds, new_bh, bc - amount],
            ))
        }
    }

    /// A trade with the lock held: steps 2–5 of the protocol.
    #[inline(always)]
    fn trade_locked<const BUY: bool>(
        &self,
        ci: usize,
        ai: usize,
        amount: i64,
        mut p: Pending,
    ) -> Result<Receipt, OpError> {
        let op = if BUY { Op::Buy } else { Op::Sell };
        let row = &self.rows[ci];
        let home = &self.rows[0];
        let bh_cell = &self.balances[ai * self.slots];
        let bc_cell = &self.balances[ai * self.slots + ci];
        let stock = row.holding.load(R);
        let till = home.holding.load(R);
        let bh = bh_cell.load(R);
        let bc = bc_cell.load(R);
        let (rate, total, new) =
            self.plan_trade::<BUY>(ci, amount, [stock, till, bh, bc], Who::Slot(ai))?;
        (p.rate, p.total) = (rate, total);
        let seq = self.begin(
            &[
                (Field::Holding(ci), stock),
                (Field::Holding(0), till),
                (Field::Balance(ai * self.slots), bh),
                (Field::Balance(ai * self.slots + ci), bc),
            ],
            &p,
        );
        let w = self.head.seq.write();
        row.holding.store(new[0], R);
        failpoint::hit(self.fp, Failpoint::MidTrade);
        home.holding.store(new[1], R);
        bh_cell.store(new[2], R);
        bc_cell.store(new[3], R);
        self.commit(seq, &p, w);
        Ok(Receipt {
            seq,
            op,
            currency: CurrencyId(ci as u16),
            amount,
            rate,
            total,
            balance: new[3],
        })
    }

    /// Cash in: `amount` of any currency (home included) into the account.
    ///
    /// # Errors
    ///
    /// [`OpError::Money`] for a non-positive amount or an overflow,
    /// [`OpError::Lock`].
    pub fn deposit(&self, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        self.cash(Op::Deposit, a, c, amount)
    }

    /// Cash out: `amount` of any currency from the account.
    ///
    /// # Errors
    ///
    /// [`OpError::InsufficientHolding`], and as [`Engine::deposit`].
    pub fn withdraw(&self, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        self.cash(Op::Withdraw, a, c, amount)
    }

    fn cash(&self, op: Op, a: AccountId, c: CurrencyId, amount: i64) -> Result<Receipt, OpError> {
        let ci = self.any_currency(c)?;
        let ai = self.acct(a)?;
        Self::positive(amount, self.ex.decimals[ci])?;
        let p = self.pending(op, ci, Some(ai), amount, 0, amount);
        self.locked(|| self.cash_locked(op, ci, ai, amount, &p))
    }

    /// The total a deposit or a withdrawal of `ci` adds to.
    fn cash_total(&self, op: Op, ci: usize) -> &'a AtomicI64 {
        let row = &self.rows[ci];
        if op == Op::Deposit {
            &row.deposits
        } else {
            &row.withdrawals
        }
    }

    /// The new balance and total of a deposit or withdrawal from their
    /// values `bal` and `total`; or why it is refused. Changes nothing.
    fn plan_cash(
        &self,
        op: Op,
        ci: usize,
        amount: i64,
        bal: i64,
        total: i64,
        who: Who<'_>,
    ) -> Result<(i64, i64), OpError> {
        let new_bal = if op == Op::Deposit {
            bal.checked_add(amount)
                .ok_or_else(|| Self::overflow("the balance"))?
        } else {
            if bal < amount {
                return Err(OpError::InsufficientHolding {
                    account: self.who(who),
                    code: self.ex.codes[ci].to_string(),
                    have: self.show(ci, bal),
                    want: self.show(ci, amount),
                });
            }
            bal - amount
        };
        let new_total = total.checked_add(amount).ok_or_else(|| {
            Self::overflow(if op == Op::Deposit {
                "the total of deposits"
            } else {
                "the total of withdrawals"
            })
        })?;
        Ok((new_bal, new_total))
    }

    /// A deposit or withdrawal with the lock held.
    fn cash_locked(
        &self,
        op: Op,
        ci: usize,
        ai: usize,
        amount: i64,
        p: &Pending,
    ) -> Result<Receipt, OpError> {
        let cell = &self.balances[ai * self.slots + ci];
        let bal = cell.load(R);
        let total_cell = self.cash_total(op, ci);
        let field = if op == Op::Deposit {
            Field::Deposits(ci)
        } else {
            Field::Withdrawals(ci)
        };
        let total = total_cell.load(R);
        let (new_bal, new_total) = self.plan_cash(op, ci, amount, bal, total, Who::Slot(ai))?;
        let seq = self.begin(
            &[(Field::Balance(ai * self.slots + ci), bal), (field, total)],
            p,
        );
        let w = self.head.seq.write();
        cell.store(new_bal, R);
        failpoint::hit(self.fp, Failpoint::MidDeposit);
        total_cell.store(new_total, R);
        self.commit(seq, p, w);
        Ok(Receipt {
            seq,
            op,
            currency: CurrencyId(ci as u16),
            amount,
            rate: 0,
            total: amount,
            balance: new_bal,
        })
    }

    /// The name of the account a refusal is about.
    fn who(&self, who: Who<'_>) -> String {
        match who {
            Who::Slot(i) => self.name_at(i),
            Who::Named(name) => name.to_owned(),
        }
    }

    /// New quotes for foreign currency `c`; they must satisfy
    /// `0 < buy <= sell`.
    ///
    /// # Errors
    ///
    /// [`OpError::BadRates`], [`OpError::HomeCurrency`], [`OpError::Lock`].
    pub fn set_rate(&self, c: CurrencyId, buy: i64, sell: i64) -> Result<Receipt, OpError> {
        let ci = self.foreign(c)?;
        let code = self.ex.codes[ci];
        check_rates(code, buy, sell)?;
        self.locked(|| {
            let row = &self.rows[ci];
            let (old_buy, old_sell) = (row.buy.load(R), row.sell.load(R));
            let mut p = self.pending(Op::SetRate, ci, None, 0, sell, 0);
            p.extra = buy;
            let seq = self.begin(
                &[(Field::Buy(ci), old_buy), (Field::Sell(ci), old_sell)],
                &p,
            );
            let w = self.head.seq.write();
            row.buy.store(buy, R);
            failpoint::hit(self.fp, Failpoint::MidSetRate);
            row.sell.store(sell, R);
            self.commit(seq, &p, w);
            Ok(Receipt {
                seq,
                op: Op::SetRate,
                currency: c,
                amount: 0,
                rate: sell,
                total: 0,
                balance: 0,
            })
        })
    }

    // ---- reads -----------------------------------------------------------

    /// Runs `read` until it sees a consistent state; if writes never pause
    /// (or a writer died mid-write), reads under the lock instead, which
    /// also recovers the dead writer's operation.
    fn consistent<T>(&self, mut read: impl FnMut() -> T) -> Result<T, OpError> {
        if let Some(v) = self.head.seq.read(READ_PATIENCE, &mut read) {
            return Ok(v);
        }
        let mut g = match self.head.lock.lock_timeout(READ_LOCK_WAIT) {
            Ok(g) => g,
            Err(LockError::WouldBlock) => {
                return Err(OpError::Busy(
                    (READ_PATIENCE + READ_LOCK_WAIT).as_millis() as u64
                ));
            }
            Err(e) => return Err(OpError::Lock(e)),
        };
        if g.owner_died() || self.head.undo.active.load(R) != 0 {
            self.recover(&mut g)?;
        }
        Ok(read())
    }

    /// The quote (home row first, its holding is the till) into `out`,
    /// reusing its allocation: a consistent snapshot, without the lock.
    ///
    /// # Errors
    ///
    /// [`OpError::Busy`] or [`OpError::Lock`] only when a writer died and
    /// the lock cannot be had to recover.
    pub fn quote_into(&self, out: &mut Vec<QuoteRow>) -> Result<(), OpError> {
        let codes = &self.ex.codes;
        let decimals = &self.ex.decimals;
        let rows = self.rows;
        self.consistent(|| {
            out.clear();
            for (i, r) in rows.iter().enumerate() {
                out.push(QuoteRow {
                    code: codes[i],
                    decimals: decimals[i],
                    buy: r.buy.load(R),
                    sell: r.sell.load(R),
                    holding: r.holding.load(R),
                });
            }
        })
    }

    /// The quote, as [`Engine::quote_into`].
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn quote(&self) -> Result<Vec<QuoteRow>, OpError> {
        let mut v = Vec::with_capacity(self.rows.len());
        self.quote_into(&mut v)?;
        Ok(v)
    }

    /// An account's balances, indexed like [`Engine::currencies`].
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`], or [`OpError::BadId`].
    pub fn balances(&self, a: AccountId) -> Result<Vec<i64>, OpError> {
        let ai = self.acct(a)?;
        let n = self.rows.len();
        let cells = &self.balances[ai * self.slots..ai * self.slots + n];
        self.consistent(|| cells.iter().map(|c| c.load(R)).collect())
    }

    fn read_state(&self) -> State {
        let n_acc = self.accounts_open();
        let n = self.rows.len();
        State {
            currencies: self
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| CurrencyState {
                    code: self.ex.codes[i],
                    decimals: self.ex.decimals[i],
                    buy: r.buy.load(R),
                    sell: r.sell.load(R),
                    holding: r.holding.load(R),
                    genesis: r.genesis.load(R),
                    deposits: r.deposits.load(R),
                    withdrawals: r.withdrawals.load(R),
                })
                .collect(),
            accounts: (0..n_acc)
                .map(|i| AccountState {
                    name: self.name_at(i),
                    balances: self.balances[i * self.slots..i * self.slots + n]
                        .iter()
                        .map(|b| b.load(R))
                        .collect(),
                })
                .collect(),
            opening: self.head.opening.load(R),
            capacity: self.ex.capacity(),
            next_seq: self.head.next_seq.load(R),
        }
    }

    /// One consistent copy of the books, without the lock.
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn state(&self) -> Result<State, OpError> {
        self.consistent(|| self.read_state())
    }

    /// The books and the journal (oldest first), consistent with each
    /// other: what a snapshot file holds.
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn snapshot(&self) -> Result<(State, Vec<Entry>), OpError> {
        self.consistent(|| (self.read_state(), self.journal(None)))
    }

    /// Checks every invariant on a consistent copy of the books; returns
    /// the violations (empty: sound).
    ///
    /// # Errors
    ///
    /// As [`Engine::quote_into`].
    pub fn check(&self) -> Result<Vec<String>, OpError> {
        Ok(self.state()?.check())
    }

    /// The journal, oldest first: the last `tail` records, or all those
    /// the ring still holds. A record being overwritten while it is read
    /// is left out.
    #[must_use]
    pub fn journal(&self, tail: Option<usize>) -> Vec<Entry> {
        let next = self.head.next_seq.load(Ordering::Acquire);
        let cap = self.journal.len() as u64;
        let mut first = next.saturating_sub(cap).max(1);
        if let Some(t) = tail {
            first = first.max(next.saturating_sub(t as u64));
        }
        let mut out = Vec::with_capacity(next.saturating_sub(first) as usize);
        for seq in first..next {
            if let Some(e) = self.read_entry(seq) {
                out.push(e);
            }
        }
        out
    }

    fn read_entry(&self, seq: u64) -> Option<Entry> {
        let rec = self.record(seq);
        for _ in 0..100 {
            let s1 = rec.seq.load(Ordering::Acquire);
            if s1 != seq && s1 != 0 {
                return None;
            }
            let p = read_pending(rec);
            fence(Ordering::Acquire);
            if s1 == 0 || rec.seq.load(R) != s1 {
                std::hint::spin_loop();
                continue;
            }
            let op = Op::from_code((p.meta & 0xff) as u8)?;
            return Some(Entry {
                seq,
                time_ns: p.time_ns,
                pid: (p.meta >> 32) as u32,
                op,
                undone: Op::from_code(((p.meta >> 16) & 0xff) as u8),
                account: unpack_name(p.name_len, p.name).unwrap_or_default(),
                currency: ((p.meta >> 8) & 0xff) as usize,
                amount: p.amount,
                rate: p.rate,
                total: p.total,
                extra: p.extra,
            });
        }
        None
    }
}

/// Checks quotes: `0 < buy <= sell`.
///
/// # Errors
///
/// [`OpError::BadRates`] saying which rule is broken.
pub fn check_rates(code: Code, buy: i64, sell: i64) -> Result<(), OpError> {
    let bad = |reason: String| {
        Err(OpError::BadRates {
            code: code.to_string(),
            reason,
        })
    };
    if buy <= 0 || sell <= 0 {
        return bad("rates must be greater than zero".into());
    }
    if buy > sell {
        return bad(format!(
            "the buy rate {} is above the sell rate {}; the exchange must buy at or below the price it sells at",
            money::Rate(buy),
            money::Rate(sell)
        ));
    }
    Ok(())
}
