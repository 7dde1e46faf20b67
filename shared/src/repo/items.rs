//! The `items` table; every statement is scoped to the owner.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, DbError};

#[derive(Debug, Clone)]
pub struct Item {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Row> for Item {
    fn from(row: Row) -> Self {
        Self {
            id: row.get("id"),
            title: row.get("title"),
            description: row.get("description"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

const COLUMNS: &str = "id, title, description, created_at, updated_at";

pub async fn create(
    db: &Db,
    user_id: Uuid,
    title: &str,
    description: &str,
) -> Result<Item, DbError> {
    let (title, description) = (title.to_owned(), description.to_owned());
    db.write("items.create", move |tx| {
        let (title, description) = (title.clone(), description.clone());
        Box::pin(async move {
            let stmt = tx
                .prepare_cached(&format!(
                    "INSERT INTO items (id, user_id, title, description) VALUES ($1, $2, $3, $4) \
                     RETURNING {COLUMNS}"
                ))
                .await?;
            let row = tx
                .query_one(&stmt, &[&Uuid::now_v7(), &user_id, &title, &description])
                .await?;
            Ok(Item::from(row))
        })
    })
    .await
}

pub async fn get(db: &Db, user_id: Uuid, id: Uuid) -> Result<Option<Item>, DbError> {
    db.read("items.get", |c| async move {
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM items WHERE id = $1 AND user_id = $2"
            ))
            .await?;
        Ok(c.query_opt(&stmt, &[&id, &user_id]).await?.map(Item::from))
    })
    .await
}

/// Newest first; `before` is the id of the last item of the previous page. UUIDv7 ids sort
/// by creation time, so `id` alone is a stable, unique keyset.
pub async fn list(
    db: &Db,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Item>, DbError> {
    db.read("items.list", |c| async move {
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM items WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2) \
                 ORDER BY id DESC LIMIT $3"
            ))
            .await?;
        Ok(c.query(&stmt, &[&user_id, &before, &limit])
            .await?
            .into_iter()
            .map(Item::from)
            .collect())
    })
    .await
}

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
            let sql = format!(
                "UPDATE items SET title = coalesce($3, title), \
                 description = coalesce($4, description), updated_at = now() \
                 WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"
            );
            Ok(tx
                .query_opt(&sql, &[&id, &user_id, &title, &description])
                .await?
                .map(Item::from))
        })
    })
    .await
}

pub async fn delete(db: &Db, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    db.write("items.delete", move |tx| {
        Box::pin(async move {
            Ok(tx
                .execute(
                    "DELETE FROM items WHERE id = $1 AND user_id = $2",
                    &[&id, &user_id],
                )
                .await?
                == 1)
        })
    })
    .await
}
