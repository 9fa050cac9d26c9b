//! Quotes: the rule `0 < buy <= sell`, and setting new rates.

use super::undo::Field;
use super::{Engine, R, Receipt};
use crate::error::OpError;
use crate::failpoint::{self, Failpoint};
use crate::money;
use crate::state::MAX_RATE;
use crate::types::{Code, CurrencyId, Op};

/// What [`Engine::change_rates`] did: the receipt and both sides' rates
/// before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateChange {
    /// The set-rate's receipt.
    pub receipt: Receipt,
    /// The buy rate before.
    pub old_buy: i64,
    /// The sell rate before.
    pub old_sell: i64,
    /// The buy rate now.
    pub buy: i64,
    /// The sell rate now.
    pub sell: i64,
}

impl<'a> Engine<'a> {
    /// New quotes for foreign currency `c`; they must satisfy
    /// `0 < buy <= sell`.
    ///
    /// # Errors
    ///
    /// [`OpError::BadRates`], [`OpError::HomeCurrency`], [`OpError::Lock`].
    pub fn set_rate(&self, c: CurrencyId, buy: i64, sell: i64) -> Result<Receipt, OpError> {
        self.change_rates(c, Some(buy), Some(sell), None)
            .map(|ch| ch.receipt)
    }

    /// New quotes for foreign currency `c`, one side or both: a side not
    /// given keeps its rate. Judged under the lock against the rates of the
    /// moment, so that a side left alone is never set back to an older
    /// value. With `limit` (in percent), a side that moves by more than
    /// that fraction of its rate is refused with [`OpError::RateMove`]: a
    /// guard against a mistyped rate.
    ///
    /// # Errors
    ///
    /// [`OpError::BadRates`] (also if neither side is given),
    /// [`OpError::RateMove`], [`OpError::HomeCurrency`], [`OpError::Lock`].
    pub fn change_rates(
        &self,
        c: CurrencyId,
        buy: Option<i64>,
        sell: Option<i64>,
        limit: Option<u32>,
    ) -> Result<RateChange, OpError> {
        let ci = self.foreign(c)?;
        let code = self.ex.codes[ci];
        if buy.is_none() && sell.is_none() {
            return Err(OpError::BadRates {
                code: code.to_string(),
                reason: "give the buy rate, the sell rate, or both".into(),
            });
        }
        // Rates given are judged on their own first: bad input whatever
        // the other side is.
        for r in [buy, sell].into_iter().flatten() {
            if r <= 0 {
                check_rates(code, r, r)?;
            }
        }
        self.locked(|| {
            let row = &self.rows[ci];
            let (old_buy, old_sell) = (row.buy.load(R), row.sell.load(R));
            let (buy, sell) = (buy.unwrap_or(old_buy), sell.unwrap_or(old_sell));
            check_rates(code, buy, sell)?;
            if let Some(pct) = limit {
                for (side, old, new) in [("buy", old_buy, buy), ("sell", old_sell, sell)] {
                    let moved = (i128::from(new) - i128::from(old)).unsigned_abs();
                    if old > 0 && moved * 100 > old as u128 * u128::from(pct) {
                        return Err(OpError::RateMove {
                            code: code.to_string(),
                            side,
                            old: money::Rate(old).to_string(),
                            new: money::Rate(new).to_string(),
                            permille: u64::try_from(moved * 1000 / old as u128).unwrap_or(u64::MAX),
                            limit: pct,
                        });
                    }
                }
            }
            let mut p = self.pending(Op::SetRate, ci, None, 0, sell, 0);
            p.extra = buy;
            let seq = self.next_seq()?;
            self.begin(
                seq,
                &[(Field::Buy(ci), old_buy), (Field::Sell(ci), old_sell)],
                &p,
            );
            let w = self.head.seq.write();
            row.buy.store(buy, R);
            failpoint::hit(self.fp, Failpoint::MidSetRate);
            row.sell.store(sell, R);
            self.commit(seq, &p, w);
            Ok(RateChange {
                receipt: Receipt {
                    seq,
                    op: Op::SetRate,
                    currency: c,
                    amount: 0,
                    rate: sell,
                    total: 0,
                    balance: 0,
                },
                old_buy,
                old_sell,
                buy,
                sell,
            })
        })
    }
}

/// Checks quotes: `0 < buy <= sell`, and no rate above the largest one a
/// rate may be ([`money::MAX_RATE_UNITS`] units of home currency).
///
/// # Errors
///
/// [`OpError::BadRates`] saying which rule is broken.
pub fn check_rates(code: Code, buy: i64, sell: i64) -> Result<(), OpError> {
    let bad = |reason: String| {
        Err(OpError::BadRates {
            code: code.to_string(),
            reason,
        })
    };
    if buy <= 0 || sell <= 0 {
        return bad("rates must be greater than zero".into());
    }
    if buy > sell {
        return bad(format!(
            "the buy rate {} is above the sell rate {}; the exchange must buy at or below the price it sells at",
            money::Rate(buy),
            money::Rate(sell)
        ));
    }
    if sell > MAX_RATE {
        return bad(format!(
            "the sell rate {} is above the largest rate, {}",
            money::Rate(sell),
            money::Rate(MAX_RATE)
        ));
    }
    Ok(())
}
