//! The `idempotency_keys` table: the stored first response per (user, key).
//!
//! Unlike the other repositories these functions take the caller's transaction: a stored
//! response must commit together with the change it answers for (see `crate::idempotency`),
//! and the advisory lock that marks a request in flight lasts exactly as long as that
//! transaction.

use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{PgError, Transaction};

/// A stored response, as read back.
#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub request_hash: Vec<u8>,
    pub status: i16,
    /// `[[name, value], …]` as JSON text.
    pub headers: String,
    /// Nonce and ciphertext.
    pub body: Vec<u8>,
    /// Stored less than 24 hours ago; an older row is ignored and replaced.
    pub live: bool,
}

impl StoredResponse {
    /// Decodes a row of `FIND`; a missing column or changed type is an error, not a panic.
    fn from_row(row: &Row) -> Result<Self, PgError> {
        Ok(Self {
            request_hash: row.try_get("request_hash")?,
            status: row.try_get("status")?,
            headers: row.try_get("headers")?,
            body: row.try_get("body")?,
            live: row.try_get("live")?,
        })
    }
}

/// What [`insert`] stores.
#[derive(Debug, Clone, Copy)]
pub struct NewResponse<'a> {
    pub user_id: Uuid,
    pub key_hash: &'a [u8],
    pub request_hash: &'a [u8],
    pub status: i16,
    pub headers: &'a str,
    pub body: &'a [u8],
}

const TRY_LOCK: &str = "SELECT pg_try_advisory_xact_lock($1)";

/// Takes the transaction-scoped advisory lock `lock_id` if nobody holds it; false when another
/// transaction does (a request with the same key is in flight). Released at commit or
/// rollback, including the rollback of a connection that dies.
pub async fn try_lock(tx: &Transaction<'_>, lock_id: i64) -> Result<bool, PgError> {
    let stmt = tx.prepare_cached(TRY_LOCK).await?;
    tx.query_one(&stmt, &[&lock_id]).await?.try_get(0)
}

const FIND: &str = "SELECT request_hash, status, headers::text AS headers, body, \
                    created_at > now() - interval '24 hours' AS live \
                    FROM idempotency_keys WHERE user_id = $1 AND key_hash = $2";

/// The row for this user and key, live or expired.
pub async fn find(
    tx: &Transaction<'_>,
    user_id: Uuid,
    key_hash: &[u8],
) -> Result<Option<StoredResponse>, PgError> {
    let stmt = tx.prepare_cached(FIND).await?;
    tx.query_opt(&stmt, &[&user_id, &key_hash])
        .await?
        .as_ref()
        .map(StoredResponse::from_row)
        .transpose()
}

const DELETE: &str = "DELETE FROM idempotency_keys WHERE user_id = $1 AND key_hash = $2";

/// Removes this user's row for this key (an expired one, before the key is used afresh).
pub async fn delete(tx: &Transaction<'_>, user_id: Uuid, key_hash: &[u8]) -> Result<(), PgError> {
    let stmt = tx.prepare_cached(DELETE).await?;
    tx.execute(&stmt, &[&user_id, &key_hash]).await?;
    Ok(())
}

const INSERT: &str = "INSERT INTO idempotency_keys \
                      (user_id, key_hash, request_hash, status, headers, body) \
                      VALUES ($1, $2, $3, $4, $5::text::jsonb, $6)";

pub async fn insert(tx: &Transaction<'_>, new: NewResponse<'_>) -> Result<(), PgError> {
    let stmt = tx.prepare_cached(INSERT).await?;
    tx.execute(
        &stmt,
        &[
            &new.user_id,
            &new.key_hash,
            &new.request_hash,
            &new.status,
            &new.headers,
            &new.body,
        ],
    )
    .await?;
    Ok(())
}

// Oldest first, and rows another transaction is deleting are skipped rather than waited for.
const PURGE_EXPIRED: &str = "DELETE FROM idempotency_keys WHERE (user_id, key_hash) IN (\
                             SELECT user_id, key_hash FROM idempotency_keys \
                             WHERE created_at < now() - interval '24 hours' \
                             ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)";

/// Deletes at most `limit` rows older than 24 hours; returns how many. Called on every stored
/// response (there is no scheduled worker yet): each write adds one row and removes up to
/// `limit` expired ones, so the table stays near one day of keyed writes at bounded cost.
pub async fn purge_expired(tx: &Transaction<'_>, limit: i64) -> Result<u64, PgError> {
    let stmt = tx.prepare_cached(PURGE_EXPIRED).await?;
    tx.execute(&stmt, &[&limit]).await
}
