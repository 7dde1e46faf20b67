//! Running a router as a Lambda function, through the same chain as the host.
//!
//! `lambda_runtime::run` (which `lambda_http::run` wraps) panics outside Lambda: it needs the
//! runtime API's environment. Only [`run`], [`run_events`] and [`refuse_invocations`] call it (clippy.toml bans
//! it elsewhere), and the host calls it only when it was started as a function by mistake.
//!
//! Before the chain runs, [`handler`] puts the client's path back (no stage prefix) and turns
//! the gateway's request context into the neutral extensions of `http::request_context`, so
//! no layer knows the Lambda event types.

use axum::Router;
use http::Uri;
use std::net::IpAddr;

use ipnet::IpNet;
use lambda_http::{
    Adapter, RequestExt,
    lambda_runtime::{self, LambdaEvent},
    request::{LambdaRequest, RequestContext},
};
use tower::{ServiceExt, util::MapRequest};

use crate::{
    config::{Config, RateLimitSettings, Runtime},
    http::{
        client_ip::forwarded_for,
        request_context::{GatewayPeer, InvocationIds},
    },
    state::AppState,
    telemetry,
};

type RoutedService = MapRequest<Router, fn(lambda_http::Request) -> lambda_http::Request>;

/// The Lambda entry point of every function crate: config from the environment, a small lazy
/// pool created once per container (outside the handler), the shared chain, the runtime loop.
///
/// The function mains run it on a current-thread runtime: a sandbox handles one invocation at
/// a time, and blocking work (bcrypt) has tokio's blocking pool either way; starting no worker
/// threads is most of what separates a function's cold start from hello-world's
/// (`scripts/bench-lambda`).
pub async fn run(router: Router<AppState>) -> Result<(), lambda_http::Error> {
    let config = Config::from_env(Runtime::Lambda)?;
    telemetry::init(config.log_format);
    warn_if_limits_are_per_container(&config.rate_limit);
    let state = AppState::new(config)?;
    let app = crate::http::app(router, state);
    #[allow(clippy::disallowed_methods)] // the one call (see the module docs)
    lambda_runtime::run(handler(app)).await
}

/// The entry point of a function that is not HTTP (the worker's scheduled drain): the runtime
/// loop, `handler` called with each event. The caller has read its configuration and set up
/// telemetry.
pub async fn run_events<E, R, F, Fut>(handler: F) -> Result<(), lambda_http::Error>
where
    E: serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
    F: Fn(LambdaEvent<E>) -> Fut,
    Fut: std::future::Future<Output = Result<R, lambda_http::Error>> + Send,
{
    #[allow(clippy::disallowed_methods)] // started by the runtime, like `run`
    lambda_runtime::run(lambda_runtime::service_fn(handler)).await
}

/// An invocation: its event and the runtime's context (`deadline`, `request_id`).
pub use lambda_http::lambda_runtime::{Context as InvocationContext, LambdaEvent as Invocation};

/// Without Redis every container counts its own budgets, and API Gateway runs as many containers
/// as there are concurrent requests: N warm containers let a client through up to N times each
/// limit. Said at every cold start (one line, in the deployment's logs where the missing
/// `REDIS_URL` can be noticed); the HTTP API's stage throttling in `template.yaml` is then the
/// only bound shared by all containers.
fn warn_if_limits_are_per_container(settings: &RateLimitSettings) {
    if settings.redis_url.is_none() {
        tracing::warn!(
            "REDIS_URL is not set: rate limits are counted in memory per container, so \
             concurrent containers each allow the full budget; set REDIS_URL to share them"
        );
    }
}

/// For a binary that is not a function but that `cargo lambda watch` offers anyway (the host):
/// every invocation fails at once with `message`, rather than the caller waiting on a process
/// that never talks to the runtime API.
pub async fn refuse_invocations(message: &'static str) -> Result<(), lambda_http::Error> {
    #[allow(clippy::disallowed_methods)] // only ever started by the runtime, like `run`
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            Err::<serde_json::Value, _>(lambda_runtime::Diagnostic {
                error_type: "NotAFunction".into(),
                error_message: message.into(),
            })
        },
    ))
    .await
}

/// The service the runtime calls with each event; tests push real gateway events through it.
pub fn handler(app: Router) -> Adapter<'static, axum::response::Response, RoutedService> {
    Adapter::from(app.map_request(prepare as fn(lambda_http::Request) -> lambda_http::Request))
}

/// What every event goes through before the chain: the stage stripped, the context made
/// neutral.
fn prepare(req: lambda_http::Request) -> lambda_http::Request {
    neutral_context(strip_stage(req))
}

