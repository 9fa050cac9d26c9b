//! Property tests of the engine on real shared-memory segments (POSIX and
//! System V): any sequence of operations keeps conservation and
//! non-negativity, moves money exactly as a simple model says, journals
//! every change with consecutive sequence numbers, and a refused operation
//! changes nothing at all.

mod common;

use common::{Backend, create};
use exchange::money::{Round, convert};
use exchange::{Capacity, CurrencyId, Op, OpError, Order, State};
use proptest::prelude::*;

const NAMES: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

#[derive(Clone, Debug)]
enum Action {
    Open(usize),
    Buy(usize, usize, i64),
    Sell(usize, usize, i64),
    Deposit(usize, usize, i64),
    Withdraw(usize, usize, i64),
    SetRate(usize, i64, i64),
}

fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        12 => 1i64..3_000,
        2 => 1i64..5_000_000,
        1 => Just(0i64),
        1 => any::<i64>(),
        1 => (i64::MAX - 1000)..=i64::MAX,
    ]
}

fn rate() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 1i64..100_000_000,
        1 => Just(0i64),
        1 => any::<i64>(),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    let who = 0..NAMES.len();
    // 5 currencies: index 5 does not exist.
    let cur = prop_oneof![12 => 0usize..5, 1 => Just(5usize)];
    prop_oneof![
        1 => who.clone().prop_map(Action::Open),
        5 => (who.clone(), cur.clone(), amount()).prop_map(|(a, c, x)| Action::Buy(a, c, x)),
        5 => (who.clone(), cur.clone(), amount()).prop_map(|(a, c, x)| Action::Sell(a, c, x)),
        3 => (who.clone(), cur.clone(), amount()).prop_map(|(a, c, x)| Action::Deposit(a, c, x)),
        2 => (who, cur.clone(), amount()).prop_map(|(a, c, x)| Action::Withdraw(a, c, x)),
        1 => (cur, rate(), rate()).prop_map(|(c, b, s)| Action::SetRate(c, b, s)),
    ]
}

/// What the operation should do to the books, computed independently on a
/// plain copy; `None` if it must be refused.
fn model(s: &State, a: usize, c: usize, act: &Action) -> Option<State> {
    let mut s = s.clone();
    let n = s.currencies.len();
    if c >= n {
        return None;
    }
    let hd = s.currencies[0].decimals;
    let d = s.currencies[c].decimals;
    match *act {
        Action::Buy(_, _, x) => {
            if c == 0 || x <= 0 || s.currencies[c].holding < x {
                return None;
            }
            let price = convert(x, d, s.currencies[c].sell, hd, Round::Up).ok()?;
            let acc = &mut s.accounts[a].balances;
            if acc[0] < price {
                return None;
            }
            let till = s.currencies[0].holding.checked_add(price)?;
            let held = acc[c].checked_add(x)?;
            acc[0] -= price;
            acc[c] = held;
            s.currencies[0].holding = till;
            s.currencies[c].holding -= x;
        }
        Action::Sell(_, _, x) => {
            if c == 0 || x <= 0 || s.accounts[a].balances[c] < x {
                return None;
            }
            let proceeds = convert(x, d, s.currencies[c].buy, hd, Round::Down).ok()?;
            if s.currencies[0].holding < proceeds {
                return None;
            }
            let stock = s.currencies[c].holding.checked_add(x)?;
            let home = s.accounts[a].balances[0].checked_add(proceeds)?;
            s.accounts[a].balances[c] -= x;
            s.accounts[a].balances[0] = home;
            s.currencies[c].holding = stock;
            s.currencies[0].holding -= proceeds;
        }
        Action::Deposit(_, _, x) => {
            if x <= 0 {
                return None;
            }
            let b = s.accounts[a].balances[c].checked_add(x)?;
            let t = s.currencies[c].deposits.checked_add(x)?;
            s.accounts[a].balances[c] = b;
            s.currencies[c].deposits = t;
        }
        Action::Withdraw(_, _, x) => {
            if x <= 0 || s.accounts[a].balances[c] < x {
                return None;
            }
            let t = s.currencies[c].withdrawals.checked_add(x)?;
            s.accounts[a].balances[c] -= x;
            s.currencies[c].withdrawals = t;
        }
        Action::SetRate(_, b, sl) => {
            let max = exchange::money::MAX_RATE_UNITS * exchange::money::RATE_ONE;
            if c == 0 || b <= 0 || sl <= 0 || b > sl || sl > max {
                return None;
            }
            s.currencies[c].buy = b;
            s.currencies[c].sell = sl;
        }
        Action::Open(_) => unreachable!(),
    }
    s.next_seq += 1;
    Some(s)
}

/// `before` with account `name` just opened, as the engine opens one; `None`
/// if there is no room for it.
fn with_new_account(before: &State, name: &str, room: usize) -> Option<State> {
    if before.accounts.len() >= room {
        return None;
    }
    let mut s = before.clone();
    let mut b = vec![0; s.currencies.len()];
    b[0] = s.opening;
    s.accounts.push(exchange::AccountState {
        name: name.into(),
        balances: b,
    });
    s.currencies[0].deposits = s.currencies[0].deposits.checked_add(s.opening)?;
    s.next_seq += 1;
    Some(s)
}

