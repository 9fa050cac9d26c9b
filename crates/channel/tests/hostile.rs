//! A third party that writes into a live channel's segment: every value it
//! leaves in a shared word or a frame header is found out (a `Corrupted`
//! error naming the channel), never a panic, a loop, a message that was not
//! sent, or a clean end of a stream that was cut short.
//!
//! Both ends run in this process on a real segment, and the test maps the
//! segment a third time (before the second end attaches, which removes the
//! name) to write into it, so every position is known.

#![cfg(not(loom))]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use channel::{Corruption, Options, Receiver, RecvError, SendError, Sender, Side};
use proptest::prelude::*;
use shm::{Access, Segment, SegmentId};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Payload offset of the consumer's position (`tail`).
const TAIL: usize = 0;
/// Payload offsets of the two park words.
const PARK: [usize; 2] = [128, 132];
/// Payload offset of the setup line: `ring_size`, then each side's pid
/// (u32), state (u32), start, cpus, flags, spare, then `closed_at`.
const SETUP: usize = 256;
/// Payload offset of `side`'s state word.
fn state_at(side: Side) -> usize {
    SETUP + 8 + 32 * usize::from(side == Side::Receiver) + 4
}
const CLOSED_AT: usize = SETUP + 8 + 64;
/// Payload offset of the ring.
const RING: usize = 384;
/// Bytes of the managed header before the payload.
const HEADER: usize = 256;

/// A sender and a receiver on one channel, and a third mapping of it.
struct Hostile {
    id: SegmentId,
    tx: Option<Sender>,
    rx: Receiver,
    seg: Segment,
}

impl Hostile {
    fn new(capacity: usize) -> Hostile {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("shmex-test-hostile-{}-{n}", std::process::id());
        let id = SegmentId::posix(name).unwrap();
        let opts = Options {
            capacity,
            ..Options::default()
        };
        let rx = Receiver::open(&id, &opts).unwrap();
        let seg = Segment::open(&id, Access::ReadWrite).unwrap();
        let tx = Sender::open(&id, &opts).unwrap();
        Hostile {
            id,
            tx: Some(tx),
            rx,
            seg,
        }
    }

    fn tx(&mut self) -> &mut Sender {
        self.tx.as_mut().unwrap()
    }

    /// Writes `value` into the 8-byte word at payload offset `off`.
    fn poke(&self, off: usize, value: u64) {
        let word = self.seg.view::<AtomicU64>(HEADER + off).unwrap();
        word.store(value, Ordering::SeqCst);
    }

    /// Writes `value` into the 4-byte word at payload offset `off`.
    fn poke32(&self, off: usize, value: u32) {
        let word = self.seg.view::<AtomicU32>(HEADER + off).unwrap();
        word.store(value, Ordering::SeqCst);
    }

    fn peek(&self, off: usize) -> u64 {
        let word = self.seg.view::<AtomicU64>(HEADER + off).unwrap();
        word.load(Ordering::SeqCst)
    }

    fn channel(&self) -> String {
        self.id.to_string()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = Segment::remove(&self.id);
    }
}

/// The corruption in a receive error, with its message checked.
#[track_caller]
fn recv_corruption(h: &Hostile, err: RecvError) -> Corruption {
    let text = err.to_string();
    let RecvError::Corrupted { channel, what } = err else {
        panic!("expected corruption, got {err:?}");
    };
    assert_eq!(channel, h.channel());
    assert!(
        text.starts_with(&format!("channel {} is corrupted: ", h.channel())),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    what
}

#[track_caller]
fn send_corruption(h: &Hostile, err: SendError) -> Corruption {
    let SendError::Corrupted { channel, what } = err else {
        panic!("expected corruption, got {err:?}");
    };
    assert_eq!(channel, h.channel());
    what
}

/// A wrap marker where a frame always fits (offsets 0 and 8): reported at
/// once, where it used to send the receiver round the ring forever.
#[test]
fn a_wrap_marker_where_a_frame_fits_is_corruption() {
    for off in [0, 8] {
        let mut h = Hostile::new(64);
        if off == 8 {
            // Move the consumer to offset 8 with an empty message.
            h.tx().send(b"").unwrap();
            assert!(h.rx.recv().unwrap().unwrap().is_empty());
        }
        h.poke(RING + off, u64::MAX);
        let start = Instant::now();
        let err = h.rx.recv_timeout(Duration::from_secs(5)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1), "{err}");
        assert_eq!(
            recv_corruption(&h, err),
            Corruption::Frame {
                offset: off,
                value: u64::MAX
            }
        );
    }
}

