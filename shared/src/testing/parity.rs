//! Host-vs-Lambda parity: the same [`Call`] through the host path and through every event
//! source, compared whole.

use axum::{Router, body::Body};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::events::{Call, alb_event, function_url_event, http_api_event, rest_api_event};

/// What came back, in a form both paths share.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub content_type: Option<String>,
    pub request_id: Option<String>,
    pub body: Value,
    /// Every response header, names lower-cased, repeated values joined with ", ".
    pub headers: std::collections::BTreeMap<String, String>,
}

fn parse_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into()))
    }
}

/// The host path: the router behind the chain, called in-process.
pub async fn via_host(app: Router, call: &Call) -> Outcome {
    let mut req = http::Request::builder().method(call.method).uri(&call.uri);
    for (k, v) in &call.headers {
        req = req.header(k, v);
    }
    let req = req
        .body(
            call.body
                .clone()
                .map(Body::from)
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (content_type, request_id) = (header("content-type"), header("x-request-id"));
    let mut headers = std::collections::BTreeMap::<String, String>::new();
    for (name, value) in res.headers() {
        let value = value.to_str().unwrap().to_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| *v = format!("{v}, {value}"))
            .or_insert(value);
    }
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    Outcome {
        status,
        content_type,
        request_id,
        body: parse_body(&bytes),
        headers,
    }
}

/// The Lambda path: the event through `shared::lambda::handler`, the entry point `main` runs.
pub async fn via_lambda(app: Router, event: Value) -> Outcome {
    let response = crate::lambda::invoke(app, event).await.unwrap();
    let header = |name: &str| -> Option<String> {
        let find = |map: &Value| {
            map.as_object().and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| match v {
                        Value::Array(a) => a[0].as_str().unwrap().to_owned(),
                        other => other.as_str().unwrap().to_owned(),
                    })
            })
        };
        find(&response["headers"]).or_else(|| find(&response["multiValueHeaders"]))
    };
    let mut headers = std::collections::BTreeMap::<String, String>::new();
    for source in ["headers", "multiValueHeaders"] {
        for (name, value) in response[source].as_object().into_iter().flatten() {
            let value = match value {
                Value::Array(values) => values
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.as_str().unwrap().to_owned(),
            };
            headers.entry(name.to_lowercase()).or_insert(value);
        }
    }
    let raw = response["body"].as_str().unwrap_or_default();
    let bytes = if response["isBase64Encoded"] == json!(true) {
        B64.decode(raw).unwrap()
    } else {
        raw.as_bytes().to_vec()
    };
    Outcome {
        status: response["statusCode"].as_u64().unwrap() as u16,
        content_type: header("content-type"),
        request_id: header("x-request-id"),
        body: parse_body(&bytes),
        headers,
    }
}

/// Replaces values that differ between two otherwise identical calls (new ids, timestamps,
/// secrets generated per call) so outcomes can be compared whole.
pub fn without_volatile(mut body: Value) -> Value {
    const VOLATILE: &[&str] = &[
        "id",
        "created_at",
        "updated_at",
        "last_used_at",
        "key",
        "prefix",
        "secret",
        "previous_secret_expires_at",
        "access_token",
        "next_cursor",
    ];
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if VOLATILE.contains(&k.as_str()) && !v.is_null() {
                        *v = json!("<volatile>");
                    } else {
                        walk(v);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut body);
    body
}

/// Sends `call` through the host path and through every event source — HTTP API on
/// `$default` and on a named stage, REST API on a named stage, ALB, function URL — asserts
/// that all answer alike, and returns the host's outcome.
pub async fn assert_lambda_matches_host(app: impl Fn() -> Router, call: &Call) -> Outcome {
    let host = via_host(app(), call).await;
    let events = [
        ("HTTP API $default", http_api_event(call, "$default")),
        ("HTTP API stage", http_api_event(call, "live")),
        ("REST API stage", rest_api_event(call, "prod")),
        ("ALB", alb_event(call)),
        ("function URL", function_url_event(call)),
    ];
    for (name, event) in events {
        let lambda = via_lambda(app(), event).await;
        assert_eq!(
            lambda.status, host.status,
            "{name} {} {}: {:?} vs host {:?}",
            call.method, call.uri, lambda.body, host.body
        );
        assert_eq!(
            lambda.content_type, host.content_type,
            "{name} {} {}",
            call.method, call.uri
        );
        assert_eq!(
            lambda.request_id, host.request_id,
            "{name} {} {}",
            call.method, call.uri
        );
        assert_eq!(
            without_volatile(lambda.body),
            without_volatile(host.body.clone()),
            "{name} {} {}",
            call.method,
            call.uri
        );
    }
    host
}
