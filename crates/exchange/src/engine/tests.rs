//! Refusals of bad input by the engine, checked by variant.

use shm::SegmentId;

use crate::error::{CapacityError, NameError, OpError, OpenError, StateError};
use crate::{Config, CurrencyId, Exchange, Op, Order, State};

/// Removes its segment when dropped, also when the test fails.
struct Guard(SegmentId);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = shm::Segment::remove(&self.0);
    }
}

fn guard(tag: &str) -> Guard {
    Guard(SegmentId::Posix(format!(
        "shmex-utest-{tag}-{}",
        std::process::id()
    )))
}

fn builtin() -> State {
    Config::builtin().0.into_state().unwrap()
}

#[test]
fn input_checks_name_what_is_wrong() {
    let g = guard("checks");
    let ex = Exchange::create(&g.0, &builtin(), &[], 0o600).unwrap();
    let e = ex.engine();
    let dollar = e.currency("DOLLAR").unwrap();
    let home = || Err(OpError::HomeCurrency { code: "TRY".into() });
    assert_eq!(e.check_order(Order::Buy, CurrencyId::HOME), home());
    assert_eq!(e.check_order(Order::Sell, CurrencyId::HOME), home());
    assert_eq!(e.check_foreign(CurrencyId::HOME), home());
    assert_eq!(e.check_order(Order::Deposit, CurrencyId::HOME), Ok(()));
    assert_eq!(e.check_order(Order::Buy, dollar), Ok(()));
    assert_eq!(e.check_foreign(dollar), Ok(()));
    let far = CurrencyId::from_index(99);
    assert_eq!(e.check_order(Order::Withdraw, far), Err(OpError::BadId(99)));
    assert_eq!(e.check_foreign(far), Err(OpError::BadId(99)));
    // The operations refuse as the checks do.
    let (alice, _) = e.open_account("alice").unwrap();
    assert_eq!(e.buy(alice, CurrencyId::HOME, 100).map(drop), home());
    let bad = e.open_account("no spaces").unwrap_err();
    assert_eq!(
        bad,
        OpError::BadName(NameError {
            name: "no spaces".into()
        })
    );
    assert!(bad.is_bad_input());
    assert!(
        bad.to_string()
            .starts_with("invalid account name \"no spaces\"")
    );
}

#[test]
fn create_refuses_an_unfit_state() {
    let g = guard("unfit");
    let mut s = builtin();
    s.capacity.accounts = 0;
    let r = Exchange::create(&g.0, &s, &[], 0o600);
    assert!(
        matches!(
            r,
            Err(OpenError::Invalid(StateError::Capacity(
                CapacityError::Accounts(0)
            )))
        ),
        "{r:?}"
    );
    let mut s = builtin();
    s.currencies[1].holding = -1;
    let r = Exchange::create(&g.0, &s, &[], 0o600);
    assert!(
        matches!(&r, Err(OpenError::Invalid(StateError::Books(v))) if !v.is_empty()),
        "{r:?}"
    );
}

#[test]
fn accounts_open_explicitly_and_close_at_zero() {
    let g = guard("close");
    let ex = Exchange::create(&g.0, &builtin(), &[], 0o600).unwrap();
    let e = ex.engine();
    let dollar = e.currency("DOLLAR").unwrap();
    let (alice, _) = e.open_account("alice").unwrap();
    let before = e.state().unwrap();
    // An order never opens an account; a near name is suggested.
    let typo = e
        .order_as("alcie", Order::Withdraw, CurrencyId::HOME, 100)
        .unwrap_err();
    assert_eq!(
        typo,
        OpError::UnknownAccount {
            name: "alcie".into(),
            suggestion: Some("alice".into())
        }
    );
    assert_eq!(typo.code(), "unknown_account");
    assert!(!typo.is_bad_input());
    assert!(typo.to_string().contains("did you mean alice?"), "{typo}");
    let far = e.lookup_account("zed").unwrap_err();
    assert_eq!(
        far,
        OpError::UnknownAccount {
            name: "zed".into(),
            suggestion: None
        }
    );
    assert_eq!(e.state().unwrap(), before);
    // Closing needs zero balances.
    let full = e.close_account("alice").unwrap_err();
    assert!(
        matches!(&full, OpError::AccountNotEmpty { holdings, .. } if holdings == "1000.00 TRY"),
        "{full:?}"
    );
    assert_eq!(e.state().unwrap(), before);
    e.withdraw(alice, CurrencyId::HOME, 100_000).unwrap();
    let r = e.close_account("alice").unwrap();
    assert_eq!(r.op, Op::Close);
    assert!(!e.is_open(alice));
    assert!(e.state().unwrap().accounts.is_empty());
    assert_eq!(e.info().accounts, 0);
    assert_eq!(e.info().slots, 1);
    assert!(e.check().unwrap().is_empty());
    // A process that looked the account up before the close is refused.
    assert_eq!(
        e.buy(alice, dollar, 1),
        Err(OpError::AccountClosed {
            name: "alice".into()
        })
    );
    assert_eq!(
        e.deposit(alice, CurrencyId::HOME, 1).unwrap_err().code(),
        "account_closed"
    );
    // Its slot is closed, not damaged: reading it says so too.
    assert_eq!(e.balances(alice).unwrap_err().code(), "account_closed");
    let j = e.journal(Some(1)).unwrap();
    assert_eq!((j[0].op, j[0].account.as_str()), (Op::Close, "alice"));
    // The name is free again: a new account, in a new slot.
    let (again, opened) = e.open_account("alice").unwrap();
    assert!(opened.is_some());
    assert_ne!(again, alice);
    assert_eq!(e.info().slots, 2);
    assert!(e.check().unwrap().is_empty());
}

