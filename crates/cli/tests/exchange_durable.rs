//! The journal on disk: the books survive the loss of their segment (a
//! reboot, simulated by removing the segment behind shmex's back) through
//! `recover`; `destroy` keeps the journal and `--purge` removes it;
//! `--no-journal` keeps nothing on disk; a torn last record is cut and
//! reported, a bad record in the middle refused with its file and offset.
//!
//! Journals live in the tests' own `XDG_STATE_HOME` (see
//! `support::state_home`), removed with each exchange.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::support::exchange::traffic::{random_input, seed};
use crate::support::exchange::{Backend, Exchange, on_both_backends};
use crate::support::process::{Piped, assert_refused, run_bounded, show, stderr};
use crate::support::{SegmentId, journal_dir};

on_both_backends!(
    a_reboot_loses_nothing,
    a_scribbled_journal_place_is_refused,
    files_rotate_and_checkpoints_bound_the_replay,
    destroy_keeps_the_journal_and_purge_removes_it,
    recover_refuses_the_journal_of_another_exchange,
    purge_removes_a_kept_journal_without_its_segment,
    a_refused_journal_place_changes_nothing,
    no_journal_keeps_nothing_on_disk,
);

const TRADERS: usize = 4;
const LINES: usize = 1500;

/// Removes the exchange's segment as a reboot would, without shmex: the
/// file in `/dev/shm`, or the System V key with `ipcrm`.
pub fn remove_behind_its_back(ex: &Exchange) {
    match &ex.id {
        SegmentId::Posix(name) => {
            std::fs::remove_file(crate::support::shm_file(name)).expect("rm /dev/shm/NAME");
        }
        SegmentId::SysV(key) => {
            let o = run_bounded(
                Command::new("ipcrm").args(["-M", &format!("{:#x}", *key as u32)]),
                b"",
            );
            assert!(o.status.success(), "ipcrm: {}", show(&o));
        }
    }
    assert!(!ex.exists(), "the segment is still there");
}

/// The journal files of the directory `dir`, in order.
pub fn journal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the journal directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("journal-") && n.ends_with(".log"))
        })
        .collect();
    v.sort();
    v
}

