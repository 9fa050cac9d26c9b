//! `shmex alphabet` against C programs that behave like the seed's producer
//! and consumer (tests/fixtures/*.c): all four pairings, both start orders
//! for the shmex consumer, and no segment left behind by a shmex producer.

use crate::support::alphabet::{
    ALPHABET, C_CONSUMER_OUTPUT, SHMEX_CONSUMER_OUTPUT, alphabet_written, run_c_consumer,
    spawn_c_producer,
};
use crate::support::process::{
    assert_prints, finish, finish_ok, parked, run, show, spawn_shmex, still_running,
};
use crate::support::segment::{assert_gone, bytes_of, ls_entry};
use crate::support::{Cleanup, SegmentId, exists, wait_until};

fn sysv(key: i32) -> SegmentId {
    SegmentId::SysV(key)
}

/// `shmex segment rm --key K`, which must succeed and leave nothing.
#[track_caller]
fn rm_key(key: i32) {
    let rm = run(&["segment", "rm", "--key", &key.to_string()], b"");
    assert_eq!(rm.status.code(), Some(0), "{}", show(&rm));
    assert_gone(&sysv(key));
}

/// The two producers: the seed's C program and `shmex alphabet produce`.
#[derive(Clone, Copy)]
enum Producer {
    C,
    Shmex,
}

impl Producer {
    /// Starts it in the background on `key` (`None`: on its defaults,
    /// key 5678).
    fn spawn(self, cleanup: &mut Cleanup, key: Option<i32>) -> usize {
        match (self, key) {
            (Producer::C, _) => spawn_c_producer(cleanup, key),
            (Producer::Shmex, Some(k)) => {
                spawn_shmex(cleanup, &["alphabet", "produce", "--key", &k.to_string()])
            }
            (Producer::Shmex, None) => spawn_shmex(cleanup, &["alphabet", "produce"]),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Producer::C => "C producer",
            Producer::Shmex => "shmex produce",
        }
    }

    /// Waits until it has written the alphabet on `key`.
    #[track_caller]
    fn wait_written(self, key: i32) {
        wait_until(&format!("the {} wrote the alphabet", self.name()), || {
            alphabet_written(key)
        });
    }

    /// Waits for it to exit 0 and checks that no segment is left on `key`:
    /// the C producer leaks its segment, as the seed's does, so that one
    /// must be removed, and `shmex segment rm` can.
    #[track_caller]
    fn finish_clean(self, cleanup: &mut Cleanup, i: usize, key: i32) {
        finish_ok(cleanup, i, self.name());
        match self {
            Producer::C => rm_key(key),
            Producer::Shmex => assert_gone(&sysv(key)),
        }
    }
}

/// The two consumers: the seed's C program, which stops before `z`, and
/// `shmex alphabet consume`, which prints all 26 letters.
#[derive(Clone, Copy)]
enum Consumer {
    C,
    Shmex,
}

impl Consumer {
    /// Runs it to the end on `key` (`None`: on its defaults, key 5678) and
    /// checks what it printed.
    #[track_caller]
    fn run(self, key: Option<i32>) {
        let out = match (self, key) {
            (Consumer::C, _) => run_c_consumer(key),
            (Consumer::Shmex, Some(k)) => run(
                &[
                    "alphabet",
                    "consume",
                    "--key",
                    &k.to_string(),
                    "--timeout",
                    "60",
                ],
                b"",
            ),
            (Consumer::Shmex, None) => run(&["alphabet", "consume"], b""),
        };
        let expected = match self {
            Consumer::C => C_CONSUMER_OUTPUT,
            Consumer::Shmex => SHMEX_CONSUMER_OUTPUT,
        };
        assert_prints(&out, expected);
    }
}

