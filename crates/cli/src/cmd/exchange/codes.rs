//! Machine codes for the exchange commands' failures: every error a
//! `--json` command can meet has a stable `code` beside its message, and
//! the failure is one JSON object on stdout. The README's table lists
//! [`CODES`]; a test keeps the two in step.

use std::io::Write as _;

use exchange::money::MoneyError;
use exchange::{OpError, OpenError, SnapshotError, TableError};

use super::show::js;
use super::trade::InputError;
use crate::support::error::{self, one_line};

/// Every code, with its exit status (`None`: a line of the trade loop or
/// of a follower, which goes on) and what it means. The README's table is
/// this list, which a test checks.
#[cfg(test)]
pub const CODES: &[(&str, Option<u8>, &str)] = &[
    // Refused by the books.
    (
        "insufficient_stock",
        Some(1),
        "a buy of more than the exchange holds",
    ),
    (
        "insufficient_balance",
        Some(1),
        "a buy whose price is more than the account's home balance",
    ),
    (
        "insufficient_holding",
        Some(1),
        "a sell or withdrawal of more than the account holds",
    ),
    (
        "till_short",
        Some(1),
        "a sell whose proceeds are more than the till holds",
    ),
    (
        "unknown_account",
        Some(1),
        "no open account has that name (open it with `exchange open`)",
    ),
    (
        "account_exists",
        Some(1),
        "`open` of an account that is open",
    ),
    (
        "account_not_empty",
        Some(1),
        "`close` of an account that still holds money",
    ),
    (
        "account_closed",
        Some(1),
        "an order for an account closed while the trade loop ran",
    ),
    ("accounts_full", Some(1), "no room for another account"),
    (
        "confirmation_needed",
        Some(1),
        "`set-rate` moving a rate by more than 10 % without `--yes`",
    ),
    // The exchange and its segment.
    ("no_exchange", Some(1), "the exchange does not exist"),
    (
        "exchange_exists",
        Some(1),
        "`init` or `restore` found one there",
    ),
    (
        "exchange_removed",
        Some(1),
        "the exchange was removed while a trade loop, `watch` or `journal --follow` used it",
    ),
    (
        "in_use",
        Some(1),
        "`destroy` while processes are attached (without `--force`)",
    ),
    (
        "corrupt_exchange",
        Some(1),
        "the segment is an exchange whose contents make no sense",
    ),
    ("check_failed", Some(1), "`check` found violations"),
    (
        "lock_unusable",
        Some(1),
        "the exchange's lock cannot be taken or set up",
    ),
    (
        "busy",
        Some(1),
        "no consistent view of the books in time; try again",
    ),
    (
        "permission_denied",
        Some(1),
        "the segment belongs to someone else",
    ),
    (
        "incompatible",
        Some(1),
        "the segment holds something else, or another version",
    ),
    (
        "foreign_segment",
        Some(1),
        "the segment was not made by shmex",
    ),
    (
        "not_ready",
        Some(1),
        "the segment's creator never finished creating it",
    ),
    ("no_space", Some(1), "no room for the segment"),
    ("not_found", Some(1), "a segment that does not exist"),
    ("segment_exists", Some(1), "a segment that exists already"),
    (
        "read_only",
        Some(2),
        "a write to a segment attached read-only",
    ),
    (
        "other_owner",
        Some(1),
        "the segment belongs to another user, not allowed with `--allow-owner`",
    ),
    (
        "locked",
        Some(1),
        "another process held the segment's file locked too long",
    ),
    (
        "truncated",
        Some(1),
        "another process truncated the segment under this one",
    ),
    ("channel_error", Some(1), "an error of a channel"),
    (
        "segment_error",
        Some(1),
        "another error of the segment layer",
    ),
    ("io_error", Some(1), "reading or writing a file failed"),
    ("failed", Some(1), "any other failure"),
    // Bad input: nothing was tried.
    (
        "invalid_amount",
        Some(2),
        "not a plain positive amount with at most the currency's decimals",
    ),
    (
        "invalid_rate",
        Some(2),
        "not a plain positive rate with at most 6 decimals",
    ),
    (
        "invalid_value",
        Some(2),
        "a malformed value (such as `init --opening`)",
    ),
    ("invalid_decimals", Some(2), "more than 6 decimals"),
    ("overflow", Some(2), "an amount too large to compute with"),
    ("invalid_rates", Some(2), "rates that break 0 < buy <= sell"),
    (
        "home_currency",
        Some(2),
        "buying, selling or quoting the home currency",
    ),
    (
        "unknown_currency",
        Some(2),
        "a code this exchange does not have",
    ),
    ("invalid_account_name", Some(2), "a malformed account name"),
    (
        "invalid_id",
        Some(2),
        "an account or currency of another exchange",
    ),
    (
        "out_of_bounds",
        Some(2),
        "a read or write outside a segment",
    ),
    (
        "invalid_input",
        Some(2),
        "a malformed argument (name, key, mode, interval, file)",
    ),
    (
        "invalid_table",
        Some(2),
        "an `init --table` file that cannot make an exchange",
    ),
    (
        "invalid_snapshot",
        Some(2),
        "a `restore` file that is not a valid snapshot",
    ),
    (
        "snapshot_unbalanced",
        Some(2),
        "a snapshot whose books fail check",
    ),
    (
        "invalid_books",
        Some(2),
        "a state that cannot make an exchange",
    ),
    (
        "invalid_failpoint",
        Some(2),
        "`SHMEX_FAILPOINT` names no failpoint",
    ),
    // Answers of the trade loop, which goes on.
    ("empty_line", None, "an empty line (piped input)"),
    (
        "unknown_command",
        None,
        "a line whose first word is no command",
    ),
    (
        "missing_argument",
        None,
        "an order without its currency or amount",
    ),
    (
        "unexpected_argument",
        None,
        "words after a complete command",
    ),
    ("line_too_long", None, "a line of more than 1024 bytes"),
    ("invalid_utf8", None, "a line that is not UTF-8"),
    (
        "journal_overrun",
        None,
        "`journal --follow --json`: records overwritten in the ring before they were read",
    ),
];

/// The code of an error of the exchange's commands: that of the first
/// cause in its chain that has one, else `failed`.
pub fn code_of(err: &anyhow::Error) -> &'static str {
    err.chain().find_map(code_for).unwrap_or("failed")
}

fn code_for(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
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
            let exit = exit.map_or("—".to_owned(), |e| e.to_string());
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
        let exit = |code: &str| CODES.iter().find(|c| c.0 == code).and_then(|c| c.1);
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
}
