//! Request logging: one JSON line per request with route, status and principal, and no secrets.

use serde_json::{Value, json};
use shared::testing;

use crate::helpers::{TestApp, all_logs, log_lines_for, spawn_app};

#[tokio::test]
async fn one_log_line_per_request_with_route_status_principal_and_no_secrets() {
    let app = spawn_app().await;
    let user = app.user().await;
    let item = app.item(&user, "logged").await;
    let key = app
        .post("/v1/api-keys", &user.token, json!({"name": "k"}))
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // A 401 carries the request id and is logged with status 401.
    let res = app
        .http
        .get(format!("{}/v1/items", app.base))
        .header("x-request-id", "log-test-401")
        .header("cookie", "session=cookie-secret-value")
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(res).await;
    r.assert_problem(401);
    let lines = log_lines_for("log-test-401");
    let request_lines: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(request_lines.len(), 1, "{lines:?}");
    assert_eq!(request_lines[0]["status"], 401);
    assert_eq!(request_lines[0]["method"], "GET");
    assert_eq!(request_lines[0]["route"], "/v1/items");

    // A success through an API key: route template (not the raw path), principal, duration.
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let res = app
        .http
        .get(format!("{}{path}", app.base))
        .header("x-api-key", &key)
        .header("x-request-id", "log-test-200")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let lines = log_lines_for("log-test-200");
    let line = lines.iter().find(|l| l["message"] == "request").unwrap();
    assert_eq!(line["route"], "/v1/items/{id}");
    assert_eq!(line["status"], 200);
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    let principal = line["principal"].as_str().unwrap();
    assert!(principal.starts_with(&user.id.to_string()), "{principal}");
    assert_eq!(
        lines.iter().filter(|l| l["message"] == "request").count(),
        1
    );

    // A login and a password change put secrets in headers and bodies: none reach the logs.
    let res = app
        .http
        .patch(format!("{}/v1/users/me", app.base))
        .bearer_auth(&user.token)
        .header("x-request-id", "log-test-secrets")
        .json(&json!({"password": "brand-new-secret-pw", "current_password": user.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(log_lines_for("log-test-secrets").len(), 1);
    let logs = all_logs();
    let key_secret = key.rsplit('_').next().unwrap();
    for secret in [
        user.token.as_str(),
        key.as_str(),
        key_secret,
        user.password.as_str(),
        "brand-new-secret-pw",
        "cookie-secret-value",
        testing::TEST_JWT_SECRET,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}
