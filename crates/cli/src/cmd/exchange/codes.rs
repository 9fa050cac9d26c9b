//! Machine codes for the exchange commands' failures: every error a
//! `--json` command can meet has a stable `code` beside its message, and
//! the failure is one JSON object on stdout. The README's table lists
//! `CODES`; a test keeps the two in step.

use std::io::Write as _;

use exchange::money::MoneyError;
use exchange::{OpError, OpenError, SnapshotError, TableError};

use super::order::InputError;
use super::show::js;
use crate::support::error::{self, one_line};

/// Every code, with its exit status (`—`: a line of the trade loop or of
/// a follower, which goes on; `128 + N`: signal N) and what it means. The
/// README's table is this list, which a test checks.
#[cfg(test)]
pub const CODES: &[(&str, &str, &str)] = &[
    // Refused by the books.
    (
        "insufficient_stock",
        "1",
        "a buy of more than the exchange holds",
    ),
    (
        "insufficient_balance",
        "1",
        "a buy whose price is more than the account's home balance",
    ),
    (
        "insufficient_holding",
        "1",
        "a sell or withdrawal of more than the account holds",
    ),
    (
        "till_short",
        "1",
        "a sell whose proceeds are more than the till holds",
    ),
    (
        "unknown_account",
        "1",
        "no open account has that name (open it with `exchange open`)",
    ),
    ("account_exists", "1", "`open` of an account that is open"),
    (
        "account_not_empty",
        "1",
        "`close` of an account that still holds money",
    ),
    (
        "account_closed",
        "1",
        "an order for an account closed while the trade loop ran",
    ),
    ("accounts_full", "1", "no room for another account"),
    (
        "confirmation_needed",
        "1",
        "`set-rate` moving a rate by more than 10 % without `--yes`",
    ),
    // The exchange and its segment.
    ("no_exchange", "1", "the exchange does not exist"),
    (
        "exchange_exists",
        "1",
        "`init`, `restore` or `recover` found one there",
    ),
    (
        "exchange_removed",
        "1",
        "the exchange was removed while a trade loop, `watch` or `journal --follow` used it",
    ),
    (
        "in_use",
        "1",
        "`destroy` while processes are attached (without `--force`)",
    ),
    (
        "corrupt_exchange",
        "1",
        "the segment is an exchange whose contents make no sense",
    ),
    ("check_failed", "1", "`check` found violations"),
    (
        "lock_timeout",
        "1",
        "a live process held the exchange's lock longer than `SHMEX_LOCK_TIMEOUT` (10 s unless set)",
    ),
    (
        "lock_unusable",
        "1",
        "the exchange's lock cannot be taken for another reason",
    ),
    (
        "foreign_namespace",
        "1",
        "the exchange was made in another pid or time namespace",
    ),
    (
        "interrupted",
        "128 + N",
        "signal N (SIGINT, SIGTERM, SIGHUP) stopped the command, such as a wait for the lock",
    ),
    (
        "permission_denied",
        "1",
        "the segment belongs to someone else",
    ),
    (
        "incompatible",
        "1",
        "the segment holds something else, or another version",
    ),
    ("foreign_segment", "1", "the segment was not made by shmex"),
    (
        "not_ready",
        "1",
        "the segment's creator never finished creating it",
    ),
    ("no_space", "1", "no room for the segment"),
    ("not_found", "1", "a segment that does not exist"),
    ("segment_exists", "1", "a segment that exists already"),
    ("read_only", "2", "a write to a segment attached read-only"),
    (
        "other_owner",
        "1",
        "the segment belongs to another user, not allowed with `--allow-owner`",
    ),
    (
        "locked",
        "1",
        "another process held the segment's file locked too long",
    ),
    (
        "truncated",
        "1",
        "another process truncated the segment under this one",
    ),
    (
        "journal_error",
        "1",
        "the journal on disk cannot be used: its directory, a file, or a record in it",
    ),
    (
        "journal_exists",
        "1",
        "`init` or `restore` into a directory that holds a journal (without `--force`)",
    ),
    (
        "journal_behind",
        "1",
        "a record was not on disk by `SHMEX_DURABLE_TIMEOUT` (10 s unless set): not acknowledged",
    ),
    ("channel_error", "1", "an error of a channel"),
    ("segment_error", "1", "another error of the segment layer"),
    ("io_error", "1", "reading or writing a file failed"),
    ("failed", "1", "any other failure"),
    // Bad input: nothing was tried.
    (
        "invalid_amount",
        "2",
        "not a plain positive amount with at most the currency's decimals",
    ),
    (
        "invalid_rate",
        "2",
        "not a plain positive rate with at most 6 decimals",
    ),
    (
        "invalid_value",
        "2",
        "a malformed value (such as `init --opening`)",
    ),
    ("invalid_decimals", "2", "more than 6 decimals"),
    ("overflow", "2", "an amount too large to compute with"),
    ("invalid_rates", "2", "rates that break 0 < buy <= sell"),
    (
        "home_currency",
        "2",
        "buying, selling or quoting the home currency",
    ),
    (
        "unknown_currency",
        "2",
        "a code this exchange does not have",
    ),
    ("invalid_account_name", "2", "a malformed account name"),
    (
        "invalid_id",
        "2",
        "an account or currency of another exchange",
    ),
    ("out_of_bounds", "2", "a read or write outside a segment"),
    (
        "invalid_input",
        "2",
        "a malformed argument (name, key, mode, interval, file)",
    ),
    (
        "invalid_table",
        "2",
        "an `init --table` file that cannot make an exchange",
    ),
    (
        "invalid_snapshot",
        "2",
        "a `restore` file that is not a valid snapshot",
    ),
    (
        "snapshot_unbalanced",
        "2",
        "a snapshot whose books fail check",
    ),
    ("invalid_books", "2", "a state that cannot make an exchange"),
    (
        "invalid_failpoint",
        "2",
        "`SHMEX_FAILPOINT` names no failpoint",
    ),
    (
        "invalid_lock_timeout",
        "2",
        "`SHMEX_LOCK_TIMEOUT` holds no number of seconds",
    ),
    (
        "usage",
        "2",
        "a command line that cannot be read (an unknown option, a missing argument)",
    ),
    // Answers of the trade loop, which goes on.
    ("empty_line", "—", "an empty line (piped input)"),
    (
        "unknown_command",
        "—",
        "a line whose first word is no command",
    ),
    (
        "missing_argument",
        "—",
        "an order without its currency or amount",
    ),
    ("unexpected_argument", "—", "words after a complete command"),
    ("line_too_long", "—", "a line of more than 1024 bytes"),
    ("invalid_utf8", "—", "a line that is not UTF-8"),
    (
        "journal_overrun",
        "—",
        "`journal --follow --json`: records overwritten in the ring before they were read",
    ),
];

