//! The `users` table.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, DbError, PgError};

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
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
        "id, email, password_hash, created_at, updated_at"
    };
}

const CREATE: &str = concat!(
    "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) RETURNING ",
    columns!()
);

/// Inserts a user; a duplicate email (any case) is a unique violation for the caller to map.
pub async fn create(db: &Db, email: &str, password_hash: &str) -> Result<User, DbError> {
    let (email, password_hash) = (email.to_owned(), password_hash.to_owned());
    db.write("users.create", move |tx| {
        let (email, password_hash) = (email.clone(), password_hash.clone());
        Box::pin(async move {
            let stmt = tx.prepare_cached(CREATE).await?;
            let row = tx
                .query_one(&stmt, &[&Uuid::now_v7(), &email, &password_hash])
                .await?;
            User::from_row(&row)
        })
    })
    .await
}

const FIND_BY_EMAIL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM users WHERE lower(email) = lower($1)"
);

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<User>, DbError> {
    db.read("users.find_by_email", |c| async move {
        let stmt = c.prepare_cached(FIND_BY_EMAIL).await?;
        c.query_opt(&stmt, &[&email])
            .await?
            .as_ref()
            .map(User::from_row)
            .transpose()
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

const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)";

/// Whether the user still exists: a token outlives a deleted account otherwise.
pub async fn exists(db: &Db, id: Uuid) -> Result<bool, DbError> {
    db.read("users.exists", |c| async move {
        let stmt = c.prepare_cached(EXISTS).await?;
        c.query_one(&stmt, &[&id]).await?.try_get(0)
    })
    .await
}

const UPDATE: &str = concat!(
    "UPDATE users SET email = coalesce($2, email), \
     password_hash = coalesce($3, password_hash), updated_at = now() \
     WHERE id = $1 RETURNING ",
    columns!()
);

/// Changes email and/or password hash; `None` leaves a column as it is.
pub async fn update(
    db: &Db,
    id: Uuid,
    email: Option<&str>,
    password_hash: Option<&str>,
) -> Result<Option<User>, DbError> {
    let (email, password_hash) = (email.map(str::to_owned), password_hash.map(str::to_owned));
    db.write("users.update", move |tx| {
        let (email, password_hash) = (email.clone(), password_hash.clone());
        Box::pin(async move {
            let stmt = tx.prepare_cached(UPDATE).await?;
            tx.query_opt(&stmt, &[&id, &email, &password_hash])
                .await?
                .as_ref()
                .map(User::from_row)
                .transpose()
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
