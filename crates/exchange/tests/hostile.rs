//! What the engine reads from its segment is checked before use: this test
//! writes into the segment as a peer may (through a second mapping), and
//! each operation then reports corruption naming the exchange, or `check`
//! reports the damage; nothing panics, nothing is applied half.
//!
//! Offsets are those of format 4, for the capacities below (the layout's
//! unit test `offsets_the_hostile_tests_write_to` pins the head's).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::{Backend, create};
use exchange::{Capacity, CurrencyId, Exchange, OpError, OpenError};
use shm::header::HEADER_SIZE;
use shm::{Access, Segment};

const CAPACITY: Capacity = Capacity {
    currencies: 8,
    accounts: 4,
    journal: 8,
};

/// Payload offsets, for [`CAPACITY`].
const NAMESPACES: usize = 32;
const COMMITTED_SEQ: usize = 88;
const N_ACCOUNTS: usize = 80;
const UNDO_ACTIVE: usize = 152;
const UNDO_SEQ: usize = 160;
const UNDO_COUNT: usize = 168;
const UNDO_FIELDS: usize = 176;
const UNDO_OLDS: usize = 224;
const UNDO_PENDING_META: usize = 288;
const ROWS: usize = 768;
const HOLDING: usize = 32;
const NAMES: usize = 1280;
const JOURNAL: usize = 1728;
const RECORD: usize = 112;
const RECORD_META: usize = 16;

struct Peer(Segment);

impl Peer {
    fn attach(ex: &Exchange) -> Peer {
        Peer(Segment::open(ex.id(), Access::ReadWrite).expect("a second mapping"))
    }

    fn put(&self, off: usize, v: u64) {
        let w: &AtomicU64 = self.0.view(HEADER_SIZE + off).expect("a word");
        w.store(v, Ordering::SeqCst);
    }

    fn get(&self, off: usize) -> u64 {
        let w: &AtomicU64 = self.0.view(HEADER_SIZE + off).expect("a word");
        w.load(Ordering::SeqCst)
    }
}

#[track_caller]
fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, OpError>, ex: &Exchange, needle: &str) {
    match r {
        Err(OpError::Corrupt { what, reason }) => {
            assert_eq!(what, ex.id().to_string());
            assert!(reason.contains(needle), "{reason:?} lacks {needle:?}");
            let e = OpError::Corrupt { what, reason };
            assert!(!e.is_bad_input() && e.is_fatal());
            assert!(e.to_string().contains("is corrupted"), "{e}");
        }
        other => panic!("expected corruption ({needle}), got {other:?}"),
    }
}

fn for_both(f: fn(Backend)) {
    f(Backend::Posix);
    f(Backend::SysV);
}

/// An undo record no operation could have written is not applied: it is
/// reported once, discarded, and the exchange works on.
#[test]
fn an_impossible_undo_record_is_discarded_and_reported() {
    for_both(|b| {
        let (_g, ex) = create(b, "h-undo", CAPACITY);
        let e = ex.engine();
        let (alice, _) = e.open_account("alice").unwrap();
        let dollar = e.currency("DOLLAR").unwrap();
        let peer = Peer::attach(&ex);
        let before = e.state().unwrap();
        let next = peer.get(COMMITTED_SEQ) + 1;
        let meta = peer.get(UNDO_PENDING_META);
        // A slot's name length (field kind 8) takes only a name's length,
        // closed or not, and only for a slot within the capacity (4).
        let closed_len = (1 << 63) | 5;
        for (count, field, old, seq, pending, needle) in [
            (1000, 0, 0, next, meta, "fields"),
            (1, (2 << 56) | 1_000_000, 0, next, meta, "names no cell"),
            (1, 9 << 56, 0, next, meta, "names no cell"),
            (1, (8 << 56) | 4, 5, next, meta, "names no cell"),
            (1, 8 << 56, 0, next, meta, "no name length"),
            (1, 8 << 56, 33, next, meta, "no name length"),
            (1, 8 << 56, closed_len | 64, next, meta, "no name length"),
            (0, 0, 0, next, 0, "names no operation"),
            (0, 0, 0, next, meta | (77 << 8), "names no operation"),
            (0, 0, 0, next + 5, meta, "sequence number"),
        ] {
            peer.put(UNDO_COUNT, count);
            peer.put(UNDO_FIELDS, field);
            peer.put(UNDO_OLDS, old);
            peer.put(UNDO_SEQ, seq);
            peer.put(UNDO_PENDING_META, pending);
            peer.put(UNDO_ACTIVE, 1);
            assert_corrupt(e.buy(alice, dollar, 100), &ex, needle);
            assert_eq!(peer.get(UNDO_ACTIVE), 0, "discarded");
            assert_eq!(e.state().unwrap(), before, "nothing was rolled back");
        }
        e.buy(alice, dollar, 100).unwrap();
        assert!(e.check().unwrap().is_empty());
    });
}

