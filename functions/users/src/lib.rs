//! The signed-in user's own account.
//!
//! Routes (any authenticated caller, JWT or API key; always about the caller):
//! - `GET /v1/users/me` — the account.
//! - `PATCH /v1/users/me` — change email and/or password; `current_password` required. A new
//!   password refuses every access token issued before it; `revoke_api_keys: true` also
//!   deletes every API key.
//! - `DELETE /v1/users/me` — delete the account with its API keys and items; needs a sign-in
//!   within `REAUTH_WINDOW_SECONDS` or `current_password` in the body, and no API key can.
//!
//! Both count against the stricter sign-in budget (`RATE_LIMIT_AUTH`): each checks a password.

use axum::{extract::State, response::NoContent};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use shared::{
    ApiError, AppState,
    auth::{Principal, email, password},
    error::FieldError,
    extract::{Json, MaybeJson},
    repo::users,
    validate,
    views::UserView,
};

shared::routes! {
    "/v1/users/me" => {
        Get(me, |op| op.tag("users").summary("The signed-in user")),
        Patch(update_me, |op| op.tag("users").summary("Change email or password")),
        Delete(delete_me, |op| {
            op.tag("users")
                .summary("Delete the account, its API keys and items")
                .response::<204, ()>()
        }),
    },
}

async fn me(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<UserView>, ApiError> {
    let user = users::find(&state.db, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user.into()))
}

/// Fields to change; omitted fields stay as they are.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    pub email: Option<String>,
    /// New password, 8 characters to 72 bytes (as in registration).
    #[schemars(length(min = 8, max = 72))]
    pub password: Option<String>,
    /// Required whenever `email`, `password` or `revoke_api_keys` is present.
    pub current_password: Option<String>,
    /// Delete every API key of the account too (e.g. after a leak). Default false.
    #[serde(default)]
    pub revoke_api_keys: bool,
}

/// Optional body of `DELETE /v1/users/me`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteMe {
    /// Required unless the access token was issued within `REAUTH_WINDOW_SECONDS`.
    pub current_password: Option<String>,
}

async fn update_me(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<UpdateMe>,
) -> Result<Json<UserView>, ApiError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let new_email = match &body.email {
        Some(e) => email::parse("email", e).map_err(|e| errors.push(e)).ok(),
        None => None,
    };
    if let Some(p) = &body.password
        && let Err(e) = password::validate("password", p)
    {
        errors.push(e);
    }
    if let Some(p) = &body.current_password
        && let Err(e) = validate::no_nul("current_password", p)
    {
        errors.push(e);
    }
    let changes = body.email.is_some() || body.password.is_some() || body.revoke_api_keys;
    if changes && body.current_password.is_none() {
        errors.push(FieldError::new(
            "current_password",
            "required to change email or password or to revoke API keys",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let user = users::find(&state.db, principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if !changes {
        return Ok(Json(user.into()));
    }
    let current = body.current_password.unwrap_or_default();
    let passwords = &state.auth.passwords;
    if current.len() > password::MAX_PASSWORD_BYTES
        || !passwords
            .verify(SecretString::from(current), Some(user.password_hash))
            .await?
    {
        return Err(ApiError::forbidden("current_password is incorrect"));
    }
    let new_hash = match body.password {
        Some(p) => Some(passwords.hash(SecretString::from(p)).await?),
        None => None,
    };
    match users::update(
        &state.db,
        user.id,
        new_email.as_ref().map(email::Email::as_new),
        new_hash.as_deref(),
        body.revoke_api_keys,
    )
    .await
    {
        Ok(Some(user)) => {
            // This process refuses the old password's tokens from the next request on
            // (other replicas within `known_users::TTL`); revoked keys stop counting as the
            // user for rate limiting at once.
            state.auth.known_users.forget(user.id);
            if body.revoke_api_keys {
                state.auth.verified_keys.forget_user(user.id);
            }
            Ok(Json(user.into()))
        }
        Ok(None) => Err(ApiError::not_found("user")),
        Err(e) if e.is_unique_violation() => Err(ApiError::conflict(
            "an account with this email already exists",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn delete_me(
    State(state): State<AppState>,
    principal: Principal,
    MaybeJson(body): MaybeJson<DeleteMe>,
) -> Result<NoContent, ApiError> {
    let current_password = body.and_then(|b| b.current_password);
    state
        .auth
        .require_recent_sign_in(&principal, current_password)
        .await?;
    if users::delete(&state.db, principal.user_id).await? {
        // Refuse the user's still-unexpired tokens from the next request on.
        state.auth.known_users.forget(principal.user_id);
        Ok(NoContent)
    } else {
        Err(ApiError::not_found("user"))
    }
}
