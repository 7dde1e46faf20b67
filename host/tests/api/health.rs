//! The public liveness and readiness probes.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_is_public_and_ready_checks_the_database() {
    let app = spawn_app().await;
    let r = app.send(Method::GET, "/health", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "ok"}));
    let r = app.send(Method::GET, "/ready", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["database"], "ok");
}
