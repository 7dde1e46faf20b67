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
