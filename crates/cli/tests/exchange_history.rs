//! `exchange journal` reading the complete history from disk: every
//! filter alone and combined, `--tail` after the filters, the JSON and
//! text shapes, a long history across rotated files, bad filter values,
//! damage in the middle and a torn tail (`--follow`, the default directory,
//! memory-only exchanges and the long history of real traders are in
//! `exchange_history_live`). The journals are written with the disk
//! layer's own API ([`support::journal`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use exchange::disk::{self, DiskRecord};
use exchange::{Code, Op};
use serde_json::{Value, json};

use crate::support::journal::{History, T0_NS};
use crate::support::process::{assert_refused, run_bounded, shmex, show, stdout};
use crate::support::{Cleanup, SegmentId};

/// A history of `n` records for an exchange with no segment, in files of
/// about `rotate` bytes, written in batches of 7.
pub(crate) fn history(n: usize, rotate: u64) -> (Cleanup, SegmentId, History) {
    let mut clean = Cleanup::new();
    let id = SegmentId::Posix(clean.name("history"));
    let mut h = History::new(&id, rotate);
    h.write(n, 7);
    (clean, id, h)
}

pub(crate) fn select(id: &SegmentId) -> Vec<String> {
    match id {
        SegmentId::Posix(n) => vec!["--exchange".into(), n.clone()],
        SegmentId::SysV(k) => vec!["--key".into(), k.to_string()],
    }
}

/// `shmex exchange … journal --journal DIR ARGS…`.
pub(crate) fn journal_cmd(id: &SegmentId, dir: &Path, args: &[&str]) -> Command {
    let mut c = shmex();
    c.arg("exchange").args(select(id)).arg("journal");
    c.arg("--journal").arg(dir).args(args);
    c
}

pub(crate) fn journal(id: &SegmentId, h: &History, args: &[&str]) -> Output {
    run_bounded(&mut journal_cmd(id, &h.path(), args), b"")
}

/// The records `journal --json ARGS` shows.
#[track_caller]
pub(crate) fn shown(id: &SegmentId, h: &History, args: &[&str]) -> Vec<Value> {
    let mut a = args.to_vec();
    a.push("--json");
    let o = journal(id, h, &a);
    assert!(o.status.success(), "{args:?}: {}", show(&o));
    assert!(o.stderr.is_empty(), "{args:?}: {}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", show(&o)));
    v.as_array().expect("an array").clone()
}

pub(crate) fn seqs(v: &[Value]) -> Vec<u64> {
    v.iter().map(|r| r["seq"].as_u64().expect("seq")).collect()
}

/// The sequence numbers of the records that pass `keep`, the last `tail`.
pub(crate) fn expected(
    h: &History,
    tail: Option<usize>,
    keep: impl Fn(&DiskRecord) -> bool,
) -> Vec<u64> {
    let all: Vec<u64> = h
        .records
        .iter()
        .filter(|r| keep(r))
        .map(|r| r.seq)
        .collect();
    let skip = all.len() - tail.unwrap_or(all.len()).min(all.len());
    all[skip..].to_vec()
}

/// The RFC 3339 time of record `seq` (1 ms apart from 2026-01-01).
pub(crate) fn time_of(seq: u64) -> String {
    assert!(seq < 60_000);
    format!("2026-01-01T00:00:{:02}.{:03}Z", seq / 1000, seq % 1000)
}

pub(crate) fn code(s: &str) -> Code {
    Code::new(s).expect("code")
}

