//! Real Lambda events for one request: the SAM-generated samples in `events/`, edited to
//! carry the request's method, path, query, headers and body.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Map, Value, json};

const HTTP_API_EVENT: &str = include_str!("../../../events/apigw-http-v2.json");
const REST_API_EVENT: &str = include_str!("../../../events/apigw-rest-v1.json");
const ALB_EVENT: &str = include_str!("../../../events/alb.json");
const FUNCTION_URL_EVENT: &str = include_str!("../../../events/function-url.json");

/// One HTTP request, described once and replayed through every path.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    /// Path with an optional query string.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Call {
    pub fn new(method: &'static str, uri: impl Into<String>) -> Self {
        Self {
            method,
            uri: uri.into(),
            // A fixed id makes every path's answer comparable, including the echo.
            headers: vec![("x-request-id".into(), "lambda-parity-1".into())],
            body: None,
        }
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self.header("content-type", "application/json")
    }

    pub(super) fn split_uri(&self) -> (&str, &str) {
        self.uri.split_once('?').unwrap_or((&self.uri, ""))
    }
}

/// The query string as the single-value map API Gateway and ALB send (last value wins).
fn query_map(query: &str) -> Value {
    let params: Map<String, Value> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    Value::Object(params)
}

/// Sets the request line and headers of a payload-2.0 event (HTTP API, function URL).
fn payload_v2(mut event: Value, call: &Call, raw_path: &str, base64_body: bool) -> Value {
    let (_, query) = call.split_uri();
    event["rawPath"] = json!(raw_path);
    event["rawQueryString"] = json!(query);
    event["queryStringParameters"] = if query.is_empty() {
        Value::Null
    } else {
        query_map(query)
    };
    event["requestContext"]["http"]["method"] = json!(call.method);
    event["requestContext"]["http"]["path"] = json!(raw_path);
    event["cookies"] = json!([]);
    let headers = event["headers"].as_object_mut().unwrap();
    for (k, v) in &call.headers {
        headers.insert(k.to_lowercase(), json!(v));
    }
    match &call.body {
        Some(body) if base64_body => {
            event["body"] = json!(B64.encode(body));
            event["isBase64Encoded"] = json!(true);
        }
        Some(body) => {
            event["body"] = json!(body);
            event["isBase64Encoded"] = json!(false);
        }
        None => {
            event["body"] = Value::Null;
            event["isBase64Encoded"] = json!(false);
        }
    }
    event
}

/// An API Gateway HTTP API (payload 2.0) event for `call`, on `stage` (`$default` or named;
/// a named stage appears in `rawPath`, as API Gateway sends it). Plain-text body.
pub fn http_api_event(call: &Call, stage: &str) -> Value {
    let (path, _) = call.split_uri();
    let raw_path = if stage == "$default" {
        path.to_owned()
    } else {
        format!("/{stage}{path}")
    };
    let mut event = payload_v2(
        serde_json::from_str(HTTP_API_EVENT).unwrap(),
        call,
        &raw_path,
        false,
    );
    event["requestContext"]["stage"] = json!(stage);
    event
}

/// A Lambda function URL event for `call` (payload 2.0, no stage); the body base64-encoded.
pub fn function_url_event(call: &Call) -> Value {
    let (path, _) = call.split_uri();
    payload_v2(
        serde_json::from_str(FUNCTION_URL_EVENT).unwrap(),
        call,
        path,
        true,
    )
}

/// An API Gateway REST API (payload 1.0) event for `call` on a named stage, with every header
/// also in `multiValueHeaders` and the body base64-encoded, as API Gateway does for binary
/// media types.
pub fn rest_api_event(call: &Call, stage: &str) -> Value {
    let mut event: Value = serde_json::from_str(REST_API_EVENT).unwrap();
    let (path, query) = call.split_uri();
    event["path"] = json!(path);
    event["httpMethod"] = json!(call.method);
    event["pathParameters"] = json!({"proxy": path.trim_start_matches('/')});
    event["requestContext"]["stage"] = json!(stage);
    event["requestContext"]["path"] = json!(format!("/{stage}{path}"));
    event["requestContext"]["httpMethod"] = json!(call.method);
    for (k, v) in &call.headers {
        event["headers"][k] = json!(v);
        event["multiValueHeaders"][k] = json!([v]);
    }
    if query.is_empty() {
        event["queryStringParameters"] = Value::Null;
        event["multiValueQueryStringParameters"] = Value::Null;
    } else {
        let single = query_map(query);
        let multi: Map<String, Value> = single
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), json!([v])))
            .collect();
        event["queryStringParameters"] = single;
        event["multiValueQueryStringParameters"] = Value::Object(multi);
    }
    match &call.body {
        Some(body) => {
            event["body"] = json!(B64.encode(body));
            event["isBase64Encoded"] = json!(true);
        }
        None => {
            event["body"] = Value::Null;
            event["isBase64Encoded"] = json!(false);
        }
    }
    event
}

/// An Application Load Balancer event for `call` (single-value headers, plain body).
pub fn alb_event(call: &Call) -> Value {
    let mut event: Value = serde_json::from_str(ALB_EVENT).unwrap();
    let (path, query) = call.split_uri();
    event["path"] = json!(path);
    event["httpMethod"] = json!(call.method);
    event["queryStringParameters"] = if query.is_empty() {
        json!({})
    } else {
        query_map(query)
    };
    for (k, v) in &call.headers {
        event["headers"][k.to_lowercase()] = json!(v);
    }
    event["body"] = json!(call.body.clone().unwrap_or_default());
    event["isBase64Encoded"] = json!(false);
    event
}
