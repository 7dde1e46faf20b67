//! The state every handler receives.

use std::{ops::Deref, sync::Arc};

use crate::{
    auth::{api_key::VerifiedKeys, jwt::JwtKeys, known_users::KnownUsers},
    config::Config,
    db::Db,
    rate_limit::RateLimiter,
};

/// What handlers and middleware share. One `Arc`: the chain clones the state for each of its
/// stateful layers on every request, and one reference count is cheaper than five.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub db: Db,
    /// Derived once from `JWT_SECRET`, not per request.
    pub jwt: JwtKeys,
    /// One per process: Redis connection manager plus the in-memory fallback.
    pub limiter: RateLimiter,
    /// Users whose existence was confirmed in the last two seconds (see `known_users`).
    pub known_users: KnownUsers,
    /// API keys that authenticated here: only their prefixes are rate-limit principals.
    pub verified_keys: VerifiedKeys,
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
        let db = Db::new(&config)?;
        Self::with_db(config, db)
    }

    pub fn with_db(config: Config, db: Db) -> Result<Self, StateError> {
        Ok(Self(Arc::new(Shared {
            jwt: JwtKeys::new(&config.jwt_secret, config.jwt_ttl)?,
            limiter: RateLimiter::new(&config)?,
            known_users: KnownUsers::default(),
            verified_keys: VerifiedKeys::default(),
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