/// Copies what the chain needs from the gateway's request context and the invocation into
/// `http::request_context`'s extensions: the peer address (rate limiting by client IP) and
/// the ids (log lines).
fn neutral_context(mut req: lambda_http::Request) -> lambda_http::Request {
    let (peer, gateway_request_id) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.http.source_ip.as_deref().and_then(parse_ip),
            ctx.request_id.clone(),
        ),
        Some(RequestContext::ApiGatewayV1(ctx)) => (
            ctx.identity.source_ip.as_deref().and_then(parse_ip),
            ctx.request_id.clone(),
        ),
        // An ALB appends the address it saw to X-Forwarded-For: the right-most entry.
        Some(RequestContext::Alb(_)) => (forwarded_for(req.headers()).last().copied(), None),
        _ => (None, None),
    };
    let invocation_id = req
        .extensions()
        .get::<lambda_runtime::Context>()
        .map(|ctx| ctx.request_id.clone());
    let extensions = req.extensions_mut();
    if let Some(peer) = peer {
        extensions.insert(GatewayPeer(peer));
    }
    extensions.insert(InvocationIds {
        gateway_request_id,
        invocation_id,
    });
    req
}

/// An address as a gateway reports it: plain, or (in some sample events) as a `/32` network.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    raw.parse()
        .ok()
        .or_else(|| raw.parse::<IpNet>().ok().map(|net| net.addr()))
}

/// Convenience for tests and tools: one event in, the serialised Lambda response out.
pub async fn invoke(
    app: Router,
    event: serde_json::Value,
) -> Result<serde_json::Value, lambda_http::Error> {
    let request: LambdaRequest = serde_json::from_value(event)?;
    // The runtime gives every invocation an id; so does this stand-in.
    let mut context = lambda_runtime::Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    let response = handler(app)
        .oneshot(LambdaEvent::new(request, context))
        .await?;
    Ok(serde_json::to_value(response)?)
}

/// Routes on the path the client asked for, without an API Gateway stage.
///
/// lambda_http prefixes the stage name (`/prod/v1/items`) unless an environment variable says
/// otherwise; we cannot rely on deployments setting it, so the router sees the event's own
/// path: for REST APIs (v1) `path` never contains the stage; for HTTP APIs (v2) `rawPath`
/// contains it on named stages and not on `$default`.
fn strip_stage(mut req: lambda_http::Request) -> lambda_http::Request {
    let path = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(_)) => req.raw_http_path().to_owned(),
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            let raw = req.raw_http_path();
            match ctx.stage.as_deref() {
                Some(stage) if stage != "$default" => {
                    let prefix = format!("/{stage}");
                    match raw.strip_prefix(&prefix) {
                        Some("") => "/".to_owned(),
                        Some(rest) if rest.starts_with('/') => rest.to_owned(),
                        _ => raw.to_owned(),
                    }
                }
                _ => raw.to_owned(),
            }
        }
        _ => return req,
    };
    if path.is_empty() || path == req.uri().path() {
        return req;
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The error type of a Lambda `main`.
pub use lambda_http::Error;

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use serde_json::Value;

    use super::*;
    use crate::testing;

    #[test]
    fn gateway_addresses_parse_plain_or_as_a_single_host_network() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(parse_ip("192.0.2.1/32"), Some(ip("192.0.2.1")));
        assert_eq!(parse_ip("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_ip("not an ip"), None);
    }

    #[test]
    fn a_function_without_redis_warns_at_start_up_that_limits_are_per_container() {
        let captured = testing::CapturedLogs::default();
        let writer = captured.clone();
        let subscriber =
            crate::telemetry::subscriber(crate::config::LogFormat::Json, move || writer.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut config = testing::config("postgres://nobody@127.0.0.1:1/none");
        assert!(config.rate_limit.redis_url.is_none());
        warn_if_limits_are_per_container(&config.rate_limit);
        let lines: Vec<Value> = captured
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["level"], "WARN", "{}", lines[0]);
        let message = lines[0]["message"].as_str().unwrap();
        assert!(
            message.contains("REDIS_URL") && message.contains("per container"),
            "{message}"
        );
        // With Redis the limits are shared: nothing to say.
        config.rate_limit.redis_url = Some("redis://127.0.0.1:6379".to_owned().into());
        warn_if_limits_are_per_container(&config.rate_limit);
        assert_eq!(captured.text().lines().count(), 1, "{}", captured.text());
    }

    #[tokio::test]
    async fn lambda_request_lines_carry_the_gateway_and_invocation_ids() {
        let captured = testing::CapturedLogs::default();
        let writer = captured.clone();
        let subscriber =
            crate::telemetry::subscriber(crate::config::LogFormat::Json, move || writer.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        let config = testing::config("postgres://nobody@127.0.0.1:1/none");
        let state = AppState::new(config).unwrap();
        let app = crate::http::app(
            Router::new().route("/health", get(|| async { "ok" })),
            state,
        );
        let call = testing::Call::new("GET", "/health");
        for event in [
            testing::http_api_event(&call, "$default"),
            testing::rest_api_event(&call, "prod"),
        ] {
            let gateway_id = event["requestContext"]["requestId"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(testing::via_lambda(app.clone(), event).await.status, 200);
            let logs = captured.text();
            let line: Value = logs
                .lines()
                .rev()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["message"] == "request")
                .unwrap();
            assert_eq!(
                line["span"]["apigw_request_id"],
                gateway_id.as_str(),
                "{line}"
            );
            let lambda_id = line["span"]["lambda_request_id"].as_str().unwrap();
            assert!(uuid::Uuid::parse_str(lambda_id).is_ok(), "{line}");
            assert_eq!(line["span"]["request_id"], "lambda-parity-1");
        }
    }
}
