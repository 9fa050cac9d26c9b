//! The binary's own error: bad input from the user (exit status 2), and
//! how any error prints on one line.

use crate::support::owners;
use crate::support::text::escape;

/// Bad input from the user: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

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

/// The `shmex` command that helps with a segment-layer error: the library
/// says what is wrong, and only the binary knows its own commands.
fn segment_hint(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| match segment_error(cause)? {
        shm::Error::NotReady { .. } => Some("remove it with `shmex segment rm`".into()),
        shm::Error::Foreign { .. } => Some("read it as raw bytes with `shmex segment read`".into()),
        shm::Error::OtherOwner { uid, .. } => Some(owners::hint(*uid)),
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
