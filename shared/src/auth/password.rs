//! Password hashing with bcrypt, always on the blocking thread pool.
//!
//! A cost-12 hash takes ~250 ms of CPU; on the async executor that would stall every other
//! request on the worker thread, hence `spawn_blocking`, inside the request's span
//! (clippy.toml forbids calling bcrypt directly anywhere else).
#![allow(clippy::disallowed_methods)]

use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};

use crate::{
    error::{ApiError, FieldError},
    validate::no_nul,
};

/// bcrypt reads at most 72 bytes; longer passwords are refused rather than silently truncated
/// (two passwords sharing a 72-byte prefix would otherwise be equal).
pub const MAX_PASSWORD_BYTES: usize = 72;
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Checks the length rules and refuses NUL (see `no_nul` for why only NUL); the
/// error names `field` so a form can show it next to the input.
pub fn validate(field: &str, password: &str) -> Result<(), FieldError> {
    no_nul(field, password)?;
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_PASSWORD_BYTES} bytes (bcrypt ignores the rest)"),
        ));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Runs `f` on the blocking pool inside the caller's tracing span (and subscriber, which may be
/// a scoped one), so anything it logs keeps the request id.
async fn on_blocking_pool<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(f))
    })
    .await
}

/// Hashes on the blocking pool.
pub async fn hash(password: SecretString, cost: u32) -> Result<String, ApiError> {
    on_blocking_pool(move || bcrypt::hash(password.expose_secret(), cost))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Verifies on the blocking pool. With `hash: None` (unknown account) it still spends one
/// verification against a dummy hash of the same cost and returns false, so response time
/// does not reveal which emails are registered.
pub async fn verify(
    password: SecretString,
    hash: Option<String>,
    cost: u32,
) -> Result<bool, ApiError> {
    on_blocking_pool(move || {
        let known = hash.is_some();
        let hash = match hash {
            Some(h) => h,
            None => dummy_hash(cost)?.to_owned(),
        };
        let ok = bcrypt::verify(password.expose_secret(), &hash)?;
        Ok::<_, bcrypt::BcryptError>(ok && known)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

fn dummy_hash(cost: u32) -> Result<&'static str, bcrypt::BcryptError> {
    static DUMMY: OnceLock<(u32, String)> = OnceLock::new();
    if let Some((c, h)) = DUMMY.get()
        && *c == cost
    {
        return Ok(h);
    }
    let h = bcrypt::hash("basalt-dummy-password", cost)?;
    Ok(&DUMMY.get_or_init(|| (cost, h)).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules() {
        assert!(validate("password", "short").is_err());
        assert!(validate("password", "long enough").is_ok());
        assert!(validate("password", &"a".repeat(72)).is_ok());
        let err = validate("password", &"a".repeat(73)).unwrap_err();
        assert_eq!(err.field, "password");
        assert!(err.message.contains("72"));
        // Bytes, not characters: 25 three-byte characters are 75 bytes.
        assert!(validate("password", &"€".repeat(25)).is_err());
        assert!(validate("password", "long enough\0").is_err());
        assert!(validate("password", "tab\tand\u{1b}escape").is_ok());
    }

    #[tokio::test]
    async fn blocking_work_runs_in_the_callers_span() {
        use tracing::Instrument;
        let subscriber = tracing_subscriber::registry();
        let _guard = tracing::subscriber::set_default(subscriber);
        let span_name = async {
            on_blocking_pool(|| tracing::Span::current().metadata().map(|m| m.name()))
                .await
                .unwrap()
        }
        .instrument(tracing::info_span!("request"))
        .await;
        assert_eq!(span_name, Some("request"));
    }

    #[tokio::test]
    async fn hash_verify_round_trip_and_unknown_account_is_false() {
        let h = hash(SecretString::from("correct horse"), 4).await.unwrap();
        assert!(
            verify("correct horse".into(), Some(h.clone()), 4)
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse!".into(), Some(h), 4).await.unwrap());
        assert!(
            !verify("basalt-dummy-password".into(), None, 4)
                .await
                .unwrap()
        );
    }
}