/// Every file of `dir` with its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read the journal directory")
        .map(|e| {
            let p = e.expect("entry").path();
            let b = std::fs::read(&p).expect("read a journal file");
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// Puts `dir` back as `saved` holds it (files made since are removed).
fn put_back(dir: &Path, saved: &[(PathBuf, Vec<u8>)]) {
    for (p, _) in contents(dir) {
        if !saved.iter().any(|(q, _)| *q == p) {
            std::fs::remove_file(&p).expect("remove a new file");
        }
    }
    for (p, b) in saved {
        std::fs::write(p, b).expect("write a journal file back");
    }
}

/// The start of each frame of a journal file's bytes: after the 64-byte
/// header, each frame is 12 bytes and its body (whose length comes first).
fn frames(bytes: &[u8]) -> Vec<usize> {
    let mut at = 64;
    let mut v = Vec::new();
    while at + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        v.push(at);
        at += 12 + len;
    }
    assert_eq!(at, bytes.len(), "the frames end where the file does");
    v
}

fn a_reboot_loses_nothing(b: Backend) {
    let mut ex = Exchange::init(b, "dur-reboot", &[]);
    let home = ex.quote()["home"].as_str().expect("home").to_string();
    let s = seed();
    eprintln!("seed {s}");
    let mut rng = StdRng::seed_from_u64(s);
    let inputs: Vec<Vec<u8>> = (0..TRADERS)
        .map(|_| random_input(&mut rng, LINES, &home))
        .collect();
    let idx: Vec<usize> = (0..TRADERS)
        .map(|i| ex.spawn(&["trade", "--account", &format!("t{i}"), "--open", "--json"]))
        .collect();
    let io: Vec<Piped> = idx
        .iter()
        .zip(&inputs)
        .map(|(&i, input)| Piped::new(ex.child(i), input.clone()))
        .collect();
    for (&i, piped) in idx.iter().zip(io) {
        let o = piped.output(ex.finish(i, &format!("trader {i}")));
        assert!(o.status.success(), "trader {i}: {}", show(&o));
    }
    ex.ok(&["set-rate", "EURO", "--buy", "14", "--sell", "15", "--yes"]);
    let before = ex.state();
    assert!(before.journal.len() > TRADERS * 100, "the traders traded");

    remove_behind_its_back(&ex);
    let out = ex.ok(&["recover"]);
    assert!(out.starts_with("recovered exchange "), "{out}");
    assert_eq!(ex.state(), before, "the books after recover");
    ex.check();
    // It goes on from there.
    ex.ok(&["buy", "--account", "t0", "DOLLAR", "0.01"]);
    ex.check();
}

/// With small files and frequent checkpoints (the tuning variables), the
/// journal spans many files, the newest two checkpoints and the genesis
/// one are kept, and `recover` replays only what follows the newest. The
/// ring of 64 records makes the trade loop flush mid-batch (a slot is
/// reused only once its record is on disk).
fn files_rotate_and_checkpoints_bound_the_replay(b: Backend) {
    let ex = Exchange::init(b, "dur-rotate", &["--ring", "64"]);
    let home = ex.quote()["home"].as_str().expect("home").to_string();
    let mut rng = StdRng::seed_from_u64(seed());
    // Three loops, each past the checkpoint interval: three checkpoints,
    // of which the oldest goes.
    for _ in 0..3 {
        let mut input = random_input(&mut rng, 800, &home);
        input.extend_from_slice(b"deposit TRY 1\n");
        let o = run_bounded(
            ex.cmd(&["trade", "--account", "rot", "--open", "--json"])
                .env("SHMEX_JOURNAL_ROTATE", "4096")
                .env("SHMEX_CHECKPOINT_RECORDS", "500"),
            &input,
        );
        assert!(o.status.success(), "{}", show(&o));
    }
    let dir = journal_dir(&ex.id);
    let files = journal_files(&dir);
    assert!(files.len() > 10, "the journal rotated: {files:?}");
    let checkpoints: Vec<String> = std::fs::read_dir(&dir)
        .expect("read the journal directory")
        .filter_map(|e| e.expect("entry").file_name().into_string().ok())
        .filter(|n| n.starts_with("checkpoint-"))
        .collect();
    assert_eq!(
        checkpoints.len(),
        3,
        "the newest two and the genesis: {checkpoints:?}"
    );
    let before = ex.state();
    remove_behind_its_back(&ex);
    let out = ex.ok(&["recover"]);
    assert!(
        !out.contains("checkpoint 0 "),
        "replay starts at a checkpoint: {out}"
    );
    assert_eq!(ex.state(), before, "the books after recover");
    ex.check();
}

fn destroy_keeps_the_journal_and_purge_removes_it(b: Backend) {
    let ex = Exchange::init(b, "dur-destroy", &[]);
    let dir = journal_dir(&ex.id);
    assert!(dir.join("identity.toml").is_file(), "init made the journal");
    ex.ok(&["open", "alice"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "3"]);
    let before = ex.state();
    assert_refused(&ex.run(&["recover"]), 1, &["exists", "destroy"]);

    let out = ex.ok(&["destroy"]);
    assert!(
        out.contains(&format!("its journal is kept in {}", dir.display())),
        "{out}"
    );
    assert!(!ex.exists());
    assert!(
        dir.join("identity.toml").is_file(),
        "destroy kept the journal"
    );
    // A new exchange there would lose that history: refused.
    assert_refused(&ex.run(&["init"]), 1, &["holds the journal", "recover"]);
    assert!(!ex.exists());

    ex.ok(&["recover"]);
    assert_eq!(ex.state(), before, "the books after destroy and recover");
    ex.check();

    let out = ex.ok(&["destroy", "--purge"]);
    assert!(
        out.contains(&format!("removed its journal {}", dir.display())),
        "{out}"
    );
    assert!(!dir.exists(), "--purge removed the journal");
    assert_refused(&ex.run(&["recover"]), 1, &["does not exist"]);
    ex.ok(&["init"]);
}

/// `recover --journal DIR` recovers the exchange named, never another:
/// the journal of another exchange is refused, naming its exchange and the
/// option that recovers it, and nothing is created.
fn recover_refuses_the_journal_of_another_exchange(b: Backend) {
    let mine = Exchange::init(b, "dur-mine", &[]);
    let other = Exchange::new(b, "dur-other");
    let dir = journal_dir(&mine.id);
    let d = dir.to_str().expect("a UTF-8 path");
    mine.ok(&["open", "alice"]);
    mine.ok(&["buy", "--account", "alice", "DOLLAR", "3"]);
    let before = mine.state();
    mine.ok(&["destroy"]);
    let flag = match &mine.id {
        SegmentId::Posix(name) => format!("--exchange {name}"),
        SegmentId::SysV(key) => format!("--key {:#x}", *key as u32),
    };
    let o = other.run(&["recover", "--journal", d]);
    assert_refused(&o, 1, &["is the journal of exchange", &flag]);
    assert!(!mine.exists() && !other.exists(), "nothing was created");
    assert!(
        !journal_dir(&other.id).exists(),
        "no journal was made for the other exchange"
    );
    mine.ok(&["recover", "--journal", d]);
    assert_eq!(mine.state(), before, "the books after recover --journal");
    mine.check();
}

/// Once `destroy` has kept the journal, `destroy --purge` removes it
/// without the segment (and without a `recover` first); a plain `destroy`
/// still refuses, changing nothing.
fn purge_removes_a_kept_journal_without_its_segment(b: Backend) {
    let ex = Exchange::init(b, "dur-purge", &[]);
    let dir = journal_dir(&ex.id);
    ex.ok(&["open", "alice"]);
    ex.ok(&["destroy"]);
    assert!(
        dir.join("identity.toml").is_file(),
        "destroy kept the journal"
    );
    assert_refused(&ex.run(&["destroy"]), 1, &["does not exist"]);
    assert!(dir.join("identity.toml").is_file(), "still kept");
    let out = ex.ok(&["destroy", "--purge"]);
    assert!(
        out.contains("does not exist")
            && out.contains(&format!("removed its journal {}", dir.display())),
        "{out}"
    );
    assert!(!dir.exists(), "--purge removed the kept journal");
    assert!(!ex.exists(), "and made no segment");
    assert_refused(&ex.run(&["destroy", "--purge"]), 1, &["does not exist"]);
}

/// `init --force --journal DIR` refused for its directory (a path too
/// long for the segment to record, a directory of other files) changes
/// nothing: the exchange it would replace is still there, with its
/// journal, and no directory was made.
fn a_refused_journal_place_changes_nothing(b: Backend) {
    let ex = Exchange::init(b, "dur-place", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "3"]);
    let before = ex.state();
    let tmp = tempfile::Builder::new()
        .prefix("shmex-test-place-")
        .tempdir()
        .expect("tempdir");
    let long = tmp.path().join("d".repeat(200)).join("e".repeat(100));
    let long = long.to_str().expect("a UTF-8 path");
    assert_refused(
        &ex.run(&["init", "--force", "--journal", long]),
        1,
        &["bytes, longer than 256", "--journal DIR"],
    );
    assert!(
        std::fs::read_dir(tmp.path())
            .expect("the temporary directory")
            .next()
            .is_none(),
        "no directory was made"
    );
    let other = tmp.path().join("notes");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("todo.txt"), b"mine").expect("a file");
    let other = other.to_str().expect("a UTF-8 path");
    assert_refused(
        &ex.run(&["init", "--force", "--journal", other]),
        1,
        &["todo.txt", "choose another directory"],
    );
    assert_eq!(
        std::fs::read(tmp.path().join("notes/todo.txt")).expect("still there"),
        b"mine"
    );
    assert_eq!(ex.state(), before, "the exchange was not replaced");
    assert!(
        journal_dir(&ex.id).join("identity.toml").is_file(),
        "nor its journal"
    );
    ex.check();
}

