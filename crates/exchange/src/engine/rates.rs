//! Quotes: the rule `0 < buy <= sell`, and setting new rates.

use super::undo::Field;
use super::{Engine, R, Receipt};
use crate::error::OpError;
use crate::failpoint::{self, Failpoint};
use crate::money;
use crate::state::MAX_RATE;
use crate::types::{Code, CurrencyId, Op};

impl<'a> Engine<'a> {
    /// New quotes for foreign currency `c`; they must satisfy
    /// `0 < buy <= sell`.
    ///
    /// # Errors
    ///
    /// [`OpError::BadRates`], [`OpError::HomeCurrency`], [`OpError::Lock`].
    pub fn set_rate(&self, c: CurrencyId, buy: i64, sell: i64) -> Result<Receipt, OpError> {
        let ci = self.foreign(c)?;
        let code = self.ex.codes[ci];
        check_rates(code, buy, sell)?;
        self.locked(|| {
            let row = &self.rows[ci];
            let (old_buy, old_sell) = (row.buy.load(R), row.sell.load(R));
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
            Ok(Receipt {
                seq,
                op: Op::SetRate,
                currency: c,
                amount: 0,
                rate: sell,
                total: 0,
                balance: 0,
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
