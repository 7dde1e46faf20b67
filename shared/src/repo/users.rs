//! The `users` table.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, DbError, PgError};

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    /// The address as shown (`auth::email::Email::address`).
    pub email: String,
    /// The uniqueness and sign-in key (`auth::email::canonical`); `None` only for a non-ASCII
    /// address stored before migration V3 that has not signed in since (see that migration).
    pub email_canonical: Option<String>,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    /// Decodes a row selected with `columns!()`; a missing column or changed type is an
    /// error, not a panic.
    fn from_row(row: &Row) -> Result<Self, PgError> {
        Ok(Self {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            email_canonical: row.try_get("email_canonical")?,
            password_hash: row.try_get("password_hash")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

// The columns `User::from_row` reads. A macro rather than a `const` because `concat!` only
// takes literals, and every statement below is a `const` so `prepare_cached` sees the same
// string each time.
macro_rules! columns {
    () => {
        "id, email, email_canonical, password_hash, created_at, updated_at"
    };
}

const CREATE: &str = concat!(
    "INSERT INTO users (id, email, email_canonical, password_hash) VALUES ($1, $2, $3, $4) \
     RETURNING ",
    columns!()
);

/// An address to store: as shown, and its canonical form (`auth::email::Email` has both).
#[derive(Debug, Clone, Copy)]
pub struct NewEmail<'a> {
    pub address: &'a str,
    pub canonical: &'a str,
}

/// Inserts a user; an address whose canonical form is taken is a unique violation for the
/// caller to map.
pub async fn create(db: &Db, email: NewEmail<'_>, password_hash: &str) -> Result<User, DbError> {
    let (address, canonical) = (email.address.to_owned(), email.canonical.to_owned());
    let password_hash = password_hash.to_owned();
    db.write("users.create", move |tx| {
        let (address, canonical) = (address.clone(), canonical.clone());
        let password_hash = password_hash.clone();
        Box::pin(async move {
            let stmt = tx.prepare_cached(CREATE).await?;
            let row = tx
                .query_one(
                    &stmt,
                    &[&Uuid::now_v7(), &address, &canonical, &password_hash],
                )
                .await?;
            User::from_row(&row)
        })
    })
    .await
}

// A canonical match first; else a row from before migration V3 that has no canonical form yet,
// by the comparison that found it then (served by `users_email_lower_key`).
const FIND_BY_EMAIL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM users WHERE email_canonical = $1 \
     OR (email_canonical IS NULL AND lower(email) = lower($2)) \
     ORDER BY email_canonical IS NULL LIMIT 1"
);

/// The account `canonical` (`auth::email::canonical` of what was typed) belongs to; `typed`
/// (trimmed) finds accounts stored before canonical forms existed.
pub async fn find_by_email(db: &Db, canonical: &str, typed: &str) -> Result<Option<User>, DbError> {
    db.read("users.find_by_email", |c| async move {
        let stmt = c.prepare_cached(FIND_BY_EMAIL).await?;
        c.query_opt(&stmt, &[&canonical, &typed])
            .await?
            .as_ref()
            .map(User::from_row)
            .transpose()
    })
    .await
}

const SET_CANONICAL: &str =
    "UPDATE users SET email_canonical = $2 WHERE id = $1 AND email_canonical IS NULL";

/// Stores the canonical form of an address saved before migration V3. A unique violation
/// means a look-alike registered meanwhile; the caller leaves the row as it is.
pub async fn set_canonical(db: &Db, id: Uuid, canonical: &str) -> Result<(), DbError> {
    let canonical = canonical.to_owned();
    db.write("users.set_canonical", move |tx| {
        let canonical = canonical.clone();
        Box::pin(async move {
            let stmt = tx.prepare_cached(SET_CANONICAL).await?;
            tx.execute(&stmt, &[&id, &canonical]).await.map(drop)
        })
    })
    .await
}

const FIND: &str = concat!("SELECT ", columns!(), " FROM users WHERE id = $1");

pub async fn find(db: &Db, id: Uuid) -> Result<Option<User>, DbError> {
    db.read("users.find", |c| async move {
        let stmt = c.prepare_cached(FIND).await?;
        c.query_opt(&stmt, &[&id])
            .await?
            .as_ref()
            .map(User::from_row)
            .transpose()
    })
    .await
}

const CREDENTIALS_CHANGED_AT: &str = "SELECT extract(epoch FROM date_trunc('second', credentials_changed_at))::bigint \
     AS changed FROM users WHERE id = $1";

/// Whether the user still exists (`None`: deleted — a token outlives its account otherwise)
/// and when their password last changed, in whole seconds since the epoch (`Some(None)`:
/// never), to compare with a token's `iat`.
pub async fn credentials_changed_at(db: &Db, id: Uuid) -> Result<Option<Option<i64>>, DbError> {
    db.read("users.credentials_changed_at", |c| async move {
        let stmt = c.prepare_cached(CREDENTIALS_CHANGED_AT).await?;
        c.query_opt(&stmt, &[&id])
            .await?
            .map(|row| row.try_get("changed"))
            .transpose()
    })
    .await
}

const UPDATE: &str = concat!(
    "UPDATE users SET email = coalesce($2, email), \
     email_canonical = coalesce($3, email_canonical), \
     password_hash = coalesce($4, password_hash), updated_at = now(), \
     credentials_changed_at = CASE WHEN $4::text IS NULL THEN credentials_changed_at \
     ELSE now() END \
     WHERE id = $1 RETURNING ",
    columns!()
);

const REVOKE_API_KEYS: &str = "DELETE FROM api_keys WHERE user_id = $1";

/// Changes email and/or password hash; `None` leaves a column as it is. A new password
/// hash also records when the credentials changed (older access tokens are then refused),
/// and with `revoke_api_keys` every API key of the user goes in the same transaction.
pub async fn update(
    db: &Db,
    id: Uuid,
    email: Option<NewEmail<'_>>,
    password_hash: Option<&str>,
    revoke_api_keys: bool,
) -> Result<Option<User>, DbError> {
    let address = email.map(|e| e.address.to_owned());
    let canonical = email.map(|e| e.canonical.to_owned());
    let password_hash = password_hash.map(str::to_owned);
    db.write("users.update", move |tx| {
        let (address, canonical) = (address.clone(), canonical.clone());
        let password_hash = password_hash.clone();
        Box::pin(async move {
            let stmt = tx.prepare_cached(UPDATE).await?;
            let user = tx
                .query_opt(&stmt, &[&id, &address, &canonical, &password_hash])
                .await?
                .as_ref()
                .map(User::from_row)
                .transpose()?;
            if user.is_some() && revoke_api_keys {
                let stmt = tx.prepare_cached(REVOKE_API_KEYS).await?;
                tx.execute(&stmt, &[&id]).await?;
            }
            Ok(user)
        })
    })
    .await
}

const REHASH: &str = "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2";

/// Replaces the hash of the same password made at another bcrypt cost. Only if the stored hash
/// is still `old_hash`: a password changed meanwhile is not overwritten with the old one. Not a
/// change of the account (`updated_at` and anything that tracks credential changes stay as
/// they are): the password is the same. False when the row or the old hash is gone.
pub async fn rehash(db: &Db, id: Uuid, old_hash: &str, new_hash: &str) -> Result<bool, DbError> {
    let (old_hash, new_hash) = (old_hash.to_owned(), new_hash.to_owned());
    db.write("users.rehash", move |tx| {
        let (old_hash, new_hash) = (old_hash.clone(), new_hash.clone());
        Box::pin(async move {
            let stmt = tx.prepare_cached(REHASH).await?;
            Ok(tx.execute(&stmt, &[&id, &old_hash, &new_hash]).await? == 1)
        })
    })
    .await
}

const DELETE: &str = "DELETE FROM users WHERE id = $1";

/// Deletes the user; API keys and items go with it (ON DELETE CASCADE).
pub async fn delete(db: &Db, id: Uuid) -> Result<bool, DbError> {
    db.write("users.delete", move |tx| {
        Box::pin(async move {
            let stmt = tx.prepare_cached(DELETE).await?;
            Ok(tx.execute(&stmt, &[&id]).await? == 1)
        })
    })
    .await
}
