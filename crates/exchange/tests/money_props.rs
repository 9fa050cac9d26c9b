//! Property tests of exact money: parsing and formatting round-trip, a
//! buy's price rounds up and a sell's proceeds round down, and no input
//! makes anything panic.

use exchange::money::{
    self, Amount, MAX_DECIMALS, MAX_UNITS, MoneyError, Rate, Round, convert, parse_amount,
    parse_rate, parse_value,
};
use proptest::prelude::*;

fn pow10(n: u32) -> i64 {
    money::pow10(n).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every amount the exchange can print reads back as itself.
    #[test]
    fn amounts_round_trip(d in 0..=MAX_DECIMALS, units in 0..=MAX_UNITS, frac in 0i64..1_000_000) {
        // The largest amount is MAX_UNITS or what an i64 of minor units holds.
        let units = units.min(i64::MAX / pow10(d) - 1);
        let minor = units * pow10(d) + frac % pow10(d);
        prop_assume!(minor > 0);
        let text = Amount::new(minor, d).to_string();
        prop_assert_eq!(parse_amount(&text, d), Ok(minor), "{}", text);
        // Exactly `d` decimals are printed.
        let shown = text.split_once('.').map_or(0, |(_, f)| f.len());
        prop_assert_eq!(shown, d as usize);
    }

    /// Any spelling with at most `d` decimals parses to its value, and
    /// prints back in the canonical form.
    #[test]
    fn spellings_parse_to_their_value(
        d in 0..=MAX_DECIMALS,
        int in 0i64..=MAX_UNITS,
        frac_digits in proptest::collection::vec(0u8..10, 0..=6),
        zeros in 0usize..3,
    ) {
        let frac_digits = &frac_digits[..frac_digits.len().min(d as usize)];
        let int = int.min(i64::MAX / pow10(d) - 1);
        let mut text = "0".repeat(zeros);
        text.push_str(&int.to_string());
        if !frac_digits.is_empty() {
            text.push('.');
            text.extend(frac_digits.iter().map(|b| char::from(b'0' + b)));
        }
        let mut frac = 0i64;
        for (i, b) in frac_digits.iter().enumerate() {
            frac += i64::from(*b) * pow10(d - 1 - i as u32);
        }
        let want = int * pow10(d) + frac;
        match parse_amount(&text, d) {
            Ok(v) => {
                prop_assert_eq!(v, want);
                prop_assert_eq!(parse_amount(&Amount::new(v, d).to_string(), d), Ok(v));
            }
            Err(MoneyError::Zero { .. }) => prop_assert_eq!(want, 0),
            Err(e) => prop_assert!(false, "{text:?} refused: {e}"),
        }
    }

    /// More decimals than the currency has are refused, whatever they are.
    #[test]
    fn too_many_decimals_are_refused(d in 0..=MAX_DECIMALS, int in 0u64..1000, extra in 1usize..4, digit in 0u8..10) {
        let text = format!("{int}.{}", char::from(b'0' + digit).to_string().repeat(d as usize + extra));
        let refused = matches!(parse_amount(&text, d), Err(MoneyError::TooPrecise { .. }));
        prop_assert!(refused, "{}", text);
    }

    /// Rates print with at least two decimals and read back exactly.
    #[test]
    fn rates_round_trip(rate in 1i64..=1_000_000_000_000_000) {
        let text = Rate(rate).to_string();
        prop_assert_eq!(parse_value(&text, 6), Ok(rate), "{}", &text);
        if rate <= money::MAX_RATE_UNITS * money::RATE_ONE {
            prop_assert_eq!(parse_rate(&text), Ok(rate));
        }
        let shown = text.split_once('.').map_or(0, |(_, f)| f.len());
        prop_assert!((2..=6).contains(&shown), "{}", text);
    }

    /// A buy's price is the exact product rounded up, a sell's proceeds
    /// the exact product rounded down, never more than one minor unit away.
    #[test]
    fn rounding_favours_the_exchange(
        amount in 1i64..=i64::MAX,
        rate in 1i64..=1_000_000_000_000_000,
        d in 0..=MAX_DECIMALS,
        hd in 0..=MAX_DECIMALS,
    ) {
        // Exact: amount × rate × 10^hd / 10^(d + 6), as N / D in u128 when it fits.
        let n = (amount as u128).checked_mul(rate as u128).and_then(|p| p.checked_mul(pow10(hd) as u128));
        let den = pow10(d + 6) as u128;
        let up = convert(amount, d, rate, hd, Round::Up);
        let down = convert(amount, d, rate, hd, Round::Down);
        if let Some(n) = n {
            match (up, down) {
                (Ok(up), Ok(down)) => {
                    let (up, down) = (up as u128, down as u128);
                    prop_assert!(down * den <= n && n < (down + 1) * den);
                    prop_assert!(up * den >= n && (up == 0 || (up - 1) * den < n));
                    prop_assert_eq!(up - down, u128::from(n % den != 0));
                }
                // Too large for an i64: both directions say so.
                (Err(MoneyError::Overflow(_)), _) | (_, Err(MoneyError::Overflow(_))) => {
                    prop_assert!(n / den >= i64::MAX as u128 - 1);
                }
                (u, dn) => prop_assert!(false, "unexpected {u:?} {dn:?}"),
            }
        } else if let (Ok(up), Ok(down)) = (up, down) {
            prop_assert!(up >= down && up - down <= 1);
        }
    }

    /// No input panics: parsers and conversions answer Ok or Err.
    #[test]
    fn nothing_panics(
        text in ".{0,60}",
        d in 0u32..30,
        amount in any::<i64>(),
        rate in any::<i64>(),
        hd in 0u32..30,
    ) {
        let _ = parse_amount(&text, d);
        let _ = parse_rate(&text);
        let _ = parse_value(&text, d);
        let _ = convert(amount, d, rate, hd, Round::Up);
        let _ = convert(amount, d, rate, hd, Round::Down);
        let _ = Amount::new(amount, d).to_string();
        let _ = Rate(rate).to_string();
    }

    /// Digit strings of any length, with up to 8 decimals, for every
    /// number of decimals: exactly the value or the refusal that the
    /// digits themselves call for, worked out apart from the parser.
    #[test]
    fn huge_numbers_are_refused_not_wrapped(
        digits in prop_oneof![
            "[0-9]{1,60}(\\.[0-9]{1,8})?",
            "0{0,3}[1-9][0-9]{14,22}(\\.[0-9]{1,8})?",
        ],
        d in 0..=MAX_DECIMALS,
    ) {
        check_against_digits(&digits, d)?;
    }

    /// Numbers that a parser wrapping modulo 2^32, 2^63 or 2^64 would take
    /// for small ones: `small + k × 2^bits` whole units.
    #[test]
    fn wrapping_values_are_refused(
        small in 0u128..1_000_000,
        k in 1u128..1 << 40,
        bits in prop::sample::select(vec![32u32, 63, 64]),
        frac in "(\\.[0-9]{1,2})?",
        d in 0..=MAX_DECIMALS,
    ) {
        let text = format!("{}{frac}", small + (k << bits));
        check_against_digits(&text, d)?;
    }

    /// Minor-unit values right at and around the largest accepted amount
    /// for `d` decimals (where an i64 of minor units or `MAX_UNITS` ends),
    /// spelled with exactly `d` decimals.
    #[test]
    fn amounts_at_the_limit(d in 0..=MAX_DECIMALS, k in -3i128..=3, far in 0u32..4) {
        let limit = i128::from(i64::MAX).min(UNITS_LIMIT * 10i128.pow(d));
        let minor = (limit + k * 10i128.pow(far)).max(1) as u128;
        check_against_digits(&spell(minor, d), d)?;
    }
}

