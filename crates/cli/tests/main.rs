//! The end-to-end tests of `shmex`, in one binary: each module starts the
//! real `shmex` in several processes against real segments, for one area;
//! `support` holds what they share.

mod support;

mod alphabet;
mod alphabet_errors;
mod channel;
mod exchange_concurrency;
mod exchange_crash;
mod exchange_default;
mod exchange_init;
mod exchange_input;
mod exchange_options;
mod exchange_rates;
mod exchange_snapshot;
mod segment;
mod segment_errors;
mod segment_perm;
mod segment_stale;
