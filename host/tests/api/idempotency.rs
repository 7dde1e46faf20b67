//! `Idempotency-Key` on the POSTs that create: a repeat gets the first response and creates
//! nothing; another request under the same key is 422; keys are per user; a duplicate in
//! flight is 409, never a second row; and a write abandoned mid-COMMIT by the request timeout
//! is replayed, not repeated.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Reply, spawn_app, spawn_app_with};

const REPLAYED: &str = "idempotent-replayed";
const REUSED: &str = "https://basalt.dev/problems/idempotency-key-reused";
const IN_USE: &str = "https://basalt.dev/problems/idempotency-key-in-use";
const OUTCOME_UNKNOWN: &str = "https://basalt.dev/problems/outcome-unknown";

fn replayed(r: &Reply) -> bool {
    r.headers.get(REPLAYED).is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_repeated_item_post_returns_the_first_response_and_creates_one_item() {
    let app = spawn_app().await;
    let user = app.user().await;
    let body = json!({"title": "once", "description": "d"});

    let first = app
        .post_keyed("/v1/items", &user.token, "key-1", body.clone())
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(!replayed(&first));
    for _ in 0..2 {
        let again = app
            .post_keyed("/v1/items", &user.token, "key-1", body.clone())
            .await;
        assert_eq!(again.status, 201, "{}", again.body);
        assert_eq!(again.body, first.body, "the first response's body");
        assert_eq!(again.headers["content-type"], "application/json");
        assert!(replayed(&again));
        // The chain's own headers are fresh on a replay.
        assert_ne!(again.request_id(), first.request_id());
    }
    assert_eq!(app.count("items").await, 1);
    // Its item.created job committed with it, once: a replay enqueues nothing.
    assert_eq!(app.count("jobs").await, 1);

    // A new key is a new request; no key at all behaves as before.
    let other = app
        .post_keyed("/v1/items", &user.token, "key-2", body.clone())
        .await;
    assert_eq!(other.status, 201);
    assert_ne!(other.body["id"], first.body["id"]);
    assert!(!replayed(&other));
    app.post("/v1/items", &user.token, body.clone()).await;
    app.post("/v1/items", &user.token, body).await;
    assert_eq!(app.count("items").await, 4);
    assert_eq!(app.count("jobs").await, 4);
}

#[tokio::test]
async fn a_repeated_api_key_post_returns_the_same_key_once_created() {
    let app = spawn_app().await;
    let user = app.user().await;
    let first = app
        .post_keyed("/v1/api-keys", &user.token, "k", json!({"name": "ci"}))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = app
        .post_keyed("/v1/api-keys", &user.token, "k", json!({"name": "ci"}))
        .await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert!(replayed(&again));
    assert_eq!(again.body, first.body);
    assert_eq!(app.count("api_keys").await, 1);
    // The replayed key is the stored one and works.
    let key = again.body["key"].as_str().unwrap();
    assert_eq!(app.get("/v1/users/me", key).await.status, 200);
    // At rest, the stored response does not hold the key in clear.
    let stored: i64 = app
        .state
        .db
        .read("test.at_rest", |c| {
            let secret = key.to_owned();
            async move {
                c.query_one(
                    "SELECT count(*) FROM idempotency_keys \
                     WHERE position(convert_to($1, 'UTF8') IN body) = 0",
                    &[&secret],
                )
                .await?
                .try_get(0)
            }
        })
        .await
        .unwrap();
    assert_eq!(stored, 1, "one stored response, without the key in clear");
}

#[tokio::test]
async fn the_same_key_for_a_different_request_is_422() {
    let app = spawn_app().await;
    let user = app.user().await;
    let first = app
        .post_keyed("/v1/items", &user.token, "k", json!({"title": "a"}))
        .await;
    assert_eq!(first.status, 201);

    let other_body = app
        .post_keyed("/v1/items", &user.token, "k", json!({"title": "b"}))
        .await;
    other_body.assert_problem(422);
    assert_eq!(other_body.body["type"], REUSED);
    // Another endpoint under the same key is another request too.
    let other_route = app
        .post_keyed("/v1/api-keys", &user.token, "k", json!({"name": "a"}))
        .await;
    other_route.assert_problem(422);
    assert_eq!(other_route.body["type"], REUSED);
    assert_eq!(app.count("items").await, 1);
    assert_eq!(app.count("api_keys").await, 0);

    // Validation failures are not stored: the key is still free after one.
    let invalid = app
        .post_keyed("/v1/items", &user.token, "fresh", json!({"title": ""}))
        .await;
    invalid.assert_problem(422);
    assert!(invalid.body["errors"].is_array());
    let valid = app
        .post_keyed("/v1/items", &user.token, "fresh", json!({"title": "ok"}))
        .await;
    assert_eq!(valid.status, 201, "{}", valid.body);
    assert!(!replayed(&valid));
}

#[tokio::test]
async fn keys_are_scoped_to_the_user() {
    let app = spawn_app().await;
    let alice = app.user().await;
    let bob = app.user().await;
    let body = json!({"title": "same"});
    let a = app
        .post_keyed("/v1/items", &alice.token, "shared-key", body.clone())
        .await;
    let b = app
        .post_keyed("/v1/items", &bob.token, "shared-key", body.clone())
        .await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (201, 201));
    assert!(!replayed(&b), "Bob's key is his own");
    assert_ne!(a.body["id"], b.body["id"]);
    let list = app.get("/v1/items", &bob.token).await;
    assert_eq!(list.body["items"][0]["id"], b.body["id"]);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    // Each still replays their own.
    let again = app
        .post_keyed("/v1/items", &alice.token, "shared-key", body)
        .await;
    assert_eq!(again.body, a.body);
}

