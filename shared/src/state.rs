//! The state every handler receives.

use std::sync::Arc;

use crate::{
    auth::{jwt::JwtKeys, known_users::KnownUsers},
    config::Config,
    db::Db,
    rate_limit::RateLimiter,
};

/// Cheap to clone: everything behind an `Arc` or already shared (the pool).
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    /// Derived once from `JWT_SECRET`, not per request.
    pub jwt: Arc<JwtKeys>,
    /// One per process: Redis connection manager plus the in-memory fallback.
    pub limiter: Arc<RateLimiter>,
    /// Users whose existence was confirmed in the last two seconds (see `known_users`).
    pub known_users: Arc<KnownUsers>,
}

impl AppState {
    /// Builds the state without touching the network (the pool connects on first use).
    pub fn new(config: Config) -> Result<Self, StateError> {
        let db = Db::new(&config)?;
        Self::with_db(config, db)
    }

    pub fn with_db(config: Config, db: Db) -> Result<Self, StateError> {
        Ok(Self {
            jwt: Arc::new(JwtKeys::new(&config.jwt_secret, config.jwt_ttl)?),
            limiter: Arc::new(RateLimiter::new(&config)?),
            known_users: Arc::default(),
            config: Arc::new(config),
            db,
        })
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
