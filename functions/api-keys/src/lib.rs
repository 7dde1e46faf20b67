//! API keys for programmatic access.
//!
//! Routes (any authenticated caller; keys are always the caller's own):
//! - `POST /v1/api-keys` — create a key; the response is the only time the key is shown, and
//!   is `no-store` (with an `Idempotency-Key`, a repeat returns that first response again).
//!   Needs a sign-in within `REAUTH_WINDOW_SECONDS` or `current_password`; an API key cannot
//!   create keys. Counts against the stricter sign-in budget (it may check a password).
//! - `GET /v1/api-keys` — list keys (prefix, name, last use; never the key or its hash).
//! - `DELETE /v1/api-keys/{id}` — revoke; effective on the next request.

use axum::{extract::State, response::NoContent};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, AppState,
    auth::{Principal, api_key},
    extract::{Created, Json, NoStore, Path},
    idempotency::{Idempotent, IdempotentResponse},
    repo::api_keys::{self, ApiKey},
    validate,
    views::Page,
};
use uuid::Uuid;

shared::routes! {
    "/v1/api-keys" => {
        Post(create, |op| {
            op.tag("api-keys")
                .summary("Create an API key (the key is shown only in this response)")
        }),
        Get(list, |op| op.tag("api-keys").summary("List your API keys")),
    },
    "/v1/api-keys/{id}" => {
        Delete(revoke, |op| {
            op.tag("api-keys")
                .summary("Revoke an API key")
                .response::<204, ()>()
        }),
    },
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// 1–100 characters, one line, not blank, to recognise the key later.
    #[schemars(length(min = 1, max = 100), regex(pattern = validate::VISIBLE_LINE_PATTERN))]
    pub name: String,
    /// Required unless the access token was issued within `REAUTH_WINDOW_SECONDS`.
    pub current_password: Option<String>,
}

/// A new key: `key` appears here and nowhere else, ever.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key: String,
    #[serde(serialize_with = "shared::views::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// A key in a list.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    #[serde(serialize_with = "shared::views::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "shared::views::rfc3339_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Idempotent(idempotency, Json(body)): Idempotent<Json<CreateKey>>,
) -> Result<NoStore<IdempotentResponse<Created<CreatedKey>>>, ApiError> {
    let name = validate::visible_line("name", &body.name, 100)
        .map_err(|e| ApiError::validation(vec![e]))?
        .to_owned();
    // Before the idempotent write: a replay needs a recent sign-in as much as the first call.
    state
        .auth
        .require_recent_sign_in(&principal, body.current_password)
        .await?;
    let user_id = principal.user_id;
    // Shared by every attempt: one retried before COMMIT rolled back, so its key was never
    // stored and may be used again.
    let new = std::sync::Arc::new(api_key::generate());
    idempotency
        .write(&state.db, user_id, "api_keys.create", move |tx| {
            let (name, new) = (name.clone(), new.clone());
            Box::pin(async move {
                let row = api_keys::insert(tx, user_id, &name, &new.prefix, &new.hash).await?;
                Ok(Created(CreatedKey {
                    id: row.id,
                    name: row.name,
                    prefix: row.prefix,
                    key: new.key.clone(),
                    created_at: row.created_at,
                }))
            })
        })
        .await
        .map(NoStore)
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Page<KeyView>>, ApiError> {
    let keys = api_keys::list(&state.db, principal.user_id).await?;
    Ok(Json(Page {
        items: keys.into_iter().map(KeyView::from).collect(),
        next_cursor: None,
    }))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct KeyId {
    pub id: Uuid,
}

async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(KeyId { id }): Path<KeyId>,
) -> Result<NoContent, ApiError> {
    match api_keys::delete(&state.db, principal.user_id, id).await? {
        Some(prefix) => {
            // The key stops counting against its owner's rate-limit budget here at once
            // (other replicas within `VERIFIED_KEY_TTL`); auth refuses it everywhere at once.
            state.auth.verified_keys.forget(&prefix);
            Ok(NoContent)
        }
        None => Err(ApiError::not_found("API key")),
    }
}
