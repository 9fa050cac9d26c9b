//! `exchange journal` as it runs beside an exchange: `--follow` across
//! rotation and until the exchange is removed, the default directory read
//! without a segment, a missing directory named, the ring of a memory-only
//! exchange filtered, and the long history: 100,000 operations by
//! real trade loops, whose first ten records come from disk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use exchange::disk;
use serde_json::Value;

use crate::exchange_history::{expected, history, journal_cmd, select, seqs};
use crate::support::exchange::{Backend, Exchange, answers};
use crate::support::journal::History;
use crate::support::process::{assert_refused, run_bounded, shmex, show, signal, stdout};
use crate::support::{Cleanup, SegmentId, wait_until};

/// The lines a child prints, collected by a thread of its own.
fn collect_lines(child: &mut std::process::Child) -> Arc<Mutex<Vec<String>>> {
    let out = child.stdout.take().expect("piped stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            sink.lock().unwrap().push(l);
        }
    });
    lines
}

fn json_seqs(lines: &Mutex<Vec<String>>) -> Vec<u64> {
    let text = lines.lock().unwrap().join("\n");
    seqs(&answers(&text))
}

#[test]
fn follow_prints_new_durable_records_also_in_new_files() {
    let (mut clean, id, mut h) = history(20, 1 << 20);
    let all = clean.hold(
        journal_cmd(&id, &h.path(), &["--follow", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let alice = clean.hold(
        journal_cmd(
            &id,
            &h.path(),
            &["--follow", "--json", "--account", "alice", "--tail", "2"],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let lines = collect_lines(clean.child(all));
    let alice_lines = collect_lines(clean.child(alice));
    wait_until("the follower printed the history", || {
        json_seqs(&lines).len() == 20
    });
    // Both have read the history before it grows: alice's last two
    // records are the newest two of the first 20.
    wait_until("the filtered follower printed its tail", || {
        json_seqs(&alice_lines).len() == 2
    });
    h.write(5, 2);
    wait_until("the follower printed the new records", || {
        json_seqs(&lines).len() == 25
    });
    // A write in progress shows only once whole; then a new file.
    let frame = h.write_torn(40);
    h.finish(&frame);
    h.rotate();
    h.write(5, 3);
    wait_until("the follower read the new file", || {
        json_seqs(&lines).len() == 31
    });
    assert_eq!(json_seqs(&lines), (1..=31).collect::<Vec<_>>());
    let want_alice: Vec<u64> = {
        let a = expected(&h, None, |r| r.account.as_str() == "alice");
        let old: Vec<u64> = a.iter().copied().filter(|&s| s <= 20).collect();
        let mut w = old[old.len() - 2..].to_vec();
        w.extend(a.iter().filter(|&&s| s > 20));
        w
    };
    wait_until("the filtered follower caught up", || {
        json_seqs(&alice_lines).len() == want_alice.len()
    });
    assert_eq!(json_seqs(&alice_lines), want_alice);
    for i in [all, alice] {
        signal(clean.child(i).id(), "TERM");
        let o = crate::support::process::finish(&mut clean, i);
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        assert!(o.stderr.is_empty(), "{}", show(&o));
    }
}

#[test]
fn follow_stops_once_the_exchange_is_removed() {
    let mut ex = Exchange::init(Backend::Posix, "history-follow", &[]);
    let mut h = History::new(&ex.id, 1 << 20);
    h.write(10, 3);
    let dir = h.path();
    let dir = dir.to_str().unwrap();
    let f = ex.spawn(&["journal", "--follow", "--journal", dir]);
    let lines = collect_lines(ex.child(f));
    // The headings, then the records.
    wait_until("the follower printed the history", || {
        lines.lock().unwrap().len() == 11
    });
    ex.ok(&["destroy", "--force"]);
    h.write(3, 3);
    let status = ex.finish(f, "journal --follow");
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut ex.child(f).stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("was removed"), "{err}");
    let lines = lines.lock().unwrap().clone();
    assert!(lines[0].starts_with("     SEQ  TIME"), "{lines:?}");
    assert!(lines.len() >= 11, "{lines:?}");
}

#[test]
fn the_default_directory_is_read_without_the_segment() {
    let mut clean = Cleanup::new();
    let name = clean.name("history-xdg");
    let id = SegmentId::Posix(name.clone());
    // $XDG_STATE_HOME/shmex/<exchange>/
    let tmp = tempfile::Builder::new()
        .prefix("shmex-test-state-")
        .tempdir()
        .unwrap();
    let state = tmp.path().to_path_buf();
    let path = disk::default_dir(&id, Some(state.as_os_str()), None).unwrap();
    let mut h = History::create(tmp, &path, &id, 4096);
    h.write(30, 4);
    let run = |env: &[(&str, &Path)]| {
        let mut c = shmex();
        c.args([
            "exchange",
            "--exchange",
            &name,
            "journal",
            "--seq",
            "..3",
            "--json",
        ]);
        c.env_remove("XDG_STATE_HOME");
        for (k, v) in env {
            c.env(k, v);
        }
        run_bounded(&mut c, b"")
    };
    let o = run(&[("XDG_STATE_HOME", &state)]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        seqs(&answers(&stdout(&o))[0].as_array().unwrap().clone()),
        [1, 2, 3]
    );
    // Without XDG_STATE_HOME: ~/.local/state/shmex/<exchange>/.
    let home = tempfile::Builder::new()
        .prefix("shmex-test-home-")
        .tempdir()
        .unwrap();
    let moved = disk::default_dir(&id, None, Some(home.path().as_os_str())).unwrap();
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(h.path(), &moved).unwrap();
    let o = run(&[("HOME", home.path())]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        answers(&stdout(&o))[0].as_array().unwrap().len(),
        3,
        "{}",
        show(&o)
    );
    // No journal and no segment: the exchange does not exist.
    let empty = tempfile::Builder::new()
        .prefix("shmex-test-state-")
        .tempdir()
        .unwrap();
    let o = run(&[("XDG_STATE_HOME", empty.path())]);
    assert_refused(&o, 1, &["does not exist: run `shmex exchange init` first"]);
}

#[test]
fn a_journal_directory_that_is_not_there_is_named() {
    let mut clean = Cleanup::new();
    let id = SegmentId::SysV(clean.key());
    let tmp = tempfile::Builder::new()
        .prefix("shmex-test-state-")
        .tempdir()
        .unwrap();
    let missing = tmp.path().join("nowhere");
    let o = run_bounded(&mut journal_cmd(&id, &missing, &[]), b"");
    assert_refused(&o, 1, &[&missing.display().to_string(), "does not exist"]);
    // A System V exchange's default directory: key-0x<hex>.
    let path = disk::default_dir(&id, Some(tmp.path().as_os_str()), None).unwrap();
    assert!(
        path.ends_with(format!("key-{:#010x}", id_key(&id))),
        "{path:?}"
    );
    let mut h = History::create(tmp, &path, &id, 4096);
    h.write(12, 5);
    let mut c = shmex();
    c.arg("exchange")
        .args(select(&id))
        .args(["journal", "--json", "--seq", "11.."]);
    c.env("XDG_STATE_HOME", path.parent().unwrap().parent().unwrap());
    let o = run_bounded(&mut c, b"");
    assert!(o.status.success(), "{}", show(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(seqs(v.as_array().unwrap()), [11, 12]);
}

fn id_key(id: &SegmentId) -> u32 {
    match id {
        SegmentId::SysV(k) => *k as u32,
        SegmentId::Posix(_) => unreachable!("a System V id"),
    }
}

#[test]
fn filters_apply_to_the_ring_of_a_memory_only_exchange() {
    let ex = Exchange::init(Backend::Posix, "history-ring", &[]);
    ex.ok(&["open", "alice"]);
    ex.ok(&["open", "bob"]);
    ex.ok(&["deposit", "--account", "alice", "DOLLAR", "5"]);
    ex.ok(&["buy", "--account", "bob", "DOLLAR", "1"]);
    let v = ex.json(&["journal", "--json", "--account", "bob"]);
    let ops: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["open", "buy"]);
    let v = ex.json(&["journal", "--json", "--code", "DOLLAR", "--tail", "1"]);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["op"], "buy");
    let v = ex.json(&["journal", "--json", "--op", "open", "--seq", "2.."]);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["account"], "bob");
}

/// The "Done when": after 100,000 operations by real traders,
/// `journal --seq 1..10` shows the first ten from disk, and the filters
/// work.
#[test]
fn history_beyond_the_ring() {
    let state = tempfile::Builder::new()
        .prefix("shmex-test-state-")
        .tempdir()
        .unwrap();
    let ex = Exchange::new(Backend::Posix, "history-done");
    let run = |sub: &[&str], stdin: &[u8]| {
        let mut c = ex.cmd(sub);
        c.env("XDG_STATE_HOME", state.path());
        run_bounded(&mut c, stdin)
    };
    let ok = |sub: &[&str], stdin: &[u8]| {
        let o = run(sub, stdin);
        assert!(o.status.success(), "{sub:?}: {}", show(&o));
        stdout(&o)
    };
    ok(&["init"], b"");
    let lines: String = (0..50_000)
        .map(|i| {
            if i % 2 == 0 {
                "deposit TRY 1\n"
            } else {
                "withdraw TRY 1\n"
            }
        })
        .collect();
    for who in ["alice", "bob"] {
        ok(&["trade", "--account", who, "--open"], lines.as_bytes());
    }
    // The ring (8,192 records by default) holds only the newest.
    let v: Value =
        serde_json::from_str(&ok(&["journal", "--json", "--seq", "1..10"], b"")).unwrap();
    let v = v.as_array().unwrap();
    assert_eq!(seqs(v), (1..=10).collect::<Vec<_>>());
    assert_eq!(v[0]["op"], "open");
    assert_eq!(v[0]["account"], "alice");
    assert_eq!(v[1]["op"], "deposit");
    assert_eq!(v[1]["balances"]["TRY"], "1001.00");
    let count = |args: &[&str]| -> usize {
        let mut a = vec!["journal", "--json"];
        a.extend_from_slice(args);
        let v: Value = serde_json::from_str(&ok(&a, b"")).unwrap();
        v.as_array().unwrap().len()
    };
    assert_eq!(count(&[]), 100_002);
    assert_eq!(count(&["--account", "bob"]), 50_001);
    assert_eq!(count(&["--op", "withdraw"]), 50_000);
    assert_eq!(
        count(&["--account", "bob", "--op", "deposit", "--seq", "..60000"]),
        // Bob opened at 50,002; his deposits are the odd records from 50,003.
        4_999
    );
    assert_eq!(count(&["--code", "DOLLAR"]), 0);
    assert_eq!(count(&["--op", "open", "--tail", "1"]), 1);
    assert_eq!(
        count(&[
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2000-01-02T00:00:00+01:00"
        ]),
        0
    );
    ok(&["destroy"], b"");
}
