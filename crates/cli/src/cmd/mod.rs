//! One module per subcommand, and the exit status their errors map to.

pub mod alphabet;
pub mod channel;
pub mod exchange;
pub mod segment;

use crate::support::error::{BadInput, Interrupted};

/// The exit status for an error of any subcommand: 0 success, 1 the
/// operation failed or was refused, 2 bad usage or bad input, 128 + N a
/// termination signal N. The first cause in the chain that says decides.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<BadInput>() {
            return 2;
        }
        if let Some(i) = cause.downcast_ref::<Interrupted>() {
            return i.exit_code();
        }
        let code = segment::exit_code_for(cause)
            .or_else(|| exchange::exit_code_for(cause))
            .or_else(|| channel::exit_code_for(cause));
        if let Some(code) = code {
            return code;
        }
    }
    1
}
