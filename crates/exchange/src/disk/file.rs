//! Journal files: `journal-<first_seq:020>.log`, a header and then record
//! frames, appended in batches.
//!
//! The header is 64 bytes: magic `SHMEXJNL`, version 1, the exchange id,
//! `first_seq`, the creation time, a crc32c (see `header.rs`).
//!
//! A writer (the flush leader) writes a batch at the offset where durable
//! data ends, syncs it with `fdatasync`, and only then publishes the new
//! end. A leader that died mid-write may have left bytes past that end:
//! the next one cuts them ([`JournalFile::truncate`]) before it writes.
//! When a file grows past the rotation size, the leader makes the next one
//! ([`JournalDir::create_journal`]) and publishes it.
#![forbid(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::DiskError;
use super::dir::{How, JOURNAL_NAMES, JournalDir};
use super::header::Header;

/// Bytes of a journal file's header; records start here.
pub const HEADER_LEN: u64 = 64;
/// A journal file's first bytes.
pub const MAGIC: [u8; 8] = *b"SHMEXJNL";
/// The version of the file layout.
pub const FILE_VERSION: u32 = 1;
/// The size past which a writer starts a new file, unless configured.
pub const DEFAULT_ROTATE_BYTES: u64 = 64 << 20;

/// The name of the journal file whose first record is `first_seq`.
#[must_use]
pub fn file_name(first_seq: u64) -> String {
    JOURNAL_NAMES.name(first_seq)
}

/// The first sequence number of a journal file's name.
#[must_use]
pub fn parse_name(name: &str) -> Option<u64> {
    JOURNAL_NAMES.parse(name)
}

fn header(exchange_id: u64, first_seq: u64, created_ns: u64) -> [u8; HEADER_LEN as usize] {
    Header {
        exchange_id,
        seq: first_seq,
        time_ns: created_ns,
        extra: [0; 20],
    }
    .encode(&MAGIC, FILE_VERSION)
}

/// An open journal file, its header checked.
#[derive(Debug)]
pub struct JournalFile {
    file: File,
    path: PathBuf,
    first_seq: u64,
}

impl JournalDir {
    /// Makes the journal file whose first record will be `first_seq`:
    /// created (mode 0600) or, if a writer that died left one with no
    /// records, reused; its header written and synced, and the directory
    /// synced. For the first file, and for rotation.
    ///
    /// # Errors
    ///
    /// [`DiskError::Exists`] if the file holds records (history is never
    /// overwritten), the checks of opening a file, [`DiskError::Io`].
    pub fn create_journal(
        &self,
        first_seq: u64,
        created_ns: u64,
    ) -> Result<JournalFile, DiskError> {
        let name = file_name(first_seq);
        let path = self.file_path(&name);
        let file = self.open_file(&name, How::Create)?;
        let len = size_of(&file, &path)?;
        if len > HEADER_LEN {
            return Err(DiskError::Exists { path });
        }
        file.set_len(0).map_err(DiskError::io("truncate", &path))?;
        file.write_all_at(&header(self.exchange_id(), first_seq, created_ns), 0)
            .map_err(DiskError::io("write", &path))?;
        file.sync_all().map_err(DiskError::io("fsync", &path))?;
        self.sync()?;
        Ok(JournalFile {
            file,
            path,
            first_seq,
        })
    }

