//! Webhook routes through real API Gateway events answer exactly as through the host.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use shared::testing::{self, Call};

#[tokio::test]
async fn gateway_events_match_the_host() {
    let state = testing::state().await;
    let app = || shared::http::app(fn_webhooks::router(), state.clone());
    let (_, token) = testing::user_with_token(&state).await;

    let create = Call::new("POST", "/v1/webhooks")
        .bearer(&token)
        .json(json!({"url": "https://93.184.216.34/hook", "events": ["item.created"]}));
    let r = testing::assert_lambda_matches_host(app, &create).await;
    assert_eq!(r.status, 201);
    assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));

    let list = Call::new("GET", "/v1/webhooks").bearer(&token);
    let r = testing::assert_lambda_matches_host(app, &list).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        6,
        "one endpoint per path: the host and five event sources"
    );

    let missing = format!("/v1/webhooks/{}", uuid::Uuid::now_v7());
    let get = Call::new("GET", &missing).bearer(&token);
    assert_eq!(
        testing::assert_lambda_matches_host(app, &get).await.status,
        404
    );
    let refused = Call::new("POST", "/v1/webhooks")
        .bearer(&token)
        .json(json!({"url": "https://169.254.169.254/", "events": ["item.created"]}));
    assert_eq!(
        testing::assert_lambda_matches_host(app, &refused)
            .await
            .status,
        422
    );
}
