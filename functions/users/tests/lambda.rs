//! `/v1/users/me` through real API Gateway events answers exactly as through the host.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use shared::testing::{self, Call};

#[tokio::test]
async fn gateway_events_match_the_host() {
    let state = testing::state().await;
    let app = || shared::http::app(fn_users::router(), state.clone());
    let (user_id, token) = testing::user_with_token(&state).await;

    let r =
        testing::assert_lambda_matches_host(app, &Call::new("GET", "/v1/users/me").bearer(&token))
            .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["id"], user_id.to_string());
    let r = testing::assert_lambda_matches_host(app, &Call::new("GET", "/v1/users/me")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.content_type.as_deref(), Some("application/problem+json"));
    let patch = Call::new("PATCH", "/v1/users/me")
        .bearer(&token)
        .json(json!({"password": "new password"}));
    assert_eq!(
        testing::assert_lambda_matches_host(app, &patch)
            .await
            .status,
        422
    );
    let patch = Call::new("PATCH", "/v1/users/me")
        .bearer(&token)
        .json(json!({}));
    assert_eq!(
        testing::assert_lambda_matches_host(app, &patch)
            .await
            .status,
        200
    );
}
