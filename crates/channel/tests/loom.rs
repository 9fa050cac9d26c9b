//! A `loom` model of the ring's index protocol: a producer thread and a
//! consumer thread on a ring small enough that the messages wrap, checking
//! that every message arrives whole and in order, that the consumer never
//! reads bytes the producer is still writing (loom's `UnsafeCell` tracks
//! every byte), that a stale header slot is never taken for a new frame
//! (message bytes also overwrite the header words they cover, with the
//! header, seal included, that a frame one lap later would have there), and
//! that the end of the stream comes after the last message.
//!
//! And of parking: both sides park whenever they must wait (the futex
//! modelled by a loom `Notify`, so a lost wake-up is a deadlock that loom
//! reports), either staying parkable (a side in `Wait::Park`) or going back
//! to `AWAKE` after every message, so that each park passes through the
//! heavy barrier and the peer's fence-free fast path is exercised.
//!
//! The heavy barrier (membarrier(2) between processes) is modelled by what
//! it guarantees, and no more: each side's light sections (a publish and
//! its look at the peer's park word) hold a lock of that side's own, and a
//! side's heavy barrier takes and drops its peer's lock, so every light
//! section of the peer is wholly before or wholly after it. Nothing orders
//! the two sides' light sections against each other. The barrier can also
//! fail: that side must then never again sleep in a way that a lost
//! wake-up would leave asleep (it naps, modelled as a yield), and the peer
//! keeps fencing for it.
//!
//! Run with debug assertions on (the default test profile):
//! `RUSTFLAGS="--cfg loom" cargo test -p shmex-channel --test loom`
#![cfg(loom)]

use std::sync::atomic::AtomicU64 as Bookkeeping;

use channel::Side;
use channel::ring::{
    Bytes, CLOSED, Consumer, Control, NoRoom, OPEN, PARKED, Park, Parker, Peek, Producer,
    frame_len, header,
};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::{Arc, Mutex, Notify};

/// The shared words as the segment lays them out: one of each per side,
/// the sender's first.
struct Model {
    size: usize,
    tail: AtomicU64,
    closed_at: AtomicU64,
    state: [AtomicU32; 2],
    park: [AtomicU32; 2],
    ring: Vec<UnsafeCell<u8>>,
    words: Vec<AtomicU64>,
    /// Each side's light sections hold its own lock.
    light: [Mutex<()>; 2],
    /// Whether each side's heavy barrier fails.
    fails: [bool; 2],
    wake: [Notify; 2],
    /// Stream position of the frame being written (model bookkeeping, not
    /// part of the protocol).
    writing: Bookkeeping,
}

/// Where `side`'s word sits in a pair (as `Side::index` in the crate).
fn at(side: Side) -> usize {
    match side {
        Side::Sender => 0,
        Side::Receiver => 1,
    }
}

impl Model {
    fn new(size: usize, fails: [bool; 2]) -> Model {
        Model {
            size,
            tail: AtomicU64::new(0),
            closed_at: AtomicU64::new(0),
            state: [AtomicU32::new(OPEN), AtomicU32::new(OPEN)],
            park: [AtomicU32::new(0), AtomicU32::new(0)],
            ring: (0..size).map(|_| UnsafeCell::new(0)).collect(),
            words: (0..size / 8).map(|_| AtomicU64::new(0)).collect(),
            light: [Mutex::new(()), Mutex::new(())],
            fails,
            wake: [Notify::new(), Notify::new()],
            writing: Bookkeeping::new(0),
        }
    }
}

impl Control for Model {
    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }
    fn closed_at(&self) -> &AtomicU64 {
        &self.closed_at
    }
    fn state(&self, side: Side) -> &AtomicU32 {
        &self.state[at(side)]
    }
    fn park(&self, side: Side) -> &AtomicU32 {
        &self.park[at(side)]
    }
    fn light<R>(&self, side: Side, f: impl FnOnce() -> R) -> R {
        let _section = self.light[at(side)].lock().unwrap();
        f()
    }
    fn heavy_barrier(&self, side: Side) -> bool {
        if self.fails[at(side)] {
            return false;
        }
        drop(self.light[at(side.other())].lock().unwrap());
        true
    }
    fn wake(&self, side: Side) {
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
        // there: leave behind the header that the consumer, one lap later,
        // would accept at that word.
        let frame = self.writing.load(std::sync::atomic::Ordering::Relaxed);
        for w in off / 8..(off + src.len()).div_ceil(8) {
            let pos = frame + (w * 8 + 8 - off) as u64 + self.size as u64;
            self.words[w].store(header(pos, 0), Ordering::Relaxed);
        }
        for (i, b) in src.iter().enumerate() {
            // SAFETY: a loom cell, accessed only through its closure.
            self.ring[off + i].with_mut(|p| unsafe { *p = *b });
        }
    }
    fn read(&self, off: usize, dst: &mut [u8]) {
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: a loom cell, accessed only through its closure.
            *b = self.ring[off + i].with(|p| unsafe { *p });
        }
    }
}