/// The largest amount in whole units, as the parser's documentation says
/// (written out here, so the check does not lean on the code's constant).
const UNITS_LIMIT: i128 = 1_000_000_000_000_000;

/// `minor` units written with exactly `d` decimals.
fn spell(minor: u128, d: u32) -> String {
    let p = 10u128.pow(d);
    if d == 0 {
        minor.to_string()
    } else {
        format!("{}.{:0w$}", minor / p, minor % p, w = d as usize)
    }
}

/// What `parse_amount(text, d)` must give for a string of digits with at
/// most one '.', reckoned on the digits in 128 bits, independently of the
/// parser: too many decimals is `TooPrecise`; zero is `Zero`; anything
/// beyond `UNITS_LIMIT` whole units or an i64 of minor units is
/// `TooLarge`; the rest parses to exactly its value.
fn check_against_digits(text: &str, d: u32) -> Result<(), TestCaseError> {
    prop_assert_eq!(i128::from(MAX_UNITS), UNITS_LIMIT);
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let got = parse_amount(text, d);
    if frac.len() > d as usize {
        prop_assert!(
            matches!(got, Err(MoneyError::TooPrecise { .. })),
            "{text} ({d}): {got:?}"
        );
        return Ok(());
    }
    // Leading zeros do not count. Past 30 significant digits a number is
    // far beyond any limit; up to there, digits and decimals fit 128 bits.
    let significant = int.trim_start_matches('0');
    let value: Option<u128> = if significant.len() > 30 {
        None
    } else {
        let digits = format!("{significant}{frac:0<w$}", w = d as usize);
        Some(
            digits
                .bytes()
                .fold(0u128, |v, b| v * 10 + u128::from(b - b'0')),
        )
    };
    let limit = (UNITS_LIMIT * 10i128.pow(d)).min(i128::from(i64::MAX)) as u128;
    match value {
        Some(0) => prop_assert!(
            matches!(got, Err(MoneyError::Zero { .. })),
            "{text} ({d}): {got:?}"
        ),
        Some(v) if v <= limit => prop_assert_eq!(got, Ok(v as i64), "{} ({})", text, d),
        _ => prop_assert!(
            matches!(got, Err(MoneyError::TooLarge { .. })),
            "{text} ({d}): {got:?}"
        ),
    }
    Ok(())
}

#[test]
fn the_seed_table_prices() {
    // 3 DOLLAR at 13.72 = 41.16 exactly; 1 cent of STERLIN at 24.552 costs
    // 0.25 (0.24552 rounded up) and brings 0.24 (0.24551 rounded down).
    assert_eq!(convert(300, 2, 13_720_000, 2, Round::Up), Ok(4116));
    assert_eq!(convert(1, 2, 24_552_000, 2, Round::Up), Ok(25));
    assert_eq!(convert(1, 2, 24_551_000, 2, Round::Down), Ok(24));
}
