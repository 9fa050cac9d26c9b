//! The binary's own errors: bad input from the user (exit status 2), a
//! termination signal (exit status 128 + N), and how any error prints on
//! one line.

use crate::support::text::escape;

/// Bad input from the user: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// A termination signal (SIGINT, SIGTERM, SIGHUP) caught by
/// [`shm::sys::catch_termination`] stopped `what`: exit status 128 + N.
#[derive(Debug, thiserror::Error)]
#[error("{what} was interrupted by signal {signal}")]
pub struct Interrupted {
    /// What stopped, as the message starts: `the demo`.
    pub what: &'static str,
    pub signal: i32,
}

impl Interrupted {
    /// Fails once a termination signal has come.
    pub fn check(what: &'static str) -> Result<(), Interrupted> {
        match shm::sys::termination_signal() {
            Some(signal) => Err(Interrupted { what, signal }),
            None => Ok(()),
        }
    }

    /// `result`, or, once a termination signal has come, the signal in
    /// place of the error it caused (a killed child, an interrupted wait).
    pub fn or_signal<T>(what: &'static str, result: anyhow::Result<T>) -> anyhow::Result<T> {
        match result {
            Err(err) => match Interrupted::check(what) {
                Err(signal) => Err(signal.into()),
                Ok(()) => Err(err),
            },
            ok => ok,
        }
    }

    /// The exit status: 128 + the signal.
    pub fn exit_code(&self) -> u8 {
        128u8.saturating_add(u8::try_from(self.signal).unwrap_or(0))
    }
}

/// The error and its causes on one line, with the command that helps.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    if let Some(hint) = segment_hint(err)
        && !out.contains(&hint)
    {
        out.push_str("; ");
        out.push_str(&hint);
    }
    // Messages quote names and bytes that came from segments and users.
    escape(&out.replace('\n', " ")).into_owned()
}

/// A stable machine code for a segment-layer error, for `--json` answers.
pub fn segment_code(e: &shm::Error) -> &'static str {
    match e {
        shm::Error::NotFound { .. } => "not_found",
        shm::Error::Exists { .. } => "segment_exists",
        shm::Error::PermissionDenied { .. } => "permission_denied",
        shm::Error::Invalid(_) => "invalid_input",
        shm::Error::NoSpace { .. } => "no_space",
        shm::Error::Incompatible { .. } => "incompatible",
        shm::Error::Foreign { .. } => "foreign_segment",
        shm::Error::NotReady { .. } => "not_ready",
        shm::Error::OutOfBounds(_) => "out_of_bounds",
        shm::Error::ReadOnly { .. } => "read_only",
        shm::Error::OtherOwner { .. } => "other_owner",
        shm::Error::Locked { .. } => "locked",
        shm::Error::Truncated(_) => "truncated",
        _ => "segment_error",
    }
}

/// The machine code of an error this layer knows: bad input, a signal,
/// the segment layer's errors (also inside a channel's), a channel's, a
/// file's.
pub fn code(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    if cause.is::<BadInput>() {
        return Some("invalid_input");
    }
    if cause.is::<Interrupted>() {
        return Some("interrupted");
    }
    if let Some(e) = segment_error(cause) {
        return Some(segment_code(e));
    }
    if cause.is::<shm::Truncated>() {
        return Some("truncated");
    }
    if cause.is::<channel::OpenError>()
        || cause.is::<channel::SendError>()
        || cause.is::<channel::RecvError>()
    {
        return Some("channel_error");
    }
    if cause.is::<std::io::Error>() {
        return Some("io_error");
    }
    None
}

/// The `shmex` command that helps with a segment-layer error: the library
/// says what is wrong, and only the binary knows its own commands.
fn segment_hint(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| match segment_error(cause)? {
        shm::Error::NotReady { .. } => Some("remove it with `shmex segment rm`".into()),
        shm::Error::Foreign { .. } => Some("read it as raw bytes with `shmex segment read`".into()),
        shm::Error::OtherOwner { uid, .. } => Some(owner_hint(*uid)),
        _ => None,
    })
}

/// The segment-layer error in `cause`, also where a channel or an exchange
/// error wraps it (transparently, so it is not a cause of its own).
fn segment_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a shm::Error> {
    if let Some(e) = cause.downcast_ref::<shm::Error>() {
        return Some(e);
    }
    match cause.downcast_ref::<channel::OpenError>() {
        Some(channel::OpenError::Segment(e)) => return Some(e),
        Some(_) => return None,
        None => {}
    }
    match cause.downcast_ref::<exchange::OpenError>()? {
        exchange::OpenError::Segment(e) => Some(e),
        _ => None,
    }
}

/// What to tell a user refused another user's segment (`--allow-owner`,
/// support::owners).
fn owner_hint(uid: u32) -> String {
    let name = shm::user_name(uid);
    let who = if name.starts_with("uid ") {
        uid.to_string()
    } else {
        name
    };
    format!(
        "if you trust that user, allow it on purpose with `--allow-owner {who}` (or SHMEX_ALLOW_OWNER={who})"
    )
}

#[cfg(test)]
mod tests {
    use super::one_line;

    fn not_ready() -> shm::Error {
        shm::Error::NotReady {
            what: "\"x\"".into(),
            waited_ms: 5,
        }
    }

    #[test]
    fn segment_errors_get_the_command_that_helps() {
        let direct = anyhow::Error::new(not_ready());
        assert_eq!(
            one_line(&direct),
            "segment \"x\" is not ready after 5 ms: its creator may have died while creating it; remove it with `shmex segment rm`"
        );
        let in_channel = anyhow::Error::new(channel::OpenError::Segment(not_ready()));
        assert_eq!(one_line(&in_channel), one_line(&direct));
        let in_exchange = anyhow::Error::new(exchange::OpenError::Segment(shm::Error::Foreign {
            what: "key 5 (0x00000005)".into(),
            reason: "is not a shmex segment (no shmex header)".into(),
        }))
        .context("cannot open the exchange");
        assert_eq!(
            one_line(&in_exchange),
            "cannot open the exchange: segment key 5 (0x00000005) is not a shmex segment (no shmex header); read it as raw bytes with `shmex segment read`"
        );
        let other = anyhow::Error::new(shm::Error::Invalid("bad".into()));
        assert_eq!(one_line(&other), "bad");
    }
}