/// Writes and commits `msg` at `off`, where `try_reserve` put it, from
/// stream position `pos` (the producer's position before the call, which a
/// wrap marker may have moved); returns the position after it.
fn put(p: &mut Producer, m: &Model, pos: u64, off: usize, msg: &[u8]) -> u64 {
    let size = m.size as u64;
    let frame = pos + ((off as u64 - 8) + size - pos % size) % size;
    m.writing.store(frame, std::sync::atomic::Ordering::Relaxed);
    m.write(off, msg);
    p.commit(m, m, msg.len());
    frame + frame_len(msg.len()) as u64
}

fn send(p: &mut Producer, m: &Model, pos: u64, msg: &[u8]) -> u64 {
    loop {
        match p.try_reserve(m, m, msg.len()) {
            Ok(off) => return put(p, m, pos, off, msg),
            Err(NoRoom::Full) => loom::thread::yield_now(),
            Err(NoRoom::Corrupt(c)) => panic!("{c}"),
        }
    }
}

/// Receives until the end of the stream.
fn drain(c: &mut Consumer, m: &Model) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        match c.try_peek(m, m).unwrap_or_else(|c| panic!("{c}")) {
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
        let m = Arc::new(Model::new(size, [false; 2]));
        let mp = m.clone();
        let producer = loom::thread::spawn(move || {
            let mut p = Producer::new(size);
            let mut pos = 0;
            for msg in messages {
                pos = send(&mut p, &mp, pos, msg);
            }
            p.close(&*mp, CLOSED);
        });
        let mut c = Consumer::new(size);
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

/// Sleeps as the futex does: on `Sleep`, until a wake-up moved the park
/// word off [`PARKED`], forever if none comes (loom then reports a
/// deadlock); on `Nap`, briefly, which loom sees as a yield.
fn sleep(m: &Model, parker: &Parker, park: Park) {
    let side = parker.side();
    match park {
        Park::News => return,
        Park::Sleep => {
            while m.park(side).load(Ordering::Acquire) == PARKED {
                m.wake[at(side)].wait();
            }
        }
        Park::Nap => loom::thread::yield_now(),
    }
    parker.end(m);
}

fn producer_park(parker: &Parker, p: &Producer, m: &Model, len: usize) {
    let news = || p.has_room(m, len) || m.state(Side::Receiver).load(Ordering::Acquire) != OPEN;
    sleep(m, parker, parker.begin(m, news));
}

fn consumer_park(parker: &Parker, c: &Consumer, m: &Model) {
    sleep(m, parker, parker.begin(m, || c.has_news(m, m)));
}

/// Both sides park whenever they must wait; with `awake`, each goes back to
/// `AWAKE` after every message it handled (if its barrier works).
fn parking_model(size: usize, messages: &'static [&'static [u8]], awake: bool, fails: [bool; 2]) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(move || {
        let m = Arc::new(Model::new(size, fails));
        let mp = m.clone();
        let producer = loom::thread::spawn(move || {
            let parker = Parker::new(Side::Sender);
            let mut p = Producer::new(size);
            let mut pos = 0;
            for msg in messages {
                loop {
                    match p.try_reserve(&*mp, &*mp, msg.len()) {
                        Ok(off) => {
                            pos = put(&mut p, &mp, pos, off, msg);
                            break;
                        }
                        Err(NoRoom::Full) => producer_park(&parker, &p, &mp, msg.len()),
                        Err(NoRoom::Corrupt(c)) => panic!("{c}"),
                    }
                }
                if awake {
                    parker.done(&*mp, true);
                }
            }
            p.close(&*mp, CLOSED);
        });
        let parker = Parker::new(Side::Receiver);
        let mut c = Consumer::new(size);
        let mut got = Vec::new();
        loop {
            match c.try_peek(&*m, &*m).unwrap_or_else(|c| panic!("{c}")) {
                Peek::Message { off, len } => {
                    let mut buf = vec![0; len];
                    m.read(off, &mut buf);
                    c.release(&*m, len);
                    got.push(buf);
                    if awake {
                        parker.done(&*m, true);
                    }
                }
                Peek::Empty => consumer_park(&parker, &c, &m),
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
    parking_model(32, &[b"ab", b"cdefg"], false, [false; 2]);
}

/// Sides that go back to `AWAKE` after every message, so the peer publishes
/// without a fence, and each park starts with the heavy barrier.
#[test]
fn parking_after_the_fast_path_never_loses_a_wake_up() {
    parking_model(32, &[b"ab", b"cdefg"], true, [false; 2]);
}

/// A side whose heavy barrier fails: it naps instead of sleeping from then
/// on, never goes back to `AWAKE`, and no wake-up is lost, whichever side
/// it is.
#[test]
fn a_failed_heavy_barrier_of_the_sender_never_loses_a_wake_up() {
    parking_model(32, &[b"ab", b"cdefg"], true, [true, false]);
}

/// As above, for the receiver.
#[test]
fn a_failed_heavy_barrier_of_the_receiver_never_loses_a_wake_up() {
    parking_model(32, &[b"ab", b"cdefg"], true, [false, true]);
}
