//! The `api_keys` table.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, DbError};

/// A key as listed: never the key itself or its hash.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<Row> for ApiKey {
    fn from(row: Row) -> Self {
        Self {
            id: row.get("id"),
            name: row.get("name"),
            prefix: row.get("prefix"),
            created_at: row.get("created_at"),
            last_used_at: row.get("last_used_at"),
        }
    }
}

/// What authentication needs to check a presented key.
#[derive(Debug, Clone)]
pub struct KeyCredential {
    pub id: Uuid,
    pub user_id: Uuid,
    pub key_hash: Vec<u8>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, prefix, created_at, last_used_at";

pub async fn create(
    db: &Db,
    user_id: Uuid,
    name: &str,
    prefix: &str,
    key_hash: &[u8],
) -> Result<ApiKey, DbError> {
    let (name, prefix, key_hash) = (name.to_owned(), prefix.to_owned(), key_hash.to_vec());
    db.write("api_keys.create", move |tx| {
        let (name, prefix, key_hash) = (name.clone(), prefix.clone(), key_hash.clone());
        Box::pin(async move {
            let sql = format!(
                "INSERT INTO api_keys (id, user_id, name, prefix, key_hash) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            );
            let row = tx
                .query_one(
                    &sql,
                    &[&Uuid::now_v7(), &user_id, &name, &prefix, &key_hash],
                )
                .await?;
            Ok(ApiKey::from(row))
        })
    })
    .await
}

pub async fn list(db: &Db, user_id: Uuid) -> Result<Vec<ApiKey>, DbError> {
    db.read("api_keys.list", |c| async move {
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys WHERE user_id = $1 ORDER BY id"
            ))
            .await?;
        Ok(c.query(&stmt, &[&user_id])
            .await?
            .into_iter()
            .map(ApiKey::from)
            .collect())
    })
    .await
}

/// Deletes one of the user's keys; false when it does not exist or belongs to someone else.
pub async fn delete(db: &Db, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
    db.write("api_keys.delete", move |tx| {
        Box::pin(async move {
            Ok(tx
                .execute(
                    "DELETE FROM api_keys WHERE id = $1 AND user_id = $2",
                    &[&id, &user_id],
                )
                .await?
                == 1)
        })
    })
    .await
}

pub async fn find_by_prefix(db: &Db, prefix: &str) -> Result<Option<KeyCredential>, DbError> {
    db.read("api_keys.find_by_prefix", |c| async move {
        let stmt = c
            .prepare_cached(
                "SELECT id, user_id, key_hash, last_used_at FROM api_keys WHERE prefix = $1",
            )
            .await?;
        Ok(c.query_opt(&stmt, &[&prefix])
            .await?
            .map(|row| KeyCredential {
                id: row.get("id"),
                user_id: row.get("user_id"),
                key_hash: row.get("key_hash"),
                last_used_at: row.get("last_used_at"),
            }))
    })
    .await
}

/// Records use, at most once a minute per key (the condition makes concurrent requests and
/// retries harmless, so this is a `read`-style idempotent statement).
pub async fn touch(db: &Db, id: Uuid) -> Result<(), DbError> {
    db.read("api_keys.touch", |c| async move {
        let stmt = c
            .prepare_cached(
                "UPDATE api_keys SET last_used_at = now() WHERE id = $1 \
                 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            )
            .await?;
        c.execute(&stmt, &[&id]).await?;
        Ok(())
    })
    .await
}
