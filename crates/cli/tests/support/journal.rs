//! Journal directories on disk for the tests of `exchange journal`, made
//! with the disk layer's own API as a flush leader makes them: the
//! identity, the genesis checkpoint, record files written in synced
//! batches and rotated at a size. The records follow a fixed pattern of
//! every operation over three accounts, so a test can compute what each
//! filter must show.

use std::path::{Path, PathBuf};

use exchange::disk::{self, Balances, DiskRecord, Identity, JournalDir, JournalFile, Name};
use exchange::{Code, Op};

use super::SegmentId;

/// The time of record 1: 2026-01-01T00:00:00Z; each record is 1 ms later.
pub const T0_NS: u64 = 1_767_225_600_000_000_000;
/// The accounts the records are for.
const ACCOUNTS: [&str; 3] = ["alice", "bob", "carol"];

/// A journal directory being written, removed with its temporary parent.
pub struct History {
    /// Holds the directory; removed when dropped.
    _tmp: tempfile::TempDir,
    pub dir: JournalDir,
    file: Option<JournalFile>,
    end: u64,
    rotate: u64,
    /// Every record written, in order.
    pub records: Vec<DiskRecord>,
}

impl History {
    /// A new journal in a temporary directory (`<tmp>/journal`), for
    /// exchange `segment`, rotating files once they reach `rotate` bytes.
    pub fn new(segment: &SegmentId, rotate: u64) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("shmex-test-history-")
            .tempdir()
            .expect("tempdir");
        let path = tmp.path().join("journal");
        Self::create(tmp, &path, segment, rotate)
    }

    /// A new journal at `path` (under `tmp`, which is removed when the
    /// history is dropped).
    pub fn create(tmp: tempfile::TempDir, path: &Path, segment: &SegmentId, rotate: u64) -> Self {
        let (config, _) = exchange::Config::builtin();
        let genesis = config.into_state().expect("built-in books");
        let identity = Identity {
            exchange_id: disk::new_exchange_id().expect("exchange id"),
            segment: segment.clone(),
            created_ns: T0_NS,
            capacity: genesis.capacity,
            mode: 0o600,
            opening: genesis.opening,
        };
        let dir = JournalDir::create(path, &identity, false).expect("journal dir");
        dir.write_checkpoint(&genesis, T0_NS)
            .expect("genesis checkpoint");
        History {
            _tmp: tmp,
            dir,
            file: None,
            end: 0,
            rotate,
            records: Vec::new(),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The paths of the record files, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        let names = self.dir.journal_files().expect("journal files");
        names
            .into_iter()
            .map(|s| self.dir.file_path(&disk::file::file_name(s)))
            .collect()
    }

    /// Appends the next `n` records of the pattern, in synced batches of
    /// `batch`, starting a new file first when the current one has
    /// reached the rotation size.
    pub fn write(&mut self, n: usize, batch: usize) {
        let first = self.records.len() as u64 + 1;
        let new: Vec<DiskRecord> = (first..first + n as u64)
            .map(|s| record(s, self.dir.exchange_id()))
            .collect();
        let mut buf = Vec::new();
        for chunk in new.chunks(batch.max(1)) {
            if self.file.is_none() || self.end >= self.rotate {
                self.rotate_now(chunk[0].seq);
            }
            buf.clear();
            disk::encode_batch(chunk, &mut buf).expect("encode");
            let f = self.file.as_ref().expect("a file");
            self.end = f.append(self.end, &buf).expect("append");
        }
        self.records.extend(new);
    }

    /// Starts the file whose first record is `first_seq`.
    fn rotate_now(&mut self, first_seq: u64) {
        self.file = Some(self.dir.create_journal(first_seq, T0_NS).expect("new file"));
        self.end = disk::HEADER_LEN;
    }

    /// Starts a new file now, for the next record.
    pub fn rotate(&mut self) {
        self.rotate_now(self.records.len() as u64 + 1);
    }

    /// Writes the first `cut` bytes of the next record's frame, as a
    /// write cut short; returns the whole frame, for [`History::finish`].
    pub fn write_torn(&mut self, cut: usize) -> Vec<u8> {
        let r = record(self.records.len() as u64 + 1, self.dir.exchange_id());
        let mut buf = Vec::new();
        disk::encode_batch([&r], &mut buf).expect("encode");
        let f = self.file.as_ref().expect("a file");
        f.write_at(self.end, &buf[..cut]).expect("write");
        f.sync().expect("sync");
        buf
    }

    /// Writes the whole frame begun by [`History::write_torn`].
    pub fn finish(&mut self, frame: &[u8]) {
        let r = record(self.records.len() as u64 + 1, self.dir.exchange_id());
        let f = self.file.as_ref().expect("a file");
        self.end = f.append(self.end, frame).expect("append");
        self.records.push(r);
    }
}