/// A shmex consumer started before anything exists waits, then prints all
/// 26 letters once `producer` has written them.
fn consumer_started_first_waits_for(producer: Producer) {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let k = key.to_string();
    let consumer = spawn_shmex(
        &mut cleanup,
        &["alphabet", "consume", "--key", &k, "--timeout", "60"],
    );
    // It gets to its wait, and must not give up because nothing exists yet.
    let pid = cleanup.child(consumer).id();
    wait_until("the consumer waits, or has ended", || {
        parked(pid) || !still_running(&mut cleanup, consumer)
    });
    assert!(
        still_running(&mut cleanup, consumer),
        "the consumer started first did not wait: {}",
        show(&finish(&mut cleanup, consumer))
    );

    let p = producer.spawn(&mut cleanup, Some(key));
    assert_prints(&finish(&mut cleanup, consumer), SHMEX_CONSUMER_OUTPUT);
    producer.finish_clean(&mut cleanup, p, key);
}

/// `shmex alphabet produce` writes the seed's wire format, a raw 27-byte
/// segment (mode 0600 by default), hands it to `consumer`, and removes it.
fn shmex_producer_leaves_no_segment(consumer: Consumer) {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let p = Producer::Shmex.spawn(&mut cleanup, Some(key));
    Producer::Shmex.wait_written(key);

    let info = shm::inspect(&sysv(key)).expect("inspect the producer's segment");
    assert_eq!(info.size, 27);
    assert_eq!(info.mode, 0o600);
    assert_eq!(bytes_of(&sysv(key))[26], 0);

    consumer.run(Some(key));
    Producer::Shmex.finish_clean(&mut cleanup, p, key);
}

#[test]
fn c_producer_to_c_consumer_is_the_baseline() {
    let mut cleanup = Cleanup::new();
    let key = cleanup.key();
    let producer = Producer::C.spawn(&mut cleanup, Some(key));
    // The seed's consumer races the producer; start it on a full alphabet.
    Producer::C.wait_written(key);

    Consumer::C.run(Some(key));

    finish_ok(&mut cleanup, producer, Producer::C.name());
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
    let producer = Producer::C.spawn(&mut cleanup, Some(key));
    Producer::C.wait_written(key);

    Consumer::Shmex.run(Some(key));

    // The C producer saw the answer.
    finish_ok(&mut cleanup, producer, Producer::C.name());

    // `segment read` works on a segment shmex did not make, from byte 0.
    let read = run(
        &["segment", "read", "--key", &key.to_string(), "--len", "26"],
        b"",
    );
    assert_eq!(read.status.code(), Some(0), "{}", show(&read));
    assert_eq!(read.stdout, b"*bcdefghijklmnopqrstuvwxyz");
    // `ls` lists it, as foreign: shmex did not make it and will not judge it.
    let entry = ls_entry(&sysv(key)).expect("ls --json lists the C program's segment");
    assert_eq!(entry["status"], "foreign", "{entry}");
    assert!(entry["kind"].is_null(), "{entry}");
    assert_eq!(entry["size"].as_u64(), Some(27), "{entry}");
    assert_eq!(entry["mode"], "0666", "{entry}");

    // The C producer leaks its segment, as the seed's does; remove it.
    rm_key(key);
}

#[test]
fn shmex_consumer_started_first_waits_for_the_c_producer() {
    consumer_started_first_waits_for(Producer::C);
}

#[test]
fn shmex_producer_to_c_consumer_leaves_no_segment() {
    shmex_producer_leaves_no_segment(Consumer::C);
}

#[test]
fn shmex_producer_to_shmex_consumer_leaves_no_segment() {
    shmex_producer_leaves_no_segment(Consumer::Shmex);
}

#[test]
fn shmex_consumer_started_first_waits_for_the_shmex_producer() {
    consumer_started_first_waits_for(Producer::Shmex);
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
    let producer = Producer::Shmex.spawn(&mut cleanup, None);
    Producer::Shmex.wait_written(5678);
    Consumer::C.run(None);
    Producer::Shmex.finish_clean(&mut cleanup, producer, 5678);

    // C producer → shmex consumer, neither given a key.
    let producer = Producer::C.spawn(&mut cleanup, None);
    Producer::C.wait_written(5678);
    Consumer::Shmex.run(None);
    Producer::C.finish_clean(&mut cleanup, producer, 5678);
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
    Producer::Shmex.wait_written(key);
    let info = shm::inspect(&sysv(key)).expect("inspect");
    assert_eq!(info.mode, 0o666);
    Consumer::Shmex.run(Some(key));
    Producer::Shmex.finish_clean(&mut cleanup, producer, key);
}
