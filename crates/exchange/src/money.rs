//! Exact decimal fixed-point money.
//!
//! An amount is an `i64` count of a currency's minor units (hundredths for
//! a currency of 2 decimals); a rate is an `i64` count of millionths of a
//! home-currency unit per unit of foreign currency. Never `f64`.
//!
//! Converting an amount at a rate multiplies in 128 bits and rounds **to the
//! exchange's favour**: what a customer pays ([`Round::Up`]) rounds up to
//! the next minor unit, what a customer receives ([`Round::Down`]) rounds
//! down. Every operation that could overflow returns [`MoneyError`] instead
//! of panicking or wrapping.
#![forbid(unsafe_code)]

use std::fmt;

/// Decimals of a rate: rates are counted in millionths.
pub const RATE_DECIMALS: u32 = 6;
/// One home-currency unit per foreign unit, as a rate.
pub const RATE_ONE: i64 = 1_000_000;
/// The most decimals a currency may have.
pub const MAX_DECIMALS: u32 = 6;
/// The largest amount accepted as input, in whole units (a quadrillion).
pub const MAX_UNITS: i64 = 1_000_000_000_000_000;
/// The largest rate accepted as input, in whole home units per foreign unit.
pub const MAX_RATE_UNITS: i64 = 1_000_000_000;

/// Why a decimal could not be parsed or computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The text is not a plain positive decimal number.
    #[error("invalid {what} {text:?}: {reason}")]
    Invalid {
        /// `amount` or `rate`.
        what: &'static str,
        /// The text as given (cut to 40 characters).
        text: String,
        /// What is wrong with it, and what is expected.
        reason: String,
    },
    /// More fraction digits than the currency (or a rate) has.
    #[error("invalid {what} {text:?}: {}", decimals_allowed(*.max))]
    TooPrecise {
        /// `amount` or `rate`.
        what: &'static str,
        /// The text as given.
        text: String,
        /// The number of decimals allowed.
        max: u32,
    },
    /// Zero where a positive value is required.
    #[error("invalid {what} {text:?}: it must be greater than zero")]
    Zero {
        /// `amount` or `rate`.
        what: &'static str,
        /// The text as given.
        text: String,
    },
    /// Larger than the exchange accepts.
    #[error("invalid {what} {text:?}: too large (at most {max})")]
    TooLarge {
        /// `amount` or `rate`.
        what: &'static str,
        /// The text as given (cut to 40 characters).
        text: String,
        /// The largest value accepted, as text.
        max: String,
    },
    /// A computation whose result does not fit.
    #[error("amount too large: {0} overflows")]
    Overflow(&'static str),
    /// A number of decimals beyond [`MAX_DECIMALS`].
    #[error("a currency may have at most {MAX_DECIMALS} decimals, not {0}")]
    Decimals(u32),
}

/// What a [`MoneyError::TooPrecise`] says is allowed.
fn decimals_allowed(max: u32) -> String {
    match max {
        0 => "whole numbers only: it has no decimals".to_owned(),
        1 => "at most 1 decimal is allowed".to_owned(),
        n => format!("at most {n} decimals are allowed"),
    }
}

impl MoneyError {
    /// A stable machine code for the error, for `--json` answers:
    /// `invalid_amount`, `invalid_rate`, `invalid_value`, `overflow` or
    /// `invalid_decimals`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::Invalid { what, .. }
            | MoneyError::TooPrecise { what, .. }
            | MoneyError::Zero { what, .. }
            | MoneyError::TooLarge { what, .. } => match *what {
                "rate" => "invalid_rate",
                "value" => "invalid_value",
                _ => "invalid_amount",
            },
            MoneyError::Overflow(_) => "overflow",
            MoneyError::Decimals(_) => "invalid_decimals",
        }
    }
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

const POW10: [i64; 19] = {
    let mut p = [1i64; 19];
    let mut i = 1;
    while i < 19 {
        p[i] = p[i - 1] * 10;
        i += 1;
    }
    p
};

