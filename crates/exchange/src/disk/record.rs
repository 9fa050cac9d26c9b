//! One journal record on disk: what it holds, and its bytes.
//!
//! A record travels in a **frame** (little-endian):
//!
//! ```text
//! u32 len        body bytes (BODY_MIN..=BODY_MAX)
//! u32 crc        crc32c over len, back and body
//! u32 back       bytes from this frame back to the first frame of its batch
//! body           len bytes:
//!   0  u16 version (1)     2  u8 op             3  u8 undone op (0: none)
//!   4  u8 flags            5  u8 decimals       6  u8 name_len    7  u8 zero
//!   8  u64 seq            16  u64 exchange id  24  u64 time_ns
//!  32  u32 pid            36  u32 undone pid   40  [u8; 8] currency code
//!  48  i64 amount         56  i64 rate         64  i64 buy rate (set-rate)
//!  72  i64 total          80  i64 home balance after
//!  88  i64 balance of the code after           96  u64 undone seq
//! 104  [u8; name_len] account name
//! ```
//!
//! The body is self-describing (version, exchange id, sequence number), so
//! it can be shipped on its own. `back` belongs to the file: a batch is
//! written with one `pwrite` and made durable with one `fdatasync`, so when
//! damage is followed by a valid frame whose batch started after the
//! damage, the damaged batch had been synced, and the damage is corruption
//! rather than a torn write (see [`super::scan`]).
#![forbid(unsafe_code)]

use std::fmt;

use crate::layout::NAME_MAX;
use crate::money::MAX_DECIMALS;
use crate::state::{Entry, State};
use crate::types::{Code, Op, check_account_name};

/// The version of a record body this shmex writes and reads.
pub const RECORD_VERSION: u16 = 1;
/// Bytes of a frame before the body: `len`, `crc`, `back`.
pub const FRAME_HEAD: usize = 12;
/// Bytes of a body with an empty name.
pub const BODY_MIN: usize = 104;
/// Bytes of a body with the longest name.
pub const BODY_MAX: usize = BODY_MIN + NAME_MAX;
/// The largest frame.
pub const FRAME_MAX: usize = FRAME_HEAD + BODY_MAX;

const FLAG_BALANCES: u8 = 1;

/// An account name held inline (no allocation): empty, or 1 to 32 bytes of
/// `[A-Za-z0-9_.-]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Name {
    len: u8,
    bytes: [u8; NAME_MAX],
}

impl Name {
    /// No name (set-rate records).
    pub const EMPTY: Name = Name {
        len: 0,
        bytes: [0; NAME_MAX],
    };

    /// A valid account name.
    ///
    /// # Errors
    ///
    /// The message of [`check_account_name`].
    pub fn new(name: &str) -> Result<Name, String> {
        check_account_name(name).map_err(|e| e.to_string())?;
        let mut bytes = [0; NAME_MAX];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Name {
            len: name.len() as u8,
            bytes,
        })
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only valid ASCII names are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether there is no name.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// An account's balances right after the operation: receipt data, and
/// what replay verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balances {
    /// The home-currency balance.
    pub home: i64,
    /// The balance of the record's currency (equal to `home` when that is
    /// the home currency).
    pub code: i64,
}

/// One operation as the journal on disk keeps it: enough to replay it and
/// to print its receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskRecord {
    /// Sequence number (1 is the first operation).
    pub seq: u64,
    /// The exchange it belongs to (drawn at `init`).
    pub exchange_id: u64,
    /// Wall-clock time, ns since the epoch.
    pub time_ns: u64,
    /// The process that did it.
    pub pid: u32,
    /// What was done.
    pub op: Op,
    /// For a rollback: the operation undone (never itself a rollback);
    /// `None` otherwise.
    pub undone: Option<Op>,
    /// For a rollback: the sequence number of the operation undone; 0
    /// otherwise.
    pub undone_seq: u64,
    /// For a rollback: the process that died holding the lock; 0
    /// otherwise.
    pub undone_pid: u32,
    /// The currency (the home currency for an `open`).
    pub code: Code,
    /// Its decimals, so the record reads on its own.
    pub decimals: u32,
    /// The account; empty for set-rate (and a rollback of one).
    pub account: Name,
    /// Amount, in the currency's minor units (0 for set-rate).
    pub amount: i64,
    /// Rate applied: the sell rate of a buy, the buy rate of a sell, the
    /// new sell rate of a set-rate; 0 otherwise.
    pub rate: i64,
    /// Set-rate: the new buy rate; 0 otherwise.
    pub buy_rate: i64,
    /// Home minor units paid or received for buy and sell; the amount for
    /// deposits, withdrawals and openings.
    pub total: i64,
    /// The account's balances afterwards: present for buy, sell, deposit,
    /// withdraw and open, absent for set-rate and rollback.
    pub balances: Option<Balances>,
}

