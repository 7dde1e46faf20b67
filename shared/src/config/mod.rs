//! Typed configuration read from the environment, one settings type per component.
//!
//! The variable names are a contract shared with Compose, SAM, Helm and the operator
//! (see `../shared/DESIGN.md`, "Configuration"); add a name here and in those files together.
//!
//! Each component reads only its own variables from an [`Env`], so a binary validates only
//! what it uses: the API needs every part ([`Config`]), while the worker builds
//! [`DatabaseSettings`], [`WorkerSettings`] and a [`LogFormat`] and starts without `JWT_SECRET`.
//!
//! - [`database`]: `DATABASE_URL` (and its `sslmode`, `sslrootcert`), `DB_POOL_MAX`,
//!   `SLOW_QUERY_MS`.
//! - [`rate_limit`]: `REDIS_URL`, `REDIS_CA_CERT`, `REDIS_TIMEOUT_MS`, `REDIS_KEY_PREFIX`,
//!   `RATE_LIMIT_*`.
//! - [`auth`]: `JWT_SECRET`, `JWT_TTL_SECONDS`, `JWT_ISSUER`, `JWT_AUDIENCE`, `BCRYPT_COST`,
//!   `REAUTH_WINDOW_SECONDS`.
//! - [`http`]: `BIND_ADDR`, `BODY_LIMIT_BYTES`, `REQUEST_TIMEOUT_SECONDS`,
//!   `HEADER_READ_TIMEOUT_SECONDS`, `MAX_CONNECTIONS`, `CORS_ALLOWED_ORIGINS`, `TRUSTED_PROXIES`.
//! - [`worker`]: `WORKER_POLL_ACTIVE_MS`, `WORKER_POLL_IDLE_MS`, `WORKER_MAX_FAILURES`,
//!   `WORKER_SHUTDOWN_GRACE_SECONDS`, `WORKER_HEALTH_ADDR`, `WORKER_LEASE_SECONDS`,
//!   `WORKER_BATCH_SIZE`, `JOBS_RETENTION_HOURS` (the worker only).
//! - [`webhooks`]: `WEBHOOK_ENCRYPTION_KEY`, `WEBHOOK_ALLOW_INSECURE`,
//!   `WEBHOOK_ALLOW_PRIVATE_TARGETS`, `WEBHOOK_RETRY_SCHEDULE_SECONDS`, `WEBHOOK_TIMEOUT_MS`,
//!   `WEBHOOK_DISABLE_AFTER_SECONDS`.
//! - [`operator`]: `OPERATOR_HEALTH_ADDR`, `OPERATOR_NAMESPACE`, `OPERATOR_LEASE_SECONDS`, and
//!   which settings an `AppDeployment` may pass on.
//! - here: `BASALT_DEV`, `LOG_FORMAT`.

pub mod auth;
pub mod database;
pub mod http;
pub mod operator;
pub mod rate_limit;
pub mod webhooks;
pub mod worker;

pub use auth::{AuthSettings, DEV_JWT_SECRET, MIN_JWT_SECRET_BYTES};
pub use database::DatabaseSettings;
pub use http::HttpSettings;
pub use operator::OperatorSettings;
pub use rate_limit::{Limit, RateLimitSettings, RateLimits};
pub use webhooks::WebhookSettings;
pub use worker::WorkerSettings;

/// Why the process refused to start; the message names the variable to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required but not set{hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// Like `Invalid`, for a value that must not be printed (a URL holding a password).
    #[error("{name} is not valid: {reason}")]
    InvalidSecret { name: &'static str, reason: String },
    #[error(
        "JWT_SECRET is {len} bytes; at least {MIN_JWT_SECRET_BYTES} are required \
         (generate one with `openssl rand -base64 48`, or set BASALT_DEV=1 for local development only)"
    )]
    WeakJwtSecret { len: usize },
    #[error(
        "JWT_SECRET is the development secret published in scripts/dev: anyone can sign tokens \
         with it (generate one with `openssl rand -base64 48`, or set BASALT_DEV=1 for local \
         development only)"
    )]
    PublishedJwtSecret,
}

