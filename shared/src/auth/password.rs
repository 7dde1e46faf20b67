//! Password hashing with bcrypt: on the blocking thread pool, a bounded number at a time.
//!
//! A cost-12 hash takes ~250 ms of CPU; on the async executor that would stall every other
//! request on the worker thread, hence `spawn_blocking`, inside the request's span
//! (clippy.toml forbids calling bcrypt directly anywhere else). The blocking pool alone does not
//! bound the CPU (it grows to 512 threads): a burst of sign-ins became as many hashing threads
//! as requests, all competing with the async workers for the cores, so every request slowed
//! with the burst and each sign-in took longer the bigger it was. So [`Passwords`] lets one
//! hash per core run at a time; a caller waits briefly for its turn and is otherwise told to
//! come back (503 with `Retry-After`).
#![allow(clippy::disallowed_methods)]

use std::{sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    error::{ApiError, FieldError},
    validate::no_nul,
};

/// How long a hash or verification waits for a free core before the request is refused.
///
/// The semaphore is first come, first served, so with `n` permits and a hash of `h` (~250 ms at
/// cost 12) this admits a queue of about `2n` callers, each waiting at most half a second on
/// top of its own hash: a burst of honest sign-ins still feels normal. Beyond that, waiting
/// longer would only make every sign-in slower (the queue grows without bound under a flood,
/// each waiter holding a connection up to the request timeout) while a quick 503 lets clients
/// back off. Waiting costs a parked task, not a thread.
pub const PERMIT_WAIT: Duration = Duration::from_millis(500);

/// What a refused caller is told to wait: by then the permits have turned over a few times.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

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

/// bcrypt at the configured cost, at most `concurrency` hashes at once.
#[derive(Debug)]
pub struct Passwords {
    cost: u32,
    /// One permit per hash allowed to run; owned permits so a cancelled request (a timeout, a
    /// client gone) still holds its permit until the blocking thread has finished the hash.
    permits: Arc<Semaphore>,
    /// What an unknown email is verified against, so it costs one verification at the
    /// configured cost like a known one. A well-formed hash string with that cost and all-zero
    /// salt and digest: verifying against it takes exactly as long as against a real hash (the
    /// work depends only on the cost) and never succeeds, and making it costs nothing, so no
    /// container pays a hash at start-up or, worse, on its first unknown-email sign-in (which
    /// then took twice as long: a timing oracle for "this email is not registered").
    dummy: String,
}

impl Passwords {
    /// `concurrency` is clamped to at least 1.
    pub fn new(cost: u32, concurrency: usize) -> Self {
        Self {
            cost,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: format!("$2b${cost:02}${}", ".".repeat(53)),
        }
    }

    /// The configured work factor (`BCRYPT_COST`).
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// Hashes at the configured cost.
    pub async fn hash(&self, password: SecretString) -> Result<String, ApiError> {
        let cost = self.cost;
        self.on_blocking_pool(move || bcrypt::hash(password.expose_secret(), cost))
            .await?
            .map_err(ApiError::internal)
    }

    /// Whether `password` matches `hash`. With `hash: None` (unknown account) it still spends
    /// one verification, against the dummy hash, and returns false, so response time does not
    /// reveal which emails are registered.
    pub async fn verify(
        &self,
        password: SecretString,
        hash: Option<String>,
    ) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.clone());
        let ok = self
            .on_blocking_pool(move || bcrypt::verify(password.expose_secret(), &hash))
            .await?
            .map_err(ApiError::internal)?;
        Ok(ok && known)
    }

    /// Whether `hash` was made at another cost than the configured one (`BCRYPT_COST` changed
    /// since), so a sign-in that just proved the password should store a fresh hash.
    pub fn needs_rehash(&self, hash: &str) -> bool {
        hash.parse::<bcrypt::HashParts>()
            .is_ok_and(|parts| parts.get_cost() != self.cost)
    }

    /// Runs `f` on the blocking pool once a permit is free, or refuses with 503 after
    /// [`PERMIT_WAIT`].
    async fn on_blocking_pool<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(PERMIT_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                ApiError::overloaded(
                    "too many passwords are being checked at once; retry after the Retry-After \
                     seconds",
                    RETRY_AFTER.as_secs(),
                )
            })?
            // Never closed: `Passwords` owns the semaphore and does not close it.
            .map_err(ApiError::internal)?;
        on_blocking_pool(permit, f)
            .await
            .map_err(ApiError::internal)
    }
}

