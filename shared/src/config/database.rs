//! PostgreSQL settings: `DATABASE_URL`, `DB_POOL_MAX`, `SLOW_QUERY_MS`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, Env, Runtime};

/// What `Db` needs: where the database is, how many connections to hold, what is slow.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Holds the password of the database role, hence secret.
    url: SecretString,
    /// Upper bound of pooled connections; Lambda defaults to 2 because every warm container
    /// holds its own pool and PostgreSQL's `max_connections` is shared by all of them.
    pub pool_max: usize,
    /// Operations slower than this are logged as warnings with their name.
    pub slow_query: Duration,
}

impl DatabaseSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let url = env.require(
            "DATABASE_URL",
            " (e.g. postgres://user:pass@127.0.0.1:5432/basalt; scripts/dev sets one up)",
        )?;
        let default_pool = match env.runtime {
            Runtime::Host => 16,
            Runtime::Lambda => 2,
        };
        Ok(Self {
            url: url.into(),
            pool_max: env.positive_or("DB_POOL_MAX", default_pool)?,
            slow_query: Duration::from_millis(env.parse_or("SLOW_QUERY_MS", 500u64)?),
        })
    }

    /// The database URL, for the one place that connects.
    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }
}
