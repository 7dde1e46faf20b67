//! The shared chain in front of every route: default-deny authentication, request ids, and the
//! edge errors (unknown route, 405, 413).

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

#[tokio::test]
async fn default_deny_request_ids_and_edge_errors() {
    let app = spawn_app().await;
    let user = app.user().await;

    // An unknown route is 401 to strangers (no route discovery) and 404 to users.
    app.send(Method::GET, "/v1/secret-admin", None, None)
        .await
        .assert_problem(401);
    app.get("/v1/secret-admin", &user.token)
        .await
        .assert_problem(404);

    // A sane incoming request id is echoed, in the header and the problem body.
    let res = app
        .http
        .get(format!("{}/v1/items", app.base))
        .header("x-request-id", "trace-abc.123_X")
        .send()
        .await
        .unwrap();
    let r = TestApp::reply(res).await;
    assert_eq!(r.request_id(), "trace-abc.123_X");
    r.assert_problem(401);
    // An unsafe or over-long one is replaced with a fresh UUID.
    for bad in ["has space", "quote\"", &"a".repeat(129)] {
        let res = app
            .http
            .get(format!("{}/health", app.base))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.parse::<Uuid>().is_ok(), "{bad:?} → {id}");
    }
    // Success responses carry one too.
    let r = app.get("/v1/items", &user.token).await;
    assert!(r.request_id().parse::<Uuid>().is_ok());

    // Unsupported methods: 405 with Allow, as problem+json.
    let r = app
        .send(Method::TRACE, "/v1/items", Some(&user.token), None)
        .await;
    r.assert_problem(405);
    let allow = r.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    app.send(Method::PUT, "/health", None, None)
        .await
        .assert_problem(401);

    // Bodies over the limit (1 MiB by default) are refused before the handler.
    let big = json!({"title": "x", "description": "y".repeat(2 * 1024 * 1024)});
    app.post("/v1/items", &user.token, big)
        .await
        .assert_problem(413);

    // The OpenAPI document and docs page are public.
    let r = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    let res = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn every_protected_operation_refuses_anonymous_callers() {
    let app = spawn_app().await;
    let doc = app
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let some_id = Uuid::now_v7().to_string();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", &some_id)
            .replace("{delivery_id}", &some_id);
        for method in ops.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            if shared::http::is_public(&method, path) {
                continue;
            }
            let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
            for token in [None, Some("not-a-token"), Some("bsk_short")] {
                let r = app
                    .send(method.clone(), &concrete, token, body.clone())
                    .await;
                assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.body);
                r.assert_problem(401);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
}
