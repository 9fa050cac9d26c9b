//! Accounts: opening one (the next slot, its name and opening balance,
//! journalled as an `open` and counted as a deposit), finding one by name
//! (with the closest name when there is none), and closing one at zero
//! balances.
//!
//! # What closing does to the slot
//!
//! A closed account keeps its slot, marked closed by the top bit of the
//! slot's name length ([`CLOSED`]), with its name bytes and its balances,
//! which are all zero. The slot is never reused: a process that looked the
//! account up before the close (a trade loop) holds its position, and must
//! find it closed, never someone else's account. The name is free again: a
//! new account of that name takes a new slot. The books (`State`) list
//! open accounts only; `check` also verifies that every closed slot holds
//! nothing. A snapshot keeps open accounts only, so a restore compacts
//! the table.

use std::sync::atomic::Ordering;

use super::undo::Field;
use super::{Engine, R, Receipt};
use crate::error::OpError;
use crate::failpoint::{self, Failpoint};
use crate::layout::CLOSED;
use crate::money::Amount;
use crate::types::{AccountId, CurrencyId, Op, check_account_name, pack_name};

/// A valid account name as the segment stores it: its length and its
/// packed words.
pub(super) fn packed(name: &str) -> Result<(u64, [u64; 4]), OpError> {
    check_account_name(name).map_err(OpError::BadName)?;
    Ok((name.len() as u64, pack_name(name.as_bytes())))
}

