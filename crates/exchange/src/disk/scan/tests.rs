//! Tests of the parent module.

use std::path::Path;

use super::*;
use crate::disk::record::Name;
use crate::disk::record::tests::buy;
use crate::disk::testutil::{identity, tempdir, write_records};

const ID: u64 = 0xfeed;

/// Records 1..=n, of several lengths.
fn records(n: u64) -> Vec<DiskRecord> {
    (1..=n)
        .map(|s| {
            let mut r = buy(s, ID);
            r.account = Name::new(&"x".repeat(1 + (s as usize * 7) % 32)).unwrap();
            r
        })
        .collect()
}

fn setup(n: u64, batch: usize, rotate: u64) -> (tempfile::TempDir, JournalDir) {
    let t = tempdir();
    let d = JournalDir::create(&t.path().join("j"), &identity(ID), false).unwrap();
    write_records(&d, &records(n), batch, rotate);
    (t, d)
}

/// Scans everything from 1: the records read, and the error if any.
fn scan(d: &JournalDir) -> (Vec<Scanned>, Option<DiskError>, Option<Torn>, Option<Tail>) {
    let mut s = Scanner::new(d, 1).unwrap();
    let mut out = Vec::new();
    let mut err = None;
    for r in s.by_ref() {
        match r {
            Ok(r) => out.push(r),
            Err(e) => err = Some(e),
        }
    }
    (out, err, s.torn().cloned(), s.tail())
}

fn last_file(d: &JournalDir) -> (u64, std::path::PathBuf) {
    let f = *d.journal_files().unwrap().last().unwrap();
    (f, d.file_path(&file_name(f)))
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, &b).unwrap();
}

#[test]
fn every_record_is_read_in_order_across_files() {
    let (_t, d) = setup(50, 4, 1000);
    let files = d.journal_files().unwrap();
    assert!(files.len() > 3, "{files:?}");
    let (got, err, torn, tail) = scan(&d);
    assert!(err.is_none() && torn.is_none());
    assert_eq!(
        got.iter().map(|s| s.record).collect::<Vec<_>>(),
        records(50)
    );
    for w in got.windows(2) {
        if w[0].file == w[1].file {
            assert_eq!(w[0].end, w[1].offset);
        } else {
            assert_eq!(w[1].offset, HEADER_LEN);
            assert_eq!(w[1].file, w[1].record.seq);
        }
    }
    let (last, path) = last_file(&d);
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(
        tail,
        Some(Tail {
            file: last,
            offset: len,
            next_seq: 51
        })
    );
    // Starting later skips whole files.
    let from: Vec<u64> = Scanner::new(&d, 30)
        .unwrap()
        .map(|r| r.unwrap().record.seq)
        .collect();
    assert_eq!(from, (30..=50).collect::<Vec<_>>());
    let mut s = Scanner::new(&d, 99).unwrap();
    assert!(s.next().is_none());
    assert_eq!(s.tail().unwrap().next_seq, 51);
}

#[test]
fn a_cut_anywhere_in_the_last_record_is_torn_and_cut() {
    let (_t, d) = setup(20, 3, u64::MAX);
    let (file, path) = last_file(&d);
    let full = std::fs::read(&path).unwrap();
    let start = (full.len() - records(20)[19].frame_len()) as u64;
    for cut in start..full.len() as u64 {
        std::fs::write(&path, &full[..cut as usize]).unwrap();
        let (got, err, torn, tail) = scan(&d);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got.len(), 19, "cut at {cut}");
        assert_eq!(tail.unwrap().offset, start);
        if cut == start {
            assert_eq!(torn, None);
            continue;
        }
        let torn = torn.unwrap_or_else(|| panic!("cut at {cut}: not torn"));
        assert_eq!((torn.file, torn.offset, torn.len), (file, start, cut));
        assert_eq!(torn.path, path);
        assert!(
            torn.to_string().starts_with(&format!(
                "a torn record at {} offset {start} (",
                path.display()
            )),
            "{torn}"
        );
        d.cut_torn(&torn).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), start);
        let (got, err, torn, _) = scan(&d);
        assert_eq!((got.len(), err.is_none(), torn), (19, true, None));
    }
    // Extra zeros past the end (space allocated, never written) too.
    let mut z = full.clone();
    z.extend_from_slice(&[0; 4096]);
    std::fs::write(&path, &z).unwrap();
    let (got, _, torn, _) = scan(&d);
    assert_eq!(got.len(), 20);
    assert_eq!(torn.unwrap().offset, full.len() as u64);
}

