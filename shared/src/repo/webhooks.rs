//! The `webhooks` table: a user's endpoints. The signing secret is stored sealed
//! ([`crate::sealed`]); this module stores and returns the sealed bytes and never sees the
//! key, so sealing and opening stay with the callers that hold it.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, DbError, PgError, Transaction};

/// An endpoint as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Webhook {
    fn from_row(row: &Row) -> Result<Self, PgError> {
        Ok(Self {
            id: row.try_get("id")?,
            url: row.try_get("url")?,
            events: row.try_get("events")?,
            description: row.try_get("description")?,
            enabled: row.try_get("enabled")?,
            disabled_reason: row.try_get("disabled_reason")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

macro_rules! columns {
    () => {
        "id, url, events, description, enabled, disabled_reason, created_at, updated_at"
    };
}

/// A new endpoint; `id` is chosen by the caller because the secret is sealed under it.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub secret_sealed: Vec<u8>,
}

const CREATE: &str = concat!(
    "INSERT INTO webhooks (id, user_id, url, events, description, secret_sealed) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
    columns!()
);

/// Inserts an endpoint in the caller's transaction (an idempotency record's).
pub async fn insert(
    tx: &Transaction<'_>,
    user_id: Uuid,
    new: &NewWebhook,
) -> Result<Webhook, PgError> {
    let stmt = tx.prepare_cached(CREATE).await?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &new.id,
                &user_id,
                &new.url,
                &new.events,
                &new.description,
                &new.secret_sealed,
            ],
        )
        .await?;
    Webhook::from_row(&row)
}

const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM webhooks WHERE user_id = $1 ORDER BY id"
);

pub async fn list(db: &Db, user_id: Uuid) -> Result<Vec<Webhook>, DbError> {
    db.read("webhooks.list", |c| async move {
        let stmt = c.prepare_cached(LIST).await?;
        c.query(&stmt, &[&user_id])
            .await?
            .iter()
            .map(Webhook::from_row)
            .collect()
    })
    .await
}

const GET: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM webhooks WHERE id = $1 AND user_id = $2"
);

pub async fn get(db: &Db, user_id: Uuid, id: Uuid) -> Result<Option<Webhook>, DbError> {
    db.read("webhooks.get", |c| async move {
        let stmt = c.prepare_cached(GET).await?;
        c.query_opt(&stmt, &[&id, &user_id])
            .await?
            .as_ref()
            .map(Webhook::from_row)
            .transpose()
    })
    .await
}

/// The fields a `PATCH` may change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

// Enabling clears the reason delivery disabled it for; disabling by the owner leaves none.
const UPDATE: &str = concat!(
    "UPDATE webhooks SET url = coalesce($3, url), events = coalesce($4, events), \
       description = coalesce($5, description), enabled = coalesce($6, enabled), \
       disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason ELSE NULL END, \
       updated_at = now() \
     WHERE id = $1 AND user_id = $2 RETURNING ",
    columns!()
);

pub async fn update(
    db: &Db,
    user_id: Uuid,
    id: Uuid,
    change: &WebhookChange,
) -> Result<Option<Webhook>, DbError> {
    let change = change.clone();
    db.write("webhooks.update", move |tx| {
        let change = change.clone();
        Box::pin(async move {
            let stmt = tx.prepare_cached(UPDATE).await?;
            tx.query_opt(
                &stmt,
                &[
                    &id,
                    &user_id,
                    &change.url,
                    &change.events,
                    &change.description,
                    &change.enabled,
                ],
            )
            .await?
            .as_ref()
            .map(Webhook::from_row)
            .transpose()
        })
    })
    .await
}

const DELETE: &str = "DELETE FROM webhooks WHERE id = $1 AND user_id = $2";

/// `false` when it does not exist or belongs to someone else.
pub async fn delete(db: &Db, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    db.write("webhooks.delete", move |tx| {
        Box::pin(async move {
            let stmt = tx.prepare_cached(DELETE).await?;
            Ok(tx.execute(&stmt, &[&id, &user_id]).await? == 1)
        })
    })
    .await
}

// The current secret becomes the previous one, signing beside the new one for `$4` seconds.
const ROTATE: &str = concat!(
    "UPDATE webhooks SET previous_secret_sealed = secret_sealed, \
       previous_secret_expires_at = now() + $4 * interval '1 second', \
       secret_sealed = $3, updated_at = now() \
     WHERE id = $1 AND user_id = $2 RETURNING ",
    columns!()
);

/// Replaces the secret with `sealed`, keeping the old one valid for `overlap_seconds`.
pub async fn rotate_secret(
    db: &Db,
    user_id: Uuid,
    id: Uuid,
    sealed: &[u8],
    overlap_seconds: f64,
) -> Result<Option<Webhook>, DbError> {
    let sealed = sealed.to_vec();
    db.write("webhooks.rotate_secret", move |tx| {
        let sealed = sealed.clone();
        Box::pin(async move {
            let stmt = tx.prepare_cached(ROTATE).await?;
            tx.query_opt(&stmt, &[&id, &user_id, &sealed, &overlap_seconds])
                .await?
                .as_ref()
                .map(Webhook::from_row)
                .transpose()
        })
    })
    .await
}

/// The sealed secrets that sign a delivery now: the current one, and the previous one while
/// its overlap lasts.
#[derive(Debug, Clone)]
pub struct SigningSecrets {
    pub current: Vec<u8>,
    pub previous: Option<Vec<u8>>,
}

const SECRETS: &str = "SELECT secret_sealed, \
       CASE WHEN previous_secret_expires_at > now() THEN previous_secret_sealed END AS previous \
     FROM webhooks WHERE id = $1 AND user_id = $2";

pub async fn signing_secrets(
    db: &Db,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<SigningSecrets>, DbError> {
    db.read("webhooks.signing_secrets", |c| async move {
        let stmt = c.prepare_cached(SECRETS).await?;
        c.query_opt(&stmt, &[&id, &user_id])
            .await?
            .map(|row| {
                Ok(SigningSecrets {
                    current: row.try_get("secret_sealed")?,
                    previous: row.try_get("previous")?,
                })
            })
            .transpose()
    })
    .await
}