/// `10^n` for `n <= 18`.
#[must_use]
pub fn pow10(n: u32) -> Option<i64> {
    POW10.get(n as usize).copied()
}

/// Parses an amount of a currency with `decimals` decimals into minor units.
///
/// Accepted: ASCII digits, optionally a `.` followed by 1 to `decimals`
/// digits; the value must be greater than zero and at most [`MAX_UNITS`].
/// Refused: signs, exponents, separators, spaces, `NaN`, `inf`, non-ASCII
/// digits, a leading or trailing `.`.
///
/// # Errors
///
/// [`MoneyError`] saying what is wrong.
///
/// # Examples
///
/// ```
/// assert_eq!(exchange::money::parse_amount("12.5", 2), Ok(1250));
/// assert!(exchange::money::parse_amount("1e3", 2).is_err());
/// ```
pub fn parse_amount(text: &str, decimals: u32) -> Result<i64, MoneyError> {
    parse_fixed(text, decimals, MAX_UNITS, false, "amount")
}

/// Parses a rate (home units per foreign unit, up to 6 decimals) into
/// millionths; it must be greater than zero and at most [`MAX_RATE_UNITS`].
///
/// # Errors
///
/// As [`parse_amount`].
pub fn parse_rate(text: &str) -> Result<i64, MoneyError> {
    parse_fixed(text, RATE_DECIMALS, MAX_RATE_UNITS, false, "rate")
}

/// Parses a non-negative decimal (zero allowed) with at most `decimals`
/// decimals, for files that record balances and totals. The value may be
/// as large as an `i64` of minor units holds.
///
/// # Errors
///
/// As [`parse_amount`].
pub fn parse_value(text: &str, decimals: u32) -> Result<i64, MoneyError> {
    parse_fixed(text, decimals, i64::MAX, true, "value")
}

fn parse_fixed(
    text: &str,
    decimals: u32,
    max_units: i64,
    allow_zero: bool,
    what: &'static str,
) -> Result<i64, MoneyError> {
    let invalid = |reason: &str| MoneyError::Invalid {
        what,
        text: cut(text),
        reason: reason.to_owned(),
    };
    if decimals > MAX_DECIMALS {
        return Err(MoneyError::Decimals(decimals));
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(invalid(
            "it is empty; expected a number such as 100 or 12.50",
        ));
    }
    if let Some(bad) = bytes
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b'.'))
    {
        let b = bytes[bad];
        let reason = match b {
            b'-' => "negative values are not allowed",
            b'+' => "a sign is not allowed; write the digits alone",
            b'e' | b'E' if bad > 0 && bytes[..bad].iter().all(u8::is_ascii_digit) => {
                "exponents are not allowed; write the digits out"
            }
            b',' | b'_' | b'\'' => {
                "separators are not allowed; write digits with at most one '.' such as 1000.50"
            }
            b' ' | b'\t' => "spaces are not allowed inside a number",
            _ if !b.is_ascii() => {
                "only the ASCII digits 0-9 and one '.' are allowed, such as 100 or 12.50"
            }
            _ => "expected plain decimal digits such as 100 or 12.50",
        };
        return Err(invalid(reason));
    }
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if int.is_empty() {
        return Err(invalid("expected a digit before the '.', such as 0.50"));
    }
    let frac = match frac {
        Some(f) if f.contains('.') => return Err(invalid("it has more than one '.'")),
        Some("") => return Err(invalid("expected digits after the '.', such as 12.50")),
        Some(f) => f,
        None => "",
    };
    if frac.len() > decimals as usize {
        return Err(MoneyError::TooPrecise {
            what,
            text: cut(text),
            max: decimals,
        });
    }
    let too_large = || MoneyError::TooLarge {
        what,
        text: cut(text),
        max: if max_units == i64::MAX {
            Amount::new(i64::MAX, decimals).to_string()
        } else {
            max_units.to_string()
        },
    };
    let int_digits = int.trim_start_matches('0');
    // More than 19 significant digits cannot fit an i64 at all.
    if int_digits.len() > 19 {
        return Err(too_large());
    }
    let whole: i64 = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse().map_err(|_| too_large())?
    };
    let mut fraction: i64 = 0;
    for b in frac.bytes() {
        fraction = fraction * 10 + i64::from(b - b'0');
    }
    let scale = POW10[decimals as usize];
    fraction *= POW10[decimals as usize - frac.len()];
    let value = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(too_large)?;
    if max_units != i64::MAX && (whole > max_units || (whole == max_units && fraction > 0)) {
        return Err(too_large());
    }
    if value == 0 && !allow_zero {
        return Err(MoneyError::Zero {
            what,
            text: cut(text),
        });
    }
    Ok(value)
}

