//! The operator: `OPERATOR_HEALTH_ADDR`, `OPERATOR_NAMESPACE`, `OPERATOR_LEASE_SECONDS`,
//! `OPERATOR_WATCH_NAMESPACE`, `OPERATOR_CONCURRENCY`, and the
//! settings an `AppDeployment` may pass to the API and the worker ([`DEPLOYABLE_SETTINGS`]).

use std::{net::SocketAddr, time::Duration};

use super::{ConfigError, Env, invalid};

/// The variables an `AppDeployment`'s `config` may set: every setting of the API and the worker
/// except the four that come from Secrets (`DATABASE_URL`, `REDIS_URL`, `JWT_SECRET`,
/// `WEBHOOK_ENCRYPTION_KEY`) and the listen addresses the operator chooses (`BIND_ADDR`,
/// `WORKER_HEALTH_ADDR`). Names starting `RATE_LIMIT_` are allowed too (per-route limits).
pub const DEPLOYABLE_SETTINGS: &[&str] = &[
    "DB_POOL_MAX",
    "SLOW_QUERY_MS",
    "REDIS_CA_CERT",
    "REDIS_TIMEOUT_MS",
    "REDIS_KEY_PREFIX",
    "JWT_TTL_SECONDS",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "BCRYPT_COST",
    "REAUTH_WINDOW_SECONDS",
    "BODY_LIMIT_BYTES",
    "REQUEST_TIMEOUT_SECONDS",
    "HEADER_READ_TIMEOUT_SECONDS",
    "MAX_CONNECTIONS",
    "CORS_ALLOWED_ORIGINS",
    "TRUSTED_PROXIES",
    "WORKER_POLL_ACTIVE_MS",
    "WORKER_POLL_IDLE_MS",
    "WORKER_MAX_FAILURES",
    "WORKER_SHUTDOWN_GRACE_SECONDS",
    "WORKER_LEASE_SECONDS",
    "WORKER_BATCH_SIZE",
    "JOBS_RETENTION_HOURS",
    "WEBHOOK_RETRY_SCHEDULE_SECONDS",
    "WEBHOOK_TIMEOUT_MS",
    "WEBHOOK_DISABLE_AFTER_SECONDS",
    "LOG_FORMAT",
    "RUST_LOG",
];

/// Whether an `AppDeployment`'s `config` may set `name`.
pub fn is_deployable(name: &str) -> bool {
    DEPLOYABLE_SETTINGS.contains(&name)
        || name
            .strip_prefix("RATE_LIMIT_")
            .is_some_and(|rest| !rest.is_empty())
}

#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// Where `/health`, `/ready` and `/metrics` are served.
    pub health_addr: SocketAddr,
    /// Where the leader-election Lease lives: the operator's own namespace.
    pub namespace: String,
    /// How long a leader's Lease holds without renewal; another replica takes over after it.
    pub lease: Duration,
    /// Only AppDeployments (and children) in this namespace; every namespace when unset.
    pub watch_namespace: Option<String>,
    /// Most reconciles running at once. Each applies up to seven children at once, so this
    /// bounds the requests in flight, the API server's load from the operator and the
    /// operator's memory (each connection holds buffers and TLS state).
    pub concurrency: u16,
}

impl OperatorSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let lease = env.positive_or("OPERATOR_LEASE_SECONDS", 15u64)?;
        if lease < 3 {
            return Err(invalid(
                "OPERATOR_LEASE_SECONDS",
                &lease.to_string(),
                "must be at least 3 (the leader renews every third of it)",
            ));
        }
        Ok(Self {
            health_addr: env.parse_or(
                "OPERATOR_HEALTH_ADDR",
                SocketAddr::from(([0, 0, 0, 0], 8080)),
            )?,
            // The downward API's namespace in the chart; `default` for a local run.
            namespace: env
                .get("OPERATOR_NAMESPACE")
                .unwrap_or_else(|| "default".to_owned()),
            lease: Duration::from_secs(lease),
            watch_namespace: env.get("OPERATOR_WATCH_NAMESPACE"),
            concurrency: env.positive_or("OPERATOR_CONCURRENCY", 16u16)?,
        })
    }
}
