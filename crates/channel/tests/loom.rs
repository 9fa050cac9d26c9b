//! A `loom` model of the ring's index protocol: a producer thread and a
//! consumer thread on a ring small enough that the messages wrap, checking
//! that every message arrives whole and in order, that the consumer never
//! reads bytes the producer is still writing (loom's `UnsafeCell` tracks
//! every byte), that a stale header slot is never taken for a new frame
//! (message bytes also overwrite the header words they cover, with a value
//! that looks like a valid header), and that the end of the stream comes
//! after the last message.
//!
//! And of parking: both sides park whenever they must wait (the futex
//! modelled by a loom `Notify`, so a lost wake-up is a deadlock that loom
//! reports), either staying parkable (a side in `Wait::Park`) or going back
//! to `AWAKE` after every message, so that each park passes through the
//! heavy barrier and the peer's fence-free fast path is exercised. The
//! heavy barrier (membarrier(2) between processes) is modelled by what it
//! guarantees: every light section of the peer (a publish and its look at
//! the park word) is wholly before it or wholly after it, which a mutex
//! around the light sections gives.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" cargo test -p shmex-channel --release --test loom`
#![cfg(loom)]

use channel::Side;
use channel::ring::{
    Bytes, CLOSED, Consumer, Control, Full, OPEN, PARKED, Park, Peek, Producer, VALID, park_begin,
    park_end, stay_awake,
};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::{Arc, Mutex, Notify};

/// The shared words as the segment lays them out: one of each per side,
/// the sender's first.
struct Model {
    tail: AtomicU64,
    state: [AtomicU32; 2],
    park: [AtomicU32; 2],
    ring: Vec<UnsafeCell<u8>>,
    words: Vec<AtomicU64>,
    barrier: Mutex<()>,
    wake: [Notify; 2],
}

/// Where `side`'s word sits in a pair (as `Side::index` in the crate).
fn at(side: Side) -> usize {
    match side {
        Side::Sender => 0,
        Side::Receiver => 1,
    }
}

impl Model {
    fn new(size: usize) -> Model {
        Model {
            tail: AtomicU64::new(0),
            state: [AtomicU32::new(OPEN), AtomicU32::new(OPEN)],
            park: [AtomicU32::new(0), AtomicU32::new(0)],
            ring: (0..size).map(|_| UnsafeCell::new(0)).collect(),
            words: (0..size / 8).map(|_| AtomicU64::new(0)).collect(),
            barrier: Mutex::new(()),
            wake: [Notify::new(), Notify::new()],
        }
    }
}

impl Control for Model {
    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }
    fn state(&self, side: Side) -> &AtomicU32 {
        &self.state[at(side)]
    }
    fn park(&self, side: Side) -> &AtomicU32 {
        &self.park[at(side)]
    }
    fn light<R>(&self, f: impl FnOnce() -> R) -> R {
        let _section = self.barrier.lock().unwrap();
        f()
    }
    fn heavy_barrier(&self) -> bool {
        drop(self.barrier.lock().unwrap());
        true
    }
    fn wake(&self, word: &AtomicU32) {
        let side = if std::ptr::eq(word, self.park(Side::Sender)) {
            Side::Sender
        } else {
            Side::Receiver
        };
        self.wake[at(side)].notify();
    }
}

// Header words are atomics of their own here; message bytes are loom cells,
// so that loom reports any unsynchronized access to them.
impl Bytes for Model {
    fn header(&self, off: usize) -> &AtomicU64 {
        &self.words[off / 8]
    }
    fn write(&self, off: usize, src: &[u8]) {
        // In the real ring the bytes land on whatever header words were
        // there: leave a convincing fake behind.
        for w in off / 8..(off + src.len()).div_ceil(8) {
            self.words[w].store(VALID | 3, Ordering::Relaxed);
        }
        for (i, b) in src.iter().enumerate() {
            // SAFETY: as in `read_word`.
            self.ring[off + i].with_mut(|p| unsafe { *p = *b });
        }
    }
    fn read(&self, off: usize, dst: &mut [u8]) {
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: as in `read_word`.
            *b = self.ring[off + i].with(|p| unsafe { *p });
        }
    }
}

fn send(p: &mut Producer, m: &Model, msg: &[u8]) {
    loop {
        match p.try_reserve(m, m, msg.len()) {
            Ok(off) => {
                m.write(off, msg);
                p.commit(m, m, msg.len());
                return;
            }
            Err(Full) => loom::thread::yield_now(),
        }
    }
}

/// Receives until the end of the stream.
fn drain(c: &mut Consumer, m: &Model) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        match c.try_peek(m, m).expect("no corrupt frame") {
            Peek::Message { off, len } => {
                let mut buf = vec![0; len];
                m.read(off, &mut buf);
                c.release(m, len);
                got.push(buf);
            }
            Peek::Empty => loom::thread::yield_now(),
            Peek::Ended(state) => {
                assert_eq!(state, CLOSED);
                return got;
            }
        }
    }
}

