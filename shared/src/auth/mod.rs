//! Authentication: credentials and who they prove the caller to be.
//!
//! [`Authenticator::authenticate`] turns a presented [`Credential`] into a [`Principal`] or a
//! 401. The default-deny layer that calls it for every request not on the public list, and the
//! `Principal` extractor handlers use, are HTTP concerns: `http::middleware::auth`.

pub mod api_key;
pub mod email;
pub mod jwt;
pub mod known_users;
pub mod password;

use uuid::Uuid;

use self::{api_key::VerifiedKeys, jwt::JwtKeys, known_users::KnownUsers, password::Passwords};
use crate::{config::AuthSettings, db::Db, error::ApiError, repo};

/// Who is calling, as established by the auth layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub via: AuthMethod,
}

impl Principal {
    /// What the request log records: the user id, plus the key's public prefix for API keys.
    pub fn log_id(&self) -> String {
        match &self.via {
            AuthMethod::Jwt => self.user_id.to_string(),
            AuthMethod::ApiKey { prefix, .. } => format!("{} (key {prefix})", self.user_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Jwt,
    /// `prefix` is the key's public part: safe to log, used later as the rate-limit key.
    ApiKey {
        key_id: Uuid,
        prefix: String,
    },
}

/// A credential as presented, not yet checked.
pub enum Credential<'a> {
    Jwt(&'a str),
    ApiKey(&'a str),
}

/// The subject of a JWT whose signature and expiry an outer layer (rate limiting) already
/// checked, so auth does not verify it twice. Whether the user still exists is auth's job.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedSubject(pub Uuid);

/// Everything that checks credentials, built once per process.
#[derive(Debug)]
pub struct Authenticator {
    db: Db,
    /// Derived once from `JWT_SECRET`, not per request.
    pub jwt: JwtKeys,
    /// Users whose existence was confirmed in the last two seconds (see `known_users`).
    pub known_users: KnownUsers,
    /// API keys that authenticated here: only their prefixes are rate-limit principals.
    pub verified_keys: VerifiedKeys,
    /// bcrypt at `BCRYPT_COST`, one hash per core at a time, with the unknown-email dummy hash
    /// ready before the first request.
    pub passwords: Passwords,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings, db: Db) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            db,
            jwt: JwtKeys::new(settings)?,
            known_users: KnownUsers::default(),
            verified_keys: VerifiedKeys::default(),
            passwords: Passwords::new(settings.bcrypt_cost, settings.bcrypt_concurrency),
        })
    }

    /// Who `credential` proves the caller to be. `verified` is the subject of the same JWT
    /// when an outer layer already checked its signature and expiry.
    pub async fn authenticate(
        &self,
        credential: Credential<'_>,
        verified: Option<VerifiedSubject>,
    ) -> Result<Principal, ApiError> {
        match credential {
            Credential::Jwt(token) => {
                let user_id = match verified {
                    Some(VerifiedSubject(id)) => id,
                    None => self
                        .jwt
                        .verify(token)
                        .map_err(|_| ApiError::unauthorized("invalid or expired token"))?,
                };
                // A token outlives its account otherwise: a deleted user must be locked out (see
                // `known_users` for how long another replica may take to notice).
                if !self.known_users.confirmed(user_id) {
                    if !repo::users::exists(&self.db, user_id).await? {
                        return Err(ApiError::unauthorized("invalid or expired token"));
                    }
                    self.known_users.remember(user_id);
                }
                Ok(Principal {
                    user_id,
                    via: AuthMethod::Jwt,
                })
            }
            Credential::ApiKey(key) => {
                let invalid = || ApiError::unauthorized("invalid API key");
                let prefix = api_key::prefix_of(key).ok_or_else(invalid)?;
                let stored = repo::api_keys::find_by_prefix(&self.db, prefix)
                    .await?
                    .ok_or_else(invalid)?;
                if !api_key::matches(key, &stored.key_hash) {
                    return Err(invalid());
                }
                // `matches` compared all 32 bytes, so the stored hash is this key's.
                if let Ok(hash) = <[u8; 32]>::try_from(stored.key_hash.as_slice()) {
                    self.verified_keys.remember(prefix, hash);
                }
                let stale = stored
                    .last_used_at
                    .is_none_or(|t| chrono::Utc::now() - t >= chrono::TimeDelta::minutes(1));
                if stale {
                    // Best effort: failing to record use must not fail the request.
                    if let Err(e) = repo::api_keys::touch(&self.db, stored.id).await {
                        tracing::warn!(error = %e, "could not record API key use");
                    }
                }
                Ok(Principal {
                    user_id: stored.user_id,
                    via: AuthMethod::ApiKey {
                        key_id: stored.id,
                        prefix: prefix.to_owned(),
                    },
                })
            }
        }
    }
}
