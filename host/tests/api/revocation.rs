//! Credentials that end: a password change refuses the tokens issued before it and can revoke
//! every API key; sensitive operations need a recent sign-in or the password, never an API key.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, with_redis};

async fn new_key(app: &TestApp, token: &str, body: serde_json::Value) -> crate::helpers::Reply {
    app.post("/v1/api-keys", token, body).await
}

#[tokio::test]
async fn a_password_change_refuses_older_tokens_and_can_revoke_every_api_key() {
    let app = spawn_app().await;
    let user = app.user().await;
    let key = new_key(&app, &user.token, json!({"name": "ci"})).await;
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.body["key"].as_str().unwrap().to_owned();
    // Tokens carry whole seconds: change the password in a later second than the stolen
    // token's, as any real theft is.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stolen = user.token.clone();
    let r = app
        .patch(
            "/v1/users/me",
            &user.token,
            json!({"password": "a new passphrase", "current_password": user.password}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.get("/v1/users/me", &stolen).await;
    r.assert_problem(401);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("password changed"),
        "{}",
        r.body
    );
    // API keys survive a password change unless asked otherwise.
    assert_eq!(app.get("/v1/users/me", &key).await.status, 200);
    let fresh = app.token(&user.email, "a new passphrase").await;
    assert_eq!(fresh.status, 200);
    let fresh = fresh.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/users/me", &fresh).await.status, 200);
    // `revoke_api_keys` needs the password too, and then every key is gone at once.
    app.patch("/v1/users/me", &fresh, json!({"revoke_api_keys": true}))
        .await
        .assert_problem(422);
    let r = app
        .patch(
            "/v1/users/me",
            &fresh,
            json!({"revoke_api_keys": true, "current_password": "a new passphrase"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.get("/v1/users/me", &key).await.assert_problem(401);
    let list = app.get("/v1/api-keys", &fresh).await;
    assert_eq!(list.body["items"], json!([]));
    // Changing only the email revokes nothing.
    let r = app
        .patch(
            "/v1/users/me",
            &fresh,
            json!({"email": format!("moved-{}", user.email), "current_password": "a new passphrase"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.get("/v1/users/me", &fresh).await.status, 200);
}

#[tokio::test]
async fn sensitive_operations_need_a_recent_sign_in_or_the_password_and_never_an_api_key() {
    let app = spawn_app_with(|mut c| {
        c.auth.reauth_window = Duration::from_secs(1);
        c
    })
    .await;
    let user = app.user().await;
    let created = new_key(&app, &user.token, json!({"name": "fresh sign-in"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    // A key cannot mint keys or delete the account, even with the password.
    new_key(
        &app,
        &key,
        json!({"name": "from a key", "current_password": user.password}),
    )
    .await
    .assert_problem(403);
    app.send(Method::DELETE, "/v1/users/me", Some(&key), None)
        .await
        .assert_problem(403);
    // The sign-in grows old.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = new_key(&app, &user.token, json!({"name": "stale"})).await;
    r.assert_problem(403);
    // A type a client can act on (ask for the password and retry).
    assert_eq!(
        r.body["type"],
        "https://basalt.dev/problems/reauthentication-required"
    );
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("current_password")
    );
    new_key(
        &app,
        &user.token,
        json!({"name": "stale", "current_password": "wrong one!"}),
    )
    .await
    .assert_problem(403);
    let r = new_key(
        &app,
        &user.token,
        json!({"name": "confirmed", "current_password": user.password}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.send(Method::DELETE, "/v1/users/me", Some(&user.token), None)
        .await
        .assert_problem(403);
    let r = app
        .send(
            Method::DELETE,
            "/v1/users/me",
            Some(&user.token),
            Some(json!({"current_password": user.password})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
}

#[tokio::test]
async fn current_password_cannot_be_guessed_at_the_default_budget() {
    // Default budget 100, sign-in budget 3 per minute.
    let app = spawn_app_with(with_redis(100)).await;
    let user = app.user().await;
    for _ in 0..3 {
        app.patch(
            "/v1/users/me",
            &user.token,
            json!({"password": "a new passphrase", "current_password": "a guess!"}),
        )
        .await
        .assert_problem(403);
    }
    app.patch(
        "/v1/users/me",
        &user.token,
        json!({"password": "a new passphrase", "current_password": "a guess!"}),
    )
    .await
    .assert_problem(429);
}
