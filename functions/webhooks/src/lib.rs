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
//! - `POST /v1/webhooks/{id}/test` — queue a `webhook.test` message to the endpoint (202, the
//!   delivery).
//! - `GET /v1/webhooks/{id}/deliveries?limit=&cursor=` — its deliveries, newest first,
//!   keyset-paginated like items; `POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry` —
//!   replay one now (202).
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
    extract::{Accepted, Created, Json, NoStore, Path, Query},
    idempotency::{Idempotent, IdempotentResponse},
    repo::{
        webhook_deliveries::{self, Delivery, DeliveryState, Message, Replay},
        webhooks::{self, NewWebhook, Webhook, WebhookChange},
    },
    sealed::SealingKey,
    ssrf::{self, Resolve, SystemResolver},
    validate,
    views::{Page, PageParams},
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
    "/v1/webhooks/{id}/test" => {
        Post(send_test, |op| {
            op.tag("webhooks")
                .summary("Send a webhook.test message to the endpoint")
        }),
    },
    "/v1/webhooks/{id}/deliveries" => {
        Get(list_deliveries, |op| {
            op.tag("webhooks")
                .summary("List the endpoint's deliveries, newest first")
        }),
    },
    "/v1/webhooks/{id}/deliveries/{delivery_id}/retry" => {
        Post(retry_delivery, |op| {
            op.tag("webhooks")
                .summary("Replay a delivery now (also a delivered or dead one)")
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

/// One message to one endpoint, and how its attempts went.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The `webhook-id` header: the same on every attempt (receivers drop duplicates by it).
    pub message_id: String,
    pub event_type: String,
    /// `pending` (an attempt is due at `next_attempt_at`), `delivered` or `dead`.
    pub state: DeliveryState,
    pub attempts: i32,
    /// The last attempt's HTTP status; `null` before one, or when it got no answer.
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// At most 1 KiB of the last answer's body.
    pub response_body: Option<String>,
    #[serde(serialize_with = "shared::views::rfc3339_opt")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "shared::views::rfc3339_opt")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "shared::views::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            message_id: d.message_id,
            event_type: d.event_type,
            state: d.state,
            attempts: d.attempts,
            last_status_code: d.last_status,
            last_error: d.last_error,
            response_body: d.response_body,
            last_attempt_at: d.last_attempt_at,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
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

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeliveryId {
    pub id: Uuid,
    pub delivery_id: Uuid,
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

/// When a new message's first attempt is due: the schedule's first wait from now.
fn first_attempt_at(state: &AppState) -> DateTime<Utc> {
    let wait = state.config.webhooks.first_wait();
    Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
}

async fn send_test(
    State(state): State<AppState>,
    principal: Principal,
    Path(WebhookId { id }): Path<WebhookId>,
) -> Result<Accepted<DeliveryView>, ApiError> {
    let user_id = principal.user_id;
    let webhook = webhooks::get(&state.db, user_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if !webhook.enabled {
        return Err(endpoint_disabled());
    }
    let data = serde_json::json!({
        "webhook_id": id,
        "message": "A test message from Basalt: your endpoint receives and verifies webhooks.",
    });
    let message = Arc::new(Message::new(Uuid::now_v7(), TEST_EVENT, &data));
    let first_at = first_attempt_at(&state);
    let delivery = state
        .db
        .write("webhooks.test", move |tx| {
            let message = message.clone();
            Box::pin(async move {
                webhook_deliveries::insert_test(tx, user_id, id, &message, first_at).await
            })
        })
        .await?;
    // A fresh message id never conflicts: `None` means the endpoint was deleted meanwhile.
    delivery
        .map(|d| Accepted(d.into()))
        .ok_or_else(|| ApiError::not_found("webhook"))
}

/// The event sent by `POST /v1/webhooks/{id}/test`, to any endpoint.
pub const TEST_EVENT: &str = "webhook.test";

fn endpoint_disabled() -> ApiError {
    ApiError::conflict("the webhook endpoint is disabled: enable it (PATCH enabled: true) first")
}

async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(WebhookId { id }): Path<WebhookId>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    let (before, limit) = params.parse()?;
    let user_id = principal.user_id;
    if webhooks::get(&state.db, user_id, id).await?.is_none() {
        return Err(ApiError::not_found("webhook"));
    }
    let rows =
        webhook_deliveries::list(&state.db, user_id, id, before, i64::from(limit) + 1).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |d| d.id,
        DeliveryView::from,
    )))
}

async fn retry_delivery(
    State(state): State<AppState>,
    principal: Principal,
    Path(DeliveryId { id, delivery_id }): Path<DeliveryId>,
) -> Result<Accepted<DeliveryView>, ApiError> {
    match webhook_deliveries::replay(&state.db, principal.user_id, id, delivery_id).await? {
        Replay::Queued(delivery) => Ok(Accepted(delivery.into())),
        Replay::EndpointDisabled => Err(endpoint_disabled()),
        Replay::NotFound => Err(ApiError::not_found("delivery")),
    }
}
