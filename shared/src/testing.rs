//! Test support (feature `test-support`): a fresh, migrated PostgreSQL database per test.
//!
//! Tests need a real server: `scripts/test` starts one and exports
//! `BASALT_TEST_DATABASE_URL`, an admin URL on which each test creates its own database, so
//! tests run in parallel without seeing each other's rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::Duration;

use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::{
    config::{Config, Runtime},
    db::Db,
    state::AppState,
};

pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret!";
pub const ADMIN_URL_VAR: &str = "BASALT_TEST_DATABASE_URL";

/// The admin URL, or a panic that says how to get one: a missing database is a failing test
/// with a hint, never a silent skip.
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{ADMIN_URL_VAR} is not set. These tests need a real PostgreSQL: run `scripts/test`, \
             which starts one, or export {ADMIN_URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres"
        )
    })
}

pub const REDIS_URL_VAR: &str = "BASALT_TEST_REDIS_URL";

/// The test Redis, or a panic that says how to get one.
pub fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{REDIS_URL_VAR} is not set. These tests need a real Redis: run `scripts/test`, \
             which starts one, or export {REDIS_URL_VAR}=redis://127.0.0.1:6379"
        )
    })
}

/// A key prefix no other test uses, so tests can share one Redis.
pub fn redis_key_prefix() -> String {
    format!("test-{}", Uuid::new_v4().simple())
}

/// An in-memory log sink for tests that assert on what is logged (and what is not).
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Creates an empty database with a unique name and returns its URL.
pub async fn create_database() -> String {
    let admin = admin_url();
    let (client, conn) = tokio_postgres::connect(&admin, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {ADMIN_URL_VAR}={admin}: {e}"));
    let driver = tokio::spawn(conn);
    let name = format!("basalt_test_{}", Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_owned(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let base = base
        .rsplit_once('/')
        .map_or(base.as_str(), |(b, _)| b)
        .to_owned();
    format!("{base}/{name}{query}")
}

/// Configuration for tests: real settings, cheap bcrypt, the given database.
pub fn config(database_url: &str) -> Config {
    let url = database_url.to_owned();
    Config::from_lookup(Runtime::Host, move |name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "JWT_SECRET" => Some(TEST_JWT_SECRET.into()),
        "BCRYPT_COST" => Some("4".into()),
        "DB_POOL_MAX" => Some("4".into()),
        "BIND_ADDR" => Some("127.0.0.1:0".into()),
        // Budgets no ordinary test reaches; rate-limit tests set their own.
        "RATE_LIMIT_DEFAULT" | "RATE_LIMIT_AUTH" => Some("1000000/60".into()),
        _ => None,
    })
    .unwrap()
}

/// A fresh migrated database and the state to serve it.
pub async fn state() -> AppState {
    state_with(|c| c).await
}

/// Like [`state`], with the configuration adjusted first (e.g. a short timeout).
pub async fn state_with(adjust: impl FnOnce(Config) -> Config) -> AppState {
    let url = create_database().await;
    let config = adjust(config(&url));
    let db = Db::new(&config).unwrap();
    db.migrate().await.unwrap();
    AppState::with_db(config, db).unwrap()
}

/// How many sessions are connected to the database of `database_url`, this one included.
pub async fn backends(database_url: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(database_url, NoTls).await.unwrap();
    let driver = tokio::spawn(conn);
    let n = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = driver.await;
    n
}

/// Terminates every other backend connected to the state's database, as an administrator or
/// a failover would, to exercise reconnection.
pub async fn terminate_connections(database_url: &str) -> u64 {
    let (client, conn) = tokio_postgres::connect(database_url, NoTls).await.unwrap();
    let driver = tokio::spawn(conn);
    let n = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    drop(client);
    let _ = driver.await;
    // Give the pool's connection tasks a moment to observe the closed sockets (or not: the
    // retry path must cope either way).
    tokio::time::sleep(Duration::from_millis(20)).await;
    n as u64
}

// ---------------------------------------------------------------------------------------------
// Lambda: the same request through the host path and through real gateway events.

use axum::{Router, body::Body};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

const HTTP_API_EVENT: &str = include_str!("../../events/apigw-http-v2.json");
const REST_API_EVENT: &str = include_str!("../../events/apigw-rest-v1.json");
const ALB_EVENT: &str = include_str!("../../events/alb.json");
const FUNCTION_URL_EVENT: &str = include_str!("../../events/function-url.json");

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

    fn split_uri(&self) -> (&str, &str) {
        self.uri.split_once('?').unwrap_or((&self.uri, ""))
    }
}

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

/// A user created directly in the database, with an access token.
pub async fn user_with_token(state: &AppState) -> (Uuid, String) {
    let email = format!("lambda-{}@example.com", Uuid::new_v4().simple());
    let hash = crate::auth::password::hash("lambda password".into(), 4)
        .await
        .unwrap();
    let user = crate::repo::users::create(&state.db, &email, &hash)
        .await
        .unwrap();
    (user.id, state.jwt.issue(user.id).unwrap())
}