#[test]
fn every_filter_alone_and_combined() {
    let (_clean, id, h) = history(300, 4096);
    assert!(h.files().len() > 3, "rotated: {:?}", h.files());
    let (t50, t100, t250) = (time_of(50), time_of(100), time_of(250));
    let alice = |r: &DiskRecord| r.account.as_str() == "alice";
    type Keep = Box<dyn Fn(&DiskRecord) -> bool>;
    let cases: Vec<(Vec<&str>, Option<usize>, Keep)> = vec![
        (vec![], None, Box::new(|_| true)),
        (vec!["--account", "alice"], None, Box::new(alice)),
        (
            vec!["--code", "DOLLAR"],
            None,
            Box::new(|r| r.code == code("DOLLAR")),
        ),
        (
            vec!["--code", "try"],
            None,
            Box::new(|r| r.code == code("TRY")),
        ),
        (
            vec!["--op", "set-rate"],
            None,
            Box::new(|r| r.op == Op::SetRate),
        ),
        (
            vec!["--op", "rollback"],
            None,
            Box::new(|r| r.op == Op::Rollback),
        ),
        (vec!["--op", "open"], None, Box::new(|r| r.op == Op::Open)),
        (
            vec!["--seq", "10..20"],
            None,
            Box::new(|r| (10..=20).contains(&r.seq)),
        ),
        (vec!["--seq", "290.."], None, Box::new(|r| r.seq >= 290)),
        (vec!["--seq", "..5"], None, Box::new(|r| r.seq <= 5)),
        (vec!["--seq", "42"], None, Box::new(|r| r.seq == 42)),
        (vec!["--since", &t100], None, Box::new(|r| r.seq >= 100)),
        (vec!["--until", &t50], None, Box::new(|r| r.seq <= 50)),
        // The same moment with an offset: 03:00:00.250+03:00 is 00:00:00.250Z.
        (
            vec!["--since", "2026-01-01T03:00:00.250+03:00"],
            None,
            Box::new(|r| r.seq >= 250),
        ),
        (
            vec!["--until", "2025-12-31T23:30:00.010-00:30"],
            None,
            Box::new(|r| r.seq <= 10),
        ),
        (
            vec![
                "--account",
                "alice",
                "--op",
                "buy",
                "--since",
                &t50,
                "--until",
                &t250,
            ],
            None,
            Box::new(move |r| alice(r) && r.op == Op::Buy && (50..=250).contains(&r.seq)),
        ),
        (
            vec!["--code", "DOLLAR", "--op", "buy", "--seq", "1..100"],
            None,
            Box::new(|r| r.code == code("DOLLAR") && r.op == Op::Buy && r.seq <= 100),
        ),
        (vec!["--tail", "5"], Some(5), Box::new(|_| true)),
        (
            vec!["--account", "bob", "--tail", "3"],
            Some(3),
            Box::new(|r| r.account.as_str() == "bob"),
        ),
        (
            vec!["--op", "withdraw", "--seq", "..100", "--tail", "2"],
            Some(2),
            Box::new(|r| r.op == Op::Withdraw && r.seq <= 100),
        ),
        (vec!["--tail", "0"], Some(0), Box::new(|_| true)),
        (vec!["--account", "nobody"], None, Box::new(|_| false)),
    ];
    for (args, tail, keep) in cases {
        let want = expected(&h, tail, keep);
        assert_eq!(seqs(&shown(&id, &h, &args)), want, "journal {args:?}");
        // The text table shows the same records: one row each.
        let o = journal(&id, &h, &args);
        let text = stdout(&o);
        let rows: Vec<&str> = text.lines().skip(1).collect();
        if !want.is_empty() {
            let first: Vec<u64> = rows
                .iter()
                .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(first, want, "journal {args:?} as text: {text}");
        }
    }
}

#[test]
fn an_empty_result_says_so() {
    let (_clean, id, h) = history(0, 4096);
    assert_eq!(stdout(&journal(&id, &h, &[])), "the journal is empty\n");
    assert_eq!(stdout(&journal(&id, &h, &["--json"])), "[]\n");
    let (_clean, id, h) = history(10, 4096);
    assert_eq!(
        stdout(&journal(&id, &h, &["--op", "close"])),
        "no journal record passes the filters\n"
    );
    assert_eq!(stdout(&journal(&id, &h, &["--tail", "0"])), "");
}

