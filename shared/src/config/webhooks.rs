//! Webhooks: `WEBHOOK_ENCRYPTION_KEY`, `WEBHOOK_ALLOW_INSECURE`, `WEBHOOK_ALLOW_PRIVATE_TARGETS`.

use super::{ConfigError, Env, invalid};
use crate::{sealed::SealingKey, ssrf};

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Seals signing secrets at rest. Unset: the webhooks routes answer 503 naming it, and
    /// nothing else changes.
    pub encryption_key: Option<SealingKey>,
    /// Which endpoint URLs the SSRF guard lets through.
    pub targets: ssrf::Policy,
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
        })
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