/// A journal record that names no operation, a currency the exchange
/// lacks, or a malformed account is reported, not printed or skipped.
#[test]
fn an_impossible_journal_record_is_reported() {
    for_both(|b| {
        let (_g, ex) = create(b, "h-journal", CAPACITY);
        let e = ex.engine();
        let (alice, _) = e.open_account("alice").unwrap();
        let r = e.buy(alice, e.currency("DOLLAR").unwrap(), 100).unwrap();
        let peer = Peer::attach(&ex);
        let meta = JOURNAL + (r.seq as usize % CAPACITY.journal) * RECORD + RECORD_META;
        let good = peer.get(meta);
        for bad in [0, good | 0xff, good | (99 << 8), good | (0xee << 16)] {
            peer.put(meta, bad);
            assert_corrupt(e.journal(None), &ex, &format!("journal record {}", r.seq));
        }
        peer.put(meta, good);
        // The name: a control character.
        let name = meta - RECORD_META + 64;
        let word = peer.get(name);
        peer.put(name, (word & !0xff) | 0x0a);
        assert_corrupt(e.journal(Some(1)), &ex, "account name");
        peer.put(name, word);
        assert_eq!(e.journal(Some(1)).unwrap()[0].seq, r.seq);
    });
}

/// Counts, names and books out of range: every reader and writer reports
/// corruption, or `check` reports the damage.
#[test]
fn damaged_counts_names_and_books_are_reported() {
    for_both(|b| {
        let (_g, ex) = create(b, "h-books", CAPACITY);
        let e = ex.engine();
        let (alice, _) = e.open_account("alice").unwrap();
        let dollar = e.currency("DOLLAR").unwrap();
        let peer = Peer::attach(&ex);
        for bad in [u64::MAX, 5, 1 << 63] {
            peer.put(N_ACCOUNTS, bad);
            assert_corrupt(e.state(), &ex, "account slots in use");
            assert_corrupt(e.buy(alice, dollar, 1), &ex, "account slots in use");
            assert_corrupt(e.account("alice"), &ex, "account slots in use");
        }
        // Fewer accounts than the one we hold an id of.
        peer.put(N_ACCOUNTS, 0);
        assert_corrupt(e.deposit(alice, CurrencyId::HOME, 1), &ex, "account 0");
        assert_corrupt(e.balances(alice), &ex, "account 0");
        peer.put(N_ACCOUNTS, 1);
        // A name no account can have.
        let name = peer.get(NAMES + 8);
        peer.put(NAMES + 8, name | 0x1b);
        assert_corrupt(e.state(), &ex, "malformed name");
        assert_eq!(e.account_name(alice), "?");
        peer.put(NAMES + 8, name);
        // A negative stock: trades refuse, and `check` says so.
        let stock = ROWS + 64 + HOLDING;
        let good = peer.get(stock);
        peer.put(stock, (-5i64) as u64);
        assert_corrupt(e.buy(alice, dollar, 1), &ex, "stock of DOLLAR");
        let v = e.check().unwrap();
        assert!(v.iter().any(|l| l.contains("negative")), "{v:?}");
        peer.put(stock, good);
        assert!(e.check().unwrap().is_empty());
        e.buy(alice, dollar, 1).unwrap();
    });
}

/// An exchange made in another pid namespace is refused: the thread ids
/// its lock records mean other threads here.
#[test]
fn an_exchange_from_another_namespace_is_refused() {
    for_both(|b| {
        let (_g, ex) = create(b, "h-ns", CAPACITY);
        let peer = Peer::attach(&ex);
        let ns = peer.get(NAMESPACES);
        assert_eq!(ns, shm::sync::namespaces()[0]);
        peer.put(NAMESPACES, ns ^ 1);
        let r = Exchange::open(ex.id());
        assert!(
            matches!(r, Err(OpenError::ForeignNamespace { which: "pid", .. })),
            "{r:?}"
        );
        peer.put(NAMESPACES, ns);
        Exchange::open(ex.id()).unwrap();
    });
}
