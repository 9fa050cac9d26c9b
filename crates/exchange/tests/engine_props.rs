//! Property tests of the engine on real shared-memory segments (POSIX and
//! System V): any sequence of operations keeps conservation and
//! non-negativity, moves money exactly as a simple model says, journals
//! every change with consecutive sequence numbers, and a refused operation
//! changes nothing at all. Accounts open only explicitly: an order for a
//! name that is not open is refused.

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
    /// Close the account; if `true`, withdraw everything it holds first.
    Close(usize, bool),
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
        1 => (0..NAMES.len(), any::<bool>()).prop_map(|(a, d)| Action::Close(a, d)),
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
        Action::Open(_) | Action::Close(..) => unreachable!(),
    }
    s.next_seq += 1;
    Some(s)
}

/// The position of account `name` in the books, if it is open.
fn position(s: &State, name: &str) -> Option<usize> {
    s.accounts.iter().position(|a| a.name == name)
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
    // Slots used: a closed account's slot is not reused.
    let mut slots = 0;
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
                        slots += 1;
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
                        prop_assert_eq!(slots, cap.accounts);
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
                    let at = position(&before, NAMES[*a]).expect("open account in the books");
                    (r.map(Some), model(&before, at, *c, act))
                } else {
                    // A name that is not open: refused, and nothing opens.
                    let r = e.order_as(NAMES[*a], order, cid, *x);
                    if let Err(err) = &r
                        && *c < 5
                        && *x > 0
                        && !(matches!(order, Order::Buy | Order::Sell) && *c == 0)
                    {
                        prop_assert!(
                            matches!(err, OpError::UnknownAccount { .. }),
                            "{act:?}: {err}"
                        );
                    }
                    (r.map(|(_, rc)| Some(rc)), None)
                }
            }
            Action::Close(a, drain) => {
                let mut want = before.clone();
                if let (Some(id), true) = (ids[*a], *drain) {
                    let at = position(&want, NAMES[*a]).expect("open account in the books");
                    let balances = e.balances(id).expect("balances");
                    for (c, b) in balances.into_iter().enumerate() {
                        if b > 0 {
                            e.withdraw(id, CurrencyId::from_index(c), b)
                                .expect("withdraw");
                            want.accounts[at].balances[c] -= b;
                            want.currencies[c].withdrawals += b;
                            want.next_seq += 1;
                        }
                    }
                }
                let at = position(&want, NAMES[*a]);
                let now = e.state().expect("state");
                let r = e.close_account(NAMES[*a]);
                let want = match at {
                    Some(i) if want.accounts[i].balances.iter().all(|&b| b == 0) => {
                        want.accounts.remove(i);
                        want.next_seq += 1;
                        ids[*a] = None;
                        Some(want)
                    }
                    Some(_) => {
                        prop_assert!(matches!(r, Err(OpError::AccountNotEmpty { .. })), "{r:?}");
                        None
                    }
                    None => {
                        prop_assert!(matches!(r, Err(OpError::UnknownAccount { .. })), "{r:?}");
                        None
                    }
                };
                // A refusal is judged against the books after the drain:
                // nothing changed, not even the journal.
                if want.is_none() {
                    prop_assert_eq!(&e.state().expect("state"), &now);
                    prop_assert_eq!(e.info().next_seq, now.next_seq);
                    continue;
                }
                (r.map(Some), want)
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
