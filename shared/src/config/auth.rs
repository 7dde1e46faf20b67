//! Credential settings: `JWT_SECRET`, `JWT_TTL_SECONDS`, `JWT_ISSUER`, `JWT_AUDIENCE`,
//! `BCRYPT_COST`, `REAUTH_WINDOW_SECONDS`.

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, Env, invalid};

/// Minimum HS256 key length: a shorter key is brute-forceable offline from any issued token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The `JWT_SECRET` that `scripts/dev` sets when none is given. It is in the repository, so
/// anyone can sign tokens with it: it is refused unless `BASALT_DEV=1`.
pub const DEV_JWT_SECRET: &str = "basalt-dev-only-jwt-secret-NOT-FOR-PRODUCTION-0123456789";

/// Longest access-token lifetime accepted: a day. A token stays valid until it expires (a
/// password change or a deleted account aside), so a stolen one must not be good for long.
const MAX_JWT_TTL_SECONDS: u64 = 24 * 3600;

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub jwt_secret: SecretString,
    pub jwt_ttl: Duration,
    /// The `iss` this deployment puts in its tokens and requires in those it accepts.
    pub jwt_issuer: String,
    /// The `aud` likewise: a token another service minted with a shared secret, for itself, is
    /// refused here.
    pub jwt_audience: String,
    /// bcrypt work factor: 12 costs ~250 ms per hash on one core, the reason hashing runs on
    /// the blocking pool.
    pub bcrypt_cost: u32,
    /// How recent a sign-in must be for a sensitive operation (creating an API key, deleting
    /// the account) without `current_password`.
    pub reauth_window: Duration,
    /// How many bcrypt hashes or verifications may run at once: the cores this process may use
    /// (`available_parallelism`, which honours a container's CPU quota). Not a variable: more
    /// than the cores only queues CPU work in threads, fewer leaves cores idle. Tests lower it.
    pub bcrypt_concurrency: usize,
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
        if jwt_secret.trim() == DEV_JWT_SECRET && !env.dev_mode {
            return Err(ConfigError::PublishedJwtSecret);
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
                &format!("must be at most {MAX_JWT_TTL_SECONDS} (a day)"),
            ));
        }
        Ok(Self {
            jwt_secret: jwt_secret.into(),
            jwt_ttl: Duration::from_secs(jwt_ttl_seconds),
            jwt_issuer: claim_value(env, "JWT_ISSUER", "basalt")?,
            jwt_audience: claim_value(env, "JWT_AUDIENCE", "basalt-api")?,
            bcrypt_cost,
            reauth_window: Duration::from_secs(env.parse_or("REAUTH_WINDOW_SECONDS", 300u64)?),
            bcrypt_concurrency: std::thread::available_parallelism().map_or(1, usize::from),
        })
    }
}

/// A string claim's value from `name`, or `default`. Surrounding blanks are dropped (they would
/// make a token's `iss`/`aud` differ from what another service expects for no visible reason),
/// and control characters refused.
fn claim_value(env: &Env<'_>, name: &'static str, default: &str) -> Result<String, ConfigError> {
    let Some(raw) = env.get(name) else {
        return Ok(default.to_owned());
    };
    let value = raw.trim();
    if value.chars().any(char::is_control) {
        return Err(invalid(name, &raw, "must not contain control characters"));
    }
    Ok(value.to_owned())
}