#[test]
fn a_flipped_byte_in_the_middle_is_corruption_at_its_offset() {
    // One file, and several files (the record then in an earlier one).
    for rotate in [u64::MAX, 900] {
        let (_t, d) = setup(30, 3, rotate);
        let (good, ..) = scan(&d);
        let victim = good[10];
        let path = d.file_path(&file_name(victim.file));
        let full = std::fs::read(&path).unwrap();
        for i in victim.offset..victim.end {
            for bit in [0x01, 0x80] {
                edit(&path, |b| b[i as usize] ^= bit);
                let (got, err, torn, _) = scan(&d);
                assert_eq!(got.len(), 10);
                assert_eq!(torn, None);
                match err {
                    Some(DiskError::Corrupt { file, offset, .. }) => {
                        assert_eq!((file.as_path(), offset), (path.as_path(), victim.offset));
                    }
                    e => panic!("byte {i}: {e:?}"),
                }
                std::fs::write(&path, &full).unwrap();
            }
        }
        let e = {
            edit(&path, |b| b[victim.offset as usize + 30] ^= 1);
            scan(&d).1.unwrap()
        };
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "corrupt journal record in {} at offset {}: checksum mismatch",
                path.display(),
                victim.offset
            )),
            "{text}"
        );
    }
}

#[test]
fn damage_in_the_last_batch_is_torn() {
    // Batches of 5: the last batch is records 26..=30.
    let (_t, d) = setup(30, 5, u64::MAX);
    let (good, ..) = scan(&d);
    let (_, path) = last_file(&d);
    let full = std::fs::read(&path).unwrap();
    // A page of the last write never reached the disk: zeros, with the
    // rest of the batch after them.
    let hole = good[26];
    edit(&path, |b| {
        b[hole.offset as usize..hole.end as usize].fill(0);
    });
    let (got, err, torn, _) = scan(&d);
    assert!(err.is_none());
    assert_eq!(got.len(), 26);
    let torn = torn.unwrap();
    assert_eq!(torn.offset, hole.offset);
    d.cut_torn(&torn).unwrap();
    assert_eq!(scan(&d).0.len(), 26);
    // The same hole in an earlier batch, with later batches after it,
    // is corruption.
    std::fs::write(&path, &full).unwrap();
    let hole = good[12];
    edit(&path, |b| {
        b[hole.offset as usize..hole.end as usize].fill(0);
    });
    let (got, err, torn, _) = scan(&d);
    assert_eq!((got.len(), torn), (12, None));
    let e = err.unwrap();
    assert!(
        matches!(e, DiskError::Corrupt { offset, .. } if offset == hole.offset),
        "{e}"
    );
    assert!(
        e.to_string().contains("a later batch follows at offset"),
        "{e}"
    );
}

#[test]
fn valid_frames_with_wrong_content_are_corruption_even_at_the_end() {
    let (_t, d) = setup(5, 2, u64::MAX);
    let (file, path) = last_file(&d);
    let end = std::fs::metadata(&path).unwrap().len();
    let f = d.open_journal(file, true).unwrap();
    let mut buf = Vec::new();
    crate::disk::encode_batch(&[buy(6, ID + 1)], &mut buf).unwrap();
    f.append(end, &buf).unwrap();
    let e = scan(&d).1.unwrap();
    assert!(e.to_string().contains("belongs to exchange"), "{e}");
    f.truncate(end).unwrap();
    buf.clear();
    crate::disk::encode_batch(&[buy(8, ID)], &mut buf).unwrap();
    f.append(end, &buf).unwrap();
    let e = scan(&d).1.unwrap();
    assert!(
        matches!(&e, DiskError::Corrupt { offset, reason, .. }
        if *offset == end && reason == "record 8 where 6 was expected"),
        "{e}"
    );
}

