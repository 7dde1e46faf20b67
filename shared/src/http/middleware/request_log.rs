//! The request span and the one log line per request (tower-http's `TraceLayer` calls these).

use std::time::Duration;

use axum::{body::Body, extract::MatchedPath, response::Response};
use tracing::Span;

use super::request_id::REQUEST_ID;
use crate::http::request_context::InvocationIds;

/// The span every log line of a request is emitted in. Only identifiers: never headers,
/// bodies or query strings, which may carry secrets.
pub fn request_span(req: &http::Request<Body>) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        request_id,
        method = %req.method(),
        route,
        principal = tracing::field::Empty,
        apigw_request_id = tracing::field::Empty,
        lambda_request_id = tracing::field::Empty,
    );
    // In Lambda, the gateway's and the invocation's ids tie our lines to AWS's own logs.
    if let Some(ids) = req.extensions().get::<InvocationIds>() {
        if let Some(id) = &ids.gateway_request_id {
            span.record("apigw_request_id", id.as_str());
        }
        if let Some(id) = &ids.invocation_id {
            span.record("lambda_request_id", id.as_str());
        }
    }
    span
}

pub fn log_response(response: &Response, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        duration_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
}
