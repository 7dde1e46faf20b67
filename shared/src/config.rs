//! Typed configuration read from the environment, in one place.
//!
//! The variable names are a contract shared with Compose, SAM, Helm and the operator
//! (see `../shared/DESIGN.md`, "Configuration"); add a name here and in those files together.

use std::{net::SocketAddr, time::Duration};

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

/// Minimum HS256 key length: a shorter key is brute-forceable offline from any issued token.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

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
    #[error(
        "JWT_SECRET is {len} bytes; at least {MIN_JWT_SECRET_BYTES} are required \
         (generate one with `openssl rand -base64 48`, or set BASALT_DEV=1 for local development only)"
    )]
    WeakJwtSecret { len: usize },
}

/// Log line format: JSON for anything a log pipeline reads, pretty for a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where the process runs; decides defaults that differ between a long-lived host and Lambda.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Host,
    Lambda,
}

/// Everything the API needs to know about its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds the password of the database role, hence secret.
    pub database_url: SecretString,
    /// Upper bound of pooled connections; Lambda defaults to 2 because every warm container
    /// holds its own pool and PostgreSQL's `max_connections` is shared by all of them.
    pub db_pool_max: usize,
    /// Operations slower than this are logged as warnings with their name.
    pub slow_query: Duration,
    pub jwt_secret: SecretString,
    pub jwt_ttl: Duration,
    /// bcrypt work factor: 12 costs ~250 ms per hash on one core, the reason hashing runs on
    /// the blocking pool.
    pub bcrypt_cost: u32,
    pub bind_addr: SocketAddr,
    pub log_format: LogFormat,
    /// Requests with larger bodies are refused with 413 before the handler reads them.
    pub body_limit_bytes: usize,
    /// Requests running longer are answered with 408 and their handler future dropped.
    pub request_timeout: Duration,
    /// `BASALT_DEV=1`: local development; allows a short JWT secret. Never set in deployments.
    pub dev_mode: bool,
    /// Unset: rate limiting runs in memory only (per process). May carry a password.
    pub redis_url: Option<SecretString>,
    /// How long a rate-limit decision may wait for Redis before the in-memory limiter decides
    /// instead: a slow Redis must not become a slow API.
    pub redis_timeout: Duration,
    /// Prefix of every Redis key, so several installations (or tests) can share one Redis.
    pub redis_key_prefix: String,
    pub rate_limits: RateLimits,
    /// Browser origins allowed to call the API with credentials. Never `*`.
    pub cors_allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, ingress controllers).
    pub trusted_proxies: Vec<IpNet>,
}

/// A request budget: at most `requests` in any sliding window of `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests: u32,
    pub window: Duration,
}

impl std::str::FromStr for Limit {
    type Err = String;

    /// `N/SECONDS`, e.g. `120/60` (an optional `s` suffix is accepted: `120/60s`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, secs) = s
            .trim()
            .split_once('/')
            .ok_or("expected REQUESTS/SECONDS, e.g. 120/60")?;
        let requests: u32 = n.trim().parse().map_err(|e| format!("requests: {e}"))?;
        let secs: u64 = secs
            .trim()
            .trim_end_matches('s')
            .parse()
            .map_err(|e| format!("seconds: {e}"))?;
        if requests == 0 || secs == 0 {
            return Err("both numbers must be at least 1".into());
        }
        Ok(Self {
            requests,
            window: Duration::from_secs(secs),
        })
    }
}

/// Per-endpoint budgets: an override for `METHOD /route/template`, else the stricter auth
/// budget for sign-in and registration (brute force), else the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub default: Limit,
    pub auth: Limit,
    pub overrides: Vec<(String, Limit)>,
}

/// The routes that get the auth budget unless overridden.
pub const AUTH_LIMITED_ROUTES: &[&str] = &["POST /v1/auth/token", "POST /v1/auth/register"];