#[test]
fn check_flags_a_closed_account_that_holds_money() {
    let g = guard("closed-check");
    let ex = Exchange::create(&g.0, &builtin(), &[], 0o600).unwrap();
    let e = ex.engine();
    let (bob, _) = e.open_account("bob").unwrap();
    e.withdraw(bob, CurrencyId::HOME, 100_000).unwrap();
    e.close_account("bob").unwrap();
    assert!(e.check().unwrap().is_empty());
    // Only a damaged segment can do this: money in a closed slot.
    e.balances[bob.index() * e.slots + 1].store(5, std::sync::atomic::Ordering::Relaxed);
    let v = e.check().unwrap();
    assert!(
        v.iter()
            .any(|l| l == "closed account bob (slot 0) holds 0.05 DOLLAR"),
        "{v:?}"
    );
}

/// Group commit with the ring guard, threads standing in for processes
/// (the locks know threads apart): every acknowledged record is on disk,
/// and the books rebuilt from the disk are the segment's. The ring of 16
/// records makes writers wait for the disk.
#[test]
fn group_commit_makes_every_acknowledged_record_durable() {
    use crate::disk::{self, HEADER_LEN, Identity, JournalDir};
    let g = guard("durable");
    let tmp = tempfile::tempdir().unwrap();
    let mut state = builtin();
    state.capacity.journal = 16;
    let identity = Identity {
        exchange_id: 7,
        segment: g.0.clone(),
        created_ns: 0,
        capacity: state.capacity,
        mode: 0o600,
        opening: state.opening,
    };
    let dir = JournalDir::create(&tmp.path().join("j"), &identity, false).unwrap();
    dir.write_checkpoint(&state, 0).unwrap();
    dir.create_journal(1, 0).unwrap();
    let init = crate::JournalInit {
        dir: dir.path().to_path_buf(),
        exchange_id: 7,
        durable_seq: 0,
        disk_file: 1,
        disk_offset: HEADER_LEN,
        checkpoint_seq: 0,
    };
    let ex = Exchange::create_durable(&g.0, &state, &[], 0o600, Some(&init)).unwrap();
    assert_eq!(ex.journal_dir().as_deref(), Some(dir.path()));
    std::thread::scope(|s| {
        for t in 0..4 {
            let ex = &ex;
            s.spawn(move || {
                let e = ex.engine();
                let (a, r) = e.open_account(&format!("t{t}")).unwrap();
                e.wait_durable(r.unwrap().seq).unwrap();
                let dollar = e.currency("DOLLAR").unwrap();
                for i in 0..50 {
                    let r = if i % 2 == 0 {
                        e.buy(a, dollar, 100)
                    } else {
                        e.sell(a, dollar, 100)
                    }
                    .unwrap();
                    e.wait_durable(r.seq).unwrap();
                    assert!(e.durable_seq() >= r.seq);
                }
            });
        }
    });
    let e = ex.engine();
    assert_eq!(e.durable_seq(), 204);
    assert!(e.flushes() <= 204, "no more flushes than records");
    let rebuilt = disk::rebuild(&dir, false).unwrap();
    assert_eq!(
        rebuilt.state,
        e.state().unwrap(),
        "the disk holds the books"
    );
    assert_eq!(rebuilt.replayed, 204);
    assert_eq!(e.checkpoint().unwrap(), Some(204));
    assert_eq!(dir.checkpoints().unwrap(), [0, 204]);
}
