//! Refusals of bad input by the engine, checked by variant.

use shm::SegmentId;

use crate::error::{CapacityError, NameError, OpError, OpenError, StateError};
use crate::{Config, CurrencyId, Exchange, Order, State};

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
