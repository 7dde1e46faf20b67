//! Sign-up, sign-in and bearer-token authentication: validation, uniform refusals, JWT edge
//! cases, the lock-out of users deleted while their token is still valid, the bound on
//! concurrent bcrypt work, and re-hashing after `BCRYPT_COST` changes.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{Value, json};
use shared::{auth::password::Passwords, repo::users, testing};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims as this deployment issues them (default `JWT_ISSUER` and `JWT_AUDIENCE`), with
/// `changes` applied: a `null` removes a claim.
fn claims(sub: &str, iat: u64, exp: u64, changes: Value) -> Value {
    let mut claims =
        json!({"sub": sub, "iat": iat, "exp": exp, "iss": "basalt", "aud": "basalt-api"});
    let map = claims.as_object_mut().unwrap();
    for (name, value) in changes.as_object().unwrap() {
        match value {
            Value::Null => map.remove(name),
            v => map.insert(name.clone(), v.clone()),
        };
    }
    claims
}

fn sign(claims: Value, alg: Algorithm, secret: &str) -> String {
    shared::testing::forge_jwt(alg, &claims, secret)
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
    let valid = |changes: Value| claims(&sub, t, t + 600, changes);
    let hs256 = |changes: Value| sign(valid(changes), Algorithm::HS256, secret);
    let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_claims = B64.encode(valid(json!({})).to_string());
    let mut tampered: Vec<String> = user.token.split('.').map(str::to_owned).collect();
    tampered[1] =
        B64.encode(claims(&Uuid::now_v7().to_string(), t, t + 600, json!({})).to_string());

    let cases = [
        ("alg none", format!("{none_header}.{none_claims}.")),
        ("HS512", sign(valid(json!({})), Algorithm::HS512, secret)),
        ("expired", hs256(json!({"iat": t - 1000, "exp": t - 60}))),
        ("missing exp", hs256(json!({"exp": null}))),
        (
            "wrong key",
            sign(
                valid(json!({})),
                Algorithm::HS256,
                "a-completely-different-secret-value",
            ),
        ),
        ("tampered", tampered.join(".")),
        ("garbage", "not.a.jwt".to_owned()),
        // RFC 8725: `nbf` is honoured when present, an `iat` in the future is not believed,
        // and a token must name this issuer and this API as its audience.
        ("nbf in the future", hs256(json!({"nbf": t + 3600}))),
        ("nbf not a number", hs256(json!({"nbf": "yesterday"}))),
        ("iat in the future", hs256(json!({"iat": t + 3600}))),
        ("missing iss", hs256(json!({"iss": null}))),
        (
            "wrong iss",
            hs256(json!({"iss": "https://elsewhere.example"})),
        ),
        ("missing aud", hs256(json!({"aud": null}))),
        ("wrong aud", hs256(json!({"aud": "another-api"}))),
        ("wrong aud list", hs256(json!({"aud": ["another-api"]}))),
    ];
    // Control: tokens we sign the same way are accepted (a past `nbf` and a current `iat`
    // included), so the failures below are the edge cases.
    for good in [
        hs256(json!({})),
        hs256(json!({"nbf": t - 10, "iat": t + 2})),
        hs256(json!({"aud": ["another-api", "basalt-api"]})),
    ] {
        let r = app.get("/v1/users/me", &good).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let good = hs256(json!({}));
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
    let hash = shared::auth::password::Passwords::new(4, 1)
        .hash("long enough".into())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ins_is_bounded_and_the_rest_of_the_api_keeps_answering() {
    // A realistic cost and two cores' worth of permits, whatever this machine has.
    let app = spawn_app_with(|mut c| {
        c.auth.bcrypt_cost = 12;
        c.auth.bcrypt_concurrency = 2;
        c
    })
    .await;
    let email = format!("burst-{}@example.com", Uuid::new_v4().simple());
    let password = "correct horse battery";
    let r = app
        .send(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user_id = r.body["id"].as_str().unwrap().parse().unwrap();
    let token = app.state.auth.jwt.issue(user_id).unwrap();

    let started = Instant::now();
    let sign_ins: Vec<_> = (0..16)
        .map(|_| {
            let request = app
                .http
                .post(format!("{}/v1/auth/token", app.base))
                .json(&json!({"email": email, "password": password}));
            tokio::spawn(async move { TestApp::reply(request.send().await.unwrap()).await })
        })
        .collect();
    let burst = async {
        let mut replies = Vec::new();
        for sign_in in sign_ins {
            replies.push(sign_in.await.unwrap());
        }
        replies
    };
    let probes = async {
        // Once the burst is hashing: the probes and an ordinary request must not queue behind it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut slowest = Duration::ZERO;
        for _ in 0..3 {
            let t = Instant::now();
            let ready = app.send(Method::GET, "/ready", None, None).await;
            assert_eq!(ready.status, 200, "{}", ready.body);
            let me = app.get("/v1/users/me", &token).await;
            assert_eq!(me.status, 200, "{}", me.body);
            slowest = slowest.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slowest
    };
    let (replies, slowest) = tokio::join!(burst, probes);
    assert!(
        slowest < Duration::from_secs(1),
        "/ready and GET /v1/users/me took {slowest:?} during the burst"
    );
    let granted = replies.iter().filter(|r| r.status == 200).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(granted + refused.len(), replies.len(), "only 200 or 503");
    assert!(granted >= 2, "the first two at least are served: {granted}");
    assert!(
        !refused.is_empty(),
        "16 sign-ins on 2 permits: some must be refused"
    );
    for r in refused {
        r.assert_problem(503);
        assert_eq!(r.headers["retry-after"], "1");
    }
    // Refusals come after a short wait, not after the whole queue has been hashed.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn signing_in_after_bcrypt_cost_was_raised_stores_a_hash_at_the_new_cost() {
    let app = spawn_app_with(|mut c| {
        c.auth.bcrypt_cost = 5;
        c
    })
    .await;
    // A user whose hash dates from when BCRYPT_COST was 4.
    let email = format!("rehash-{}@example.com", Uuid::new_v4().simple());
    let password = "correct horse battery";
    let old_hash = Passwords::new(4, 1).hash(password.into()).await.unwrap();
    let parsed = shared::auth::email::parse("email", &email).unwrap();
    let user = users::create(&app.state.db, parsed.as_new(), &old_hash)
        .await
        .unwrap();
    let stored = || async { users::find(&app.state.db, user.id).await.unwrap().unwrap() };

    // A wrong password proves nothing: the old hash stays.
    app.token(&email, "not the password")
        .await
        .assert_problem(401);
    assert_eq!(stored().await.password_hash, old_hash);

    let r = app.token(&email, password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = stored().await;
    assert!(
        after.password_hash.starts_with("$2b$05$"),
        "{}",
        after.password_hash
    );
    // The same password, not an account change.
    assert_eq!(after.updated_at, user.updated_at);
    // The new hash signs in, and is not redone on every sign-in.
    let r = app.token(&email, password).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(stored().await.password_hash, after.password_hash);
}
