//! The HTTP edge: `BIND_ADDR`, `BODY_LIMIT_BYTES`, `REQUEST_TIMEOUT_SECONDS`,
//! `CORS_ALLOWED_ORIGINS`, `TRUSTED_PROXIES`.

use std::{net::SocketAddr, time::Duration};

use ipnet::IpNet;

use super::{ConfigError, Env, invalid};

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where the host listens (Lambda ignores it).
    pub bind_addr: SocketAddr,
    /// Requests with larger bodies are refused with 413 before the handler reads them.
    pub body_limit_bytes: usize,
    /// Requests running longer are answered with 408 and their handler future dropped.
    pub request_timeout: Duration,
    /// Browser origins allowed to call the API with credentials. Never `*`.
    pub cors_allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, ingress controllers).
    pub trusted_proxies: Vec<IpNet>,
}

impl HttpSettings {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            bind_addr: env.parse_or("BIND_ADDR", SocketAddr::from(([0, 0, 0, 0], 8001)))?,
            body_limit_bytes: env.positive_or("BODY_LIMIT_BYTES", 1024 * 1024usize)?,
            request_timeout: Duration::from_secs(
                env.positive_or("REQUEST_TIMEOUT_SECONDS", 30u64)?,
            ),
            cors_allowed_origins: cors_origins(env.get("CORS_ALLOWED_ORIGINS").as_deref())?,
            trusted_proxies: trusted_proxies(env.get("TRUSTED_PROXIES").as_deref())?,
        })
    }
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