/// Why bytes are not a valid record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes end before the frame does.
    #[error("the record is cut short: {have} of {need} bytes")]
    Short {
        /// Bytes the frame needs.
        need: usize,
        /// Bytes there are.
        have: usize,
    },
    /// A length no record can have.
    #[error("impossible record length {0} (a record body holds {BODY_MIN} to {BODY_MAX} bytes)")]
    Length(u32),
    /// The checksum does not match the bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The stored checksum.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// A body version this shmex does not know.
    #[error("record version {0}, but this shmex reads version {RECORD_VERSION}")]
    Version(u16),
    /// An unknown operation code.
    #[error("unknown operation code {0}")]
    Op(u8),
    /// An undone operation that cannot be.
    #[error("{op} record with undone operation code {undone}")]
    Undone {
        /// The record's operation.
        op: Op,
        /// The undone operation's code.
        undone: u8,
    },
    /// A currency code that is not one.
    #[error("invalid currency code bytes {0:02x?}")]
    Code([u8; 8]),
    /// More decimals than a currency may have.
    #[error("{0} decimals, more than {MAX_DECIMALS}")]
    Decimals(u32),
    /// An account name that is not one.
    #[error("invalid account name: {0}")]
    Name(String),
    /// A field that must be zero, empty or present for this operation
    /// is not.
    #[error("a {op} record cannot have {what}")]
    Field {
        /// The record's operation.
        op: Op,
        /// What is wrong, e.g. `a buy rate`.
        what: &'static str,
    },
}

/// A record as read from a frame, with the frame's own fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The record.
    pub record: DiskRecord,
    /// Bytes of the frame.
    pub len: usize,
    /// Bytes from the frame back to the first frame of its batch.
    pub back: u32,
}

fn checksum(frame: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&frame[0..4]), &frame[8..])
}

impl DiskRecord {
    /// The operation the record's fields describe: the undone operation
    /// for a rollback, else its own.
    #[must_use]
    pub fn effective_op(&self) -> Op {
        self.undone.unwrap_or(self.op)
    }

    /// Whether `total` is in the home currency (buy, sell, and rollbacks
    /// of them) rather than in the record's own currency.
    #[must_use]
    pub fn total_is_home(&self) -> bool {
        matches!(self.effective_op(), Op::Buy | Op::Sell)
    }

