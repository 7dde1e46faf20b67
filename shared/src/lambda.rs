//! Running a router as a Lambda function, through the same chain as the host.
//!
//! `lambda_http::run` panics outside Lambda (it needs the runtime API's environment), so only
//! [`run`] calls it and the host never does.

use axum::Router;
use http::Uri;
use lambda_http::{
    Adapter, RequestExt,
    lambda_runtime::{self, LambdaEvent},
    request::{LambdaRequest, RequestContext},
};
use tower::{ServiceExt, util::MapRequest};

use crate::{
    config::{Config, Runtime},
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
    let state = AppState::new(config)?;
    let app = crate::http::app(router, state);
    lambda_runtime::run(handler(app)).await
}

/// For a binary that is not a function but that `cargo lambda watch` offers anyway (the host):
/// every invocation fails at once with `message`, rather than the caller waiting on a process
/// that never talks to the runtime API.
pub async fn refuse_invocations(message: &'static str) -> Result<(), lambda_http::Error> {
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
    Adapter::from(app.map_request(strip_stage as fn(lambda_http::Request) -> lambda_http::Request))
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
