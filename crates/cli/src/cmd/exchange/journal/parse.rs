//! The journal command's filter values: RFC 3339 times, sequence ranges,
//! operation names, currency codes and account names. Each parser's error
//! becomes a usage error (exit status 2) naming the option.

use std::ops::RangeInclusive;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use exchange::{Code, Op};

const TIME_FORM: &str =
    "give an RFC 3339 time such as 2026-01-02T03:04:05Z or 2026-01-02T06:04:05.250+03:00";

/// An RFC 3339 time (`2026-01-02T03:04:05Z`, fractions of a second and
/// offsets such as `+03:00` allowed) as nanoseconds since the epoch.
pub fn time(s: &str) -> Result<u64, String> {
    let ns = time_ns(s).ok_or_else(|| format!("not a time: {TIME_FORM}"))?;
    u64::try_from(ns)
        .map_err(|_| "the journal holds nothing before 1970-01-01T00:00:00Z".to_owned())
}

fn time_ns(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    // 60: a leap second.
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac: i128 = 0;
    if sep(i, b".") {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Nanoseconds: digits past the ninth are dropped.
        for k in 0..9 {
            let digit = b
                .get(i + 1 + k)
                .filter(|_| k < digits)
                .map_or(0, |c| c - b'0');
            frac = frac * 10 + i128::from(digit);
        }
        i += 1 + digits;
    }
    let offset_min = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(i128::from(secs) * 1_000_000_000 + frac)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date, by Howard
/// Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `A..B` (both included), `A..`, `..B`, or one number `N`.
pub fn seq_range(s: &str) -> Result<RangeInclusive<u64>, String> {
    let bad =
        || "not a range of sequence numbers: give A..B (both included), A.., ..B or N".to_owned();
    let number = |t: &str| -> Result<u64, String> {
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse()
            .map_err(|_| format!("{t} is larger than any sequence number"))
    };
    let (from, to) = match s.split_once("..") {
        None => {
            let n = number(s)?;
            (n, n)
        }
        Some(("", "")) => return Err(bad()),
        Some((a, "")) => (number(a)?, u64::MAX),
        Some(("", b)) => (1, number(b)?),
        Some((a, b)) => (number(a)?, number(b)?),
    };
    if from > to {
        return Err(format!(
            "{from}..{to} is empty: the first number must not be larger than the last"
        ));
    }
    Ok(from..=to)
}

/// An operation, by the name the journal prints (`buy`, `set-rate`, …).
pub fn op() -> impl TypedValueParser<Value = Op> {
    PossibleValuesParser::new(Op::ALL.map(Op::name))
        .map(|name| Op::from_name(&name).expect("a listed operation name"))
}

/// A currency code (lower case is made upper case).
pub fn code(s: &str) -> Result<Code, String> {
    Code::new(s).map_err(|e| e.to_string())
}

/// An account name.
pub fn account(s: &str) -> Result<String, String> {
    exchange::disk::Name::new(s).map(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_utc_and_with_offsets() {
        assert_eq!(time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            time("2000-02-29T00:00:00.123Z"),
            Ok(951_782_400_123_000_000)
        );
        assert_eq!(
            time("2000-02-29t00:00:00.123z"),
            Ok(951_782_400_123_000_000)
        );
        assert_eq!(
            time("2000-02-29 03:00:00.123+03:00"),
            Ok(951_782_400_123_000_000)
        );
        assert_eq!(
            time("2000-02-28T23:30:00.123-00:30"),
            Ok(951_782_400_123_000_000)
        );
        assert_eq!(time("2025-12-31T23:59:59Z"), Ok(1_767_225_599_000_000_000));
        assert_eq!(
            time("2025-12-31T23:59:59.000000001999Z"),
            Ok(1_767_225_599_000_000_001)
        );
        // A leap second reads as the next second.
        assert_eq!(time("2016-12-31T23:59:60Z"), time("2017-01-01T00:00:00Z"));
    }

    #[test]
    fn bad_times_are_refused_with_the_form_to_use() {
        for bad in [
            "",
            "yesterday",
            "2026-01-02",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04Z",
            "2026-13-02T03:04:05Z",
            "2026-02-29T03:04:05Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T03:04:05.Z",
            "2026-01-02T03:04:05+3:00",
            "2026-01-02T03:04:05+03:00x",
            "2026-01-02T03:04:05+24:00",
            "2026-01-02T03:04:05ZZ",
        ] {
            let e = time(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad:?}: {e}");
        }
        let e = time("1969-12-31T23:59:59Z").unwrap_err();
        assert!(e.contains("before 1970"), "{e}");
    }

    #[test]
    fn ranges() {
        assert_eq!(seq_range("1..10"), Ok(1..=10));
        assert_eq!(seq_range("5..5"), Ok(5..=5));
        assert_eq!(seq_range("7"), Ok(7..=7));
        assert_eq!(seq_range("7.."), Ok(7..=u64::MAX));
        assert_eq!(seq_range("..9"), Ok(1..=9));
        for bad in [
            "", "..", "a..b", "1...3", "-1..3", "1..2..3", "1-3", " 1..3",
        ] {
            assert!(seq_range(bad).unwrap_err().contains("A..B"), "{bad:?}");
        }
        assert!(seq_range("9..1").unwrap_err().contains("is empty"));
        assert!(
            seq_range("1..99999999999999999999")
                .unwrap_err()
                .contains("larger")
        );
    }

    #[test]
    fn codes_and_accounts() {
        assert_eq!(
            code("dollar").map(|c| c.to_string()),
            Ok("DOLLAR".to_owned())
        );
        assert!(code("1X").is_err());
        assert_eq!(account("alice.b"), Ok("alice.b".to_owned()));
        assert!(
            account("bad name")
                .unwrap_err()
                .contains("invalid account name")
        );
    }
}
