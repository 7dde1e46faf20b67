//! `/health` (live), `/ready` (ready: the process is up, leading or standing by, and says
//! which) and `/metrics` on `OPERATOR_HEALTH_ADDR`.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Json, Router, extract::State, http::header, response::IntoResponse, routing::get};
use serde_json::json;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

#[derive(Clone)]
struct Probes {
    metrics: Metrics,
    leading: Arc<AtomicBool>,
}

/// Serves until the task is aborted.
pub async fn serve(listener: TcpListener, metrics: Metrics, leading: Arc<AtomicBool>) {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(render))
        .with_state(Probes { metrics, leading });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the health server stopped");
    }
}

async fn ready(State(p): State<Probes>) -> Json<serde_json::Value> {
    Json(json!({"status": "ready", "leader": p.leading.load(Ordering::Relaxed)}))
}

async fn render(State(p): State<Probes>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        p.metrics.render(),
    )
}
