//! What the exchange commands themselves refuse or stop for (the library
//! refuses the rest): removing books that processes use, and going on with
//! books that were removed.

use std::time::{Duration, Instant};

use exchange::Exchange;

use super::holders::Holder;
use crate::support::plural::plural;

/// How often a long-running command (a trade loop, `watch`, `journal
/// --follow`) asks whether its exchange was removed: one system call at
/// most this often.
pub const REMOVAL_CHECK: Duration = Duration::from_millis(100);

/// A refusal or a stop of an exchange command (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// `destroy` while other processes are attached.
    #[error(
        "exchange {what} is in use by {}: {}; stop {} first, or use --force (attached traders and boards notice the removal and stop)",
        plural(holders.len() as u64 + unseen, "process", "processes"),
        list(holders, *unseen),
        if holders.len() as u64 + unseen == 1 { "it" } else { "them" }
    )]
    InUse {
        /// The exchange.
        what: String,
        /// The processes seen.
        holders: Vec<Holder>,
        /// Attached processes this user cannot see (System V's count).
        unseen: u64,
    },
    /// The exchange was removed while this process used it.
    #[error(
        "exchange {what} was removed (by `shmex exchange destroy`, or replaced by `init --force`) while this {who} used it: it stops here"
    )]
    Removed {
        /// The exchange.
        what: String,
        /// `trade loop`, `board`, `journal follower`.
        who: &'static str,
    },
    /// `init` or `restore` into a directory that holds a journal.
    #[error(
        "{path} holds the journal of exchange {exchange_id:#018x}, which `destroy` kept: bring that exchange back with `shmex exchange recover`, remove the journal with `rm -r {path}`, choose another directory with --journal DIR, or replace it with --force (its history is then deleted)"
    )]
    JournalOccupied {
        /// The directory.
        path: String,
        /// The exchange whose journal is there.
        exchange_id: u64,
    },
    /// `recover` while the exchange's segment exists.
    #[error(
        "exchange {what} exists: recover rebuilds a segment that is gone (after a reboot); `shmex exchange destroy` it first to rebuild it from the journal"
    )]
    RecoverExists {
        /// The exchange.
        what: String,
    },
    /// `recover --journal DIR` of a journal that is another exchange's.
    #[error(
        "{path} is the journal of exchange {found}, not of {named}: recover that one with {flag}"
    )]
    OthersJournal {
        /// The directory.
        path: String,
        /// The exchange the journal belongs to.
        found: String,
        /// The exchange named.
        named: String,
        /// The option that names `found`.
        flag: String,
    },
    /// `check` found violations.
    #[error("check of exchange {what} found {}: {first}", plural(*n as u64, "violation", "violations"))]
    CheckFailed {
        /// The exchange.
        what: String,
        /// How many.
        n: usize,
        /// The first.
        first: String,
    },
}

impl Refusal {
    /// Its machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::InUse { .. } => "in_use",
            Refusal::Removed { .. } => "exchange_removed",
            Refusal::CheckFailed { .. } => "check_failed",
            Refusal::JournalOccupied { .. } => "journal_exists",
            Refusal::RecoverExists { .. } => "exchange_exists",
            // The journal cannot be used for the exchange named.
            Refusal::OthersJournal { .. } => "journal_error",
        }
    }
}

fn list(holders: &[Holder], unseen: u64) -> String {
    let mut parts: Vec<String> = holders.iter().map(ToString::to_string).collect();
    if unseen > 0 {
        parts.push(format!(
            "{} of another user",
            plural(unseen, "process", "processes")
        ));
    }
    parts.join(", ")
}

/// Watches an attached exchange for its removal, asking the kernel at
/// most every [`REMOVAL_CHECK`].
pub struct RemovalWatch<'x> {
    ex: &'x Exchange,
    who: &'static str,
    next: Instant,
}

impl<'x> RemovalWatch<'x> {
    /// Watches `ex` for `who` (`trade loop`, `board`, …).
    pub fn new(ex: &'x Exchange, who: &'static str) -> Self {
        RemovalWatch {
            ex,
            who,
            next: Instant::now() + REMOVAL_CHECK,
        }
    }

    /// [`Refusal::Removed`] if the exchange was removed; asks the kernel
    /// only if the last answer is older than [`REMOVAL_CHECK`].
    pub fn check(&mut self) -> anyhow::Result<()> {
        let now = Instant::now();
        if now < self.next {
            return Ok(());
        }
        self.next = now + REMOVAL_CHECK;
        self.check_now()
    }

    /// [`Refusal::Removed`] if the exchange was removed.
    pub fn check_now(&self) -> anyhow::Result<()> {
        if self.ex.is_removed()? {
            return Err(Refusal::Removed {
                what: super::show::describe(self.ex.id()),
                who: self.who,
            }
            .into());
        }
        Ok(())
    }
}
