//! `X-Request-Id`: an incoming id is kept only when it is a sane token; tower-http's layers
//! then set a new UUID where there is none and echo it on every response.

use http::{HeaderName, Request};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether an incoming request id may be reused: short, and only characters that are safe in
/// logs and headers (no injection into log lines or downstream systems).
pub fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Drops an incoming `X-Request-Id` that is not a sane token, so a new one replaces it. A
/// plain function of the request (a `tower` `map_request`): nothing to box or await.
pub fn sanitize_request_id<B>(mut req: Request<B>) -> Request<B> {
    let sane = req
        .headers()
        .get(&REQUEST_ID)
        .map(|v| v.to_str().is_ok_and(is_sane_request_id));
    if sane == Some(false) {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}
