//! Parsers for command-line values shared by several subcommands, the
//! benchmarks and the workers.

use std::time::Duration;

use shm::SegmentId;

use super::error::BadInput;

/// The exchange's name when none is given.
const DEFAULT_EXCHANGE: &str = "shmex-exchange";

/// The exchange's segment that `--exchange NAME`, `--key K` or the
/// environment (`SHMEX_EXCHANGE`) selects.
pub fn exchange_id(name: Option<&str>, key: Option<&str>) -> anyhow::Result<SegmentId> {
    match (name, key) {
        (Some(_), Some(_)) => Err(BadInput(
            "--exchange and --key both given: choose a POSIX name or a System V key, not both"
                .into(),
        )
        .into()),
        (None, Some(k)) => Ok(SegmentId::parse_key(k)?),
        (Some(n), None) => Ok(SegmentId::posix(n)?),
        (None, None) => {
            let n = std::env::var("SHMEX_EXCHANGE")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_EXCHANGE.into());
            Ok(SegmentId::posix(n)?)
        }
    }
}

/// Parses a byte count: `4096`, `64K`, `64KiB`, `1M`, `1MiB`, `2G` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, BadInput> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let bad = || {
        BadInput(format!(
            "invalid size {text:?}: expected bytes such as 4096, 64K, 1M or 2G"
        ))
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mul: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return Err(bad()),
    };
    n.checked_mul(mul)
        .ok_or_else(|| BadInput(format!("invalid size {text:?}: too large")))
}

/// Parses permission bits in octal: `0600`, `600`, `0o644`.
pub fn parse_mode(text: &str) -> Result<u32, BadInput> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    let bad = || {
        BadInput(format!(
            "invalid mode {text:?}: expected octal permission bits such as 0600 or 0666"
        ))
    };
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    let m = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
    if m > 0o777 {
        return Err(bad());
    }
    Ok(m)
}

/// Parses a duration in seconds, fractions allowed: `5`, `0.25`.
pub fn parse_seconds(text: &str) -> Result<Duration, BadInput> {
    let bad = || {
        BadInput(format!(
            "invalid timeout {text:?}: expected seconds such as 5 or 0.5"
        ))
    };
    let v: f64 = text.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() || !(0.0..=1e9).contains(&v) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        for bad in ["", "K", "-1", "1.5M", "1X", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600").unwrap(), 0o600);
        assert_eq!(parse_mode("666").unwrap(), 0o666);
        for bad in ["", "0800", "1777", "rw", "-1"] {
            assert!(parse_mode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        for bad in ["", "-1", "nan", "inf", "x"] {
            assert!(parse_seconds(bad).is_err(), "{bad:?}");
        }
    }
}
