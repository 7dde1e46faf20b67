//! The `webhook_deliveries` table (see `V8__webhook_deliveries.sql`): one row per message and
//! endpoint, and the [`DeliverWebhook`] job that makes its attempts.
//!
//! Who writes what:
//! - fan-out ([`fan_out`], the worker's item-event handlers) and `POST /v1/webhooks/{id}/test`
//!   ([`insert_test`]) insert deliveries and their first attempt's job in one transaction;
//! - the delivery worker reads an attempt ([`pending_attempt`]), sends it, and records its
//!   outcome ([`record`]): the delivery's state, the endpoint's failing streak or disabling, and
//!   the next attempt's job, all in one transaction;
//! - `POST …/deliveries/{id}/retry` ([`replay`]) makes a finished delivery pending again.
//!
//! A job names the attempt it makes (`attempt`, 1 for the first). An attempt is recorded at
//! most once: a job that runs again after its attempt was recorded (at-least-once) finds
//! `attempts` already there and does nothing, and two jobs never hold one attempt's dedup key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use uuid::Uuid;

use super::jobs::{self, Job, NewJob};
use crate::db::{Db, DbError, PgError, Transaction};

/// `webhook.deliver`: make attempt `attempt` of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverWebhook {
    pub delivery_id: Uuid,
    pub attempt: i32,
}

impl Job for DeliverWebhook {
    const KIND: &'static str = "webhook.deliver";
    /// The delivery's own schedule is in its outcomes; these are for the worker's failures
    /// around an attempt (the database unreachable, say).
    const MAX_ATTEMPTS: i32 = 5;
}

impl DeliverWebhook {
    /// One unfinished job per attempt of a delivery.
    pub fn dedup_key(&self) -> String {
        format!("webhook.deliver:{}:{}", self.delivery_id, self.attempt)
    }

    async fn enqueue(&self, tx: &Transaction<'_>, at: DateTime<Utc>) -> Result<(), PgError> {
        let new = NewJob::new(self).run_at(at).dedup_key(self.dedup_key());
        jobs::enqueue(tx, &new).await.map(drop)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// An attempt is due at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// No attempt will follow: the schedule ran out, the endpoint answered `410 Gone`, or it
    /// is disabled. A replay makes it pending again.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "pending" => Self::Pending,
            "delivered" => Self::Delivered,
            _ => Self::Dead,
        }
    }
}

