//! Helpers for the exchange's tests: exchanges under unique names or keys,
//! removed when the test ends, also when it fails; and the books rebuilt
//! from the journal alone, to reconcile an exchange with.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use exchange::{AccountState, Capacity, Config, Entry, Exchange, Op, OpError, OpenError, State};
use shm::SegmentId;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Which kind of segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Posix,
    SysV,
}

/// Removes its segment when dropped.
pub struct Guard(pub SegmentId);

impl Drop for Guard {
    fn drop(&mut self) {
        for _ in 0..4 {
            if shm::Segment::remove(&self.0).is_err() {
                break;
            }
        }
    }
}

/// A segment id that no other live process makes: the whole pid (below
/// 2^22, Linux's highest `pid_max`) and a per-process counter. A System V
/// key has room for 256 per process; past that the counter wraps, which
/// [`create`]'s exclusive creation turns into a retry, never a clash.
fn candidate(backend: Backend, tag: &str) -> SegmentId {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    match backend {
        Backend::Posix => SegmentId::Posix(format!("shmex-xtest-{tag}-{pid}-{n}")),
        Backend::SysV => {
            assert!(pid < 1 << 22, "pid {pid} does not fit the test keys");
            // 0x4…: keys no fixed key of the workspace's tests uses.
            SegmentId::SysV((0x4000_0000 | (pid << 8) | (n & 0xFF)) as i32)
        }
    }
}

/// Whether an operation's error is a refusal that random trading meets in
/// the ordinary course: a short balance, holding, stock or till.
pub fn short(e: &OpError) -> bool {
    matches!(
        e,
        OpError::InsufficientBalance { .. }
            | OpError::InsufficientHolding { .. }
            | OpError::InsufficientStock { .. }
            | OpError::TillShort { .. }
    )
}

/// The built-in table with the given room.
pub fn builtin(capacity: Capacity) -> State {
    let (mut c, _) = Config::builtin();
    c.capacity = capacity;
    c.into_state().expect("built-in table")
}

/// A fresh exchange of the built-in table, created exclusively: an id that
/// exists already (another test's, or one a crashed run left) is skipped,
/// never removed.
pub fn create(backend: Backend, tag: &str, capacity: Capacity) -> (Guard, Exchange) {
    let genesis = builtin(capacity);
    for _ in 0..1024 {
        let id = candidate(backend, tag);
        match Exchange::create(&id, &genesis, &[], 0o600) {
            Ok(ex) => return (Guard(id), ex),
            Err(OpenError::Exists { .. }) => {}
            Err(e) => panic!("create exchange {id}: {e}"),
        }
    }
    panic!("no free {backend:?} id for an exchange after 1024 tries");
}

