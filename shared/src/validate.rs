//! Character rules for text fields, checked before a value reaches PostgreSQL.
//!
//! PostgreSQL's `text` cannot hold NUL at all: a `"\u0000"` in a JSON body would otherwise be a
//! 500 (`invalid byte sequence for encoding "UTF8": 0x00`) instead of a 422 naming the field.
//! Other control characters (C0, DEL, C1) are storable but have no business in a one-line
//! value someone reads back in a list (a title, a key name, an email): they hide text, move
//! the cursor or end lines in whatever displays them. Multi-line text keeps the characters
//! that make lines (tab, LF, CR: a browser's textarea sends CRLF). Each function returns a
//! [`FieldError`] naming the field, so handlers collect them like their other checks.

use crate::error::FieldError;

/// The JSON Schema `pattern` of what [`visible_line`] accepts: no control character, and at
/// least one character that is neither a control nor white space (`char::is_whitespace`'s
/// set, spelled out so that every regex dialect reads it alike).
pub const VISIBLE_LINE_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$";

/// The JSON Schema `pattern` of what [`multi_line`] accepts.
pub const MULTI_LINE_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// A one-line value people read back (a title, a key name): at most `max` characters as sent
/// (what the schema's `maxLength` says), not blank, no control characters. Returns it trimmed,
/// as it is stored.
pub fn visible_line<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    single_line(field, value)?;
    Ok(trimmed)
}

/// A one-line value (title, key name): no control characters at all.
pub fn single_line(field: &str, value: &str) -> Result<(), FieldError> {
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters (including NUL, tab and line breaks)",
        ));
    }
    Ok(())
}

/// Multi-line text (a description): tab and line breaks are allowed, other control
/// characters are not.
pub fn multi_line(field: &str, value: &str) -> Result<(), FieldError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters other than tab and line breaks",
        ));
    }
    Ok(())
}

/// A secret that is only hashed, never stored or shown (a password): anything but NUL.
///
/// NUL is refused because C-string bcrypt implementations (libxcrypt, OpenBSD, PHP's `crypt`)
/// stop at it, so a hash moved to one of them would accept any password sharing the part
/// before the NUL; no one types a NUL, so refusing it costs no real user anything. Every other
/// character stays allowed (NIST SP 800-63B: accept spaces and all of Unicode), since a
/// password is never displayed.
pub fn no_nul(field: &str, value: &str) -> Result<(), FieldError> {
    if value.contains('\0') {
        return Err(FieldError::new(field, "must not contain NUL characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The patterns say what the functions do, character by character: every control
    /// character and every white-space one, each alone and beside a visible one.
    #[test]
    fn the_schema_patterns_match_the_checks() {
        let visible = regex::Regex::new(VISIBLE_LINE_PATTERN).unwrap();
        let multi = regex::Regex::new(MULTI_LINE_PATTERN).unwrap();
        let interesting = (0u32..0x3100)
            .filter_map(char::from_u32)
            .filter(|c| c.is_control() || c.is_whitespace() || *c == 'a' || *c == 'é');
        for c in interesting {
            for value in [c.to_string(), format!("a{c}"), format!("{c}a{c}")] {
                assert_eq!(
                    visible_line("t", &value, 10).is_ok(),
                    visible.is_match(&value),
                    "{value:?}"
                );
                assert_eq!(
                    multi_line("d", &value).is_ok(),
                    multi.is_match(&value),
                    "{value:?}"
                );
            }
        }
        // The constants spell that rule: the white space they exclude is `is_whitespace`'s
        // non-control set.
        let spaces: Vec<char> = (0u32..0x11_0000)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace() && !c.is_control())
            .collect();
        assert_eq!(
            spaces,
            [
                ' ', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}',
                '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200a}',
                '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}'
            ]
        );
        assert!(
            VISIBLE_LINE_PATTERN.contains(r"\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]")
        );
        assert!(visible_line("t", &"x".repeat(11), 10).is_err());
        assert_eq!(visible_line("t", "  ok  ", 10).unwrap(), "ok");
    }

    #[test]
    fn one_line_values_refuse_every_control_character() {
        assert!(single_line("title", "Groceries – März 🛒").is_ok());
        for bad in [
            "a\0b",
            "a\tb",
            "a\nb",
            "a\rb",
            "a\u{1b}[31m",
            "a\u{7f}",
            "a\u{85}",
        ] {
            let err = single_line("title", bad).unwrap_err();
            assert_eq!(err.field, "title", "{bad:?}");
        }
    }

    #[test]
    fn multi_line_text_keeps_tabs_and_line_breaks_only() {
        assert!(multi_line("description", "line 1\r\nline 2\n\tindented").is_ok());
        for bad in ["a\0b", "a\u{1b}b", "a\u{7}b", "a\u{9b}b"] {
            assert_eq!(
                multi_line("description", bad).unwrap_err().field,
                "description",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn secrets_refuse_only_nul() {
        assert!(no_nul("password", "tab\there\u{1b} and ✓").is_ok());
        assert_eq!(
            no_nul("password", "abc\0def").unwrap_err().field,
            "password"
        );
    }
}
