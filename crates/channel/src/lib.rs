//! The shmex producer/consumer channel (work in progress).
#![deny(unsafe_code)]
#![deny(missing_docs)]
