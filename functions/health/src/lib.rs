//! Liveness and readiness.
//!
//! Routes (public):
//! - `GET /health` — the process is up; never touches a dependency, so a database outage
//!   does not get healthy pods restarted.
//! - `GET /ready` — the database answers (within 2 s); 503 otherwise, so the load balancer
//!   stops sending traffic. Redis is reported but does not fail readiness: without it the
//!   rate limiter runs in memory and the API keeps serving.

use std::time::Duration;

use aide::axum::{ApiRouter, routing::get_with};
use axum::extract::State;
use schemars::JsonSchema;
use serde::Serialize;
use shared::{ApiError, AppState, extract::Json};

const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn api() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/health",
            get_with(health, |op| op.tag("health").summary("Liveness")),
        )
        .api_route(
            "/ready",
            get_with(ready, |op| {
                op.tag("health")
                    .summary("Readiness: dependencies reachable")
            }),
        )
}

pub fn router() -> axum::Router<AppState> {
    api().into()
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// `ok`.
    pub database: &'static str,
    /// `ok`, `unavailable` (rate limiting runs in memory) or `not_configured`.
    pub redis: &'static str,
}

async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let probe = state.db.read("health.ready", |c| async move {
        c.simple_query("SELECT 1").await.map(|_| ())
    });
    let redis = match state.limiter.ping().await {
        None => "not_configured",
        Some(Ok(())) => "ok",
        Some(Err(_)) => "unavailable",
    };
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(Json(Readiness {
            status: "ready",
            database: "ok",
            redis,
        })),
        Ok(Err(e)) => Err(ApiError::unavailable(e)),
        Err(_) => Err(ApiError::unavailable(anyhow_timeout())),
    }
}

fn anyhow_timeout() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "database readiness probe timed out",
    )
}
