//! The `items` table; every statement is scoped to the owner.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, DbError, PgError, Transaction};

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

const CREATE: &str = concat!(
    "INSERT INTO items (id, user_id, title, description) VALUES ($1, $2, $3, $4) \
     RETURNING ",
    columns!()
);

pub async fn create(
    db: &Db,
    user_id: Uuid,
    title: &str,
    description: &str,
) -> Result<Item, DbError> {
    let (title, description) = (title.to_owned(), description.to_owned());
    db.write("items.create", move |tx| {
        let (title, description) = (title.clone(), description.clone());
        Box::pin(async move { insert(tx, user_id, &title, &description).await })
    })
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
    let stmt = tx.prepare_cached(CREATE).await?;
    let row = tx
        .query_one(&stmt, &[&Uuid::now_v7(), &user_id, &title, &description])
        .await?;
    Item::from_row(&row)
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

const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM items WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2) \
     ORDER BY id DESC LIMIT $3"
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
        let stmt = c.prepare_cached(LIST).await?;
        c.query(&stmt, &[&user_id, &before, &limit])
            .await?
            .iter()
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
            tx.query_opt(&stmt, &[&id, &user_id, &title, &description])
                .await?
                .as_ref()
                .map(Item::from_row)
                .transpose()
        })
    })
    .await
}

const DELETE: &str = "DELETE FROM items WHERE id = $1 AND user_id = $2";

pub async fn delete(db: &Db, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    db.write("items.delete", move |tx| {
        Box::pin(async move {
            let stmt = tx.prepare_cached(DELETE).await?;
            Ok(tx.execute(&stmt, &[&id, &user_id]).await? == 1)
        })
    })
    .await
}
