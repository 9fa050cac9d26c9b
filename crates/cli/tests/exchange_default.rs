//! The exchange that no flag or variable names: `shmex-exchange`. Tested
//! where that name is surely free and no one's real exchange can be
//! touched, in a mount namespace of its own with an empty `/dev/shm` (the
//! tests run as root in CI); never skipped.

use std::process::Command;

use crate::support::exchange::MISSING;
use crate::support::process::{run_bounded, show, stdout};

/// Run in the private namespace: each `shmex` step's status, and what
/// `/dev/shm` holds after `init` and after `destroy`.
const SCRIPT: &str = r#"
mount -t tmpfs shmex-test /dev/shm || exit 99
unset SHMEX_EXCHANGE
"$0" exchange quote 2>&1; echo "quote: $?"
"$0" exchange init >/dev/null; echo "init: $?"
echo "shm: $(ls /dev/shm)"
"$0" exchange quote >/dev/null; echo "quote: $?"
"$0" exchange destroy --purge >/dev/null; echo "destroy: $?"
echo "shm: $(ls /dev/shm)"
"#;

/// With no name given, `quote` says that `shmex-exchange` is missing,
/// `init` makes `/dev/shm/shmex-exchange`, `quote` reads it and `destroy`
/// removes it.
#[test]
fn the_default_exchange_is_named_shmex_exchange() {
    let o = run_bounded(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", SCRIPT])
            .arg(crate::support::process::bin())
            .env("XDG_STATE_HOME", crate::support::state_home()),
        b"",
    );
    crate::support::remove_journal(&crate::support::SegmentId::Posix(
        "shmex-exchange".to_owned(),
    ));
    assert_eq!(
        o.status.code(),
        Some(0),
        "no private mount namespace with its own /dev/shm (this test needs root): {}",
        show(&o)
    );
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let missing = format!("shmex: exchange \"shmex-exchange\" {MISSING}");
    assert!(
        lines.first().is_some_and(|l| l.contains(&missing)),
        "{}",
        show(&o)
    );
    assert_eq!(
        lines[1..],
        [
            "quote: 1",
            "init: 0",
            "shm: shmex-exchange",
            "quote: 0",
            "destroy: 0",
            "shm: ",
        ],
        "{}",
        show(&o)
    );
}
