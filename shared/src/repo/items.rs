//! The `items` table; every statement is scoped to the owner. Every change enqueues its event
//! job ([`ItemCreated`], [`ItemUpdated`], [`ItemDeleted`]) in the same transaction, so an event
//! exists exactly when its change committed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use uuid::Uuid;

use super::jobs::{self, Job, NewJob};
use crate::db::{Db, DbError, PgError, ToSql, Transaction};

/// The item an event is about. Only ids: the consumer reads the item's current state (a
/// queued payload would be stale by the time a retry delivers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRef {
    pub item_id: Uuid,
    pub user_id: Uuid,
    /// The event's identity, a UUIDv7 (so it carries when the change happened): webhook
    /// fan-out makes it the messages' `webhook-id`, the same however often the job runs. A job
    /// queued before this field existed gets a fresh one each run.
    #[serde(default = "Uuid::now_v7")]
    pub event_id: Uuid,
}

impl ItemRef {
    /// A new event about `item_id`.
    pub fn new(item_id: Uuid, user_id: Uuid) -> Self {
        Self {
            item_id,
            user_id,
            event_id: Uuid::now_v7(),
        }
    }
}

/// `item.created`: the job enqueued with a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemCreated(pub ItemRef);
impl Job for ItemCreated {
    const KIND: &'static str = "item.created";
}

/// `item.updated`: the job enqueued with a change to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemUpdated(pub ItemRef);
impl Job for ItemUpdated {
    const KIND: &'static str = "item.updated";
}

/// `item.deleted`: the job enqueued with an item's deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemDeleted(pub ItemRef);
impl Job for ItemDeleted {
    const KIND: &'static str = "item.deleted";
}