/// A delivery as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The `webhook-id` header, the same on every attempt.
    pub message_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub response_body: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl Delivery {
    fn from_row(row: &Row) -> Result<Self, PgError> {
        Ok(Self {
            id: row.try_get("id")?,
            webhook_id: row.try_get("webhook_id")?,
            message_id: row.try_get("message_id")?,
            event_type: row.try_get("event_type")?,
            state: DeliveryState::parse(row.try_get("state")?),
            attempts: row.try_get("attempts")?,
            last_status: row.try_get("last_status")?,
            last_error: row.try_get("last_error")?,
            response_body: row.try_get("response_body")?,
            last_attempt_at: row.try_get("last_attempt_at")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

macro_rules! columns {
    () => {
        "d.id, d.webhook_id, d.message_id, d.event_type, d.state, d.attempts, d.last_status, \
         d.last_error, d.response_body, d.last_attempt_at, d.next_attempt_at, d.created_at"
    };
}

/// A message: the `webhook-id`, the event type, and the exact body that is signed and sent
/// on every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub event_type: String,
    pub body: String,
}

impl Message {
    /// The Standard Webhooks body `{"type", "timestamp", "data"}` of event `event_id`, a
    /// UUIDv7: `timestamp` is when the event happened (the id's time), `webhook-id` is
    /// `msg_` + the id, so one event is one message to every endpoint.
    pub fn new(event_id: Uuid, event_type: &str, data: &serde_json::Value) -> Self {
        let at = event_id
            .get_timestamp()
            .and_then(|t| {
                let (secs, nanos) = t.to_unix();
                DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
            })
            .unwrap_or_else(Utc::now);
        let body = serde_json::json!({
            "type": event_type,
            "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": data,
        });
        Self {
            message_id: format!("msg_{}", event_id.simple()),
            event_type: event_type.to_owned(),
            body: body.to_string(),
        }
    }
}

const SUBSCRIBED: &str = "SELECT id FROM webhooks \
     WHERE user_id = $1 AND enabled AND $2 = ANY (events) ORDER BY id";

/// Inserts a delivery of `message` for each of the user's enabled endpoints subscribed to its
/// type, each with its first attempt's job due at `first_at`, in the caller's transaction.
/// Returns the new deliveries' ids.
pub async fn fan_out(
    tx: &Transaction<'_>,
    user_id: Uuid,
    message: &Message,
    first_at: DateTime<Utc>,
) -> Result<Vec<Uuid>, PgError> {
    // PostgreSQL 15 has no uuidv7(), so the ids are made here: one insert per endpoint. A
    // second fan-out of the same message adds nothing (the unique index), so an event job
    // that runs twice still delivers once.
    let stmt = tx.prepare_cached(SUBSCRIBED).await?;
    let endpoints = tx.query(&stmt, &[&user_id, &message.event_type]).await?;
    let mut created = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let webhook_id: Uuid = endpoint.try_get("id")?;
        if let Some(id) = insert(tx, webhook_id, message, first_at).await? {
            created.push(id);
        }
    }
    Ok(created)
}

const INSERT: &str = "INSERT INTO webhook_deliveries \
       (id, webhook_id, message_id, event_type, body, next_attempt_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (webhook_id, message_id) DO NOTHING RETURNING id";

async fn insert(
    tx: &Transaction<'_>,
    webhook_id: Uuid,
    message: &Message,
    first_at: DateTime<Utc>,
) -> Result<Option<Uuid>, PgError> {
    let stmt = tx.prepare_cached(INSERT).await?;
    let row = tx
        .query_opt(
            &stmt,
            &[
                &Uuid::now_v7(),
                &webhook_id,
                &message.message_id,
                &message.event_type,
                &message.body,
                &first_at,
            ],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let id: Uuid = row.try_get("id")?;
    DeliverWebhook {
        delivery_id: id,
        attempt: 1,
    }
    .enqueue(tx, first_at)
    .await?;
    Ok(Some(id))
}

const GET_FOR_OWNER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
     WHERE d.id = $1 AND w.user_id = $2"
);

/// Inserts `message` for one endpoint (a `webhook.test`) in the caller's transaction, whether
/// or not it subscribes to the type; the caller has checked the endpoint is the user's.
pub async fn insert_test(
    tx: &Transaction<'_>,
    user_id: Uuid,
    webhook_id: Uuid,
    message: &Message,
    first_at: DateTime<Utc>,
) -> Result<Option<Delivery>, PgError> {
    let Some(id) = insert(tx, webhook_id, message, first_at).await? else {
        return Ok(None);
    };
    let stmt = tx.prepare_cached(GET_FOR_OWNER).await?;
    tx.query_opt(&stmt, &[&id, &user_id])
        .await?
        .as_ref()
        .map(Delivery::from_row)
        .transpose()
}

const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
     WHERE d.webhook_id = $1 AND w.user_id = $2 \
       AND d.id < coalesce($3, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid) \
     ORDER BY d.id DESC LIMIT $4"
);

/// An endpoint's deliveries, newest first, older than `before`; empty for another user's
/// endpoint (the caller checks that it exists for a 404).
pub async fn list(
    db: &Db,
    user_id: Uuid,
    webhook_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    db.read("webhook_deliveries.list", |c| async move {
        let stmt = c.prepare_cached(LIST).await?;
        c.query(&stmt, &[&webhook_id, &user_id, &before, &limit])
            .await?
            .iter()
            .map(Delivery::from_row)
            .collect()
    })
    .await
}

/// One delivery of the user's endpoint `webhook_id`.
pub async fn get(
    db: &Db,
    user_id: Uuid,
    webhook_id: Uuid,
    id: Uuid,
) -> Result<Option<Delivery>, DbError> {
    db.read("webhook_deliveries.get", |c| async move {
        let stmt = c.prepare_cached(GET_FOR_OWNER).await?;
        Ok(c.query_opt(&stmt, &[&id, &user_id])
            .await?
            .as_ref()
            .map(Delivery::from_row)
            .transpose()?
            .filter(|d| d.webhook_id == webhook_id))
    })
    .await
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq)]
pub enum Replay {
    /// Pending again, its next attempt due now.
    Queued(Delivery),
    /// The endpoint is disabled: enable it first.
    EndpointDisabled,
    NotFound,
}

const LOCK_FOR_OWNER: &str = concat!(
    "SELECT ",
    columns!(),
    ", w.enabled FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
     WHERE d.id = $1 AND d.webhook_id = $2 AND w.user_id = $3 FOR UPDATE OF d"
);

const REQUEUE: &str = "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now(), \
       updated_at = now() WHERE id = $1";