    /// Opens the journal file whose first record is `first_seq`, for
    /// reading or (with `write`) for writing, and checks its header:
    /// magic, version, checksum, this directory's exchange, and the first
    /// sequence number its name says.
    ///
    /// # Errors
    ///
    /// [`DiskError::Header`] for a bad header, [`DiskError::Foreign`] for
    /// another exchange's file, the checks of opening a file,
    /// [`DiskError::Io`].
    pub fn open_journal(&self, first_seq: u64, write: bool) -> Result<JournalFile, DiskError> {
        let name = file_name(first_seq);
        let path = self.file_path(&name);
        let file = self.open_file(&name, if write { How::Write } else { How::Read })?;
        let mut h = [0; HEADER_LEN as usize];
        let n = read_full_at(&file, &mut h, 0).map_err(DiskError::io("read", &path))?;
        let bad = |reason| DiskError::Header {
            path: path.clone(),
            reason,
        };
        let Header {
            exchange_id: id,
            seq,
            ..
        } = Header::decode(&h[..n], &MAGIC, FILE_VERSION).map_err(bad)?;
        if id != self.exchange_id() {
            return Err(DiskError::Foreign {
                path,
                expected: self.exchange_id(),
                found: id,
            });
        }
        if seq != first_seq {
            return Err(bad(format!(
                "it says its first record is {seq}, its name says {first_seq}"
            )));
        }
        Ok(JournalFile {
            file,
            path,
            first_seq,
        })
    }

    /// The first sequence numbers of the journal files, in order.
    ///
    /// # Errors
    ///
    /// [`DiskError::Io`] if the directory cannot be listed.
    pub fn journal_files(&self) -> Result<Vec<u64>, DiskError> {
        let mut v: Vec<u64> = self.names()?.iter().filter_map(|n| parse_name(n)).collect();
        v.sort_unstable();
        Ok(v)
    }
}

