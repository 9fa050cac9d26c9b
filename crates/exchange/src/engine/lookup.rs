//! Lookups that need no snapshot: currencies and accounts by name and
//! id, and figures about the exchange.

use std::sync::atomic::Ordering;

use super::accounts::packed;
use super::{Engine, Info, R};
use crate::error::OpError;
use crate::layout::CLOSED;
use crate::state::Entry;
use crate::types::{AccountId, Code, CurrencyId, unpack_name};

impl<'a> Engine<'a> {
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

    /// Slots in use: open accounts and closed ones (whose slots are never
    /// reused).
    ///
    /// # Errors
    ///
    /// [`OpError::Corrupt`] if the count is negative or exceeds the
    /// capacity.
    pub(super) fn slots_used(&self) -> Result<usize, OpError> {
        let n = self.head.n_accounts.load(Ordering::Acquire);
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.names.len())
            .ok_or_else(|| {
                self.corrupt(format!(
                    "it counts {n} account slots in use, but has room for {}",
                    self.names.len()
                ))
            })
    }

    /// `ai` if it is an open account: the check every operation makes with
    /// the lock held (an account may be counted before its opening commits,
    /// it may have been closed since it was looked up, and a count may be
    /// damaged). Accounts are found by lookups that see only committed
    /// ones, and slots are never reused, so a slot beyond the count means
    /// the count was changed behind the exchange's back.
    ///
    /// # Errors
    ///
    /// [`OpError::AccountClosed`] if the account in slot `ai` was closed;
    /// [`OpError::Corrupt`] if slot `ai` is not in use, or as
    /// [`Engine::slots_used`].
    pub(super) fn open_index(&self, ai: usize) -> Result<usize, OpError> {
        let n = self.slots_used()?;
        if ai >= n {
            return Err(self.corrupt(format!(
                "account {ai} was found, but it counts only {n} account slots in use"
            )));
        }
        if !self.slot_open(ai) {
            return Err(OpError::AccountClosed {
                name: self.name_at(ai)?,
            });
        }
        Ok(ai)
    }

    /// Account `i`'s name as stored: its length (without the closed
    /// mark) and its packed words.
    pub(super) fn name_words(&self, i: usize) -> (u64, [u64; 4]) {
        let n = &self.names[i];
        (
            n.len.load(R) & !CLOSED,
            std::array::from_fn(|k| n.bytes[k].load(R)),
        )
    }

    /// Whether slot `i` holds an open account.
    pub(super) fn slot_open(&self, i: usize) -> bool {
        self.names[i].len.load(R) & CLOSED == 0
    }

    /// Account `i`'s name.
    ///
    /// # Errors
    ///
    /// [`OpError::Corrupt`] if what is stored is no account name.
    pub(super) fn name_at(&self, i: usize) -> Result<String, OpError> {
        let (len, words) = self.name_words(i);
        unpack_name(len, words)
            .ok_or_else(|| self.corrupt(format!("account {i} has a malformed name")))
    }

    pub(super) fn name_matches(&self, i: usize, len: u64, words: &[u64; 4]) -> bool {
        let n = &self.names[i];
        n.len.load(R) == len && n.bytes.iter().zip(words).all(|(w, v)| w.load(R) == *v)
    }

    /// The open account named `name`: a consistent look, without the lock
    /// (unless a writer died, when it recovers first), so that an account
    /// whose opening has not committed is not found.
    ///
    /// # Errors
    ///
    /// [`OpError::BadName`] for a malformed name; [`OpError::Corrupt`] or
    /// [`OpError::Lock`] as a snapshot.
    pub fn account(&self, name: &str) -> Result<Option<AccountId>, OpError> {
        let (len, words) = packed(name)?;
        Ok(self.lookup(len, &words)?.map(|i| AccountId(i as u32)))
    }

    /// The name of an account, or `?` if there is no such account or its
    /// name is damaged.
    #[must_use]
    pub fn account_name(&self, a: AccountId) -> String {
        if a.index() < self.names.len() {
            self.name_at(a.index()).unwrap_or_else(|_| "?".to_owned())
        } else {
            "?".to_owned()
        }
    }

    /// The journal records from sequence number `first` on, oldest first,
    /// as far as the ring still holds them and up to the last committed
    /// operation: the first one returned comes after `first` if the ring
    /// has overwritten those before it. For a follower that reads what was
    /// added since it last looked.
    ///
    /// # Errors
    ///
    /// As [`Engine::journal`].
    pub fn journal_from(&self, first: u64) -> Result<Vec<Entry>, OpError> {
        let last = self.head.committed_seq.load(Ordering::Acquire);
        let cap = self.journal.len() as u64;
        let first = first.max(last.saturating_sub(cap - 1)).max(1);
        let mut out = Vec::new();
        for seq in first..=last {
            if let Some(e) = self.read_entry(seq)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Figures about the exchange, read without a snapshot (the slot count
    /// is clamped to the capacity).
    #[must_use]
    pub fn info(&self) -> Info {
        let n = self.head.n_accounts.load(Ordering::Acquire);
        let slots = usize::try_from(n).unwrap_or(0).min(self.names.len());
        Info {
            capacity: self.ex.capacity(),
            currencies: self.rows.len(),
            accounts: (0..slots).filter(|&i| self.slot_open(i)).count(),
            slots,
            next_seq: self
                .head
                .committed_seq
                .load(Ordering::Acquire)
                .saturating_add(1),
            recoveries: self.head.recoveries.load(R),
            opening: self.head.opening.load(R),
        }
    }
}
