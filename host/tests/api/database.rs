//! Database failures as callers see them: terminated connections are retried, server errors
//! leak no SQL or internals, and a write whose COMMIT was cut off is reported as outcome
//! unknown.

use std::time::Duration;

use serde_json::json;
use shared::testing;

use crate::helpers::spawn_app;

#[tokio::test]
async fn requests_survive_terminated_database_connections() {
    let app = spawn_app().await;
    let user = app.user().await;
    app.item(&user, "before").await;
    // Warm several pooled connections, then kill every one of them server-side.
    let t = &user.token;
    let warm = tokio::join!(
        app.get("/v1/items", t),
        app.get("/v1/items", t),
        app.get("/v1/items", t),
        app.get("/v1/items", t)
    );
    for r in [warm.0, warm.1, warm.2, warm.3] {
        assert_eq!(r.status, 200);
    }
    let url = app.state.config.database.url().to_owned();
    assert!(testing::terminate_connections(&url).await >= 1);
    // Reads and writes still succeed: dead connections are retried on fresh ones, not 500s.
    let r = app.get("/v1/items", &user.token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    testing::terminate_connections(&url).await;
    let r = app
        .post("/v1/items", &user.token, json!({"title": "after"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app.get("/v1/items", &user.token).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn server_errors_do_not_leak_sql_or_internals() {
    let app = spawn_app().await;
    let user = app.user().await;
    app.state
        .db
        .read("test.break_schema", |c| async move {
            c.batch_execute("ALTER TABLE items RENAME TO items_gone")
                .await
        })
        .await
        .unwrap();
    let r = app.get("/v1/items", &user.token).await;
    r.assert_problem(500);
    let text = r.body.to_string();
    for leak in ["items", "relation", "SELECT", "postgres", "42P01"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
}

/// A write whose connection dies while its COMMIT is in flight has an unknown outcome: it is
/// reported as such (500 `outcome-unknown`, no `Retry-After`), not as a 503 "try again"; the
/// same Idempotency-Key then settles it without a duplicate.
#[tokio::test]
async fn a_write_killed_mid_commit_is_outcome_unknown_not_503() {
    let app = spawn_app().await;
    let user = app.user().await;
    app.slow_commits(30.0).await;
    let killer = async {
        // Wait until a session is inside COMMIT (the deferred trigger sleeps there), then end
        // it as an administrator or a failover would.
        let started = std::time::Instant::now();
        loop {
            let killed: i64 = app
                .state
                .db
                .read("test.kill_commit", |c| async move {
                    c.query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid() \
                         AND state = 'active' AND query = 'COMMIT'",
                        &[],
                    )
                    .await?
                    .try_get(0)
                })
                .await
                .unwrap();
            if killed > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no COMMIT seen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let body = json!({"title": "in doubt"});
    let (r, ()) = tokio::join!(
        app.post_keyed("/v1/items", &user.token, "doubt", body.clone()),
        killer
    );
    r.assert_problem(500);
    assert_eq!(
        r.body["type"],
        "https://basalt.dev/problems/outcome-unknown"
    );
    assert_eq!(r.body["title"], "Outcome unknown");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("may or may not have been applied"),
        "{detail}"
    );
    assert!(detail.contains("Idempotency-Key"), "{detail}");
    assert!(r.headers.get("retry-after").is_none());

    // It did not commit here (the session died before the commit record); the repeat with the
    // same key finds nothing stored, creates the item once, and a further repeat replays it.
    app.fast_commits().await;
    let again = app
        .post_keyed("/v1/items", &user.token, "doubt", body.clone())
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert!(again.headers.get("idempotent-replayed").is_none());
    let third = app
        .post_keyed("/v1/items", &user.token, "doubt", body)
        .await;
    assert_eq!(third.body, again.body);
    assert_eq!(app.count("items").await, 1);
}
