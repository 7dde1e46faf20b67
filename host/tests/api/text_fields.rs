//! Characters a text field may not hold: a NUL anywhere (PostgreSQL's `text` cannot store it,
//! so it used to surface as a 500), other control characters in one-line values (title, key
//! name, email). Each is a 422 naming the field; descriptions keep tab and line breaks.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Reply, spawn_app};

/// Asserts a 422 whose only error names `field`.
fn assert_refused(r: &Reply, field: &str) {
    r.assert_problem(422);
    let fields: Vec<&Value> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["field"])
        .collect();
    assert_eq!(fields, [field], "{}", r.body);
}

#[tokio::test]
async fn nul_and_control_characters_in_item_and_key_fields_are_422_naming_the_field() {
    let app = spawn_app().await;
    let user = app.user().await;
    for title in [
        "a\0b",
        "a\u{1b}[2Jb",
        "two\nlines",
        "tab\there",
        "del\u{7f}",
        "c1\u{9b}",
    ] {
        let r = app
            .post("/v1/items", &user.token, json!({"title": title}))
            .await;
        assert_refused(&r, "title");
    }
    for description in ["a\0b", "bell\u{7}", "escape\u{1b}[31m"] {
        let r = app
            .post(
                "/v1/items",
                &user.token,
                json!({"title": "ok", "description": description}),
            )
            .await;
        assert_refused(&r, "description");
    }
    // Tab and line breaks (CRLF from a browser's textarea too) are text in a description.
    let text = "line 1\r\nline 2\n\tindented";
    let r = app
        .post(
            "/v1/items",
            &user.token,
            json!({"title": "ok", "description": text}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["description"], text);
    let path = format!("/v1/items/{}", r.body["id"].as_str().unwrap());
    assert_refused(
        &app.patch(&path, &user.token, json!({"title": "x\0"})).await,
        "title",
    );
    assert_refused(
        &app.patch(&path, &user.token, json!({"description": "x\0"}))
            .await,
        "description",
    );

    for name in ["ci\0", "ci\u{7}", "ci\nkey"] {
        let r = app
            .post("/v1/api-keys", &user.token, json!({"name": name}))
            .await;
        assert_refused(&r, "name");
    }
    // Nothing was stored by any of them.
    assert_eq!(
        app.get("/v1/items", &user.token).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn nul_and_control_characters_in_account_fields_are_422_naming_the_field() {
    let app = spawn_app().await;
    let user = app.user().await;
    let public = |path: &'static str, body: Value| app.send(Method::POST, path, None, Some(body));

    for (body, field) in [
        (
            json!({"email": "a\0b@example.com", "password": "long enough"}),
            "email",
        ),
        (
            json!({"email": "ab\u{1b}@example.com", "password": "long enough"}),
            "email",
        ),
        (
            json!({"email": "ab@example.com", "password": "long enough\0"}),
            "password",
        ),
    ] {
        assert_refused(&public("/v1/auth/register", body.clone()).await, field);
    }
    for (body, field) in [
        (
            json!({"email": format!("{}\0", user.email), "password": user.password}),
            "email",
        ),
        (
            json!({"email": "a\u{7}@example.com", "password": "whatever"}),
            "email",
        ),
        (
            json!({"email": user.email, "password": format!("{}\0", user.password)}),
            "password",
        ),
    ] {
        assert_refused(&public("/v1/auth/token", body).await, field);
    }
    // A password may hold anything but NUL: it is only ever hashed.
    let r = public(
        "/v1/auth/register",
        json!({"email": "tabs@example.com", "password": "tab\tand\u{1b}escape ✓"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        app.token("tabs@example.com", "tab\tand\u{1b}escape ✓")
            .await
            .status,
        200
    );

    for (body, field) in [
        (
            json!({"email": "new\0@example.com", "current_password": user.password}),
            "email",
        ),
        (
            json!({"password": "new password\0", "current_password": user.password}),
            "password",
        ),
        (
            json!({"password": "new password 1", "current_password": format!("{}\0", user.password)}),
            "current_password",
        ),
    ] {
        assert_refused(&app.patch("/v1/users/me", &user.token, body).await, field);
    }
}
