//! Lookups that need no snapshot: currencies and accounts by name and
//! id, and figures about the exchange.

use std::sync::atomic::Ordering;

use super::accounts::{CLOSED, packed};
use super::{Engine, Info, R};
use crate::layout::unpack_name;
use crate::state::Entry;
use crate::types::{AccountId, Code, CurrencyId};

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
    pub(super) fn slots_used(&self) -> usize {
        let n = self.head.n_accounts.load(Ordering::Acquire);
        usize::try_from(n).unwrap_or(0).min(self.names.len())
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

    pub(super) fn name_at(&self, i: usize) -> String {
        let (len, words) = self.name_words(i);
        unpack_name(len, words).unwrap_or_else(|| "?".to_owned())
    }

    pub(super) fn name_matches(&self, i: usize, len: u64, words: &[u64; 4]) -> bool {
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

    /// The journal records from sequence number `first` on, oldest first,
    /// as far as the ring still holds them: the first one returned comes
    /// after `first` if the ring has overwritten those before it. For a
    /// follower that reads what was added since it last looked.
    #[must_use]
    pub fn journal_from(&self, first: u64) -> Vec<Entry> {
        let next = self.head.next_seq.load(Ordering::Acquire);
        let cap = self.journal.len() as u64;
        let first = first.max(next.saturating_sub(cap)).max(1);
        (first..next).filter_map(|s| self.read_entry(s)).collect()
    }

    /// Figures about the exchange.
    #[must_use]
    pub fn info(&self) -> Info {
        Info {
            capacity: self.ex.capacity(),
            currencies: self.rows.len(),
            accounts: (0..self.slots_used())
                .filter(|&i| self.slot_open(i))
                .count(),
            slots: self.slots_used(),
            next_seq: self.head.next_seq.load(Ordering::Acquire),
            recoveries: self.head.recoveries.load(R),
            opening: self.head.opening.load(R),
        }
    }
}
