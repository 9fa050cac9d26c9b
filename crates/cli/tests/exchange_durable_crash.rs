//! Crash, then reboot: a flush leader dies between writing its batch and
//! syncing it (the `mid-flush` failpoint), four traders with `--json` are
//! SIGKILLed at random moments, then the segment is removed behind shmex's
//! back and `recover` rebuilds it from the journal on disk. Every answer a
//! trader printed as done is in the recovered journal, with the same
//! content; the journal runs without a gap, holds nothing but the
//! traders' operations, and `check` passes. Several seeds, each printed.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::exchange_durable::remove_behind_its_back;
use crate::support::exchange::traffic::{random_input, seed};
use crate::support::exchange::{Backend, Exchange, assert_no_gaps};
use crate::support::process::{Piped, show, wait_exit};
use crate::support::{Cleanup, state_home};

const TRADERS: usize = 4;
const LINES: usize = 2000;
const SEEDS: usize = 3;

#[test]
fn crash_then_reboot_keeps_every_acknowledged_answer() {
    let first = seed();
    for i in 0..SEEDS as u64 {
        let s = first.wrapping_add(i);
        eprintln!("seed {s}");
        let b = if i % 2 == 0 {
            Backend::Posix
        } else {
            Backend::SysV
        };
        crash_then_reboot(b, s);
    }
}

/// `shmex exchange … trade --account NAME --open --json` with failpoint
/// `point` armed (if any) and core dumps off, so that an abort leaves no
/// core file.
fn trader(ex: &Exchange, name: &str, point: Option<&str>) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -c 0; exec \"$0\" \"$@\"",
        crate::support::process::bin()
            .to_str()
            .expect("a UTF-8 path"),
    ])
    .args(ex.args(&["trade", "--account", name, "--open", "--json"]))
    .env("XDG_STATE_HOME", state_home())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(p) = point {
        cmd.env("SHMEX_FAILPOINT", p);
    }
    cmd
}

fn crash_then_reboot(b: Backend, s: u64) {
    let ex = Exchange::init(b, "dur-crash", &["--ring", "65536"]);
    let home = ex.quote()["home"].as_str().expect("home").to_string();
    let mut rng = StdRng::seed_from_u64(s);
    let mut clean = Cleanup::new();

    // The first leader dies after writing its batch, before syncing it.
    let i = clean.hold(
        trader(&ex, "leader", Some("mid-flush"))
            .spawn()
            .expect("spawn"),
    );
    let piped = Piped::new(clean.child(i), random_input(&mut rng, 50, &home));
    let o = piped.output(wait_exit(clean.child(i), "the leader"));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(libc::SIGABRT),
        "the leader aborts mid-flush: {}",
        show(&o)
    );
    assert!(
        o.stdout.is_empty(),
        "nothing durable, nothing answered: {}",
        show(&o)
    );

    // Four traders, each killed at a random moment.
    let names: Vec<String> = (0..TRADERS).map(|i| format!("t{i}")).collect();
    let mut running = Vec::new();
    for n in &names {
        let i = clean.hold(trader(&ex, n, None).spawn().expect("spawn"));
        let piped = Piped::new(clean.child(i), random_input(&mut rng, LINES, &home));
        running.push((i, piped, Duration::from_millis(rng.random_range(0..400))));
    }
    running.sort_by_key(|r| r.2);
    let start = std::time::Instant::now();
    let mut printed: Vec<(String, String)> = Vec::new();
    for (i, piped, at) in running {
        std::thread::sleep(at.saturating_sub(start.elapsed()));
        let _ = clean.child(i).kill();
        let status = wait_exit(clean.child(i), "a trader");
        let o = piped.output(status);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        printed.push((format!("trader {i}"), text));
    }

    // What each printed as done, by sequence number (a last line cut by
    // the kill is no answer).
    let mut acked: BTreeMap<u64, Value> = BTreeMap::new();
    for (who, text) in &printed {
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let a: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{who}: not JSON ({e}): {line:?}"));
            if a["ok"] == true
                && let Some(seq) = a["seq"].as_u64()
            {
                assert!(acked.insert(seq, a).is_none(), "seq {seq} answered twice");
            }
        }
    }

    remove_behind_its_back(&ex);
    let out = ex.ok(&["recover"]);
    assert!(out.starts_with("recovered exchange "), "{out}");
    ex.check();
    let journal = ex.journal();
    assert_no_gaps(&journal, "the recovered journal");
    assert_eq!(
        journal.first().map(|r| r["seq"].clone()),
        Some(Value::from(1))
    );
    let by_seq: BTreeMap<u64, &Value> = journal
        .iter()
        .map(|r| (r["seq"].as_u64().expect("seq"), r))
        .collect();
    for r in &journal {
        let account = r["account"].as_str().unwrap_or_default();
        assert!(
            account == "leader" || names.iter().any(|n| n == account),
            "a record of no trader's: {r}"
        );
    }
    for (seq, a) in &acked {
        let r = by_seq
            .get(seq)
            .unwrap_or_else(|| panic!("acknowledged seq {seq} is not on disk: {a}"));
        for field in ["op", "account", "code", "amount", "rate", "total"] {
            if !a[field].is_null() {
                assert_eq!(
                    a[field], r[field],
                    "seq {seq}: {field}: answer {a}, record {r}"
                );
            }
        }
    }
    eprintln!(
        "{b:?}: {} acknowledged, {} records recovered",
        acked.len(),
        journal.len()
    );
}
