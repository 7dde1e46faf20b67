//! The HTTP side: the middleware chain, assembled here and nowhere else, and what it needs to
//! know about requests.
//!
//! [`app`] wraps a router — one function's in Lambda, all of them merged in the host — in the
//! same layers, so the two ways of running cannot drift apart.
//!
//! - [`middleware`]: the chain's own layers (request id, request log, problem details, rate
//!   limit, auth), one module each.
//! - [`client_ip`]: the client's address, `X-Forwarded-For` behind trusted proxies.
//! - [`request_context`]: neutral request extensions a runtime sets (Lambda's gateway peer and
//!   ids).

pub mod client_ip;
pub mod middleware;
pub mod request_context;

use std::{any::Any, time::Duration};

use axum::{
    Router,
    body::Body,
    middleware::from_fn,
    response::{IntoResponse, Response},
};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::Span;

use self::middleware::{
    auth, problem, rate_limit,
    rate_limit::{RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET},
    request_id, request_log,
};
pub use self::middleware::{
    auth::{API_KEY_HEADER, PUBLIC_ROUTES, is_public},
    request_id::{REQUEST_ID, is_sane_request_id},
};
use crate::{
    config::HttpSettings,
    error::ApiError,
    idempotency::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED},
    state::AppState,
};

/// Wraps `router` in the shared chain and binds the state.
///
/// ```text
///  request ──► nosniff                 X-Content-Type-Options on every response
///              sanitize X-Request-Id   drop an incoming id that is not a sane token
///              set X-Request-Id        keep the caller's, else a new UUID
///              propagate X-Request-Id  echo it on every response, preflights included
///              CORS                    answer preflights; allow listed origins only
///              request log             one line per request, a span carrying the request id
///              problem details         every 4xx/5xx → problem+json with the request id
///              rate limit              GCRA per (principal, endpoint) → 429
///              catch panic             → 500
///              timeout                 → 408 (a write's: outcome unknown)
///              auth                    default deny; attaches the Principal
///              body limit              → 413
///              router / fallback       → 404
/// ```
///
/// Outermost first; each layer sees what the ones above let through, and every response
/// passes back out through all of them (so a 429 still gets CORS headers, a request id and a
/// log line). The order is asserted by the host's API tests (`host/tests/api/`).
///
/// `nosniff` is outermost so that nothing the chain answers escapes it: preflights (CORS),
/// problem responses, 404s and 429s alike. `Cache-Control: no-store` is not a layer: the
/// handlers whose responses carry a credential say so ([`crate::extract::NoStore`]).
pub fn app(router: Router<AppState>, state: AppState) -> Router {
    let settings = &state.config.http;
    let layers = ServiceBuilder::new()
        // Browsers must not reinterpret a JSON or problem body as HTML or script.
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .map_request(request_id::sanitize_request_id::<Body>)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(cors(settings))
        // The trace layer wraps the body type; CORS needs a body it can default for preflights.
        .map_response(IntoResponse::into_response)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_log::request_span as fn(&http::Request<Body>) -> Span)
                .on_request(())
                .on_response(request_log::log_response as fn(&Response, Duration, &Span))
                // 5xx causes are logged where the error is rendered; one line per request.
                .on_failure(()),
        )
        .layer(from_fn(problem::problem_details))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        // Innermost so the limited body goes straight to the routes, which accept any body
        // type; it only wraps the stream, so nothing is read before auth has run.
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes));
    router.fallback(not_found).layer(layers).with_state(state)
}