impl RateLimits {
    /// The budget for an endpoint named `METHOD /route/template`.
    pub fn for_endpoint(&self, endpoint: &str) -> Limit {
        if let Some((_, limit)) = self.overrides.iter().find(|(e, _)| e == endpoint) {
            *limit
        } else if AUTH_LIMITED_ROUTES.contains(&endpoint) {
            self.auth
        } else {
            self.default
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env(runtime: Runtime) -> Result<Self, ConfigError> {
        Self::from_lookup(runtime, |name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can pass a map instead of mutating the
    /// process environment.
    pub fn from_lookup(
        runtime: Runtime,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let dev_mode = match get("BASALT_DEV").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => return Err(invalid("BASALT_DEV", other, "expected 1/true or 0/false")),
        };

        let database_url = get("DATABASE_URL").ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
            hint: " (e.g. postgres://user:pass@127.0.0.1:5432/basalt; scripts/dev sets one up)",
        })?;
        let jwt_secret = get("JWT_SECRET").ok_or(ConfigError::Missing {
            name: "JWT_SECRET",
            hint: " (at least 32 random bytes, e.g. `openssl rand -base64 48`)",
        })?;
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES && !dev_mode {
            return Err(ConfigError::WeakJwtSecret {
                len: jwt_secret.len(),
            });
        }

        let default_pool = match runtime {
            Runtime::Host => 16,
            Runtime::Lambda => 2,
        };
        let default_format = match runtime {
            Runtime::Lambda => LogFormat::Json,
            Runtime::Host if dev_mode => LogFormat::Pretty,
            Runtime::Host => LogFormat::Json,
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None => default_format,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => return Err(invalid("LOG_FORMAT", other, "expected json or pretty")),
        };

        let bcrypt_cost = parse(&get, "BCRYPT_COST", 12u32)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(invalid(
                "BCRYPT_COST",
                &bcrypt_cost.to_string(),
                "bcrypt allows 4 to 31",
            ));
        }
        let db_pool_max = parse(&get, "DB_POOL_MAX", default_pool)?;
        if db_pool_max == 0 {
            return Err(invalid("DB_POOL_MAX", "0", "must be at least 1"));
        }
        let jwt_ttl_seconds = parse(&get, "JWT_TTL_SECONDS", 900u64)?;
        if jwt_ttl_seconds == 0 {
            return Err(invalid("JWT_TTL_SECONDS", "0", "must be at least 1"));
        }

        Ok(Self {
            database_url: database_url.into(),
            db_pool_max,
            slow_query: Duration::from_millis(parse(&get, "SLOW_QUERY_MS", 500u64)?),
            jwt_secret: jwt_secret.into(),
            jwt_ttl: Duration::from_secs(jwt_ttl_seconds),
            bcrypt_cost,
            bind_addr: parse(&get, "BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8001)))?,
            log_format,
            body_limit_bytes: parse(&get, "BODY_LIMIT_BYTES", 1024 * 1024usize)?,
            request_timeout: Duration::from_secs(parse(&get, "REQUEST_TIMEOUT_SECONDS", 30u64)?),
            dev_mode,
            redis_url: get("REDIS_URL").map(SecretString::from),
            redis_timeout: Duration::from_millis(parse(&get, "REDIS_TIMEOUT_MS", 20u64)?),
            redis_key_prefix: get("REDIS_KEY_PREFIX").unwrap_or_else(|| "basalt".into()),
            rate_limits: RateLimits {
                default: parse(
                    &get,
                    "RATE_LIMIT_DEFAULT",
                    Limit {
                        requests: 300,
                        window: Duration::from_secs(60),
                    },
                )?,
                auth: parse(
                    &get,
                    "RATE_LIMIT_AUTH",
                    Limit {
                        requests: 10,
                        window: Duration::from_secs(60),
                    },
                )?,
                overrides: rate_limit_overrides(get("RATE_LIMIT_OVERRIDES").as_deref())?,
            },
            cors_allowed_origins: cors_origins(get("CORS_ALLOWED_ORIGINS").as_deref())?,
            trusted_proxies: trusted_proxies(get("TRUSTED_PROXIES").as_deref())?,
        })
    }

    /// The database URL, for the one place that connects.
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

/// `METHOD /route=N/SECONDS,...`, e.g. `GET /v1/items=600/60,POST /v1/items=60/60`.
fn rate_limit_overrides(raw: Option<&str>) -> Result<Vec<(String, Limit)>, ConfigError> {
    const NAME: &str = "RATE_LIMIT_OVERRIDES";
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (endpoint, limit) = entry
                .rsplit_once('=')
                .ok_or_else(|| invalid(NAME, entry, "expected METHOD /route=REQUESTS/SECONDS"))?;
            let endpoint = endpoint.split_whitespace().collect::<Vec<_>>();
            let [method, route] = endpoint[..] else {
                return Err(invalid(NAME, entry, "expected METHOD /route before '='"));
            };
            if !route.starts_with('/') {
                return Err(invalid(NAME, entry, "the route must start with /"));
            }
            let limit = limit
                .parse()
                .map_err(|e: String| invalid(NAME, entry, &e))?;
            Ok((format!("{} {route}", method.to_ascii_uppercase()), limit))
        })
        .collect()
}

