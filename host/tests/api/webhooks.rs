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

// ------------------------------------------------------------------------------ delivery
//
// The whole path: a change through the API (the host, or the items Lambda entry point), the
// fan-out and delivery jobs run by the worker's scheduled drain through its Lambda entry
// point, a real loopback receiver, and what the deliveries API then shows.

mod delivery {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use axum::{
        Router,
        extract::Path,
        http::{HeaderMap, StatusCode, header},
        response::IntoResponse,
        routing::post,
    };
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};
    use shared::{
        config::{Config, Env, Runtime, WorkerSettings},
        lambda::{Invocation, InvocationContext},
        repo::{items::ItemCreated, jobs},
        ssrf::Policy,
        testing,
    };
    use uuid::Uuid;
    use worker::scheduled::Scheduled;

    use crate::helpers::{Reply, TestApp, User, spawn_app_with};

    /// What the receiver got: the path's last segment, the headers, the body.
    type Log = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

    /// Answers `POST /{mode}/{name}` as `mode` says: `ok` 204, `fail` 500, `gone` 410, `busy`
    /// 429 with `Retry-After: 7`, `moved` 302, `slow` after 3 s (past the test timeout).
    async fn receiver() -> (String, Log) {
        let log: Log = Arc::default();
        let seen = log.clone();
        let app = Router::new().route(
            "/{mode}/{name}",
            post(
                move |Path((mode, name)): Path<(String, String)>,
                      headers: HeaderMap,
                      body: axum::body::Bytes| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push((name, headers, body.to_vec()));
                        match mode.as_str() {
                            "ok" => StatusCode::NO_CONTENT.into_response(),
                            "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                            "gone" => (StatusCode::GONE, "unsubscribed").into_response(),
                            "busy" => (
                                StatusCode::TOO_MANY_REQUESTS,
                                [(header::RETRY_AFTER, "7")],
                                "slow down",
                            )
                                .into_response(),
                            "moved" => {
                                (StatusCode::FOUND, [(header::LOCATION, "/ok/elsewhere")], "")
                                    .into_response()
                            }
                            _ => {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                                "late".into_response()
                            }
                        }
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), log)
    }

    /// Loopback and `http` allowed (what `WEBHOOK_ALLOW_PRIVATE_TARGETS=1` and
    /// `WEBHOOK_ALLOW_INSECURE=1` give), a short timeout, and `schedule` in seconds.
    fn delivering(schedule: &[f64]) -> impl FnOnce(Config) -> Config {
        let schedule: Vec<Duration> = schedule
            .iter()
            .map(|s| Duration::from_secs_f64(*s))
            .collect();
        move |mut c| {
            c.webhooks.targets = Policy {
                allow_insecure: true,
                allow_private: true,
            };
            c.webhooks.retry_schedule = schedule;
            c.webhooks.timeout = Duration::from_millis(500);
            c
        }
    }

    /// One run of the scheduled drain function, through its Lambda entry point with the
    /// checked-in EventBridge event and a minute to go.
    async fn drain(app: &TestApp) -> Value {
        let env = Env::from_lookup(Runtime::Lambda, |_| None).unwrap();
        let worker = WorkerSettings::from_env(&env).unwrap();
        let function =
            Scheduled::new(app.state.db.clone(), &worker, &app.state.config.webhooks).unwrap();
        let event =
            serde_json::from_str(include_str!("../../../events/scheduled/worker-drain.json"))
                .unwrap();
        let mut context = InvocationContext::default();
        context.request_id = Uuid::new_v4().to_string();
        context.deadline = u64::try_from(Utc::now().timestamp_millis()).unwrap() + 60_000;
        let drained = function
            .handle(Invocation::new(event, context))
            .await
            .unwrap();
        serde_json::to_value(drained).unwrap()
    }

    /// Makes every waiting delivery attempt due now: the schedule's waits pass without a sleep.
    async fn time_passes(app: &TestApp) {
        app.state
            .db
            .write("test.time_passes", |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE jobs SET run_at = now() \
                         WHERE kind = 'webhook.deliver' AND state IN ('available', 'retryable')",
                        &[],
                    )
                    .await
                })
            })
            .await
            .unwrap();
    }

    /// Registers `url` for `events`; returns its id and secret.
    async fn subscribe(app: &TestApp, user: &User, url: &str, events: &[&str]) -> (String, String) {
        let r = app
            .post(
                "/v1/webhooks",
                &user.token,
                json!({"url": url, "events": events}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn deliveries(app: &TestApp, user: &User, webhook: &str) -> Vec<Value> {
        let r = app
            .get(&format!("/v1/webhooks/{webhook}/deliveries"), &user.token)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["items"].as_array().unwrap().clone()
    }

    async fn only_delivery(app: &TestApp, user: &User, webhook: &str) -> Value {
        let all = deliveries(app, user, webhook).await;
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].clone()
    }

    fn at(v: &Value) -> DateTime<Utc> {
        v.as_str().unwrap().parse().unwrap()
    }

    /// `next_attempt_at - last_attempt_at` in seconds.
    fn wait_of(d: &Value) -> f64 {
        (at(&d["next_attempt_at"]) - at(&d["last_attempt_at"])).as_seconds_f64()
    }

    fn received_by(log: &Log, name: &str) -> Vec<(HeaderMap, Vec<u8>)> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, h, b)| (h.clone(), b.clone()))
            .collect()
    }

    fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Value {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(body, headers)
            .unwrap_or_else(|e| panic!("the signature does not verify: {e:?}"));
        serde_json::from_slice(body).unwrap()
    }

    #[tokio::test]
    async fn a_change_through_the_host_or_the_items_lambda_is_delivered_once_per_subscribed_endpoint()
     {
        let app = spawn_app_with(delivering(&[0.0, 60.0])).await;
        let (base, log) = receiver().await;
        let user = app.user().await;
        let other = app.user().await;
        let (a, secret_a) =
            subscribe(&app, &user, &format!("{base}/ok/a"), &["item.created"]).await;
        let (_, secret_b) = subscribe(
            &app,
            &user,
            &format!("{base}/ok/b"),
            &["item.created", "item.deleted"],
        )
        .await;
        subscribe(&app, &user, &format!("{base}/ok/c"), &["item.deleted"]).await;
        subscribe(&app, &other, &format!("{base}/ok/d"), &["item.created"]).await;
        let (paused, _) = subscribe(&app, &user, &format!("{base}/ok/e"), &["item.created"]).await;
        let r = app
            .patch(
                &format!("/v1/webhooks/{paused}"),
                &user.token,
                json!({"enabled": false}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);

        // One item through the host, one through the items function's Lambda entry point.
        let via_host = app.item(&user, "through the host").await;
        let call = testing::Call::new("POST", "/v1/items")
            .bearer(&user.token)
            .json(json!({"title": "through Lambda"}));
        let lambda_app = shared::http::app(fn_items::router(), app.state.clone());
        let via_lambda =
            testing::via_lambda(lambda_app, testing::http_api_event(&call, "$default")).await;
        assert_eq!(via_lambda.status, 201, "{:?}", via_lambda.body);
        // A change that rolled back took its event with it: nothing to deliver.
        let user_id = user.id;
        let rolled_back = app
            .state
            .db
            .write("test.rolled_back", move |tx| {
                Box::pin(async move {
                    shared::repo::items::insert(tx, user_id, "never", "").await?;
                    tx.execute("SELECT 1 / 0", &[]).await
                })
            })
            .await;
        assert!(rolled_back.is_err());

        let drained = drain(&app).await;
        assert_eq!(drained["finish"], "empty", "{drained}");

        let ids: Vec<String> = vec![
            via_host["id"].as_str().unwrap().to_owned(),
            via_lambda.body["id"].as_str().unwrap().to_owned(),
        ];
        for (name, secret) in [("a", &secret_a), ("b", &secret_b)] {
            let got = received_by(&log, name);
            assert_eq!(got.len(), 2, "endpoint {name}: one delivery per item");
            let mut seen = Vec::new();
            for (headers, body) in &got {
                let message = verify(secret, headers, body);
                assert_eq!(message["type"], "item.created");
                assert!(message["timestamp"].as_str().unwrap().ends_with('Z'));
                seen.push(message["data"]["id"].as_str().unwrap().to_owned());
                assert!(
                    message["data"]["title"]
                        .as_str()
                        .unwrap()
                        .starts_with("through")
                );
            }
            seen.sort();
            let mut want = ids.clone();
            want.sort();
            assert_eq!(seen, want, "endpoint {name}");
        }
        // One event is one message: the same webhook-id at every endpoint.
        let id_at = |name: &str| -> Vec<String> {
            let mut ids: Vec<String> = received_by(&log, name)
                .iter()
                .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(id_at("a"), id_at("b"));
        for name in ["c", "d", "e"] {
            assert!(
                received_by(&log, name).is_empty(),
                "endpoint {name} got nothing"
            );
        }

        // The deliveries API shows what happened, and the receiver's webhook-id.
        let shown = deliveries(&app, &user, &a).await;
        assert_eq!(shown.len(), 2);
        let mut fields: Vec<&str> = shown[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "attempts",
                "created_at",
                "event_type",
                "id",
                "last_attempt_at",
                "last_error",
                "last_status_code",
                "message_id",
                "next_attempt_at",
                "response_body",
                "state",
                "webhook_id"
            ]
        );
        for d in &shown {
            assert_eq!(d["state"], "delivered", "{d}");
            assert_eq!(d["attempts"], 1);
            assert_eq!(d["last_status_code"], 204);
            assert_eq!(d["next_attempt_at"], Value::Null);
            assert_eq!(d["event_type"], "item.created");
        }
        assert_eq!(
            {
                let mut m: Vec<String> = shown
                    .iter()
                    .map(|d| d["message_id"].as_str().unwrap().to_owned())
                    .collect();
                m.sort();
                m
            },
            id_at("a")
        );

        // At-least-once: the event job running again delivers nothing twice.
        let payload: Value = app
            .state
            .db
            .read("test.event", |c| async move {
                c.query_one(
                    "SELECT payload FROM jobs WHERE kind = 'item.created' ORDER BY id LIMIT 1",
                    &[],
                )
                .await?
                .try_get(0)
            })
            .await
            .unwrap();
        let event: ItemCreated = serde_json::from_value(payload).unwrap();
        app.state
            .db
            .write("test.again", move |tx| {
                Box::pin(async move { jobs::enqueue(tx, &jobs::NewJob::new(&event)).await })
            })
            .await
            .unwrap();
        drain(&app).await;
        assert_eq!(received_by(&log, "a").len(), 2);
        assert_eq!(app.count("webhook_deliveries").await, 4);
    }

    #[tokio::test]
    async fn every_answer_sets_the_state_attempts_and_next_attempt_the_schedule_says() {
        // Three attempts: now, a minute later, two minutes after that.
        let app = spawn_app_with(delivering(&[0.0, 60.0, 120.0])).await;
        let (base, log) = receiver().await;
        let user = app.user().await;
        let mut hooks = std::collections::BTreeMap::new();
        for mode in ["fail", "gone", "busy", "moved", "slow"] {
            let (id, _) = subscribe(
                &app,
                &user,
                &format!("{base}/{mode}/{mode}"),
                &["item.created"],
            )
            .await;
            hooks.insert(mode, id);
        }
        app.item(&user, "watched").await;
        drain(&app).await;

        let d = only_delivery(&app, &user, &hooks["fail"]).await;
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("pending"), Some(1)),
            "{d}"
        );
        assert_eq!(d["last_status_code"], 500);
        assert_eq!(d["response_body"], "boom");
        let wait = wait_of(&d);
        assert!((54.0..=66.0).contains(&wait), "60 s ± 10 %: {wait}");

        let d = only_delivery(&app, &user, &hooks["busy"]).await;
        assert_eq!(
            (d["state"].as_str(), d["last_status_code"].as_i64()),
            (Some("pending"), Some(429))
        );
        let wait = wait_of(&d);
        assert!(
            (6.0..=8.0).contains(&wait),
            "Retry-After: 7 replaces the schedule: {wait}"
        );

        let d = only_delivery(&app, &user, &hooks["moved"]).await;
        assert_eq!(
            (d["state"].as_str(), d["last_status_code"].as_i64()),
            (Some("pending"), Some(302))
        );
        assert!(
            d["last_error"]
                .as_str()
                .unwrap()
                .contains("redirects are not followed"),
            "{d}"
        );
        assert!(received_by(&log, "elsewhere").is_empty(), "not followed");

        let d = only_delivery(&app, &user, &hooks["slow"]).await;
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("pending"), Some(1))
        );
        assert_eq!(d["last_status_code"], Value::Null);
        assert!(
            d["last_error"].as_str().unwrap().starts_with("timed out"),
            "{d}"
        );

        let d = only_delivery(&app, &user, &hooks["gone"]).await;
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("dead"), Some(1)),
            "{d}"
        );
        assert_eq!(d["next_attempt_at"], Value::Null);
        let endpoint = app
            .get(&format!("/v1/webhooks/{}", hooks["gone"]), &user.token)
            .await;
        assert_eq!(endpoint.body["enabled"], false);
        assert!(
            endpoint.body["disabled_reason"]
                .as_str()
                .unwrap()
                .contains("410 Gone"),
            "{}",
            endpoint.body
        );

        // The second attempt waits the schedule's second step; the third is the last.
        time_passes(&app).await;
        drain(&app).await;
        let d = only_delivery(&app, &user, &hooks["fail"]).await;
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("pending"), Some(2))
        );
        let wait = wait_of(&d);
        assert!((108.0..=132.0).contains(&wait), "120 s ± 10 %: {wait}");
        time_passes(&app).await;
        drain(&app).await;
        let d = only_delivery(&app, &user, &hooks["fail"]).await;
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("dead"), Some(3)),
            "{d}"
        );
        assert_eq!(d["next_attempt_at"], Value::Null);
        // Every attempt of one message carried the same webhook-id, freshly timestamped.
        let attempts = received_by(&log, "fail");
        assert_eq!(attempts.len(), 3);
        let ids: std::collections::BTreeSet<_> = attempts
            .iter()
            .map(|(h, _)| h["webhook-id"].clone())
            .collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(
            ids.first().unwrap().to_str().unwrap(),
            d["message_id"].as_str().unwrap()
        );
        // The gone endpoint was not called again.
        assert_eq!(received_by(&log, "gone").len(), 1);
    }

    #[tokio::test]
    async fn an_endpoint_failing_for_days_is_disabled_and_a_success_ends_its_streak() {
        let app = spawn_app_with(delivering(&[0.0, 60.0, 120.0])).await;
        let (base, _log) = receiver().await;
        let user = app.user().await;
        let (failing, _) =
            subscribe(&app, &user, &format!("{base}/fail/x"), &["item.created"]).await;
        let (fine, _) = subscribe(&app, &user, &format!("{base}/ok/y"), &["item.created"]).await;
        app.item(&user, "first").await;
        drain(&app).await;
        let streak = |id: String| {
            let db = app.state.db.clone();
            async move {
                let id: Uuid = id.parse().unwrap();
                db.read("test.streak", |c| async move {
                    c.query_one("SELECT failing_since FROM webhooks WHERE id = $1", &[&id])
                        .await?
                        .try_get::<_, Option<DateTime<Utc>>>(0)
                })
                .await
                .unwrap()
            }
        };
        assert!(
            streak(failing.clone()).await.is_some(),
            "a failure starts the streak"
        );
        assert_eq!(streak(fine.clone()).await, None);

        // The streak began over five days ago (WEBHOOK_DISABLE_AFTER_SECONDS' default).
        let id: Uuid = failing.parse().unwrap();
        app.state
            .db
            .write("test.days_ago", move |tx| {
                Box::pin(async move {
                    tx.execute(
                        "UPDATE webhooks SET failing_since = now() - interval '5 days 1 minute' \
                         WHERE id = $1",
                        &[&id],
                    )
                    .await
                })
            })
            .await
            .unwrap();
        time_passes(&app).await;
        drain(&app).await;
        let endpoint = app
            .get(&format!("/v1/webhooks/{failing}"), &user.token)
            .await;
        assert_eq!(endpoint.body["enabled"], false, "{}", endpoint.body);
        assert!(
            endpoint.body["disabled_reason"]
                .as_str()
                .unwrap()
                .contains("has failed since"),
            "{}",
            endpoint.body
        );
        let d = only_delivery(&app, &user, &failing).await;
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("dead"), Some(2)),
            "{d}"
        );

        // Enabled again by its owner, and answering: the streak is over.
        let r = app
            .patch(
                &format!("/v1/webhooks/{failing}"),
                &user.token,
                json!({"enabled": true, "url": format!("{base}/ok/x")}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.get("disabled_reason").is_none(), "{}", r.body);
        let replay = app
            .post(
                &format!(
                    "/v1/webhooks/{failing}/deliveries/{}/retry",
                    d["id"].as_str().unwrap()
                ),
                &user.token,
                json!({}),
            )
            .await;
        assert_eq!(replay.status, 202, "{}", replay.body);
        drain(&app).await;
        assert_eq!(
            only_delivery(&app, &user, &failing).await["state"],
            "delivered"
        );
        assert_eq!(streak(failing).await, None);
    }

    #[tokio::test]
    async fn test_messages_replays_pagination_and_scoping() {
        let app = spawn_app_with(delivering(&[0.0, 60.0])).await;
        let (base, log) = receiver().await;
        let user = app.user().await;
        let other = app.user().await;
        let (hook, secret) =
            subscribe(&app, &user, &format!("{base}/ok/t"), &["item.deleted"]).await;
        let test_path = format!("/v1/webhooks/{hook}/test");

        // A test message goes to the endpoint whatever it subscribes to.
        let r = app.post(&test_path, &user.token, json!({})).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["event_type"], "webhook.test");
        assert_eq!(r.body["state"], "pending");
        assert_eq!(r.body["attempts"], 0);
        let delivery = r.body["id"].as_str().unwrap().to_owned();
        drain(&app).await;
        let got = received_by(&log, "t");
        assert_eq!(got.len(), 1);
        let message = verify(&secret, &got[0].0, &got[0].1);
        assert_eq!(message["type"], "webhook.test");
        assert_eq!(message["data"]["webhook_id"], hook.as_str());

        // A replay of a delivered message: the same webhook-id, one more attempt.
        let retry = format!("/v1/webhooks/{hook}/deliveries/{delivery}/retry");
        let r = app.post(&retry, &user.token, json!({})).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["state"], "pending");
        drain(&app).await;
        let got = received_by(&log, "t");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0["webhook-id"], got[1].0["webhook-id"]);
        let d = only_delivery(&app, &user, &hook).await;
        assert_eq!(
            (d["state"].as_str(), d["attempts"].as_i64()),
            (Some("delivered"), Some(2))
        );

        // Another user's endpoint and deliveries do not exist for them.
        app.get(&format!("/v1/webhooks/{hook}/deliveries"), &other.token)
            .await
            .assert_problem(404);
        app.post(&retry, &other.token, json!({}))
            .await
            .assert_problem(404);
        app.post(&test_path, &other.token, json!({}))
            .await
            .assert_problem(404);
        let (theirs, _) = subscribe(&app, &other, &format!("{base}/ok/o"), &["item.created"]).await;
        app.post(
            &format!("/v1/webhooks/{theirs}/deliveries/{delivery}/retry"),
            &other.token,
            json!({}),
        )
        .await
        .assert_problem(404);
        app.post(
            &format!("/v1/webhooks/{hook}/deliveries/{}/retry", Uuid::now_v7()),
            &user.token,
            json!({}),
        )
        .await
        .assert_problem(404);

        // Keyset pages, newest first.
        for _ in 0..2 {
            assert_eq!(
                app.post(&test_path, &user.token, json!({})).await.status,
                202
            );
        }
        let page = |cursor: Option<String>| {
            let path = match cursor {
                Some(c) => format!("/v1/webhooks/{hook}/deliveries?limit=2&cursor={c}"),
                None => format!("/v1/webhooks/{hook}/deliveries?limit=2"),
            };
            let (app, token) = (&app, user.token.clone());
            async move { app.get(&path, &token).await }
        };
        let first: Reply = page(None).await;
        assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
        let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
        let second = page(Some(cursor)).await;
        let last = second.body["items"].as_array().unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0]["id"], delivery.as_str(), "the oldest comes last");
        assert_eq!(second.body["next_cursor"], Value::Null);
        app.get(
            &format!("/v1/webhooks/{hook}/deliveries?cursor=nope"),
            &user.token,
        )
        .await
        .assert_problem(400);

        // A disabled endpoint gets neither tests nor replays until enabled again.
        app.patch(
            &format!("/v1/webhooks/{hook}"),
            &user.token,
            json!({"enabled": false}),
        )
        .await;
        app.post(&test_path, &user.token, json!({}))
            .await
            .assert_problem(409);
        app.post(&retry, &user.token, json!({}))
            .await
            .assert_problem(409);
        // Listing endpoints never shows a secret.
        let list = app.get("/v1/webhooks", &user.token).await;
        assert!(!list.body.to_string().contains("whsec_"), "{}", list.body);
    }

    /// The official Python verifier (PyPI `standardwebhooks`) checks real deliveries, also
    /// during a rotation: it knows only the old secret, which still signs beside the new one.
    #[tokio::test]
    async fn deliveries_verify_with_the_python_library_before_and_after_a_rotation() {
        let app = spawn_app_with(delivering(&[0.0, 60.0])).await;
        let user = app.user().await;
        // The receiver must know the secret before it starts: register a placeholder URL, start
        // the receiver with the secret, then point the endpoint at it.
        let (hook, old) = subscribe(
            &app,
            &user,
            "http://127.0.0.1:9/placeholder",
            &["item.created"],
        )
        .await;
        let receiver = testing::PythonReceiver::start(&old);
        let r = app
            .patch(
                &format!("/v1/webhooks/{hook}"),
                &user.token,
                json!({"url": format!("http://{}/hook", receiver.addr)}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);

        app.item(&user, "before the rotation").await;
        drain(&app).await;
        let seen = receiver.next();
        assert_eq!(seen["verified"], true, "{seen}");
        assert_eq!(seen["data"]["title"], "before the rotation");

        let rotated = app
            .post(
                &format!("/v1/webhooks/{hook}/rotate-secret"),
                &user.token,
                json!({}),
            )
            .await;
        assert_eq!(rotated.status, 200, "{}", rotated.body);
        assert_ne!(rotated.body["secret"], old.as_str());
        app.item(&user, "during the overlap").await;
        drain(&app).await;
        let seen = receiver.next();
        assert_eq!(
            seen["verified"], true,
            "the old secret still verifies: {seen}"
        );
        assert_eq!(seen["data"]["title"], "during the overlap");
        let d = deliveries(&app, &user, &hook).await;
        assert!(d.iter().all(|d| d["state"] == "delivered"), "{d:?}");
    }
}
