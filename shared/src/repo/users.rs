//! The `users` table.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::{Db, DbError};

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Row> for User {
    fn from(row: Row) -> Self {
        Self {
            id: row.get("id"),
            email: row.get("email"),
            password_hash: row.get("password_hash"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
}

const COLUMNS: &str = "id, email, password_hash, created_at, updated_at";

/// Inserts a user; a duplicate email (any case) is a unique violation for the caller to map.
pub async fn create(db: &Db, email: &str, password_hash: &str) -> Result<User, DbError> {
    let (email, password_hash) = (email.to_owned(), password_hash.to_owned());
    db.write("users.create", move |tx| {
        let (email, password_hash) = (email.clone(), password_hash.clone());
        Box::pin(async move {
            let sql = format!(
                "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
            );
            let row = tx
                .query_one(&sql, &[&Uuid::now_v7(), &email, &password_hash])
                .await?;
            Ok(User::from(row))
        })
    })
    .await
}

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<User>, DbError> {
    db.read("users.find_by_email", |c| async move {
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)"
            ))
            .await?;
        Ok(c.query_opt(&stmt, &[&email]).await?.map(User::from))
    })
    .await
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<User>, DbError> {
    db.read("users.find", |c| async move {
        let stmt = c
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .await?;
        Ok(c.query_opt(&stmt, &[&id]).await?.map(User::from))
    })
    .await
}

/// Whether the user still exists: a token outlives a deleted account otherwise.
pub async fn exists(db: &Db, id: Uuid) -> Result<bool, DbError> {
    db.read("users.exists", |c| async move {
        let stmt = c
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
            .await?;
        Ok(c.query_one(&stmt, &[&id]).await?.get(0))
    })
    .await
}

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
            let sql = format!(
                "UPDATE users SET email = coalesce($2, email), \
                 password_hash = coalesce($3, password_hash), updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            );
            Ok(tx
                .query_opt(&sql, &[&id, &email, &password_hash])
                .await?
                .map(User::from))
        })
    })
    .await
}

/// Deletes the user; API keys and items go with it (ON DELETE CASCADE).
pub async fn delete(db: &Db, id: Uuid) -> Result<bool, DbError> {
    db.write("users.delete", move |tx| {
        Box::pin(async move {
            Ok(tx
                .execute("DELETE FROM users WHERE id = $1", &[&id])
                .await?
                == 1)
        })
    })
    .await
}
