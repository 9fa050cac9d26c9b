//! Helpers shared by the disk tests.
#![forbid(unsafe_code)]

use shm::SegmentId;

use super::Identity;
use crate::state::Capacity;

/// A temporary directory, removed when dropped.
pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("shmex-disk-test-")
        .tempdir()
        .unwrap()
}

/// The identity of a test exchange.
pub(crate) fn identity(exchange_id: u64) -> Identity {
    Identity {
        exchange_id,
        segment: SegmentId::posix("shmex-test").unwrap(),
        created_ns: 1_767_225_600_000_000_000,
        capacity: Capacity::default(),
        mode: 0o600,
        opening: 100_000,
    }
}

/// Writes `records` as a flush leader would: batches of `batch` records,
/// each appended and synced, a new file once a file reaches `rotate`
/// bytes. Starts a file at the first record if none is open.
pub(crate) fn write_records(
    dir: &super::JournalDir,
    records: &[super::DiskRecord],
    batch: usize,
    rotate: u64,
) {
    let mut file: Option<super::JournalFile> = None;
    let mut end = 0;
    if let (Some(last), Some(first)) = (dir.journal_files().unwrap().last(), records.first()) {
        // Go on in the last file, where its records end.
        let mut s = super::Scanner::new(dir, first.seq).unwrap();
        for r in s.by_ref() {
            r.unwrap();
        }
        let tail = s.tail().unwrap();
        assert_eq!(tail.next_seq, first.seq);
        file = Some(dir.open_journal(*last, true).unwrap());
        end = tail.offset;
    }
    let mut buf = Vec::new();
    for chunk in records.chunks(batch.max(1)) {
        let f = match file.take() {
            Some(f) if end < rotate => f,
            _ => {
                end = super::HEADER_LEN;
                dir.create_journal(chunk[0].seq, 0).unwrap()
            }
        };
        buf.clear();
        super::encode_batch(chunk, &mut buf).unwrap();
        end = f.append(end, &buf).unwrap();
        file = Some(f);
    }
}
