//! `shmex bench exchange`'s durable rows: measured in a directory of the
//! run's own under `--dir`, removed afterwards; the JSON has the machine's
//! `fdatasync` figures, and every group (shmex, SQLite, LMDB) either
//! measured or noted as not measured, never failed.

use crate::support::process::{run_bounded, shmex};

#[test]
fn the_durable_rows_measure_fdatasync_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = tempfile::tempdir().expect("a temporary directory");
    let o = run_bounded(
        shmex()
            .env("XDG_STATE_HOME", state.path())
            .args([
                "bench", "exchange", "--quick", "--runs", "1", "--json", "--dir",
            ])
            .arg(dir.path()),
        b"",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let d = &v["exchange"]["durable"];
    let fig = |k: &str| d["figures"][k].as_f64();
    let (p50, p99) = (fig("fdatasync_p50_ns"), fig("fdatasync_p99_ns"));
    assert!(
        matches!((p50, p99), (Some(a), Some(b)) if a > 0.0 && b >= a),
        "{d}"
    );
    for group in ["shmex", "sqlite", "lmdb"] {
        match d["notes"][group].as_str() {
            Some(note) => assert!(note.starts_with("not measured"), "{group}: {note}"),
            None => {
                let key = format!("{group}_16_ops_per_sec");
                assert!(fig(&key).is_some_and(|x| x > 0.0), "{group}: {d}");
            }
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read").collect();
    assert!(left.is_empty(), "left behind in --dir: {left:?}");
    let left: Vec<_> = std::fs::read_dir(state.path()).expect("read").collect();
    assert!(left.is_empty(), "left behind in XDG_STATE_HOME: {left:?}");
}
