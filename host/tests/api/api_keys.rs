//! API keys: shown once, accepted as `X-API-Key` or as a bearer token, revoked immediately, and
//! their use recorded at most once a minute.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

#[tokio::test]
async fn api_keys_are_shown_once_authenticate_and_revoke_immediately() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;

    let r = app
        .post("/v1/api-keys", &user.token, json!({"name": "deploy bot"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.body["key"].as_str().unwrap().to_owned();
    let key_id = r.body["id"].as_str().unwrap().to_owned();
    let prefix = r.body["prefix"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("bsk_{prefix}_")));
    assert_eq!(r.fields(), ["created_at", "id", "key", "name", "prefix"]);

    app.post("/v1/api-keys", &user.token, json!({"name": ""}))
        .await
        .assert_problem(422);
    app.post(
        "/v1/api-keys",
        &user.token,
        json!({"name": "x".repeat(101)}),
    )
    .await
    .assert_problem(422);
    app.send(
        Method::POST,
        "/v1/api-keys",
        None,
        Some(json!({"name": "anon"})),
    )
    .await
    .assert_problem(401);
    app.send(Method::GET, "/v1/api-keys", None, None)
        .await
        .assert_problem(401);

    // The key works in X-API-Key and as a bearer token.
    let res = app
        .http
        .get(format!("{}/v1/users/me", app.base))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(res).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], user.id.to_string());
    assert_eq!(app.get("/v1/users/me", &key).await.status, 200);
    // A key with a valid prefix but a wrong secret is refused.
    let forged = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('a') { 'b' } else { 'a' }
    );
    app.get("/v1/users/me", &forged).await.assert_problem(401);

    let r = app.get("/v1/api-keys", &user.token).await;
    assert_eq!(r.status, 200);
    let listed = &r.body["items"][0];
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["prefix"], prefix);
    assert!(listed.get("key").is_none() && listed.get("key_hash").is_none());
    assert!(
        listed["last_used_at"].is_string(),
        "use was recorded: {listed}"
    );
    assert!(!r.body.to_string().contains(&key[prefix.len() + 5..]));
    assert_eq!(
        app.get("/v1/api-keys", &other.token).await.body["items"],
        json!([])
    );

    // Someone else's key is "not found"; a malformed id is a 400.
    app.delete(&format!("/v1/api-keys/{key_id}"), &other.token)
        .await
        .assert_problem(404);
    app.delete("/v1/api-keys/not-a-uuid", &user.token)
        .await
        .assert_problem(400);
    assert_eq!(
        app.delete(&format!("/v1/api-keys/{key_id}"), &user.token)
            .await
            .status,
        204
    );
    app.get("/v1/users/me", &key).await.assert_problem(401);
    app.delete(&format!("/v1/api-keys/{key_id}"), &user.token)
        .await
        .assert_problem(404);
}

#[tokio::test]
async fn api_key_use_is_recorded_at_most_once_a_minute() {
    let app = spawn_app().await;
    let user = app.user().await;
    let key = app
        .post("/v1/api-keys", &user.token, json!({"name": "k"}))
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let last_used = || async {
        app.get("/v1/api-keys", &user.token).await.body["items"][0]["last_used_at"].clone()
    };
    assert!(last_used().await.is_null());
    assert_eq!(app.get("/v1/users/me", &key).await.status, 200);
    let first = last_used().await;
    assert!(first.is_string());
    assert_eq!(app.get("/v1/users/me", &key).await.status, 200);
    assert_eq!(
        last_used().await,
        first,
        "a second use within a minute writes nothing"
    );
}
