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
                allow_insecure: env.flag("WEBHOOK_ALLOW_INSECURE")?,
                allow_private: env.flag("WEBHOOK_ALLOW_PRIVATE_TARGETS")?,
            },
        })
    }
}