/// The length of the open file `f` at `path`.
pub(crate) fn size_of(f: &File, path: &Path) -> Result<u64, DiskError> {
    Ok(f.metadata().map_err(DiskError::io("stat", path))?.len())
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns
/// the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl JournalFile {
    /// The sequence number of its first record.
    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Its path, for messages.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its length in bytes now.
    ///
    /// # Errors
    ///
    /// [`DiskError::Io`].
    pub fn size(&self) -> Result<u64, DiskError> {
        size_of(&self.file, &self.path)
    }

    fn past_header(&self, offset: u64) -> Result<(), DiskError> {
        if offset < HEADER_LEN {
            return Err(DiskError::Offset {
                path: self.path.clone(),
                offset,
            });
        }
        Ok(())
    }

    /// Writes `bytes` (encoded frames) at `offset`, which is at or past
    /// the header. Not durable until [`JournalFile::sync`].
    ///
    /// # Errors
    ///
    /// [`DiskError::Offset`] inside the header, [`DiskError::Io`].
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        self.past_header(offset)?;
        self.file
            .write_all_at(bytes, offset)
            .map_err(DiskError::io("write", &self.path))
    }

    /// Makes what was written durable (`fdatasync`).
    ///
    /// # Errors
    ///
    /// [`DiskError::Io`]; the data written since the last successful sync
    /// must then be taken as lost.
    pub fn sync(&self) -> Result<(), DiskError> {
        self.file
            .sync_data()
            .map_err(DiskError::io("fdatasync", &self.path))
    }

    /// [`JournalFile::write_at`] then [`JournalFile::sync`]: a batch made
    /// durable. Returns the offset where it ends.
    ///
    /// # Errors
    ///
    /// As those two.
    pub fn append(&self, offset: u64, bytes: &[u8]) -> Result<u64, DiskError> {
        self.write_at(offset, bytes)?;
        self.sync()?;
        Ok(offset + bytes.len() as u64)
    }

    /// Cuts the file to `len` bytes, at or past the header: what a dead
    /// writer left past the durable end, or a torn record. Synced.
    ///
    /// # Errors
    ///
    /// [`DiskError::Offset`] inside the header, [`DiskError::Io`].
    pub fn truncate(&self, len: u64) -> Result<(), DiskError> {
        self.past_header(len)?;
        self.file
            .set_len(len)
            .map_err(DiskError::io("truncate", &self.path))?;
        self.sync()
    }

    /// Reads at `offset` until `buf` is full or the file ends.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, DiskError> {
        read_full_at(&self.file, buf, offset).map_err(DiskError::io("read", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::disk::record::encode_batch;
    use crate::disk::record::tests::buy;
    use crate::disk::testutil::{identity, tempdir};

    #[test]
    fn names_parse() {
        assert_eq!(file_name(1), "journal-00000000000000000001.log");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "journal-1.log",
            "journal-0000000000000000000a.log",
            "journal-00000000000000000001.log.damaged",
            "journal-99999999999999999999.log",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn files_are_written_synced_cut_and_rotated() {
        let t = tempdir();
        let d = JournalDir::create(&t.path().join("j"), &identity(9), false).unwrap();
        let f = d.create_journal(1, 5).unwrap();
        assert_eq!(f.size().unwrap(), HEADER_LEN);
        let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut buf = Vec::new();
        encode_batch(&[buy(1, 9), buy(2, 9)], &mut buf).unwrap();
        let end = f.append(HEADER_LEN, &buf).unwrap();
        assert_eq!(end, HEADER_LEN + buf.len() as u64);
        assert_eq!(f.size().unwrap(), end);
        // A dead writer's leftovers are cut before the next write.
        f.write_at(end, &[0xee; 30]).unwrap();
        f.truncate(end).unwrap();
        assert_eq!(f.size().unwrap(), end);
        assert!(matches!(
            f.write_at(10, b"x"),
            Err(DiskError::Offset { offset: 10, .. })
        ));
        assert!(matches!(f.truncate(3), Err(DiskError::Offset { .. })));
        // A file with records is never made again; one with a header only is.
        assert!(matches!(
            d.create_journal(1, 5),
            Err(DiskError::Exists { .. })
        ));
        d.create_journal(3, 6).unwrap();
        d.create_journal(3, 7).unwrap();
        assert_eq!(d.journal_files().unwrap(), [1, 3]);
        let r = d.open_journal(1, false).unwrap();
        let mut back = vec![0; buf.len()];
        assert_eq!(r.read_at(&mut back, HEADER_LEN).unwrap(), buf.len());
        assert_eq!(back, buf);
        assert!(matches!(
            r.write_at(end, b"x"),
            Err(DiskError::Io { what: "write", .. })
        ));
    }

    #[test]
    fn headers_are_checked() {
        let t = tempdir();
        let path = t.path().join("j");
        let d = JournalDir::create(&path, &identity(9), false).unwrap();
        d.create_journal(1, 5).unwrap();
        let file = path.join(file_name(1));
        let good = std::fs::read(&file).unwrap();
        let reopen = |bytes: &[u8]| {
            std::fs::write(&file, bytes).unwrap();
            d.open_journal(1, false).unwrap_err()
        };
        let mut b = good.clone();
        b[0] = b'X';
        assert!(
            matches!(reopen(&b), DiskError::Header { reason, .. } if reason.contains("SHMEXJNL"))
        );
        let mut b = good.clone();
        b[30] ^= 1;
        assert!(
            matches!(reopen(&b), DiskError::Header { reason, .. } if reason.contains("checksum"))
        );
        assert!(
            matches!(reopen(&good[..20]), DiskError::Header { reason, .. } if reason.contains("shorter"))
        );
        std::fs::write(&file, header(8, 1, 0)).unwrap();
        let e = d.open_journal(1, false).unwrap_err();
        assert!(
            matches!(
                e,
                DiskError::Foreign {
                    expected: 9,
                    found: 8,
                    ..
                }
            ),
            "{e}"
        );
        std::fs::write(&file, header(9, 2, 0)).unwrap();
        assert!(matches!(
            d.open_journal(1, false),
            Err(DiskError::Header { .. })
        ));
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/dev/null", &file).unwrap();
        assert!(matches!(
            d.open_journal(1, false),
            Err(DiskError::Symlink { .. })
        ));
        assert!(matches!(
            d.create_journal(1, 0),
            Err(DiskError::Symlink { .. })
        ));
    }
}
