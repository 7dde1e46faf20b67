//! The `api_keys` table.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, DbError, PgError, Transaction};

/// A key as listed: never the key itself or its hash.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Decodes a row selected with `columns!()`; a missing column or changed type is an
    /// error, not a panic.
    fn from_row(row: &Row) -> Result<Self, PgError> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            prefix: row.try_get("prefix")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
        })
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

impl KeyCredential {
    /// Decodes a row of `FIND_BY_PREFIX`; a missing column or changed type is an error.
    fn from_row(row: &Row) -> Result<Self, PgError> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            key_hash: row.try_get("key_hash")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }
}

// The columns `ApiKey::from_row` reads. A macro rather than a `const` because `concat!` only
// takes literals, and every statement below is a `const` so `prepare_cached` sees the same
// string each time.
macro_rules! columns {
    () => {
        "id, name, prefix, created_at, last_used_at"
    };
}

const CREATE: &str = concat!(
    "INSERT INTO api_keys (id, user_id, name, prefix, key_hash) \
     VALUES ($1, $2, $3, $4, $5) RETURNING ",
    columns!()
);

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
        Box::pin(async move { insert(tx, user_id, &name, &prefix, &key_hash).await })
    })
    .await
}

/// [`create`]'s statement inside the caller's transaction, for work that must commit with
/// something else (an idempotency record).
pub async fn insert(
    tx: &Transaction<'_>,
    user_id: Uuid,
    name: &str,
    prefix: &str,
    key_hash: &[u8],
) -> Result<ApiKey, PgError> {
    let stmt = tx.prepare_cached(CREATE).await?;
    let row = tx
        .query_one(
            &stmt,
            &[&Uuid::now_v7(), &user_id, &name, &prefix, &key_hash],
        )
        .await?;
    ApiKey::from_row(&row)
}

const LIST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM api_keys WHERE user_id = $1 ORDER BY id"
);

pub async fn list(db: &Db, user_id: Uuid) -> Result<Vec<ApiKey>, DbError> {
    db.read("api_keys.list", |c| async move {
        let stmt = c.prepare_cached(LIST).await?;
        c.query(&stmt, &[&user_id])
            .await?
            .iter()
            .map(ApiKey::from_row)
            .collect::<Result<Vec<_>, _>>()
    })
    .await
}

const DELETE: &str = "DELETE FROM api_keys WHERE id = $1 AND user_id = $2 RETURNING prefix";

/// Deletes one of the user's keys and returns its prefix (so the caller can forget the key
/// wherever it is remembered); `None` when it does not exist or belongs to someone else.
pub async fn delete(db: &Db, user_id: Uuid, id: Uuid) -> Result<Option<String>, DbError> {
    db.write("api_keys.delete", move |tx| {
        Box::pin(async move {
            let stmt = tx.prepare_cached(DELETE).await?;
            tx.query_opt(&stmt, &[&id, &user_id])
                .await?
                .map(|row| row.try_get("prefix"))
                .transpose()
        })
    })
    .await
}

const FIND_BY_PREFIX: &str =
    "SELECT id, user_id, key_hash, last_used_at FROM api_keys WHERE prefix = $1";

pub async fn find_by_prefix(db: &Db, prefix: &str) -> Result<Option<KeyCredential>, DbError> {
    db.read("api_keys.find_by_prefix", |c| async move {
        let stmt = c.prepare_cached(FIND_BY_PREFIX).await?;
        c.query_opt(&stmt, &[&prefix])
            .await?
            .as_ref()
            .map(KeyCredential::from_row)
            .transpose()
    })
    .await
}

const TOUCH: &str = "UPDATE api_keys SET last_used_at = now() WHERE id = $1 \
                     AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')";

/// Records use, at most once a minute per key (the condition makes concurrent requests and
/// retries harmless, so this is a `read`-style idempotent statement).
pub async fn touch(db: &Db, id: Uuid) -> Result<(), DbError> {
    db.read("api_keys.touch", |c| async move {
        let stmt = c.prepare_cached(TOUCH).await?;
        c.execute(&stmt, &[&id]).await?;
        Ok(())
    })
    .await
}
