//! Property tests of segment ids: System V keys as users type them, and
//! POSIX names, against a reference model and against the kernel.

use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use shm::{Access, Error, Segment, SegmentId};

/// What `parse_key` must accept: optional `-`, then decimal digits, `0x`/`0X`
/// and hex digits, or `0o` and octal digits (surrounding white space is
/// ignored), with a value in `i32::MIN..=u32::MAX` (large unsigned hex keys
/// wrap, as `key_t` does), and never 0 (`IPC_PRIVATE`).
fn model_key(text: &str) -> Option<i32> {
    let t = text.trim();
    let (neg, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let (radix, body) = if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X"))
    {
        (16, h)
    } else if let Some(o) = rest.strip_prefix("0o") {
        (8, o)
    } else {
        (10, rest)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i128::from_str_radix(body, radix).ok()?;
    let v = if neg { -v } else { v };
    if v == 0 || v < i128::from(i32::MIN) || v > i128::from(u32::MAX) {
        return None;
    }
    Some(v as i64 as i32)
}

/// Text that looks like a key, with the near misses users type.
fn key_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]?[-+]?(0[xXoO])?[-+]?[0-9a-fA-F_]{0,11}[ \t]?",
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u32>().prop_map(|v| format!("{v:#x}")),
    ]
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_prefix() -> String {
    format!(
        "shmex-ids-{}-{}-",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// `parse_key` accepts exactly the model's keys, with the model's value,
    /// and refuses the rest with a message that names the text.
    #[test]
    fn parse_key_matches_the_model(text in key_like()) {
        match (SegmentId::parse_key(&text), model_key(&text)) {
            (Ok(id), Some(k)) => prop_assert_eq!(id, SegmentId::SysV(k)),
            (Err(Error::Invalid(msg)), None) => {
                prop_assert!(!msg.contains('\n'), "{:?}", msg);
                prop_assert!(
                    msg.contains("expected a 32-bit integer such as 5678 or 0x162e")
                        || msg.starts_with("key 0 is IPC_PRIVATE"),
                    "{}", msg
                );
            }
            (got, want) => prop_assert!(false, "{:?}: got {:?}, model says {:?}", text, got, want),
        }
    }

    /// Every non-zero key reads back from its decimal, hex and octal
    /// spellings, and prints both ways.
    #[test]
    fn keys_round_trip(key in any::<i32>().prop_filter("not IPC_PRIVATE", |k| *k != 0)) {
        let want = SegmentId::SysV(key);
        prop_assert_eq!(SegmentId::parse_key(&key.to_string()).unwrap(), want.clone());
        prop_assert_eq!(SegmentId::parse_key(&format!("{:#x}", key as u32)).unwrap(), want.clone());
        prop_assert_eq!(SegmentId::parse_key(&format!("0o{:o}", key as u32)).unwrap(), want.clone());
        let shown = want.to_string();
        prop_assert_eq!(shown, format!("key {key} (0x{:08x})", key as u32));
    }

    /// A POSIX name is accepted exactly when `shm_open` can use it as one
    /// file in /dev/shm: then a segment of that name can be made, found and
    /// removed, and the name prints on one line.
    #[test]
    fn accepted_names_are_usable(suffix in prop_oneof![
        any::<String>(),
        "[a-z./\\\\ \n\t\"-]{0,8}",
        Just(".".to_owned()),
        Just(String::new()),
    ], slash in any::<bool>(), long in 0..260usize) {
        let prefix = unique_prefix();
        let mut name = format!("{prefix}{suffix}");
        if long > 200 {
            // Reach around the 255-byte limit.
            while name.len() < long { name.push('n'); }
        }
        let typed = if slash { format!("/{name}") } else { name.clone() };
        let valid = !name.contains('/') && !name.contains('\0') && name.len() <= 255;
        match SegmentId::posix(typed.clone()) {
            Ok(id) => {
                prop_assert!(valid, "{:?} accepted", typed);
                prop_assert_eq!(&id, &SegmentId::Posix(name.clone()));
                let shown = id.to_string();
                prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
                let missing = Segment::open(&id, Access::ReadOnly).unwrap_err().to_string();
                prop_assert!(!missing.contains('\n'), "{:?}", missing);
                let seg = Segment::create(&id, 1, 0o600);
                let removed = Segment::remove(&id);
                prop_assert!(seg.is_ok(), "{:?}: {:?}", name, seg.err());
                prop_assert!(removed.is_ok(), "{:?}: {:?}", name, removed.err());
            }
            Err(Error::Invalid(msg)) => {
                prop_assert!(!valid, "{:?} refused: {}", typed, msg);
                prop_assert!(msg.starts_with("invalid segment name "), "{}", msg);
                prop_assert!(!msg.contains('\n'), "{:?}", msg);
            }
            Err(e) => prop_assert!(false, "{:?}: {:?}", typed, e),
        }
    }
}

/// The names that can never be one file of /dev/shm.
#[test]
fn impossible_names_are_refused_with_the_reason() {
    for (name, why) in [
        ("", "it is empty"),
        ("/", "it is empty"),
        ("a/b", "it may not contain '/' after the first character"),
        ("//a", "it may not contain '/' after the first character"),
        ("x\0y", "it may not contain a NUL byte"),
        (".", "'.' and '..' are not segment names"),
        ("/..", "'.' and '..' are not segment names"),
    ] {
        let err = SegmentId::posix(name).expect_err(name);
        assert_eq!(
            err.to_string(),
            format!("invalid segment name {name:?}: {why}")
        );
    }
    let err = SegmentId::posix("n".repeat(256)).unwrap_err();
    assert!(err.to_string().ends_with("it is longer than 255 bytes"));
    SegmentId::posix("n".repeat(255)).expect("255 bytes is the limit");
}

/// Signs where only digits may stand: `from_str_radix` would take them.
#[test]
fn signed_digits_after_a_prefix_are_refused() {
    for text in ["0x-5", "0x+5", "--11", "-+5", "0o-7", "-0x-1", "+5"] {
        let err = SegmentId::parse_key(text).expect_err(text);
        assert_eq!(
            err.to_string(),
            format!("invalid key {text:?}: expected a 32-bit integer such as 5678 or 0x162e")
        );
    }
    assert_eq!(SegmentId::parse_key("-0x5").unwrap(), SegmentId::SysV(-5));
    assert_eq!(SegmentId::parse_key(" 0o17 ").unwrap(), SegmentId::SysV(15));
}
