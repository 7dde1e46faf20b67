//! The HTTP edge: `BIND_ADDR`, `BODY_LIMIT_BYTES`, `REQUEST_TIMEOUT_SECONDS`,
//! `HEADER_READ_TIMEOUT_SECONDS`, `MAX_CONNECTIONS`, `CORS_ALLOWED_ORIGINS`, `TRUSTED_PROXIES`.

use std::{net::SocketAddr, time::Duration};

use ipnet::IpNet;

use super::{ConfigError, Env, invalid};

/// Longest `HEADER_READ_TIMEOUT_SECONDS` accepted: an hour. The timeout exists to drop clients
/// that trickle their headers, and far larger values overflow the deadline hyper computes for
/// every connection (a panic per connection instead of a start-up error).
const MAX_HEADER_READ_TIMEOUT_SECONDS: u64 = 3600;

/// Most `MAX_CONNECTIONS` accepted: what the host's connection counter (a tokio `Semaphore`)
/// can hold. Any real limit is far lower (file descriptors run out first).
const CONNECTIONS_CEILING: usize = tokio::sync::Semaphore::MAX_PERMITS;

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where the host listens (Lambda ignores it).
    pub bind_addr: SocketAddr,
    /// Requests with larger bodies are refused with 413 before the handler reads them.
    pub body_limit_bytes: usize,
    /// Requests running longer are answered with 408 and their handler future dropped.
    pub request_timeout: Duration,
    /// Host only: how long a connection may take to deliver a request's head (request line and
    /// headers), counted from when the connection opens or its previous response was sent; then
    /// it is closed. `request_timeout` starts only once the head is parsed, so without this a
    /// client trickling header bytes would hold its connection forever (slowloris). It is also
    /// the longest an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Host only: most connections open at once. At the cap the host stops accepting, so new
    /// connections wait in the listen backlog until one closes, instead of each costing a
    /// task, buffers and a file descriptor.
    pub max_connections: usize,
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
            header_read_timeout: Duration::from_secs(at_most(
                "HEADER_READ_TIMEOUT_SECONDS",
                env.positive_or("HEADER_READ_TIMEOUT_SECONDS", 10u64)?,
                MAX_HEADER_READ_TIMEOUT_SECONDS,
            )?),
            max_connections: at_most(
                "MAX_CONNECTIONS",
                env.positive_or("MAX_CONNECTIONS", 1024usize)?,
                CONNECTIONS_CEILING,
            )?,
            cors_allowed_origins: cors_origins(env.get("CORS_ALLOWED_ORIGINS").as_deref())?,
            trusted_proxies: trusted_proxies(env.get("TRUSTED_PROXIES").as_deref())?,
        })
    }
}

/// `value`, or an error naming `name` when it exceeds `max`.
fn at_most<T: PartialOrd + std::fmt::Display>(
    name: &'static str,
    value: T,
    max: T,
) -> Result<T, ConfigError> {
    if value > max {
        return Err(invalid(
            name,
            &value.to_string(),
            &format!("must be at most {max}"),
        ));
    }
    Ok(value)
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
