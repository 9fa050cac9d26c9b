//! Checkpoints: the books after a sequence number, so that recovery
//! replays only the journal's tail.
//!
//! `checkpoint-<seq:020>.ckpt` holds the state after record `seq` in a
//! compact binary form with checksums (the TOML snapshot format is for
//! people; for a million accounts it is tens of times slower and larger):
//!
//! ```text
//! header, 64 bytes (as a journal file's):
//!  0 [u8; 8] "SHMEXCKP"   8 u32 version (1)    12 u32 header length (64)
//! 16 u64 exchange id     24 u64 seq           32 u64 taken_ns
//! 40 u64 body length     48 u32 crc32c of the body
//! 52 [u8; 8] zero        60 u32 crc32c of bytes 0..60
//! body:
//!  i64 opening | u64 capacity: currencies, accounts, journal | u64 next_seq
//!  u32 currencies, each: [u8; 8] code, u8 decimals, i64 buy, sell,
//!      holding, genesis, deposits, withdrawals
//!  u64 accounts, each: u8 name length, name, one zigzag LEB128 balance
//!      per currency
//! ```
//!
//! A checkpoint is written atomically (temporary file, sync, rename, sync
//! the directory), and read only if both checksums hold, it belongs to the
//! directory's exchange and its books pass [`State::check`]. The newest
//! two are kept, and the oldest (the genesis written at `init`, which with
//! the whole journal rebuilds everything if both newer ones are damaged).
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::PathBuf;

use super::DiskError;
use super::dir::{CHECKPOINT_NAMES, How, JournalDir};
use super::header::{self, Header};
use crate::layout::NAME_MAX;
use crate::money::MAX_DECIMALS;
use crate::state::{AccountState, Capacity, CurrencyState, State};
use crate::types::{Code, check_account_name};

const MAGIC: [u8; 8] = *b"SHMEXCKP";
const VERSION: u32 = 1;
const HEADER_LEN: usize = header::LEN;

/// The name of the checkpoint after record `seq`.
#[must_use]
pub fn file_name(seq: u64) -> String {
    CHECKPOINT_NAMES.name(seq)
}

/// The sequence number of a checkpoint's name.
#[must_use]
pub fn parse_name(name: &str) -> Option<u64> {
    CHECKPOINT_NAMES.parse(name)
}

/// The books after a sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record applied (0: none); `state.next_seq` is one more.
    pub seq: u64,
    /// When it was taken, ns since the epoch.
    pub taken_ns: u64,
    /// The books.
    pub state: State,
}

/// The newest checkpoint that reads, and why newer ones did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRead {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Each newer checkpoint that was skipped, and why: one line each.
    pub skipped: Vec<String>,
}

fn encode(exchange_id: u64, taken_ns: u64, s: &State) -> Vec<u8> {
    let seq = s.next_seq.saturating_sub(1);
    let n = s.currencies.len();
    let mut b = Vec::with_capacity(HEADER_LEN + 64 + n * 57 + s.accounts.len() * (8 + 2 * n));
    b.resize(HEADER_LEN, 0);
    b.extend_from_slice(&s.opening.to_le_bytes());
    let cap = s.capacity;
    for v in [cap.currencies, cap.accounts, cap.journal] {
        b.extend_from_slice(&(v as u64).to_le_bytes());
    }
    b.extend_from_slice(&s.next_seq.to_le_bytes());
    b.extend_from_slice(&(n as u32).to_le_bytes());
    for c in &s.currencies {
        b.extend_from_slice(&c.code.packed().to_le_bytes());
        b.push(c.decimals as u8);
        for v in [
            c.buy,
            c.sell,
            c.holding,
            c.genesis,
            c.deposits,
            c.withdrawals,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    b.extend_from_slice(&(s.accounts.len() as u64).to_le_bytes());
    for a in &s.accounts {
        b.push(a.name.len() as u8);
        b.extend_from_slice(a.name.as_bytes());
        for &v in &a.balances {
            put_zigzag(&mut b, v);
        }
    }
    let body_len = (b.len() - HEADER_LEN) as u64;
    let mut extra = [0; 20];
    extra[0..8].copy_from_slice(&body_len.to_le_bytes());
    extra[8..12].copy_from_slice(&crc32c::crc32c(&b[HEADER_LEN..]).to_le_bytes());
    let h = Header {
        exchange_id,
        seq,
        time_ns: taken_ns,
        extra,
    };
    b[..HEADER_LEN].copy_from_slice(&h.encode(&MAGIC, VERSION));
    b
}

/// Appends `v` zigzag-encoded in LEB128: small magnitudes in few bytes
/// (most balances are 0, one byte).
fn put_zigzag(b: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        b.push(z as u8 | 0x80);
        z >>= 7;
    }
    b.push(z as u8);
}

/// A cursor over checkpoint bytes that never reads past the end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("the body ends early".to_owned());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut w = [0; 8];
        w.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(w))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(self.u64()? as i64)
    }

    fn usize(&mut self, what: &str) -> Result<usize, String> {
        let v = self.u64()?;
        usize::try_from(v).map_err(|_| format!("{what} {v} is too large"))
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err("a balance is encoded in more than 10 bytes".to_owned())
    }
}