#[test]
fn headers_torn_and_corrupt() {
    let (_t, d) = setup(12, 3, 600);
    let files = d.journal_files().unwrap();
    // A new last file whose header never reached the disk.
    let next = 13;
    let f = d.create_journal(next, 0).unwrap();
    let path = f.path().to_path_buf();
    drop(f);
    for junk in [vec![0; 64], vec![0; 10], vec![0; 8192], Vec::new()] {
        std::fs::write(&path, &junk).unwrap();
        let (got, err, torn, tail) = scan(&d);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got.len(), 12);
        let torn = torn.unwrap();
        assert_eq!((torn.file, torn.offset), (next, 0));
        assert_eq!(tail.unwrap().next_seq, 13);
        d.cut_torn(&torn).unwrap();
        let (got, err, torn, tail) = scan(&d);
        assert_eq!((got.len(), err.is_none(), torn), (12, true, None));
        assert_eq!(
            tail,
            Some(Tail {
                file: next,
                offset: HEADER_LEN,
                next_seq: 13
            })
        );
    }
    // A bad header with records after it, or in an earlier file, is
    // corruption.
    write_records(&d, &records(14)[12..], 1, u64::MAX);
    for f in [next, files[1]] {
        let p = d.file_path(&file_name(f));
        let full = std::fs::read(&p).unwrap();
        edit(&p, |b| b[20] ^= 1);
        let e = scan(&d).1.unwrap();
        assert!(
            matches!(&e, DiskError::Corrupt { offset: 0, reason, .. }
            if reason.contains("header checksum")),
            "{e}"
        );
        std::fs::write(&p, &full).unwrap();
    }
    assert!(scan(&d).1.is_none());
}

#[test]
fn a_missing_file_is_a_gap() {
    let (_t, d) = setup(20, 2, 400);
    let files = d.journal_files().unwrap();
    std::fs::remove_file(d.file_path(&file_name(files[1]))).unwrap();
    let (got, err, ..) = scan(&d);
    assert_eq!(got.len() as u64, files[1] - 1);
    let e = err.unwrap();
    assert!(
        matches!(e, DiskError::Gap { expected, found, .. }
        if expected == files[1] && found == files[2]),
        "{e}"
    );
}

#[test]
fn a_live_journal_can_be_followed() {
    let (_t, d) = setup(5, 2, 700);
    let mut s = Scanner::new(&d, 1).unwrap();
    let mut seen = Vec::new();
    let mut drain = |s: &mut Scanner<'_>| {
        for r in s.by_ref() {
            seen.push(r.unwrap().record.seq);
        }
    };
    drain(&mut s);
    let all = records(40);
    write_records(&d, &all[5..9], 2, 700);
    drain(&mut s);
    // A record half written reads as torn, and then as itself.
    let (file, path) = last_file(&d);
    let end = std::fs::metadata(&path).unwrap().len();
    let mut buf = Vec::new();
    crate::disk::encode_batch(&all[9..10], &mut buf).unwrap();
    let f = d.open_journal(file, true).unwrap();
    f.write_at(end, &buf[..7]).unwrap();
    drain(&mut s);
    assert_eq!(s.torn().map(|t| t.offset), Some(end));
    f.write_at(end, &buf).unwrap();
    drain(&mut s);
    assert!(s.torn().is_none());
    write_records(&d, &all[10..], 3, 700);
    drain(&mut s);
    assert_eq!(seen, (1..=40).collect::<Vec<_>>());
    assert!(d.journal_files().unwrap().len() > 2);
}

