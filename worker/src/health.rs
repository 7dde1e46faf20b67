//! The health server on `WORKER_HEALTH_ADDR`: `/healthz` (live: every worker's loop is still
//! running), `/readyz` (ready: not draining, no worker backing off, the database answers) and
//! `/metrics` (see `crate::metrics`).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, routing::get};
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// A readiness dependency (the database): `Err` says what is wrong.
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What one worker's loop reports.
#[derive(Debug)]
pub struct WorkerStatus {
    pub name: String,
    /// Polls started: the loop is turning.
    pub turns: AtomicU64,
    /// The last poll failed; the loop is waiting out its backoff.
    pub backing_off: AtomicBool,
    /// The loop has ended (drained, or failed for good).
    pub stopped: AtomicBool,
}

/// Shared between the runner's loops and the health server. Cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    draining: AtomicBool,
    workers: Mutex<Vec<Arc<WorkerStatus>>>,
    ready_check: Option<ReadyCheck>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("draining", &self.inner.draining)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Health whose readiness also requires `check` to pass.
    pub fn with_ready_check(check: ReadyCheck) -> Self {
        Self {
            inner: Arc::new(Inner {
                ready_check: Some(check),
                ..Inner::default()
            }),
        }
    }

    pub(crate) fn register(&self, name: &str) -> Arc<WorkerStatus> {
        let status = Arc::new(WorkerStatus {
            name: name.to_owned(),
            turns: AtomicU64::new(0),
            backing_off: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        self.workers().push(status.clone());
        status
    }

    pub(crate) fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<WorkerStatus>>> {
        // A panic while holding this lock cannot leave the Vec half-changed (push only).
        self.inner
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Ok` while every loop runs (or the process is draining, when loops end on purpose).
    pub fn live(&self) -> Result<(), String> {
        if self.inner.draining.load(Ordering::Relaxed) {
            return Ok(());
        }
        let stopped: Vec<String> = self
            .workers()
            .iter()
            .filter(|w| w.stopped.load(Ordering::Relaxed))
            .map(|w| w.name.clone())
            .collect();
        if stopped.is_empty() {
            Ok(())
        } else {
            Err(format!("stopped: {}", stopped.join(", ")))
        }
    }

    /// `Ok` when the process should be given work.
    pub async fn ready(&self) -> Result<(), String> {
        if self.inner.draining.load(Ordering::Relaxed) {
            return Err("draining".into());
        }
        self.live()?;
        let backing_off: Vec<String> = self
            .workers()
            .iter()
            .filter(|w| w.backing_off.load(Ordering::Relaxed))
            .map(|w| w.name.clone())
            .collect();
        if !backing_off.is_empty() {
            return Err(format!("backing off: {}", backing_off.join(", ")));
        }
        match &self.inner.ready_check {
            Some(check) => check().await,
            None => Ok(()),
        }
    }
}

fn answer(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

pub fn router(health: Health, metrics: Metrics) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render().await,
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(|State(h): State<Health>| async move { answer(h.live()) }),
        )
        .route(
            "/readyz",
            get(|State(h): State<Health>| async move { answer(h.ready().await) }),
        )
        .with_state(health)
}

/// Serves the probes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}
