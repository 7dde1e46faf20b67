//! Database failures as callers see them: terminated connections are retried, and server errors
//! leak no SQL or internals.

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
