//! Webhook endpoints: registered behind the SSRF guard, the secret shown once and sealed at
//! rest, scoped to their owner, rotated with an overlap, and a clear 503 without the key.

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;
use shared::{sealed::SealingKey, testing};
use uuid::Uuid;

use crate::helpers::{Reply, TestApp, User, header, spawn_app, spawn_app_with};

/// `POST /v1/webhooks` of `url`, subscribed to `item.created`.
async fn register(app: &TestApp, user: &User, url: &str) -> Reply {
    app.post(
        "/v1/webhooks",
        &user.token,
        json!({"url": url, "events": ["item.created"]}),
    )
    .await
}

/// A public address as a literal: no DNS needed where the tests run.
const PUBLIC: &str = "https://93.184.216.34/hooks/basalt";

#[tokio::test]
async fn endpoints_are_created_with_a_secret_shown_once_and_sealed_at_rest() {
    let app = spawn_app().await;
    let user = app.user().await;
    let r = app
        .post(
            "/v1/webhooks",
            &user.token,
            json!({
                "url": PUBLIC,
                "events": ["item.deleted", "item.created", "item.created"],
                "description": "CI",
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(
        r.fields(),
        [
            "created_at",
            "description",
            "enabled",
            "events",
            "id",
            "secret",
            "updated_at",
            "url"
        ]
    );
    assert_eq!(r.body["events"], json!(["item.created", "item.deleted"]));
    assert_eq!(r.body["enabled"], true);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let raw = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .unwrap();
    assert_eq!(raw.len(), 32);
    let id: Uuid = r.body["id"].as_str().unwrap().parse().unwrap();

    // At rest: not the secret, but it opens to the secret with the key and this row's id.
    let sealed: Vec<u8> = app
        .state
        .db
        .read("test.sealed", |c| async move {
            c.query_one("SELECT secret_sealed FROM webhooks WHERE id = $1", &[&id])
                .await?
                .try_get(0)
        })
        .await
        .unwrap();
    assert!(!sealed.windows(raw.len()).any(|w| w == raw.as_slice()));
    let key = SealingKey::from_base64(testing::TEST_WEBHOOK_KEY).unwrap();
    assert_eq!(key.open(&sealed, id.as_bytes()).unwrap(), secret.as_bytes());
    assert!(key.open(&sealed, Uuid::now_v7().as_bytes()).is_err());

    // Never shown again.
    let list = app.get("/v1/webhooks", &user.token).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.body.to_string().contains(&secret));
    assert!(list.body["items"][0].get("secret").is_none());
    let one = app.get(&format!("/v1/webhooks/{id}"), &user.token).await;
    assert_eq!(one.status, 200);
    assert!(one.body.get("secret").is_none());

    // Rotation: a new secret; the old one keeps signing for 24 h.
    let rotated = app
        .post(
            &format!("/v1/webhooks/{id}/rotate-secret"),
            &user.token,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(header(&rotated, "cache-control"), "no-store");
    let new_secret = rotated.body["secret"].as_str().unwrap();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let until = chrono::DateTime::parse_from_rfc3339(
        rotated.body["previous_secret_expires_at"].as_str().unwrap(),
    )
    .unwrap();
    let hours =
        (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "{hours}");
    let secrets = shared::repo::webhooks::signing_secrets(&app.state.db, user.id, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        key.open(&secrets.current, id.as_bytes()).unwrap(),
        new_secret.as_bytes()
    );
    assert_eq!(
        key.open(&secrets.previous.unwrap(), id.as_bytes()).unwrap(),
        secret.as_bytes()
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_endpoint_and_secret() {
    let app = spawn_app().await;
    let user = app.user().await;
    let body = json!({"url": PUBLIC, "events": ["item.updated"]});
    let first = app
        .post_keyed("/v1/webhooks", &user.token, "hook-1", body.clone())
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = app
        .post_keyed("/v1/webhooks", &user.token, "hook-1", body)
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(header(&again, "idempotent-replayed"), "true");
    assert_eq!(header(&again, "cache-control"), "no-store");
    assert_eq!(again.body, first.body, "the same id and the same secret");
    assert_eq!(app.count("webhooks").await, 1);
}

#[tokio::test]
async fn internal_or_insecure_urls_are_refused_with_a_problem_on_url() {
    let app = spawn_app().await;
    let user = app.user().await;
    for url in [
        "http://127.0.0.1/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://localhost/hook",
        "http://93.184.216.34/hook",
        "https://user:pass@93.184.216.34/hook",
        "ftp://93.184.216.34/",
        "not a url",
    ] {
        let r = register(&app, &user, url).await;
        r.assert_problem(422);
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}: {}", r.body);
    }
    for body in [
        json!({"url": PUBLIC, "events": []}),
        json!({"url": PUBLIC, "events": ["item.exploded"]}),
        json!({"url": PUBLIC}),
        json!({"url": PUBLIC, "events": ["item.created"], "description": "x".repeat(201)}),
        json!({"url": PUBLIC, "events": ["item.created"], "description": "two\nlines"}),
        json!({"url": PUBLIC, "events": ["item.created"], "secret": "mine"}),
    ] {
        app.post("/v1/webhooks", &user.token, body.clone())
            .await
            .assert_problem(422);
    }
    assert_eq!(app.count("webhooks").await, 0, "nothing stored");
}

#[tokio::test]
async fn endpoints_are_scoped_to_their_owner_and_change_through_patch() {
    let app = spawn_app().await;
    let user = app.user().await;
    let other = app.user().await;
    let r = register(&app, &user, PUBLIC).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let path = format!("/v1/webhooks/{}", r.body["id"].as_str().unwrap());

    // Another user's endpoint does not exist for them.
    app.get(&path, &other.token).await.assert_problem(404);
    app.patch(&path, &other.token, json!({"enabled": false}))
        .await
        .assert_problem(404);
    app.post(&format!("{path}/rotate-secret"), &other.token, json!({}))
        .await
        .assert_problem(404);
    app.delete(&path, &other.token).await.assert_problem(404);
    let theirs = app.get("/v1/webhooks", &other.token).await;
    assert_eq!(theirs.body["items"], json!([]));

    let changed = app
        .patch(
            &path,
            &user.token,
            json!({
                "url": "https://93.184.216.35/v2",
                "events": ["item.updated", "item.deleted"],
                "description": "moved",
                "enabled": false,
            }),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["url"], "https://93.184.216.35/v2");
    assert_eq!(
        changed.body["events"],
        json!(["item.updated", "item.deleted"])
    );
    assert_eq!(changed.body["description"], "moved");
    assert_eq!(changed.body["enabled"], false);
    app.patch(&path, &user.token, json!({"url": "https://10.1.2.3/"}))
        .await
        .assert_problem(422);
    let enabled = app
        .patch(&path, &user.token, json!({"enabled": true}))
        .await;
    assert_eq!(enabled.body["enabled"], true);
    assert_eq!(
        enabled.body["url"], "https://93.184.216.35/v2",
        "unchanged by a failed PATCH"
    );

    assert_eq!(app.delete(&path, &user.token).await.status, 204);
    app.get(&path, &user.token).await.assert_problem(404);
    app.delete(&path, &user.token).await.assert_problem(404);
}

#[tokio::test]
async fn without_an_encryption_key_webhooks_answer_503_naming_it() {
    let app = spawn_app_with(|mut c| {
        c.webhooks.encryption_key = None;
        c
    })
    .await;
    let user = app.user().await;
    let r = register(&app, &user, PUBLIC).await;
    r.assert_problem(503);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("WEBHOOK_ENCRYPTION_KEY"),
        "{}",
        r.body
    );
    // Everything else works as before.
    assert_eq!(app.get("/v1/webhooks", &user.token).await.status, 200);
}

#[test]
fn host_serve_refuses_to_start_without_the_key_and_names_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_host"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("JWT_SECRET", testing::TEST_JWT_SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WEBHOOK_ENCRYPTION_KEY is required but not set"),
        "{stderr}"
    );
}
