//! Rate limiting: `REDIS_URL`, `REDIS_CA_CERT`, `REDIS_TIMEOUT_MS`, `REDIS_KEY_PREFIX`,
//! `RATE_LIMIT_DEFAULT`, `RATE_LIMIT_AUTH`, `RATE_LIMIT_ACCOUNT`, `RATE_LIMIT_OVERRIDES`.

use std::{path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, Env, invalid};

/// What `RateLimiter` needs: where Redis is (if anywhere), how long to wait for it, and the
/// budgets.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Unset: rate limiting runs in memory only (per process). May carry a password.
    pub redis_url: Option<SecretString>,
    /// PEM file of the CA(s) that a `rediss://` server's certificate must chain to, instead of
    /// the platform's roots (a private CA; ElastiCache's certificates need none).
    pub redis_ca_cert: Option<PathBuf>,
    /// How long a rate-limit decision may wait for Redis before the in-memory limiter decides
    /// instead: a slow Redis must not become a slow API.
    pub redis_timeout: Duration,
    /// Prefix of every Redis key, so several installations (or tests) can share one Redis.
    pub redis_key_prefix: String,
    pub limits: RateLimits,
}

impl RateLimitSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let redis_url = env.get("REDIS_URL").map(SecretString::from);
        let redis_ca_cert = env.get("REDIS_CA_CERT").map(PathBuf::from);
        // A CA for a connection that is not TLS would be silently ignored: say so instead.
        let tls = redis_url
            .as_ref()
            .is_some_and(|u| u.expose_secret().starts_with("rediss://"));
        if let Some(path) = &redis_ca_cert
            && !tls
        {
            return Err(invalid(
                "REDIS_CA_CERT",
                &path.display().to_string(),
                "only used with a rediss:// REDIS_URL",
            ));
        }
        Ok(Self {
            redis_url,
            redis_ca_cert,
            redis_timeout: Duration::from_millis(env.positive_or("REDIS_TIMEOUT_MS", 20u64)?),
            redis_key_prefix: env
                .get("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| "basalt".into()),
            limits: RateLimits {
                default: env.parse_or(
                    "RATE_LIMIT_DEFAULT",
                    Limit {
                        requests: 300,
                        window: Duration::from_secs(60),
                    },
                )?,
                auth: env.parse_or(
                    "RATE_LIMIT_AUTH",
                    Limit {
                        requests: 10,
                        window: Duration::from_secs(60),
                    },
                )?,
                account: env.parse_or(
                    "RATE_LIMIT_ACCOUNT",
                    Limit {
                        requests: 10,
                        window: Duration::from_secs(600),
                    },
                )?,
                overrides: overrides(env.get("RATE_LIMIT_OVERRIDES").as_deref())?,
            },
        })
    }
}

/// A request budget: `requests` per `window`, enforced by GCRA (see `rate_limit`): a burst of
/// up to `requests`, after which budget comes back at one request per
/// [`Limit::emission_interval`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests: u32,
    pub window: Duration,
}

/// The most requests per second a budget may allow: GCRA counts in whole microseconds.
pub const MAX_REQUESTS_PER_SECOND: u64 = 1_000_000;

impl Limit {
    /// How much budget one request takes, in whole microseconds: `window / requests`, rounded
    /// up (so a budget is never exceeded; at most `requests` µs of a window is lost to it).
    pub fn emission_interval_us(&self) -> u64 {
        (self.window.as_micros() as u64)
            .div_ceil(u64::from(self.requests))
            .max(1)
    }
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
        if u64::from(requests) > secs.saturating_mul(MAX_REQUESTS_PER_SECOND) {
            return Err(format!(
                "at most {MAX_REQUESTS_PER_SECOND} requests per second (the limiter counts in microseconds)"
            ));
        }
        Ok(Self {
            requests,
            window: Duration::from_secs(secs),
        })
    }
}

/// Per-endpoint budgets: an override for `METHOD /route/template`, else the stricter auth
/// budget for the routes that take a password ([`AUTH_LIMITED_ROUTES`]: brute force), else
/// the default. Sign-in also counts against a budget per account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub default: Limit,
    pub auth: Limit,
    /// Sign-in attempts per account (normalised email), from any address: a botnet spraying
    /// one account is stopped even though each of its addresses stays within `auth`.
    pub account: Limit,
    pub overrides: Vec<(String, Limit)>,
}

/// The routes that get the auth budget unless overridden: each one checks a password (or
/// creates an account), so each one is a way to guess passwords.
pub const AUTH_LIMITED_ROUTES: &[&str] = &[
    "POST /v1/auth/token",
    "POST /v1/auth/register",
    "PATCH /v1/users/me",
    "DELETE /v1/users/me",
    "POST /v1/api-keys",
];

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

/// `METHOD /route=N/SECONDS,...`, e.g. `GET /v1/items=600/60,POST /v1/items=60/60`.
fn overrides(raw: Option<&str>) -> Result<Vec<(String, Limit)>, ConfigError> {
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