/// The code of an error of the exchange's commands: that of the first
/// cause in its chain that has one, else `failed`.
pub fn code_of(err: &anyhow::Error) -> &'static str {
    err.chain().find_map(code_for).unwrap_or("failed")
}

fn code_for(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    if cause.is::<exchange::disk::DiskError>() {
        return Some("journal_error");
    }
    if let Some(e) = cause.downcast_ref::<super::Refusal>() {
        return Some(e.code());
    }
    if let Some(e) = cause.downcast_ref::<OpError>() {
        return Some(e.code());
    }
    if let Some(e) = cause.downcast_ref::<OpenError>() {
        return Some(match e {
            OpenError::Segment(s) => error::segment_code(s),
            e => e.code(),
        });
    }
    if let Some(e) = cause.downcast_ref::<InputError>() {
        return Some(e.code());
    }
    if let Some(e) = cause.downcast_ref::<SnapshotError>() {
        return Some(e.code());
    }
    if let Some(e) = cause.downcast_ref::<MoneyError>() {
        return Some(e.code());
    }
    if cause.is::<TableError>() {
        return Some("invalid_table");
    }
    error::code(cause)
}

/// `{"ok":false,"code":…,"error":…}`: a failure as one JSON line.
pub fn failure_json(code: &str, message: &str) -> String {
    format!(
        "{{\"ok\":false,\"code\":{},\"error\":{}}}",
        js(code),
        js(message)
    )
}

