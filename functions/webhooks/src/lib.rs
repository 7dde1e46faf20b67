//! Webhook endpoints: where a user's events are delivered (the worker delivers them, signed
//! per Standard Webhooks).
//!
//! Routes (any authenticated caller; every query is scoped to the caller, so another user's
//! endpoint is a 404):
//! - `POST /v1/webhooks` — register `{url, events, description?}`; the response carries the
//!   signing secret (`whsec_…`), shown this once (and to a replay with the same
//!   `Idempotency-Key`) and `no-store`.
//! - `GET /v1/webhooks` — list (never a secret). `GET|PATCH|DELETE /v1/webhooks/{id}`; a
//!   `PATCH` may change the URL, the events, the description, and enable it again.
//! - `POST /v1/webhooks/{id}/rotate-secret` — a new secret; the old one keeps signing beside
//!   it for 24 hours, so receivers can switch without losing a delivery.
//!
//! Every URL passes the SSRF guard (`shared::ssrf`): `https` only, and no host that resolves to
//! an internal address; refusals are 422s on `url`. Secrets are sealed at rest under
//! `WEBHOOK_ENCRYPTION_KEY`; without it these routes answer 503 naming the setting.

use std::{collections::BTreeSet, sync::Arc};

use axum::{extract::State, response::NoContent};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, AppState,
    auth::Principal,
    error::FieldError,
    extract::{Created, Json, NoStore, Path},
    idempotency::{Idempotent, IdempotentResponse},
    repo::webhooks::{self, NewWebhook, Webhook, WebhookChange},
    sealed::SealingKey,
    ssrf::{self, Resolve, SystemResolver},
    validate,
    views::Page,
};
use uuid::Uuid;

/// The events an endpoint may subscribe to (`webhook.test` is sent on request to any).
pub const EVENTS: &[&str] = &["item.created", "item.updated", "item.deleted"];
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// How long a rotated-out secret keeps signing.
pub const ROTATION_OVERLAP_SECONDS: f64 = 24.0 * 3600.0;
/// Random bytes in a secret (the spec allows 24 to 64).
const SECRET_BYTES: usize = 32;

shared::routes! {
    "/v1/webhooks" => {
        Post(create, |op| {
            op.tag("webhooks")
                .summary("Register a webhook endpoint (the secret is shown only in this response)")
        }),
        Get(list, |op| op.tag("webhooks").summary("List your webhook endpoints")),
    },
    "/v1/webhooks/{id}" => {
        Get(get_one, |op| op.tag("webhooks").summary("Get a webhook endpoint")),
        Patch(update, |op| {
            op.tag("webhooks")
                .summary("Change a webhook endpoint, or enable it again")
        }),
        Delete(delete, |op| {
            op.tag("webhooks")
                .summary("Delete a webhook endpoint")
                .response::<204, ()>()
        }),
    },
    "/v1/webhooks/{id}/rotate-secret" => {
        Post(rotate_secret, |op| {
            op.tag("webhooks").summary(
                "Issue a new signing secret; the old one keeps signing beside it for 24 hours",
            )
        }),
    },
}

