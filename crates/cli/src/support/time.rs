//! Time as shmex prints it: UTC timestamps without a time-zone database
//! (`segment ls`'s CREATED column, the journal's time column), and the
//! clock in nanoseconds since the epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch (0 if the clock is before it).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `2026-01-02 03:04:05Z` from seconds since the epoch, `-` for none.
pub fn utc_seconds(secs: Option<i64>) -> String {
    let Some(secs) = secs else { return "-".into() };
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-01-02T03:04:05.678Z` from nanoseconds since the epoch.
pub fn utc_millis(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let ms = (ns / 1_000_000) % 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `(year, month, day)` that is `days` days
/// after 1970-01-01 (before it when negative), by Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_453), (2025, 12, 31));
    }

    #[test]
    fn journal_times() {
        assert_eq!(utc_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            utc_millis(951_782_400_123_000_000),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            utc_millis(1_767_225_599_000_000_000),
            "2025-12-31T23:59:59.000Z"
        );
    }

    #[test]
    fn segment_times() {
        assert_eq!(utc_seconds(None), "-");
        assert_eq!(utc_seconds(Some(0)), "1970-01-01 00:00:00Z");
        assert_eq!(utc_seconds(Some(-1)), "1969-12-31 23:59:59Z");
        assert_eq!(utc_seconds(Some(951_782_461)), "2000-02-29 00:01:01Z");
    }
}
