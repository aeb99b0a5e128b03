//! The characters the draft forbids in topics, matchers, ids and event types: C0 and C1
//! controls, DEL, and the Unicode format characters (general category `Cf`: the bidirectional
//! and zero-width controls that make identifiers look like others).

/// The Unicode 17.0 characters of general category `Cf`, as inclusive ranges.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// A control character (C0, DEL, C1) or a format character.
pub fn is_forbidden_char(c: char) -> bool {
    let n = c as u32;
    n < 0x20 || (0x7F..=0x9F).contains(&n) || FORMAT.iter().any(|&(lo, hi)| lo <= n && n <= hi)
}

/// Refuses a value holding a forbidden character, naming `what` and where, never the value.
pub fn check_text(what: &str, value: &str) -> Result<(), String> {
    match value.chars().position(is_forbidden_char) {
        None => Ok(()),
        Some(at) => Err(format!(
            "{what} holds a control or invisible format character (at character {at})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_format_characters_are_forbidden() {
        for c in [
            '\0', '\n', '\r', '\u{7F}', '\u{85}', '\u{9F}', '\u{200B}', '\u{202E}',
        ] {
            assert!(is_forbidden_char(c), "{c:?}");
        }
        for c in ['\u{2066}', '\u{FEFF}', '\u{E0041}', '\u{AD}', '\u{61C}'] {
            assert!(is_forbidden_char(c), "{c:?}");
        }
        for c in [
            'a',
            ' ',
            '~',
            '\u{A0}',
            'é',
            '€',
            '\u{1F600}',
            '\u{2065}',
            '/',
        ] {
            assert!(!is_forbidden_char(c), "{c:?}");
        }
        assert!(check_text("match", "https://example.com/books/1").is_ok());
        let why = check_text("match", "a\u{202E}b").unwrap_err();
        assert!(
            why.contains("match") && why.contains("character 1"),
            "{why}"
        );
    }
}