async fn enqueue_event<J: Job>(tx: &Transaction<'_>, event: J) -> Result<(), PgError> {
    jobs::enqueue(tx, &NewJob::new(&event)).await.map(drop)
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Item {
    /// Decodes a row selected with `columns!()`; a missing column or changed type is an
    /// error, not a panic.
    fn from_row(row: &Row) -> Result<Self, PgError> {
        Ok(Self {
            id: row.try_get("id")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

// The columns `Item::from_row` reads. A macro rather than a `const` because `concat!` only
// takes literals, and every statement below is a `const` so `prepare_cached` sees the same
// string each time.
macro_rules! columns {
    () => {
        "id, title, description, created_at, updated_at"
    };
}

// The item and its `ItemCreated` job in one statement (the job's parameters first, see
// `jobs::with_job!`).
const CREATE: &str = jobs::with_job!(concat!(
    "INSERT INTO items (id, user_id, title, description) VALUES ($8, $9, $10, $11) \
     RETURNING ",
    columns!()
));

/// Creates an item and its `ItemCreated` job: one statement, committed on its own (one round
/// trip, see [`Db::write_statement`]).
pub async fn create(
    db: &Db,
    user_id: Uuid,
    title: &str,
    description: &str,
) -> Result<Item, DbError> {
    let id = Uuid::now_v7();
    let event = ItemCreated(ItemRef::new(id, user_id));
    let job = NewJob::new(&event);
    let job = jobs::JobParams::new(&job);
    let params = create_params(&job, &id, &user_id, &title, &description);
    db.write_statement("items.create", CREATE, &params, Item::from_row)
        .await
}

/// [`create`]'s statement inside the caller's transaction, for work that must commit with
/// something else (an idempotency record).
pub async fn insert(
    tx: &Transaction<'_>,
    user_id: Uuid,
    title: &str,
    description: &str,
) -> Result<Item, PgError> {
    let id = Uuid::now_v7();
    let event = ItemCreated(ItemRef::new(id, user_id));
    let job = NewJob::new(&event);
    let job = jobs::JobParams::new(&job);
    let stmt = tx.prepare_cached(CREATE).await?;
    let row = tx
        .query_one(
            &stmt,
            &create_params(&job, &id, &user_id, &title, &description),
        )
        .await?;
    Item::from_row(&row)
}

fn create_params<'a>(
    job: &'a jobs::JobParams<'_, ItemCreated>,
    id: &'a Uuid,
    user_id: &'a Uuid,
    title: &'a &str,
    description: &'a &str,
) -> [&'a (dyn ToSql + Sync); 11] {
    let [a, b, c, d, e, f, g] = job.params();
    [a, b, c, d, e, f, g, id, user_id, title, description]
}

const GET: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM items WHERE id = $1 AND user_id = $2"
);

pub async fn get(db: &Db, user_id: Uuid, id: Uuid) -> Result<Option<Item>, DbError> {
    db.read("items.get", |c| async move {
        let stmt = c.prepare_cached(GET).await?;
        c.query_opt(&stmt, &[&id, &user_id])
            .await?
            .as_ref()
            .map(Item::from_row)
            .transpose()
    })
    .await
}

// Two statements, not one with `($2::uuid IS NULL OR id < $2)`: after five executions a
// prepared statement may switch to PostgreSQL's generic plan, which is planned without knowing
// whether $2 is NULL, so the OR cannot become an index bound; the index then only finds the
// user's rows and every one newer than the cursor is read and filtered out (each page deeper
// costs more). Separately, each statement's generic plan is an index range scan
// (`generic_plans_of_the_list_statements_bound_the_index_scan` below checks it).
const LIST_FIRST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM items WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
);

const LIST_AFTER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM items WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
);

/// Newest first; `before` is the id of the last item of the previous page. UUIDv7 ids sort
/// by creation time, so `id` alone is a stable, unique keyset.
pub async fn list(
    db: &Db,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Item>, DbError> {
    db.read("items.list", |c| async move {
        let rows = match before {
            None => {
                let stmt = c.prepare_cached(LIST_FIRST).await?;
                c.query(&stmt, &[&user_id, &limit]).await?
            }
            Some(before) => {
                let stmt = c.prepare_cached(LIST_AFTER).await?;
                c.query(&stmt, &[&user_id, &before, &limit]).await?
            }
        };
        rows.iter()
            .map(Item::from_row)
            .collect::<Result<Vec<_>, _>>()
    })
    .await
}

const UPDATE: &str = concat!(
    "UPDATE items SET title = coalesce($3, title), \
     description = coalesce($4, description), updated_at = now() \
     WHERE id = $1 AND user_id = $2 RETURNING ",
    columns!()
);

pub async fn update(
    db: &Db,
    user_id: Uuid,
    id: Uuid,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<Option<Item>, DbError> {
    let (title, description) = (title.map(str::to_owned), description.map(str::to_owned));
    db.write("items.update", move |tx| {
        let (title, description) = (title.clone(), description.clone());
        Box::pin(async move {
            let stmt = tx.prepare_cached(UPDATE).await?;
            let Some(row) = tx
                .query_opt(&stmt, &[&id, &user_id, &title, &description])
                .await?
            else {
                return Ok(None);
            };
            let item = Item::from_row(&row)?;
            enqueue_event(tx, ItemUpdated(ItemRef::new(id, user_id))).await?;
            Ok(Some(item))
        })
    })
    .await
}

const DELETE: &str = "DELETE FROM items WHERE id = $1 AND user_id = $2";

pub async fn delete(db: &Db, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    db.write("items.delete", move |tx| {
        Box::pin(async move {
            let stmt = tx.prepare_cached(DELETE).await?;
            if tx.execute(&stmt, &[&id, &user_id]).await? != 1 {
                return Ok(false);
            }
            enqueue_event(tx, ItemDeleted(ItemRef::new(id, user_id))).await?;
            Ok(true)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The plan PostgreSQL uses for `sql` once a prepared statement has gone generic (after
    /// five executions; forced here). PostgreSQL 15 has no `EXPLAIN (GENERIC_PLAN)`, hence
    /// `PREPARE` + `EXPLAIN EXECUTE` under `plan_cache_mode = force_generic_plan`.
    async fn generic_plan(
        db: &Db,
        sql: &'static str,
        types: &'static str,
        args: &'static str,
    ) -> String {
        db.read("test.explain", |c| async move {
            c.batch_execute(&format!(
                "SET plan_cache_mode = force_generic_plan; \
                 PREPARE list_plan ({types}) AS {sql}"
            ))
            .await?;
            let rows = c
                .query(&format!("EXPLAIN EXECUTE list_plan ({args})"), &[])
                .await?;
            c.batch_execute("DEALLOCATE list_plan; RESET plan_cache_mode")
                .await?;
            rows.iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()
                .map(|lines| lines.join("\n"))
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn generic_plans_of_the_list_statements_bound_the_index_scan() {
        let url = crate::testing::create_database().await;
        let db = Db::connect_lazy(&url, 1, Duration::from_secs(5)).unwrap();
        db.migrate().await.unwrap();
        // Enough rows, over enough users, that the planner prefers the index to a scan.
        db.read("test.seed", |c| async move {
            c.batch_execute(
                "INSERT INTO users (id, email, password_hash) \
                 SELECT gen_random_uuid(), 'u' || n || '@example.com', 'x' \
                 FROM generate_series(1, 50) n; \
                 INSERT INTO items (id, user_id, title) \
                 SELECT gen_random_uuid(), u.id, 'item' \
                 FROM users u, generate_series(1, 400); \
                 ANALYZE users; ANALYZE items",
            )
            .await
        })
        .await
        .unwrap();
        let after = generic_plan(
            &db,
            LIST_AFTER,
            "uuid, uuid, bigint",
            "gen_random_uuid(), gen_random_uuid(), 20",
        )
        .await;
        assert!(
            after.contains("Index Cond: ((user_id = $1) AND (id < $2))"),
            "the next-page query must bound the index scan by the cursor:\n{after}"
        );
        assert!(!after.contains("Filter"), "{after}");
        let first = generic_plan(&db, LIST_FIRST, "uuid, bigint", "gen_random_uuid(), 20").await;
        assert!(
            first.contains("Index Cond: (user_id = $1)") && !first.contains("Sort"),
            "{first}"
        );
    }
}
