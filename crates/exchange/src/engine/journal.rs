//! The journal ring in the segment: its records in plain values, writing
//! one so that readers never take a torn record, and reading entries back.

use std::sync::atomic::{Ordering, fence};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Engine, R};
use crate::error::OpError;
use crate::layout::Record;
use crate::state::Entry;
use crate::types::{Op, unpack_name};

pub(super) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A record's `meta` word, unpacked: bits 0–7 hold the operation, 8–15
/// the currency, 16–23 the operation a rollback undid (0: none), 32–63 the
/// pid of the process that wrote it; bits 24–31 are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Meta {
    /// What was done; `None` only in a word that names no operation.
    pub(super) op: Option<Op>,
    /// The currency's index (its low 8 bits are kept).
    pub(super) currency: usize,
    /// For a rollback, what it undid.
    pub(super) undone: Option<Op>,
    /// The writer's pid.
    pub(super) pid: u32,
}

impl Meta {
    /// The word stored in the record.
    #[inline]
    pub(super) fn pack(self) -> u64 {
        u64::from(self.op.map_or(0, Op::code))
            | ((self.currency as u64 & 0xff) << 8)
            | (u64::from(self.undone.map_or(0, Op::code)) << 16)
            | (u64::from(self.pid) << 32)
    }

    /// The fields of a stored word; bits 24–31 are ignored.
    pub(super) fn unpack(w: u64) -> Meta {
        Meta {
            op: Op::from_code(w as u8),
            currency: ((w >> 8) & 0xff) as usize,
            undone: Op::from_code((w >> 16) as u8),
            pid: (w >> 32) as u32,
        }
    }
}

/// A journal record in plain values, written to the undo record and then
/// to the journal.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) meta: u64,
    pub(super) amount: i64,
    pub(super) rate: i64,
    pub(super) total: i64,
    pub(super) extra: i64,
    pub(super) name_len: u64,
    pub(super) name: [u64; 4],
    pub(super) time_ns: u64,
    /// The account's home balance afterwards (receipt data).
    pub(super) bal_home: i64,
    /// Its balance of the currency afterwards.
    pub(super) bal_code: i64,
}

pub(super) fn write_record(rec: &Record, seq: u64, p: &Pending) {
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
    rec.bal_home.store(p.bal_home, R);
    rec.bal_code.store(p.bal_code, R);
    rec.seq.store(seq, Ordering::Release);
}

pub(super) fn read_pending(rec: &Record) -> Pending {
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
        bal_home: rec.bal_home.load(R),
        bal_code: rec.bal_code.load(R),
    }
}

impl<'a> Engine<'a> {
    pub(super) fn record(&self, seq: u64) -> &'a Record {
        &self.journal[(seq % self.journal.len() as u64) as usize]
    }

    pub(super) fn pending(
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
            meta: Meta {
                op: Some(op),
                currency: c,
                undone: None,
                pid: self.pid,
            }
            .pack(),
            amount,
            rate,
            total,
            extra: 0,
            name_len,
            name,
            time_ns: now_ns(),
            bal_home: 0,
            bal_code: 0,
        }
    }

    /// Journal record `seq`, if its slot still holds it (`None` if it was
    /// overwritten or is being written: a journal reader leaves it out).
    ///
    /// # Errors
    ///
    /// [`OpError::Corrupt`] if a whole record holds what no operation
    /// writes: no operation, a currency this exchange lacks, a malformed
    /// account name.
    pub(super) fn read_entry(&self, seq: u64) -> Result<Option<Entry>, OpError> {
        let rec = self.record(seq);
        for _ in 0..100 {
            let s1 = rec.seq.load(Ordering::Acquire);
            if s1 != seq && s1 != 0 {
                return Ok(None);
            }
            let p = read_pending(rec);
            fence(Ordering::Acquire);
            if s1 == 0 || rec.seq.load(R) != s1 {
                std::hint::spin_loop();
                continue;
            }
            return self
                .entry(seq, &p)
                .map(Some)
                .map_err(|why| self.corrupt(format!("journal record {seq} is invalid: {why}")));
        }
        Ok(None)
    }

    /// A whole record's values as an entry, or why they cannot be one.
    pub(super) fn entry(&self, seq: u64, p: &Pending) -> Result<Entry, String> {
        let meta = Meta::unpack(p.meta);
        let known = |b: u64| b == 0 || Op::from_code(b as u8).is_some();
        let op = match meta.op {
            Some(op) if known((p.meta >> 16) & 0xff) => op,
            _ => return Err(format!("its kind word {:#x} names no operation", p.meta)),
        };
        if meta.currency >= self.rows.len() {
            return Err(format!("it names currency {}", meta.currency));
        }
        let account = if p.name_len == 0 && p.name == [0; 4] {
            String::new()
        } else {
            unpack_name(p.name_len, p.name).ok_or("its account name is malformed")?
        };
        Ok(Entry {
            seq,
            time_ns: p.time_ns,
            pid: meta.pid,
            op,
            undone: meta.undone,
            account,
            currency: meta.currency,
            amount: p.amount,
            rate: p.rate,
            total: p.total,
            extra: p.extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips() {
        let ops = std::iter::once(None).chain(Op::ALL.map(Some));
        for op in ops.clone() {
            for undone in ops.clone() {
                for currency in [0, 1, 17, 255] {
                    for pid in [0, 1, 4_194_304, u32::MAX] {
                        let m = Meta {
                            op,
                            currency,
                            undone,
                            pid,
                        };
                        assert_eq!(Meta::unpack(m.pack()), m);
                    }
                }
            }
        }
    }

    #[test]
    fn meta_word_is_the_stored_format() {
        let m = Meta {
            op: Some(Op::Rollback),
            currency: 3,
            undone: Some(Op::Sell),
            pid: 0x1234_5678,
        };
        assert_eq!(m.pack(), 0x1234_5678_0002_0307);
        // Bits 24–31 are not part of any field.
        assert_eq!(Meta::unpack(0x1234_5678_ff02_0307), m);
        let none = Meta::unpack(0);
        assert_eq!((none.op, none.undone), (None, None));
    }
}
