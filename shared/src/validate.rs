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
