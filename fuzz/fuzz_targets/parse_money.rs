//! Money parsers on arbitrary text: never a panic; whatever parses prints
//! back to a string that parses to the same value.
#![no_main]

use exchange::money::{Amount, Rate, parse_amount, parse_rate, parse_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&d, rest)) = data.split_first() else { return };
    let decimals = u32::from(d % 7);
    let Ok(text) = std::str::from_utf8(rest) else { return };
    if let Ok(minor) = parse_amount(text, decimals) {
        assert!(minor > 0);
        let printed = Amount::new(minor, decimals).to_string();
        assert_eq!(parse_amount(&printed, decimals), Ok(minor), "{text:?} printed as {printed:?}");
    }
    if let Ok(micros) = parse_rate(text) {
        assert!(micros > 0);
        let printed = Rate(micros).to_string();
        assert_eq!(parse_rate(&printed), Ok(micros), "{text:?} printed as {printed:?}");
    }
    if let Ok(minor) = parse_value(text, decimals) {
        assert!(minor >= 0);
        let printed = Amount::new(minor, decimals).to_string();
        assert_eq!(parse_value(&printed, decimals), Ok(minor), "{text:?} printed as {printed:?}");
    }
});
