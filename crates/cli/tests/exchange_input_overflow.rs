//! `shmex exchange` and amounts refused exactly where a figure (a balance,
//! a total of deposits, a price) would overflow an `i64`, in the trade
//! loop and in the one-shot commands. Every flow runs on both backends.

use crate::support::exchange::money::{MICRO, balances, micro, micro_at};
use crate::support::exchange::{Backend, Exchange, on_both_backends};

on_both_backends!(overflowing_totals_are_refused);

/// The largest `i64`: no balance, stock, till or total may pass it.
const I64_MAX: i128 = i64::MAX as i128;
/// The largest amount an order may name (10^15 whole units).
const MAX_AMOUNT: &str = "1000000000000000";

/// Minor units (cents) of an amount as written.
fn minor(amount: &str) -> i128 {
    micro(amount) / (MICRO / 100)
}

/// How the trade loop must answer one line.
enum Expect {
    /// Done; for a deposit or withdrawal, the balance afterwards (cents).
    Done(Option<i128>),
    /// Refused with this code, saying this.
    Refused(&'static str, &'static str),
}

/// One account's balance in one currency and that currency's totals of
/// deposits and withdrawals, in cents, as a model of what the exchange
/// must accept: everything that keeps every figure within an `i64`.
struct Cash {
    balance: i128,
    deposits: i128,
    withdrawals: i128,
}

impl Cash {
    fn deposit(&mut self, amount: i128) -> Expect {
        if self.balance + amount > I64_MAX {
            return Expect::Refused("overflow", "amount too large: the balance overflows");
        }
        if self.deposits + amount > I64_MAX {
            return Expect::Refused(
                "overflow",
                "amount too large: the total of deposits overflows",
            );
        }
        self.balance += amount;
        self.deposits += amount;
        Expect::Done(Some(self.balance))
    }

    fn withdraw(&mut self, amount: i128) -> Expect {
        if self.balance < amount {
            return Expect::Refused("insufficient_holding", "insufficient holding");
        }
        self.balance -= amount;
        self.withdrawals += amount;
        Expect::Done(Some(self.balance))
    }
}

/// Runs `lines` in a trade loop of `account` and checks each answer.
#[track_caller]
fn expect_answers(ex: &Exchange, account: &str, lines: &[(String, Expect)]) {
    let input: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    let got = ex.trade(account, input.as_bytes());
    assert_eq!(got.len(), lines.len(), "one answer per line: {got:?}");
    for ((line, want), a) in lines.iter().zip(&got) {
        match want {
            Expect::Done(balance) => {
                assert_eq!(a["ok"], true, "{line:?} must be done: {a}");
                if let Some(b) = balance {
                    assert_eq!(micro_at(a, "balance") / (MICRO / 100), *b, "{line:?}: {a}");
                }
            }
            Expect::Refused(code, says) => {
                assert_eq!(a["ok"], false, "{line:?} must be refused: {a}");
                assert_eq!(a["code"], *code, "{line:?}: {a}");
                let msg = a["error"].as_str().unwrap_or_default();
                assert!(msg.contains(says), "{line:?} must say {says:?}: {a}");
            }
        }
    }
}

