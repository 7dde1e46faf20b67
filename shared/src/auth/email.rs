//! Email address checks: deliberately shallow (the only real check is a confirmation mail),
//! but enough to refuse obvious garbage and over-long values.

use crate::error::FieldError;

pub const MAX_EMAIL_LEN: usize = 254;

/// Trims and checks `email`; returns the value to store.
pub fn normalize(field: &str, email: &str) -> Result<String, FieldError> {
    let email = email.trim();
    let valid = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.rsplit_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(FieldError::new(
            field,
            "must be an email address of at most 254 characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_addresses_and_refuses_garbage() {
        assert_eq!(
            normalize("email", "  Ann@Example.com ").unwrap(),
            "Ann@Example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@localhost",
            "a b@example.com",
            "ann@.com",
        ] {
            assert!(normalize("email", bad).is_err(), "{bad}");
        }
        assert!(normalize("email", &format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
