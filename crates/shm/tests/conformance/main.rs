//! The segment layer's conformance suite.
//!
//! Every test is written once, as a function over a `fn() -> SegmentId`
//! maker, and `both_backends!` at the end of each area instantiates it for
//! both backends: System V by key and POSIX by name (`AREA::sysv::TEST`,
//! `AREA::posix::TEST`). Tests that need a second process re-execute this
//! very test binary (`--exact child_process_entry`) with a role in
//! `SHMEX_CONFORMANCE_ROLE`, so the other side is a genuinely separate
//! process attaching the segment on its own.
//!
//! Every segment a test makes gets a unique key or name (pid and a counter)
//! and is registered with a [`Cleanup`](support::Cleanup) guard that
//! removes it, and kills the test's children, even when the test panics.

use std::io::Read;
use std::sync::atomic::Ordering;

use shm::{Access, DEFAULT_READY_WAIT, Lifetime, Segment};

use crate::support::*;

/// Instantiates `fn(Maker)` tests of the calling module for one backend,
/// as `#[test]`s in a module named after it.
macro_rules! conformance {
    ($backend:ident, $make:path: $($test:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $test() {
                    super::$test($make);
                }
            )*
        }
    };
}

/// Instantiates `fn(Maker)` tests of the calling module for both backends.
macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        conformance!(sysv, crate::support::sysv_id: $($test),*);
        conformance!(posix, crate::support::posix_id: $($test),*);
    };
}

mod access;
mod header;
mod hostile;
mod lifecycle;
mod stale;
mod support;

/// Entry point of the child processes the tests start. In a normal run no
/// role is set and it returns at once.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let id = decode(&std::env::var(ID_VAR).expect("id"));
    let msg = std::env::var(MSG_VAR).unwrap_or_default();
    match role.as_str() {
        // Reads what the parent wrote into a managed segment and answers.
        "echo-managed" => {
            let m = open_payload(&id, DEFAULT_READY_WAIT).expect("child opens");
            let mut got = vec![0u8; msg.len()];
            m.read_payload(MSG_AT, &mut got).expect("child reads");
            assert_eq!(got, msg.as_bytes(), "child read another message");
            let p = m.payload_view::<Payload>(0).expect("child's view");
            assert_eq!(p.counter.fetch_add(1, Ordering::SeqCst), 41);
            let reply = format!("pong from {}", std::process::id());
            m.write_payload(REPLY_AT, reply.as_bytes())
                .expect("child writes");
        }
        // The same on a raw segment: the message at 0, the reply reversed.
        "echo-raw" => {
            let seg = Segment::open(&id, Access::ReadWrite).expect("child opens");
            let mut got = vec![0u8; msg.len()];
            seg.read_at(0, &mut got).expect("child reads");
            assert_eq!(got, msg.as_bytes(), "child read another message");
            got.reverse();
            seg.write_at(REPLY_AT, &got).expect("child writes");
        }
        // Creates an owned segment and holds it until stdin closes, then
        // removes it (the orderly end of an owner).
        "hold" => {
            let m = create_managed(&id, Lifetime::Owned);
            println!("{READY}");
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            m.remove().expect("holder removes its segment");
        }
        "shrink" => hostile::shrink_child(&id),
        "stray-sigbus" => hostile::stray_sigbus_child(&id),
        "create-forever" => hostile::create_forever_child(&id),
        other => panic!("unknown child role {other:?}"),
    }
}
