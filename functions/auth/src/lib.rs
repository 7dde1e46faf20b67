//! Account creation and sign-in.
//!
//! Routes (both public — on `shared::http::PUBLIC_ROUTES`):
//! - `POST /v1/auth/register` — create an account; 201 with the user, 409 if the email is taken.
//! - `POST /v1/auth/token` — exchange email and password for an access token (`no-store`).
//!   Besides the chain's per-address budget, attempts count against the account
//!   (`RATE_LIMIT_ACCOUNT`).
//!
//! Both spend a bcrypt hash or verification; when every core is already hashing they answer
//! 503 with `Retry-After` (see `shared::auth::password`).

use schemars::JsonSchema;
use serde::Deserialize;
use shared::{
    ApiError, AppState,
    auth::{email, password},
    extract::{Created, Json, NoStore},
    repo::users::{self, User},
    validate,
    views::UserView,
};

use axum::extract::State;
use secrecy::SecretString;

shared::routes! {
    "/v1/auth/register" => {
        Post(register, |op| op.tag("auth").summary("Create an account")),
    },
    "/v1/auth/token" => {
        Post(token, |op| {
            op.tag("auth")
                .summary("Sign in: exchange email and password for an access token")
        }),
    },
}

/// Registration request.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub email: String,
    /// 8 characters to 72 bytes (bcrypt's limit: a password of 72 characters that are not
    /// all ASCII is longer than that, and refused).
    #[schemars(length(min = 8, max = 72))]
    pub password: String,
}

async fn register(
    State(state): State<AppState>,
    Json(body): Json<Credentials>,
) -> Result<Created<UserView>, ApiError> {
    let mut errors = Vec::new();
    let email = email::parse("email", &body.email)
        .map_err(|e| errors.push(e))
        .ok();
    if let Err(e) = password::validate("password", &body.password) {
        errors.push(e);
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let hash = state
        .auth
        .passwords
        .hash(SecretString::from(body.password))
        .await?;
    match users::create(&state.db, email.as_new(), &hash).await {
        Ok(user) => Ok(Created(user.into())),
        Err(e) if e.is_unique_violation() => Err(ApiError::conflict(
            "an account with this email already exists",
        )),
        Err(e) => Err(e.into()),
    }
}

/// An access token (OAuth 2 style).
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

async fn token(
    State(state): State<AppState>,
    Json(body): Json<Credentials>,
) -> Result<NoStore<Json<TokenResponse>>, ApiError> {
    let denied = || ApiError::unauthorized("invalid email or password");
    // Characters no account can hold are a malformed request, not a failed sign-in (and a NUL
    // would be an error from PostgreSQL). Nothing else about the address is checked: one that
    // could not register today may still be an account stored before (see migration V3).
    let errors: Vec<_> = [
        validate::single_line("email", body.email.trim()).err(),
        validate::no_nul("password", &body.password).err(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // Over-long passwords can never match a stored hash; refuse them before bcrypt sees them.
    if body.password.len() > password::MAX_PASSWORD_BYTES {
        return Err(denied());
    }
    let typed = body.email.trim();
    let canonical = email::canonical(typed);
    // Per account, whoever asks: address-based budgets alone do not stop a botnet spraying
    // one account. Keyed by the canonical form, so look-alike spellings share the budget;
    // counted before bcrypt runs, so refused guesses cost no hashing either.
    let (decision, limit) = state.limiter.check_sign_in(&canonical).await;
    if !decision.allowed {
        return Err(ApiError::too_many_requests(
            format!(
                "too many sign-in attempts for this account (at most {} per {} s); retry after \
                 the Retry-After seconds",
                limit.requests,
                limit.window.as_secs()
            ),
            decision.retry_after_secs(),
        ));
    }
    let user = users::find_by_email(&state.db, &canonical, typed).await?;
    let passwords = &state.auth.passwords;
    let password = SecretString::from(body.password);
    // Decided before verifying so the password is kept only when it will be needed.
    let rehash = user
        .as_ref()
        .filter(|u| passwords.needs_rehash(&u.password_hash))
        .map(|_| password.clone());
    // Unknown emails still pay one bcrypt verification: no timing oracle.
    let ok = passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    let user = user.filter(|_| ok).ok_or_else(denied)?;
    email::complete_legacy(&state.db, &user).await;
    if let Some(password) = rehash {
        refresh_hash(&state, &user, password).await;
    }
    let access_token = state.auth.jwt.issue(user.id).map_err(ApiError::internal)?;
    Ok(NoStore(Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.auth.jwt.ttl().as_secs(),
    })))
}

/// Stores a hash of the password just proved at the configured cost: `BCRYPT_COST` changed
/// since `user`'s hash was made, and a hash can only be redone while the password is at hand.
/// Best effort: a sign-in whose password was right does not fail because of this (the next one
/// tries again), so failures are logged, not returned.
async fn refresh_hash(state: &AppState, user: &User, password: SecretString) {
    let new_hash = match state.auth.passwords.hash(password).await {
        Ok(hash) => hash,
        Err(e) => {
            tracing::warn!(
                status = e.status().as_u16(),
                "could not re-hash the password at the new BCRYPT_COST"
            );
            return;
        }
    };
    match users::rehash(&state.db, user.id, &user.password_hash, &new_hash).await {
        Ok(true) => tracing::info!(
            cost = state.auth.passwords.cost(),
            "password re-hashed at the new BCRYPT_COST"
        ),
        // Changed or deleted since it was read: nothing to refresh.
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not store the re-hashed password"),
    }
}
