//! The channel within one process: both ends on real segments, driven from
//! one thread (deterministic interleavings) or two.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use channel::{OpenError, Options, Receiver, RecvError, SendError, Sender, Side, Wait};
use proptest::prelude::*;
use shm::SegmentId;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique channel name, removed on drop whatever happened.
struct Name(SegmentId);

impl Name {
    fn new(tag: &str) -> Name {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Name(SegmentId::posix(format!("shmex-test-chan-{tag}-{}-{n}", std::process::id())).unwrap())
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shm::Segment::remove(&self.0);
    }
}

fn opts(capacity: usize) -> Options {
    Options {
        capacity,
        ..Options::default()
    }
}

fn exists(id: &SegmentId) -> bool {
    let SegmentId::Posix(name) = id else {
        unreachable!()
    };
    std::path::Path::new("/dev/shm").join(name).exists()
}

#[test]
fn either_end_may_create_and_the_name_goes_once_both_are_attached() {
    for sender_first in [true, false] {
        let name = Name::new("order");
        let (mut tx, mut rx) = if sender_first {
            let tx = Sender::open(&name.0, &opts(64)).unwrap();
            assert!(
                exists(&name.0),
                "the creator's channel is visible until its peer comes"
            );
            (tx, Receiver::open(&name.0, &opts(4096)).unwrap())
        } else {
            let rx = Receiver::open(&name.0, &opts(64)).unwrap();
            (Sender::open(&name.0, &opts(4096)).unwrap(), rx)
        };
        assert!(!exists(&name.0), "both attached: the name is gone");
        assert_eq!(tx.capacity(), 64, "the creator's capacity wins");
        assert_eq!(rx.capacity(), 64);
        assert!(tx.peer_attached() && rx.peer_attached());
        tx.send(b"ping").unwrap();
        assert_eq!(&*rx.recv().unwrap().unwrap(), b"ping");
    }
}

#[test]
fn a_lone_creator_removes_its_channel_when_dropped() {
    let name = Name::new("lone");
    let rx = Receiver::open(&name.0, &opts(64)).unwrap();
    assert!(exists(&name.0));
    drop(rx);
    assert!(!exists(&name.0));
}

#[test]
fn end_of_stream_comes_after_every_message() {
    let name = Name::new("eos");
    let mut tx = Sender::open(&name.0, &opts(256)).unwrap();
    let mut rx = Receiver::open(&name.0, &Options::default()).unwrap();
    for i in 0..5u8 {
        tx.send(&[i; 10]).unwrap();
    }
    tx.close();
    for i in 0..5u8 {
        assert_eq!(&*rx.recv().unwrap().unwrap(), &[i; 10]);
    }
    assert!(rx.recv().unwrap().is_none());
    assert!(rx.recv().unwrap().is_none(), "end of stream stays");
}

/// Only `close` ends a stream cleanly: `abort`, a plain drop (a sender that
/// returned early on an error) and a panic all end it as aborted, after
/// every message sent.
#[test]
fn only_close_ends_the_stream_cleanly() {
    type End = fn(Sender);
    let ends: [(&str, End); 3] = [
        ("abort", Sender::abort),
        ("drop", drop),
        ("panic", |tx| {
            let panicked = std::thread::spawn(move || {
                let _tx = tx;
                panic!("the sender fails");
            })
            .join();
            assert!(panicked.is_err());
        }),
    ];
    for (tag, end) in ends {
        let name = Name::new(tag);
        let mut tx = Sender::open(&name.0, &opts(256)).unwrap();
        let mut rx = Receiver::open(&name.0, &Options::default()).unwrap();
        tx.send(b"partial").unwrap();
        end(tx);
        assert_eq!(&*rx.recv().unwrap().unwrap(), b"partial", "{tag}");
        let err = rx.recv().unwrap_err();
        assert!(matches!(err, RecvError::Aborted { .. }), "{tag}: {err:?}");
        assert!(
            err.to_string()
                .contains("stopped before the end of its input"),
            "{err}"
        );
    }
}

