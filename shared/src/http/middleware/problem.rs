//! The layer that renders every error response as problem+json: the only writer of that
//! format in the workspace.

use axum::{body::Body, extract::Request, middleware::Next, response::Response};
use http::{HeaderValue, StatusCode, header};

use super::request_id::REQUEST_ID;
use crate::error::{OUTCOME_UNKNOWN, PROBLEM_JSON, Problem, WRITE_TIMED_OUT};

/// Renders every error response as problem+json carrying the request id: an `ApiError`'s
/// [`Problem`] from the response extensions, or one derived from the status for the bare
/// error responses of axum and tower-http (405, 408, 413, 500 after a panic).
pub async fn problem_details(req: Request, next: Next) -> Response {
    // A shared handle on the header's bytes: read as text only for an error response.
    let request_id = req.headers().get(&REQUEST_ID).cloned();
    let write = !req.method().is_safe();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, _body) = response.into_parts();
    let mut problem = parts
        .extensions
        .remove::<Problem>()
        .unwrap_or_else(|| bare_problem(status, write));
    problem.request_id = request_id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
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

/// The problem for a bare error response. A write that timed out may have been abandoned
/// while its `COMMIT` was in flight, and that commit can still succeed: the client must not
/// take the 408 for "nothing happened".
fn bare_problem(status: StatusCode, write: bool) -> Problem {
    if status == StatusCode::REQUEST_TIMEOUT && write {
        Problem::of_type(status, OUTCOME_UNKNOWN, WRITE_TIMED_OUT)
    } else {
        Problem::from_status(status)
    }
}
