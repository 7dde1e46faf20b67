//! Headers the chain and the handlers add for the browser's sake: `X-Content-Type-Options:
//! nosniff` on every response the chain produces, and `Cache-Control: no-store` on exactly the
//! responses that carry a credential.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_with};

fn nosniff(r: &Reply, what: &str) {
    assert_eq!(
        r.headers
            .get("x-content-type-options")
            .map(|v| v.to_str().unwrap()),
        Some("nosniff"),
        "{what}: {:?}",
        r.headers
    );
}

fn cache_control(r: &Reply) -> Option<&str> {
    r.headers.get("cache-control").map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn every_response_carries_nosniff_errors_and_preflights_included() {
    let app = spawn_app_with(|mut c| {
        c.http.body_limit_bytes = 256;
        c
    })
    .await;
    let user = app.user().await;

    nosniff(&app.send(Method::GET, "/health", None, None).await, "200");
    nosniff(&app.get("/v1/items", &user.token).await, "200 list");
    let r = app.send(Method::GET, "/v1/items", None, None).await;
    r.assert_problem(401);
    nosniff(&r, "401");
    let r = app.get("/v1/no-such-route", &user.token).await;
    r.assert_problem(404);
    nosniff(&r, "404");
    let r = app
        .send(Method::TRACE, "/v1/items", Some(&user.token), None)
        .await;
    r.assert_problem(405);
    nosniff(&r, "405");
    let r = app
        .post("/v1/items", &user.token, json!({"title": "x".repeat(500)}))
        .await;
    r.assert_problem(413);
    nosniff(&r, "413");
    let r = app.post("/v1/items", &user.token, json!({})).await;
    r.assert_problem(422);
    nosniff(&r, "422");

    // A preflight is answered by CORS, before most of the chain.
    let res = app
        .http
        .request(Method::OPTIONS, format!("{}/v1/items", app.base))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(res).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert!(r.headers.contains_key("access-control-allow-origin"));
    nosniff(&r, "preflight");
}

#[tokio::test]
async fn responses_carrying_a_token_or_key_are_no_store_and_only_those() {
    let app = spawn_app().await;
    let user = app.user().await;

    let r = app.token(&user.email, &user.password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["access_token"].is_string());
    assert_eq!(cache_control(&r), Some("no-store"), "token");

    let r = app
        .post("/v1/api-keys", &user.token, json!({"name": "ci"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body["key"].is_string());
    assert_eq!(cache_control(&r), Some("no-store"), "new API key");

    // Responses without a credential are left to the usual rules.
    let r = app.get("/v1/api-keys", &user.token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(cache_control(&r), None, "key list (no secrets)");
    let r = app.get("/v1/users/me", &user.token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(cache_control(&r), None, "user");
    let r = app.token(&user.email, "wrong password").await;
    r.assert_problem(401);
    assert_eq!(cache_control(&r), None, "failed sign-in");
}
