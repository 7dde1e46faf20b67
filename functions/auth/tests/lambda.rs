//! Register and token through real API Gateway events answer exactly as through the host.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use shared::testing::{self, Call};

#[tokio::test]
async fn gateway_events_match_the_host() {
    let state = testing::state().await;
    let app = || shared::http::app(fn_auth::router(), state.clone());

    // Each path registers its own account, so use a fresh email per call.
    let host = testing::via_host(
        app(),
        &Call::new("POST", "/v1/auth/register")
            .json(json!({"email": "host@example.com", "password": "long enough"})),
    )
    .await;
    assert_eq!(host.status, 201);
    for (i, event) in [
        testing::http_api_event(
            &Call::new("POST", "/v1/auth/register")
                .json(json!({"email": "v2@example.com", "password": "long enough"})),
            "$default",
        ),
        testing::rest_api_event(
            &Call::new("POST", "/v1/auth/register")
                .json(json!({"email": "v1@example.com", "password": "long enough"})),
            "prod",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let lambda = testing::via_lambda(app(), event).await;
        assert_eq!(lambda.status, 201, "event {i}: {:?}", lambda.body);
        assert_eq!(
            testing::without_volatile(lambda.body.clone()),
            testing::without_volatile(host.body.clone())
                .as_object()
                .map(|m| {
                    let mut m = m.clone();
                    m.insert("email".into(), lambda.body["email"].clone());
                    serde_json::Value::Object(m)
                })
                .unwrap()
        );
    }

    let login = Call::new("POST", "/v1/auth/token")
        .json(json!({"email": "v1@example.com", "password": "long enough"}));
    let r = testing::assert_lambda_matches_host(app, &login).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["token_type"], "Bearer");
    // The headers browsers rely on reach API Gateway's response too.
    let lambda = testing::via_lambda(app(), testing::http_api_event(&login, "$default")).await;
    for outcome in [&r, &lambda] {
        assert_eq!(outcome.headers["cache-control"], "no-store", "{outcome:?}");
        assert_eq!(
            outcome.headers["x-content-type-options"], "nosniff",
            "{outcome:?}"
        );
    }

    let bad = Call::new("POST", "/v1/auth/token")
        .json(json!({"email": "v1@example.com", "password": "wrong password"}));
    assert_eq!(
        testing::assert_lambda_matches_host(app, &bad).await.status,
        401
    );
    let duplicate = Call::new("POST", "/v1/auth/register")
        .json(json!({"email": "HOST@example.com", "password": "long enough"}));
    assert_eq!(
        testing::assert_lambda_matches_host(app, &duplicate)
            .await
            .status,
        409
    );
    let invalid =
        Call::new("POST", "/v1/auth/register").json(json!({"email": "nope", "password": "x"}));
    let r = testing::assert_lambda_matches_host(app, &invalid).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["request_id"], "lambda-parity-1");
}
