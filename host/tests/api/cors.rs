//! CORS: preflights answered before auth and only for listed origins, exposed headers, and CORS
//! headers on a 429.

use reqwest::Method;

use crate::helpers::{TestApp, header, spawn_app, spawn_app_with, with_redis};

#[tokio::test]
async fn cors_preflight_is_answered_before_auth_and_only_for_listed_origins() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}/v1/items", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let res = preflight("http://localhost:5173").await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    assert!(h.contains_key("x-request-id"));

    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // Actual requests: exposed headers for the listed origin, nothing for others.
    let user = app.user().await;
    let get_from = |origin: &'static str| {
        app.http
            .get(format!("{}/v1/items", app.base))
            .bearer_auth(&user.token)
            .header("origin", origin)
            .send()
    };
    let res = get_from("http://localhost:5173").await.unwrap();
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in [
        "x-request-id",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
    ] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
    let res = get_from("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_429_carries_cors_headers_and_the_request_id() {
    let app = spawn_app_with(with_redis(1)).await;
    let user = app.user().await;
    let send = || {
        app.http
            .get(format!("{}/v1/items", app.base))
            .bearer_auth(&user.token)
            .header("origin", "http://localhost:5173")
            .header("x-request-id", "order-test-429")
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    let r = TestApp::reply(send().await.unwrap()).await;
    r.assert_problem(429);
    assert_eq!(r.request_id(), "order-test-429");
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        "http://localhost:5173"
    );
    assert!(header(&r, "retry-after").parse::<u64>().is_ok());
}