#[tokio::test]
async fn malformed_keys_are_400_and_create_nothing() {
    let app = spawn_app().await;
    let user = app.user().await;
    for key in [String::new(), "k".repeat(256)] {
        app.post_keyed("/v1/items", &user.token, &key, json!({"title": "x"}))
            .await
            .assert_problem(400);
    }
    let ok = app
        .post_keyed(
            "/v1/items",
            &user.token,
            &"k".repeat(255),
            json!({"title": "x"}),
        )
        .await;
    assert_eq!(ok.status, 201);
    assert_eq!(app.count("items").await, 1);
}

#[tokio::test]
async fn concurrent_duplicates_get_409_or_the_first_response_never_a_second_item() {
    let app = spawn_app().await;
    let user = app.user().await;
    // Each COMMIT takes 0.5 s, so the duplicates arrive while the first is in flight.
    app.slow_commits(0.5).await;
    let body = json!({"title": "raced"});
    let send = || app.post_keyed("/v1/items", &user.token, "race", body.clone());
    let (a, b, c, d, e) = tokio::join!(send(), send(), send(), send(), send());
    let replies = [a, b, c, d, e];

    let fresh: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == 201 && !replayed(r))
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one request did the work");
    let mut in_use = 0;
    for r in &replies {
        match r.status.as_u16() {
            201 => assert_eq!(r.body, fresh[0].body),
            409 => {
                r.assert_problem(409);
                assert_eq!(r.body["type"], IN_USE);
                in_use += 1;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert!(in_use >= 1, "the duplicates overlapped the first");
    assert_eq!(app.count("items").await, 1);
    // Once it has finished, a repeat gets its response.
    let later = send().await;
    assert!(replayed(&later));
    assert_eq!(later.body, fresh[0].body);
}

#[tokio::test]
async fn a_write_abandoned_mid_commit_by_the_timeout_is_replayed_not_repeated() {
    let app = spawn_app_with(|mut c| {
        c.http.request_timeout = Duration::from_secs(1);
        c
    })
    .await;
    let user = app.user().await;
    // The COMMIT outlives the request: the timeout answers while it is in flight, and the
    // server completes it anyway.
    app.slow_commits(2.0).await;
    let body = json!({"title": "late"});
    let timed_out = app
        .post_keyed("/v1/items", &user.token, "slow", body.clone())
        .await;
    timed_out.assert_problem(408);
    assert_eq!(timed_out.body["type"], OUTCOME_UNKNOWN);
    assert!(timed_out.headers.get("retry-after").is_none());

    // While the COMMIT runs, a repeat is refused (409) rather than run a second time — or, if
    // it is handed the abandoned request's pooled connection, it queues behind that COMMIT
    // and may time out the same way (408). Either way, once the first has committed, the
    // repeat returns what it created.
    let started = Instant::now();
    let after = loop {
        let r = app
            .post_keyed("/v1/items", &user.token, "slow", body.clone())
            .await;
        match r.status.as_u16() {
            409 => assert_eq!(r.body["type"], IN_USE),
            408 => assert_eq!(r.body["type"], OUTCOME_UNKNOWN),
            _ => break r,
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after.status, 201, "{}", after.body);
    assert!(replayed(&after));
    assert_eq!(app.count("items").await, 1);
    let list = app.get("/v1/items", &user.token).await;
    assert_eq!(list.body["items"][0]["id"], after.body["id"]);
}
