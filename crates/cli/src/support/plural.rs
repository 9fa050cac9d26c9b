//! Counts in words: `1 run`, `3 runs`.

/// `n` and the noun that goes with it: `one` for 1, `many` otherwise.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::plural;

    #[test]
    fn counts() {
        assert_eq!(plural(0, "run", "runs"), "0 runs");
        assert_eq!(plural(1, "run", "runs"), "1 run");
        assert_eq!(plural(2, "process", "processes"), "2 processes");
    }
}