#[test]
fn an_oversized_message_is_refused_and_changes_nothing() {
    let name = Name::new("big");
    let mut tx = Sender::open(&name.0, &opts(100)).unwrap();
    let mut rx = Receiver::open(&name.0, &Options::default()).unwrap();
    assert_eq!(tx.capacity(), 104, "rounded up to 8");
    let err = tx.send(&[1; 105]).unwrap_err();
    assert_eq!(
        err,
        SendError::TooLarge {
            channel: format!("{}", name.0),
            len: 105,
            max: 104
        }
    );
    assert!(
        err.to_string()
            .contains("message of 105 bytes is larger than the capacity"),
        "{err}"
    );
    assert!(matches!(tx.reserve(1000), Err(SendError::TooLarge { .. })));
    // Exactly the capacity fits, also after the ring wrapped: the sender
    // leaves a wrap marker, which the receiver must pass before a message as
    // large as the ring fits.
    tx.send(&[2; 40]).unwrap();
    assert_eq!(rx.recv().unwrap().unwrap().len(), 40);
    assert!(matches!(
        tx.try_send(&[3; 104]),
        Err(SendError::Full { .. })
    ));
    assert!(matches!(rx.try_recv(), Err(RecvError::Empty { .. })));
    tx.send(&[3; 104]).unwrap();
    assert_eq!(&*rx.recv().unwrap().unwrap(), &[3; 104][..]);
    assert!(matches!(rx.try_recv(), Err(RecvError::Empty { .. })));
}

