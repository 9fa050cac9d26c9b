use std::fmt;

use crate::Error;

/// Which segment: a System V key or a POSIX name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SegmentId {
    /// A System V segment found by `shmget(key, …)`. Never `IPC_PRIVATE` (0).
    SysV(i32),
    /// A POSIX segment found by `shm_open("/name", …)`, a file in `/dev/shm`.
    /// Stored without the leading slash.
    Posix(String),
}

/// Longest POSIX name accepted (a file name in `/dev/shm`).
const NAME_MAX: usize = 255;

impl SegmentId {
    /// A System V key. Key 0 is `IPC_PRIVATE`, which no other process can
    /// find, so it is refused.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for key 0.
    pub fn sysv(key: i32) -> Result<Self, Error> {
        if key == 0 {
            return Err(Error::Invalid(
                "key 0 is IPC_PRIVATE, which no other process can open: choose a non-zero key"
                    .into(),
            ));
        }
        Ok(SegmentId::SysV(key))
    }

    /// A POSIX name, with or without its leading `/`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for an empty name, one with another `/`, a NUL,
    /// `.` or `..`, or one longer than 255 bytes.
    pub fn posix(name: impl Into<String>) -> Result<Self, Error> {
        let name: String = name.into();
        let bare = name.strip_prefix('/').unwrap_or(&name);
        let bad = |why: &str| {
            Err(Error::Invalid(format!(
                "invalid segment name {name:?}: {why}"
            )))
        };
        if bare.is_empty() {
            return bad("it is empty");
        }
        if bare.contains('/') {
            return bad("it may not contain '/' after the first character");
        }
        if bare.contains('\0') {
            return bad("it may not contain a NUL byte");
        }
        if bare == "." || bare == ".." {
            return bad("'.' and '..' are not segment names");
        }
        if bare.len() > NAME_MAX {
            return bad("it is longer than 255 bytes");
        }
        Ok(SegmentId::Posix(bare.to_owned()))
    }

    /// Parses a System V key as the seed writes them: decimal (`5678`),
    /// hexadecimal (`0x162e`) or octal (`0o12`), optionally negative.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if `text` is not a number that fits a 32-bit key,
    /// or is 0.
    pub fn parse_key(text: &str) -> Result<Self, Error> {
        let t = text.trim();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (radix, body) = if let Some(h) = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            (16, h)
        } else if let Some(o) = digits.strip_prefix("0o") {
            (8, o)
        } else {
            (10, digits)
        };
        let bad = || {
            Error::Invalid(format!(
                "invalid key {text:?}: expected a 32-bit integer such as 5678 or 0x162e"
            ))
        };
        // from_str_radix takes a sign of its own, which would let "0x-5" or
        // "+5" through: only digits may follow the prefix.
        if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
            return Err(bad());
        }
        let v = i64::from_str_radix(body, radix).map_err(|_| bad())?;
        let v = if neg { -v } else { v };
        // Keys are key_t (i32); accept the unsigned spelling of large hex keys too.
        let key = if (i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(&v) {
            v as i32
        } else {
            return Err(bad());
        };
        SegmentId::sysv(key)
    }

    /// The backend's name: `sysv` or `posix`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self {
            SegmentId::SysV(_) => "sysv",
            SegmentId::Posix(_) => "posix",
        }
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentId::SysV(key) => write!(f, "key {key} (0x{:08x})", *key as u32),
            // Debug quoting escapes control characters, so a name holding a
            // newline still gives a one-line message.
            SegmentId::Posix(name) => write!(f, "{name:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_in_every_base() {
        assert_eq!(SegmentId::parse_key("5678").unwrap(), SegmentId::SysV(5678));
        assert_eq!(
            SegmentId::parse_key("0x162e").unwrap(),
            SegmentId::SysV(5678)
        );
        assert_eq!(SegmentId::parse_key("-3").unwrap(), SegmentId::SysV(-3));
        assert_eq!(
            SegmentId::parse_key("0xffffffff").unwrap(),
            SegmentId::SysV(-1)
        );
        for bad in [
            "",
            "0",
            "abc",
            "1e3",
            "+5",
            "0x",
            "99999999999",
            "5 6",
            "0x-5",
            "0x+5",
            "-+5",
            "0o-7",
        ] {
            assert!(SegmentId::parse_key(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(
            SegmentId::posix("/a").unwrap(),
            SegmentId::Posix("a".into())
        );
        for bad in ["", "/", "a/b", "..", "x\0y"] {
            assert!(SegmentId::posix(bad).is_err(), "{bad:?} accepted");
        }
        assert!(SegmentId::posix("n".repeat(256)).is_err());
    }
}