/// Reads checkpoint bytes: the header's exchange id and sequence number
/// must be `exchange_id` and `seq`.
fn decode(bytes: &[u8], exchange_id: u64, seq: u64) -> Result<Checkpoint, String> {
    let h = Header::decode(bytes, &MAGIC, VERSION)?;
    let body = &bytes[HEADER_LEN..];
    if h.exchange_id != exchange_id {
        return Err(format!(
            "it belongs to exchange {:#018x}, not {exchange_id:#018x}",
            h.exchange_id
        ));
    }
    if h.seq != seq {
        return Err(format!("it says seq {}, its name {seq}", h.seq));
    }
    let taken_ns = h.time_ns;
    let mut c = Cursor(&h.extra);
    let body_len = c.u64()?;
    let body_crc = c.u32()?;
    if body_len != body.len() as u64 {
        return Err(format!(
            "the body is {} bytes, the header says {body_len}",
            body.len()
        ));
    }
    let crc = crc32c::crc32c(body);
    if crc != body_crc {
        return Err(format!(
            "body checksum mismatch: stored {body_crc:#010x}, computed {crc:#010x}"
        ));
    }
    let mut c = Cursor(body);
    let opening = c.i64()?;
    let capacity = Capacity {
        currencies: c.usize("currency capacity")?,
        accounts: c.usize("account capacity")?,
        journal: c.usize("journal capacity")?,
    };
    let next_seq = c.u64()?;
    if next_seq != seq.wrapping_add(1) {
        return Err(format!("next_seq {next_seq} does not follow seq {seq}"));
    }
    let n = c.u32()? as usize;
    if n == 0 || n > c.0.len() / 57 {
        return Err(format!("{n} currencies cannot be"));
    }
    let mut currencies = Vec::with_capacity(n);
    for _ in 0..n {
        let w = c.u64()?;
        let code = Code::from_packed(w).ok_or_else(|| format!("bad currency code {w:#x}"))?;
        let decimals = u32::from(c.u8()?);
        if decimals > MAX_DECIMALS {
            return Err(format!("{code} has {decimals} decimals"));
        }
        currencies.push(CurrencyState {
            code,
            decimals,
            buy: c.i64()?,
            sell: c.i64()?,
            holding: c.i64()?,
            genesis: c.i64()?,
            deposits: c.i64()?,
            withdrawals: c.i64()?,
        });
    }
    let count = c.usize("account count")?;
    // Each account takes at least 2 + n bytes: no allocation beyond that.
    if count > c.0.len() / (2 + n) {
        return Err(format!("{count} accounts do not fit {} bytes", c.0.len()));
    }
    let mut accounts = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(c.u8()?);
        if len > NAME_MAX {
            return Err(format!("an account name of {len} bytes"));
        }
        let name = std::str::from_utf8(c.take(len)?)
            .map_err(|_| "an account name is not UTF-8".to_owned())?;
        check_account_name(name).map_err(|e| e.to_string())?;
        let balances = (0..n).map(|_| c.zigzag()).collect::<Result<_, _>>()?;
        accounts.push(AccountState {
            name: name.to_owned(),
            balances,
        });
    }
    if !c.0.is_empty() {
        return Err(format!("{} bytes follow the last account", c.0.len()));
    }
    let state = State {
        currencies,
        accounts,
        opening,
        capacity,
        next_seq,
    };
    let violations = state.check();
    if !violations.is_empty() {
        return Err(format!(
            "its books fail the check: {}",
            violations.join("; ")
        ));
    }
    Ok(Checkpoint {
        seq,
        taken_ns,
        state,
    })
}

