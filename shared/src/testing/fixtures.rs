//! Database and Redis fixtures: a fresh, migrated PostgreSQL database per test, a Redis key
//! prefix per test, configuration and state for them, and a log sink.
//!
//! Tests need real servers: `scripts/test` starts them and exports
//! `BASALT_TEST_DATABASE_URL` (an admin URL on which each test creates its own database, so
//! tests run in parallel without seeing each other's rows) and `BASALT_TEST_REDIS_URL`.

use std::time::Duration;

use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::{
    config::{Config, Runtime},
    db::Db,
    state::AppState,
};

pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret!";
pub const ADMIN_URL_VAR: &str = "BASALT_TEST_DATABASE_URL";

/// The admin URL, or a panic that says how to get one: a missing database is a failing test
/// with a hint, never a silent skip.
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{ADMIN_URL_VAR} is not set. These tests need a real PostgreSQL: run `scripts/test`, \
             which starts one, or export {ADMIN_URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres"
        )
    })
}

pub const REDIS_URL_VAR: &str = "BASALT_TEST_REDIS_URL";

/// The test Redis, or a panic that says how to get one.
pub fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{REDIS_URL_VAR} is not set. These tests need a real Redis: run `scripts/test`, \
             which starts one, or export {REDIS_URL_VAR}=redis://127.0.0.1:6379"
        )
    })
}

/// A key prefix no other test uses, so tests can share one Redis.
pub fn redis_key_prefix() -> String {
    format!("test-{}", Uuid::new_v4().simple())
}

/// An in-memory log sink for tests that assert on what is logged (and what is not).
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Creates an empty database with a unique name and returns its URL.
pub async fn create_database() -> String {
    let admin = admin_url();
    let (client, conn) = tokio_postgres::connect(&admin, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {ADMIN_URL_VAR}={admin}: {e}"));
    let driver = tokio::spawn(conn);
    let name = format!("basalt_test_{}", Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let base = base
        .rsplit_once('/')
        .map_or(base.as_str(), |(b, _)| b)
        .to_owned();
    format!("{base}/{name}{query}")
}

/// Configuration for tests: real settings, cheap bcrypt, the given database.
pub fn config(database_url: &str) -> Config {
    let url = database_url.to_owned();
    Config::from_lookup(Runtime::Host, move |name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "JWT_SECRET" => Some(TEST_JWT_SECRET.into()),
        "BCRYPT_COST" => Some("4".into()),
        "DB_POOL_MAX" => Some("4".into()),
        "BIND_ADDR" => Some("127.0.0.1:0".into()),
        // Budgets no ordinary test reaches; rate-limit tests set their own.
        "RATE_LIMIT_DEFAULT" | "RATE_LIMIT_AUTH" => Some("1000000/60".into()),
        _ => None,
    })
    .unwrap()
}

/// A fresh migrated database and the state to serve it.
pub async fn state() -> AppState {
    state_with(|c| c).await
}

/// Like [`state`], with the configuration adjusted first (e.g. a short timeout).
pub async fn state_with(adjust: impl FnOnce(Config) -> Config) -> AppState {
    let url = create_database().await;
    let config = adjust(config(&url));
    let db = Db::new(&config.database).unwrap();
    db.migrate().await.unwrap();
    AppState::with_db(config, db).unwrap()
}

/// How many sessions are connected to the database of `database_url`, this one included.
pub async fn backends(database_url: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(database_url, NoTls).await.unwrap();
    let driver = tokio::spawn(conn);
    let n = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = driver.await;
    n
}

/// Terminates every other backend connected to the state's database, as an administrator or
/// a failover would, to exercise reconnection.
pub async fn terminate_connections(database_url: &str) -> u64 {
    let (client, conn) = tokio_postgres::connect(database_url, NoTls).await.unwrap();
    let driver = tokio::spawn(conn);
    let n = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    drop(client);
    let _ = driver.await;
    // Give the pool's connection tasks a moment to observe the closed sockets (or not: the
    // retry path must cope either way).
    tokio::time::sleep(Duration::from_millis(20)).await;
    n as u64
}

/// A user created directly in the database, with an access token.
pub async fn user_with_token(state: &AppState) -> (Uuid, String) {
    let email = format!("lambda-{}@example.com", Uuid::new_v4().simple());
    let hash = state
        .auth
        .passwords
        .hash("lambda password".into())
        .await
        .unwrap();
    let user = crate::repo::users::create(&state.db, &email, &hash)
        .await
        .unwrap();
    (user.id, state.auth.jwt.issue(user.id).unwrap())
}