/// How to round a conversion: to the exchange's favour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// What a customer pays (a buy's price): rounded up.
    Up,
    /// What a customer receives (a sell's proceeds): rounded down.
    Down,
}

/// Converts `amount` minor units of a currency with `amount_decimals`
/// decimals at `rate` (millionths of a home unit per unit) into home minor
/// units (`home_decimals` decimals), rounding as `round` says.
///
/// # Errors
///
/// [`MoneyError::Overflow`] if the result does not fit an `i64`, or an
/// input is negative; [`MoneyError::Decimals`] for decimals beyond
/// [`MAX_DECIMALS`].
///
/// # Examples
///
/// ```
/// use exchange::money::{convert, Round};
/// // 3 DOLLAR at 13.72 = 41.16; 0.01 at 13.405 = 0.13405 → 0.14 up, 0.13 down.
/// assert_eq!(convert(300, 2, 13_720_000, 2, Round::Up), Ok(4116));
/// assert_eq!(convert(1, 2, 13_405_000, 2, Round::Up), Ok(14));
/// assert_eq!(convert(1, 2, 13_405_000, 2, Round::Down), Ok(13));
/// ```
#[inline]
pub fn convert(
    amount: i64,
    amount_decimals: u32,
    rate: i64,
    home_decimals: u32,
    round: Round,
) -> Result<i64, MoneyError> {
    if amount_decimals > MAX_DECIMALS {
        return Err(MoneyError::Decimals(amount_decimals));
    }
    if home_decimals > MAX_DECIMALS {
        return Err(MoneyError::Decimals(home_decimals));
    }
    let (Ok(a), Ok(r)) = (u128::try_from(amount), u128::try_from(rate)) else {
        return Err(MoneyError::Overflow("a negative amount or rate"));
    };
    // Both factors are below 2^63, so the product fits in 2^126.
    let product = a * r;
    // product is in units of 10^-(amount_decimals + 6) home units.
    let shift = i64::from(home_decimals) - i64::from(amount_decimals) - i64::from(RATE_DECIMALS);
    let value: u128 = if shift >= 0 {
        product
            .checked_mul(POW10[shift as usize] as u128)
            .ok_or(MoneyError::Overflow("the price"))?
    } else {
        let d = POW10[(-shift) as usize] as u128;
        let q = product / d;
        match round {
            Round::Up if product % d != 0 => q + 1,
            _ => q,
        }
    };
    i64::try_from(value).map_err(|_| MoneyError::Overflow("the price"))
}

/// An amount for display: minor units and the currency's decimals.
///
/// Prints every decimal (`1000.00`), with a `-` when negative (only a
/// broken invariant can make one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount {
    /// Minor units.
    pub minor: i64,
    /// The currency's decimals.
    pub decimals: u32,
}

impl Amount {
    /// An amount of `minor` units with `decimals` decimals.
    #[must_use]
    pub fn new(minor: i64, decimals: u32) -> Self {
        Amount { minor, decimals }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 48];
        let d = self.decimals.min(18);
        f.pad(write_fixed(&mut buf, self.minor, d, d))
    }
}

/// A rate for display: at least 2 decimals, and as many more as it has
/// (`13.40`, `24.551`, `0.000001`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate(pub i64);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 48];
        f.pad(write_fixed(&mut buf, self.0, RATE_DECIMALS, 2))
    }
}