impl JournalDir {
    /// The sequence numbers of the checkpoints, oldest first.
    ///
    /// # Errors
    ///
    /// [`DiskError::Io`] if the directory cannot be listed.
    pub fn checkpoints(&self) -> Result<Vec<u64>, DiskError> {
        let mut v: Vec<u64> = self.names()?.iter().filter_map(|n| parse_name(n)).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// Writes the checkpoint of `state` (after record `state.next_seq -
    /// 1`) atomically, then removes the older ones except the previous
    /// one and the oldest. Returns its path.
    ///
    /// The records up to its sequence number must be durable in the
    /// journal first, or recovery will find the journal behind it.
    ///
    /// # Errors
    ///
    /// [`DiskError::Checkpoint`] if `state` fails [`State::check`] or has
    /// no `next_seq`; [`DiskError::Io`].
    pub fn write_checkpoint(&self, state: &State, taken_ns: u64) -> Result<PathBuf, DiskError> {
        let seq = state.next_seq.checked_sub(1);
        let name = file_name(seq.unwrap_or(0));
        let path = self.file_path(&name);
        let violations = state.check();
        if seq.is_none() || !violations.is_empty() {
            return Err(DiskError::Checkpoint {
                path,
                reason: format!(
                    "refusing to write books that fail the check: {}",
                    if seq.is_none() {
                        "next_seq is 0".to_owned()
                    } else {
                        violations.join("; ")
                    }
                ),
            });
        }
        self.write_atomic(&name, &encode(self.exchange_id(), taken_ns, state))?;
        let seq = seq.unwrap_or(0);
        let all = self.checkpoints()?;
        let older: Vec<u64> = all.iter().copied().filter(|&s| s < seq).collect();
        // Keep the oldest and the one before this.
        let keep = [older.first().copied(), older.last().copied()];
        for s in older {
            if !keep.contains(&Some(s)) {
                self.remove(&file_name(s))?;
            }
        }
        // Temporary files of writers that died.
        for n in self.names()? {
            if let Some((base, _)) = n.rsplit_once(".tmp.")
                && parse_name(base).is_some_and(|s| s < seq)
            {
                self.remove(&n)?;
            }
        }
        Ok(path)
    }

    /// Reads the checkpoint after record `seq`.
    ///
    /// # Errors
    ///
    /// [`DiskError::Checkpoint`] saying what is wrong with it, the errors
    /// of opening a file.
    pub fn read_checkpoint(&self, seq: u64) -> Result<Checkpoint, DiskError> {
        let name = file_name(seq);
        let path = self.file_path(&name);
        let mut f = self.open_file(&name, How::Read)?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(DiskError::io("read", &path))?;
        decode(&bytes, self.exchange_id(), seq)
            .map_err(|reason| DiskError::Checkpoint { path, reason })
    }

    /// Reads the newest checkpoint that is valid, falling back to older
    /// ones when newer ones are damaged (and saying which and why).
    ///
    /// # Errors
    ///
    /// [`DiskError::NoCheckpoint`] when none is valid, [`DiskError::Io`].
    pub fn latest_checkpoint(&self) -> Result<CheckpointRead, DiskError> {
        let mut skipped = Vec::new();
        for seq in self.checkpoints()?.into_iter().rev() {
            match self.read_checkpoint(seq) {
                Ok(checkpoint) => {
                    return Ok(CheckpointRead {
                        checkpoint,
                        skipped,
                    });
                }
                Err(e) => skipped.push(e.to_string()),
            }
        }
        Err(DiskError::NoCheckpoint {
            path: self.path().to_path_buf(),
            reasons: skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;

    use super::*;
    use crate::Config;
    use crate::disk::testutil::{identity, tempdir};

    pub(crate) fn books(accounts: usize) -> State {
        let (c, _) = Config::builtin();
        let mut s = c.into_state().unwrap();
        s.capacity.accounts = accounts.max(1);
        for i in 0..accounts {
            let opening = 100_000 + (i as i64 % 7);
            s.accounts.push(AccountState {
                name: format!("acct{i}"),
                balances: vec![opening, 0, i as i64 % 3, 0, 0],
            });
            s.currencies[0].deposits += opening;
            s.currencies[2].holding -= i as i64 % 3;
        }
        s.next_seq = accounts as u64 + 1;
        s
    }

    #[test]
    fn checkpoints_round_trip_and_prune() {
        let t = tempdir();
        let d = JournalDir::create(&t.path().join("j"), &identity(3), false).unwrap();
        for n in [0, 1, 5, 9, 20] {
            let s = books(n);
            d.write_checkpoint(&s, 77).unwrap();
            let c = d.read_checkpoint(n as u64).unwrap();
            assert_eq!(c.state, s);
            assert_eq!((c.seq, c.taken_ns), (n as u64, 77));
        }
        assert_eq!(d.checkpoints().unwrap(), [0, 9, 20]);
        let r = d.latest_checkpoint().unwrap();
        assert_eq!(r.checkpoint.seq, 20);
        assert!(r.skipped.is_empty());
    }

    #[test]
    fn damaged_checkpoints_fall_back() {
        let t = tempdir();
        let path = t.path().join("j");
        let d = JournalDir::create(&path, &identity(3), false).unwrap();
        assert!(matches!(
            d.latest_checkpoint(),
            Err(DiskError::NoCheckpoint { .. })
        ));
        d.write_checkpoint(&books(2), 1).unwrap();
        d.write_checkpoint(&books(4), 1).unwrap();
        let newest = path.join(file_name(4));
        let good = std::fs::read(&newest).unwrap();
        for (i, why) in [
            (3, "SHMEXCKP"),
            (20, "header checksum"),
            (good.len() - 1, "body checksum"),
        ] {
            let mut b = good.clone();
            b[i] ^= 0x10;
            std::fs::write(&newest, &b).unwrap();
            let r = d.latest_checkpoint().unwrap();
            assert_eq!(r.checkpoint.seq, 2);
            assert_eq!(r.skipped.len(), 1);
            assert!(r.skipped[0].contains(why), "{}", r.skipped[0]);
            assert!(r.skipped[0].contains(&newest.display().to_string()));
        }
        std::fs::write(&newest, &good[..good.len() - 1]).unwrap();
        assert_eq!(d.latest_checkpoint().unwrap().checkpoint.seq, 2);
        std::fs::write(path.join(file_name(2)), b"junk").unwrap();
        let e = d.latest_checkpoint().unwrap_err();
        assert!(e.to_string().contains("no valid checkpoint"), "{e}");
        // Another exchange's checkpoint is not read.
        let other = JournalDir::create(&t.path().join("k"), &identity(4), false).unwrap();
        other.write_checkpoint(&books(1), 1).unwrap();
        std::fs::copy(
            t.path().join("k").join(file_name(1)),
            path.join(file_name(1)),
        )
        .unwrap();
        let e = d.read_checkpoint(1).unwrap_err();
        assert!(e.to_string().contains("belongs to exchange"), "{e}");
        // Books that fail the check are neither written nor read.
        let mut bad = books(1);
        bad.currencies[0].holding += 1;
        assert!(matches!(
            d.write_checkpoint(&bad, 1),
            Err(DiskError::Checkpoint { .. })
        ));
        let bytes = encode(3, 1, &bad);
        assert!(decode(&bytes, 3, 1).unwrap_err().contains("conservation"));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), seq in 0..3u64) {
            let _ = decode(&bytes, 3, seq);
            let mut good = encode(3, 1, &books(2));
            let n = bytes.len().min(good.len() - HEADER_LEN);
            good[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&bytes[..n]);
            let _ = decode(&good, 3, 2);
        }

        #[test]
        fn balances_of_any_size_round_trip(vs in prop::collection::vec(any::<i64>(), 0..20)) {
            let mut b = Vec::new();
            for &v in &vs {
                put_zigzag(&mut b, v);
            }
            let mut c = Cursor(&b);
            let got: Vec<i64> = vs.iter().map(|_| c.zigzag().unwrap()).collect();
            prop_assert_eq!(got, vs);
            prop_assert!(c.0.is_empty());
        }
    }

    /// Not a test of correctness: how long a checkpoint of a million
    /// accounts takes, in this format and as a TOML snapshot. Run with
    /// `cargo test --release -p shmex-exchange checkpoint_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement"]
    fn checkpoint_speed() {
        let s = books(1_000_000);
        let t = tempdir();
        let d = JournalDir::create(&t.path().join("j"), &identity(3), false).unwrap();
        let start = Instant::now();
        let bytes = encode(3, 1, &s);
        let enc = start.elapsed();
        let start = Instant::now();
        assert!(s.check().is_empty());
        let check = start.elapsed();
        let start = Instant::now();
        d.write_checkpoint(&s, 1).unwrap();
        let write = start.elapsed();
        let start = Instant::now();
        let back = d.latest_checkpoint().unwrap();
        let read = start.elapsed();
        assert_eq!(back.checkpoint.state, s);
        let start = Instant::now();
        let text = crate::snapshot::to_toml(&s, &[], 1);
        let toml_enc = start.elapsed();
        let start = Instant::now();
        let (s2, _) = crate::snapshot::from_toml(&text).unwrap();
        let toml_dec = start.elapsed();
        assert_eq!(s2, s);
        println!(
            "1M accounts: State::check {check:?}; binary {} bytes, encode {enc:?}, \
             check+write+sync {write:?}, read+check {read:?}; \
             toml {} bytes, encode {toml_enc:?}, parse+check {toml_dec:?}",
            bytes.len(),
            text.len()
        );
    }
}