/// The currency codes of the built-in table the pattern uses.
fn code(s: &str) -> Code {
    Code::new(s).expect("code")
}

/// Record `seq` of the pattern: three openings, then in turn a buy, a
/// sell, a deposit, a withdrawal, a set-rate, a deposit in a foreign
/// currency, a buy, and a rollback of a buy; balances are made up (the
/// journal command shows, never checks them).
pub fn record(seq: u64, exchange_id: u64) -> DiskRecord {
    let who = ACCOUNTS[(seq % 3) as usize];
    let mut r = DiskRecord {
        seq,
        exchange_id,
        time_ns: T0_NS + seq * 1_000_000,
        pid: 1000 + (seq % 7) as u32,
        op: Op::Open,
        undone: None,
        undone_seq: 0,
        undone_pid: 0,
        code: code("TRY"),
        decimals: 2,
        account: Name::new(who).expect("name"),
        amount: 100_000,
        rate: 0,
        buy_rate: 0,
        total: 100_000,
        balances: Some(Balances {
            home: 100_000,
            code: 100_000,
        }),
    };
    if seq <= 3 {
        r.account = Name::new(ACCOUNTS[seq as usize - 1]).expect("name");
        return r;
    }
    let bal = |home: i64, other: i64| {
        Some(Balances {
            home: 100_000 + home,
            code: other,
        })
    };
    let s = seq as i64;
    match seq % 8 {
        0 => {
            r.op = Op::Buy;
            r.code = code("DOLLAR");
            (r.amount, r.rate, r.total) = (100 + s, 13_720_000, (100 + s) * 1372 / 100);
            r.balances = bal(-r.total, r.amount);
        }
        1 => {
            r.op = Op::Sell;
            r.code = code("EURO");
            (r.amount, r.rate, r.total) = (50, 14_500_000, 725);
            r.balances = bal(725, 10 * s);
        }
        2 => {
            r.op = Op::Deposit;
            (r.amount, r.total) = (s, s);
            r.balances = bal(s, 100_000 + s);
        }
        3 => {
            r.op = Op::Withdraw;
            (r.amount, r.total) = (1, 1);
            r.balances = bal(-1, 99_999);
        }
        4 => {
            r.op = Op::SetRate;
            r.code = code("DOLLAR");
            r.account = Name::EMPTY;
            (r.amount, r.total, r.buy_rate, r.rate) = (0, 0, 13_400_000, 13_720_000);
            r.balances = None;
        }
        5 => {
            r.op = Op::Deposit;
            r.code = code("STERLIN");
            (r.amount, r.total) = (250, 250);
            r.balances = bal(0, 250 + s);
        }
        6 => {
            r.op = Op::Buy;
            r.code = code("POUND");
            (r.amount, r.rate, r.total) = (10, 20_000_000, 200);
            r.balances = bal(-200, 10);
        }
        _ => {
            r.op = Op::Rollback;
            r.undone = Some(Op::Buy);
            r.undone_seq = seq;
            r.undone_pid = 4242;
            r.code = code("DOLLAR");
            (r.amount, r.rate, r.total) = (100, 13_720_000, 1372);
            r.balances = None;
        }
    }
    r
}
