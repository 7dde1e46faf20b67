//! Database and Redis fixtures: a fresh, migrated PostgreSQL database per test, a Redis key
//! prefix per test, configuration and state for them, and a log sink.
//!
//! Tests need real servers: `scripts/test` starts them and exports
//! `BASALT_TEST_DATABASE_URL` (an admin URL on which each test creates its own database, so
//! tests run in parallel without seeing each other's rows) and `BASALT_TEST_REDIS_URL`; for
//! the TLS tests (the same PostgreSQL, which also speaks TLS, and a second, TLS-only Redis)
//! `BASALT_TEST_TLS_CA`, `BASALT_TEST_TLS_OTHER_CA` and `BASALT_TEST_REDIS_TLS_URL`.

use std::time::Duration;

use uuid::Uuid;

use crate::{
    config::{Config, Runtime},
    db::Db,
    state::AppState,
};

pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret!";
pub const ADMIN_URL_VAR: &str = "BASALT_TEST_DATABASE_URL";
/// The tests' `WEBHOOK_ENCRYPTION_KEY` (32 bytes, base64).
pub const TEST_WEBHOOK_KEY: &str = "dGVzdC13ZWJob29rLWtleS10ZXN0LXdlYmhvb2sta2U=";

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

/// A test variable that `scripts/test` exports, or a panic naming it.
fn exported(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set. These tests need {what}: run `scripts/test`, which makes a \
             throwaway CA, starts PostgreSQL with TLS and a TLS Redis, and exports it"
        )
    })
}

/// PEM file of the CA that signed the test servers' certificate (valid for `localhost` only).
pub fn tls_ca() -> String {
    exported("BASALT_TEST_TLS_CA", "the test servers' CA")
}

/// PEM file of a CA that signed nothing the tests talk to.
pub fn other_ca() -> String {
    exported("BASALT_TEST_TLS_OTHER_CA", "a second, unrelated CA")
}

/// The TLS-only test Redis (`rediss://localhost:<port>`), whose certificate [`tls_ca`] signed.
pub fn redis_tls_url() -> String {
    exported("BASALT_TEST_REDIS_TLS_URL", "a Redis that speaks TLS")
}

/// `database_url`'s database, user and port, reached at `host` with `params` (e.g.
/// `sslmode=verify-full&sslrootcert=…`) as the query.
pub fn tls_url(database_url: &str, host: &str, params: &str) -> String {
    let config: tokio_postgres::Config = database_url.parse().unwrap();
    format!(
        "postgres://{}@{host}:{}/{}?{params}",
        config.get_user().unwrap(),
        config.get_ports()[0],
        config.get_dbname().unwrap(),
    )
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

/// One session outside any pool, through the connector `Db` uses (so a test URL with
/// `sslmode=verify-full` works here too), and the task driving it: await it after dropping
/// the client to know the session has ended.
pub async fn connect(
    database_url: &str,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), String> {
    let (config, tls) = crate::tls::postgres(database_url)?;
    let (client, conn) = config.connect(tls).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((client, driver))
}

/// Creates an empty database with a unique name and returns its URL.
pub async fn create_database() -> String {
    create_database_on(&admin_url()).await
}

/// Like [`create_database`], on the server of another admin URL (the worker's outage test
/// has a PostgreSQL of its own).
pub async fn create_database_on(admin: &str) -> String {
    let admin = admin.to_owned();
    let (client, driver) = connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to the admin URL {admin} ({ADMIN_URL_VAR} or the outage server): {e}"
        )
    });
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
        "WEBHOOK_ENCRYPTION_KEY" => Some(TEST_WEBHOOK_KEY.into()),
        "BCRYPT_COST" => Some("4".into()),
        "DB_POOL_MAX" => Some("4".into()),
        "BIND_ADDR" => Some("127.0.0.1:0".into()),
        // Budgets no ordinary test reaches; rate-limit tests set their own.
        "RATE_LIMIT_DEFAULT" | "RATE_LIMIT_AUTH" | "RATE_LIMIT_ACCOUNT" => {
            Some("1000000/60".into())
        }
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
    let (client, driver) = connect(database_url).await.unwrap();
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
    let (client, driver) = connect(database_url).await.unwrap();
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
    let email = crate::auth::email::parse("email", &email).unwrap();
    let user = crate::repo::users::create(&state.db, email.as_new(), &hash)
        .await
        .unwrap();
    (user.id, state.auth.jwt.issue(user.id).unwrap())
}
