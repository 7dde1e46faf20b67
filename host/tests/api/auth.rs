//! Sign-up, sign-in and bearer-token authentication: validation, uniform refusals, JWT edge
//! cases, and the lock-out of users deleted while their token is still valid.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use shared::testing;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn register_validates_and_refuses_duplicates_case_insensitively() {
    let app = spawn_app().await;
    let register = |body: Value| app.send(Method::POST, "/v1/auth/register", None, Some(body));

    let r = register(json!({"email": "Ann@Example.com", "password": "long enough"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let keys: Vec<&str> = r
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["created_at", "email", "id", "updated_at"]);
    assert_eq!(
        r.body["id"]
            .as_str()
            .unwrap()
            .parse::<Uuid>()
            .unwrap()
            .get_version_num(),
        7
    );

    register(json!({"email": "ann@example.COM", "password": "long enough"}))
        .await
        .assert_problem(409);

    let r = register(json!({"email": "not-an-email", "password": "short"})).await;
    r.assert_problem(422);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password"]);

    // 73 bytes is refused, not truncated to 72.
    let r = register(json!({"email": "bob@example.com", "password": "a".repeat(73)})).await;
    r.assert_problem(422);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("72")
    );

    // Wrong shape, malformed JSON, wrong content type.
    register(json!({"email": "bob@example.com"}))
        .await
        .assert_problem(422);
    register(json!({"email": "bob@example.com", "password": "long enough", "admin": true}))
        .await
        .assert_problem(422);
    let res = app
        .http
        .post(format!("{}/v1/auth/register", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    TestApp::reply(res).await.assert_problem(400);
    let res = app
        .http
        .post(format!("{}/v1/auth/register", app.base))
        .body("email=a")
        .send()
        .await
        .unwrap();
    TestApp::reply(res).await.assert_problem(415);
}

#[tokio::test]
async fn token_issues_bearer_tokens_and_refuses_bad_credentials_alike() {
    let app = spawn_app().await;
    let user = app.user().await;
    let r = app.token(&user.email.to_uppercase(), &user.password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert!(r.body["access_token"].as_str().unwrap().split('.').count() == 3);

    let wrong = app.token(&user.email, "wrong password").await;
    wrong.assert_problem(401);
    let unknown = app.token("nobody@example.com", &user.password).await;
    unknown.assert_problem(401);
    // Same answer whether or not the account exists.
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    app.token(&user.email, &"a".repeat(100))
        .await
        .assert_problem(401);
    app.send(
        Method::POST,
        "/v1/auth/token",
        None,
        Some(json!({"email": 1})),
    )
    .await
    .assert_problem(422);
}

#[tokio::test]
async fn jwt_edge_cases_are_all_401() {
    let app = spawn_app().await;
    let user = app.user().await;
    let secret = testing::TEST_JWT_SECRET;
    let sub = user.id.to_string();
    let t = now();
    let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_claims = B64.encode(json!({"sub": sub, "iat": t, "exp": t + 600}).to_string());
    let mut tampered: Vec<String> = user.token.split('.').map(str::to_owned).collect();
    tampered[1] = B64.encode(json!({"sub": Uuid::now_v7(), "iat": t, "exp": t + 600}).to_string());

    let cases = [
        ("alg none", format!("{none_header}.{none_claims}.")),
        (
            "HS512",
            sign(
                json!({"sub": sub, "iat": t, "exp": t + 600}),
                Algorithm::HS512,
                secret,
            ),
        ),
        (
            "expired",
            sign(
                json!({"sub": sub, "iat": t - 1000, "exp": t - 60}),
                Algorithm::HS256,
                secret,
            ),
        ),
        (
            "missing exp",
            sign(json!({"sub": sub, "iat": t}), Algorithm::HS256, secret),
        ),
        (
            "wrong key",
            sign(
                json!({"sub": sub, "iat": t, "exp": t + 600}),
                Algorithm::HS256,
                "a-completely-different-secret-value",
            ),
        ),
        ("tampered", tampered.join(".")),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    // Control: a token we sign the same way is accepted, so the failures below are the edge cases.
    let good = sign(
        json!({"sub": sub, "iat": t, "exp": t + 600}),
        Algorithm::HS256,
        secret,
    );
    assert_eq!(app.get("/v1/users/me", &good).await.status, 200);
    for (name, token) in &cases {
        let r = app.get("/v1/users/me", token).await;
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        r.assert_problem(401);
        assert_eq!(r.headers["www-authenticate"], "Bearer");
    }
    // User deleted after the token was issued.
    assert_eq!(app.delete("/v1/users/me", &user.token).await.status, 204);
    app.get("/v1/items", &good).await.assert_problem(401);
    // Non-Bearer schemes are refused too.
    let res = app
        .http
        .get(format!("{}/v1/items", app.base))
        .basic_auth("user", Some("pass"))
        .send()
        .await
        .unwrap();
    TestApp::reply(res).await.assert_problem(401);
}

#[tokio::test]
async fn a_user_deleted_by_another_replica_is_locked_out_within_the_cache_ttl() {
    let app = spawn_app().await;
    let user = app.user().await;
    assert_eq!(app.get("/v1/items", &user.token).await.status, 200);
    // Another replica deletes the account: this process learns of it only from the database.
    let id = user.id;
    app.state
        .db
        .read("test.delete_elsewhere", |c| async move {
            c.execute("DELETE FROM users WHERE id = $1", &[&id]).await
        })
        .await
        .unwrap();
    tokio::time::sleep(shared::auth::known_users::TTL + std::time::Duration::from_millis(100))
        .await;
    app.get("/v1/items", &user.token).await.assert_problem(401);
}

#[tokio::test]
async fn look_alike_emails_are_one_account_and_invisible_characters_are_refused() {
    let app = spawn_app().await;
    let register = |email: &str| {
        app.send(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": email, "password": "long enough"})),
        )
    };
    let r = register("ANN@EXAMPLE.COM").await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Fullwidth letters (what a CJK input method types), mixed forms, other case.
    for look_alike in [
        "ＡＮＮ@example.com",
        "ann@ＥＸＡＭＰＬＥ.ＣＯＭ",
        "Ann@Example.com",
    ] {
        register(look_alike).await.assert_problem(409);
    }
    let r = register("Straße@example.de").await;
    assert_eq!(r.status, 201, "{}", r.body);
    for look_alike in [
        "STRASSE@example.de",
        "strasse@EXAMPLE.DE",
        "STRAẞE@example.de",
    ] {
        register(look_alike).await.assert_problem(409);
    }
    // A composed and a decomposed accent are one address too.
    assert_eq!(register("jos\u{e9}@example.com").await.status, 201);
    register("JOSE\u{301}@example.com")
        .await
        .assert_problem(409);

    // Sign-in finds the account under any look-alike form.
    for form in [
        "ann@example.com",
        "ＡＮＮ@ＥＸＡＭＰＬＥ.ＣＯＭ",
        "  Ann@example.COM ",
    ] {
        let r = app.token(form, "long enough").await;
        assert_eq!(r.status, 200, "{form}: {}", r.body);
    }
    for form in [
        "STRASSE@EXAMPLE.DE",
        "strasse@example.de",
        "STRAẞE@example.de",
    ] {
        let r = app.token(form, "long enough").await;
        assert_eq!(r.status, 200, "{form}: {}", r.body);
    }

    // Zero-width and bidi characters make an address look like another: refused, naming it.
    for invisible in [
        "ann\u{200b}@example.com",
        "an\u{200d}n@example.com",
        "\u{feff}bob@example.com",
        "bob\u{202e}@example.com",
        "\u{2067}bob@example.com",
        "bob\u{200f}@example.com",
    ] {
        let r = register(invisible).await;
        r.assert_problem(422);
        assert_eq!(r.body["errors"][0]["field"], "email", "{invisible:?}");
    }
    // At sign-in such an address is no account (no row can hold one since it is refused).
    app.token("ann\u{200b}@example.com", "long enough")
        .await
        .assert_problem(401);
    // Shown as registered (NFKC: the fullwidth form would read as ASCII), not case-folded.
    let t = app.token("straße@example.de", "long enough").await;
    let me = app
        .get("/v1/users/me", t.body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.body["email"], "Straße@example.de");
}

/// A database migrated before V3 holds addresses without a canonical form when SQL could not
/// compute it (non-ASCII): they still sign in as before, and get the form on that sign-in.
#[tokio::test]
async fn accounts_stored_before_canonical_emails_still_sign_in_and_then_count_as_taken() {
    let app = spawn_app().await;
    let hash = shared::auth::password::hash("long enough".into(), 4)
        .await
        .unwrap();
    let id = Uuid::now_v7();
    app.state
        .db
        .read("test.legacy_user", |c| {
            let hash = hash.clone();
            async move {
                c.execute(
                    "INSERT INTO users (id, email, password_hash) VALUES ($1, 'JÖRG@Example.de', $2)",
                    &[&id, &hash],
                )
                .await
            }
        })
        .await
        .unwrap();
    // The comparison that worked before (ASCII case-insensitive) still finds the row.
    let r = app.token("jÖrg@example.DE", "long enough").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let canonical: Option<String> = app
        .state
        .db
        .read("test.canonical", |c| async move {
            c.query_one("SELECT email_canonical FROM users WHERE id = $1", &[&id])
                .await?
                .try_get(0)
        })
        .await
        .unwrap();
    assert_eq!(canonical.as_deref(), Some("jörg@example.de"));
    // From now on every look-alike form signs in, and none registers again.
    assert_eq!(
        app.token("JÖRG@EXAMPLE.DE", "long enough").await.status,
        200
    );
    app.send(
        Method::POST,
        "/v1/auth/register",
        None,
        Some(json!({"email": "jörg@example.de", "password": "long enough"})),
    )
    .await
    .assert_problem(409);
}