fn run(backend: Backend, actions: &[Action]) -> Result<(), TestCaseError> {
    // Room for 4 of the 6 names, and a journal that wraps.
    let cap = Capacity {
        currencies: 6,
        accounts: 4,
        journal: 8,
    };
    let (_guard, ex) = create(backend, "props", cap);
    let e = ex.engine();
    let mut ids = vec![None; NAMES.len()];
    for act in actions {
        let before = e.state().expect("state");
        let journal_before = e.journal(None).unwrap();
        let (result, expected) = match act {
            Action::Open(a) => {
                let r = e.open_account(NAMES[*a]);
                let mut want = before.clone();
                match &r {
                    Ok((id, Some(_))) => {
                        ids[*a] = Some(*id);
                        let mut b = vec![0; want.currencies.len()];
                        b[0] = want.opening;
                        want.accounts.push(exchange::AccountState {
                            name: NAMES[*a].into(),
                            balances: b,
                        });
                        want.currencies[0].deposits += want.opening;
                        want.next_seq += 1;
                    }
                    Ok((_, None)) => {}
                    Err(OpError::AccountsFull { .. }) => {
                        prop_assert_eq!(before.accounts.len(), cap.accounts);
                    }
                    Err(err) => prop_assert!(false, "open failed: {err}"),
                }
                (r.map(|(_, rc)| rc), Some(want))
            }
            Action::SetRate(c, b, s) => {
                let r = e.set_rate(CurrencyId::from_index(*c), *b, *s).map(Some);
                (r, model(&before, 0, *c, act))
            }
            Action::Buy(a, c, x)
            | Action::Sell(a, c, x)
            | Action::Deposit(a, c, x)
            | Action::Withdraw(a, c, x) => {
                let cid = CurrencyId::from_index(*c);
                let order = match act {
                    Action::Buy(..) => Order::Buy,
                    Action::Sell(..) => Order::Sell,
                    Action::Deposit(..) => Order::Deposit,
                    _ => Order::Withdraw,
                };
                if let Some(id) = ids[*a] {
                    let r = e.order(order, id, cid, *x);
                    (r.map(Some), model(&before, id.index(), *c, act))
                } else {
                    // A new name: the account opens with the order, and only
                    // if the order is accepted (and there is room for it).
                    let want = with_new_account(&before, NAMES[*a], cap.accounts)
                        .and_then(|opened| model(&opened, opened.accounts.len() - 1, *c, act));
                    let r = e.order_as(NAMES[*a], order, cid, *x);
                    if let Ok((id, opened, _)) = &r {
                        prop_assert!(opened.is_some(), "{} was not new", NAMES[*a]);
                        ids[*a] = Some(*id);
                    }
                    (r.map(|(_, _, rc)| Some(rc)), want)
                }
            }
        };
        let after = e.state().expect("state");
        // The invariants hold after every step, whatever happened.
        let violations = after.check();
        prop_assert!(violations.is_empty(), "after {act:?}: {violations:?}");
        match (result, expected) {
            (Ok(Some(receipt)), Some(want)) => {
                prop_assert_eq!(&after, &want, "after {:?}", act);
                prop_assert_eq!(receipt.seq + 1, want.next_seq);
                let j = e.journal(None).unwrap();
                let last = j.last().expect("a journal record");
                prop_assert_eq!(last.seq, receipt.seq);
                prop_assert_eq!(last.op, receipt.op);
                // Within its capacity the journal has no gaps.
                for w in j.windows(2) {
                    prop_assert_eq!(w[1].seq, w[0].seq + 1);
                }
                prop_assert!(j.len() <= cap.journal);
            }
            (Ok(None), _) => {
                prop_assert_eq!(&after, &before);
            }
            (Err(err), None) => {
                // Refused: nothing at all changed, not even the journal.
                prop_assert_eq!(
                    &after,
                    &before,
                    "refused {:?} ({}) changed the books",
                    act,
                    err
                );
                prop_assert_eq!(e.journal(None).unwrap(), journal_before);
            }
            (Err(err), Some(_)) if matches!(act, Action::Open(_)) => {
                prop_assert_eq!(&after, &before, "refused open ({}) changed the books", err);
            }
            (Ok(r), None) => prop_assert!(false, "{act:?} was done ({r:?}) but must be refused"),
            (Err(err), Some(_)) => {
                prop_assert!(false, "{act:?} was refused ({err}) but must be done")
            }
        }
    }
    let last = e.journal(None).unwrap();
    prop_assert!(last.iter().all(|r| r.op != Op::Rollback));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_sequence_keeps_the_books_posix(actions in proptest::collection::vec(action(), 1..60)) {
        run(Backend::Posix, &actions)?;
    }

    #[test]
    fn any_sequence_keeps_the_books_sysv(actions in proptest::collection::vec(action(), 1..60)) {
        run(Backend::SysV, &actions)?;
    }
}