impl<'a> Engine<'a> {
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
            if let Some(i) = self.find_account(len, &words)? {
                return Ok((AccountId(i as u32), None));
            }
            let (i, r) = self.open_locked(name, len, words)?;
            Ok((AccountId(i as u32), Some(r)))
        })
    }

    /// The open account called `name`.
    ///
    /// # Errors
    ///
    /// [`OpError::BadName`]; [`OpError::UnknownAccount`] if no open account
    /// has that name, with the open account whose name is closest to it,
    /// if one is close (a typo: `alcie` for `alice`); [`OpError::Corrupt`]
    /// or [`OpError::Lock`] as a snapshot.
    pub fn lookup_account(&self, name: &str) -> Result<AccountId, OpError> {
        let (len, words) = packed(name)?;
        // One snapshot for the look and, if it fails, the suggestion.
        let found = self.consistent(|| -> Result<Result<usize, Option<String>>, OpError> {
            Ok(match self.find_account(len, &words)? {
                Some(i) => Ok(i),
                None => Err(self.closest_name(name)?),
            })
        })??;
        match found {
            Ok(i) => Ok(AccountId(i as u32)),
            Err(suggestion) => Err(OpError::UnknownAccount {
                name: name.to_owned(),
                suggestion,
            }),
        }
    }

    /// Closes the account called `name`, which must hold nothing in any
    /// currency; journalled as a `close`. Its name is free again at once;
    /// its slot is not reused (see the module's notes).
    ///
    /// # Errors
    ///
    /// [`OpError::BadName`], [`OpError::UnknownAccount`],
    /// [`OpError::AccountNotEmpty`], [`OpError::Lock`].
    pub fn close_account(&self, name: &str) -> Result<Receipt, OpError> {
        let (len, words) = packed(name)?;
        self.locked(|| {
            let Some(ai) = self.find_account(len, &words)? else {
                return Err(OpError::UnknownAccount {
                    name: name.to_owned(),
                    suggestion: self.closest_name(name)?,
                });
            };
            let n = self.rows.len();
            let base = ai * self.slots;
            let held: Vec<String> = self.balances[base..base + n]
                .iter()
                .enumerate()
                .filter_map(|(c, b)| {
                    let b = b.load(R);
                    (b != 0).then(|| format!("{} {}", self.show(c, b), self.ex.codes[c]))
                })
                .collect();
            if !held.is_empty() {
                return Err(OpError::AccountNotEmpty {
                    name: name.to_owned(),
                    holdings: held.join(", "),
                });
            }
            let p = self.pending(Op::Close, 0, Some(ai), 0, 0, 0);
            let seq = self.next_seq()?;
            self.begin(seq, &[(Field::NameLen(ai), len as i64)], &p);
            let w = self.head.seq.write();
            self.names[ai].len.store(len | CLOSED, R);
            self.commit(seq, &p, w);
            Ok(Receipt {
                seq,
                op: Op::Close,
                currency: CurrencyId::HOME,
                amount: 0,
                rate: 0,
                total: 0,
                balance: 0,
            })
        })
    }

    /// Whether account `a` is open (not closed since it was looked up).
    #[must_use]
    pub fn is_open(&self, a: AccountId) -> bool {
        self.names
            .get(a.index())
            .is_some_and(|n| n.len.load(R) & CLOSED == 0)
    }

    /// The open account with that packed name, looked up directly: with
    /// the lock held, or inside a snapshot. A closed slot never matches:
    /// its length word carries [`CLOSED`].
    pub(super) fn find_account(
        &self,
        len: u64,
        words: &[u64; 4],
    ) -> Result<Option<usize>, OpError> {
        Ok((0..self.slots_used()?).find(|&i| self.name_matches(i, len, words)))
    }

    /// The open account with that packed name, looked up without the lock
    /// through the seqlock.
    pub(super) fn lookup(&self, len: u64, words: &[u64; 4]) -> Result<Option<usize>, OpError> {
        self.consistent(|| self.find_account(len, words))?
    }

    /// The open account whose name is closest to `name`, if it is close
    /// enough to be a typo of it: at most one edit (insertion, deletion,
    /// substitution or swap of neighbours) for names of up to 4
    /// characters, two for longer ones. Read directly: inside a snapshot,
    /// or with the lock held.
    fn closest_name(&self, name: &str) -> Result<Option<String>, OpError> {
        let limit = if name.len() <= 4 { 1 } else { 2 };
        let names = (0..self.slots_used()?)
            .filter(|&i| self.slot_open(i))
            .map(|i| self.name_at(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names
            .into_iter()
            .map(|other| (edit_distance(name, &other), other))
            .filter(|(d, _)| *d <= limit)
            .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)))
            .map(|(_, other)| other))
    }

    /// The violations of closed slots: a closed account must hold nothing
    /// (no operation can reach it, so only a damaged segment breaks this).
    /// Read directly: inside a snapshot, or with the lock held.
    pub(super) fn closed_violations(&self) -> Result<Vec<String>, OpError> {
        let n = self.rows.len();
        let mut v = Vec::new();
        for i in 0..self.slots_used()? {
            if self.slot_open(i) {
                continue;
            }
            let base = i * self.slots;
            for (c, b) in self.balances[base..base + n].iter().enumerate() {
                let b = b.load(R);
                if b != 0 {
                    v.push(format!(
                        "closed account {} (slot {i}) holds {} {}",
                        self.name_at(i)?,
                        Amount::new(b, self.ex.decimals[c]),
                        self.ex.codes[c]
                    ));
                }
            }
        }
        Ok(v)
    }

    /// Opens a new account, under the lock: the next slot, the opening
    /// balance, journalled.
    pub(super) fn open_locked(
        &self,
        name: &str,
        len: u64,
        words: [u64; 4],
    ) -> Result<(usize, Receipt), OpError> {
        let n = self.slots_used()?;
        if n >= self.names.len() {
            return Err(OpError::AccountsFull {
                name: name.to_owned(),
                capacity: self.names.len(),
            });
        }
        let home = &self.rows[0];
        let opening = self.opening()?;
        let deposits = self.sane(home.deposits.load(R), || "the total of deposits".into())?;
        let seq = self.next_seq()?;
        let new_deposits = deposits
            .checked_add(opening)
            .ok_or_else(|| Self::overflow("the total of deposits"))?;
        let mut p = self.pending(Op::Open, 0, None, opening, 0, opening);
        p.name_len = len;
        p.name = words;
        (p.bal_home, p.bal_code) = (opening, opening);
        self.begin(
            seq,
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
}

/// The optimal-string-alignment distance between `a` and `b`: the fewest
/// insertions, deletions, substitutions and swaps of neighbouring
/// characters that turn one into the other (`alcie` → `alice` is 1).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("alcie", "alice"), 1);
        assert_eq!(edit_distance("alice", "alice"), 0);
        assert_eq!(edit_distance("bob", "rob"), 1);
        assert_eq!(edit_distance("al", "alice"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
