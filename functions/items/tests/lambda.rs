//! Item routes through real API Gateway events answer exactly as through the host, including
//! path parameters, query strings, base64 bodies and a REST API stage prefix; and the cursor
//! format (this is the crate's one test binary).
#![allow(clippy::unwrap_used)]

use serde_json::json;
use shared::testing::{self, Call};

#[tokio::test]
async fn gateway_events_match_the_host() {
    let state = testing::state().await;
    let app = || shared::http::app(fn_items::router(), state.clone());
    let (_, token) = testing::user_with_token(&state).await;
    let (_, stranger) = testing::user_with_token(&state).await;

    let create = Call::new("POST", "/v1/items")
        .bearer(&token)
        .json(json!({"title": "t", "description": "d"}));
    let r = testing::assert_lambda_matches_host(app, &create).await;
    assert_eq!(r.status, 201);
    let path = format!("/v1/items/{}", r.body["id"].as_str().unwrap());

    let r = testing::assert_lambda_matches_host(app, &Call::new("GET", &path).bearer(&token)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["title"], "t");
    let r = testing::assert_lambda_matches_host(
        app,
        &Call::new("GET", "/v1/items?limit=2").bearer(&token),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    assert!(r.body["next_cursor"].is_string());
    let r = testing::assert_lambda_matches_host(
        app,
        &Call::new("GET", "/v1/items?limit=500").bearer(&token),
    )
    .await;
    assert_eq!(r.status, 400);

    for call in [
        Call::new("GET", &path).bearer(&stranger),
        Call::new("GET", &path),
        Call::new("PATCH", &path)
            .bearer(&token)
            .json(json!({"title": ""})),
        Call::new("TRACE", "/v1/items").bearer(&token),
    ] {
        let r = testing::assert_lambda_matches_host(app, &call).await;
        assert!(r.status >= 400, "{call:?}");
        assert_eq!(r.body["request_id"], "lambda-parity-1");
    }
    let r = testing::assert_lambda_matches_host(
        app,
        &Call::new("PATCH", &path)
            .bearer(&token)
            .json(json!({"title": "u"})),
    )
    .await;
    assert_eq!(r.body["title"], "u");
}

/// `Idempotency-Key` through gateway events: the host's first POST creates the item and every
/// event source — plain and base64 bodies, a stage prefix — gets that response again; the same
/// key with another body is 422.
#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_through_gateway_events() {
    let state = testing::state().await;
    let app = || shared::http::app(fn_items::router(), state.clone());
    let (user_id, token) = testing::user_with_token(&state).await;
    let create = Call::new("POST", "/v1/items")
        .bearer(&token)
        .header("idempotency-key", "lambda-key-1")
        .json(json!({"title": "t", "description": "d"}));

    let first = testing::via_host(app(), &create).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let r = testing::assert_lambda_matches_host(app, &create).await;
    assert_eq!(r.body, first.body, "the very same item, id included");
    assert_eq!(r.headers["idempotent-replayed"], "true");
    for event in [
        testing::http_api_event(&create, "live"),
        testing::rest_api_event(&create, "prod"),
        testing::function_url_event(&create),
    ] {
        let r = testing::via_lambda(app(), event).await;
        assert_eq!((r.status, &r.body), (201, &first.body));
        assert_eq!(r.headers["idempotent-replayed"], "true");
    }
    let items = shared::repo::items::list(&state.db, user_id, None, 10)
        .await
        .unwrap();
    assert_eq!(items.len(), 1);

    let other = Call::new("POST", "/v1/items")
        .bearer(&token)
        .header("idempotency-key", "lambda-key-1")
        .json(json!({"title": "another"}));
    let r = testing::assert_lambda_matches_host(app, &other).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["type"],
        "https://basalt.dev/problems/idempotency-key-reused"
    );
}