/// Log line format: JSON for anything a log pipeline reads, pretty for a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl LogFormat {
    /// `LOG_FORMAT`; by default JSON, except pretty for a host in development mode.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let default = match env.runtime {
            Runtime::Host if env.dev_mode => Self::Pretty,
            Runtime::Host | Runtime::Lambda => Self::Json,
        };
        match env.get("LOG_FORMAT").as_deref() {
            None => Ok(default),
            Some("json") => Ok(Self::Json),
            Some("pretty") => Ok(Self::Pretty),
            Some(other) => Err(invalid("LOG_FORMAT", other, "expected json or pretty")),
        }
    }
}

/// Where the process runs; decides defaults that differ between a long-lived host and Lambda.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Host,
    Lambda,
}

/// Reads one variable: `std::env::var` in processes, a map in tests.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// The environment a component reads its settings from: the process's, or a map in tests
/// (so they need not mutate the process environment). Blank values count as unset.
pub struct Env<'a> {
    lookup: Lookup<'a>,
    pub runtime: Runtime,
    /// `BASALT_DEV=1`: local development; allows a short JWT secret and the published
    /// development one. Never set in deployments.
    pub dev_mode: bool,
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("runtime", &self.runtime)
            .field("dev_mode", &self.dev_mode)
            .finish_non_exhaustive()
    }
}

impl Env<'static> {
    /// The process environment.
    pub fn from_process(runtime: Runtime) -> Result<Self, ConfigError> {
        Env::from_lookup(runtime, |name| std::env::var(name).ok())
    }

    /// The process environment with `overrides` (a command line's flags, by the variable each
    /// stands for) in front of it.
    pub fn from_process_with(
        runtime: Runtime,
        overrides: std::collections::HashMap<&'static str, String>,
    ) -> Result<Self, ConfigError> {
        Env::from_lookup(runtime, move |name| {
            overrides
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        })
    }
}

impl<'a> Env<'a> {
    /// An environment read through `lookup`; reads `BASALT_DEV` at once.
    pub fn from_lookup(
        runtime: Runtime,
        lookup: impl Fn(&str) -> Option<String> + 'a,
    ) -> Result<Self, ConfigError> {
        let mut env = Self {
            lookup: Box::new(lookup),
            runtime,
            dev_mode: false,
        };
        env.dev_mode = env.flag("BASALT_DEV")?;
        Ok(env)
    }

    /// A switch: `1`/`true` on, `0`/`false` or unset off.
    pub fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            None | Some("0") | Some("false") => Ok(false),
            Some("1") | Some("true") => Ok(true),
            Some(other) => Err(invalid(name, other, "expected 1/true or 0/false")),
        }
    }

    /// The value of `name`, or `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// The value of `name`, or an error naming it with `hint` (how to get a value).
    pub fn require(&self, name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing { name, hint })
    }

    /// `name` parsed as a `T`, or `default` when unset.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e: T::Err| invalid(name, &raw, &e.to_string())),
        }
    }

    /// Like [`Env::parse_or`] for counts and durations where 0 cannot work (a zero timeout
    /// fails every request, a zero pool serves none).
    pub fn positive_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + Default + PartialEq + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        let value = self.parse_or(name, default)?;
        if value == T::default() {
            return Err(invalid(name, &value.to_string(), "must be at least 1"));
        }
        Ok(value)
    }
}

/// Everything the API needs to know about its environment, by component. A component takes
/// only its part (`Db::new(&config.database)`, `RateLimiter::new(&config.rate_limit)`, …).
#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseSettings,
    pub rate_limit: RateLimitSettings,
    pub auth: AuthSettings,
    pub http: HttpSettings,
    pub webhooks: WebhookSettings,
    pub log_format: LogFormat,
    /// `BASALT_DEV=1` (see [`Env::dev_mode`]).
    pub dev_mode: bool,
}

impl Config {
    /// Reads every component from the process environment.
    pub fn from_env(runtime: Runtime) -> Result<Self, ConfigError> {
        Self::read(&Env::from_process(runtime)?)
    }

    /// Reads every component through `lookup`, so tests can pass a map instead of mutating
    /// the process environment.
    pub fn from_lookup(
        runtime: Runtime,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::read(&Env::from_lookup(runtime, lookup)?)
    }

    /// Reads every component from `env`.
    pub fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseSettings::from_env(env)?,
            auth: AuthSettings::from_env(env)?,
            log_format: LogFormat::from_env(env)?,
            rate_limit: RateLimitSettings::from_env(env)?,
            http: HttpSettings::from_env(env)?,
            webhooks: WebhookSettings::from_env(env)?,
            dev_mode: env.dev_mode,
        })
    }
}

fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, time::Duration};

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(Runtime::Host, lookup(pairs))
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://u:hunter2@localhost/db");
    const SECRET: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");

    #[test]
    fn defaults_match_the_design_contract() {
        let c = config(&[URL, SECRET]).unwrap();
        assert_eq!(c.database.slow_query, Duration::from_millis(500));
        assert_eq!(c.database.pool_max, 16);
        assert_eq!(c.auth.jwt_ttl, Duration::from_secs(900));
        assert_eq!(c.auth.bcrypt_cost, 12);
        assert!(c.auth.bcrypt_concurrency >= 1);
        assert_eq!(c.auth.jwt_issuer, "basalt");
        assert_eq!(c.auth.jwt_audience, "basalt-api");
        assert_eq!(c.http.bind_addr.to_string(), "0.0.0.0:8001");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.http.body_limit_bytes, 1 << 20);
        assert_eq!(c.http.request_timeout, Duration::from_secs(30));
        assert_eq!(c.rate_limit.redis_timeout, Duration::from_millis(20));
        let lambda = Config::from_lookup(Runtime::Lambda, lookup(&[URL, SECRET])).unwrap();
        assert_eq!(lambda.database.pool_max, 2);
    }

    #[test]
    fn short_jwt_secret_refuses_to_start_outside_dev_mode() {
        let err = config(&[URL, ("JWT_SECRET", "short")]).unwrap_err();
        assert!(
            matches!(err, ConfigError::WeakJwtSecret { len: 5 }),
            "{err}"
        );
        assert!(err.to_string().contains("BASALT_DEV"));
        let c = config(&[URL, ("JWT_SECRET", "short"), ("BASALT_DEV", "1")]).unwrap();
        assert!(c.dev_mode);
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn missing_and_malformed_values_name_the_variable() {
        let err = config(&[SECRET]).unwrap_err().to_string();
        assert!(err.starts_with("DATABASE_URL is required"), "{err}");
        let err = config(&[URL]).unwrap_err().to_string();
        assert!(err.starts_with("JWT_SECRET is required"), "{err}");
        let err = config(&[URL, SECRET, ("DB_POOL_MAX", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DB_POOL_MAX=\"lots\""), "{err}");
        let err = config(&[URL, SECRET, ("BCRYPT_COST", "3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("BCRYPT_COST"), "{err}");
    }

    #[test]
    fn values_that_cannot_work_are_refused_naming_the_variable() {
        for (name, value) in [
            ("DB_POOL_MAX", "0"),
            ("REQUEST_TIMEOUT_SECONDS", "0"),
            ("REDIS_TIMEOUT_MS", "0"),
            ("BODY_LIMIT_BYTES", "0"),
            ("JWT_TTL_SECONDS", "0"),
            // Would overflow the token's `exp` (seconds since 1970) or any date type.
            ("JWT_TTL_SECONDS", "18446744073709551615"),
            // A day at most: a stolen token must not be good for long.
            ("JWT_TTL_SECONDS", "86401"),
            ("JWT_TTL_SECONDS", "31536000"),
            ("JWT_ISSUER", "bas\u{0}alt"),
            ("JWT_AUDIENCE", "api\nx"),
        ] {
            let err = config(&[URL, SECRET, (name, value)])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{name}=")),
                "{name}={value}: {err}"
            );
        }
        let c = config(&[URL, SECRET, ("JWT_TTL_SECONDS", "86400")]).unwrap();
        assert_eq!(c.auth.jwt_ttl, Duration::from_secs(86_400));
    }

    #[test]
    fn the_published_dev_secret_is_refused_outside_dev_mode() {
        let dev = ("JWT_SECRET", DEV_JWT_SECRET);
        let err = config(&[URL, dev]).unwrap_err();
        assert!(matches!(err, ConfigError::PublishedJwtSecret), "{err}");
        assert!(err.to_string().starts_with("JWT_SECRET "), "{err}");
        assert!(err.to_string().contains("BASALT_DEV"), "{err}");
        // With blanks around it, it is no less public.
        let padded = format!(" {DEV_JWT_SECRET}\n");
        assert!(config(&[URL, ("JWT_SECRET", &padded)]).is_err());
        assert!(config(&[URL, dev, ("BASALT_DEV", "1")]).is_ok());
        // The constant is the secret scripts/dev hands the host, not a copy that drifted.
        let script = include_str!("../../../scripts/dev");
        assert!(
            script.contains(&format!("JWT_SECRET:-{DEV_JWT_SECRET}}}")),
            "scripts/dev no longer sets DEV_JWT_SECRET"
        );
    }

    /// The webhook key `scripts/dev` publishes is one the host accepts (it once was 33 bytes,
    /// and `scripts/dev` stopped at `host migrate`).
    #[test]
    fn the_dev_scripts_webhook_key_is_valid() {
        let script = include_str!("../../../scripts/dev");
        let key = script
            .split("WEBHOOK_ENCRYPTION_KEY:-")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .expect("scripts/dev sets a default WEBHOOK_ENCRYPTION_KEY");
        let c = config(&[URL, SECRET, ("WEBHOOK_ENCRYPTION_KEY", key)]).unwrap();
        assert!(c.webhooks.encryption_key.is_some());
    }

    #[test]
    fn issuer_and_audience_can_be_set() {
        let c = config(&[
            URL,
            SECRET,
            ("JWT_ISSUER", " https://auth.example.com "),
            ("JWT_AUDIENCE", "orders-api"),
        ])
        .unwrap();
        assert_eq!(c.auth.jwt_issuer, "https://auth.example.com");
        assert_eq!(c.auth.jwt_audience, "orders-api");
    }

    #[test]
    fn connection_settings_default_and_refuse_what_cannot_work() {
        let c = config(&[URL, SECRET]).unwrap();
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.http.max_connections, 1024);
        let c = config(&[
            URL,
            SECRET,
            ("HEADER_READ_TIMEOUT_SECONDS", "3600"),
            ("MAX_CONNECTIONS", "2"),
        ])
        .unwrap();
        assert_eq!(c.http.header_read_timeout, Duration::from_secs(3600));
        assert_eq!(c.http.max_connections, 2);
        for (name, value) in [
            ("HEADER_READ_TIMEOUT_SECONDS", "0"),
            // Would overflow hyper's per-connection deadline.
            ("HEADER_READ_TIMEOUT_SECONDS", "18446744073709551615"),
            ("HEADER_READ_TIMEOUT_SECONDS", "3601"),
            ("MAX_CONNECTIONS", "0"),
            // More than the host's connection counter (a tokio Semaphore) can hold.
            ("MAX_CONNECTIONS", "18446744073709551615"),
            ("MAX_CONNECTIONS", "many"),
        ] {
            let err = config(&[URL, SECRET, (name, value)])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{name}=")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn a_component_reads_only_its_own_variables() {
        // What the worker builds: no JWT_SECRET, no HTTP settings needed.
        let env = Env::from_lookup(Runtime::Host, lookup(&[URL])).unwrap();
        let db = DatabaseSettings::from_env(&env).unwrap();
        assert_eq!(db.url(), URL.1);
        assert_eq!(LogFormat::from_env(&env).unwrap(), LogFormat::Json);
        // What the bare benchmark builds: a limiter, without a database or a JWT secret.
        let env = Env::from_lookup(Runtime::Host, lookup(&[])).unwrap();
        let limits = RateLimitSettings::from_env(&env).unwrap();
        assert!(limits.redis_url.is_none());
        assert!(AuthSettings::from_env(&env).is_err());
    }

    #[test]
    fn every_deployable_setting_is_one_a_component_reads() {
        let sources = [
            include_str!("auth.rs"),
            include_str!("database.rs"),
            include_str!("http.rs"),
            include_str!("rate_limit.rs"),
            include_str!("webhooks.rs"),
            include_str!("worker.rs"),
            include_str!("mod.rs"),
            include_str!("../telemetry.rs"),
        ]
        .concat();
        for name in operator::DEPLOYABLE_SETTINGS {
            assert!(
                sources.contains(&format!("\"{name}\"")) || *name == "RUST_LOG",
                "{name} is read by no component"
            );
        }
        assert!(operator::is_deployable("RATE_LIMIT_AUTH"));
        for name in [
            "DATABASE_URL",
            "JWT_SECRET",
            "BIND_ADDR",
            "RATE_LIMIT_",
            "PATH",
        ] {
            assert!(!operator::is_deployable(name), "{name}");
        }
    }

    #[test]
    fn webhook_settings_need_a_32_byte_key_and_default_to_the_strict_guard() {
        let env = Env::from_lookup(Runtime::Host, lookup(&[])).unwrap();
        let w = WebhookSettings::from_env(&env).unwrap();
        assert!(w.encryption_key.is_none());
        assert_eq!(w.targets, crate::ssrf::Policy::default());
        // The Standard Webhooks schedule: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h,
        // 24 h; 15 s per attempt; disabled after 5 days of failures.
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(
            w.retry_schedule,
            [
                Duration::ZERO,
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(1800),
                hours(2),
                hours(5),
                hours(10),
                hours(14),
                hours(20),
                hours(24)
            ]
        );
        assert_eq!(w.timeout, Duration::from_secs(15));
        assert_eq!(w.disable_after, hours(5 * 24));
        let env = Env::from_lookup(
            Runtime::Host,
            lookup(&[("WEBHOOK_RETRY_SCHEDULE_SECONDS", " 0, 0.25 ,1")]),
        )
        .unwrap();
        assert_eq!(
            WebhookSettings::from_env(&env).unwrap().retry_schedule,
            [
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_secs(1)
            ]
        );
        let key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
        let env = Env::from_lookup(
            Runtime::Host,
            lookup(&[
                ("WEBHOOK_ENCRYPTION_KEY", key),
                ("WEBHOOK_ALLOW_INSECURE", "1"),
                ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true"),
                ("BASALT_DEV", "1"),
            ]),
        )
        .unwrap();
        let w = WebhookSettings::from_env(&env).unwrap();
        assert!(w.require_key().is_ok());
        assert!(w.targets.allow_insecure && w.targets.allow_private);
        let env = Env::from_lookup(Runtime::Host, lookup(&[])).unwrap();
        let err = WebhookSettings::from_env(&env)
            .unwrap()
            .require_key()
            .unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_ENCRYPTION_KEY"), "{err}");
        for (name, value) in [
            ("WEBHOOK_ENCRYPTION_KEY", "c2hvcnQ="),
            ("WEBHOOK_ENCRYPTION_KEY", "not base64"),
            ("WEBHOOK_ALLOW_INSECURE", "yes"),
            ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "2"),
            // Without BASALT_DEV=1.
            ("WEBHOOK_ALLOW_INSECURE", "1"),
            ("WEBHOOK_ALLOW_PRIVATE_TARGETS", "1"),
            ("WEBHOOK_RETRY_SCHEDULE_SECONDS", "0,5m"),
            ("WEBHOOK_RETRY_SCHEDULE_SECONDS", "0,-5"),
            ("WEBHOOK_RETRY_SCHEDULE_SECONDS", "0,86401"),
            ("WEBHOOK_TIMEOUT_MS", "0"),
            ("WEBHOOK_TIMEOUT_MS", "60000"),
            ("WEBHOOK_DISABLE_AFTER_SECONDS", "0"),
        ] {
            let env = Env::from_lookup(Runtime::Host, lookup(&[(name, value)])).unwrap();
            let err = WebhookSettings::from_env(&env).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{name}=")),
                "{name}={value}: {err}"
            );
            assert!(!err.contains("c2hvcnQ"), "the key is never echoed: {err}");
        }
    }

    #[test]
    fn worker_settings_default_and_refuse_what_cannot_work() {
        let env = Env::from_lookup(Runtime::Host, lookup(&[])).unwrap();
        let w = WorkerSettings::from_env(&env).unwrap();
        assert_eq!(w.poll_active, Duration::from_millis(1000));
        assert_eq!(w.poll_idle, Duration::from_millis(30_000));
        assert_eq!(w.max_failures, 10);
        assert_eq!(w.shutdown_grace, Duration::from_secs(30));
        assert_eq!(w.health_addr.to_string(), "0.0.0.0:8081");
        assert_eq!(w.jobs_retention, Duration::from_secs(24 * 3600));
        assert_eq!(w.lease, Duration::from_secs(30));
        assert_eq!(w.batch_size, 10);
        let env = Env::from_lookup(
            Runtime::Host,
            lookup(&[("WORKER_SHUTDOWN_GRACE_SECONDS", "0")]),
        )
        .unwrap();
        assert_eq!(
            WorkerSettings::from_env(&env).unwrap().shutdown_grace,
            Duration::ZERO
        );
        for (name, value) in [
            ("WORKER_POLL_ACTIVE_MS", "0"),
            ("WORKER_POLL_IDLE_MS", "0"),
            // Shorter than the active wait (1000 ms by default).
            ("WORKER_POLL_IDLE_MS", "999"),
            ("WORKER_MAX_FAILURES", "0"),
            ("WORKER_SHUTDOWN_GRACE_SECONDS", "soon"),
            ("WORKER_HEALTH_ADDR", "8081"),
            ("WORKER_LEASE_SECONDS", "0"),
            ("WORKER_BATCH_SIZE", "0"),
            ("WORKER_BATCH_SIZE", "70000"),
            ("JOBS_RETENTION_HOURS", "0"),
            ("JOBS_RETENTION_HOURS", "-1"),
        ] {
            let env = Env::from_lookup(Runtime::Host, lookup(&[(name, value)])).unwrap();
            let err = WorkerSettings::from_env(&env).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("{name}=")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn rate_limits_cors_and_proxies_parse_with_clear_errors() {
        let c = config(&[URL, SECRET]).unwrap();
        let limits = &c.rate_limit.limits;
        assert_eq!(limits.for_endpoint("GET /v1/items").requests, 300);
        assert_eq!(limits.for_endpoint("POST /v1/auth/token").requests, 10);
        assert_eq!(c.http.cors_allowed_origins, ["http://localhost:5173"]);
        assert!(c.rate_limit.redis_url.is_none());
        let c = config(&[
            URL,
            SECRET,
            ("RATE_LIMIT_DEFAULT", "50/10s"),
            (
                "RATE_LIMIT_OVERRIDES",
                "get /v1/items=7/1, POST /v1/auth/token=3/60",
            ),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://app.example.com, http://localhost:3000/",
            ),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1"),
        ])
        .unwrap();
        let limits = &c.rate_limit.limits;
        let items = limits.for_endpoint("GET /v1/items");
        assert_eq!((items.requests, items.window), (7, Duration::from_secs(1)));
        assert_eq!(limits.for_endpoint("POST /v1/auth/token").requests, 3);
        assert_eq!(limits.for_endpoint("POST /v1/items").requests, 50);
        assert_eq!(
            c.http.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(c.http.trusted_proxies.len(), 2);
        for (name, value) in [
            ("RATE_LIMIT_DEFAULT", "lots"),
            ("RATE_LIMIT_AUTH", "0/60"),
            ("RATE_LIMIT_DEFAULT", "1000001/1"),
            ("RATE_LIMIT_OVERRIDES", "/v1/items=1/1"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("CORS_ALLOWED_ORIGINS", "localhost:5173"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com/path"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
        ] {
            let err = config(&[URL, SECRET, (name, value)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[URL, SECRET, ("REDIS_URL", "redis://:s3cret@cache:6379")]).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains(SECRET.1), "{debug}");
    }

    #[test]
    fn tls_settings_that_cannot_work_are_refused_naming_the_variable() {
        let err = config(&[
            ("DATABASE_URL", "postgres://u:hunter2@db/app?sslmode=verify"),
            SECRET,
        ])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("DATABASE_URL is not valid: "), "{err}");
        assert!(
            err.contains("verify-full") && !err.contains("hunter2"),
            "{err}"
        );
        let c = config(&[
            (
                "DATABASE_URL",
                "postgres://u:hunter2@db/app?sslmode=verify-full&sslrootcert=/ca.pem",
            ),
            SECRET,
        ])
        .unwrap();
        assert!(c.database.url().contains("sslrootcert"), "kept for Db");
        // A CA for Redis only means something to a rediss:// URL.
        for redis in [None, Some("redis://cache:6379")] {
            let mut vars = vec![URL, SECRET, ("REDIS_CA_CERT", "/ca.pem")];
            vars.extend(redis.map(|u| ("REDIS_URL", u)));
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with("REDIS_CA_CERT="), "{err}");
        }
        let c = config(&[
            URL,
            SECRET,
            ("REDIS_URL", "rediss://cache:6380"),
            ("REDIS_CA_CERT", "/ca.pem"),
        ])
        .unwrap();
        assert_eq!(
            c.rate_limit.redis_ca_cert.as_deref(),
            Some("/ca.pem".as_ref())
        );
    }
}
