//! Authentication: credentials and who they prove the caller to be.
//!
//! [`Authenticator::authenticate`] turns a presented [`Credential`] into a [`Principal`] or a
//! 401. The default-deny layer that calls it for every request not on the public list, and the
//! `Principal` extractor handlers use, are HTTP concerns: `http::middleware::auth`.

pub mod api_key;
pub mod email;
mod hs256;
pub mod jwt;
pub mod known_users;
pub mod password;
mod verified_tokens;

use uuid::Uuid;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;

use self::{
    api_key::VerifiedKeys,
    jwt::{JwtKeys, VerifiedToken},
    known_users::{Known, KnownUsers},
    password::Passwords,
};
use crate::{
    config::AuthSettings,
    db::Db,
    error::{ApiError, REAUTHENTICATION_REQUIRED},
    repo,
};
use http::StatusCode;

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
            AuthMethod::Jwt { .. } => self.user_id.to_string(),
            AuthMethod::ApiKey { prefix, .. } => format!("{} (key {prefix})", self.user_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// `issued_at`: the token's `iat`, how recent the sign-in behind it is.
    Jwt { issued_at: u64 },
    /// `prefix` is the key's public part: safe to log.
    ApiKey { key_id: Uuid, prefix: String },
}

/// A credential as presented, not yet checked.
pub enum Credential<'a> {
    Jwt(&'a str),
    ApiKey(&'a str),
}

/// A JWT whose signature and expiry an outer layer (rate limiting) already checked, so auth
/// does not verify it twice. Whether the user still exists is auth's job.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedSubject(pub VerifiedToken);

/// Everything that checks credentials, built once per process.
#[derive(Debug)]
pub struct Authenticator {
    db: Db,
    /// Derived once from `JWT_SECRET`, not per request.
    pub jwt: JwtKeys,
    /// Users whose existence was confirmed in the last two seconds (see `known_users`).
    pub known_users: KnownUsers,
    /// API keys that authenticated here recently: only they count against their owner's
    /// rate-limit budget.
    pub verified_keys: VerifiedKeys,
    /// bcrypt at `BCRYPT_COST`, one hash per core at a time, with the unknown-email dummy hash
    /// ready before the first request.
    pub passwords: Passwords,
    /// `REAUTH_WINDOW_SECONDS`.
    reauth_window: Duration,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings, db: Db) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            db,
            jwt: JwtKeys::new(settings)?,
            known_users: KnownUsers::default(),
            verified_keys: VerifiedKeys::default(),
            passwords: Passwords::new(settings.bcrypt_cost, settings.bcrypt_concurrency),
            reauth_window: settings.reauth_window,
        })
    }

    /// For sensitive operations (creating an API key, deleting the account): the caller must
    /// have signed in within `REAUTH_WINDOW_SECONDS`, or send `current_password` now. An API
    /// key can do neither: whoever holds a leaked key must not turn it into more keys, or
    /// into the end of the account.
    pub async fn require_recent_sign_in(
        &self,
        principal: &Principal,
        current_password: Option<String>,
    ) -> Result<(), ApiError> {
        let issued_at = match principal.via {
            AuthMethod::ApiKey { .. } => {
                return Err(ApiError::forbidden(
                    "an API key cannot do this; use an access token from POST /v1/auth/token",
                ));
            }
            AuthMethod::Jwt { issued_at } => issued_at,
        };
        if let Some(current) = current_password {
            let user = repo::users::find(&self.db, principal.user_id)
                .await?
                .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))?;
            let ok = current.len() <= password::MAX_PASSWORD_BYTES
                && self
                    .passwords
                    .verify(SecretString::from(current), Some(user.password_hash))
                    .await?;
            return if ok {
                Ok(())
            } else {
                Err(ApiError::forbidden("current_password is incorrect"))
            };
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if now.saturating_sub(issued_at) <= self.reauth_window.as_secs() {
            Ok(())
        } else {
            Err(ApiError::typed(
                StatusCode::FORBIDDEN,
                REAUTHENTICATION_REQUIRED,
                format!(
                    "this needs a sign-in within the last {} s: sign in again, or send current_password",
                    self.reauth_window.as_secs()
                ),
            ))
        }
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
                let token = match verified {
                    Some(VerifiedSubject(token)) => token,
                    None => self
                        .jwt
                        .verify(token)
                        .map_err(|_| ApiError::unauthorized("invalid or expired token"))?,
                };
                // A token outlives its account and its password otherwise: a deleted user is
                // locked out, and a token issued before the password changed is refused (see
                // `known_users` for how long another replica may take to notice).
                let known = match self.known_users.confirmed(token.user_id) {
                    Some(known) => known,
                    None => {
                        let changed = repo::users::credentials_changed_at(&self.db, token.user_id)
                            .await?
                            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))?;
                        let known = Known {
                            credentials_changed_at: changed,
                        };
                        self.known_users.remember(token.user_id, known);
                        known
                    }
                };
                // Whole seconds on both sides: a token issued in the second of the change is
                // accepted (it may be the new one), one issued a second before is not.
                if known.credentials_changed_at.is_some_and(|changed| {
                    i64::try_from(token.issued_at).unwrap_or(i64::MAX) < changed
                }) {
                    return Err(ApiError::unauthorized(
                        "this token was issued before the password changed; sign in again",
                    ));
                }
                Ok(Principal {
                    user_id: token.user_id,
                    via: AuthMethod::Jwt {
                        issued_at: token.issued_at,
                    },
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
                    self.verified_keys.remember(prefix, hash, stored.user_id);
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