/// Makes the user's delivery due now. A finished one becomes pending, its next attempt
/// numbered after the ones recorded: if it fails, the schedule goes on from there (and a
/// delivery past the end of the schedule gets this one attempt). A pending one has its due
/// attempt moved to now.
pub async fn replay(db: &Db, user_id: Uuid, webhook_id: Uuid, id: Uuid) -> Result<Replay, DbError> {
    db.write("webhook_deliveries.replay", move |tx| {
        Box::pin(async move {
            let stmt = tx.prepare_cached(LOCK_FOR_OWNER).await?;
            let Some(row) = tx.query_opt(&stmt, &[&id, &webhook_id, &user_id]).await? else {
                return Ok(Replay::NotFound);
            };
            if !row.try_get::<_, bool>("enabled")? {
                return Ok(Replay::EndpointDisabled);
            }
            let delivery = Delivery::from_row(&row)?;
            let job = DeliverWebhook {
                delivery_id: id,
                attempt: delivery.attempts + 1,
            };
            let now = Utc::now();
            if delivery.state == DeliveryState::Pending {
                // The attempt's job is waiting (or running, when this finds nothing to move).
                jobs::expedite(tx, &job.dedup_key()).await?;
            } else {
                job.enqueue(tx, now).await?;
            }
            let stmt = tx.prepare_cached(REQUEUE).await?;
            tx.execute(&stmt, &[&id]).await?;
            Ok(Replay::Queued(Delivery {
                state: DeliveryState::Pending,
                next_attempt_at: Some(now),
                ..delivery
            }))
        })
    })
    .await
}

/// What an attempt needs: the delivery, its endpoint and the endpoint's sealed secrets.
#[derive(Debug, Clone)]
pub struct PendingAttempt {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub message_id: String,
    pub event_type: String,
    pub body: String,
    pub url: String,
    pub enabled: bool,
    /// The current secret, and the previous one while its overlap lasts.
    pub secret_sealed: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
}

const PENDING_ATTEMPT: &str = "SELECT d.id, d.webhook_id, d.message_id, d.event_type, d.body, \
       w.url, w.enabled, w.secret_sealed, \
       CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret_sealed END \
         AS previous_secret_sealed \
     FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
     WHERE d.id = $1 AND d.state = 'pending' AND d.attempts < $2";

/// Attempt `attempt` of a delivery, unless it was recorded already, the delivery is no longer
/// pending, or it (or its endpoint) was deleted.
pub async fn pending_attempt(
    db: &Db,
    delivery_id: Uuid,
    attempt: i32,
) -> Result<Option<PendingAttempt>, DbError> {
    db.read("webhook_deliveries.pending_attempt", |c| async move {
        let stmt = c.prepare_cached(PENDING_ATTEMPT).await?;
        c.query_opt(&stmt, &[&delivery_id, &attempt])
            .await?
            .map(|row| {
                Ok(PendingAttempt {
                    delivery_id: row.try_get("id")?,
                    webhook_id: row.try_get("webhook_id")?,
                    message_id: row.try_get("message_id")?,
                    event_type: row.try_get("event_type")?,
                    body: row.try_get("body")?,
                    url: row.try_get("url")?,
                    enabled: row.try_get("enabled")?,
                    secret_sealed: row.try_get("secret_sealed")?,
                    previous_secret_sealed: row.try_get("previous_secret_sealed")?,
                })
            })
            .transpose()
    })
    .await
}

/// How an attempt ended, as the delivery worker classified it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// A 2xx: delivered; the endpoint's failing streak ends.
    Delivered { status: i32, body: String },
    /// `410 Gone`: dead, and the endpoint is disabled for `reason`.
    Gone {
        status: i32,
        body: String,
        reason: String,
    },
    /// Anything else. `retry_in`: when the next attempt runs, `None` when none will.
    Failed {
        status: Option<i32>,
        error: String,
        body: Option<String>,
        retry_in: Option<Duration>,
    },
    /// Not sent, since the endpoint is disabled: dead, no attempt counted.
    Skipped { reason: String },
}

/// What [`record`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub state: DeliveryState,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why this attempt disabled the endpoint, if it did.
    pub disabled: Option<String>,
}

const LOCK_ATTEMPT: &str = "SELECT webhook_id, attempts FROM webhook_deliveries \
     WHERE id = $1 AND state = 'pending' AND attempts < $2 FOR UPDATE";

const END_STREAK: &str = "UPDATE webhooks SET failing_since = NULL \
     WHERE id = $1 AND failing_since IS NOT NULL";

// A failure starts the streak or extends it; one that finds the streak older than `$2` seconds
// disables the endpoint (every right-hand side sees the row as it was).
const EXTEND_STREAK: &str = "UPDATE webhooks SET failing_since = coalesce(failing_since, now()), \
       enabled = enabled AND NOT coalesce(failing_since <= now() - $2 * interval '1 second', false), \
       disabled_reason = CASE \
         WHEN enabled AND failing_since <= now() - $2 * interval '1 second' \
         THEN 'every delivery attempt has failed since ' \
           || to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         ELSE disabled_reason END, \
       updated_at = CASE \
         WHEN enabled AND failing_since <= now() - $2 * interval '1 second' THEN now() \
         ELSE updated_at END \
     WHERE id = $1 RETURNING enabled, disabled_reason";

