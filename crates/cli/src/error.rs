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

/// The error and its causes on one line.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out.replace('\n', " ")
}