    /// Checks what any record must satisfy, whatever the books: a rollback
    /// names the undone operation and only a rollback does; decimals of at
    /// most 6; an account name exactly where the operation has one;
    /// resulting balances exactly where the operation has them; no buy
    /// rate except for set-rate.
    ///
    /// # Errors
    ///
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), RecordError> {
        let op = self.op;
        let field = |what| Err(RecordError::Field { op, what });
        match (op, self.undone) {
            (Op::Rollback, None) => return field("no undone operation"),
            (Op::Rollback, Some(Op::Rollback)) => {
                return Err(RecordError::Undone {
                    op,
                    undone: Op::Rollback.code(),
                });
            }
            (Op::Rollback, Some(_)) | (_, None) => {}
            (_, Some(u)) => {
                return Err(RecordError::Undone {
                    op,
                    undone: u.code(),
                });
            }
        }
        if self.decimals > MAX_DECIMALS {
            return Err(RecordError::Decimals(self.decimals));
        }
        if self.seq == 0 {
            return field("sequence number 0");
        }
        let effective = self.effective_op();
        if (effective == Op::SetRate) != self.account.is_empty() {
            return field(if self.account.is_empty() {
                "an empty account name"
            } else {
                "an account name"
            });
        }
        // A close leaves no account to have balances.
        let with_balances = !matches!(op, Op::SetRate | Op::Rollback | Op::Close);
        if with_balances != self.balances.is_some() {
            return field(if with_balances {
                "no resulting balances"
            } else {
                "resulting balances"
            });
        }
        if effective != Op::SetRate && self.buy_rate != 0 {
            return field("a buy rate");
        }
        if op != Op::Rollback && (self.undone_seq != 0 || self.undone_pid != 0) {
            return field("an undone sequence number or pid");
        }
        Ok(())
    }

    /// Bytes of this record's frame.
    #[must_use]
    pub fn frame_len(&self) -> usize {
        FRAME_HEAD + BODY_MIN + self.account.as_str().len()
    }

    /// Appends this record's frame to `out`, `back` bytes after the first
    /// frame of its batch. See [`encode_batch`] to encode a whole batch.
    ///
    /// # Errors
    ///
    /// As [`DiskRecord::validate`]; nothing is appended then.
    pub fn encode(&self, back: u32, out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.validate()?;
        let name = self.account.as_str().as_bytes();
        let body_len = BODY_MIN + name.len();
        let start = out.len();
        out.reserve(FRAME_HEAD + body_len);
        out.extend_from_slice(&(body_len as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&back.to_le_bytes());
        out.extend_from_slice(&RECORD_VERSION.to_le_bytes());
        out.push(self.op.code());
        out.push(self.undone.map_or(0, Op::code));
        out.push(if self.balances.is_some() {
            FLAG_BALANCES
        } else {
            0
        });
        out.push(self.decimals as u8);
        out.push(name.len() as u8);
        out.push(0);
        let b = self.balances.unwrap_or(Balances { home: 0, code: 0 });
        for w in [self.seq, self.exchange_id, self.time_ns] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.pid.to_le_bytes());
        out.extend_from_slice(&self.undone_pid.to_le_bytes());
        out.extend_from_slice(&self.code.packed().to_le_bytes());
        for v in [
            self.amount,
            self.rate,
            self.buy_rate,
            self.total,
            b.home,
            b.code,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.undone_seq.to_le_bytes());
        out.extend_from_slice(name);
        let crc = checksum(&out[start..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Reads the frame at the start of `bytes` (which may go on past it):
    /// checks the length bounds, the checksum, the version, every code and
    /// the rules of [`DiskRecord::validate`].
    ///
    /// # Errors
    ///
    /// [`RecordError::Short`] if `bytes` ends inside the frame,
    /// [`RecordError::Length`] or [`RecordError::Checksum`] for bytes
    /// that are not a whole frame, and the other variants for a frame
    /// whose content is not a record.
    pub fn decode(bytes: &[u8]) -> Result<Decoded, RecordError> {
        let short = |need| RecordError::Short {
            need,
            have: bytes.len(),
        };
        let head = bytes.get(..FRAME_HEAD).ok_or_else(|| short(FRAME_HEAD))?;
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let body_len = u32_at(head, 0);
        if !(BODY_MIN..=BODY_MAX).contains(&(body_len as usize)) {
            return Err(RecordError::Length(body_len));
        }
        let len = FRAME_HEAD + body_len as usize;
        let frame = bytes.get(..len).ok_or_else(|| short(len))?;
        let stored = u32_at(head, 4);
        let computed = checksum(frame);
        if stored != computed {
            return Err(RecordError::Checksum { stored, computed });
        }
        let back = u32_at(head, 8);
        let body = &frame[FRAME_HEAD..];
        let u64_at = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&body[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let i64_at = |i: usize| u64_at(i) as i64;
        let version = u16::from_le_bytes([body[0], body[1]]);
        if version != RECORD_VERSION {
            return Err(RecordError::Version(version));
        }
        let op = Op::from_code(body[2]).ok_or(RecordError::Op(body[2]))?;
        let undone = match body[3] {
            0 => None,
            u => Some(Op::from_code(u).ok_or(RecordError::Undone { op, undone: u })?),
        };
        let flags = body[4];
        if flags & !FLAG_BALANCES != 0 {
            return Err(RecordError::Field {
                op,
                what: "unknown flags",
            });
        }
        if body[7] != 0 {
            return Err(RecordError::Field {
                op,
                what: "a non-zero reserved byte",
            });
        }
        let name_len = usize::from(body[6]);
        if BODY_MIN + name_len != body.len() {
            return Err(RecordError::Name(format!(
                "its length {name_len} does not fit a body of {} bytes",
                body.len()
            )));
        }
        let account = match &body[BODY_MIN..] {
            [] => Name::EMPTY,
            b => {
                let text = std::str::from_utf8(b)
                    .map_err(|_| RecordError::Name("it is not UTF-8".to_owned()))?;
                Name::new(text).map_err(RecordError::Name)?
            }
        };
        let code_word = u64_at(40);
        let code =
            Code::from_packed(code_word).ok_or(RecordError::Code(code_word.to_le_bytes()))?;
        let record = DiskRecord {
            seq: u64_at(8),
            exchange_id: u64_at(16),
            time_ns: u64_at(24),
            pid: u32_at(body, 32),
            op,
            undone,
            undone_seq: u64_at(96),
            undone_pid: u32_at(body, 36),
            code,
            decimals: u32::from(body[5]),
            account,
            amount: i64_at(48),
            rate: i64_at(56),
            buy_rate: i64_at(64),
            total: i64_at(72),
            balances: (flags & FLAG_BALANCES != 0).then(|| Balances {
                home: i64_at(80),
                code: i64_at(88),
            }),
        };
        if flags & FLAG_BALANCES == 0 && (record_balance_words(body) != (0, 0)) {
            return Err(RecordError::Field {
                op,
                what: "balances without the flag that says so",
            });
        }
        record.validate()?;
        Ok(Decoded { record, len, back })
    }

    /// The record of a ring entry `e` of the exchange whose books are
    /// `state` (for the currency's code and decimals): `balances` are the
    /// account's balances after it, for the operations that have them.
    /// A rollback's `undone_seq` is its own sequence number (a rollback
    /// takes the number of the operation it undoes).
    ///
    /// # Errors
    ///
    /// [`RecordError::Code`] if `e.currency` is not a currency of
    /// `state`, [`RecordError::Name`] for a bad account name, and as
    /// [`DiskRecord::validate`].
    pub fn from_entry(
        e: &Entry,
        state: &State,
        exchange_id: u64,
        balances: Option<Balances>,
    ) -> Result<DiskRecord, RecordError> {
        let c = state
            .currencies
            .get(e.currency)
            .ok_or(RecordError::Code([0; 8]))?;
        DiskRecord::of_entry(e, c.code, c.decimals, exchange_id, balances)
    }

    /// The record of a ring entry `e` whose currency is `code` with
    /// `decimals`; as [`DiskRecord::from_entry`] otherwise.
    ///
    /// # Errors
    ///
    /// [`RecordError::Name`] for a bad account name, and as
    /// [`DiskRecord::validate`].
    pub fn of_entry(
        e: &Entry,
        code: Code,
        decimals: u32,
        exchange_id: u64,
        balances: Option<Balances>,
    ) -> Result<DiskRecord, RecordError> {
        let account = if e.account.is_empty() {
            Name::EMPTY
        } else {
            Name::new(&e.account).map_err(RecordError::Name)?
        };
        let rollback = e.op == Op::Rollback;
        let r = DiskRecord {
            seq: e.seq,
            exchange_id,
            time_ns: e.time_ns,
            pid: e.pid,
            op: e.op,
            undone: e.undone,
            undone_seq: if rollback { e.seq } else { 0 },
            undone_pid: if rollback { e.extra as u32 } else { 0 },
            code,
            decimals,
            account,
            amount: e.amount,
            rate: e.rate,
            buy_rate: if e.op == Op::SetRate { e.extra } else { 0 },
            total: e.total,
            balances,
        };
        r.validate()?;
        Ok(r)
    }

    /// This record as a ring entry of the exchange whose books are
    /// `state`, or `None` if its currency is not one of them.
    #[must_use]
    pub fn to_entry(&self, state: &State) -> Option<Entry> {
        Some(Entry {
            seq: self.seq,
            time_ns: self.time_ns,
            pid: self.pid,
            op: self.op,
            undone: self.undone,
            account: self.account.as_str().to_owned(),
            currency: state.currency(self.code)?,
            amount: self.amount,
            rate: self.rate,
            total: self.total,
            extra: match self.op {
                Op::SetRate => self.buy_rate,
                Op::Rollback => i64::from(self.undone_pid),
                _ => 0,
            },
        })
    }
}

fn record_balance_words(body: &[u8]) -> (u64, u64) {
    let w = |i: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&body[i..i + 8]);
        u64::from_le_bytes(b)
    };
    (w(80), w(88))
}

/// Appends the frames of one batch to `out`: the batch starts at
/// `out.len()`, and each frame's `back` counts from there. Write a batch
/// with one write and make it durable with one sync.
///
/// # Errors
///
/// As [`DiskRecord::validate`], for the first bad record; `out` is then
/// left as it was.
pub fn encode_batch<'a>(
    records: impl IntoIterator<Item = &'a DiskRecord>,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let start = out.len();
    for r in records {
        let back = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
        if let Err(e) = r.encode(back, out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