/// The chain's rate limiting and CORS through gateway events: the client IP comes from the
/// event's request context, the budget from Redis, and a 429 keeps CORS headers and the id.
#[tokio::test]
async fn rate_limits_and_cors_apply_to_gateway_events() {
    let state = testing::state_with(|mut c| {
        c.rate_limit.redis_url = Some(testing::redis_url().into());
        c.rate_limit.redis_key_prefix = testing::redis_key_prefix();
        c.rate_limit.limits.default = "3/60".parse().unwrap();
        c
    })
    .await;
    let app = || shared::http::app(fn_items::router(), state.clone());
    let (_, token) = testing::user_with_token(&state).await;
    let call = Call::new("GET", "/v1/items")
        .bearer(&token)
        .header("origin", "http://localhost:5173");

    let mut statuses = Vec::new();
    for i in 0..4 {
        let event = if i % 2 == 0 {
            testing::http_api_event(&call, "$default")
        } else {
            testing::rest_api_event(&call, "prod")
        };
        let r = testing::via_lambda(app(), event).await;
        assert_eq!(
            r.headers["access-control-allow-origin"],
            "http://localhost:5173"
        );
        assert_eq!(r.headers["ratelimit-limit"], "3");
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.request_id.as_deref(), Some("lambda-parity-1"));
            assert_eq!(r.body["request_id"], "lambda-parity-1");
            assert!(r.headers["retry-after"].parse::<u64>().unwrap() >= 1);
        }
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "one budget whichever gateway delivers"
    );

    // Anonymous callers are limited by the source IP the gateway saw.
    let anon = Call::new("GET", "/v1/items");
    for expected in [401, 401, 401, 429] {
        let r = testing::via_lambda(app(), testing::http_api_event(&anon, "$default")).await;
        assert_eq!(r.status, expected);
    }
    // A different client IP has its own budget.
    let mut other = testing::http_api_event(&anon, "$default");
    other["requestContext"]["http"]["sourceIp"] = json!("203.0.113.77");
    assert_eq!(testing::via_lambda(app(), other).await.status, 401);

    // A preflight is answered without credentials.
    let preflight = Call::new("OPTIONS", "/v1/items")
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST");
    let r = testing::via_lambda(app(), testing::http_api_event(&preflight, "$default")).await;
    assert!(r.status < 300, "{}", r.status);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
}

/// A Lambda container: one small pool created with the state (outside the handler), reused by
/// every invocation; no database connection until the first query; a connection killed while
/// the container sat idle (frozen) is replaced, not surfaced as a 500.
#[tokio::test]
async fn a_container_reuses_one_small_lazy_pool_across_invocations() {
    let state = testing::state_with(|mut c| {
        c.database.pool_max = 2; // the Lambda default (`Config::from_env(Runtime::Lambda)`)
        c
    })
    .await;
    let (_, token) = testing::user_with_token(&state).await;
    // A fresh state for the "container": building it opens no connection.
    let container = shared::AppState::with_db(
        state.config.clone(),
        shared::db::Db::new(&state.config.database).unwrap(),
    )
    .unwrap();
    assert_eq!(
        container.db.status().size,
        0,
        "cold start must not wait for the database"
    );
    let app = shared::http::app(fn_items::router(), container.clone());

    let call = Call::new("GET", "/v1/items").bearer(&token);
    for i in 0..40 {
        let event = if i % 2 == 0 {
            testing::http_api_event(&call, "$default")
        } else {
            testing::rest_api_event(&call, "prod")
        };
        assert_eq!(testing::via_lambda(app.clone(), event).await.status, 200);
    }
    assert!(
        container.db.status().size <= 2,
        "{:?}",
        container.db.status()
    );
    // Every session on this database: the container's, the test's own pool's, the counter.
    let expected = (container.db.status().size + state.db.status().size + 1) as i64;
    assert_eq!(
        testing::backends(state.config.database.url()).await,
        expected
    );

    // The container is frozen; meanwhile the database drops its connections.
    assert!(testing::terminate_connections(state.config.database.url()).await >= 1);
    for _ in 0..5 {
        let r = testing::via_lambda(app.clone(), testing::http_api_event(&call, "$default")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    assert!(container.db.status().size <= 2);
}

#[test]
fn cursor_round_trips_and_rejects_garbage() {
    let id = uuid::Uuid::now_v7();
    assert_eq!(
        fn_items::decode_cursor(&fn_items::encode_cursor(id)),
        Some(id)
    );
    assert_eq!(fn_items::decode_cursor("not a cursor"), None);
    assert_eq!(fn_items::decode_cursor("AAAA"), None);
}
