//! Item routes through real API Gateway events answer exactly as through the host, including
//! path parameters, query strings, base64 bodies and a REST API stage prefix.
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
