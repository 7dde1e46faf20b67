//! The state every handler receives.

use std::{ops::Deref, sync::Arc};

use crate::{auth::Authenticator, config::Config, db::Db, rate_limit::RateLimiter};

/// What handlers and middleware share. One `Arc`: the chain clones the state for each of its
/// stateful layers on every request, and one reference count is cheaper than five.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub db: Db,
    /// JWT keys, the memory of confirmed users and of verified API keys.
    pub auth: Authenticator,
    /// One per process: Redis connection manager plus the in-memory fallback.
    pub limiter: RateLimiter,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Builds the state without touching the network (the pool and Redis connect on first use).
    pub fn new(config: Config) -> Result<Self, StateError> {
        let db = Db::new(&config.database)?;
        Self::with_db(config, db)
    }

    pub fn with_db(config: Config, db: Db) -> Result<Self, StateError> {
        Ok(Self(Arc::new(Shared {
            auth: Authenticator::new(&config.auth, db.clone())?,
            limiter: RateLimiter::new(&config.rate_limit)?,
            config,
            db,
        })))
    }
}

/// Why the state could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("REDIS_URL is not usable: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("JWT_SECRET cannot be used as an HS256 key: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}