/// Prints `err` on stdout as one JSON object, for a `--json` command that
/// failed (the one-line message goes to stderr as well, as for any
/// failure); nothing for a closed pipe. A closed stdout is not an error
/// here.
pub fn print_failure(err: &anyhow::Error) {
    // A reader that went away gets nothing more.
    let broken_pipe = err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return;
    }
    let line = failure_json(code_of(err), &one_line(err));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../../../../../README.md");
        for (code, exit, _) in CODES {
            let row = format!("| `{code}` | {exit} |");
            assert!(readme.contains(&row), "README lacks the row {row:?}");
        }
        let listed = readme.matches("| `").count();
        assert!(listed >= CODES.len());
    }

    #[test]
    fn codes_are_unique_and_exit_statuses_match() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, _, _) in CODES {
            assert!(seen.insert(code), "{code} twice");
        }
        let exit = |code: &str| {
            CODES
                .iter()
                .find(|c| c.0 == code)
                .and_then(|c| c.1.parse::<u8>().ok())
        };
        let e = anyhow::Error::new(OpError::TillShort {
            home: "TRY".into(),
            have: "1".into(),
            want: "2".into(),
        });
        assert_eq!(code_of(&e), "till_short");
        assert_eq!(Some(crate::cmd::exit_code(&e)), exit("till_short"));
        let bad = anyhow::Error::new(OpError::HomeCurrency { code: "TRY".into() });
        assert_eq!(Some(crate::cmd::exit_code(&bad)), exit(code_of(&bad)));
        let missing = anyhow::Error::new(OpenError::Missing { what: "x".into() });
        assert_eq!(code_of(&missing), "no_exchange");
        assert_eq!(Some(crate::cmd::exit_code(&missing)), exit("no_exchange"));
        let other = anyhow::anyhow!("something");
        assert_eq!(code_of(&other), "failed");
    }

    #[test]
    fn lock_and_corruption_errors_have_codes() {
        use shm::sync::LockError;
        let exit = |code: &str| CODES.iter().find(|c| c.0 == code).map(|c| c.1);
        let lock = |source| {
            anyhow::Error::new(OpError::Lock {
                what: "\"x\"".into(),
                source,
            })
        };
        let cases = [
            (
                lock(LockError::Timeout {
                    pid: 1,
                    waited: std::time::Duration::from_secs(10),
                }),
                "lock_timeout",
                1,
            ),
            (lock(LockError::Interrupted(15)), "interrupted", 143),
            (lock(LockError::Stolen), "corrupt_exchange", 1),
            (
                anyhow::Error::new(OpError::Corrupt {
                    what: "\"x\"".into(),
                    reason: "why".into(),
                }),
                "corrupt_exchange",
                1,
            ),
            (
                anyhow::Error::new(OpenError::ForeignNamespace {
                    what: "\"x\"".into(),
                    which: "pid",
                }),
                "foreign_namespace",
                1,
            ),
            (
                anyhow::Error::new(OpenError::LockTimeout(exchange::LockTimeoutError {
                    value: "soon".into(),
                })),
                "invalid_lock_timeout",
                2,
            ),
        ];
        for (e, code, status) in cases {
            assert_eq!(code_of(&e), code, "{e}");
            assert_eq!(crate::cmd::exit_code(&e), status, "{e}");
            let listed = exit(code).unwrap_or_else(|| panic!("{code} is not listed"));
            if code == "interrupted" {
                assert_eq!(listed, "128 + N");
            } else {
                assert_eq!(listed, status.to_string());
            }
        }
    }
}
