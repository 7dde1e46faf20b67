//! The worker: long-running consumers of the Postgres job queue under one generic runner.
//!
//! # Layout
//!
//! - [`runner`]: the [`Worker`](runner::Worker) trait (one poll = one unit of work, busy or
//!   idle) and the [`Runner`](runner::Runner) that owns everything generic: adaptive polling,
//!   backoff after failures and the exit after too many, graceful shutdown.
//! - [`health`]: `/healthz`, `/readyz` and `/metrics` on `WORKER_HEALTH_ADDR`.
//! - [`metrics`]: the Prometheus metrics (prometheus-client).
//! - [`queue`]: [`JobHandler`](queue::JobHandler) (one per job kind) and
//!   [`QueueWorker`](queue::QueueWorker), the worker that claims, runs, heartbeats and
//!   completes or fails a kind's jobs.
//! - [`listen`]: the process's one `LISTEN` connection, waking a kind's worker on `NOTIFY`.
//! - [`handlers`]: the kinds this process drains.
//! - [`webhooks`]: webhooks' fan-out of item events and their delivery attempts.
//! - [`retention`]: the maintenance worker deleting old completed jobs.
//! - [`ops`]: `worker jobs stats|list|retry|discard`.
//! - [`delivery`]: one signed webhook delivery attempt through the SSRF-pinned client.
//! - [`drain`] and [`scheduled`]: the same queue workers polled in rounds until nothing is
//!   due, as the scheduled Lambda function `worker-drain`.
//!
//! [`serve`] is what `main` runs; tests call it (and the pieces) directly.

pub mod delivery;
pub mod drain;
pub mod handlers;
pub mod health;
pub mod listen;
pub mod metrics;
pub mod ops;
pub mod queue;
pub mod retention;
pub mod runner;
pub mod scheduled;
pub mod webhooks;

use std::{future::Future, sync::Arc};

use shared::{config::WorkerSettings, db::Db};
use tokio::net::TcpListener;

use crate::{
    health::Health,
    metrics::Metrics,
    queue::{Queues, Target},
    runner::{Cadence, RunError, Runner},
};

/// The session settings of `worker serve`'s database connections: its commits (claims,
/// heartbeats, completions, failures, releases, and what handlers write) do not wait for their
/// WAL flush. At-least-once delivery makes that safe: a PostgreSQL crash loses at most the
/// last moments of commits, always a suffix in WAL order, so what is lost is a claim (the job
/// is due again) or a completion (the job runs again), never a later step without the earlier
/// one. The API's enqueues keep synchronous commits: a committed change's job is never lost.
/// On the `NOTIFY` path this takes the claim's flush out of every job's enqueue-to-start time
/// (scripts/bench-worker).
pub const WORKER_SESSION: &str = "-c synchronous_commit=off";

/// Why `worker serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot serve health probes on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A name for this process in the leases it takes: the pod's name where Kubernetes sets
/// `HOSTNAME`, plus a random suffix so a restarted pod never mistakes its predecessor's
/// leases for its own.
pub fn owner_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!("{host}:{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Runs a queue worker for every kind `kinds` registers ([`handlers::register`] in `worker
/// serve`), the retention worker, the `LISTEN` connection (to `database_url`) and the health
/// server until `signal` (called again for a second signal; see [`Runner::run_until`]). Logs
/// the health address once listening.
pub async fn serve<S, F>(
    db: Db,
    database_url: &str,
    settings: &WorkerSettings,
    kinds: impl FnOnce(&mut Queues<'_>),
    signal: S,
) -> Result<(), ServeError>
where
    S: FnMut() -> F,
    F: Future<Output = ()>,
{
    let listener = TcpListener::bind(settings.health_addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.health_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: settings.health_addr,
        source,
    })?;
    let probe_db = db.clone();
    let health = Health::with_ready_check(Arc::new(move || {
        let db = probe_db.clone();
        Box::pin(async move {
            db.read("worker.ready", |c| async move {
                c.execute("SELECT 1", &[]).await
            })
            .await
            .map(drop)
            .map_err(|e| format!("database: {}", e.unavailable_cause()))
        })
    }));
    let metrics = Metrics::new(Some(db.clone()));
    let retention_db = db.clone();
    let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(health::serve(
        listener,
        health.clone(),
        metrics.clone(),
        async move {
            let _ = health_stopped.await;
        },
    ));
    tracing::info!(%addr, "health probes listening");

    let mut runner = Runner::new(Cadence::from(settings), health).metrics(metrics.clone());
    let mut queues = Queues::new(
        Target::Runner(&mut runner),
        db,
        owner_id(),
        settings.lease,
        settings.batch_size,
        metrics,
    );
    kinds(&mut queues);
    let wakes = queues.into_wakes();
    runner.spawn(retention::Retention::new(
        retention_db,
        settings.jobs_retention,
    ));
    let listener = tokio::spawn(listen::run(database_url.to_owned(), wakes));
    let result = runner.run_until(signal).await;
    listener.abort();
    let _ = stop_health.send(());
    let _ = server.await;
    Ok(result?)
}
