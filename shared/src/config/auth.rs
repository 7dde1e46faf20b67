//! Credential settings: `JWT_SECRET`, `JWT_TTL_SECONDS`, `BCRYPT_COST`,
//! `REAUTH_WINDOW_SECONDS`.

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, Env, invalid};

/// Minimum HS256 key length: a shorter key is brute-forceable offline from any issued token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Longest access-token lifetime accepted: a year. Access tokens are meant to be short-lived
/// (there is no revocation list), and far larger values overflow the `exp` claim.
const MAX_JWT_TTL_SECONDS: u64 = 365 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub jwt_secret: SecretString,
    pub jwt_ttl: Duration,
    /// bcrypt work factor: 12 costs ~250 ms per hash on one core, the reason hashing runs on
    /// the blocking pool.
    pub bcrypt_cost: u32,
    /// How recent a sign-in must be for a sensitive operation (creating an API key, deleting
    /// the account) without `current_password`.
    pub reauth_window: Duration,
}

impl AuthSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let jwt_secret = env.require(
            "JWT_SECRET",
            " (at least 32 random bytes, e.g. `openssl rand -base64 48`)",
        )?;
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES && !env.dev_mode {
            return Err(ConfigError::WeakJwtSecret {
                len: jwt_secret.len(),
            });
        }
        let bcrypt_cost = env.parse_or("BCRYPT_COST", 12u32)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(invalid(
                "BCRYPT_COST",
                &bcrypt_cost.to_string(),
                "bcrypt allows 4 to 31",
            ));
        }
        let jwt_ttl_seconds = env.positive_or("JWT_TTL_SECONDS", 900u64)?;
        if jwt_ttl_seconds > MAX_JWT_TTL_SECONDS {
            return Err(invalid(
                "JWT_TTL_SECONDS",
                &jwt_ttl_seconds.to_string(),
                &format!("must be at most {MAX_JWT_TTL_SECONDS} (a year)"),
            ));
        }
        Ok(Self {
            jwt_secret: jwt_secret.into(),
            jwt_ttl: Duration::from_secs(jwt_ttl_seconds),
            bcrypt_cost,
            reauth_window: Duration::from_secs(env.parse_or("REAUTH_WINDOW_SECONDS", 300u64)?),
        })
    }
}
