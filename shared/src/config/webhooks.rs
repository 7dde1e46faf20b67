//! Webhooks: `WEBHOOK_ENCRYPTION_KEY`, `WEBHOOK_ALLOW_INSECURE`, `WEBHOOK_ALLOW_PRIVATE_TARGETS`,
//! and delivery's `WEBHOOK_RETRY_SCHEDULE_SECONDS`, `WEBHOOK_TIMEOUT_MS`,
//! `WEBHOOK_DISABLE_AFTER_SECONDS`.

use std::time::Duration;

use super::{ConfigError, Env, invalid};
use crate::{sealed::SealingKey, ssrf};

/// The Standard Webhooks schedule: the wait before each attempt of a message, the first
/// immediate; after the last attempt fails the delivery is dead.
pub const DEFAULT_RETRY_SCHEDULE: &str = "0,5,300,1800,7200,18000,36000,50400,72000,86400";
/// An endpoint failing continuously this long (5 days) is disabled.
pub const DEFAULT_DISABLE_AFTER_SECONDS: u64 = 5 * 24 * 3600;
/// The spec's recommended attempt timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 15_000;
/// The longest attempt timeout accepted: under the delivery job's own timeout (60 s).
const MAX_TIMEOUT_MS: u64 = 50_000;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Seals signing secrets at rest. Unset: the webhooks routes answer 503 naming it, and
    /// nothing else changes.
    pub encryption_key: Option<SealingKey>,
    /// Which endpoint URLs the SSRF guard lets through.
    pub targets: ssrf::Policy,
    /// The wait before each attempt of a message (the first is 0): its length is the number
    /// of attempts. Tests shorten it; deployments keep the default.
    pub retry_schedule: Vec<Duration>,
    /// One attempt's limit, connecting and reading included.
    pub timeout: Duration,
    /// An endpoint whose every attempt has failed for this long is disabled.
    pub disable_after: Duration,
}

impl WebhookSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let encryption_key = env
            .get("WEBHOOK_ENCRYPTION_KEY")
            .map(|raw| {
                SealingKey::from_base64(&raw)
                    .map_err(|e| invalid("WEBHOOK_ENCRYPTION_KEY", "(hidden)", &e.to_string()))
            })
            .transpose()?;
        Ok(Self {
            encryption_key,
            targets: ssrf::Policy {
                allow_insecure: dev_only(env, "WEBHOOK_ALLOW_INSECURE")?,
                allow_private: dev_only(env, "WEBHOOK_ALLOW_PRIVATE_TARGETS")?,
            },
            retry_schedule: retry_schedule(env)?,
            timeout: Duration::from_millis(timeout_ms(env)?),
            disable_after: Duration::from_secs(env.positive_or(
                "WEBHOOK_DISABLE_AFTER_SECONDS",
                DEFAULT_DISABLE_AFTER_SECONDS,
            )?),
        })
    }

    /// How long after its event a new message's first attempt is due: the schedule's first
    /// wait (the API's test messages and the worker's fan-out both start here).
    pub fn first_wait(&self) -> Duration {
        self.retry_schedule.first().copied().unwrap_or_default()
    }

    /// The key, or the error naming it: for a process that serves webhooks (DESIGN.md:
    /// "required where webhooks run").
    pub fn require_key(&self) -> Result<&SealingKey, ConfigError> {
        self.encryption_key.as_ref().ok_or(ConfigError::Missing {
            name: "WEBHOOK_ENCRYPTION_KEY",
            hint: " (32 random bytes in base64, e.g. `openssl rand -base64 32`; it seals webhook \
                   signing secrets at rest)",
        })
    }
}

/// A switch that loosens the SSRF guard: refused outside development (`BASALT_DEV=1`).
fn dev_only(env: &Env<'_>, name: &'static str) -> Result<bool, ConfigError> {
    let on = env.flag(name)?;
    if on && !env.dev_mode {
        return Err(invalid(
            name,
            "1",
            "is for development only: set BASALT_DEV=1 too",
        ));
    }
    Ok(on)
}

/// `WEBHOOK_RETRY_SCHEDULE_SECONDS`: comma-separated non-negative seconds (fractions allowed),
/// at most 30 entries, none over a day.
fn retry_schedule(env: &Env<'_>) -> Result<Vec<Duration>, ConfigError> {
    const NAME: &str = "WEBHOOK_RETRY_SCHEDULE_SECONDS";
    let raw = env
        .get(NAME)
        .unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE.to_owned());
    let bad = |reason: &str| invalid(NAME, &raw, reason);
    let schedule = raw
        .split(',')
        .map(|part| {
            let seconds: f64 = part.trim().parse().map_err(|_| {
                bad("must be comma-separated seconds, e.g. 0,5,300 (the wait before each attempt)")
            })?;
            if !(0.0..=86_400.0).contains(&seconds) {
                return Err(bad("each wait must be between 0 and 86400 seconds"));
            }
            Ok(Duration::from_secs_f64(seconds))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if schedule.len() > 30 {
        return Err(bad("at most 30 attempts"));
    }
    Ok(schedule)
}

fn timeout_ms(env: &Env<'_>) -> Result<u64, ConfigError> {
    let ms = env.positive_or("WEBHOOK_TIMEOUT_MS", DEFAULT_TIMEOUT_MS)?;
    if ms > MAX_TIMEOUT_MS {
        return Err(invalid(
            "WEBHOOK_TIMEOUT_MS",
            &ms.to_string(),
            &format!("must be at most {MAX_TIMEOUT_MS} (a delivery job's own limit is 60 s)"),
        ));
    }
    Ok(ms)
}