fn overflowing_totals_are_refused(b: Backend) {
    let ex = Exchange::init(b, "ex-huge", &[]);
    let big = minor(MAX_AMOUNT);
    // rich's DOLLAR, and DOLLAR's totals: rich deposits the largest amount
    // until the balance would pass an i64, then exactly what fills it.
    let mut dollar = Cash {
        balance: 0,
        deposits: 0,
        withdrawals: 0,
    };
    let mut lines = Vec::new();
    loop {
        let want = dollar.deposit(big);
        let full = matches!(want, Expect::Refused(..));
        lines.push((format!("deposit DOLLAR {MAX_AMOUNT}"), want));
        if full {
            break;
        }
    }
    assert_eq!(lines.len(), 93, "92 deposits fit, the 93rd does not");
    let room = I64_MAX - dollar.balance;
    let fill = format!("{}.{:02}", room / 100, room % 100);
    assert_eq!(fill, "233720368547758.07");
    lines.push((format!("deposit DOLLAR {fill}"), dollar.deposit(room)));
    lines.push(("deposit DOLLAR 0.01".into(), dollar.deposit(1)));
    assert_eq!(dollar.balance, I64_MAX, "the balance is full");
    lines.extend([
        (
            "deposit DOLLAR 92233720368547758.07".to_string(),
            Expect::Refused("invalid_amount", "too large (at most 1000000000000000)"),
        ),
        // 10^15 DOLLAR sold at 13.40: more than the till holds.
        (
            format!("sell DOLLAR {MAX_AMOUNT}"),
            Expect::Refused("till_short", "the till is short"),
        ),
        (
            format!("buy DOLLAR {MAX_AMOUNT}"),
            Expect::Refused("insufficient_stock", "insufficient stock of DOLLAR"),
        ),
        (
            format!("withdraw DOLLAR {MAX_AMOUNT}"),
            dollar.withdraw(big),
        ),
        // The balance has room again, but the total of deposits has none.
        (format!("deposit DOLLAR {MAX_AMOUNT}"), dollar.deposit(big)),
        ("balance".into(), Expect::Done(None)),
    ]);
    assert!(
        matches!(lines[lines.len() - 2].1, Expect::Refused("overflow", m) if m.contains("deposits")),
        "the model refuses the last deposit for the total"
    );
    expect_answers(&ex, "rich", &lines);
    // Another account's deposit fits its balance, not the total.
    let mut other = Cash {
        balance: 0,
        deposits: dollar.deposits,
        withdrawals: 0,
    };
    expect_answers(
        &ex,
        "other",
        &[
            ("deposit DOLLAR 1".into(), other.deposit(100)),
            ("deposit TRY 1".into(), Expect::Done(Some(minor("1001.00")))),
        ],
    );
    ex.check();

    // Prices past an i64. At a buy rate of 0.000001, rich sells 10^11
    // DOLLAR for 100000.00 TRY, the whole till, and the stock grows to hold
    // them; at a sell rate of 10^9, buying them back would cost 10^20 TRY.
    ex.ok(&[
        "set-rate", "DOLLAR", "--buy", "0.000001", "--sell", "0.000001", "--yes",
    ]);
    let lot = "100000000000";
    expect_answers(
        &ex,
        "rich",
        &[(format!("sell DOLLAR {lot}"), Expect::Done(None))],
    );
    dollar.balance -= minor(lot);
    ex.ok(&[
        "set-rate",
        "DOLLAR",
        "--buy",
        "0.000001",
        "--sell",
        "1000000000",
        "--yes",
    ]);
    let price = "amount too large: the price overflows";
    expect_answers(
        &ex,
        "rich",
        &[
            (
                format!("buy DOLLAR {lot}"),
                Expect::Refused("overflow", price),
            ),
            // 0.01 DOLLAR costs 10000000.00 TRY: representable, not affordable.
            (
                "buy DOLLAR 0.01".into(),
                Expect::Refused("insufficient_balance", "the price is 10000000.00 TRY"),
            ),
        ],
    );
    ex.ok(&[
        "set-rate",
        "DOLLAR",
        "--buy",
        "1000000000",
        "--sell",
        "1000000000",
        "--yes",
    ]);
    expect_answers(
        &ex,
        "rich",
        &[
            (
                format!("sell DOLLAR {lot}"),
                Expect::Refused("overflow", price),
            ),
            (
                "sell DOLLAR 0.01".into(),
                Expect::Refused("till_short", "the till is short: it holds 0.00 TRY"),
            ),
        ],
    );
    ex.check();

    // The one-shot commands refuse an overflow the same way, as bad input.
    let before = ex.state();
    ex.assert_all_refused(
        &[
            (
                &["deposit", "--account", "other", "DOLLAR", "0.01"],
                "overflow",
                &["amount too large: the total of deposits overflows"],
            ),
            (
                &["buy", "--account", "rich", "DOLLAR", lot],
                "overflow",
                &[price],
            ),
        ],
        2,
        &before,
    );

    // The books hold what the model says.
    let acc = balances(&ex.accounts());
    assert_eq!(acc["rich"]["DOLLAR"], dollar.balance * (MICRO / 100));
    assert_eq!(acc["rich"]["TRY"], micro("101000.00"));
    assert_eq!(acc["other"]["DOLLAR"], other.balance * (MICRO / 100));
    assert_eq!(micro_at(&ex.quote(), "till"), 0);
    ex.check();
}