#[test]
fn timeouts_and_non_blocking_calls() {
    let name = Name::new("timeout");
    let mut tx = Sender::open(&name.0, &opts(64)).unwrap();
    let mut rx = Receiver::open(&name.0, &Options::default()).unwrap();
    let err = rx.recv_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(matches!(err, RecvError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("timed out after 0.05 s waiting for a message on channel"),
        "{err}"
    );
    assert!(matches!(rx.try_recv(), Err(RecvError::Empty { .. })));

    tx.send(&[0; 64]).unwrap();
    assert!(matches!(tx.try_send(b"x"), Err(SendError::Full { .. })));
    let err = tx
        .send_timeout(b"x", Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(err, SendError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("waiting for room in channel"),
        "{err}"
    );
    drop(rx.recv().unwrap());
    tx.try_send(b"x").unwrap();
}

#[test]
fn a_grant_dropped_without_commit_sends_nothing_and_commit_len_shortens() {
    let name = Name::new("grant");
    let mut tx = Sender::open(&name.0, &opts(64)).unwrap();
    let mut rx = Receiver::open(&name.0, &Options::default()).unwrap();
    {
        let mut g = tx.reserve(10).unwrap();
        g.fill(7);
    }
    assert!(matches!(rx.try_recv(), Err(RecvError::Empty { .. })));
    let mut g = tx.reserve(32).unwrap();
    g[..3].copy_from_slice(b"abc");
    g.commit_len(3);
    assert_eq!(&*rx.recv().unwrap().unwrap(), b"abc");
    tx.send(b"").unwrap();
    assert_eq!(
        rx.recv().unwrap().unwrap().len(),
        0,
        "empty messages are messages"
    );
}

#[test]
fn closing_the_receiver_stops_the_sender() {
    let name = Name::new("rxclose");
    let mut tx = Sender::open(&name.0, &opts(64)).unwrap();
    let rx = Receiver::open(&name.0, &Options::default()).unwrap();
    tx.send(&[0; 64]).unwrap();
    rx.close();
    let err = tx.send(b"more").unwrap_err();
    assert!(matches!(err, SendError::ReceiverClosed { .. }), "{err:?}");
}

#[test]
fn one_sender_per_channel() {
    let name = Name::new("busy");
    let _tx = Sender::open(&name.0, &opts(64)).unwrap();
    let err = Sender::open(&name.0, &opts(64)).unwrap_err();
    match &err {
        OpenError::Busy { side, pid, .. } => {
            assert_eq!(*side, Side::Sender);
            assert_eq!(*pid, std::process::id());
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("already has a sender"), "{err}");
}

#[test]
fn a_bad_capacity_is_refused() {
    let name = Name::new("cap");
    let err = Sender::open(&name.0, &opts(0)).unwrap_err();
    assert!(
        matches!(err, OpenError::Capacity { capacity: 0 }),
        "{err:?}"
    );
    assert!(!exists(&name.0));
}

#[test]
fn a_foreign_segment_by_that_name_is_refused() {
    let name = Name::new("foreign");
    let seg = shm::Segment::create(&name.0, 4096, 0o600).unwrap();
    seg.write_at(0, b"not a channel").unwrap();
    let err = Receiver::open(&name.0, &Options::default()).unwrap_err();
    assert!(err.to_string().contains("is not a shmex segment"), "{err}");
    assert!(exists(&name.0), "nothing removed");
}

#[test]
fn threads_stream_many_messages_through_a_small_ring() {
    for wait in [Wait::Adaptive, Wait::Spin, Wait::Park] {
        let name = Name::new("threads");
        let mut tx = Sender::open(
            &name.0,
            &Options {
                capacity: 200,
                wait,
                ..Options::default()
            },
        )
        .unwrap();
        let mut rx = Receiver::open(
            &name.0,
            &Options {
                wait,
                ..Options::default()
            },
        )
        .unwrap();
        let n = 20_000u32;
        let producer = std::thread::spawn(move || {
            for i in 0..n {
                let len = (i % 150) as usize;
                let mut g = tx.reserve(len + 4).unwrap();
                g[..4].copy_from_slice(&i.to_le_bytes());
                g[4..].fill(i as u8);
                g.commit();
            }
            tx.close();
        });
        for i in 0..n {
            let m = rx.recv().unwrap().expect("a message");
            assert_eq!(m.len(), (i % 150) as usize + 4);
            assert_eq!(u32::from_le_bytes(m[..4].try_into().unwrap()), i);
            assert!(m[4..].iter().all(|&b| b == i as u8));
        }
        producer.join().unwrap();
        assert!(rx.recv().unwrap().is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random message sizes through a small ring, interleaving sends and
    /// receives as the ring allows: every message comes out whole, in order,
    /// wrap-arounds included.
    #[test]
    fn random_sizes_round_trip(
        capacity in 8usize..200,
        sizes in proptest::collection::vec(0usize..200, 1..120),
        burst in 1usize..6,
    ) {
        let name = Name::new("prop");
        let mut tx = Sender::open(&name.0, &opts(capacity)).unwrap();
        let mut rx = Receiver::open(&name.0, &Options::default()).unwrap();
        let cap = tx.capacity();
        let mut expected: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
        let mut buf = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let msg: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            if len > cap {
                let refused = matches!(tx.try_send(&msg), Err(SendError::TooLarge { .. }));
                prop_assert!(refused);
                continue;
            }
            loop {
                match tx.try_send(&msg) {
                    Ok(()) => break,
                    Err(SendError::Full { .. }) => match rx.try_recv() {
                        Ok(Some(m)) => prop_assert_eq!(&*m, &expected.pop_front().unwrap()[..]),
                        // Only a wrap marker was left: the receiver passed it.
                        Err(RecvError::Empty { .. }) => prop_assert!(expected.is_empty()),
                        other => panic!("{other:?}"),
                    },
                    Err(e) => panic!("{e}"),
                }
            }
            expected.push_back(msg);
            if i % burst == 0 {
                prop_assert!(rx.recv_into(&mut buf).unwrap());
                prop_assert_eq!(&buf, &expected.pop_front().unwrap());
            }
        }
        tx.close();
        while let Some(m) = rx.recv().unwrap() {
            prop_assert_eq!(&*m, &expected.pop_front().unwrap()[..]);
        }
        prop_assert!(expected.is_empty());
    }
}