fn no_journal_keeps_nothing_on_disk(b: Backend) {
    let ex = Exchange::init(b, "dur-none", &["--no-journal"]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "3"]);
    let got = ex.trade("alice", b"sell DOLLAR 1\n");
    assert_eq!(got[0]["ok"], true, "{got:?}");
    assert!(!journal_dir(&ex.id).exists(), "nothing on disk");
    let out = ex.ok(&["destroy"]);
    assert!(out.contains("no journal is kept on disk"), "{out}");
    assert_refused(&ex.run(&["recover"]), 1, &["does not exist"]);
}

/// The journal is cut at every byte inside its last record: `recover`
/// cuts exactly that record, says so, and the books are those after the
/// record before it. A flipped byte in a record in the middle makes
/// `recover` refuse, naming the file and the offset, and change nothing;
/// `--keep-good-prefix` then keeps the records before it.
#[test]
fn a_torn_tail_is_cut_and_a_bad_record_refused() {
    let ex = Exchange::init(Backend::Posix, "dur-torn", &[]);
    ex.ok(&["open", "alice"]);
    // One-shot commands: each record its own batch, made durable alone.
    for amount in ["1", "2", "3", "4"] {
        ex.ok(&["buy", "--account", "alice", "DOLLAR", amount]);
    }
    let full = ex.state();
    ex.ok(&["sell", "--account", "alice", "DOLLAR", "5"]);
    remove_behind_its_back(&ex);
    let dir = journal_dir(&ex.id);
    let saved = contents(&dir);
    let file = journal_files(&dir).pop().expect("a journal file");
    let bytes = std::fs::read(&file).expect("read the journal");
    let starts = frames(&bytes);
    let tail = *starts.last().expect("records");

    for cut in tail + 1..bytes.len() {
        put_back(&dir, &saved);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(cut as u64))
            .expect("cut the journal");
        let out = ex.ok(&["recover"]);
        let said = format!("cut a torn record at {} offset {tail} ", file.display());
        assert!(out.contains(&said), "cut at {cut}: {out}");
        assert_eq!(
            std::fs::metadata(&file).expect("stat").len(),
            tail as u64,
            "cut at {cut}: the torn record is cut off"
        );
        assert_eq!(
            ex.state(),
            full,
            "cut at {cut}: the books before the torn record"
        );
        if cut % 32 == 0 {
            ex.check();
        }
        remove_behind_its_back(&ex);
    }

    // A flipped byte in the third record: refused, nothing changed.
    put_back(&dir, &saved);
    let bad = starts[2];
    let mut flipped = bytes.clone();
    flipped[bad + 40] ^= 0x10;
    std::fs::write(&file, &flipped).expect("flip a byte");
    let damaged = contents(&dir);
    let o = ex.run(&["recover"]);
    assert_refused(
        &o,
        1,
        &[
            "corrupt journal record in",
            &file.display().to_string(),
            &format!("at offset {bad}"),
        ],
    );
    assert_eq!(contents(&dir), damaged, "a refused recover changes nothing");
    assert!(!ex.exists(), "a refused recover makes no segment");

    let out = ex.ok(&["recover", "--keep-good-prefix"]);
    assert!(out.contains("kept the records before"), "{out}");
    let journal = ex.journal();
    assert_eq!(journal.len(), 2, "the open and the first buy: {journal:?}");
    ex.check();
    assert!(
        std::fs::metadata(format!("{}.damaged", file.display())).is_ok(),
        "the damaged file is kept aside: {}",
        stderr(&o)
    );
}