/// Comma-separated origins (`scheme://host[:port]`); `*` is refused because responses allow
/// credentials, and browsers reject `*` with credentials anyway.
fn cors_origins(raw: Option<&str>) -> Result<Vec<String>, ConfigError> {
    const NAME: &str = "CORS_ALLOWED_ORIGINS";
    let raw = raw.unwrap_or("http://localhost:5173");
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            if origin == "*" {
                return Err(invalid(
                    NAME,
                    origin,
                    "`*` cannot be combined with credentials; list the origins",
                ));
            }
            let uri: http::Uri = origin
                .parse()
                .map_err(|e: http::uri::InvalidUri| invalid(NAME, origin, &e.to_string()))?;
            let well_formed = matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some()
                && uri
                    .path_and_query()
                    .is_none_or(|pq| pq.as_str().is_empty() || pq.as_str() == "/");
            if !well_formed {
                return Err(invalid(
                    NAME,
                    origin,
                    "expected scheme://host[:port] with no path",
                ));
            }
            Ok(origin.trim_end_matches('/').to_owned())
        })
        .collect()
}

/// Comma-separated IP addresses or CIDR ranges.
fn trusted_proxies(raw: Option<&str>) -> Result<Vec<IpNet>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| invalid("TRUSTED_PROXIES", p, "expected an IP address or CIDR range"))
        })
        .collect()
}

fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn parse<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| invalid(name, &raw, &e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(Runtime::Host, |k| map.get(k).cloned())
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://u:hunter2@localhost/db");
    const SECRET: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123456789abcdef");

    #[test]
    fn defaults_match_the_design_contract() {
        let c = config(&[URL, SECRET]).unwrap();
        assert_eq!(c.slow_query, Duration::from_millis(500));
        assert_eq!(c.jwt_ttl, Duration::from_secs(900));
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(c.bind_addr.to_string(), "0.0.0.0:8001");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.body_limit_bytes, 1 << 20);
        let lambda = Config::from_lookup(Runtime::Lambda, |k| match k {
            "DATABASE_URL" => Some(URL.1.into()),
            "JWT_SECRET" => Some(SECRET.1.into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(lambda.db_pool_max, 2);
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
    fn rate_limits_cors_and_proxies_parse_with_clear_errors() {
        let c = config(&[URL, SECRET]).unwrap();
        assert_eq!(c.rate_limits.for_endpoint("GET /v1/items").requests, 300);
        assert_eq!(
            c.rate_limits.for_endpoint("POST /v1/auth/token").requests,
            10
        );
        assert_eq!(c.cors_allowed_origins, ["http://localhost:5173"]);
        assert!(c.redis_url.is_none());
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
        let items = c.rate_limits.for_endpoint("GET /v1/items");
        assert_eq!((items.requests, items.window), (7, Duration::from_secs(1)));
        assert_eq!(
            c.rate_limits.for_endpoint("POST /v1/auth/token").requests,
            3
        );
        assert_eq!(c.rate_limits.for_endpoint("POST /v1/items").requests, 50);
        assert_eq!(
            c.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(c.trusted_proxies.len(), 2);
        for (name, value) in [
            ("RATE_LIMIT_DEFAULT", "lots"),
            ("RATE_LIMIT_AUTH", "0/60"),
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
}