fn model(size: usize, messages: &'static [&'static [u8]]) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let m = Arc::new(Model::new(size));
        let mp = m.clone();
        let producer = loom::thread::spawn(move || {
            let mut p = Producer::new(&*mp, size);
            for msg in messages {
                send(&mut p, &mp, msg);
            }
            p.close(&*mp, CLOSED);
        });
        let mut c = Consumer::new(&*m, size);
        let got = drain(&mut c, &m);
        producer.join().unwrap();
        let want: Vec<Vec<u8>> = messages.iter().map(|s| s.to_vec()).collect();
        let total = expected_tail(size, messages);
        assert_eq!(got, want);
        c.publish(&*m);
        assert_eq!(m.tail.load(Ordering::Relaxed), total);
    });
}

/// Where the consumer ends: every frame, plus the wrap markers' skips.
fn expected_tail(size: usize, messages: &[&[u8]]) -> u64 {
    let mut pos = 0usize;
    for m in messages {
        let frame = channel::ring::frame_len(m.len());
        let to_end = size - pos % size;
        if frame > to_end {
            pos += to_end;
        }
        pos += frame;
    }
    pos as u64
}

/// Two messages that fill a 32-byte ring (the second must wait for the
/// first's space), then a third at offset 0 after an exact wrap.
#[test]
fn send_receive_and_wrap() {
    model(32, &[b"ab", b"cdefg", b"hi"]);
}

/// A message as large as the ring allows, after one that forces a wrap
/// marker: the producer must publish the marker alone and wait for the
/// consumer to pass it.
#[test]
fn largest_message_after_a_wrap_marker() {
    model(32, &[b"abc", b"0123456789abcdef"]);
}

/// Close with nothing sent: the consumer sees the end at once, and close
/// after messages: it sees them all first.
#[test]
fn close_comes_after_the_last_message() {
    model(24, &[]);
    model(32, &[b"x"]);
}

/// Sleeps on `word` as the futex does, until a wake-up moved it off
/// [`PARKED`]; forever if none comes (loom then reports a deadlock).
fn sleep(word: &AtomicU32, wake: &Notify) {
    while word.load(Ordering::Acquire) == PARKED {
        wake.wait();
    }
    park_end(word);
}

fn producer_park(p: &Producer, m: &Model, len: usize) {
    let news = || p.has_room(m, len) || m.state(Side::Receiver).load(Ordering::Acquire) != OPEN;
    let own = m.park(Side::Sender);
    if park_begin(m, own, news) == Park::Sleep {
        sleep(own, &m.wake[at(Side::Sender)]);
    }
}

fn consumer_park(c: &Consumer, m: &Model) {
    let own = m.park(Side::Receiver);
    if park_begin(m, own, || c.has_news(m, m)) == Park::Sleep {
        sleep(own, &m.wake[at(Side::Receiver)]);
    }
}

/// Both sides park whenever they must wait; with `awake`, each goes back to
/// `AWAKE` after every message it handled.
fn parking_model(size: usize, messages: &'static [&'static [u8]], awake: bool) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(move || {
        let m = Arc::new(Model::new(size));
        let mp = m.clone();
        let producer = loom::thread::spawn(move || {
            let mut p = Producer::new(&*mp, size);
            for msg in messages {
                loop {
                    match p.try_reserve(&*mp, &*mp, msg.len()) {
                        Ok(off) => {
                            mp.write(off, msg);
                            p.commit(&*mp, &*mp, msg.len());
                            break;
                        }
                        Err(Full) => producer_park(&p, &mp, msg.len()),
                    }
                }
                if awake {
                    stay_awake(mp.park(Side::Sender), true);
                }
            }
            p.close(&*mp, CLOSED);
        });
        let mut c = Consumer::new(&*m, size);
        let mut got = Vec::new();
        loop {
            match c.try_peek(&*m, &*m).expect("no corrupt frame") {
                Peek::Message { off, len } => {
                    let mut buf = vec![0; len];
                    m.read(off, &mut buf);
                    c.release(&*m, len);
                    got.push(buf);
                    if awake {
                        stay_awake(m.park(Side::Receiver), true);
                    }
                }
                Peek::Empty => consumer_park(&c, &m),
                Peek::Ended(state) => {
                    assert_eq!(state, CLOSED);
                    break;
                }
            }
        }
        producer.join().unwrap();
        let want: Vec<Vec<u8>> = messages.iter().map(|s| s.to_vec()).collect();
        assert_eq!(got, want);
    });
}

/// Sides that may park at any time (the fence on every publish): the
/// producer parks on a full ring, the consumer on an empty one, and neither
/// wake-up is lost, nor the one for the end of the stream.
#[test]
fn parking_never_loses_a_wake_up() {
    parking_model(32, &[b"ab", b"cdefg"], false);
}

/// Sides that go back to `AWAKE` after every message, so the peer publishes
/// without a fence, and each park starts with the heavy barrier.
#[test]
fn parking_after_the_fast_path_never_loses_a_wake_up() {
    parking_model(32, &[b"ab", b"cdefg"], true);
}
