//! Tests of the parent module.

use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use shm::SegmentId;

use super::*;
use crate::disk::record::Name;
use crate::disk::testutil::{identity, tempdir, write_records};
use crate::types::{CurrencyId, Order};
use crate::{Config, Exchange, Receipt};

/// An exchange segment, removed when dropped.
struct Segment(Exchange);

impl Drop for Segment {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

fn segment(state: &State) -> Segment {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "shmex-test-replay-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let id = SegmentId::posix(name).unwrap();
    Segment(Exchange::create(&id, state, &[], 0o600).unwrap())
}

/// An operation for the engine; refused ones are skipped.
#[derive(Clone, Debug)]
enum Step {
    Open(usize),
    /// Withdraw everything the account holds, then close it.
    Close(usize),
    Order(Order, usize, usize, i64),
    SetRate(usize, i64, i64),
}

fn step() -> impl Strategy<Value = Step> {
    let order = prop::sample::select(vec![
        Order::Buy,
        Order::Sell,
        Order::Deposit,
        Order::Withdraw,
    ]);
    prop_oneof![
        (0..4usize).prop_map(Step::Open),
        (0..4usize).prop_map(Step::Close),
        (order, 0..4usize, 0..5usize, 1..300_000i64)
            .prop_map(|(o, a, c, n)| Step::Order(o, a, c, n)),
        (1..5usize, 1..40_000_000i64, 0..3_000_000i64).prop_map(|(c, b, s)| Step::SetRate(
            c,
            b,
            b + s
        )),
    ]
}

/// Runs `steps` on a real exchange: the books before and after every
/// operation done (`states[i]` after `i` records), and their records.
fn run(steps: &[Step], exchange_id: u64) -> (Vec<State>, Vec<DiskRecord>) {
    let (c, _) = Config::builtin();
    let genesis = c.into_state().unwrap();
    let seg = segment(&genesis);
    let e = seg.0.engine();
    let mut states = vec![e.state().unwrap()];
    let mut records = Vec::new();
    let name = |a: usize| format!("acct{a}");
    let mut done_ops = |account: Option<String>, ci: usize, receipt: Receipt| {
        let state = e.state().unwrap();
        let entry = e.journal(Some(1)).unwrap().pop().unwrap();
        assert_eq!(entry.seq, receipt.seq);
        let balances = account
            .filter(|_| receipt.op != Op::Close)
            .and_then(|a| Balances::of(&state, &a, ci));
        records.push(DiskRecord::from_entry(&entry, &state, exchange_id, balances).unwrap());
        states.push(state);
    };
    for s in steps {
        let (account, ci, done) = match *s {
            Step::Close(a) => {
                let Some(id) = e.account(&name(a)).unwrap() else {
                    continue;
                };
                for (c, b) in e.balances(id).unwrap().into_iter().enumerate() {
                    if b > 0 {
                        let r = e.withdraw(id, CurrencyId::from_index(c), b).unwrap();
                        done_ops(Some(name(a)), c, r);
                    }
                }
                (Some(name(a)), 0, e.close_account(&name(a)).map(Some))
            }
            Step::Open(a) => (Some(name(a)), 0, e.open_account(&name(a)).map(|(_, r)| r)),
            Step::SetRate(c, b, s) => (
                None,
                c,
                e.set_rate(CurrencyId::from_index(c), b, s).map(Some),
            ),
            Step::Order(o, a, c, n) => {
                let Some(id) = e.account(&name(a)).unwrap() else {
                    continue;
                };
                let r = e.order(o, id, CurrencyId::from_index(c), n);
                (Some(name(a)), c, r.map(Some))
            }
        };
        let Ok(Some(receipt)) = done else {
            continue;
        };
        done_ops(account, ci, receipt);
    }
    (states, records)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn replay_from_any_checkpoint_gives_the_same_books(
        steps in prop::collection::vec(step(), 1..60),
        at in any::<prop::sample::Index>(),
        batch in 1..6usize,
        rotate in 200..3000u64,
        exchange_id in any::<u64>(),
    ) {
        let (states, records) = run(&steps, exchange_id);
        let last = states.last().unwrap();
        prop_assert!(last.check().is_empty(), "{:?}", last.check());
        let k = at.index(states.len());
        // In memory.
        let mut s = states[k].clone();
        for r in &records[k..] {
            apply(&mut s, r).unwrap();
        }
        prop_assert_eq!(&s, last);
        // On disk: the genesis and a checkpoint at `k`, the journal in
        // batches and files.
        let t = tempdir();
        let d = JournalDir::create(&t.path().join("j"), &identity(exchange_id), false).unwrap();
        d.write_checkpoint(&states[0], 1).unwrap();
        d.write_checkpoint(&states[k], 2).unwrap();
        if records.is_empty() {
            d.create_journal(1, 0).unwrap();
        }
        write_records(&d, &records, batch, rotate);
        let r = rebuild(&d, false).unwrap();
        prop_assert_eq!(&r.state, last);
        prop_assert!(r.state.check().is_empty());
        prop_assert_eq!(r.checkpoint, k as u64);
        prop_assert_eq!(r.replayed, (records.len() - k) as u64);
        prop_assert_eq!(r.tail.unwrap().next_seq, records.len() as u64 + 1);
        prop_assert!(r.torn.is_none() && r.corrupt.is_none());
    }
}

/// The books after opening alice (seq 1) and her buying 3.00 DOLLAR
/// (seq 2), and those two records.
fn sample() -> (State, State, [DiskRecord; 2]) {
    let (c, _) = Config::builtin();
    let genesis = c.into_state().unwrap();
    let steps = [Step::Open(0), Step::Order(Order::Buy, 0, 1, 300)];
    let (states, records) = run(&steps, 9);
    assert_eq!(states[0], genesis);
    (genesis, states[2].clone(), [records[0], records[1]])
}

fn refused(state: &State, r: &DiskRecord) -> ReplayError {
    let mut s = state.clone();
    let e = apply(&mut s, r).unwrap_err();
    assert_eq!(&s, state, "a refused record changed the books");
    e
}

#[test]
fn records_that_do_not_fit_the_books_are_refused() {
    let (genesis, after, [open, buy]) = sample();
    let mut opened = genesis.clone();
    apply(&mut opened, &open).unwrap();
    let mut s = opened.clone();
    apply(&mut s, &buy).unwrap();
    assert_eq!(s, after);

    assert_eq!(
        refused(&genesis, &buy),
        ReplayError::Sequence {
            expected: 1,
            found: 2
        }
    );
    let mut r = buy;
    r.balances = Some(Balances { home: 1, code: 300 });
    let e = refused(&opened, &r);
    assert!(
        matches!(
            e,
            ReplayError::Mismatch {
                what: "home balance after",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "record 2: the recorded home balance after is 0.01, the books say 958.84"
    );
    let mut r = buy;
    r.rate += 1;
    assert!(matches!(
        refused(&opened, &r),
        ReplayError::Mismatch {
            what: "sell rate",
            ..
        }
    ));
    let mut r = buy;
    r.account = Name::new("bob").unwrap();
    assert!(matches!(
        refused(&opened, &r),
        ReplayError::UnknownAccount { .. }
    ));
    let mut r = buy;
    r.code = crate::types::Code::new("YEN").unwrap();
    assert!(matches!(
        refused(&opened, &r),
        ReplayError::UnknownCurrency { .. }
    ));
    let mut r = buy;
    r.decimals = 3;
    assert!(matches!(
        refused(&opened, &r),
        ReplayError::Mismatch {
            what: "decimals",
            ..
        }
    ));
    let mut r = buy;
    r.amount = 1_000_000_000;
    assert!(
        matches!(refused(&opened, &r), ReplayError::Negative { what, .. } if what.contains("stock of DOLLAR"))
    );
    let mut r = buy;
    r.total = 200_000;
    let e = refused(&opened, &r);
    assert!(
        matches!(&e, ReplayError::Negative { what, .. } if what.contains("home balance of acct0")),
        "{e}"
    );
    let mut r = buy;
    r.amount = 0;
    assert!(matches!(
        refused(&opened, &r),
        ReplayError::NotPositive { .. }
    ));
    let mut r = buy;
    r.code = genesis.currencies[0].code;
    r.decimals = 2;
    assert!(matches!(
        refused(&opened, &r),
        ReplayError::Currency { op: Op::Buy, .. }
    ));
    // Open: once, within capacity, with the opening balance.
    let mut again = open;
    again.seq = 2;
    assert!(matches!(
        refused(&opened, &again),
        ReplayError::AccountExists { .. }
    ));
    let mut full = genesis.clone();
    full.capacity.accounts = 0;
    assert!(matches!(
        refused(&full, &open),
        ReplayError::AccountsFull { .. }
    ));
    let mut r = open;
    r.amount = 5;
    assert!(matches!(
        refused(&genesis, &r),
        ReplayError::Mismatch {
            what: "opening amount",
            ..
        }
    ));
    // Deposits and withdrawals.
    let cash = |op, amount, home, code| DiskRecord {
        op,
        seq: 2,
        amount,
        total: amount,
        rate: 0,
        balances: Some(Balances { home, code }),
        ..buy
    };
    let mut s = opened.clone();
    apply(&mut s, &cash(Op::Deposit, 500, 100_000, 500)).unwrap();
    assert_eq!(s.accounts[0].balances[1], 500);
    assert_eq!(s.currencies[1].deposits, 500);
    assert!(s.check().is_empty());
    assert!(matches!(
        refused(&opened, &cash(Op::Withdraw, 1, 100_000, 0)),
        ReplayError::Negative { .. }
    ));
    let mut r = cash(Op::Deposit, 500, 100_000, 500);
    r.total = 499;
    assert!(matches!(
        refused(&opened, &r),
        ReplayError::Mismatch { what: "total", .. }
    ));
    // Set-rate: foreign, 0 < buy <= sell.
    let rate = |buy_rate, rate| DiskRecord {
        op: Op::SetRate,
        seq: 2,
        account: Name::EMPTY,
        amount: 0,
        total: 0,
        rate,
        buy_rate,
        balances: None,
        ..buy
    };
    let mut s = opened.clone();
    apply(&mut s, &rate(13_000_000, 14_000_000)).unwrap();
    assert_eq!(
        (s.currencies[1].buy, s.currencies[1].sell),
        (13_000_000, 14_000_000)
    );
    assert!(matches!(
        refused(&opened, &rate(15_000_000, 14_000_000)),
        ReplayError::Mismatch { .. }
    ));
    assert!(matches!(
        refused(&opened, &rate(0, 14_000_000)),
        ReplayError::NotPositive { .. }
    ));
}

#[test]
fn a_rollback_changes_nothing_but_the_sequence() {
    let (_, after, [_, buy]) = sample();
    let mut r = buy;
    r.seq = 3;
    r.op = Op::Rollback;
    r.undone = Some(Op::Buy);
    r.undone_seq = 3;
    r.undone_pid = 77;
    r.balances = None;
    let mut s = after.clone();
    apply(&mut s, &r).unwrap();
    assert_eq!(s.next_seq, 4);
    s.next_seq = 3;
    assert_eq!(s, after);
}

#[test]
fn rebuild_reports_torn_tails_and_refuses_corruption() {
    let (genesis, _, [open, buy]) = sample();
    let mut more = vec![open, buy];
    for seq in 3..=8 {
        let mut r = buy;
        r.seq = seq;
        r.balances = Some(Balances {
            home: 95_884 - 4_116 * (seq as i64 - 2),
            code: 300 * (seq as i64 - 1),
        });
        more.push(r);
    }
    let t = tempdir();
    let d = JournalDir::create(&t.path().join("j"), &identity(9), false).unwrap();
    d.write_checkpoint(&genesis, 1).unwrap();
    write_records(&d, &more, 2, u64::MAX);
    let r = rebuild(&d, false).unwrap();
    assert_eq!((r.replayed, r.state.next_seq), (8, 9));
    assert!(r.state.check().is_empty());
    let file = d.file_path(&crate::disk::file::file_name(1));
    let full = std::fs::read(&file).unwrap();
    // Torn: reported, not cut.
    std::fs::write(&file, &full[..full.len() - 3]).unwrap();
    let r = rebuild(&d, false).unwrap();
    assert_eq!(r.replayed, 7);
    let torn = r.torn.unwrap();
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        full.len() as u64 - 3
    );
    assert_eq!(r.tail.unwrap().offset, torn.offset);
    // Corrupt in the middle: refused, or the prefix kept on request.
    std::fs::write(&file, &full).unwrap();
    let bad_at = offset_of(&more, 3);
    let mut b = full.clone();
    b[bad_at as usize + 50] ^= 1;
    std::fs::write(&file, &b).unwrap();
    let e = rebuild(&d, false).unwrap_err();
    assert!(
        matches!(e, DiskError::Corrupt { offset, .. } if offset == bad_at),
        "{e}"
    );
    let r = rebuild(&d, true).unwrap();
    assert_eq!(r.replayed, 3);
    let c = r.corrupt.unwrap();
    assert_eq!((c.file, c.offset), (1, bad_at));
    assert_eq!(r.tail.unwrap().offset, bad_at);
    // A record that does not fit the books: its place is named.
    let mut wrong = more.clone();
    wrong[4].balances = Some(Balances { home: 1, code: 1 });
    std::fs::remove_file(&file).unwrap();
    write_records(&d, &wrong, 3, u64::MAX);
    let e = rebuild(&d, false).unwrap_err();
    let at = offset_of(&wrong, 4);
    assert!(
        matches!(&e, DiskError::Replay { offset, .. } if *offset == at),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("at offset {at}: record 5:")),
        "{e}"
    );
    let r = rebuild(&d, true).unwrap();
    assert_eq!((r.replayed, r.corrupt.unwrap().offset), (4, at));
    // A checkpoint ahead of the journal, and a journal that starts late.
    std::fs::remove_file(&file).unwrap();
    write_records(&d, &more[..3], 3, u64::MAX);
    let mut s = genesis.clone();
    for r in &more[..5] {
        apply(&mut s, r).unwrap();
    }
    d.write_checkpoint(&s, 2).unwrap();
    assert!(matches!(
        rebuild(&d, false),
        Err(DiskError::Behind {
            last: 3,
            checkpoint: 5,
            ..
        })
    ));
    std::fs::remove_file(&file).unwrap();
    write_records(&d, &more[6..], 3, u64::MAX);
    assert!(matches!(
        rebuild(&d, false),
        Err(DiskError::Gap {
            expected: 6,
            found: 7,
            ..
        })
    ));
}

/// Where record `i` of `records` starts in one file.
fn offset_of(records: &[DiskRecord], i: usize) -> u64 {
    crate::disk::HEADER_LEN
        + records[..i]
            .iter()
            .map(|r| r.frame_len() as u64)
            .sum::<u64>()
}