#[test]
fn a_follower_reads_what_was_added_before_a_rotation() {
    let (_t, d) = setup(5, 5, u64::MAX);
    let mut s = Scanner::new(&d, 1).unwrap();
    assert_eq!(s.by_ref().count(), 5);
    let all = records(7);
    let (file, path) = last_file(&d);
    let end = std::fs::metadata(&path).unwrap().len();
    let mut buf = Vec::new();
    crate::disk::encode_batch(&all[5..6], &mut buf).unwrap();
    // Half of record 6 is there when the follower looks.
    let f = d.open_journal(file, true).unwrap();
    f.write_at(end, &buf[..50]).unwrap();
    assert_eq!(s.next().map(|r| r.is_ok()), None);
    assert!(s.torn().is_some());
    // Then it is completed, and the next file made.
    f.append(end, &buf).unwrap();
    let g = d.create_journal(7, 0).unwrap();
    buf.clear();
    crate::disk::encode_batch(&all[6..], &mut buf).unwrap();
    g.append(HEADER_LEN, &buf).unwrap();
    let seqs: Vec<u64> = s.by_ref().map(|r| r.unwrap().record.seq).collect();
    assert_eq!(seqs, [6, 7]);
}

#[test]
fn the_good_prefix_can_be_kept() {
    let (_t, d) = setup(30, 3, 900);
    let files = d.journal_files().unwrap();
    assert!(files.len() >= 3, "{files:?}");
    let (good, ..) = scan(&d);
    let victim = good
        .iter()
        .find(|s| s.file == files[1] && s.offset > HEADER_LEN)
        .unwrap();
    let path = d.file_path(&file_name(victim.file));
    edit(&path, |b| b[victim.offset as usize + 40] ^= 4);
    let bad = match scan(&d).1 {
        Some(DiskError::Corrupt {
            file,
            offset,
            reason,
        }) => Corruption {
            path: file,
            file: victim.file,
            offset,
            reason,
        },
        e => panic!("{e:?}"),
    };
    d.cut_corrupt(&bad).unwrap();
    let (got, err, torn, tail) = scan(&d);
    assert!(err.is_none() && torn.is_none());
    assert_eq!(got.len() as u64, victim.record.seq - 1);
    assert_eq!(tail.unwrap().offset, victim.offset);
    let names = d.names().unwrap();
    for f in &files[1..] {
        assert!(
            names.contains(&format!("{}.damaged", file_name(*f))),
            "{names:?}"
        );
    }
    assert_eq!(d.journal_files().unwrap(), files[..2]);
}

#[test]
fn filters_select_and_stop() {
    let (_t, d) = setup(40, 4, 1500);
    let mut all = records(40);
    all[3].op = Op::Sell;
    let scan_with = |f: Filter| -> Vec<u64> {
        let from = f.first_seq();
        f.apply(Scanner::new(&d, from).unwrap())
            .map(|r| r.unwrap().record.seq)
            .collect()
    };
    let f = Filter {
        seq: Some(1..=10),
        ..Filter::default()
    };
    assert_eq!(scan_with(f), (1..=10).collect::<Vec<_>>());
    let name = records(40)[6].account.to_string();
    let f = Filter {
        account: Some(name.clone()),
        ..Filter::default()
    };
    let want: Vec<u64> = records(40)
        .iter()
        .filter(|r| r.account.as_str() == name)
        .map(|r| r.seq)
        .collect();
    assert!(want.len() > 1);
    assert_eq!(scan_with(f), want);
    let t0 = records(1)[0].time_ns;
    let f = Filter {
        since_ns: Some(t0 + 5),
        until_ns: Some(t0 + 7),
        code: Some(crate::types::Code::new("DOLLAR").unwrap()),
        op: Some(Op::Buy),
        seq: Some(3..=100),
        ..Filter::default()
    };
    assert_eq!(scan_with(f.clone()), [6, 7, 8]);
    assert!(!f.matches(&all[3]));
    let f = Filter {
        code: Some(crate::types::Code::new("EURO").unwrap()),
        ..Filter::default()
    };
    assert!(scan_with(f).is_empty());
    // A bounded range stops reading once it is past.
    let f = Filter {
        seq: Some(2..=3),
        ..Filter::default()
    };
    let mut it = f.apply(records(40).into_iter().map(|r| {
        assert!(r.seq <= 4, "read past the range");
        Ok(Scanned {
            record: r,
            file: 1,
            offset: 0,
            end: 0,
        })
    }));
    assert_eq!(it.next().unwrap().unwrap().record.seq, 2);
    assert_eq!(it.next().unwrap().unwrap().record.seq, 3);
    assert!(it.next().is_none());
}