/// Payload offsets of the journal's place in the segment (format 4; the
/// exchange crate's test `offsets_the_hostile_tests_write_to` pins them).
const EXCHANGE_ID: usize = 392;
const DIR_LEN: usize = 400;
const DIR: usize = 408;

/// A peer that rewrites where the journal is, or whose it is, gets no
/// acknowledgement written elsewhere: the order is refused (exit 1, one
/// line naming the journal), and nothing is written into the other place.
fn a_scribbled_journal_place_is_refused(b: Backend) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let ex = Exchange::init(b, "dur-hostile", &[]);
    ex.ok(&["open", "alice"]);
    let seg = shm::Segment::open(&ex.id, shm::Access::ReadWrite).expect("attach");
    let word = |off: usize| -> &AtomicU64 {
        seg.view(shm::header::HEADER_SIZE + off)
            .expect("a payload word")
    };
    let other = tempfile::tempdir().expect("a directory");
    let path = other.path().to_str().expect("UTF-8").as_bytes().to_vec();
    let (old_len, old_first) = (
        word(DIR_LEN).load(Ordering::SeqCst),
        word(DIR).load(Ordering::SeqCst),
    );
    // Another directory: not a journal (no identity), so nothing is written.
    let mut padded = path.clone();
    padded.resize(256, 0);
    let saved: Vec<u64> = (0..32)
        .map(|i| word(DIR + 8 * i).load(Ordering::SeqCst))
        .collect();
    for (i, chunk) in padded.chunks(8).enumerate() {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        word(DIR + 8 * i).store(w, Ordering::SeqCst);
    }
    word(DIR_LEN).store(path.len() as u64, Ordering::SeqCst);
    let o = ex.run(&["buy", "--account", "alice", "DOLLAR", "1", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("\"code\":\"journal_error\""),
        "{}",
        show(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", show(&o));
    assert_eq!(
        std::fs::read_dir(other.path()).expect("read").count(),
        0,
        "nothing written in the other directory"
    );
    for (i, w) in saved.iter().enumerate() {
        word(DIR + 8 * i).store(*w, Ordering::SeqCst);
    }
    word(DIR_LEN).store(old_len, Ordering::SeqCst);
    assert_eq!(word(DIR).load(Ordering::SeqCst), old_first);
    // Another exchange's id: the directory is refused as foreign.
    let id = word(EXCHANGE_ID).load(Ordering::SeqCst);
    word(EXCHANGE_ID).store(id ^ 1, Ordering::SeqCst);
    assert_refused(
        &ex.run(&["buy", "--account", "alice", "DOLLAR", "1"]),
        1,
        &["journal", "belongs to exchange"],
    );
    word(EXCHANGE_ID).store(id, Ordering::SeqCst);
    // Put back, it works, and nothing refused reached the disk as done.
    ex.ok(&["buy", "--account", "alice", "DOLLAR", "1"]);
    ex.check();
}
