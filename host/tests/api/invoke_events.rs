//! The checked-in Lambda events behind the README's `cargo lambda invoke` examples.

use serde_json::json;
use shared::{AppState, testing};

/// The events behind the README's `cargo lambda invoke` examples: HTTP API events made from the
/// SAM CLI sample by changing only method, path, headers and body, checked in under
/// `events/invoke/`, and answered as the README says when replayed in its order through each
/// function's Lambda entry point. `BASALT_UPDATE_EVENTS=1` rewrites the files.
#[tokio::test]
async fn the_checked_in_invoke_events_are_current_and_answer_as_documented() {
    const TOKEN: &str = "REPLACE_WITH_TOKEN";
    let credentials =
        json!({"email": "dev@example.com", "password": "correct horse battery staple"});
    let call = |method, uri: &str| {
        let mut call = testing::Call::new(method, uri);
        call.headers.clear(); // each invocation gets its own request id
        call
    };
    type RouterFn = fn() -> axum::Router<AppState>;
    let cases: Vec<(&str, RouterFn, testing::Call, u16)> = vec![
        (
            "health-ready",
            fn_health::router,
            call("GET", "/ready"),
            200,
        ),
        (
            "auth-register",
            fn_auth::router,
            call("POST", "/v1/auth/register").json(credentials.clone()),
            201,
        ),
        (
            "auth-token",
            fn_auth::router,
            call("POST", "/v1/auth/token").json(credentials),
            200,
        ),
        (
            "users-me",
            fn_users::router,
            call("GET", "/v1/users/me").bearer(TOKEN),
            200,
        ),
        (
            "api-keys-create",
            fn_api_keys::router,
            call("POST", "/v1/api-keys")
                .bearer(TOKEN)
                .json(json!({"name": "laptop"})),
            201,
        ),
        (
            "items-create",
            fn_items::router,
            call("POST", "/v1/items").bearer(TOKEN).json(
                json!({"title": "first item", "description": "created by cargo lambda invoke"}),
            ),
            201,
        ),
        (
            "items-list",
            fn_items::router,
            call("GET", "/v1/items?limit=10").bearer(TOKEN),
            200,
        ),
    ];

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/invoke");
    let update = std::env::var_os("BASALT_UPDATE_EVENTS").is_some();
    let state = testing::state().await;
    let mut token = None;
    for (name, router, call, status) in cases {
        let event = testing::http_api_event(&call, "$default");
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(&event).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == text,
            "events/invoke/{name}.json is stale: run `BASALT_UPDATE_EVENTS=1 scripts/test -p host invoke_events`"
        );
        let app = || shared::http::app(router(), state.clone());
        if checked_in.contains(TOKEN) {
            // As the README shows it: without a real token the function denies the call...
            let r = testing::via_lambda(app(), event).await;
            assert_eq!(r.status, 401, "{name} without a token: {}", r.body);
        }
        // ...and with the token from `auth-token` substituted, it answers as documented.
        let substituted = checked_in.replace(TOKEN, token.as_deref().unwrap_or(TOKEN));
        let r = testing::via_lambda(app(), serde_json::from_str(&substituted).unwrap()).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert!(r.request_id.is_some(), "{name} echoes a request id");
        if name == "auth-token" {
            token = Some(r.body["access_token"].as_str().unwrap().to_owned());
        }
    }
}
