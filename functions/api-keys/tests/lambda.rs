//! API key routes through real API Gateway events answer exactly as through the host.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use shared::testing::{self, Call};

#[tokio::test]
async fn gateway_events_match_the_host() {
    let state = testing::state().await;
    let app = || shared::http::app(fn_api_keys::router(), state.clone());
    let (_, token) = testing::user_with_token(&state).await;

    let create = Call::new("POST", "/v1/api-keys")
        .bearer(&token)
        .json(json!({"name": "ci"}));
    let r = testing::assert_lambda_matches_host(app, &create).await;
    assert_eq!(r.status, 201);
    let key = r.body["key"].as_str().unwrap().to_owned();

    // The key itself authenticates through every event source, in either header.
    let list = Call::new("GET", "/v1/api-keys").header("x-api-key", &key);
    let r = testing::assert_lambda_matches_host(app, &list).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        6,
        "one key per path: the host and five event sources"
    );
    let list = Call::new("GET", "/v1/api-keys").bearer(&key);
    assert_eq!(
        testing::assert_lambda_matches_host(app, &list).await.status,
        200
    );

    let missing = format!("/v1/api-keys/{}", uuid::Uuid::now_v7());
    assert_eq!(
        testing::assert_lambda_matches_host(app, &Call::new("DELETE", &missing).bearer(&token))
            .await
            .status,
        404
    );
    let bad = Call::new("POST", "/v1/api-keys")
        .bearer(&token)
        .json(json!({"name": ""}));
    assert_eq!(
        testing::assert_lambda_matches_host(app, &bad).await.status,
        422
    );
}
