use super::ls::glob;

#[test]
fn patterns_match_like_the_shell() {
    for (p, s) in [
        ("shmex-*", "shmex-exchange"),
        ("*", ""),
        ("*x*", "exchange"),
        ("a?c", "abc"),
        ("0x5e*", "0x5e001234"),
        ("*-*-1", "a-b-c-1"),
        ("exact", "exact"),
    ] {
        assert!(glob(p.as_bytes(), s.as_bytes()), "{p} vs {s}");
    }
    for (p, s) in [
        ("shmex-*", "other"),
        ("a?c", "ac"),
        ("x", "xy"),
        ("*a", "ab"),
    ] {
        assert!(!glob(p.as_bytes(), s.as_bytes()), "{p} vs {s}");
    }
}
