//! What the commands, the benchmarks and the demo share. These modules
//! depend on the libraries and on each other only, never on `cmd`,
//! `bench`, `demo` or `cli`.

pub mod error;
pub mod exe;
pub mod owners;
pub mod parse;
pub mod pipe;
pub mod plural;
pub mod scratch;
pub mod text;
pub mod time;
pub mod trader;
