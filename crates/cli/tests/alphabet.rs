//! `shmex alphabet` against C programs that behave like the seed's producer
//! and consumer (tests/fixtures/*.c): all four pairings, both start orders
//! for the shmex consumer, and no segment left behind by a shmex producer.

#[path = "common/c.rs"]
mod c;
mod common;

use c::{
    ALPHABET, C_CONSUMER_OUTPUT, SHMEX_CONSUMER_OUTPUT, alphabet_written, assert_gone, bytes_of,
    exists, finish, run_c_consumer, show, spawn_c_producer, spawn_shmex, still_running, wait_until,
};
use common::{Cleanup, SegmentId, stdout};

fn sysv(key: i32) -> SegmentId {
    SegmentId::SysV(key)
}

/// Runs `shmex alphabet consume --key K` to the end.
fn shmex_consume(key: i32) -> std::process::Output {
    common::run(
        &[
            "alphabet",
            "consume",
            "--key",
            &key.to_string(),
            "--timeout",
            "60",
        ],
        b"",
    )
}

/// Lets a consumer started first get to its wait, and checks it is waiting
/// (it must not give up because nothing exists yet).
fn assert_waiting(cleanup: &mut Cleanup, i: usize) {
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        still_running(cleanup, i),
        "the consumer started first did not wait: {}",
        show(&finish(cleanup, i))
    );
}

#[test]
fn c_producer_to_c_consumer_is_the_baseline() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let producer = spawn_c_producer(&mut cleanup, Some(key));
    // The seed's consumer races the producer; start it on a full alphabet.
    wait_until("the C producer wrote the alphabet", || {
        alphabet_written(key)
    });

    let out = run_c_consumer(Some(key));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        stdout(&out),
        C_CONSUMER_OUTPUT,
        "the seed's consumer stops before z"
    );

    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "C producer: {}", show(&p));
    // The seed leaks the segment, with the answer in byte 0.
    assert!(
        exists(&sysv(key)),
        "the C producer is expected to leak its segment"
    );
    let bytes = bytes_of(&sysv(key));
    assert_eq!(bytes[0], b'*');
    assert_eq!(&bytes[1..26], &ALPHABET[1..]);
}

#[test]
fn c_producer_to_shmex_consumer_prints_all_26_letters() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let producer = spawn_c_producer(&mut cleanup, Some(key));
    wait_until("the C producer wrote the alphabet", || {
        alphabet_written(key)
    });

    let out = shmex_consume(key);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), SHMEX_CONSUMER_OUTPUT);

    // The C producer saw the answer.
    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "C producer: {}", show(&p));

    // `segment read` works on a segment shmex did not make, from byte 0.
    let read = common::run(
        &["segment", "read", "--key", &key.to_string(), "--len", "26"],
        b"",
    );
    assert_eq!(read.status.code(), Some(0), "{}", show(&read));
    assert_eq!(read.stdout, b"*bcdefghijklmnopqrstuvwxyz");
    // `ls` lists it, as foreign: shmex did not make it and will not judge it.
    let entry = c::ls_entry(&sysv(key)).expect("ls --json lists the C program's segment");
    assert_eq!(entry["status"], "foreign", "{entry}");
    assert!(entry["kind"].is_null(), "{entry}");
    assert_eq!(entry["size"].as_u64(), Some(27), "{entry}");
    assert_eq!(entry["mode"], "0666", "{entry}");

    // The C producer leaks its segment, as the seed's does; remove it.
    let rm = common::run(&["segment", "rm", "--key", &key.to_string()], b"");
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert_gone(&sysv(key));
}

#[test]
fn shmex_consumer_started_first_waits_for_the_c_producer() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let consumer = spawn_shmex(
        &mut cleanup,
        &["alphabet", "consume", "--key", &k, "--timeout", "60"],
    );
    assert_waiting(&mut cleanup, consumer);

    let producer = spawn_c_producer(&mut cleanup, Some(key));
    let out = finish(&mut cleanup, consumer);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), SHMEX_CONSUMER_OUTPUT);

    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "C producer: {}", show(&p));
    let rm = common::run(&["segment", "rm", "--key", &k], b"");
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert_gone(&sysv(key));
}