/// The books that `genesis` and the whole journal since it add up to,
/// computed here from the records alone (not by the engine): openings,
/// cash moved, trades at the recorded rate with the total checked against
/// an exact price rounded to the exchange's favour, new quotes; rolled-back
/// operations count for nothing. Panics, naming the record, where the
/// journal is not a complete history or a record could not have happened
/// (a gap, a rate other than the quoted one, a balance driven below zero).
pub fn replay(genesis: &State, journal: &[Entry]) -> State {
    let mut s = genesis.clone();
    let home_dec = s.currencies[0].decimals;
    for (i, e) in journal.iter().enumerate() {
        assert_eq!(
            e.seq,
            genesis.next_seq + i as u64,
            "the journal does not hold the whole history: record {i} is {e:?}"
        );
        s.next_seq = e.seq + 1;
        let acc = || -> usize {
            s.accounts
                .iter()
                .position(|a| a.name == e.account)
                .unwrap_or_else(|| panic!("{e:?}: no such account"))
        };
        let c = e.currency;
        match e.op {
            Op::Rollback => {}
            Op::Open => {
                assert!(
                    s.accounts.iter().all(|a| a.name != e.account),
                    "{e:?}: opened twice"
                );
                assert_eq!((e.amount, e.total), (s.opening, s.opening), "{e:?}");
                let mut balances = vec![0; s.currencies.len()];
                balances[0] = e.amount;
                s.accounts.push(AccountState {
                    name: e.account.clone(),
                    balances,
                });
                s.currencies[0].deposits += e.amount;
            }
            Op::Close => {
                let a = acc();
                assert!(
                    s.accounts[a].balances.iter().all(|&b| b == 0),
                    "{e:?}: closed an account that holds money"
                );
                s.accounts.remove(a);
            }
            Op::Deposit => {
                let a = acc();
                s.accounts[a].balances[c] += e.amount;
                s.currencies[c].deposits += e.amount;
            }
            Op::Withdraw => {
                let a = acc();
                s.accounts[a].balances[c] -= e.amount;
                s.currencies[c].withdrawals += e.amount;
            }
            Op::Buy | Op::Sell => {
                let buy = e.op == Op::Buy;
                let cur = &s.currencies[c];
                let quoted = if buy { cur.sell } else { cur.buy };
                assert_eq!(e.rate, quoted, "{e:?}: not the quoted rate");
                assert_eq!(
                    e.total,
                    price(e.amount, cur.decimals, e.rate, home_dec, buy),
                    "{e:?}: the total is not the amount at the rate, rounded to the exchange's favour"
                );
                let sign = if buy { 1 } else { -1 };
                let a = acc();
                s.accounts[a].balances[c] += sign * e.amount;
                s.accounts[a].balances[0] -= sign * e.total;
                s.currencies[c].holding -= sign * e.amount;
                s.currencies[0].holding += sign * e.total;
            }
            Op::SetRate => {
                s.currencies[c].buy = e.extra;
                s.currencies[c].sell = e.rate;
            }
        }
        let negative = s.currencies.iter().any(|c| c.holding < 0)
            || s.accounts.iter().any(|a| a.balances.iter().any(|&b| b < 0));
        assert!(!negative, "{e:?} drove a balance or a holding below zero");
    }
    s
}

/// `amount` minor units (of a currency with `dec` decimals) at `rate`
/// millionths, in home minor units (`home_dec` decimals): rounded up for a
/// buy, down for a sell. Exact, in 128 bits.
fn price(amount: i64, dec: u32, rate: i64, home_dec: u32, buy: bool) -> i64 {
    let num = i128::from(amount) * i128::from(rate) * 10i128.pow(home_dec);
    let den = 1_000_000 * 10i128.pow(dec);
    let q = num / den + i128::from(buy && num % den != 0);
    i64::try_from(q).expect("a price within i64")
}

/// Where two states differ, one line per field (empty if they are equal).
pub fn differences(want: &State, have: &State) -> Vec<String> {
    let mut d = Vec::new();
    let mut field = |what: String, w: &dyn std::fmt::Debug, h: &dyn std::fmt::Debug| {
        let (w, h) = (format!("{w:?}"), format!("{h:?}"));
        if w != h {
            d.push(format!("{what}: want {w}, have {h}"));
        }
    };
    field("next_seq".into(), &want.next_seq, &have.next_seq);
    field("opening".into(), &want.opening, &have.opening);
    field("capacity".into(), &want.capacity, &have.capacity);
    field(
        "currencies".into(),
        &want.currencies.len(),
        &have.currencies.len(),
    );
    for (w, h) in want.currencies.iter().zip(&have.currencies) {
        field(format!("currency {}", w.code), w, h);
    }
    let names = |s: &State| {
        s.accounts
            .iter()
            .map(|a| a.name.clone())
            .collect::<Vec<_>>()
    };
    field("accounts".into(), &names(want), &names(have));
    for (w, h) in want.accounts.iter().zip(&have.accounts) {
        field(format!("account {}", w.name), &w.balances, &h.balances);
    }
    d
}