/// Runs `f` on the blocking pool inside the caller's tracing span (and subscriber, which may be
/// a scoped one), so anything it logs keeps the request id; `permit` is released when `f` is
/// done, whether or not anyone still awaits the result.
async fn on_blocking_pool<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(f))
    })
    .await
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
        let passwords = Passwords::new(4, 1);
        let span_name = async {
            passwords
                .on_blocking_pool(|| tracing::Span::current().metadata().map(|m| m.name()))
                .await
                .unwrap()
        }
        .instrument(tracing::info_span!("request"))
        .await;
        assert_eq!(span_name, Some("request"));
    }

    #[tokio::test]
    async fn hash_verify_round_trip_and_unknown_account_is_false() {
        let passwords = Passwords::new(4, 2);
        let h = passwords.hash("correct horse".into()).await.unwrap();
        assert!(
            passwords
                .verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("wrong horse!".into(), Some(h))
                .await
                .unwrap()
        );
        assert!(!passwords.verify("".into(), None).await.unwrap());
    }

    #[test]
    fn the_dummy_hash_exists_at_the_configured_cost_without_hashing() {
        // Hashing at cost 31 would take days: building the dummy must not hash.
        let started = std::time::Instant::now();
        let passwords = Passwords::new(31, 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        let parts: bcrypt::HashParts = passwords.dummy.parse().unwrap();
        assert_eq!(parts.get_cost(), 31);
        // Well-formed at a cheap cost too: verifying against it is a real verification that
        // fails, not a parse error.
        let cheap = Passwords::new(4, 1);
        assert_eq!(bcrypt::verify("", &cheap.dummy).ok(), Some(false));
        assert_eq!(bcrypt::verify("password", &cheap.dummy).ok(), Some(false));
    }

    #[tokio::test]
    async fn an_unknown_email_costs_what_a_known_one_does_from_the_first_sign_in() {
        // The first unknown-email verification of a fresh process (a Lambda container) used to
        // build the dummy hash first: twice the time of a known email's. Minimum of a few
        // fresh instances each, so a busy machine's noise does not decide.
        let cost = 8;
        let stored = Passwords::new(cost, 1)
            .hash("a password".into())
            .await
            .unwrap();
        let (mut unknown, mut known) = (Duration::MAX, Duration::MAX);
        for _ in 0..5 {
            let passwords = Passwords::new(cost, 1);
            let started = std::time::Instant::now();
            assert!(!passwords.verify("guess".into(), None).await.unwrap());
            unknown = unknown.min(started.elapsed());
            let passwords = Passwords::new(cost, 1);
            let started = std::time::Instant::now();
            assert!(
                !passwords
                    .verify("guess".into(), Some(stored.clone()))
                    .await
                    .unwrap()
            );
            known = known.min(started.elapsed());
        }
        assert!(
            unknown.as_secs_f64() < known.as_secs_f64() * 1.5,
            "unknown {unknown:?} vs known {known:?}"
        );
    }

    #[tokio::test]
    async fn beyond_the_bound_a_caller_waits_briefly_then_gets_503_with_retry_after() {
        use axum::response::IntoResponse;
        let passwords = Passwords::new(4, 1);
        let held = passwords.permits.clone().try_acquire_owned().unwrap();
        let started = std::time::Instant::now();
        let err = passwords.verify("guess".into(), None).await.unwrap_err();
        let waited = started.elapsed();
        assert!(
            (PERMIT_WAIT..PERMIT_WAIT * 4).contains(&waited),
            "{waited:?}"
        );
        let res = err.into_response();
        assert_eq!(res.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[http::header::RETRY_AFTER], "1");
        // A caller that arrives while the permit is held gets it as soon as it is returned.
        let waiter = passwords.verify("guess".into(), None);
        let release = async {
            tokio::time::sleep(PERMIT_WAIT / 4).await;
            drop(held);
        };
        let (verified, ()) = tokio::join!(waiter, release);
        assert!(!verified.unwrap());
    }

    #[tokio::test]
    async fn a_cancelled_hash_keeps_its_permit_until_the_hash_is_done() {
        let passwords = Arc::new(Passwords::new(12, 1));
        let task = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.hash("a password".into()).await }
        });
        // Let the hash start on its blocking thread, then give up on it, as a request timeout
        // or a vanished client does.
        tokio::time::sleep(Duration::from_millis(50)).await;
        task.abort();
        let _ = task.await;
        // The core is still busy, so the permit is still taken...
        assert_eq!(passwords.permits.available_permits(), 0);
        // ...until the thread is done with it.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while passwords.permits.available_permits() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "permit never returned"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
