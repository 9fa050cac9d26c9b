//! `snapshot` and `restore`: the whole exchange to and from a versioned
//! TOML file, or stdout and stdin for `-`.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use exchange::{Entry, Exchange, OpenError, State};
use shm::SegmentId;

use super::show::describe;
use crate::support::error::BadInput;
use crate::support::parse::parse_mode;
use crate::support::plural::plural;
use crate::support::time::now_ns;

/// The argument of `snapshot`.
#[derive(Debug, clap::Args)]
pub struct FileArg {
    /// The file to write (mode 0600), or `-` for stdout.
    pub file: PathBuf,
}

/// Flags of `restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The snapshot file, or `-` for stdin.
    pub file: PathBuf,
    /// Replace an existing exchange.
    #[arg(long)]
    pub force: bool,
    /// Permission bits of the segment.
    #[arg(long, value_name = "MODE", default_value = "0600")]
    pub mode: String,
    #[command(flatten)]
    pub disk: super::durable::JournalFlags,
}

/// Whether a file argument means the standard stream.
fn is_stdio(file: &Path) -> bool {
    file.as_os_str() == "-"
}

/// `{n} currencies, {n} accounts, {n} journal records (next seq N)`.
fn summary(state: &State, journal: &[Entry]) -> String {
    format!(
        "{}, {}, {} (next seq {})",
        plural(state.currencies.len() as u64, "currency", "currencies"),
        plural(state.accounts.len() as u64, "account", "accounts"),
        plural(journal.len() as u64, "journal record", "journal records"),
        state.next_seq
    )
}

/// Writes `text` to `file` with mode 0600: beside it first, then renamed
/// over it, so that a crash never leaves half a file and the books are
/// never readable by others, even for a moment.
fn write_private(file: &Path, text: &[u8]) -> std::io::Result<()> {
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, file));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

pub fn snapshot(id: &SegmentId, a: &FileArg) -> anyhow::Result<ExitCode> {
    let ex = Exchange::open(id)?;
    let e = ex.engine();
    let (state, journal) = e.snapshot()?;
    shm::check_mappings()?;
    let text = exchange::snapshot::to_toml(&state, &journal, now_ns());
    if is_stdio(&a.file) {
        // The snapshot alone: stdout is the file.
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    write_private(&a.file, text.as_bytes())
        .with_context(|| format!("cannot write snapshot {}", a.file.display()))?;
    println!(
        "wrote exchange {} to {}: {}",
        describe(id),
        a.file.display(),
        summary(&state, &journal)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn restore(id: &SegmentId, a: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let mode = parse_mode(&a.mode)?;
    let (text, from) = if is_stdio(&a.file) {
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut s)
            .map_err(|e| BadInput(format!("cannot read a snapshot from stdin: {e}")))?;
        (s, "stdin".to_owned())
    } else {
        let s = std::fs::read_to_string(&a.file)
            .map_err(|e| BadInput(format!("cannot read snapshot {}: {e}", a.file.display())))?;
        (s, a.file.display().to_string())
    };
    let refusing = || format!("refusing to restore from {from}");
    let (state, journal) = exchange::snapshot::from_toml(&text).with_context(refusing)?;
    if let Err(e) = Exchange::check_state(&state, &journal) {
        return Err(OpenError::from(e)).with_context(refusing);
    }
    super::durable::create(id, &state, &journal, mode, &a.disk, a.force)?;
    println!(
        "restored exchange {} from {from}: {}",
        describe(id),
        summary(&state, &journal)
    );
    Ok(ExitCode::SUCCESS)
}