#[test]
fn json_records_carry_the_receipt_and_the_balances_after() {
    let (_clean, id, h) = history(16, 4096);
    let v = shown(&id, &h, &[]);
    assert_eq!(v.len(), 16);
    let time = |seq: u64| json!({"time": time_of(seq), "time_ns": T0_NS + seq * 1_000_000});
    let with_time = |seq: u64, mut o: Value| {
        for (k, x) in time(seq).as_object().unwrap() {
            o[k] = x.clone();
        }
        o
    };
    let want = [
        with_time(
            1,
            json!({"seq":1,"pid":1001,"op":"open","account":"alice","code":"TRY",
                   "amount":"1000.00","balances":{"TRY":"1000.00"}}),
        ),
        with_time(
            8,
            json!({"seq":8,"pid":1001,"op":"buy","account":"carol","code":"DOLLAR",
                   "amount":"1.08","rate":"13.72","total":"14.81",
                   "balances":{"TRY":"985.19","DOLLAR":"1.08"}}),
        ),
        with_time(
            9,
            json!({"seq":9,"pid":1002,"op":"sell","account":"alice","code":"EURO",
                   "amount":"0.50","rate":"14.50","total":"7.25",
                   "balances":{"TRY":"1007.25","EURO":"0.90"}}),
        ),
        with_time(
            12,
            json!({"seq":12,"pid":1005,"op":"set-rate","code":"DOLLAR",
                   "buy":"13.40","sell":"13.72"}),
        ),
        with_time(
            15,
            json!({"seq":15,"pid":1001,"op":"rollback","undone":"buy","undone_pid":4242,
                   "account":"alice","code":"DOLLAR","amount":"1.00","rate":"13.72",
                   "total":"13.72","undone_seq":15}),
        ),
    ];
    for w in want {
        let seq = w["seq"].as_u64().unwrap() as usize;
        assert_eq!(v[seq - 1], w, "record {seq}");
    }
    // Every key in the order the ring's records have them, the new ones last.
    let keys: Vec<&str> = v[7]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "seq", "time", "time_ns", "pid", "op", "account", "code", "amount", "rate", "total",
            "balances"
        ]
    );
}

#[test]
fn text_rows_are_aligned_columns_with_the_receipt() {
    let (_clean, id, h) = history(40, 4096);
    let o = journal(&id, &h, &[]);
    assert!(o.status.success(), "{}", show(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 41, "{text}");
    let head = lines[0];
    assert_eq!(
        head.split_whitespace().collect::<Vec<_>>().join(" "),
        "SEQ TIME OP ACCOUNT CODE AMOUNT RATE TOTAL BALANCE AFTER"
    );
    let at = |col: &str| head.find(col).unwrap();
    let end = |col: &str| at(col) + col.len();
    for (i, l) in lines[1..].iter().enumerate() {
        let r = &h.records[i];
        // Left-aligned columns start under their heading, right-aligned
        // ones end under it.
        assert_eq!(&l[at("TIME")..at("TIME") + 24], time_of(r.seq), "{l}");
        assert!(l[at("OP")..].starts_with(r.op.name()), "{l}");
        assert!(l[at("CODE")..].starts_with(r.code.as_str()), "{l}");
        assert_eq!(&l[..end("SEQ")].trim_start(), &r.seq.to_string(), "{l}");
        assert_ne!(&l[end("AMOUNT") - 1..end("AMOUNT")], " ", "{l}");
        assert_eq!(&l[end("AMOUNT")..end("AMOUNT") + 2], "  ", "{l}");
    }
    let buy = lines[8];
    for part in [
        "carol",
        "DOLLAR",
        "1.08",
        "13.72",
        "14.81 TRY",
        "1.08 DOLLAR, 985.19 TRY",
    ] {
        assert!(buy.contains(part), "{buy}");
    }
    assert!(
        lines[12].ends_with("rates set to buy 13.40 sell 13.72"),
        "{}",
        lines[12]
    );
    assert!(
        lines[15].contains("pid 4242 died holding the lock"),
        "{}",
        lines[15]
    );
}

#[test]
fn the_first_ten_of_a_long_history_come_from_its_first_file() {
    let mut clean = Cleanup::new();
    let id = SegmentId::Posix(clean.name("history"));
    let mut h = History::new(&id, 1 << 20);
    h.write(100_000, 1000);
    let files = h.files();
    assert!(files.len() >= 5, "rotated: {files:?}");
    let v = shown(&id, &h, &["--seq", "1..10"]);
    assert_eq!(seqs(&v), (1..=10).collect::<Vec<_>>());
    assert_eq!(v[0]["op"], "open");
    assert_eq!(v[0]["account"], "alice");
    // The last ten, and filters over the whole history, across files.
    assert_eq!(
        seqs(&shown(&id, &h, &["--seq", "99991.."])),
        (99_991..=100_000).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&shown(&id, &h, &["--op", "set-rate", "--tail", "3"])),
        expected(&h, Some(3), |r| r.op == Op::SetRate)
    );
    assert_eq!(
        seqs(&shown(
            &id,
            &h,
            &[
                "--account",
                "carol",
                "--code",
                "POUND",
                "--seq",
                "50000..50100"
            ]
        )),
        expected(&h, None, |r| r.account.as_str() == "carol"
            && r.code == code("POUND")
            && (50_000..=50_100).contains(&r.seq))
    );
    // Damage past the range asked for does not matter to it.
    flip(&files[3], disk::HEADER_LEN + 20);
    assert_eq!(
        seqs(&shown(&id, &h, &["--seq", "1..10"])),
        (1..=10).collect::<Vec<_>>()
    );
}