/// A header rewritten to a length that still fits its frame, a length too
/// large, one without the valid bit, or the header of another position:
/// all refused, none delivered.
#[test]
fn a_rewritten_frame_header_is_corruption() {
    for forge in [
        |w: u64| w - 1,                  // shorter, same frame
        |w: u64| (w & !0xffff) | 0xffff, // too long
        |w: u64| w & !(1 << 63),         // not valid
        |w: u64| w ^ (1 << 50),          // another seal
    ] {
        let mut h = Hostile::new(256);
        h.tx().send(b"eight by").unwrap();
        let header = h.peek(RING);
        assert_ne!(header, 0);
        h.poke(RING, forge(header));
        let err = h.rx.try_recv().unwrap_err();
        assert!(matches!(
            recv_corruption(&h, err),
            Corruption::Frame { offset: 0, .. }
        ));
    }
}

/// The consumer's position is checked by the sender when it reads it (not
/// a multiple of 8, past what was sent, behind what it saw), and by the
/// receiver, which alone writes it, whenever it finds the ring empty.
#[test]
fn an_impossible_consumer_position_is_corruption_for_both_ends() {
    for tail in [4, 1 << 62, 8] {
        let mut h = Hostile::new(64);
        // Fill the ring, so that the sender must read the position; the
        // receiver takes one message first, so the real position is 16.
        h.tx().send(&[1; 8]).unwrap();
        drop(h.rx.recv().unwrap().unwrap());
        h.rx.try_recv().unwrap_err();
        assert_eq!(h.peek(TAIL), 16);
        h.tx().send(&[2; 56]).unwrap();
        h.poke(TAIL, tail);
        let err = h.tx().try_send(&[3; 40]).unwrap_err();
        assert_eq!(
            send_corruption(&h, err),
            Corruption::Tail { value: tail },
            "{tail}"
        );
        // Before any wait: the sender's look without sending.
        let err = h.tx().check().unwrap_err();
        assert_eq!(send_corruption(&h, err), Corruption::Tail { value: tail });
        // The receiver drains what was sent, then finds the change.
        assert_eq!(&*h.rx.recv().unwrap().unwrap(), &[2; 56]);
        let err = h.rx.try_recv().unwrap_err();
        assert_eq!(recv_corruption(&h, err), Corruption::Tail { value: tail });
    }
}

/// State words that hold no state: each end finds its peer's.
#[test]
fn an_impossible_state_is_corruption() {
    let mut h = Hostile::new(64);
    h.poke32(state_at(Side::Sender), 7);
    let err = h.rx.try_recv().unwrap_err();
    assert_eq!(
        recv_corruption(&h, err),
        Corruption::State {
            side: Side::Sender,
            value: 7
        }
    );

    let mut h = Hostile::new(64);
    h.poke32(state_at(Side::Receiver), 9);
    let err = h.tx().check().unwrap_err();
    assert_eq!(
        send_corruption(&h, err),
        Corruption::State {
            side: Side::Receiver,
            value: 9
        }
    );
}