const DISABLE: &str = "UPDATE webhooks SET enabled = false, disabled_reason = $2, \
       updated_at = now() WHERE id = $1 AND enabled";

const RECORD: &str = "UPDATE webhook_deliveries SET state = $2, attempts = $3, \
       last_status = CASE WHEN $7 THEN $4 ELSE last_status END, last_error = $5, \
       response_body = CASE WHEN $7 THEN $6 ELSE response_body END, \
       last_attempt_at = CASE WHEN $7 THEN now() ELSE last_attempt_at END, \
       next_attempt_at = $8, updated_at = now() \
     WHERE id = $1";

/// Records attempt `attempt`'s outcome: the delivery's state, the endpoint's failing streak
/// (an endpoint failing for `disable_after` is disabled, and a failure then is final), and
/// the next attempt's job, in one transaction. `None` when the attempt was recorded already.
pub async fn record(
    db: &Db,
    delivery_id: Uuid,
    attempt: i32,
    outcome: &AttemptOutcome,
    disable_after: Duration,
) -> Result<Option<Recorded>, DbError> {
    let outcome = outcome.clone();
    db.write("webhook_deliveries.record", move |tx| {
        let outcome = outcome.clone();
        Box::pin(async move {
            let stmt = tx.prepare_cached(LOCK_ATTEMPT).await?;
            let Some(row) = tx.query_opt(&stmt, &[&delivery_id, &attempt]).await? else {
                return Ok(None);
            };
            let webhook_id: Uuid = row.try_get("webhook_id")?;
            let attempts_before: i32 = row.try_get("attempts")?;
            let mut disabled = None;
            let mut next_at = None;
            let (state, attempts, status, error, body) = match &outcome {
                AttemptOutcome::Delivered { status, body } => {
                    tx.execute(END_STREAK, &[&webhook_id]).await?;
                    let body = Some(body.clone());
                    (DeliveryState::Delivered, attempt, Some(*status), None, body)
                }
                AttemptOutcome::Gone {
                    status,
                    body,
                    reason,
                } => {
                    if tx.execute(DISABLE, &[&webhook_id, reason]).await? == 1 {
                        disabled = Some(reason.clone());
                    }
                    let error = Some(format!("{status} Gone: {reason}"));
                    (
                        DeliveryState::Dead,
                        attempt,
                        Some(*status),
                        error,
                        Some(body.clone()),
                    )
                }
                AttemptOutcome::Failed {
                    status,
                    error,
                    body,
                    retry_in,
                } => {
                    let seconds = disable_after.as_secs_f64();
                    let streak = tx
                        .query_one(EXTEND_STREAK, &[&webhook_id, &seconds])
                        .await?;
                    let enabled: bool = streak.try_get("enabled")?;
                    if !enabled {
                        disabled = streak.try_get("disabled_reason")?;
                    }
                    let state = match retry_in {
                        Some(wait) if enabled => {
                            let at =
                                Utc::now() + chrono::Duration::from_std(*wait).unwrap_or_default();
                            next_at = Some(at);
                            DeliverWebhook {
                                delivery_id,
                                attempt: attempt + 1,
                            }
                            .enqueue(tx, at)
                            .await?;
                            DeliveryState::Pending
                        }
                        _ => DeliveryState::Dead,
                    };
                    (state, attempt, *status, Some(error.clone()), body.clone())
                }
                AttemptOutcome::Skipped { reason } => {
                    let error = Some(format!("not sent: {reason}"));
                    (DeliveryState::Dead, attempts_before, None, error, None)
                }
            };
            let attempted = !matches!(outcome, AttemptOutcome::Skipped { .. });
            let stmt = tx.prepare_cached(RECORD).await?;
            tx.execute(
                &stmt,
                &[
                    &delivery_id,
                    &state.as_str(),
                    &attempts,
                    &status,
                    &error,
                    &body,
                    &attempted,
                    &next_at,
                ],
            )
            .await?;
            Ok(Some(Recorded {
                state,
                next_attempt_at: next_at,
                disabled,
            }))
        })
    })
    .await
}

const PURGE: &str = "DELETE FROM webhook_deliveries WHERE id IN ( \
       SELECT id FROM webhook_deliveries \
       WHERE state IN ('delivered', 'dead') AND updated_at < now() - $1 * interval '1 second' \
       ORDER BY updated_at LIMIT $2)";

/// Deletes up to `limit` deliveries finished more than `older_than` ago; returns how many.
pub async fn purge_finished(db: &Db, older_than: Duration, limit: i64) -> Result<u64, DbError> {
    let seconds = older_than.as_secs_f64();
    db.write("webhook_deliveries.purge_finished", move |tx| {
        Box::pin(async move {
            let stmt = tx.prepare_cached(PURGE).await?;
            tx.execute(&stmt, &[&seconds, &limit]).await
        })
    })
    .await
}
