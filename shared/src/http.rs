//! The middleware chain, assembled here and nowhere else.
//!
//! [`app`] wraps a router — one function's in Lambda, all of them merged in the host — in the
//! same layers, so the two ways of running cannot drift apart.

use std::any::Any;

use axum::{
    Router,
    body::Body,
    extract::Request,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http::{HeaderName, HeaderValue, StatusCode, header};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
};

use crate::{
    auth,
    error::{ApiError, PROBLEM_JSON, Problem},
    state::AppState,
};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;

/// Wraps `router` in the shared chain and binds the state.
///
/// ```text
///            request                                            response
///               │                                                  ▲
///   ┌───────────▼──────────────────────────────────────────────────┴───────┐
///   │ sanitize X-Request-Id (drop an incoming id that is not a sane token)  │
///   │ ┌─────────────────────────────────────────────────────────────────┐   │
///   │ │ set X-Request-Id (keep the caller's, else a new UUID)           │   │
///   │ │ ┌─────────────────────────────────────────────────────────────┐ │   │
///   │ │ │ propagate X-Request-Id onto the response                    │ │   │
///   │ │ │ ┌─────────────────────────────────────────────────────────┐ │ │   │
///   │ │ │ │ problem details: every 4xx/5xx → problem+json + req. id │ │ │   │
///   │ │ │ │ ┌─────────────────────────────────────────────────────┐ │ │ │   │
///   │ │ │ │ │ catch panic → 500                                   │ │ │ │   │
///   │ │ │ │ │ ┌─────────────────────────────────────────────────┐ │ │ │ │   │
///   │ │ │ │ │ │ timeout → 408                                   │ │ │ │ │   │
///   │ │ │ │ │ │ ┌─────────────────────────────────────────────┐ │ │ │ │ │   │
///   │ │ │ │ │ │ │ auth: default deny, Principal attached      │ │ │ │ │ │   │
///   │ │ │ │ │ │ │ ┌─────────────────────────────────────────┐ │ │ │ │ │ │   │
///   │ │ │ │ │ │ │ │ body limit → 413                        │ │ │ │ │ │ │   │
///   │ │ │ │ │ │ │ │            router / fallback            │ │ │ │ │ │ │   │
/// ```
///
/// Issue 3 adds CORS, request logging and rate limiting outside auth.
pub fn app(router: Router<AppState>, state: AppState) -> Router {
    let config = &state.config;
    let layers = ServiceBuilder::new()
        .layer(middleware::from_fn(sanitize_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(middleware::from_fn(problem_details))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        // Innermost so the limited body goes straight to the routes, which accept any body
        // type; it only wraps the stream, so nothing is read before auth has run.
        .layer(RequestBodyLimitLayer::new(config.body_limit_bytes));
    router.fallback(not_found).layer(layers).with_state(state)
}

/// Whether an incoming request id may be reused: short, and only characters that are safe in
/// logs and headers (no injection into log lines or downstream systems).
pub fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    let sane = req
        .headers()
        .get(&REQUEST_ID)
        .map(|v| v.to_str().is_ok_and(is_sane_request_id));
    if sane == Some(false) {
        req.headers_mut().remove(&REQUEST_ID);
    }
    next.run(req).await
}

/// Renders every error response as problem+json carrying the request id: an [`ApiError`]'s
/// [`Problem`] from the response extensions, or one derived from the status for the bare
/// error responses of axum and tower-http (405, 408, 413, 500 after a panic).
async fn problem_details(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let mut problem = parts
        .extensions
        .remove::<Problem>()
        .unwrap_or_else(|| Problem::from_status(status));
    problem.request_id = request_id;
    let body = match serde_json::to_vec(&problem) {
        Ok(body) => body,
        Err(_) => br#"{"type":"about:blank","title":"Error"}"#.to_vec(),
    };
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
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
