//! The worker's runner: `WORKER_POLL_ACTIVE_MS`, `WORKER_POLL_IDLE_MS`, `WORKER_MAX_FAILURES`,
//! `WORKER_SHUTDOWN_GRACE_SECONDS`, `WORKER_HEALTH_ADDR`, `WORKER_LEASE_SECONDS`,
//! `WORKER_BATCH_SIZE`, `JOBS_RETENTION_HOURS`.

use std::{net::SocketAddr, time::Duration};

use super::{ConfigError, Env, invalid};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Wait after an idle poll while work was seen recently; also the first backoff step after
    /// a failed poll.
    pub poll_active: Duration,
    /// The longest wait between idle polls (the active wait doubles up to it), and the longest
    /// backoff after failures.
    pub poll_idle: Duration,
    /// Consecutive failed polls after which the process exits non-zero (for Kubernetes to
    /// restart it).
    pub max_failures: u32,
    /// After SIGTERM/SIGINT, how long running jobs may take to finish before they are released.
    pub shutdown_grace: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub health_addr: SocketAddr,
    /// How long a claim holds without a heartbeat (heartbeats renew it every third of it): a
    /// killed worker's jobs run again this long after its last heartbeat.
    pub lease: Duration,
    /// Jobs of one kind claimed, and run concurrently, per poll.
    pub batch_size: u16,
    /// Completed jobs older than this are deleted (dead ones are kept).
    pub jobs_retention: Duration,
}

impl WorkerSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let poll_active = env.positive_or("WORKER_POLL_ACTIVE_MS", 1000u64)?;
        let poll_idle = env.positive_or("WORKER_POLL_IDLE_MS", 30_000u64)?;
        // The idle wait is where the active one stretches to; shorter would invert the two.
        if poll_idle < poll_active {
            return Err(invalid(
                "WORKER_POLL_IDLE_MS",
                &poll_idle.to_string(),
                &format!("must be at least WORKER_POLL_ACTIVE_MS ({poll_active})"),
            ));
        }
        Ok(Self {
            poll_active: Duration::from_millis(poll_active),
            poll_idle: Duration::from_millis(poll_idle),
            max_failures: env.positive_or("WORKER_MAX_FAILURES", 10u32)?,
            // 0 is allowed: stop at once, releasing the running jobs.
            shutdown_grace: Duration::from_secs(
                env.parse_or("WORKER_SHUTDOWN_GRACE_SECONDS", 30u64)?,
            ),
            health_addr: env
                .parse_or("WORKER_HEALTH_ADDR", SocketAddr::from(([0, 0, 0, 0], 8081)))?,
            lease: Duration::from_secs(env.positive_or("WORKER_LEASE_SECONDS", 30u64)?),
            batch_size: env.positive_or("WORKER_BATCH_SIZE", 10u16)?,
            // 0 would delete a job the moment it completes, before anyone could look at it.
            jobs_retention: Duration::from_secs(
                3600 * u64::from(env.positive_or("JOBS_RETENTION_HOURS", 24u32)?),
            ),
        })
    }
}