/// A foreign "closed" in the sender's state word, or a foreign end
/// position, cannot end a stream early as if it were complete.
#[test]
fn a_forged_end_of_stream_is_corruption() {
    let mut h = Hostile::new(64);
    h.tx().send(b"first").unwrap();
    h.poke32(state_at(Side::Sender), 1);
    assert_eq!(&*h.rx.recv().unwrap().unwrap(), b"first");
    let err = h.rx.recv().unwrap_err();
    assert_eq!(
        recv_corruption(&h, err),
        Corruption::End {
            closed_at: 0,
            reached: 16
        }
    );

    let mut h = Hostile::new(64);
    h.tx().send(b"first").unwrap();
    h.tx.take().unwrap().close();
    h.poke(CLOSED_AT, 0);
    assert_eq!(&*h.rx.recv().unwrap().unwrap(), b"first");
    let err = h.rx.recv().unwrap_err();
    assert!(matches!(recv_corruption(&h, err), Corruption::End { .. }));
}

/// Park words are hints: any value in them costs at most a park slice,
/// never a message.
#[test]
fn any_park_word_only_delays() {
    let mut h = Hostile::new(64);
    for (i, v) in [0u32, 1, 2, 3, u32::MAX].into_iter().enumerate() {
        h.poke32(PARK[0], v);
        h.poke32(PARK[1], v);
        h.tx().send(&[i as u8; 9]).unwrap();
        let m = h.rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(&*m, &[i as u8; 9]);
    }
}

/// What the third party writes, and where.
#[derive(Clone, Debug)]
enum Write {
    /// Any value into the header of the `n`th message sent (by index, if
    /// it is still unread).
    Header { n: usize, value: u64 },
    /// Any value into one of the shared words other than the park words.
    Word { at: usize, value: u64 },
}

fn write() -> impl Strategy<Value = Write> {
    let header = (0usize..32, any::<u64>()).prop_map(|(n, value)| Write::Header { n, value });
    let word = (
        prop_oneof![
            Just(TAIL),
            Just(SETUP),      // ring_size
            Just(SETUP + 8),  // the sender's pid and state
            Just(SETUP + 16), // the sender's start time
            Just(SETUP + 40), // the receiver's pid and state
            Just(SETUP + 48), // the receiver's start time
            Just(SETUP + 64), // the receiver's flags
            Just(CLOSED_AT),
        ],
        prop_oneof![any::<u64>(), 0u64..64, Just(1), Just(1 << 32)],
    )
        .prop_map(|(at, value)| Write::Word { at, value });
    prop_oneof![header, word]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Messages sent (no wrap: the ring holds them all), one foreign write
    /// after `before` of them were received, then the rest received: the
    /// receiver gives exactly the messages sent, in order, until it stops
    /// with an error (or times out), and it ends cleanly only after all of
    /// them and a real close.
    #[test]
    fn a_foreign_write_never_passes_for_the_stream(
        sizes in proptest::collection::vec(0usize..100, 1..24),
        before in 0usize..24,
        hit in write(),
        close in any::<bool>(),
    ) {
        let mut h = Hostile::new(4096);
        let mut offsets = Vec::new();
        let mut at = 0;
        let msgs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| (0..len).map(|j| (i * 7 + j) as u8).collect())
            .collect();
        for m in &msgs {
            h.tx().send(m).unwrap();
            offsets.push(at);
            at += 8 + m.len().next_multiple_of(8);
        }
        if close {
            h.tx.take().unwrap().close();
        }
        let before = before.min(msgs.len());
        for m in &msgs[..before] {
            prop_assert_eq!(&*h.rx.recv().unwrap().unwrap(), &m[..]);
        }
        match hit {
            Write::Header { n, value } => {
                let n = n % msgs.len();
                h.poke(RING + offsets[n], value);
            }
            Write::Word { at, value } => h.poke(at, value),
        }
        let mut got = before;
        loop {
            match h.rx.recv_timeout(Duration::from_millis(1)) {
                Ok(Some(m)) => {
                    prop_assert!(got < msgs.len(), "a message that was not sent");
                    prop_assert_eq!(&*m, &msgs[got][..]);
                    got += 1;
                }
                Ok(None) => {
                    prop_assert!(close && got == msgs.len(), "a clean end after {got}");
                    break;
                }
                // Stalled (a foreign "open" after the close, say): an
                // error, not an end.
                Err(e) => {
                    prop_assert!(!e.to_string().contains('\n'));
                    break;
                }
            }
        }
    }
}
