//! Items: the example resource, owned by a user.
//!
//! Routes (any authenticated caller; every query is scoped to the caller, so another user's
//! item is a 404, indistinguishable from one that does not exist):
//! - `GET /v1/items?limit=&cursor=` — newest first, keyset-paginated (`limit` ≤ 100).
//! - `POST /v1/items` — create; with an `Idempotency-Key`, a repeat returns the first response.
//! - `GET|PATCH|DELETE /v1/items/{id}` — read, change, delete one.

use axum::{extract::State, response::NoContent};
use schemars::JsonSchema;
use serde::Deserialize;
use shared::{
    ApiError, AppState,
    auth::Principal,
    error::FieldError,
    extract::{Created, Json, Path, Query},
    idempotency::{Idempotent, IdempotentResponse},
    repo::items,
    validate,
    views::{Page, PageParams},
};
use uuid::Uuid;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

shared::routes! {
    "/v1/items" => {
        Get(list, |op| op.tag("items").summary("List your items, newest first")),
        Post(create, |op| op.tag("items").summary("Create an item")),
    },
    "/v1/items/{id}" => {
        Get(get_one, |op| op.tag("items").summary("Get an item")),
        Patch(update, |op| op.tag("items").summary("Change an item")),
        Delete(delete, |op| {
            op.tag("items")
                .summary("Delete an item")
                .response::<204, ()>()
        }),
    },
}

pub use shared::views::{ItemView, decode_cursor, encode_cursor};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// 1–200 characters, one line, not blank (stored without surrounding spaces).
    #[schemars(length(min = 1, max = 200), regex(pattern = validate::VISIBLE_LINE_PATTERN))]
    pub title: String,
    /// At most 10 000 characters; tab and line breaks are the only control characters
    /// allowed. Empty when omitted.
    #[serde(default)]
    #[schemars(length(max = 10000), regex(pattern = validate::MULTI_LINE_PATTERN))]
    pub description: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemChanges {
    /// As in `NewItem`.
    #[schemars(length(min = 1, max = 200), regex(pattern = validate::VISIBLE_LINE_PATTERN))]
    pub title: Option<String>,
    /// As in `NewItem`.
    #[schemars(length(max = 10000), regex(pattern = validate::MULTI_LINE_PATTERN))]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ItemId {
    pub id: Uuid,
}

/// At most 200 characters as sent, not blank, one line (stored trimmed).
fn check_title(title: &str, errors: &mut Vec<FieldError>) {
    if let Err(e) = validate::visible_line("title", title, MAX_TITLE_CHARS) {
        errors.push(e);
    }
}

fn check_description(description: &str, errors: &mut Vec<FieldError>) {
    if let Err(e) = validate::multi_line("description", description) {
        errors.push(e);
    } else if description.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "description",
            "must be at most 10000 characters",
        ));
    }
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<ItemView>>, ApiError> {
    let (before, limit) = params.parse()?;
    // One extra row tells whether another page exists without a count query.
    let rows = items::list(&state.db, principal.user_id, before, i64::from(limit) + 1).await?;
    Ok(Json(Page::from_rows(rows, limit, |i| i.id, ItemView::from)))
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Idempotent(idempotency, Json(body)): Idempotent<Json<NewItem>>,
) -> Result<IdempotentResponse<Created<ItemView>>, ApiError> {
    let mut errors = Vec::new();
    check_title(&body.title, &mut errors);
    check_description(&body.description, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let user_id = principal.user_id;
    let (title, description) = (body.title.trim().to_owned(), body.description);
    if !idempotency.is_keyed() {
        // Nothing to store beside the item: one statement, one round trip.
        let item = items::create(&state.db, user_id, &title, &description).await?;
        return Ok(IdempotentResponse::unkeyed(Created(ItemView::from(item))));
    }
    idempotency
        .write(&state.db, user_id, "items.create", move |tx| {
            let (title, description) = (title.clone(), description.clone());
            Box::pin(async move {
                let item = items::insert(tx, user_id, &title, &description).await?;
                Ok(Created(ItemView::from(item)))
            })
        })
        .await
}

async fn get_one(
    State(state): State<AppState>,
    principal: Principal,
    Path(ItemId { id }): Path<ItemId>,
) -> Result<Json<ItemView>, ApiError> {
    items::get(&state.db, principal.user_id, id)
        .await?
        .map(|i| Json(i.into()))
        .ok_or_else(|| ApiError::not_found("item"))
}

async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(ItemId { id }): Path<ItemId>,
    Json(body): Json<ItemChanges>,
) -> Result<Json<ItemView>, ApiError> {
    let mut errors = Vec::new();
    if let Some(t) = &body.title {
        check_title(t, &mut errors);
    }
    if let Some(d) = &body.description {
        check_description(d, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    items::update(
        &state.db,
        principal.user_id,
        id,
        body.title.as_deref().map(str::trim),
        body.description.as_deref(),
    )
    .await?
    .map(|i| Json(i.into()))
    .ok_or_else(|| ApiError::not_found("item"))
}

async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(ItemId { id }): Path<ItemId>,
) -> Result<NoContent, ApiError> {
    if items::delete(&state.db, principal.user_id, id).await? {
        Ok(NoContent)
    } else {
        Err(ApiError::not_found("item"))
    }
}