/// An endpoint as its owner sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    /// Why delivery disabled it (`410 Gone`, failing for days); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(serialize_with = "shared::views::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "shared::views::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events,
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A new endpoint: `secret` appears here and nowhere else, ever.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` + base64 of 32 random bytes: the Standard Webhooks signing secret.
    pub secret: String,
}

/// A rotated secret: the new one, and until when the old one still signs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RotatedSecret {
    pub secret: String,
    #[serde(serialize_with = "shared::views::rfc3339")]
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `https` URL of at most 2048 characters whose host resolves to public addresses only.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// One or more of `item.created`, `item.updated`, `item.deleted`.
    #[schemars(length(min = 1))]
    pub events: Vec<EventType>,
    /// At most 200 characters, one line; empty when omitted.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub description: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChanges {
    #[schemars(length(min = 1, max = 2048))]
    pub url: Option<String>,
    #[schemars(length(min = 1))]
    pub events: Option<Vec<EventType>>,
    #[schemars(length(max = 200))]
    pub description: Option<String>,
    /// `true` enables an endpoint again (also one that delivery disabled); `false` pauses it.
    pub enabled: Option<bool>,
}

/// An event an endpoint subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
pub enum EventType {
    #[serde(rename = "item.created")]
    ItemCreated,
    #[serde(rename = "item.updated")]
    ItemUpdated,
    #[serde(rename = "item.deleted")]
    ItemDeleted,
}

impl EventType {
    fn name(self) -> &'static str {
        match self {
            Self::ItemCreated => EVENTS[0],
            Self::ItemUpdated => EVENTS[1],
            Self::ItemDeleted => EVENTS[2],
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WebhookId {
    pub id: Uuid,
}

/// The sealing key, or the 503 that names the missing setting.
fn sealing_key(state: &AppState) -> Result<SealingKey, ApiError> {
    state.config.webhooks.encryption_key.clone().ok_or_else(|| {
        ApiError::unavailable(std::io::Error::other("WEBHOOK_ENCRYPTION_KEY is not set"))
            .with_detail("webhooks are not configured on this server (WEBHOOK_ENCRYPTION_KEY)")
    })
}

/// `whsec_` + base64 of fresh random bytes.
fn new_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// Checks `url` against the guard; a refusal is a field error on `url`.
async fn check_url(state: &AppState, url: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let url = url.trim();
    if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
        errors.push(FieldError::new("url", "must be 1 to 2048 characters"));
        return None;
    }
    let resolver: Arc<dyn Resolve> = Arc::new(SystemResolver);
    match ssrf::check(url, state.config.webhooks.targets, &resolver).await {
        Ok(checked) => Some(checked.url.to_string()),
        Err(refused) => {
            errors.push(FieldError::new("url", refused.to_string()));
            None
        }
    }
}

fn check_events(events: &[EventType], errors: &mut Vec<FieldError>) -> Vec<String> {
    if events.is_empty() {
        errors.push(FieldError::new("events", "must name at least one event"));
    }
    let unique: BTreeSet<EventType> = events.iter().copied().collect();
    unique.into_iter().map(|e| e.name().to_owned()).collect()
}

fn check_description(description: &str, errors: &mut Vec<FieldError>) -> String {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "description",
            "must be at most 200 characters",
        ));
    } else if let Err(e) = validate::single_line("description", description) {
        errors.push(e);
    }
    description.to_owned()
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Idempotent(idempotency, Json(body)): Idempotent<Json<NewEndpoint>>,
) -> Result<NoStore<IdempotentResponse<Created<CreatedWebhook>>>, ApiError> {
    let key = sealing_key(&state)?;
    let mut errors = Vec::new();
    let url = check_url(&state, &body.url, &mut errors).await;
    let events = check_events(&body.events, &mut errors);
    let description = check_description(&body.description, &mut errors);
    let Some(url) = url.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let user_id = principal.user_id;
    // Shared by every attempt: one retried before COMMIT rolled back, so its secret was never
    // stored and may be used again.
    let id = Uuid::now_v7();
    let secret = Arc::new(new_secret());
    let new = Arc::new(NewWebhook {
        id,
        url,
        events,
        description,
        secret_sealed: key.seal(secret.as_bytes(), id.as_bytes()),
    });
    idempotency
        .write(&state.db, user_id, "webhooks.create", move |tx| {
            let (new, secret) = (new.clone(), secret.clone());
            Box::pin(async move {
                let webhook = webhooks::insert(tx, user_id, &new).await?;
                Ok(Created(CreatedWebhook {
                    webhook: webhook.into(),
                    secret: (*secret).clone(),
                }))
            })
        })
        .await
        .map(NoStore)
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Page<WebhookView>>, ApiError> {
    let all = webhooks::list(&state.db, principal.user_id).await?;
    Ok(Json(Page {
        items: all.into_iter().map(WebhookView::from).collect(),
        next_cursor: None,
    }))
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(WebhookId { id }): Path<WebhookId>,
) -> Result<Json<WebhookView>, ApiError> {
    webhooks::get(&state.db, principal.user_id, id)
        .await?
        .map(|w| Json(w.into()))
        .ok_or_else(|| ApiError::not_found("webhook"))
}

async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(WebhookId { id }): Path<WebhookId>,
    Json(body): Json<EndpointChanges>,
) -> Result<Json<WebhookView>, ApiError> {
    let mut errors = Vec::new();
    let mut change = WebhookChange {
        enabled: body.enabled,
        ..WebhookChange::default()
    };
    if let Some(url) = &body.url {
        change.url = check_url(&state, url, &mut errors).await;
    }
    if let Some(events) = &body.events {
        change.events = Some(check_events(events, &mut errors));
    }
    if let Some(description) = &body.description {
        change.description = Some(check_description(description, &mut errors));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    webhooks::update(&state.db, principal.user_id, id, &change)
        .await?
        .map(|w| Json(w.into()))
        .ok_or_else(|| ApiError::not_found("webhook"))
}

async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(WebhookId { id }): Path<WebhookId>,
) -> Result<NoContent, ApiError> {
    if webhooks::delete(&state.db, principal.user_id, id).await? {
        Ok(NoContent)
    } else {
        Err(ApiError::not_found("webhook"))
    }
}

async fn rotate_secret(
    State(state): State<AppState>,
    principal: Principal,
    Path(WebhookId { id }): Path<WebhookId>,
) -> Result<NoStore<Json<RotatedSecret>>, ApiError> {
    let key = sealing_key(&state)?;
    let secret = new_secret();
    let sealed = key.seal(secret.as_bytes(), id.as_bytes());
    let overlap = ROTATION_OVERLAP_SECONDS;
    let webhook = webhooks::rotate_secret(&state.db, principal.user_id, id, &sealed, overlap)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(NoStore(Json(RotatedSecret {
        secret,
        previous_secret_expires_at: webhook.updated_at + chrono::Duration::seconds(overlap as i64),
    })))
}
