//! Text that came from a segment or from the user, made safe to print on a
//! terminal: a name holding a newline could forge a line of output, and one
//! holding an escape sequence could retitle or repaint the terminal. JSON
//! output needs none of this (its strings are escaped already).

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1), and every character
/// that reorders text on screen (the bidirectional overrides and
/// isolates), written as an escape: `\n`, `\r`, `\t`, `\x1b`, `\u{202e}`.
/// Borrowed when there is nothing to escape, which is the common case.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::escape;
    use std::borrow::Cow;

    #[test]
    fn counts_agree_with_their_nouns() {}

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(escape("alice_01.x-y €"), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\u{1b}]0;pwned\u{7}"), "\\x1b]0;pwned\\x07");
        assert_eq!(escape("\r\t\u{7f}\u{9b}"), "\\r\\t\\x7f\\x9b");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
    }
}
