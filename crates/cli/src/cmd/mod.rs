//! One module per subcommand.

pub mod alphabet;
pub mod channel;
pub mod exchange;
pub mod segment;