/// Writes `minor` with `decimals` decimals into `buf`, trimming trailing
/// fraction zeros down to `keep` decimals; returns the text.
fn write_fixed(buf: &mut [u8; 48], minor: i64, decimals: u32, keep: u32) -> &str {
    let neg = minor < 0;
    let mut v = minor.unsigned_abs();
    let mut end = buf.len();
    let mut digits = 0u32;
    let mut trimming = true;
    // Fraction digits, least significant first.
    while digits < decimals {
        let d = (v % 10) as u8;
        v /= 10;
        if trimming && d == 0 && decimals - digits > keep {
            digits += 1;
            continue;
        }
        trimming = false;
        end -= 1;
        buf[end] = b'0' + d;
        digits += 1;
    }
    if !trimming {
        end -= 1;
        buf[end] = b'.';
    }
    loop {
        end -= 1;
        buf[end] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        end -= 1;
        buf[end] = b'-';
    }
    std::str::from_utf8(&buf[end..]).unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(Amount::new(100_000, 2).to_string(), "1000.00");
        assert_eq!(Amount::new(5, 2).to_string(), "0.05");
        assert_eq!(Amount::new(-5, 2).to_string(), "-0.05");
        assert_eq!(Amount::new(7, 0).to_string(), "7");
        assert_eq!(
            Amount::new(i64::MIN, 2).to_string(),
            "-92233720368547758.08"
        );
        assert_eq!(Rate(13_400_000).to_string(), "13.40");
        assert_eq!(Rate(24_551_000).to_string(), "24.551");
        assert_eq!(Rate(1).to_string(), "0.000001");
        assert_eq!(Rate(0).to_string(), "0.00");
        assert_eq!(Rate(20_000_000).to_string(), "20.00");
    }

    #[test]
    fn parses() {
        assert_eq!(parse_amount("100", 2), Ok(10_000));
        assert_eq!(parse_amount("7.5", 2), Ok(750));
        assert_eq!(parse_amount("0.01", 2), Ok(1));
        assert_eq!(parse_amount("007", 0), Ok(7));
        assert_eq!(parse_rate("13.72"), Ok(13_720_000));
        assert_eq!(parse_value("0.00", 2), Ok(0));
        for bad in [
            "",
            "0",
            "0.00",
            "-5",
            "+5",
            "-0",
            "1.234",
            "1e3",
            "1E2",
            "NaN",
            "inf",
            "∞",
            "1,000",
            "1_000",
            "1'000",
            "0x10",
            "5%",
            ".",
            ".5",
            "5.",
            "1.2.3",
            "1 000",
            "١٠",
            "１０",
            "1\0",
            "99999999999999999999999999999999999999999",
            "184467440737095516.16",
            "1000000000000000.01",
        ] {
            assert!(parse_amount(bad, 2).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            parse_amount("1000000000000000", 2),
            Ok(100_000_000_000_000_000)
        );
        assert!(matches!(
            parse_amount("1e3", 2),
            Err(MoneyError::Invalid { reason, .. }) if reason.contains("exponent")
        ));
        assert!(matches!(
            parse_amount("1.234", 2),
            Err(MoneyError::TooPrecise { max: 2, .. })
        ));
    }

    #[test]
    fn converts_in_the_exchange_favour() {
        assert_eq!(convert(300, 2, 13_720_000, 2, Round::Up), Ok(4116));
        assert_eq!(convert(1, 2, 24_551_000, 2, Round::Up), Ok(25));
        assert_eq!(convert(1, 2, 24_551_000, 2, Round::Down), Ok(24));
        assert_eq!(convert(1, 0, 1, 0, Round::Up), Ok(1));
        assert_eq!(convert(1, 0, 1, 0, Round::Down), Ok(0));
        assert_eq!(convert(5, 0, 2_000_000, 6, Round::Down), Ok(10_000_000));
        assert!(convert(i64::MAX, 0, i64::MAX, 6, Round::Up).is_err());
        assert!(convert(-1, 2, 1, 2, Round::Up).is_err());
    }
}
