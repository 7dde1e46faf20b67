//! The health routes through real API Gateway events answer exactly as through the host.
#![allow(clippy::unwrap_used)]

use shared::testing::{self, Call};

#[tokio::test]
async fn gateway_events_match_the_host() {
    let state = testing::state().await;
    let app = || shared::http::app(fn_health::router(), state.clone());
    let r = testing::assert_lambda_matches_host(app, &Call::new("GET", "/health")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    let r = testing::assert_lambda_matches_host(app, &Call::new("GET", "/ready")).await;
    assert_eq!(r.status, 200);
    // Routes of other functions are not here, and unknown paths are still default-deny.
    let r = testing::assert_lambda_matches_host(app, &Call::new("GET", "/v1/items")).await;
    assert_eq!(r.status, 401);
    let r = testing::assert_lambda_matches_host(app, &Call::new("POST", "/health")).await;
    assert_eq!(r.status, 401);
}

/// In Lambda the health function also serves the API description: the checked-in document
/// and a docs page, publicly, through every event source.
#[tokio::test]
async fn the_api_description_is_served_publicly() {
    let state = testing::state().await;
    let app = || {
        shared::http::app(
            fn_health::router().merge(fn_health::docs_router()),
            state.clone(),
        )
    };
    let r = testing::assert_lambda_matches_host(app, &Call::new("GET", "/openapi.json")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert!(r.body["paths"]["/v1/items/{id}"].is_object());
    let r = testing::via_lambda(
        app(),
        testing::http_api_event(&Call::new("GET", "/docs"), "$default"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.unwrap().starts_with("text/html"));
}
