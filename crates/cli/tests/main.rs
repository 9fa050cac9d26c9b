//! The end-to-end tests of `shmex`, in one binary: each module starts the
//! real `shmex` in several processes against real segments, for one area;
//! `support` holds what they share.

mod support;

mod alphabet;
mod alphabet_errors;
mod bench_durable;
mod channel;
mod channel_peers;
mod cli_epipe;
mod cli_signals;
mod cli_usage;
mod demo;
mod exchange_accounts;
mod exchange_concurrency;
mod exchange_crash;
mod exchange_default;
mod exchange_destroy;
mod exchange_durable;
mod exchange_durable_crash;
mod exchange_history;
mod exchange_history_live;
mod exchange_init;
mod exchange_input;
mod exchange_input_bad_lines;
mod exchange_input_overflow;
mod exchange_json;
mod exchange_options;
mod exchange_rates;
mod exchange_small;
mod exchange_snapshot;
mod hostile_channel;
mod hostile_exchange;
mod hostile_segment;
mod segment;
mod segment_conventions;
mod segment_errors;
mod segment_perm;
mod segment_stale;
mod trade_terminal;