/// Every file of the directory and its bytes.
pub(crate) fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn bad_filter_values_are_usage_errors_that_change_nothing() {
    let (_clean, id, h) = history(20, 4096);
    let before = contents(&h.path());
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--since", "yesterday"],
            &["'--since <TIME>'", "RFC 3339", "2026-01-02T03:04:05Z"],
        ),
        (
            &["--until", "2026-13-01T00:00:00Z"],
            &["'--until <TIME>'", "RFC 3339"],
        ),
        (
            &["--since", "2026-01-02T03:04:05"],
            &["'--since <TIME>'", "RFC 3339"],
        ),
        (&["--since", "1969-12-31T23:59:59Z"], &["before 1970"]),
        (&["--seq", "9..1"], &["'--seq <A..B>'", "9..1 is empty"]),
        (&["--seq", "x"], &["'--seq <A..B>'", "give A..B"]),
        (
            &["--op", "trade"],
            &["'--op <OP>'", "possible values", "set-rate"],
        ),
        (
            &["--code", "1X"],
            &["'--code <CODE>'", "invalid currency code"],
        ),
        (
            &["--account", "bad name"],
            &["'--account <NAME>'", "invalid account name"],
        ),
        (&["--tail", "x"], &["'--tail <N>'"]),
    ];
    for (args, needles) in cases {
        let o = journal(&id, &h, args);
        assert_refused(&o, 2, needles);
        assert!(
            stderr_of(&o).contains("(see `shmex exchange journal --help`)"),
            "{}",
            show(&o)
        );
        assert!(o.stdout.is_empty(), "{args:?}: {}", show(&o));
        assert_eq!(contents(&h.path()), before, "{args:?} changed the journal");
    }
}

pub(crate) fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Flips the bits of the byte at `offset` of `file`.
pub(crate) fn flip(file: &Path, offset: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[offset as usize] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn damage_in_the_middle_stops_with_the_file_and_offset() {
    let (_clean, id, h) = history(300, 4096);
    let files = h.files();
    // In a file that later files follow.
    flip(&files[1], disk::HEADER_LEN + 20);
    let before = contents(&h.path());
    let o = journal(&id, &h, &[]);
    let name = files[1].display().to_string();
    let at = format!("at offset {}", disk::HEADER_LEN);
    assert_refused(&o, 1, &["corrupt journal record in", &name, &at]);
    assert!(
        o.stdout.is_empty(),
        "nothing printed before the damage: {}",
        show(&o)
    );
    // The same with --json: the failure is the one JSON object.
    let o = journal(&id, &h, &["--json"]);
    assert_refused(&o, 1, &[&name, &at]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON failure");
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains(&at), "{v}");
    assert_eq!(contents(&h.path()), before, "reading changed the journal");

    // In the last file, with a later batch after it.
    let (_clean, id, h) = history(300, 4096);
    let last = h.files().pop().unwrap();
    flip(&last, disk::HEADER_LEN + 20);
    let o = journal(&id, &h, &[]);
    assert_refused(
        &o,
        1,
        &[&last.display().to_string(), &at, "a later batch follows"],
    );
}

#[test]
fn a_torn_tail_is_not_shown_and_no_error() {
    let (_clean, id, mut h) = history(50, 4096);
    let frame = h.write_torn(30);
    let v = shown(&id, &h, &[]);
    assert_eq!(seqs(&v), (1..=50).collect::<Vec<_>>());
    let o = journal(&id, &h, &["--tail", "1"]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", show(&o));
    // Once whole, it shows.
    h.finish(&frame);
    assert_eq!(seqs(&shown(&id, &h, &[])), (1..=51).collect::<Vec<_>>());
}
