//! The OpenAPI document: every route with its security and problem responses, and the
//! checked-in `openapi.json` kept identical to what the code generates.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn openapi_lists_every_route_with_security_and_problem_responses() {
    let app = spawn_app().await;
    let doc = app
        .send(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let expected = [
        ("/health", "get"),
        ("/ready", "get"),
        ("/v1/auth/register", "post"),
        ("/v1/auth/token", "post"),
        ("/v1/users/me", "get"),
        ("/v1/users/me", "patch"),
        ("/v1/users/me", "delete"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{id}", "delete"),
        ("/v1/items", "get"),
        ("/v1/items", "post"),
        ("/v1/items/{id}", "get"),
        ("/v1/items/{id}", "patch"),
        ("/v1/items/{id}", "delete"),
        ("/v1/webhooks", "post"),
        ("/v1/webhooks", "get"),
        ("/v1/webhooks/{id}", "get"),
        ("/v1/webhooks/{id}", "patch"),
        ("/v1/webhooks/{id}", "delete"),
        ("/v1/webhooks/{id}/rotate-secret", "post"),
        ("/v1/webhooks/{id}/test", "post"),
        ("/v1/webhooks/{id}/deliveries", "get"),
        ("/v1/webhooks/{id}/deliveries/{delivery_id}/retry", "post"),
    ];
    let mut count = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        count += ops.as_object().unwrap().len();
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                expected.contains(&(path.as_str(), method.as_str())),
                "undocumented extra {method} {path}"
            );
            let public = shared::http::is_public(&method.to_uppercase().parse().unwrap(), path);
            assert_eq!(
                op.get("security").is_none(),
                public,
                "{method} {path}: security"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses
                    .values()
                    .any(|r| r["content"].get("application/problem+json").is_some()),
                "{method} {path} documents no error response"
            );
            if !public {
                assert!(responses.contains_key("401"), "{method} {path}");
            }
        }
    }
    assert_eq!(count, expected.len());
    assert!(doc["paths"]["/v1/items"]["post"]["responses"]["201"].is_object());
    assert!(doc["paths"]["/v1/items/{id}"]["delete"]["responses"]["204"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn the_checked_in_openapi_json_matches_the_code() {
    // The Lambda health function serves this file, and the frontend's typed client is
    // generated from it: it must never drift from what the code describes.
    let (_, generated) = host::routes();
    let generated = serde_json::to_value(&*generated).unwrap();
    let checked_in: Value = serde_json::from_str(fn_health::OPENAPI_JSON).unwrap();
    assert!(
        generated == checked_in,
        "openapi.json is stale: run `cargo run -p host -- openapi > openapi.json`"
    );
}
