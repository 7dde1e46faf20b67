//! Email addresses: a display form, a canonical form for uniqueness and sign-in, and the
//! characters neither may contain.
//!
//! The shape check is deliberately shallow (the only real check is a confirmation mail), but
//! two addresses a person cannot tell apart must be one account. PostgreSQL cannot decide that
//! here: `lower()` under the C locale folds ASCII only, so `ＡＮＮ@example.com` (fullwidth) and
//! `ANN@EXAMPLE.COM`, or `Straße` and `STRASSE`, used to register twice. [`canonical`] is
//! Unicode's compatibility caseless form (NFKC with full case folding; the standard's §3.13, D146), computed
//! in Rust and stored in `users.email_canonical` under a unique index.
//!
//! Characters that render as nothing are refused outright instead of being folded away: format
//! characters (General Category Cf: zero-width space and joiners, word joiner, BOM, soft hyphen,
//! every bidi control such as U+202E RIGHT-TO-LEFT OVERRIDE) make an address that looks like
//! another one, and control characters (Cc, NUL included) have no place in one.

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::{
    db::Db,
    error::FieldError,
    repo::users::{self, NewEmail, User},
    validate,
};

pub const MAX_EMAIL_LEN: usize = 254;

/// An address that passed [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// What is stored in `users.email` and shown back: trimmed and NFKC-normalised (so a
    /// fullwidth address reads as the ASCII it stands for), case kept as typed.
    pub address: String,
    /// The uniqueness and sign-in key ([`canonical`] of `address`).
    pub canonical: String,
}

/// Checks an address for registration or an email change; returns what to store.
pub fn parse(field: &str, raw: &str) -> Result<Email, FieldError> {
    let trimmed = raw.trim();
    validate::single_line(field, trimmed)?;
    if trimmed.chars().any(is_format) {
        return Err(FieldError::new(
            field,
            "must not contain invisible formatting characters (zero-width or bidi controls)",
        ));
    }
    let address: String = trimmed.nfkc().collect();
    let valid = address.len() <= MAX_EMAIL_LEN
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_format(c))
        && address.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !valid {
        return Err(FieldError::new(
            field,
            "must be an email address of at most 254 characters",
        ));
    }
    let canonical = canonical(&address);
    Ok(Email { address, canonical })
}

/// The key two look-alike addresses share: NFKD(fold(NFKD(fold(NFD(x))))) per Unicode's
/// "compatibility caseless match" (D146), recomposed with NFKC so it stays short. Full case
/// folding, not `to_lowercase`: lowercase keeps `ß` while `STRASSE` lowercases to `strasse`,
/// and it maps final sigma by context; folding maps `ß`, `ẞ` and `SS` to `ss` and `ς` to `σ`.
/// The double fold and decomposition are the standard's, for characters whose fold or
/// compatibility mapping produces something that folds or decomposes again.
///
/// Does not validate: sign-in uses it on whatever was typed (after refusing control
/// characters), and a value that could never register simply matches no account.
pub fn canonical(address: &str) -> String {
    address
        .trim()
        .chars()
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkc()
        .collect()
}

impl Email {
    /// The pair `repo::users` stores.
    pub fn as_new(&self) -> NewEmail<'_> {
        NewEmail {
            address: &self.address,
            canonical: &self.canonical,
        }
    }
}

/// Gives an account stored before migration V3 without a canonical form (a non-ASCII address)
/// that form, once its owner has signed in with it. Best effort: sign-in keeps finding the row
/// by the old comparison if this fails, and an address that would not pass [`parse`] today
/// keeps no canonical form.
pub async fn complete_legacy(db: &Db, user: &User) {
    if user.email_canonical.is_some() {
        return;
    }
    let Ok(email) = parse("email", &user.email) else {
        return;
    };
    if let Err(e) = users::set_canonical(db, user.id, &email.canonical).await {
        // A unique violation: a look-alike registered before this account signed in again.
        tracing::warn!(user_id = %user.id, error = %e, "could not store a canonical email");
    }
}

fn is_format(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_addresses_and_refuses_garbage() {
        let e = parse("email", "  Ann@Example.com ").unwrap();
        assert_eq!(e.address, "Ann@Example.com");
        assert_eq!(e.canonical, "ann@example.com");
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@localhost",
            "a b@example.com",
            "ann@.com",
        ] {
            assert!(parse("email", bad).is_err(), "{bad}");
        }
        assert!(parse("email", &format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn look_alikes_share_one_canonical_form() {
        for (a, b) in [
            ("ANN@EXAMPLE.COM", "ＡＮＮ@example.com"),
            ("Straße@example.de", "STRASSE@example.de"),
            ("STRAẞE@example.de", "strasse@EXAMPLE.de"),
            ("ΣΟΦΟΣ@example.gr", "σοφος@example.gr"),
            // Precomposed vs combining acute accent; ligature vs letters.
            ("jos\u{e9}@example.com", "JOSE\u{301}@example.com"),
            ("\u{fb01}nn@example.com", "FINN@example.com"),
        ] {
            let (ca, cb) = (
                parse("email", a).unwrap().canonical,
                parse("email", b).unwrap().canonical,
            );
            assert_eq!(ca, cb, "{a} vs {b}");
            // And already canonical: folding it again changes nothing.
            assert_eq!(canonical(&ca), ca);
        }
        assert_eq!(
            parse("email", "ＡＮＮ@example.com").unwrap().address,
            "ANN@example.com"
        );
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in [
            "ann\u{200b}@example.com", // zero-width space
            "ann\u{200d}@example.com", // zero-width joiner
            "ann\u{2060}@example.com", // word joiner
            "\u{feff}ann@example.com", // BOM
            "ann\u{202e}moc.elpmaxe@", // right-to-left override
            "ann\u{2067}@example.com", // right-to-left isolate
            "ann\u{200f}@example.com", // right-to-left mark
            "ann\u{ad}@example.com",   // soft hyphen
            "ann\0@example.com",
            "ann\u{1b}@example.com",
            "ann\n@example.com",
        ] {
            let err = parse("email", bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad:?}");
        }
    }
}