#[test]
fn shmex_producer_to_c_consumer_leaves_no_segment() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let producer = spawn_shmex(&mut cleanup, &["alphabet", "produce", "--key", &k]);
    wait_until("shmex produce wrote the alphabet", || alphabet_written(key));

    // The seed's wire format: a raw 27-byte segment, mode 0600 by default.
    let info = shm::inspect(&sysv(key)).expect("inspect the producer's segment");
    assert_eq!(info.size, 27);
    assert_eq!(info.mode, 0o600);
    assert_eq!(bytes_of(&sysv(key))[26], 0);

    let out = run_c_consumer(Some(key));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), C_CONSUMER_OUTPUT);

    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "shmex produce: {}", show(&p));
    assert_gone(&sysv(key));
}

#[test]
fn shmex_producer_to_shmex_consumer_leaves_no_segment() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let producer = spawn_shmex(&mut cleanup, &["alphabet", "produce", "--key", &k]);
    wait_until("shmex produce wrote the alphabet", || alphabet_written(key));

    let out = shmex_consume(key);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), SHMEX_CONSUMER_OUTPUT);

    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "shmex produce: {}", show(&p));
    assert_gone(&sysv(key));
}

#[test]
fn shmex_consumer_started_first_waits_for_the_shmex_producer() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let consumer = spawn_shmex(
        &mut cleanup,
        &["alphabet", "consume", "--key", &k, "--timeout", "60"],
    );
    assert_waiting(&mut cleanup, consumer);

    let producer = spawn_shmex(&mut cleanup, &["alphabet", "produce", "--key", &k]);
    let out = finish(&mut cleanup, consumer);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), SHMEX_CONSUMER_OUTPUT);

    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "shmex produce: {}", show(&p));
    assert_gone(&sysv(key));
}

/// The only test that touches the seed's key, 5678: both programs on their
/// defaults, in both directions.
#[test]
fn default_key_5678_with_the_c_programs() {
    let id = sysv(5678);
    assert!(
        !exists(&id),
        "key 5678 is already in use on this machine; remove it (`shmex segment rm --key 5678`) and rerun"
    );
    let mut cleanup = Cleanup::new();
    cleanup.add(id.clone());

    // shmex producer → C consumer, neither given a key.
    let producer = spawn_shmex(&mut cleanup, &["alphabet", "produce"]);
    wait_until("shmex produce wrote the alphabet at 5678", || {
        alphabet_written(5678)
    });
    let out = run_c_consumer(None);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), C_CONSUMER_OUTPUT);
    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "shmex produce: {}", show(&p));
    assert_gone(&id);

    // C producer → shmex consumer, neither given a key.
    let producer = spawn_c_producer(&mut cleanup, None);
    wait_until("the C producer wrote the alphabet at 5678", || {
        alphabet_written(5678)
    });
    let out = common::run(&["alphabet", "consume"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(stdout(&out), SHMEX_CONSUMER_OUTPUT);
    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "C producer: {}", show(&p));
    let rm = common::run(&["segment", "rm", "--key", "5678"], b"");
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert_gone(&id);
}

#[test]
fn a_wider_mode_is_applied_exactly() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let producer = spawn_shmex(
        &mut cleanup,
        &["alphabet", "produce", "--key", &k, "--mode", "0666"],
    );
    wait_until("the producer wrote the alphabet", || alphabet_written(key));
    let info = shm::inspect(&SegmentId::SysV(key)).expect("inspect");
    assert_eq!(info.mode, 0o666);
    let out = common::run(
        &["alphabet", "consume", "--key", &k, "--timeout", "60"],
        b"",
    );
    assert_eq!(stdout(&out), SHMEX_CONSUMER_OUTPUT, "{}", show(&out));
    let p = finish(&mut cleanup, producer);
    assert_eq!(p.status.code(), Some(0), "{}", show(&p));
    assert_gone(&SegmentId::SysV(key));
}