/// Credentials are allowed, so origins are an explicit list (config refuses `*`).
fn cors(settings: &HttpSettings) -> CorsLayer {
    let origins: Vec<HeaderValue> = settings
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(API_KEY_HEADER),
            REQUEST_ID,
            IDEMPOTENCY_KEY,
        ])
        .expose_headers([
            REQUEST_ID,
            RATELIMIT_LIMIT,
            RATELIMIT_REMAINING,
            RATELIMIT_RESET,
            header::RETRY_AFTER,
            IDEMPOTENT_REPLAYED,
        ])
        .max_age(Duration::from_secs(600))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = message, "handler panicked");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no resource at this path")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::{get, post};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::{error::PROBLEM_JSON, testing};

    /// The chain around throwaway routes, with a pool that never connects: these tests are
    /// about the layers, not the database. The routes sit on public paths so auth lets them in.
    fn chain(router: Router<AppState>) -> Router {
        let mut config = testing::config("postgres://nobody@127.0.0.1:1/none");
        config.http.request_timeout = Duration::from_millis(100);
        config.http.body_limit_bytes = 1024;
        app(router, AppState::new(config).unwrap())
    }

    async fn call(app: Router, req: http::Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
        let res = app.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn assert_problem(status: StatusCode, headers: &http::HeaderMap, body: &Value, expected: u16) {
        assert_eq!(status.as_u16(), expected, "{body}");
        assert_eq!(headers[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body["status"], expected);
        assert_eq!(body["request_id"], headers[&REQUEST_ID].to_str().unwrap());
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_generic_500_problem() {
        let app = chain(Router::new().route(
            "/health",
            get(|| async {
                #[allow(clippy::panic)]
                if true {
                    panic!("secret internals: password=hunter2");
                }
                "unreachable"
            }),
        ));
        let req = http::Request::get("/health").body(Body::empty()).unwrap();
        let (status, headers, body) = call(app, req).await;
        assert_problem(status, &headers, &body, 500);
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }

    #[tokio::test]
    async fn a_slow_handler_times_out_with_408() {
        let app = chain(Router::new().route(
            "/health",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        ));
        let req = http::Request::get("/health").body(Body::empty()).unwrap();
        let (status, headers, body) = call(app, req).await;
        assert_problem(status, &headers, &body, 408);
        assert_eq!(body["type"], "about:blank", "a read changed nothing");
    }

    #[tokio::test]
    async fn a_write_that_times_out_is_reported_as_outcome_unknown() {
        // The handler may have sent COMMIT when the timeout dropped it; the server can still
        // commit, so "408, try again" would invite a duplicate.
        let app = chain(Router::new().route(
            "/v1/auth/register",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        ));
        let req = http::Request::post("/v1/auth/register")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = call(app, req).await;
        assert_problem(status, &headers, &body, 408);
        assert_eq!(body["type"], crate::error::OUTCOME_UNKNOWN.uri);
        assert_eq!(body["title"], crate::error::OUTCOME_UNKNOWN.title);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("may or may not have been applied"),
            "{body}"
        );
        assert!(headers.get(header::RETRY_AFTER).is_none());
    }

    #[tokio::test]
    async fn oversized_bodies_are_413_whether_declared_or_streamed() {
        let echo = || {
            Router::new().route(
                "/v1/auth/register",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
        };
        let small = http::Request::post("/v1/auth/register")
            .body(Body::from("x".repeat(1000)))
            .unwrap();
        assert_eq!(chain(echo()).oneshot(small).await.unwrap().status(), 200);
        let declared = http::Request::post("/v1/auth/register")
            .body(Body::from("x".repeat(2000)))
            .unwrap();
        let (status, headers, body) = call(chain(echo()), declared).await;
        assert_problem(status, &headers, &body, 413);
        // No Content-Length: the limit still applies while the body streams in.
        let chunks = futures_stream(vec!["x".repeat(600), "x".repeat(600)]);
        let streamed = http::Request::post("/v1/auth/register")
            .body(Body::from_stream(chunks))
            .unwrap();
        let (status, headers, body) = call(chain(echo()), streamed).await;
        assert_problem(status, &headers, &body, 413);
    }

    fn futures_stream(
        chunks: Vec<String>,
    ) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send + 'static {
        futures_util::stream::iter(chunks.into_iter().map(Ok))
    }

    #[tokio::test]
    async fn incoming_request_ids_are_kept_only_when_sane() {
        let app = || chain(Router::new().route("/health", get(|| async { "ok" })));
        for (sent, kept) in [
            ("abc-123_X.y", true),
            ("", false),
            ("has space", false),
            ("new\nline", false),
            (&"a".repeat(128), true),
            (&"a".repeat(129), false),
        ] {
            let mut req = http::Request::get("/health");
            if let Ok(v) = HeaderValue::from_str(sent) {
                req = req.header(&REQUEST_ID, v);
            }
            let res = app()
                .oneshot(req.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let echoed = res.headers()[&REQUEST_ID].to_str().unwrap();
            assert_eq!(echoed == sent, kept, "{sent:?} → {echoed}");
            if !kept {
                assert!(uuid::Uuid::parse_str(echoed).is_ok());
            }
        }
    }
}
