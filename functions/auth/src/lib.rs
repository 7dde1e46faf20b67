//! Account creation and sign-in.
//!
//! Routes (both public — on `shared::http::PUBLIC_ROUTES`):
//! - `POST /v1/auth/register` — create an account; 201 with the user, 409 if the email is taken.
//! - `POST /v1/auth/token` — exchange email and password for an access token (`no-store`).

use schemars::JsonSchema;
use serde::Deserialize;
use shared::{
    ApiError, AppState,
    auth::{email, password},
    extract::{Created, Json, NoStore},
    repo::users,
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
    /// 8 characters to 72 bytes.
    pub password: String,
}

async fn register(
    State(state): State<AppState>,
    Json(body): Json<Credentials>,
) -> Result<Created<UserView>, ApiError> {
    let mut errors = Vec::new();
    let email = email::normalize("email", &body.email)
        .map_err(|e| errors.push(e))
        .ok();
    if let Err(e) = password::validate("password", &body.password) {
        errors.push(e);
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let hash = password::hash(
        SecretString::from(body.password),
        state.config.auth.bcrypt_cost,
    )
    .await?;
    match users::create(&state.db, &email, &hash).await {
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
    // Over-long passwords can never match a stored hash; refuse them before bcrypt sees them.
    if body.password.len() > password::MAX_PASSWORD_BYTES {
        return Err(denied());
    }
    let user = users::find_by_email(&state.db, body.email.trim()).await?;
    let (user_id, hash) = match user {
        Some(u) => (Some(u.id), Some(u.password_hash)),
        None => (None, None),
    };
    // Unknown emails still pay one bcrypt verification: no timing oracle.
    let ok = password::verify(
        SecretString::from(body.password),
        hash,
        state.config.auth.bcrypt_cost,
    )
    .await?;
    let user_id = user_id.filter(|_| ok).ok_or_else(denied)?;
    let access_token = state.auth.jwt.issue(user_id).map_err(ApiError::internal)?;
    Ok(NoStore(Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.auth.jwt.ttl().as_secs(),
    })))
}
