//! Step 0: creating an exchange segment from a state, opening and
//! validating one, and removing it.

use std::sync::atomic::{AtomicI64, Ordering};

use shm::header::Layout;
use shm::{Access, Lifetime, Managed, ManagedOptions, SegmentId};

use super::durable::{self, Journal, JournalInit};
use super::journal::{Meta, Pending, now_ns, write_record};
use super::lock::lock_wait;
use super::{Engine, Exchange, R};
use crate::error::{OpenError, StateError};
use crate::failpoint;
use crate::layout::{AccountName, CurrencyRow, FORMAT, Geometry, Head, Record};
use crate::money;
use crate::state::{Capacity, Entry, State};
use crate::types::{Code, pack_name};

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
        Exchange::create_durable(id, state, journal, mode, None)
    }

    /// As [`Exchange::create`], with the journal on disk that `disk`
    /// describes (made by the caller: the directory, its genesis
    /// checkpoint and first file), or memory only for `None`.
    ///
    /// # Errors
    ///
    /// As [`Exchange::create`]; [`OpenError::JournalPath`] for a path that
    /// is not absolute or too long to record.
    pub fn create_durable(
        id: &SegmentId,
        state: &State,
        journal: &[Entry],
        mode: u32,
        disk: Option<&JournalInit>,
    ) -> Result<Exchange, OpenError> {
        let fp = failpoint::armed()?;
        let lock_wait = lock_wait()?;
        let geo = Exchange::geometry_of(state, journal)?;
        let opts = ManagedOptions {
            kind: crate::KIND,
            lifetime: Lifetime::Persistent,
            mode,
            layout: Layout::of::<Head>(),
            payload_size: geo.size,
        };
        let what = id.to_string();
        let m = Managed::create(id, &opts, |m| write_state(m, &geo, state, journal, disk))
            .map_err(|e| match e {
                OpenError::Segment(shm::Error::Exists { .. }) => {
                    OpenError::Exists { what: what.clone() }
                }
                e => e,
            })?;
        Ok(Exchange {
            m,
            geo,
            codes: state.currencies.iter().map(|c| c.code).collect(),
            decimals: state.currencies.iter().map(|c| c.decimals).collect(),
            failpoint: fp,
            lock_wait,
            journal: disk.map(|d| Journal::new(d.dir.clone(), d.exchange_id)),
            what,
        })
    }

    /// Whether `state` and the ring records `journal` can make an
    /// exchange: what [`Exchange::create`] checks before anything is made.
    ///
    /// # Errors
    ///
    /// [`StateError`] saying why not.
    pub fn check_state(state: &State, journal: &[Entry]) -> Result<(), StateError> {
        Exchange::geometry_of(state, journal).map(|_| ())
    }

    fn geometry_of(state: &State, journal: &[Entry]) -> Result<Geometry, StateError> {
        let cap = state.capacity;
        let geo = Geometry::new(cap.currencies, cap.accounts, cap.journal)?;
        let violations = state.check();
        if !violations.is_empty() {
            return Err(StateError::Books(violations));
        }
        if journal.len() > cap.journal {
            return Err(StateError::Journal {
                records: journal.len(),
                capacity: cap.journal,
            });
        }
        Ok(geo)
    }

    /// Opens an existing exchange and validates its layout.
    ///
    /// # Errors
    ///
    /// [`OpenError::Missing`] if there is none; [`OpenError::Corrupt`] if
    /// its contents make no sense (capacities that do not fit its size,
    /// counts beyond them, codes or decimals no currency has);
    /// [`OpenError::ForeignNamespace`] if it was made in another pid or
    /// time namespace; [`OpenError::Segment`] if the segment is not an
    /// exchange of this version, or cannot be attached.
    pub fn open(id: &SegmentId) -> Result<Exchange, OpenError> {
        let fp = failpoint::armed()?;
        let lock_wait = lock_wait()?;
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
        let ns = shm::sync::namespaces();
        for (i, which) in ["pid", "time"].into_iter().enumerate() {
            let theirs = head.namespaces[i].load(R);
            if theirs != 0 && ns[i] != 0 && theirs != ns[i] {
                return Err(OpenError::ForeignNamespace {
                    what: id.to_string(),
                    which,
                });
            }
        }
        let cap = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let geo = Geometry::new(
            cap(head.cap_currencies.load(R)),
            cap(head.cap_accounts.load(R)),
            cap(head.cap_journal.load(R)),
        )
        .map_err(|e| corrupt(e.to_string()))?;
        // Exactly: capacities lowered by a peer would shift every part.
        if m.payload_len() as u64 != geo.size {
            return Err(corrupt(format!(
                "its capacities need {} bytes but the payload has {}",
                geo.size,
                m.payload_len()
            )));
        }
        let n = cap(head.n_currencies.load(R));
        if !(2..=geo.currencies).contains(&n) {
            return Err(corrupt(format!(
                "it counts {n} currencies, but has room for 2 to {}",
                geo.currencies
            )));
        }
        let rows: &[CurrencyRow] = m.payload_slice(geo.off_rows, geo.currencies)?;
        let mut codes = Vec::with_capacity(n);
        let mut decimals = Vec::with_capacity(n);
        for (i, r) in rows[..n].iter().enumerate() {
            let code = Code::from_packed(r.code.load(R))
                .ok_or_else(|| corrupt(format!("currency {i} has an invalid code")))?;
            let d = r.decimals.load(R);
            if d > u64::from(money::MAX_DECIMALS) {
                return Err(corrupt(format!("{code} has {d} decimals")));
            }
            codes.push(code);
            decimals.push(d as u32);
        }
        // Rows past the count were never written: data there means the
        // count was lowered.
        if let Some(i) = (n..geo.currencies).find(|&i| !row_is_empty(&rows[i])) {
            return Err(corrupt(format!(
                "it counts {n} currencies, but row {i} holds one"
            )));
        }
        let journal = Journal::from_head(&head.durable, &id.to_string())?;
        let ex = Exchange {
            m,
            geo,
            codes,
            decimals,
            failpoint: fp,
            lock_wait,
            what: id.to_string(),
            journal,
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
            durable: self.journal.is_some(),
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

/// Whether a currency row holds nothing, as rows past the count do.
fn row_is_empty(r: &CurrencyRow) -> bool {
    [
        r.code.load(R),
        r.decimals.load(R),
        r.buy.load(R) as u64,
        r.sell.load(R) as u64,
        r.holding.load(R) as u64,
        r.genesis.load(R) as u64,
        r.deposits.load(R) as u64,
        r.withdrawals.load(R) as u64,
    ]
    .iter()
    .all(|&w| w == 0)
}

fn write_state(
    m: &Managed,
    geo: &Geometry,
    state: &State,
    journal: &[Entry],
    disk: Option<&JournalInit>,
) -> Result<(), OpenError> {
    let head: &Head = m.payload_view(0)?;
    let rows: &[CurrencyRow] = m.payload_slice(geo.off_rows, state.currencies.len())?;
    let names: &[AccountName] = m.payload_slice(geo.off_names, geo.accounts)?;
    let balances: &[AtomicI64] =
        m.payload_slice(geo.off_balances, geo.accounts * geo.currencies)?;
    let records: &[Record] = m.payload_slice(geo.off_journal, geo.journal)?;
    for (w, v) in head.namespaces.iter().zip(shm::sync::namespaces()) {
        w.store(v, R);
    }
    head.cap_currencies.store(geo.currencies as u64, R);
    head.cap_accounts.store(geo.accounts as u64, R);
    head.cap_journal.store(geo.journal as u64, R);
    head.n_currencies.store(state.currencies.len() as u64, R);
    head.n_accounts.store(state.accounts.len() as i64, R);
    head.committed_seq.store(state.next_seq.max(1) - 1, R);
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
            meta: Meta {
                op: Some(e.op),
                currency: e.currency,
                undone: e.undone,
                pid: e.pid,
            }
            .pack(),
            amount: e.amount,
            rate: e.rate,
            total: e.total,
            extra: e.extra,
            name_len: e.account.len() as u64,
            name: pack_name(e.account.as_bytes()),
            time_ns: e.time_ns,
            bal_home: 0,
            bal_code: 0,
        };
        write_record(rec, e.seq, &p);
    }
    durable::write_head(&head.durable, disk)?;
    head.format.store(FORMAT, Ordering::Release);
    Ok(())
}
