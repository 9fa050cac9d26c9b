//! Exit status: 0 success, 1 the operation failed or was refused, 2 bad
//! usage or bad input.

use std::fmt;

/// Bad input from the user: exit status 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Returns early with a [`BadInput`] error.
#[macro_export]
macro_rules! bad_input {
    ($($arg:tt)*) => { return Err($crate::error::BadInput(format!($($arg)*)).into()) };
}

/// The exit status for an error: 2 if anything in its chain is bad input.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<BadInput>() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<shm::Error>()
            && matches!(
                e,
                shm::Error::Invalid(_) | shm::Error::OutOfBounds(_) | shm::Error::ReadOnly { .. }
            )
        {
            return 2;
        }
        if let Some(code) = extra_exit_code(cause) {
            return code;
        }
    }
    1
}

/// Hook for the library error types of other layers (exchange, channel).
fn extra_exit_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    crate::cmd::exchange::exit_code_for(cause).or_else(|| crate::cmd::channel::exit_code_for(cause))
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
        && !out.contains(hint)
    {
        out.push_str("; ");
        out.push_str(hint);
    }
    out.replace('\n', " ")
}

/// The `shmex` command that helps with a segment-layer error: the library
/// says what is wrong, and only the binary knows its own commands.
fn segment_hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|cause| match segment_error(cause)? {
        shm::Error::NotReady { .. } => Some("remove it with `shmex segment rm`"),
        shm::Error::Foreign { .. } => Some("read it as raw bytes with `shmex segment read`"),
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
