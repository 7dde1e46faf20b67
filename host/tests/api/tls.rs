//! The API over TLS: PostgreSQL with `sslmode=verify-full` and a `rediss://` rate limiter
//! (the servers `scripts/test` starts with a throwaway CA), and what a refused certificate
//! looks like at first use: in `migrate`, in `/ready` and its log line.

use std::time::Duration;

use reqwest::Method;
use shared::{
    AppState,
    config::{DatabaseSettings, Env, Runtime},
    rate_limit::Backend,
    testing,
};

use crate::helpers::{TestApp, capture_logs, header, log_lines_for, spawn_app_with};

/// Database settings for `url`, read as the process would read `DATABASE_URL`.
fn database(url: String) -> DatabaseSettings {
    let env = Env::from_lookup(Runtime::Host, move |name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "DB_POOL_MAX" => Some("4".into()),
        _ => None,
    })
    .unwrap();
    DatabaseSettings::from_env(&env).unwrap()
}

/// The keys under `prefix` in the TLS Redis, read with a client that trusts the test CA.
async fn tls_redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::build_with_tls(
        testing::redis_tls_url(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(testing::tls_ca()).unwrap()),
        },
    )
    .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_api_runs_on_verify_full_postgres_and_limits_in_a_tls_redis() {
    let app = spawn_app_with(|mut c| {
        let params = format!("sslmode=verify-full&sslrootcert={}", testing::tls_ca());
        c.database = database(testing::tls_url(c.database.url(), "localhost", &params));
        c.rate_limit.redis_url = Some(testing::redis_tls_url().into());
        c.rate_limit.redis_ca_cert = Some(testing::tls_ca().into());
        c.rate_limit.redis_key_prefix = testing::redis_key_prefix();
        // Room for the first TLS handshake, so that no decision falls back to memory.
        c.rate_limit.redis_timeout = Duration::from_secs(2);
        c.rate_limit.limits.default = "3/60".parse().unwrap();
        c
    })
    .await;
    let r = app.send(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["database"], "ok");
    assert_eq!(r.body["redis"], "ok");
    let user = app.user().await;
    for i in 0..3 {
        let r = app.get("/v1/items", &user.token).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let r = app.get("/v1/items", &user.token).await;
    r.assert_problem(429);
    assert!(header(&r, "retry-after").parse::<u64>().unwrap() >= 1);
    // Redis decided, over TLS: the limiter's key is in the TLS server, nothing fell back.
    assert_eq!(app.state.limiter.backend(), Backend::Redis);
    assert_eq!(app.state.limiter.fallback_decisions(), 0);
    let prefix = &app.state.config.rate_limit.redis_key_prefix;
    let expected = format!("{prefix}:rl:{{user:{}|GET /v1/items}}", user.id);
    assert!(tls_redis_keys(prefix).await.contains(&expected));
}

#[tokio::test]
async fn a_refused_certificate_is_named_by_migrate_and_by_ready() {
    let params = format!("sslmode=verify-full&sslrootcert={}", testing::other_ca());
    let url = testing::tls_url(&testing::create_database().await, "localhost", &params);
    let mut config = testing::config(&url);
    config.rate_limit.redis_url = Some(testing::redis_tls_url().into());
    config.rate_limit.redis_ca_cert = Some(testing::other_ca().into());
    // Start-up opens no connection, so it succeeds; the first use says what is wrong.
    let state = AppState::new(config).unwrap();
    let err = format!(
        "{:#}",
        anyhow::Error::new(state.db.migrate().await.unwrap_err())
    );
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer")
            && err.contains("sslmode=verify-full: the certificate must chain to sslrootcert"),
        "{err}"
    );

    capture_logs();
    let server = host::Application::build(state.clone()).await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run_until(std::future::pending()));
    let app = TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        state,
    };
    let r = app.send(Method::GET, "/ready", None, None).await;
    r.assert_problem(503);
    // The client learns nothing; the log line names the certificate problem.
    let logged = log_lines_for(r.request_id())
        .into_iter()
        .filter_map(|l| l["error"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        logged.contains("invalid peer certificate: UnknownIssuer"),
        "{logged}"
    );
    // The refused Redis is reported, and the limiter decides in memory meanwhile.
    let redis = app.state.limiter.ping().await.unwrap().unwrap_err();
    assert!(redis.contains("invalid peer certificate"), "{redis}");
}
