//! The signed-in user's own account: reading it, changing it (with the current password) and
//! deleting it.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn users_me_read_change_and_delete() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;

    let r = app.get("/v1/users/me", &user.token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], user.id.to_string());
    assert_eq!(r.body["email"], user.email);
    assert!(r.body.get("password_hash").is_none());
    app.send(Method::GET, "/v1/users/me", None, None)
        .await
        .assert_problem(401);

    // Changing anything needs the current password, and the right one.
    let r = app
        .patch(
            "/v1/users/me",
            &user.token,
            json!({"password": "new password 1"}),
        )
        .await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "current_password");
    app.patch(
        "/v1/users/me",
        &user.token,
        json!({"password": "new password 1", "current_password": "not it at all"}),
    )
    .await
    .assert_problem(403);
    app.patch(
        "/v1/users/me",
        &user.token,
        json!({"email": other.email, "current_password": user.password}),
    )
    .await
    .assert_problem(409);
    app.patch(
        "/v1/users/me",
        &user.token,
        json!({"password": "short", "current_password": user.password}),
    )
    .await
    .assert_problem(422);

    let new_email = format!("renamed-{}@example.com", Uuid::new_v4().simple());
    let r = app
        .patch(
            "/v1/users/me",
            &user.token,
            json!({"email": new_email, "password": "new password 1", "current_password": user.password}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["email"], new_email);
    app.token(&new_email, &user.password)
        .await
        .assert_problem(401);
    let fresh = app.token(&new_email, "new password 1").await;
    assert_eq!(fresh.status, 200);
    // The password change ended the sessions issued before it (whole seconds: see
    // `revocation.rs`), so carry on with a new one.
    let user = crate::helpers::User {
        token: fresh.body["access_token"].as_str().unwrap().to_owned(),
        ..user
    };

    // Deleting cascades to items and keys, and the still-unexpired token stops working.
    app.item(&user, "doomed").await;
    assert_eq!(
        app.post("/v1/api-keys", &user.token, json!({"name": "ci"}))
            .await
            .status,
        201
    );
    assert_eq!(app.delete("/v1/users/me", &user.token).await.status, 204);
    app.get("/v1/users/me", &user.token)
        .await
        .assert_problem(401);
    app.get("/v1/items", &user.token).await.assert_problem(401);
    let leftovers: i64 = app
        .state
        .db
        .read("test.count", |c| async move {
            let row = c
                .query_one(
                    "SELECT (SELECT count(*) FROM items WHERE user_id = $1) + \
                     (SELECT count(*) FROM api_keys WHERE user_id = $1)",
                    &[&user.id],
                )
                .await?;
            Ok(row.get::<_, i64>(0))
        })
        .await
        .unwrap();
    assert_eq!(leftovers, 0);
    // The other user is untouched.
    assert_eq!(app.get("/v1/users/me", &other.token).await.status, 200);
}

#[tokio::test]
async fn an_email_change_uses_the_canonical_form() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    let change = |email: String| {
        app.patch(
            "/v1/users/me",
            &user.token,
            json!({"email": email, "current_password": user.password}),
        )
    };
    // The other user's address in fullwidth capitals is still theirs.
    let fullwidth: String = other
        .email
        .chars()
        .map(|c| match c {
            'a'..='z' => char::from_u32(c as u32 - 'a' as u32 + 0xFF21).unwrap(),
            c => c,
        })
        .collect();
    change(fullwidth).await.assert_problem(409);
    let r = change("new\u{200b}name@example.com".into()).await;
    r.assert_problem(422);
    assert_eq!(r.body["errors"][0]["field"], "email");

    let r = change("Groß@example.com".into()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["email"], "Groß@example.com");
    assert_eq!(
        app.token("GROSS@EXAMPLE.COM", &user.password).await.status,
        200
    );
    // The old address is free again; the new one is taken in every form.
    let r = app
        .send(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": user.email, "password": "long enough"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.send(
        Method::POST,
        "/v1/auth/register",
        None,
        Some(json!({"email": "gross@example.com", "password": "long enough"})),
    )
    .await
    .assert_problem(409);
}
